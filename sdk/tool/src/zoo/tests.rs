//! Tests of the zoo: published sizes, determinism, errors, valid graphs at other input
//! sizes, O(1) outputs and intermediate values (run with the runtime), and calibration
//! values that agree with a run of the finished model. (The runtime itself is checked
//! against onnxruntime in the workspace `tests/`.)

use std::collections::HashSet;

use prunus_format::{TensorId, WriteOptions, validate_graph};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};

use super::*;

fn opts(input_hw: Option<u32>, seed: u64) -> ZooOptions {
    ZooOptions { input_hw, seed }
}

#[test]
fn family_table() {
    let names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "squeezenet1_1",
            "mobilenet_v1",
            "mobilenet_v2",
            "mobilenet_v3_small",
            "mobilenet_v3_large",
            "shufflenet_v1",
            "shufflenet_v2_x1_0",
            "ghostnet_1_0",
            "xception"
        ]
    );
    for f in FAMILIES {
        assert_eq!(family(f.name), Some(f));
        assert!(builder(f.name).is_some(), "{} has no builder", f.name);
    }
    assert_eq!(family("xception").map(|f| f.input_hw), Some(299));
    assert!(family("resnet50").is_none());
}

#[test]
fn params_and_macs_within_2_percent_of_published() {
    let mut failures = Vec::new();
    for f in FAMILIES {
        let model = build(f.name, &ZooOptions::default()).expect(f.name);
        let c = published_comparison(&model).expect("zoo model");
        eprintln!(
            "{:20} graph {:>11} {:?} {:>11} / {:>11} = {:.4}   MACs {:>13} / {:>13} = {:.4}",
            f.name,
            c.graph_params,
            c.convention,
            c.params,
            f.published_params,
            c.params_ratio(),
            c.macs,
            f.published_macs,
            c.macs_ratio()
        );
        for (what, r) in [("params", c.params_ratio()), ("MACs", c.macs_ratio())] {
            if !(0.98..=1.02).contains(&r) {
                failures.push(format!("{} {what} ratio {r:.4}", f.name));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn exact_torchvision_counts() {
    // Exact parameter counts of torchvision's models (BatchNorm gamma/beta included).
    for (name, exact) in [
        ("squeezenet1_1", 1_235_496),
        ("mobilenet_v2", 3_504_872),
        ("mobilenet_v3_small", 2_542_856),
        ("mobilenet_v3_large", 5_483_032),
        ("shufflenet_v2_x1_0", 2_278_604),
    ] {
        let model = build(name, &opts(Some(64), 0)).expect(name);
        assert_eq!(
            published_comparison(&model).map(|c| c.params),
            Some(exact),
            "{name}"
        );
    }
}

#[test]
fn deterministic_weights() {
    for f in FAMILIES.iter().filter(|f| f.name != "xception") {
        let a = build(f.name, &opts(Some(64), 7)).expect(f.name);
        let b = build(f.name, &opts(Some(64), 7)).expect(f.name);
        let c = build(f.name, &opts(Some(64), 8)).expect(f.name);
        assert!(
            a.weights == b.weights,
            "{}: same seed, different weights",
            f.name
        );
        assert_eq!(a.graph, b.graph, "{}", f.name);
        assert!(a.weights != c.weights, "{}: seed ignored", f.name);
        // Above the default size, the weights calibrated at the default size are reused.
        let d = build(f.name, &opts(Some(f.input_hw), 7)).expect(f.name);
        let e = build(f.name, &opts(Some(f.input_hw + 32), 7)).expect(f.name);
        assert!(
            d.weights == e.weights,
            "{}: larger input recalibrated",
            f.name
        );
        assert_eq!(model_hw(&e), f.input_hw + 32);
    }
    // Different families with the same seed draw different streams.
    let v1 = build("mobilenet_v3_small", &opts(Some(64), 0)).expect("v3 small");
    let v2 = build("mobilenet_v3_large", &opts(Some(64), 0)).expect("v3 large");
    assert!(v1.weights[0] != v2.weights[0]);
}

fn model_hw(model: &IrModel) -> u32 {
    model.shape(model.graph.inputs[0])[2]
}

#[test]
fn unknown_family() {
    let err = build("resnet50", &ZooOptions::default()).expect_err("unknown");
    match &err {
        ZooError::UnknownFamily { name, known } => {
            assert_eq!(name, "resnet50");
            assert!(
                known.contains("mobilenet_v2") && known.contains("xception"),
                "{known}"
            );
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("resnet50"));
}

#[test]
fn too_small_input_is_an_error() {
    for f in FAMILIES {
        for hw in [0, 1, 8] {
            match build(f.name, &opts(Some(hw), 0)) {
                Err(ZooError::Build(_)) => {}
                Ok(m) if validate_graph(&m.graph).is_ok() => {} // small enough nets may fit
                other => panic!("{} at {hw}: {:?}", f.name, other.err()),
            }
        }
    }
}

#[test]
fn valid_graphs_at_64() {
    for f in FAMILIES {
        let model = build(f.name, &opts(Some(64), 0)).expect(f.name);
        let g = &model.graph;
        validate_graph(g).expect(f.name);
        model.to_bytes(WriteOptions::default()).expect(f.name);
        assert_eq!(g.metadata.name, f.name);
        assert_eq!(
            g.metadata.producer,
            format!("prunus {} (zoo)", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(g.inputs.len(), 1);
        assert_eq!(model.tensor(g.inputs[0]).name, "input");
        assert_eq!(model.shape(g.inputs[0]), [1, 3, 64, 64]);
        assert_eq!(g.outputs.len(), 1);
        assert_eq!(model.tensor(g.outputs[0]).name, "output");
        assert_eq!(model.shape(g.outputs[0]), [1, 1000]);
        let unique = |names: Vec<&str>| names.len() == names.iter().collect::<HashSet<_>>().len();
        assert!(
            unique(g.tensors.iter().map(|t| t.name.as_str()).collect()),
            "{}",
            f.name
        );
        assert!(
            unique(g.nodes.iter().map(|n| n.name.as_str()).collect()),
            "{}",
            f.name
        );
        assert!(
            unique(g.weights.iter().map(|w| w.name.as_str()).collect()),
            "{}",
            f.name
        );
    }
}

#[test]
fn default_size_graphs_serialize() {
    for f in FAMILIES {
        let model = build(f.name, &ZooOptions::default()).expect(f.name);
        let hw = f.input_hw;
        assert_eq!(model.shape(model.graph.inputs[0]), [1, 3, hw, hw]);
        model.to_bytes(WriteOptions { f16: true }).expect(f.name);
    }
}

fn random_input(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Runs `model` with the runtime on each of `inputs`: per input, every tensor's values by id.
fn run_all(model: &IrModel, inputs: &[&[f32]]) -> Vec<Vec<Vec<f32>>> {
    let name = &model.graph.metadata.name;
    let bytes = prunus::AlignedBytes::new(&model.to_bytes(WriteOptions::default()).expect(name));
    let loaded = prunus::Model::from_bytes(bytes.as_bytes()).expect(name);
    let options = prunus::Options {
        retain: prunus::Retain::All,
        ..prunus::Options::default()
    };
    let mut session = loaded.session(options).expect(name);
    inputs
        .iter()
        .map(|input| {
            session.run(&[input]).expect(name);
            let tensors = &model.graph.tensors;
            let value = |t: &prunus_format::TensorInfo| session.tensor(&t.name).expect(name);
            tensors.iter().map(|t| value(t).to_vec()).collect()
        })
        .collect()
}

/// Runs `families` at `hw` with the runtime: logits finite, O(1) and input dependent;
/// every intermediate tensor's RMS within a generous band (a global pool of a centred,
/// BatchNorm-ed tensor is naturally small).
fn outputs_are_sane(hw: u32, families: &[&str]) {
    let mut failures = Vec::new();
    for &name in families {
        let t = std::time::Instant::now();
        let model = build(name, &opts(Some(hw), 0)).expect(name);
        let n = (3 * hw * hw) as usize;
        let values = run_all(&model, &[&random_input(n, 1), &random_input(n, 2)]);
        let (a, b) = (&values[0], &values[1]);
        let out = model.graph.outputs[0] as usize;
        let (ya, yb) = (&a[out], &b[out]);
        let (_, std) = mean_std(ya);
        let diff = ya
            .iter()
            .zip(yb)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        let mut rms_range = (f64::INFINITY, 0.0f64);
        for (t, v) in model.graph.tensors.iter().zip(a) {
            if v.is_empty() || t.name == "input" {
                continue;
            }
            let rms = (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            rms_range = (rms_range.0.min(rms), rms_range.1.max(rms));
        }
        eprintln!(
            "{name:20} hw {hw}: logits std {std:.3}, max |a-b| {diff:.3}, tensor RMS {:.3}..{:.3} ({:.1?})",
            rms_range.0,
            rms_range.1,
            t.elapsed()
        );
        let finite = ya.iter().chain(yb).all(|v| v.is_finite());
        if !finite || !(0.1..=100.0).contains(&std) || diff < 1e-3 * std as f32 {
            failures.push(format!("{name}: finite {finite}, std {std}, diff {diff}"));
        }
        if !(0.01..=50.0).contains(&rms_range.0) || !(0.01..=50.0).contains(&rms_range.1) {
            failures.push(format!("{name}: tensor RMS range {rms_range:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn outputs_are_sane_at_64() {
    let names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
    outputs_are_sane(64, &names);
}

#[test]
fn outputs_are_sane_at_default_size() {
    for f in FAMILIES {
        outputs_are_sane(f.input_hw, &[f.name]);
    }
}

/// The values calibration computed node by node (one-node models, each conv run with its
/// unscaled weights and scaled afterwards) are those of the finished model, run whole on
/// the calibration images, for every tensor of every family at 64x64: the weights, biases,
/// inputs and values calibration stored are the ones the graph uses.
#[test]
fn calibration_values_match_the_finished_model_at_64() {
    let mut failures = Vec::new();
    for f in FAMILIES {
        // Keep every value (no liveness) to compare them all.
        let (mut net, input) = Net::calibrating(f.name, "test", 5, 64, Vec::new());
        let output = builder(f.name).expect(f.name)(&mut net, input).expect(f.name);
        let (model, calib) = net.calibration().expect("calibrating");
        let mut model = model.clone();
        model.set_outputs(&[output]);
        let tensors = 0..model.graph.tensors.len() as TensorId;
        let cached: Vec<Vec<&[f32]>> = tensors.map(|t| calib.values(t).collect()).collect();
        let images: Vec<&[f32]> = cached[input as usize].clone();
        assert!(images.len() > 1, "{}: {} images", f.name, images.len());
        let whole = run_all(&model, &images);
        let mut worst = (0.0f32, String::new());
        for (image, values) in whole.iter().enumerate() {
            for (t, got) in values.iter().enumerate() {
                let want = cached[t][image];
                let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let err = got
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max)
                    / scale;
                let name = &model.graph.tensors[t].name;
                if got.len() != want.len() || err.is_nan() || err > 1e-3 {
                    failures.push(format!("{}: {name}: relative error {err}", f.name));
                }
                if err >= worst.0 {
                    worst = (err, name.clone());
                }
            }
        }
        eprintln!(
            "{:20} worst relative error {:.1e} ({})",
            f.name, worst.0, worst.1
        );
    }
    assert!(failures.is_empty(), "{failures:?}");
}
