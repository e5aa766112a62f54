//! Property tests: whatever the bytes, import returns a model that passes the format's
//! validation or an error, and never panics.

use proptest::prelude::*;

use super::errors::small_model;
use super::*;

/// Every successful import passes the model-file validation (so it can be packed).
fn check(bytes: &[u8]) {
    if let Ok(m) = import(bytes, &ImportOptions::default())
        && let Err(e) = prunus_format::validate_graph(&m.graph)
    {
        panic!("imported graph fails validation: {e}");
    }
}

/// A model touching most lowerings: conv/BN/clip, pools, split/concat, shuffle, slice,
/// pad, shape folding, gemm, softmax, hswish.
fn rich_model() -> G {
    let mut g = G::new(13);
    g.input("x", &[1, 4, 8, 8])
        .init_seq("w", &[8, 4, 3, 3], 0.01)
        .init("gamma", &[8], &[1.0; 8])
        .init("beta", &[8], &[0.0; 8])
        .init("mean", &[8], &[0.0; 8])
        .init("var", &[8], &[1.0; 8])
        .init("lo", &[], &[0.0])
        .init("hi", &[], &[6.0])
        .init_i64("split", &[2], &[4, 4])
        .init_i64("s5", &[5], &[1, 2, 4, 4, 4])
        .init_i64("s4", &[4], &[1, 8, 4, 4])
        .init_i64("st", &[1], &[0])
        .init_i64("en", &[1], &[6])
        .init_i64("ax", &[1], &[1])
        .init_i64("pads", &[8], &[0, 0, 1, 1, 0, 0, 1, 1])
        .init_i64("zero", &[], &[0])
        .init_i64("m1", &[1], &[-1])
        .init_i64("ax0", &[1], &[0])
        .init_seq("fc", &[3, 6], 0.1)
        .init("fcb", &[3], &[0.1, 0.2, 0.3])
        .node(
            "Conv",
            &["x", "w"],
            &["c"],
            vec![ais("pads", &[1, 1, 1, 1]), ais("strides", &[1, 1])],
        )
        .node(
            "BatchNormalization",
            &["c", "gamma", "beta", "mean", "var"],
            &["bn"],
            vec![],
        )
        .node("Clip", &["bn", "lo", "hi"], &["r6"], vec![])
        .node(
            "MaxPool",
            &["r6"],
            &["mp"],
            vec![
                ais("kernel_shape", &[3, 3]),
                ais("strides", &[2, 2]),
                ai("ceil_mode", 1),
            ],
        )
        .node("Split", &["mp", "split"], &["a", "b"], vec![ai("axis", 1)])
        .node("HardSigmoid", &["b"], &["hs"], vec![af("alpha", 1.0 / 6.0)])
        .node("Mul", &["b", "hs"], &["hsw"], vec![])
        .node("Concat", &["a", "hsw"], &["cat"], vec![ai("axis", 1)])
        .node("Reshape", &["cat", "s5"], &["g5"], vec![])
        .node(
            "Transpose",
            &["g5"],
            &["t5"],
            vec![ais("perm", &[0, 2, 1, 3, 4])],
        )
        .node("Reshape", &["t5", "s4"], &["shuf"], vec![])
        .node("Slice", &["shuf", "st", "en", "ax"], &["sl"], vec![])
        .node("Pad", &["sl", "pads"], &["pd"], vec![])
        .node(
            "AveragePool",
            &["pd"],
            &["ap"],
            vec![ais("kernel_shape", &[2, 2]), ais("strides", &[2, 2])],
        )
        .node("GlobalAveragePool", &["ap"], &["gap"], vec![])
        .node("Shape", &["gap"], &["shape"], vec![])
        .node("Gather", &["shape", "zero"], &["n"], vec![])
        .node("Unsqueeze", &["n", "ax0"], &["n1"], vec![])
        .node("Concat", &["n1", "m1"], &["target"], vec![ai("axis", 0)])
        .node("Reshape", &["gap", "target"], &["flat"], vec![])
        .node(
            "Gemm",
            &["flat", "fc", "fcb"],
            &["logits"],
            vec![ai("transB", 1)],
        )
        .node("Softmax", &["logits"], &["prob"], vec![])
        .output("prob");
    g
}

#[test]
fn rich_model_imports() {
    let m = rich_model().ok();
    assert!(prunus_format::validate_graph(&m.graph).is_ok());
    assert!(kinds(&m).contains(&"ChannelShuffle"));
}

/// One semantic mutation of a valid graph.
#[derive(Clone, Debug)]
enum Mutation {
    /// Replace a node's op type.
    Op(prop::sample::Index, prop::sample::Index),
    /// Set an attribute's integer(s) to a value.
    Attr(prop::sample::Index, prop::sample::Index, i64),
    /// Set one integer of an i64 initializer.
    IntInit(prop::sample::Index, prop::sample::Index, i64),
    /// Change one dimension of an initializer.
    Dim(prop::sample::Index, prop::sample::Index, i64),
    /// Rewire a node input to another tensor name.
    Input(
        prop::sample::Index,
        prop::sample::Index,
        prop::sample::Index,
    ),
    /// Change the graph input's shape.
    InputDim(prop::sample::Index, i64),
}

const OPS: [&str; 16] = [
    "Conv",
    "Relu",
    "Add",
    "Mul",
    "Concat",
    "Split",
    "Slice",
    "Reshape",
    "Transpose",
    "MaxPool",
    "Gemm",
    "Pad",
    "Softmax",
    "Flatten",
    "Squeeze",
    "Identity",
];

fn interesting_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        -3i64..10,
        Just(i64::MAX),
        Just(i64::MIN),
        Just(1 << 31),
        Just(u32::MAX as i64 + 1)
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    use prop::sample::Index;
    prop_oneof![
        (any::<Index>(), any::<Index>()).prop_map(|(n, o)| Mutation::Op(n, o)),
        (any::<Index>(), any::<Index>(), interesting_int())
            .prop_map(|(n, a, v)| Mutation::Attr(n, a, v)),
        (any::<Index>(), any::<Index>(), interesting_int())
            .prop_map(|(t, i, v)| Mutation::IntInit(t, i, v)),
        (any::<Index>(), any::<Index>(), interesting_int())
            .prop_map(|(t, i, v)| Mutation::Dim(t, i, v)),
        (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(n, i, t)| Mutation::Input(n, i, t)),
        (any::<Index>(), interesting_int()).prop_map(|(i, v)| Mutation::InputDim(i, v)),
    ]
}

fn apply(g: &mut GraphProto, m: &Mutation) {
    let names: Vec<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.clone())
        .chain(g.initializer.iter().filter_map(|t| t.name.clone()))
        .collect();
    match m {
        Mutation::Op(n, o) => {
            let k = n.index(g.node.len());
            g.node[k].op_type = Some(OPS[o.index(OPS.len())].into());
        }
        Mutation::Attr(n, a, v) => {
            let k = n.index(g.node.len());
            let attrs = &mut g.node[k].attribute;
            if !attrs.is_empty() {
                let j = a.index(attrs.len());
                let at = &mut attrs[j];
                if at.i.is_some() {
                    at.i = Some(*v);
                } else if !at.ints.is_empty() {
                    let j = a.index(at.ints.len());
                    at.ints[j] = *v;
                }
            }
        }
        Mutation::IntInit(t, i, v) => {
            let k = t.index(g.initializer.len());
            let data = &mut g.initializer[k].int64_data;
            if !data.is_empty() {
                let j = i.index(data.len());
                data[j] = *v;
            }
        }
        Mutation::Dim(t, i, v) => {
            let k = t.index(g.initializer.len());
            let dims = &mut g.initializer[k].dims;
            if !dims.is_empty() {
                let j = i.index(dims.len());
                dims[j] = *v;
            }
        }
        Mutation::Input(n, i, t) => {
            let k = n.index(g.node.len());
            let inputs = &mut g.node[k].input;
            if !inputs.is_empty() {
                let j = i.index(inputs.len());
                inputs[j] = names[t.index(names.len())].clone();
            }
        }
        Mutation::InputDim(i, v) => {
            use super::super::proto::tensor_shape_proto::dimension::Value as D;
            use super::super::proto::type_proto::Value as V;
            let Some(Some(V::TensorType(t))) = g.input[0].r#type.as_mut().map(|t| t.value.as_mut())
            else {
                return;
            };
            let Some(shape) = t.shape.as_mut() else {
                return;
            };
            let j = i.index(shape.dim.len());
            shape.dim[j].value = Some(D::DimValue(*v));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn mutated_bytes_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = small_model().bytes();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        check(&bytes);
    }

    #[test]
    fn mutated_graphs_never_panic(mutations in proptest::collection::vec(mutation(), 1..4)) {
        let mut g = rich_model();
        for m in &mutations {
            apply(&mut g.graph, m);
        }
        check(&g.bytes());
    }
}
