//! Pattern recognition across nodes: channel shuffle, h-swish / h-sigmoid spellings, NHWC
//! inputs, and the ONNX names intermediate tensors keep after fusion.

use prunus_format::{Activation, Op};

use super::*;

/// x[1,C,2,2] → 1x1 conv (C→C, identity-ish weights) with output `c`.
fn conv_on(g: &mut G, x: &str, c: i64, out: &str) {
    let w: Vec<f32> = (0..c * c)
        .map(|i| if i % (c + 1) == 0 { 1.0 } else { 0.1 })
        .collect();
    let wname = format!("{out}_w");
    g.init(&wname, &[c, c, 1, 1], &w)
        .node("Conv", &[x, &wname], &[out], vec![]);
}

#[test]
fn reshape_transpose_reshape_is_a_channel_shuffle() {
    let mut g = G::new(13);
    g.input("x", &[1, 6, 2, 2])
        .init_i64("s5", &[5], &[1, 2, 3, 2, 2])
        .init_i64("s4", &[4], &[1, -1, 2, 2])
        .node("Relu", &["x"], &["r"], vec![])
        .node("Reshape", &["r", "s5"], &["g5"], vec![])
        .node(
            "Transpose",
            &["g5"],
            &["t5"],
            vec![ais("perm", &[0, 2, 1, 3, 4])],
        )
        .node("Reshape", &["t5", "s4"], &["shuffled"], vec![])
        .output("shuffled");
    let m = g.ok();
    assert_eq!(kinds(&m), ["Activation", "ChannelShuffle"]);
    assert_eq!(writer(&m, "shuffled").op, Op::ChannelShuffle { groups: 2 });
}

#[test]
fn other_transposes_are_unsupported_and_named() {
    let mut g = G::new(13);
    g.input("x", &[1, 6, 2, 3])
        .node(
            "Transpose",
            &["x"],
            &["t"],
            vec![ais("perm", &[0, 1, 3, 2])],
        )
        .output("t");
    let err = g.import().unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ImportError::UnsupportedAttribute { .. }),
        "{msg}"
    );
    assert!(msg.contains("Transpose_t") && msg.contains("perm"), "{msg}");
}

#[test]
fn leading_nhwc_transpose_declares_an_nchw_input() {
    let mut g = G::new(13);
    g.input("image", &[1, 8, 8, 3])
        .node(
            "Transpose",
            &["image"],
            &["nchw"],
            vec![ais("perm", &[0, 3, 1, 2])],
        )
        .node("Relu", &["nchw"], &["y"], vec![])
        .output("y");
    let m = g.ok();
    assert_eq!(kinds(&m), ["Activation"]);
    let input = m.graph.inputs[0];
    assert_eq!(
        (m.tensor(input).name.as_str(), m.shape(input)),
        ("image", &[1u32, 3, 8, 8][..])
    );
    assert!(
        m.graph
            .metadata
            .extra
            .contains(&("input_layout_source".into(), "NHWC".into()))
    );
}

#[test]
fn conv_bn_hswish_via_hard_sigmoid_is_one_conv() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 2, 2]);
    conv_on(&mut g, "x", 2, "c");
    g.init("gamma", &[2], &[1.0, 2.0])
        .init("beta", &[2], &[0.0, 0.5])
        .init("mean", &[2], &[0.0, 0.0])
        .init("var", &[2], &[1.0, 1.0])
        .node(
            "BatchNormalization",
            &["c", "gamma", "beta", "mean", "var"],
            &["bn"],
            vec![],
        )
        .node(
            "HardSigmoid",
            &["bn"],
            &["hs"],
            vec![af("alpha", 1.0 / 6.0), af("beta", 0.5)],
        )
        .node("Mul", &["bn", "hs"], &["hswish"], vec![])
        .output("hswish");
    let m = g.ok();
    assert_eq!(kinds(&m), ["Conv1x1"]);
    assert_eq!(
        conv_of(writer(&m, "hswish")).activation,
        Activation::HardSwish
    );
}

#[test]
fn add3_clip_div6_mul_chains_are_hard_swish_and_alone_hard_sigmoid() {
    for (div, opset) in [(true, 13), (false, 11)] {
        let mut g = G::new(opset);
        g.input("x", &[1, 2, 2, 2])
            .init("three", &[], &[3.0])
            .init("six", &[], &[6.0])
            .init("sixth", &[], &[1.0 / 6.0]);
        conv_on(&mut g, "x", 2, "c");
        g.init("zero", &[], &[0.0])
            .node("Add", &["c", "three"], &["a3"], vec![])
            .node("Clip", &["a3", "zero", "six"], &["r6"], vec![]);
        if div {
            g.node("Div", &["r6", "six"], &["hsig"], vec![]);
        } else {
            g.node("Mul", &["r6", "sixth"], &["hsig"], vec![]);
        }
        g.node("Mul", &["c", "hsig"], &["hswish"], vec![])
            .output("hswish");
        let m = g.ok();
        assert_eq!(kinds(&m), ["Conv1x1"], "div={div}");
        assert_eq!(
            conv_of(writer(&m, "hswish")).activation,
            Activation::HardSwish
        );
    }
    // The gate alone (SE block): one hard sigmoid fused into the conv.
    let mut g = G::new(13);
    g.input("x", &[1, 2, 2, 2])
        .init("three", &[], &[3.0])
        .init("six", &[], &[6.0])
        .init("zero", &[], &[0.0]);
    conv_on(&mut g, "x", 2, "c");
    g.node("Add", &["c", "three"], &["a3"], vec![])
        .node("Clip", &["a3", "zero", "six"], &["r6"], vec![])
        .node("Div", &["r6", "six"], &["gate"], vec![])
        .node("Mul", &["x", "gate"], &["scaled"], vec![])
        .output("scaled");
    let m = g.ok();
    assert_eq!(kinds(&m), ["Conv1x1", "Mul"]);
    match conv_of(writer(&m, "gate")).activation {
        Activation::HardSigmoid { alpha, beta } => {
            assert!((alpha - 1.0 / 6.0).abs() < 1e-6 && (beta - 0.5).abs() < 1e-6)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hard_swish_op_of_opset_14() {
    let mut g = G::new(14);
    g.input("x", &[1, 2, 2, 2]);
    conv_on(&mut g, "x", 2, "c");
    g.node("HardSwish", &["c"], &["y"], vec![]).output("y");
    let m = g.ok();
    assert_eq!(conv_of(writer(&m, "y")).activation, Activation::HardSwish);
}

/// Intermediate tensors downstream tests read by name: Add, Concat, Relu, SE Mul, GAP, MaxPool.
#[test]
fn intermediate_names_survive_fusion() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4]);
    conv_on(&mut g, "x", 2, "c1");
    g.node("Relu", &["c1"], &["relu1"], vec![]);
    conv_on(&mut g, "relu1", 2, "c2");
    g.node("Add", &["c2", "x"], &["add"], vec![])
        .node(
            "MaxPool",
            &["add"],
            &["pool"],
            vec![ais("kernel_shape", &[2, 2]), ais("strides", &[2, 2])],
        )
        .node("GlobalAveragePool", &["pool"], &["gap"], vec![])
        .node("Sigmoid", &["gap"], &["gate"], vec![])
        .node("Mul", &["pool", "gate"], &["se"], vec![])
        .node("Concat", &["se", "pool"], &["cat"], vec![ai("axis", 1)])
        .output("cat");
    let m = g.ok();
    for name in ["relu1", "add", "pool", "gap", "gate", "se", "cat"] {
        assert!(
            m.graph.tensors.iter().any(|t| t.name == name),
            "{name} is gone: {:?}",
            m.graph.tensors
        );
    }
    assert_eq!(
        kinds(&m),
        [
            "Conv1x1",
            "Conv1x1",
            "Add",
            "MaxPool",
            "GlobalAveragePool",
            "Activation",
            "Mul",
            "Concat"
        ]
    );
}

#[test]
fn every_graph_is_valid_after_import() {
    // The imported graphs are accepted by the format's own validation and can be packed.
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4]);
    conv_on(&mut g, "x", 2, "c");
    g.node("Relu", &["c"], &["y"], vec![]).output("y");
    let m = g.ok();
    let bytes = m.to_bytes(Default::default()).unwrap();
    let parsed = prunus_format::parse(&bytes).unwrap();
    assert_eq!(parsed.graph.nodes.len(), 1);
}
