//! Unit and property tests of the pruning library on a small graph built with the prost
//! types: first conv → BN → ReLU → depthwise → grouped 1x1 (g = 3) → residual Add →
//! channel shuffle (g = 3) → Split → Concat → channel Slice → GAP → Flatten → Gemm.

use std::collections::HashMap;

use proptest::prelude::*;
use prost::Message;

use super::depgraph::DepGraph;
use super::onnx_graph::{Const, ConstData, OnnxGraph, op};
use super::unstructured::Target;
use super::*;
use crate::onnx::proto::attribute_proto::AttributeType;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::tensor_shape_proto::{Dimension, dimension};
use crate::onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
use crate::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

pub(super) fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub(super) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

pub(super) fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A graph under construction: nodes, initializers and the seed of [`Net::weight`].
pub(super) struct Net {
    pub(super) nodes: Vec<NodeProto>,
    pub(super) init: Vec<TensorProto>,
    pub(super) seed: u32,
}

impl Net {
    fn rand(&mut self) -> f32 {
        self.seed = self
            .seed
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        (self.seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    }
    pub(super) fn weight(&mut self, name: &str, dims: &[i64], f: impl Fn(f32) -> f32) -> String {
        let n: i64 = dims.iter().product();
        let data = (0..n).map(|_| f(self.rand())).collect();
        self.init.push(TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            float_data: data,
            ..Default::default()
        });
        name.into()
    }
    fn shape(&mut self, name: &str, v: &[i64]) -> String {
        self.init.push(TensorProto {
            name: Some(name.into()),
            dims: vec![v.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            int64_data: v.to_vec(),
            ..Default::default()
        });
        name.into()
    }
    pub(super) fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            name: Some(outputs[0].into()),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
    }
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cbr(
        &mut self,
        x: &str,
        name: &str,
        cin: i64,
        cout: i64,
        k: i64,
        group: i64,
        relu: bool,
    ) -> String {
        let w = self.weight(&format!("{name}.w"), &[cout, cin / group, k, k], |r| r);
        let conv = format!("{name}.conv");
        let attrs = vec![
            ints("kernel_shape", &[k, k]),
            ints("pads", &[k / 2; 4]),
            int("group", group),
        ];
        self.node("Conv", &[x, &w], &[&conv], attrs);
        let g = self.weight(&format!("{name}.gamma"), &[cout], |r| 1.0 + r);
        let b = self.weight(&format!("{name}.beta"), &[cout], |r| r);
        let m = self.weight(&format!("{name}.mean"), &[cout], |r| r * 0.1);
        let v = self.weight(&format!("{name}.var"), &[cout], |r| 1.0 + r * 0.5);
        let bn = format!("{name}.bn");
        self.node(
            "BatchNormalization",
            &[&conv, &g, &b, &m, &v],
            &[&bn],
            vec![],
        );
        if !relu {
            return bn;
        }
        let out = format!("{name}.relu");
        self.node("Relu", &[&bn], &[&out], vec![]);
        out
    }
}

/// The small test model's serialized bytes.
pub fn small_model() -> Vec<u8> {
    let mut n = Net {
        nodes: vec![],
        init: vec![],
        seed: 7,
    };
    let t1 = n.cbr("input", "stem", 4, 12, 3, 1, true);
    let t2 = n.cbr(&t1, "dw", 12, 12, 3, 12, true);
    let t3 = n.cbr(&t2, "gpw", 12, 12, 1, 3, false);
    n.node("Add", &[&t1, &t3], &["add"], vec![]);
    let s5 = n.shape("s5", &[1, 3, 4, 6, 6]);
    let s4 = n.shape("s4", &[1, 12, 6, 6]);
    n.node("Reshape", &["add", &s5], &["sh.r"], vec![]);
    n.node(
        "Transpose",
        &["sh.r"],
        &["sh.t"],
        vec![ints("perm", &[0, 2, 1, 3, 4])],
    );
    n.node("Reshape", &["sh.t", &s4], &["shuffled"], vec![]);
    let split = n.shape("split", &[6, 6]);
    n.node(
        "Split",
        &["shuffled", &split],
        &["left", "right"],
        vec![int("axis", 1)],
    );
    let r2 = n.cbr("right", "branch", 6, 6, 1, 1, true);
    n.node("Concat", &["left", &r2], &["cat"], vec![int("axis", 1)]);
    let (st, en, ax) = (
        n.shape("st", &[0]),
        n.shape("en", &[12]),
        n.shape("ax", &[1]),
    );
    n.node("Slice", &["cat", &st, &en, &ax], &["sliced"], vec![]);
    n.node("GlobalAveragePool", &["sliced"], &["gap"], vec![]);
    n.node("Flatten", &["gap"], &["flat"], vec![int("axis", 1)]);
    let fw = n.weight("fc.w", &[5, 12], |r| r);
    let fb = n.weight("fc.b", &[5], |r| r);
    n.node(
        "Gemm",
        &["flat", &fw, &fb],
        &["output"],
        vec![int("transB", 1)],
    );
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("small".into()),
            node: n.nodes,
            initializer: n.init,
            input: vec![value_info("input", &[1, 4, 6, 6])],
            output: vec![value_info("output", &[1, 5])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

pub(super) fn run(onnx: &[u8], input: &[f32]) -> Vec<f32> {
    let packed = calibrate::pack(onnx).unwrap();
    let model = prunus::Model::from_bytes(packed.as_bytes()).unwrap();
    let mut session = model.session(Default::default()).unwrap();
    session.run(&[input]).unwrap();
    session.output(0).unwrap().to_vec()
}

fn zero_at(c: &mut Const, axis: usize, index: usize) {
    let dims = c.dims.clone();
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    if let ConstData::F32(v) = &mut c.data {
        for o in 0..outer {
            let s = (o * dims[axis] + index) * inner;
            v[s..s + inner].iter_mut().for_each(|x| *x = 0.0);
        }
    }
}

fn kill(g: &mut OnnxGraph, dep: &DepGraph, removed: &[bool]) {
    for n in g.nodes().to_vec() {
        let y = &n.output[0];
        let Some(&(_, _, cy)) = dep.index.get(y) else {
            continue;
        };
        let params: &[usize] = match op(&n) {
            "Conv" | "Gemm" => &[1, 2],
            "BatchNormalization" => &[1, 2],
            _ => continue,
        };
        for c in (0..cy).filter(|&c| removed[dep.class_of(y, c).unwrap()]) {
            for &p in params {
                if let Some(t) = n.input.get(p) {
                    zero_at(g.consts.get_mut(t).unwrap(), 0, c);
                }
            }
        }
    }
}

#[test]
fn dependency_classes_follow_shuffle_groups_and_residuals() {
    let g = OnnxGraph::parse(&small_model()).unwrap();
    let dep = DepGraph::build(&g).unwrap();
    // The shuffle input (per = 4) ties a, a+4, a+8; the grouped conv ties the same
    // relative channel of its 3 groups (also a, a+4, a+8); the residual ties stem to add.
    for a in 0..4 {
        let id = dep.class_of("add", a).unwrap();
        for k in 1..3 {
            assert_eq!(dep.class_of("add", a + 4 * k), Some(id));
        }
        assert_eq!(dep.class_of("stem.relu", a), Some(id));
        assert_eq!(dep.class_of("gpw.bn", a), Some(id));
        assert!(dep.classes[id].prunable());
    }
    // shuffled[j] = add[(j % 3) * 4 + j / 3]
    for j in 0..12 {
        assert_eq!(
            dep.class_of("shuffled", j),
            dep.class_of("add", (j % 3) * 4 + j / 3)
        );
    }
    // Flatten columns follow their channel; logits are a graph output.
    assert_eq!(dep.class_of("flat", 3), dep.class_of("sliced", 3));
    assert!(!dep.classes[dep.class_of("output", 0).unwrap()].prunable());
    assert!(!dep.classes[dep.class_of("input", 0).unwrap()].prunable());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any removable set: shapes stay consistent (re-propagated and checked), each tensor
    /// loses exactly the slots of removed classes, and dead channels prune exactly.
    #[test]
    fn any_selection_keeps_shapes_consistent_and_prunes_exactly(bits in proptest::collection::vec(any::<bool>(), 64)) {
        let mut g = OnnxGraph::parse(&small_model()).unwrap();
        let dep = DepGraph::build(&g).unwrap();
        let removed: Vec<bool> = (0..dep.classes.len())
            .map(|i| dep.classes[i].prunable() && bits[i % bits.len()])
            .collect();
        let applied = structured::apply(&g, &dep, &removed);
        let empties = dep.tensors.iter().any(|t| dep.kept(t, &removed).unwrap().is_empty());
        prop_assume!(!empties);
        let (pruned, _) = applied.unwrap();
        for t in &dep.tensors {
            let (_, base, n) = dep.index[t];
            let gone = (0..n).filter(|&c| removed[dep.slot_class[base + c]]).count();
            prop_assert_eq!(pruned.shapes[t][1], n - gone, "tensor {}", t);
        }
        kill(&mut g, &dep, &removed);
        let input: Vec<f32> = (0..144).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0).collect();
        let dense = run(&g.to_bytes(), &input);
        let out = run(&pruned.to_bytes(), &input);
        for (a, b) in dense.iter().zip(&out) {
            prop_assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{} vs {}", a, b);
        }
    }
}

#[test]
fn structured_ratio_and_rounding() {
    assert_eq!(keep_count(10, 0.3, 1), 7);
    assert_eq!(keep_count(64, 0.3, 8), 48);
    assert_eq!(keep_count(5, 0.3, 8), 5);
    assert_eq!(keep_count(3, 0.99, 1), 1);
    let g = OnnxGraph::parse(&small_model()).unwrap();
    for criterion in [Criterion::L1, Criterion::L2, Criterion::Bn, Criterion::Fpgm] {
        let options = StructuredOptions {
            sparsity: 0.5,
            criterion,
            round: 1,
        };
        let out = structured_prune(&g, &options, None).unwrap();
        assert!(out.counts.2 > 0, "{criterion:?}");
        assert!(out.graph.consts["fc.w"].dims[1] < 12);
    }
    let bad = StructuredOptions {
        sparsity: 1.5,
        criterion: Criterion::L1,
        round: 1,
    };
    assert!(matches!(
        structured_prune(&g, &bad, None),
        Err(PruneError::Options(_))
    ));
    let act = StructuredOptions {
        criterion: Criterion::Activation,
        ..bad
    };
    assert!(
        structured_prune(
            &g,
            &StructuredOptions {
                sparsity: 0.3,
                ..act
            },
            None
        )
        .is_err()
    );
}

#[test]
fn activation_criterion_runs_calibration_through_the_runtime() {
    let g = OnnxGraph::parse(&small_model()).unwrap();
    let dep = DepGraph::build(&g).unwrap();
    let data: Vec<f32> = (0..288)
        .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
        .collect();
    let calib = calibrate::Calibration::from_batch(&[2, 4, 6, 6], data).unwrap();
    let means = calibrate::activation_means(&g, &dep, &calib, &|_, _| {}).unwrap();
    assert!(
        means.contains_key("stem.relu"),
        "{:?}",
        means.keys().collect::<Vec<_>>()
    );
    let options = StructuredOptions {
        sparsity: 0.3,
        criterion: Criterion::Activation,
        round: 1,
    };
    assert!(
        structured_prune(&g, &options, Some(&means))
            .unwrap()
            .counts
            .2
            > 0
    );
    let wrong = calibrate::Calibration::from_batch(&[1, 3, 6, 6], vec![0.0; 108]).unwrap();
    assert!(matches!(
        calibrate::activation_means(&g, &dep, &wrong, &|_, _| {}),
        Err(PruneError::Calibration(_))
    ));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(OnnxGraph::parse(b"not onnx").is_err());
    let mut model = ModelProto::decode(&small_model()[..]).unwrap();
    model
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .retain(|t| t.name.as_deref() != Some("s5"));
    assert!(OnnxGraph::from_model(model).is_err());
}

fn zeros(t: &Target) -> usize {
    t.data.iter().filter(|v| **v == 0.0).count()
}

#[test]
fn unstructured_per_layer_sparsity_is_exact_and_first_conv_stays_dense() {
    let dense = OnnxGraph::parse(&small_model()).unwrap();
    let mut g = dense.clone();
    let pruned =
        unstructured_prune_onnx(&mut g, Layers::All, Granularity::Unstructured, 0.5, false)
            .unwrap();
    assert!(!pruned.iter().any(|(t, _)| t.name == "stem.w"));
    assert_eq!(g.consts["stem.w"], dense.consts["stem.w"]);
    assert!(
        !pruned.iter().any(|(t, _)| t.name == "dw.w"),
        "depthwise weights stay dense"
    );
    assert_eq!(g.consts["dw.w"], dense.consts["dw.w"]);
    assert!(pruned.iter().any(|(t, _)| t.name == "gpw.w"));
    assert!(pruned.iter().any(|(t, _)| t.name == "fc.w"));
    for (t, mask) in &pruned {
        let expected = (0.5 * t.data.len() as f64).round() as usize;
        assert_eq!(zeros(t), expected, "{}", t.name);
        assert_eq!(mask.iter().filter(|k| !**k).count(), expected);
        assert_eq!(g.consts[&t.name].as_f32().unwrap(), t.data.as_slice());
    }
    let mut g = dense.clone();
    let pw = unstructured_prune_onnx(
        &mut g,
        Layers::Pointwise,
        Granularity::Unstructured,
        0.7,
        false,
    )
    .unwrap();
    let names: Vec<&str> = pw.iter().map(|(t, _)| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["branch.w"],
        "grouped and 3x3 convs are not 1x1 layers"
    );
    let mut g = dense.clone();
    let global =
        unstructured_prune_onnx(&mut g, Layers::All, Granularity::Unstructured, 0.6, true).unwrap();
    let total: usize = global.iter().map(|(t, _)| t.data.len()).sum();
    let z: usize = global.iter().map(|(t, _)| zeros(t)).sum();
    assert_eq!(z, (0.6 * total as f64).round() as usize);
}

#[test]
fn block_and_n_m_patterns_hold() {
    let dense = OnnxGraph::parse(&small_model()).unwrap();
    for b in [2, 4] {
        let mut g = dense.clone();
        let pruned =
            unstructured_prune_onnx(&mut g, Layers::All, Granularity::Block(b), 0.5, false)
                .unwrap();
        for (t, mask) in &pruned {
            let blocks = t.rows().div_ceil(b) * t.cols();
            let mut zero_blocks = 0;
            for ob in (0..t.rows()).step_by(b) {
                for c in 0..t.cols() {
                    let m: Vec<bool> = (ob..(ob + b).min(t.rows()))
                        .map(|o| mask[t.index(o, c)])
                        .collect();
                    assert!(
                        m.iter().all(|&k| k == m[0]),
                        "{} block {ob},{c} split",
                        t.name
                    );
                    zero_blocks += usize::from(!m[0]);
                }
            }
            assert_eq!(
                zero_blocks,
                (0.5 * blocks as f64).round() as usize,
                "{}",
                t.name
            );
        }
    }
    let mut g = dense.clone();
    let pruned =
        unstructured_prune_onnx(&mut g, Layers::All, Granularity::NM(2, 4), 0.0, false).unwrap();
    for (t, _) in &pruned {
        for o in 0..t.rows() {
            for start in (0..t.cols()).step_by(4) {
                let nz = (start..(start + 4).min(t.cols()))
                    .filter(|&c| t.data[t.index(o, c)] != 0.0)
                    .count();
                assert!(nz <= 2, "{} row {o} group {start}: {nz} nonzeros", t.name);
            }
        }
    }
    let t = Target {
        name: "kn".into(),
        dims: vec![6, 4],
        out_axis: 1,
        data: (0..24).map(|v| v as f32 + 1.0).collect(),
    };
    assert_eq!(t.index(3, 2), 2 * 4 + 3);
    let mut ts = [t];
    assert!(unstructured::prune(&mut ts, Granularity::Unstructured, 1.5, false).is_err());
    assert!(unstructured::prune(&mut ts, Granularity::NM(3, 2), 0.0, false).is_err());
}

#[test]
fn prunus_files_round_trip_and_refuse_channel_pruning() {
    let ir = crate::onnx::import(&small_model(), &Default::default()).unwrap();
    let bytes = ir.to_bytes(prunus_format::WriteOptions::default()).unwrap();
    let (mut model, f16) = prunus_file::read(&bytes).unwrap();
    assert!(!f16);
    assert_eq!(
        model.weights, ir.weights,
        "unpacking restores the logical weights"
    );
    assert!(prunus_file::prune(&mut model, Layers::All, Granularity::Channel, 0.3, false).is_err());
    let pruned =
        prunus_file::prune(&mut model, Layers::All, Granularity::Block(4), 0.5, false).unwrap();
    let names: Vec<&str> = pruned.iter().map(|(t, _)| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["gpw.w", "branch.w", "fc.w"],
        "all but the first and the depthwise convolution"
    );
    let out = model
        .to_bytes(prunus_format::WriteOptions::default())
        .unwrap();
    let (again, _) = prunus_file::read(&out).unwrap();
    assert_eq!(again.weights, model.weights);
    assert!(prunus_file::read(b"PRUNUSMF garbage").is_err());
}

#[test]
fn masks_json_is_keyed_by_original_names() {
    assert_eq!(export::base64(b"Man"), "TWFu");
    assert_eq!(export::base64(b"Ma"), "TWE=");
    assert_eq!(
        export::pack_bits(&[true, false, true, true, false, false, false, false, true]),
        vec![0b1101, 1]
    );
    let g = OnnxGraph::parse(&small_model()).unwrap();
    let options = StructuredOptions {
        sparsity: 0.5,
        criterion: Criterion::L1,
        round: 1,
    };
    let out = structured_prune(&g, &options, None).unwrap();
    let dims = |n: &str| g.consts.get(n).map(|c| c.dims.clone()).unwrap_or_default();
    let json = export::structured_masks(&out.result, &dims);
    let fc = &json["weights"]["fc.w"];
    assert_eq!(fc["shape"], serde_json::json!([5, 12]));
    assert_eq!(fc["kept_out"].as_array().unwrap().len(), 5);
    let _: HashMap<String, serde_json::Value> =
        serde_json::from_value(json["weights"].clone()).unwrap();
}
