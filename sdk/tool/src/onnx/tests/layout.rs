//! Layout and shape handling: channel splits and slices, folded shape subgraphs, reshapes,
//! softmax, pad, input shapes and output names.

use prunus_format::Op;

use super::*;

#[test]
fn split_becomes_channel_slices_in_every_form() {
    // opset 13: split sizes as an input
    let mut g = G::new(13);
    g.input("x", &[1, 6, 2, 2])
        .init_i64("s", &[2], &[2, 4])
        .node("Split", &["x", "s"], &["a", "b"], vec![ai("axis", 1)])
        .output("a")
        .output("b");
    let m = g.ok();
    assert_eq!(writer(&m, "a").op, Op::SliceChannels { start: 0, end: 2 });
    assert_eq!(writer(&m, "b").op, Op::SliceChannels { start: 2, end: 6 });
    // opset 11: attribute
    let mut g = G::new(11);
    g.input("x", &[1, 6, 2, 2]).node(
        "Split",
        &["x"],
        &["a", "b"],
        vec![ai("axis", -3), ais("split", &[1, 5])],
    );
    g.output("a").output("b");
    assert_eq!(
        writer(&g.ok(), "b").op,
        Op::SliceChannels { start: 1, end: 6 }
    );
    // opset 18: num_outputs, uneven
    let mut g = G::new(18);
    g.input("x", &[1, 7, 2, 2]).node(
        "Split",
        &["x"],
        &["a", "b"],
        vec![ai("axis", 1), ai("num_outputs", 2)],
    );
    g.output("a").output("b");
    let m = g.ok();
    assert_eq!(writer(&m, "a").op, Op::SliceChannels { start: 0, end: 4 });
    assert_eq!(writer(&m, "b").op, Op::SliceChannels { start: 4, end: 7 });
    // equal split without sizes
    let mut g = G::new(13);
    g.input("x", &[1, 6, 2, 2])
        .node("Split", &["x"], &["a", "b", "c"], vec![ai("axis", 1)]);
    g.output("c");
    assert_eq!(
        writer(&g.ok(), "c").op,
        Op::SliceChannels { start: 4, end: 6 }
    );
}

#[test]
fn slice_on_channels_clamps_ends_and_rejects_other_axes() {
    let mut g = G::new(13);
    g.input("x", &[1, 6, 2, 2])
        .init_i64("st", &[1], &[2])
        .init_i64("en", &[1], &[i64::MAX])
        .init_i64("ax", &[1], &[1])
        .node("Slice", &["x", "st", "en", "ax"], &["y"], vec![])
        .output("y");
    assert_eq!(
        writer(&g.ok(), "y").op,
        Op::SliceChannels { start: 2, end: 6 }
    );
    let mut g = G::new(13);
    g.input("x", &[1, 6, 4, 4])
        .init_i64("st", &[1], &[1])
        .init_i64("en", &[1], &[3])
        .init_i64("ax", &[1], &[2])
        .node("Slice", &["x", "st", "en", "ax"], &["y"], vec![])
        .output("y");
    let err = g.import().unwrap_err();
    assert!(
        matches!(err, ImportError::UnsupportedAttribute { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Slice_y"), "{err}");
}

/// PyTorch's `x.view(x.size(0), -1)`: Shape → Gather → Unsqueeze → Concat → Reshape.
#[test]
fn shape_subgraph_is_folded() {
    let mut g = G::new(13);
    g.input("x", &[1, 4, 2, 2])
        .init_i64("zero", &[], &[0])
        .init_i64("axes", &[1], &[0])
        .init_i64("minus1", &[1], &[-1])
        .node("GlobalAveragePool", &["x"], &["gap"], vec![])
        .node("Shape", &["gap"], &["shape"], vec![])
        .node("Gather", &["shape", "zero"], &["n"], vec![ai("axis", 0)])
        .node("Unsqueeze", &["n", "axes"], &["n1"], vec![])
        .node(
            "Concat",
            &["n1", "minus1"],
            &["target"],
            vec![ai("axis", 0)],
        )
        .node(
            "Cast",
            &["target"],
            &["target64"],
            vec![ai("to", DataType::Int64 as i64)],
        )
        .node("Reshape", &["gap", "target64"], &["flat"], vec![])
        .output("flat");
    let m = g.ok();
    assert_eq!(kinds(&m), ["GlobalAveragePool", "Reshape"]);
    assert_eq!(m.shape(m.graph.outputs[0]), &[1, 4]);
}

#[test]
fn softmax_flatten_pad_and_symbolic_batch() {
    let mut g = G::new(11);
    g.input_sym("x", &[None, Some(2), Some(3), Some(3)])
        .init_i64("pads", &[8], &[0, 0, 1, 0, 0, 0, 2, 1])
        .node("Pad", &["x", "pads"], &["p"], vec![])
        .node("GlobalAveragePool", &["p"], &["gap"], vec![])
        .node("Flatten", &["gap"], &["f"], vec![ai("axis", 1)])
        .node("Softmax", &["f"], &["y"], vec![ai("axis", 1)])
        .output("y");
    let m = g.ok();
    assert_eq!(
        kinds(&m),
        ["Pad", "GlobalAveragePool", "Reshape", "Softmax"]
    );
    assert_eq!(m.shape(m.graph.inputs[0]), &[1, 2, 3, 3]);
    assert_eq!(
        writer(&m, "p").op,
        Op::Pad {
            pads: [1, 0, 2, 1],
            value: 0.0
        }
    );
    // Softmax over axis 1 of [1, K, 1, 1] goes through a 2-D reshape.
    let mut g = G::new(13);
    g.input("x", &[1, 4, 1, 1])
        .node("Softmax", &["x"], &["y"], vec![ai("axis", 1)])
        .output("y");
    let m = g.ok();
    assert_eq!(kinds(&m), ["Reshape", "Softmax", "Reshape"]);
    assert_eq!(m.shape(m.graph.outputs[0]), &[1, 4, 1, 1]);
}

#[test]
fn input_shape_override_fixes_dynamic_dims() {
    let mut g = G::new(13);
    g.input_sym("x", &[None, Some(3), None, None])
        .node("GlobalAveragePool", &["x"], &["y"], vec![])
        .output("y");
    let err = g.import().unwrap_err();
    assert!(
        matches!(err, ImportError::Input { .. }) && err.to_string().contains("'x'"),
        "{err}"
    );
    let options = ImportOptions {
        input_shape: Some(vec![1, 3, 64, 48]),
    };
    let m = import(&g.bytes(), &options).unwrap();
    assert_eq!(m.shape(m.graph.inputs[0]), &[1, 3, 64, 48]);
    let bad = ImportOptions {
        input_shape: Some(vec![1, 3, 64]),
    };
    assert!(matches!(
        import(&g.bytes(), &bad),
        Err(ImportError::Input { .. })
    ));
}

#[test]
fn identity_and_dropout_outputs_keep_graph_output_names() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 3, 3])
        .node("Relu", &["x"], &["r"], vec![])
        .node("Dropout", &["r"], &["d"], vec![])
        .node("Identity", &["d"], &["out"], vec![])
        .node("Identity", &["x"], &["copy"], vec![])
        .output("out")
        .output("copy");
    let m = g.ok();
    let names: Vec<&str> = m
        .graph
        .outputs
        .iter()
        .map(|&t| m.tensor(t).name.as_str())
        .collect();
    assert_eq!(names, ["out", "copy"]);
    assert_eq!(kinds(&m), ["Activation", "Reshape"]);
}

#[test]
fn reduce_mean_over_h_and_w_is_a_global_pool() {
    for (keep, expect) in [(1, &[1u32, 3, 1, 1][..]), (0, &[1, 3][..])] {
        let mut g = G::new(13);
        g.input("x", &[1, 3, 4, 4])
            .node(
                "ReduceMean",
                &["x"],
                &["y"],
                vec![ais("axes", &[-1, 2]), ai("keepdims", keep)],
            )
            .output("y");
        let m = g.ok();
        assert_eq!(m.shape(m.graph.outputs[0]), expect);
        assert_eq!(kinds(&m)[0], "GlobalAveragePool");
    }
    let mut g = G::new(18);
    g.input("x", &[1, 3, 4, 4])
        .init_i64("axes", &[1], &[1])
        .node("ReduceMean", &["x", "axes"], &["y"], vec![])
        .output("y");
    assert!(matches!(
        g.import(),
        Err(ImportError::UnsupportedAttribute { .. })
    ));
}
