//! Allocation of per-layer ratios from a sensitivity sweep whose trials are recovered, and
//! recovery of recipe-pruned models, on a chain of 1x1 convolutions whose first layer sees
//! low-rank inputs (like the correlated channels of natural images): least squares can
//! prune that layer far deeper than magnitude suggests, and only a recovered sweep sees it.

use prost::Message;

use super::calibrate::Calibration;
use super::evaluate::Evaluator;
use super::nonuniform::{Analysis, Progress, RecipeOutcome, prune_with_recipe};
use super::onnx_graph::OnnxGraph;
use super::recipe::Recipe;
use super::reconstruct::{RecoverOptions, recover};
use super::tests::{Net, int, value_info};
use crate::onnx::proto::{GraphProto, ModelProto, OperatorSetIdProto};

/// input [1, 8, 6, 6] → stem 1x1 8→32 (Conv, BN: linear; the first layer is never
/// pruned) → 1x1 32→24 → 1x1 24→16 → 1x1 16→24 (each Conv, BN, ReLU) → GAP → Gemm 24→10.
fn chain_model() -> OnnxGraph {
    let mut n = Net {
        nodes: vec![],
        init: vec![],
        seed: 11,
    };
    let stem = n.cbr("input", "stem", 8, 32, 1, 1, false);
    let a = n.cbr(&stem, "a", 32, 24, 1, 1, true);
    let b = n.cbr(&a, "b", 24, 16, 1, 1, true);
    let c = n.cbr(&b, "c", 16, 24, 1, 1, true);
    n.node("GlobalAveragePool", &[&c], &["gap"], vec![]);
    n.node("Flatten", &["gap"], &["flat"], vec![int("axis", 1)]);
    let fw = n.weight("fc.w", &[10, 24], |r| 2.0 * r);
    let fb = n.weight("fc.b", &[10], |r| r);
    n.node(
        "Gemm",
        &["flat", &fw, &fb],
        &["output"],
        vec![int("transB", 1)],
    );
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("chain".into()),
            node: n.nodes,
            initializer: n.init,
            input: vec![value_info("input", &[1, 8, 6, 6])],
            output: vec![value_info("output", &[1, 10])],
            ..Default::default()
        }),
        ..Default::default()
    };
    OnnxGraph::parse(&model.encode_to_vec()).unwrap()
}

/// Uniform pseudo-random values in [-0.5, 0.5) from `seed`.
fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// `count` inputs whose 8 channels mix 2 smooth random patterns with the same gains in
/// every sample (plus a little noise): the inputs of layer `a` have rank about 2 (plus the
/// stem's BatchNorm shift), in every set of samples.
fn low_rank_inputs(seed: u64, count: usize) -> Calibration {
    let mut gain = uniform(99);
    let gains: Vec<[f64; 2]> = (0..8).map(|_| [2.0 * gain(), 2.0 * gain()]).collect();
    let mut rand = uniform(seed);
    let mut data = Vec::with_capacity(count * 8 * 36);
    for _ in 0..count {
        let waves: Vec<[f64; 4]> = (0..2)
            .map(|_| [rand() * 3.0, rand() * 3.0, rand() * 6.0, 1.0 + rand()])
            .collect();
        for gain in &gains {
            for y in 0..6 {
                for x in 0..6 {
                    let v: f64 = waves
                        .iter()
                        .zip(gain)
                        .map(|(w, g)| g * w[3] * (w[0] * y as f64 + w[1] * x as f64 + w[2]).cos())
                        .sum();
                    data.push((v + 0.02 * rand()) as f32);
                }
            }
        }
    }
    Calibration::from_batch(&[count, 8, 6, 6], data).unwrap()
}

fn quiet() -> Progress<'static> {
    Progress {
        step: &|_| {},
        trial: &|_, _| {},
    }
}

/// Prunes by `json` (sweep trials recovered when `recovered_sweep`), then recovers the
/// whole model as `prunus prune --recover lstsq` does, zeros re-chosen per layer.
fn prune_and_recover(
    dense: &OnnxGraph,
    json: &str,
    recovered_sweep: bool,
    calib: &Calibration,
) -> (RecipeOutcome, OnnxGraph) {
    let mut recipe = Recipe::from_json(json).unwrap();
    recipe.recovered_sweep = recovered_sweep;
    let outcome =
        prune_with_recipe(dense, &recipe, Some(calib), &Analysis::IfNeeded, &quiet()).unwrap();
    let options = RecoverOptions {
        reselect_by_weight: outcome
            .weights
            .iter()
            .map(|(t, _, pattern)| (t.name.clone(), *pattern))
            .collect(),
        ..Default::default()
    };
    let mut g = outcome.graph.clone();
    recover(
        dense,
        &mut g,
        &Default::default(),
        calib,
        &options,
        &|_, _| {},
    )
    .unwrap();
    (outcome, g)
}

fn zeros(g: &OnnxGraph) -> usize {
    ["a.w", "b.w", "c.w"]
        .iter()
        .map(|w| {
            g.consts[*w]
                .as_f32()
                .unwrap()
                .iter()
                .filter(|v| **v == 0.0)
                .count()
        })
        .sum()
}

/// At the same overall sparsity, ratios allocated from the recovered sweep give a lower
/// deviation on held-out inputs than the same ratio everywhere or than ratios allocated
/// from a magnitude-only sweep (all recovered the same way), and they prune the low-rank
/// layer deepest.
#[test]
fn recovered_sweep_allocation_beats_uniform_and_magnitude_allocation() {
    let dense = chain_model();
    let calib = low_rank_inputs(1, 40);
    let held_out = Evaluator::new(&dense, &low_rank_inputs(2, 32), 0).unwrap();
    let sweep = r#""sensitivity": {"samples": 8}"#;
    let uniform = format!(r#"{{"layers": "1x1", "sparsity": 0.6, {sweep}}}"#);
    let target = format!(r#"{{"layers": "1x1", "target_sparsity": 0.6, {sweep}}}"#);
    let (_, g_uniform) = prune_and_recover(&dense, &uniform, true, &calib);
    let (magnitude, g_magnitude) = prune_and_recover(&dense, &target, false, &calib);
    let (allocated, g_allocated) = prune_and_recover(&dense, &target, true, &calib);
    assert!(!magnitude.sensitivity.as_ref().unwrap().recovered);
    assert!(allocated.sensitivity.as_ref().unwrap().recovered);
    // The same number of weights removed (to the rounding of each layer's ratio).
    let z = zeros(&g_uniform) as f64;
    for g in [&g_magnitude, &g_allocated] {
        assert!((zeros(g) as f64 - z).abs() <= 3.0, "{} vs {z}", zeros(g));
    }
    let kl = |g: &OnnxGraph| held_out.measure(g).unwrap().kl;
    let (u, m, a) = (kl(&g_uniform), kl(&g_magnitude), kl(&g_allocated));
    let ratios: Vec<f64> = allocated.layers.iter().map(|l| l.ratio).collect();
    println!(
        "held-out KL: uniform {u:.5}, magnitude sweep {m:.5}, recovered sweep {a:.5}; ratios {ratios:?}"
    );
    assert!(a < u && a < m, "uniform {u}, magnitude {m}, recovered {a}");
    assert!(
        ratios[0] > 0.6,
        "the low-rank layer is pruned deepest: {ratios:?}"
    );
}

/// Recovery of a recipe-pruned model re-chooses the zeros (OBS) exactly as the uniform
/// flags path does: the recipe's per-weight patterns give the same weights as one global
/// pattern, and differ from keeping the magnitude masks.
#[test]
fn recipe_recovery_rechooses_zeros_like_the_flags() {
    let dense = chain_model();
    let calib = low_rank_inputs(3, 16);
    let (outcome, by_weight) = prune_and_recover(
        &dense,
        r#"{"layers": "1x1", "sparsity": 0.5}"#,
        false,
        &calib,
    );
    let run = |reselect| {
        let mut g = outcome.graph.clone();
        let options = RecoverOptions {
            reselect,
            ..Default::default()
        };
        recover(
            &dense,
            &mut g,
            &Default::default(),
            &calib,
            &options,
            &|_, _| {},
        )
        .unwrap();
        g
    };
    let (global, masks_kept) = (run(Some(super::Granularity::Unstructured)), run(None));
    for w in ["a.w", "b.w", "c.w"] {
        let zero = |g: &OnnxGraph| -> Vec<bool> {
            g.consts[w]
                .as_f32()
                .unwrap()
                .iter()
                .map(|v| *v == 0.0)
                .collect()
        };
        assert_ne!(
            zero(&by_weight),
            zero(&masks_kept),
            "{w}: zeros not re-chosen"
        );
        // The same computation (up to the summation order of the threaded products).
        assert_eq!(zero(&by_weight), zero(&global), "{w}");
        let values = |g: &OnnxGraph| g.consts[w].as_f32().unwrap().to_vec();
        for (a, b) in values(&by_weight).iter().zip(&values(&global)) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{w}: {a} vs {b}");
        }
    }
}
