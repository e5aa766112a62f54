//! Op lowering: weights, attributes, shapes, folding of BN and shape subgraphs.

use prunus_format::{Activation, BinaryKind, Op};

use super::*;

/// x[1,2,5,5] → Conv 3x3 (2→3) → BN → Relu.
fn conv_bn_relu() -> G {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 5, 5])
        .init_seq("w", &[3, 2, 3, 3], 0.01)
        .init("b", &[3], &[0.1, 0.2, 0.3])
        .init("gamma", &[3], &[1.0, 2.0, 0.5])
        .init("beta", &[3], &[0.0, 1.0, -1.0])
        .init("mean", &[3], &[0.5, -0.5, 0.0])
        .init("var", &[3], &[1.0, 4.0, 0.25])
        .node(
            "Conv",
            &["x", "w", "b"],
            &["c"],
            vec![ais("kernel_shape", &[3, 3]), ais("pads", &[1, 1, 1, 1])],
        )
        .node(
            "BatchNormalization",
            &["c", "gamma", "beta", "mean", "var"],
            &["bn"],
            vec![af("epsilon", 0.0)],
        )
        .node("Relu", &["bn"], &["r"], vec![])
        .output("r");
    g
}

#[test]
fn conv_bn_relu_becomes_one_conv_with_folded_weights() {
    let m = conv_bn_relu().ok();
    assert_eq!(kinds(&m), ["Conv"]);
    let node = writer(&m, "r");
    let c = conv_of(node);
    assert_eq!(c.activation, Activation::Relu);
    assert_eq!(
        (c.kernel, c.pads, c.stride, c.groups),
        ([3, 3], [1, 1, 1, 1], [1, 1], 1)
    );
    assert_eq!(m.shape(node.outputs[0]), &[1, 3, 5, 5]);
    // scale = gamma / sqrt(var), shift = beta - mean * scale
    let scale = [1.0f32, 1.0, 1.0];
    let shift = [-0.5f32, 1.5, -1.0];
    let w = weight(&m, c.weight);
    for o in 0..3 {
        for k in 0..18 {
            let orig = (o * 18 + k) as f32 * 0.01;
            assert!((w[o * 18 + k] - orig * scale[o]).abs() < 1e-6);
        }
    }
    let b = weight(&m, c.bias.unwrap());
    let orig_b = [0.1f32, 0.2, 0.3];
    for o in 0..3 {
        assert!(
            (b[o] - (orig_b[o] * scale[o] + shift[o])).abs() < 1e-6,
            "{b:?}"
        );
    }
    let meta = &m.graph.metadata;
    assert_eq!(
        meta.producer,
        format!("prunus {} (onnx import)", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(meta.name, "g");
    assert!(meta.extra.contains(&("opset".into(), "13".into())));
    assert!(
        meta.extra
            .contains(&("source_producer".into(), "rust-test".into()))
    );
}

#[test]
fn depthwise_bn_fold_is_per_output_channel() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .init("w", &[2, 1, 1, 1], &[3.0, 5.0])
        .init("gamma", &[2], &[2.0, 3.0])
        .init("beta", &[2], &[1.0, -1.0])
        .init("mean", &[2], &[0.0, 0.0])
        .init("var", &[2], &[1.0, 1.0])
        .node("Conv", &["x", "w"], &["c"], vec![ai("group", 2)])
        .node(
            "BatchNormalization",
            &["c", "gamma", "beta", "mean", "var"],
            &["bn"],
            vec![af("epsilon", 0.0)],
        )
        .output("bn");
    let m = g.ok();
    let c = conv_of(writer(&m, "bn"));
    assert_eq!(c.groups, 2);
    assert_eq!(weight(&m, c.weight), &[6.0, 15.0]);
    assert_eq!(weight(&m, c.bias.unwrap()), &[1.0, -1.0]);
}

#[test]
fn auto_pad_same_upper_and_lower_give_explicit_pads() {
    for (mode, pads) in [
        ("SAME_UPPER", [0, 0, 1, 1]),
        ("SAME_LOWER", [1, 1, 0, 0]),
        ("VALID", [0, 0, 0, 0]),
    ] {
        let mut g = G::new(13);
        g.input("x", &[1, 1, 6, 6])
            .init_seq("w", &[1, 1, 3, 3], 1.0)
            .node(
                "Conv",
                &["x", "w"],
                &["y"],
                vec![astr("auto_pad", mode), ais("strides", &[2, 2])],
            )
            .output("y");
        let m = g.ok();
        let c = conv_of(writer(&m, "y"));
        assert_eq!(c.pads, pads, "{mode}");
        let expect: &[u32] = if mode == "VALID" {
            &[1, 1, 2, 2]
        } else {
            &[1, 1, 3, 3]
        };
        assert_eq!(m.shape(m.graph.outputs[0]), expect);
    }
    // Odd size: SAME_UPPER 3x3 stride 2 on 7 -> out 4, total pad 2.
    let mut g = G::new(13);
    g.input("x", &[1, 1, 7, 7])
        .init_seq("w", &[1, 1, 3, 3], 1.0)
        .node(
            "Conv",
            &["x", "w"],
            &["y"],
            vec![astr("auto_pad", "SAME_UPPER"), ais("strides", &[2, 2])],
        )
        .output("y");
    let m = g.ok();
    assert_eq!(conv_of(writer(&m, "y")).pads, [1, 1, 1, 1]);
    assert_eq!(m.shape(m.graph.outputs[0]), &[1, 1, 4, 4]);
}

#[test]
fn asymmetric_pads_keep_onnx_order() {
    let mut g = G::new(13);
    g.input("x", &[1, 1, 6, 6])
        .init_seq("w", &[1, 1, 3, 3], 1.0)
        .node(
            "Conv",
            &["x", "w"],
            &["y"],
            vec![ais("pads", &[0, 1, 2, 3]), ais("dilations", &[1, 2])],
        )
        .output("y");
    let m = g.ok();
    let c = conv_of(writer(&m, "y"));
    assert_eq!((c.pads, c.dilation), ([0, 1, 2, 3], [1, 2]));
    // H: 6+0+2-3+1 = 6; W: 6+1+3-5+1 = 6
    assert_eq!(m.shape(m.graph.outputs[0]), &[1, 1, 6, 6]);
}

#[test]
fn ceil_mode_pools_compute_the_onnx_output_size() {
    let mut g = G::new(13);
    g.input("x", &[1, 4, 112, 112])
        .node(
            "MaxPool",
            &["x"],
            &["p"],
            vec![
                ais("kernel_shape", &[3, 3]),
                ais("strides", &[2, 2]),
                ai("ceil_mode", 1),
            ],
        )
        .node(
            "AveragePool",
            &["p"],
            &["a"],
            vec![
                ais("kernel_shape", &[2, 2]),
                ais("strides", &[2, 2]),
                ais("pads", &[1, 1, 1, 1]),
                ai("ceil_mode", 1),
                ai("count_include_pad", 1),
            ],
        )
        .output("a");
    let m = g.ok();
    assert_eq!(m.shape(writer(&m, "p").outputs[0]), &[1, 4, 56, 56]);
    // 56 + 2 - 2 = 56 / 2 -> 28 + 1 = 29; window 29 starts at 56 < 56 + 1: kept.
    assert_eq!(m.shape(m.graph.outputs[0]), &[1, 4, 29, 29]);
    match &writer(&m, "a").op {
        Op::AveragePool(p) => assert!(p.count_include_pad && p.pads == [1, 1, 1, 1]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn gemm_trans_b_zero_transposes_and_scales() {
    let mut g = G::new(13);
    g.input("x", &[1, 2])
        .init("b", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        .init("c", &[3], &[1.0, 1.0, 1.0])
        .node(
            "Gemm",
            &["x", "b", "c"],
            &["y"],
            vec![af("alpha", 2.0), af("beta", 0.5)],
        )
        .output("y");
    let m = g.ok();
    let Op::Gemm {
        weight: w, bias, ..
    } = writer(&m, "y").op
    else {
        panic!()
    };
    assert_eq!(m.graph.weights[w as usize].shape, vec![3, 2]);
    assert_eq!(weight(&m, w), &[2.0, 8.0, 4.0, 10.0, 6.0, 12.0]);
    assert_eq!(weight(&m, bias.unwrap()), &[0.5, 0.5, 0.5]);
}

#[test]
fn matmul_plus_constant_becomes_gemm_with_bias() {
    let mut g = G::new(13);
    g.input("x", &[1, 2])
        .init("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0])
        .init("bias", &[2], &[0.5, -0.5])
        .node("MatMul", &["x", "w"], &["mm"], vec![])
        .node("Add", &["mm", "bias"], &["y"], vec![])
        .node("Relu", &["y"], &["r"], vec![])
        .output("r");
    let m = g.ok();
    assert_eq!(kinds(&m), ["Gemm"]);
    let Op::Gemm {
        weight: w,
        bias,
        activation,
    } = writer(&m, "r").op
    else {
        panic!()
    };
    assert_eq!(weight(&m, w), &[1.0, 3.0, 2.0, 4.0]);
    assert_eq!(weight(&m, bias.unwrap()), &[0.5, -0.5]);
    assert_eq!(activation, Activation::Relu);
}

#[test]
fn constant_nodes_supply_weights_and_clip_bounds() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 3, 3])
        .node(
            "Constant",
            &[],
            &["w"],
            vec![atensor(
                "value",
                tensor_f32("w", &[2, 2, 1, 1], &[1.0, 0.0, 0.0, 1.0]),
            )],
        )
        .node("Constant", &[], &["lo"], vec![af("value_float", 0.0)])
        .node("Constant", &[], &["hi"], vec![af("value_float", 6.0)])
        .node("Conv", &["x", "w"], &["c"], vec![])
        .node("Clip", &["c", "lo", "hi"], &["y"], vec![])
        .output("y");
    let m = g.ok();
    let c = conv_of(writer(&m, "y"));
    assert_eq!(c.activation, Activation::Clip { min: 0.0, max: 6.0 });
    assert_eq!(weight(&m, c.weight), &[1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn clip_bounds_from_attributes_or_missing_inputs() {
    // Old-style attributes (opset < 11 spelling).
    let mut g = G::new(11);
    g.input("x", &[1, 2, 3, 3])
        .node("Clip", &["x"], &["y"], vec![af("min", 0.0), af("max", 6.0)])
        .output("y");
    assert_eq!(
        writer(&g.ok(), "y").op,
        Op::Activation(Activation::Clip { min: 0.0, max: 6.0 })
    );
    let mut g = G::new(9);
    g.input("x", &[1, 2, 3, 3])
        .node(
            "Clip",
            &["x"],
            &["y"],
            vec![af("min", -1.0), af("max", 1.0)],
        )
        .output("y");
    assert_eq!(
        writer(&g.ok(), "y").op,
        Op::Activation(Activation::Clip {
            min: -1.0,
            max: 1.0
        })
    );
    // Opset 11+: min given, max omitted with an empty name -> relu.
    let mut g = G::new(12);
    g.input("x", &[1, 2, 3, 3])
        .init("lo", &[], &[0.0])
        .node("Clip", &["x", "lo", ""], &["y"], vec![])
        .output("y");
    assert_eq!(writer(&g.ok(), "y").op, Op::Activation(Activation::Relu));
    // max only
    let mut g = G::new(12);
    g.input("x", &[1, 2, 3, 3])
        .init("hi", &[], &[6.0])
        .node("Clip", &["x", "", "hi"], &["y"], vec![])
        .output("y");
    assert_eq!(
        writer(&g.ok(), "y").op,
        Op::Activation(Activation::Clip {
            min: f32::NEG_INFINITY,
            max: 6.0
        })
    );
}

#[test]
fn constant_operands_become_scale_shifts() {
    let cases: [(&str, bool, f32, f32); 5] = [
        ("Add", false, 1.0, 2.0),
        ("Sub", false, 1.0, -2.0),
        ("Sub", true, -1.0, 2.0),
        ("Mul", true, 2.0, 0.0),
        ("Div", false, 0.5, 0.0),
    ];
    for (op, const_first, scale, shift) in cases {
        let mut g = G::new(13);
        g.input("x", &[1, 3, 2, 2]).init("k", &[], &[2.0]);
        let ins = if const_first { ["k", "x"] } else { ["x", "k"] };
        g.node(op, &ins, &["y"], vec![]).output("y");
        let m = g.ok();
        let Op::ScaleShift {
            scale: s, shift: t, ..
        } = writer(&m, "y").op
        else {
            panic!("{op}")
        };
        assert_eq!(weight(&m, s), &[scale; 3], "{op} {const_first}");
        assert_eq!(weight(&m, t), &[shift; 3], "{op} {const_first}");
    }
    // per-channel [C, 1, 1]
    let mut g = G::new(13);
    g.input("x", &[1, 3, 2, 2])
        .init("k", &[3, 1, 1], &[1.0, 2.0, 3.0])
        .node("Mul", &["x", "k"], &["y"], vec![])
        .output("y");
    let m = g.ok();
    let Op::ScaleShift { scale: s, .. } = writer(&m, "y").op else {
        panic!()
    };
    assert_eq!(weight(&m, s), &[1.0, 2.0, 3.0]);
}

#[test]
fn binary_broadcast_operand_goes_second() {
    let mut g = G::new(13);
    g.input("x", &[1, 3, 2, 2])
        .node("GlobalAveragePool", &["x"], &["s"], vec![])
        .node("Mul", &["s", "x"], &["y"], vec![])
        .output("y");
    let m = g.ok();
    let node = writer(&m, "y");
    assert!(matches!(
        node.op,
        Op::Binary {
            kind: BinaryKind::Mul,
            ..
        }
    ));
    assert_eq!(m.tensor(node.inputs[0]).name, "x");
    assert_eq!(m.tensor(node.inputs[1]).name, "s");
    let mut g = G::new(13);
    g.input("x", &[1, 3, 2, 2])
        .node("GlobalAveragePool", &["x"], &["s"], vec![])
        .node("Sub", &["s", "x"], &["y"], vec![])
        .output("y");
    assert!(matches!(g.import(), Err(ImportError::Node { .. })));
}
