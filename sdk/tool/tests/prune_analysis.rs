//! Sensitivity analysis, ratio allocation, recipes and the pruning report, on the fixture
//! models (tests/fixtures/generated; `bash tests/fixtures/setup_venv.sh` makes them;
//! missing fixtures fail, they do not skip).
//!
//! References are independent of the code under test: MACs are checked against the
//! imported model's counts (`stats::graph_stats`), sparsity against the zeros actually in
//! the pruned weights, report parameters against the weights of the written file.

mod common;

use std::path::Path;

use prunus_tool::prune::calibrate::Calibration;
use prunus_tool::prune::depgraph::DepGraph;
use prunus_tool::prune::evaluate::Evaluator;
use prunus_tool::prune::nonuniform::{Analysis, Progress, RecipeOutcome, prune_with_recipe};
use prunus_tool::prune::onnx_graph::{OnnxGraph, node_name};
use prunus_tool::prune::recipe::Recipe;
use prunus_tool::prune::sensitivity::{
    Sensitivity, SweepOptions, structured_sweep, unstructured_sweep,
};
use prunus_tool::prune::units::{
    Layer, MacModel, select_ratios, structured_layers, unstructured_layers,
};
use prunus_tool::prune::{Criterion, Granularity, Layers, criteria, structured};
use prunus_tool::stats::graph_stats;

use common::{fixture_graph, fixture_path, prunus, temp_dir};

/// `n` seeded N(0, 1)-ish samples (sum of uniforms) of the model's input shape.
fn samples(g: &OnnxGraph, n: usize, seed: u64) -> Calibration {
    let mut shape = g.shape(&g.inputs[0]).unwrap().to_vec();
    let per: usize = shape.iter().product();
    shape[0] = n;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let data = (0..n * per)
        .map(|_| ((0..4).map(|_| uniform()).sum::<f64>() - 2.0) as f32 * 1.73)
        .collect();
    Calibration::from_batch(&shape, data).unwrap()
}

fn quiet() -> Progress<'static> {
    Progress {
        step: &|_| {},
        trial: &|_, _| {},
    }
}

/// Checks a sweep: every layer at ratio 0 equals the dense model, and for most layers the
/// largest ratio deviates more than the smallest positive one.
fn check_monotone_ish(s: &Sensitivity, what: &str) {
    assert!(!s.layers.is_empty(), "{what}: no layers analysed");
    let mut grows = 0;
    for l in &s.layers {
        let zero = &l.points[0];
        assert_eq!(zero.ratio, 0.0);
        assert!(
            zero.kl < 1e-9 && zero.cosine > 1.0 - 1e-9 && zero.top1 == 1.0 && zero.removed == 0.0,
            "{what} {}: deviation at ratio 0: {zero:?}",
            l.name
        );
        let (small, large) = (&l.points[1], l.points.last().unwrap());
        assert!(large.removed > small.removed, "{what} {}", l.name);
        if large.kl > small.kl {
            grows += 1;
        }
    }
    println!(
        "{what}: {grows}/{} layers deviate more at the largest ratio",
        s.layers.len()
    );
    assert!(
        grows * 10 >= s.layers.len() * 8,
        "{what}: only {grows}/{} layers deviate more at the largest ratio",
        s.layers.len()
    );
}

#[test]
fn sensitivity_is_zero_at_ratio_zero_and_grows_with_the_ratio() {
    let g = fixture_graph("mobilenet_v2");
    let eval = Evaluator::new(&g, &samples(&g, 2, 1), 0).unwrap();
    let options = SweepOptions {
        ratios: vec![0.0, 0.2, 0.8],
        samples: 2,
    };
    let units = unstructured_layers(&g, Layers::Pointwise);
    let gran = vec![Granularity::Unstructured; units.len()];
    let analyse: Vec<bool> = (0..units.len()).map(|i| i % 2 == 0).collect();
    let s = unstructured_sweep(&g, &units, &gran, &analyse, &options, &eval, &|_, _| {}).unwrap();
    assert_eq!(s.layers.len(), analyse.iter().filter(|a| **a).count());
    for l in &s.layers {
        let n = units[l.index].2.data.len() as f64;
        assert_eq!(l.points[2].removed, (0.8 * n).round(), "{}", l.name);
    }
    check_monotone_ish(&s, "unstructured mobilenet_v2");

    let dep = DepGraph::build(&g).unwrap();
    let layers = structured_layers(&g, &dep);
    let scores = criteria::class_scores(&g, &dep, Criterion::L1, None).unwrap();
    let analyse = vec![true; layers.len()];
    let s = structured_sweep(
        &g,
        &dep,
        &layers,
        &scores,
        1,
        &analyse,
        &options,
        &eval,
        &|_, _| {},
    )
    .unwrap();
    assert_eq!(s.layers.len(), dep.groups.len());
    check_monotone_ish(&s, "channel mobilenet_v2");
}

#[test]
fn mac_model_matches_the_imported_pruned_model() {
    for name in [
        "mobilenet_v2",
        "shufflenet_v2_x1_0",
        "ghostnet_1_0",
        "squeezenet1_1",
    ] {
        let g = fixture_graph(name);
        let dep = DepGraph::build(&g).unwrap();
        let scores = criteria::class_scores(&g, &dep, Criterion::L2, None).unwrap();
        let macs = MacModel::new(&g).unwrap();
        let dense_ir = prunus_tool::onnx::import(&g.to_bytes(), &Default::default()).unwrap();
        assert_eq!(
            macs.macs(&dep, None),
            graph_stats(&dense_ir.graph).macs,
            "{name} dense"
        );
        let ratios: Vec<f64> = (0..dep.groups.len())
            .map(|i| (i % 7) as f64 / 10.0)
            .collect();
        let removed = select_ratios(&dep, &scores, &ratios, 4);
        let (pruned, _) = structured::apply(&g, &dep, &removed).unwrap();
        let ir = prunus_tool::onnx::import(&pruned.to_bytes(), &Default::default()).unwrap();
        assert_eq!(
            macs.macs(&dep, Some(&removed)),
            graph_stats(&ir.graph).macs,
            "{name} pruned"
        );
    }
}

fn zero_fraction(g: &OnnxGraph, weight: &str) -> f64 {
    let v = g.consts[weight].as_f32().unwrap();
    v.iter().filter(|x| **x == 0.0).count() as f64 / v.len() as f64
}

fn run_recipe(g: &OnnxGraph, json: &str, calib: Option<&Calibration>) -> RecipeOutcome {
    let recipe = Recipe::from_json(json).unwrap();
    prune_with_recipe(g, &recipe, calib, &Analysis::IfNeeded, &quiet()).unwrap()
}

#[test]
fn allocation_meets_the_target_and_is_not_uniform() {
    let g = fixture_graph("mobilenet_v2");
    let calib = samples(&g, 2, 2);
    let held_out = Evaluator::new(&g, &samples(&g, 4, 3), 0).unwrap();
    let sweep = r#""sensitivity": { "ratios": [0.25, 0.5, 0.75, 0.9], "samples": 2 }"#;

    let json = format!(r#"{{ "layers": "1x1", "target_sparsity": 0.6, {sweep} }}"#);
    let out = run_recipe(&g, &json, Some(&calib));
    let units = unstructured_layers(&g, Layers::Pointwise);
    let (mut zeros, mut total) = (0.0, 0.0);
    let mut ratios = Vec::new();
    for (_, _, t) in &units {
        let z = zero_fraction(&out.graph, &t.name);
        zeros += z * t.data.len() as f64;
        total += t.data.len() as f64;
        ratios.push(z);
    }
    let global = zeros / total;
    let spread =
        ratios.iter().cloned().fold(0.0, f64::max) - ratios.iter().cloned().fold(1.0, f64::min);
    let uniform = run_recipe(&g, r#"{ "layers": "1x1", "sparsity": 0.6 }"#, None);
    println!(
        "unstructured 60 %: global {global:.4}, per-layer spread {spread:.3}; held-out KL \
         allocated {:.4} vs uniform {:.4}",
        held_out.measure(&out.graph).unwrap().kl,
        held_out.measure(&uniform.graph).unwrap().kl
    );
    assert!((global - 0.6).abs() < 0.002, "global sparsity {global}");
    assert!(spread > 0.2, "ratios are nearly uniform: {ratios:?}");
    assert!(out.layers.iter().all(|l| l.source == "allocated"));

    let json =
        format!(r#"{{ "granularity": "channel", "target_macs": "1.5x", "round": 4, {sweep} }}"#);
    let out = run_recipe(&g, &json, Some(&calib));
    let dense_macs = graph_stats(
        &prunus_tool::onnx::import(&g.to_bytes(), &Default::default())
            .unwrap()
            .graph,
    )
    .macs;
    let ir = prunus_tool::onnx::import(&out.graph.to_bytes(), &Default::default()).unwrap();
    let kept = graph_stats(&ir.graph).macs as f64 / dense_macs as f64;
    let r: Vec<f64> = out.layers.iter().map(|l| l.ratio).collect();
    let spread = r.iter().cloned().fold(0.0, f64::max) - r.iter().cloned().fold(1.0, f64::min);
    println!(
        "channel 1.5x: kept MAC fraction {kept:.4} (target {:.4}), ratio spread {spread:.3}",
        1.0 / 1.5
    );
    assert!(
        kept <= 1.0 / 1.5 + 1e-9 && kept > 1.0 / 1.5 - 0.03,
        "kept {kept}"
    );
    assert!(spread > 0.2, "ratios are nearly uniform: {r:?}");
}

/// Every committed recipe parses and applies to its family's fixture: the pruned model
/// runs, skipped layers are untouched, rule ratios are applied.
#[test]
fn family_recipes_apply_to_their_models() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let families = [
        ("squeezenet1_1", "squeezenet1_1"),
        ("mobilenet_v1", "mobilenet_v1"),
        ("mobilenet_v2", "mobilenet_v2"),
        ("mobilenet_v3_small", "mobilenet_v3_small"),
        ("mobilenet_v3_large", "mobilenet_v3_large"),
        ("shufflenet_v1", "shufflenet_v1"),
        ("shufflenet_v2", "shufflenet_v2_x1_0"),
        ("ghostnet", "ghostnet_1_0"),
        ("xception", "xception"),
    ];
    for (recipe_name, model) in families {
        let path = dir.join(format!("{recipe_name}.json"));
        let json =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let recipe = Recipe::from_json(&json).unwrap_or_else(|e| panic!("{recipe_name}: {e}"));
        let g = fixture_graph(model);
        let out = prune_with_recipe(&g, &recipe, None, &Analysis::IfNeeded, &quiet())
            .unwrap_or_else(|e| panic!("{recipe_name}: {e}"));
        let sources: Vec<&str> = out.layers.iter().map(|l| l.source.as_str()).collect();
        assert!(
            sources.contains(&"rule") || sources.contains(&"skipped"),
            "{recipe_name}"
        );
        let input = &samples(&g, 1, 9).samples;
        let dense = prunus_tool::prune::evaluate::run_onnx(&g.to_bytes(), input).unwrap();
        let pruned = prunus_tool::prune::evaluate::run_onnx(&out.graph.to_bytes(), input).unwrap();
        assert_eq!(dense[0].len(), pruned[0].len(), "{recipe_name}");
        assert!(pruned[0].iter().all(|v| v.is_finite()), "{recipe_name}");
        if recipe.granularity == Granularity::Channel {
            let dep = DepGraph::build(&g).unwrap();
            let layers = structured_layers(&g, &dep);
            let settings = recipe.settings(&layers).unwrap();
            let channels = |x: &OnnxGraph, node: &str| {
                let n = x.nodes().iter().find(|n| node_name(n) == node).unwrap();
                x.shapes[&n.output[0]][1]
            };
            for ((layer, choice), s) in layers.iter().zip(&out.layers).zip(&settings) {
                let (before, after) =
                    (channels(&g, &layer.name), channels(&out.graph, &layer.name));
                let what = format!("{recipe_name} {}: {choice:?}", layer.name);
                if choice.source == "skipped" {
                    assert!(after == before && choice.ratio == 0.0, "{what}");
                    continue;
                }
                if choice.ratio > 0.0 {
                    assert!(after < before, "{what}: {before} -> {after} channels");
                }
                if layer.size >= 64 {
                    let requested = s.ratio.unwrap_or(recipe.sparsity);
                    let slack = (recipe.round as f64 / 2.0 + 2.0) / layer.size as f64;
                    assert!(
                        (choice.ratio - requested).abs() <= slack,
                        "{what}: asked {requested}"
                    );
                }
            }
            let mac = |x: &OnnxGraph| {
                MacModel::new(x)
                    .unwrap()
                    .macs(&DepGraph::build(x).unwrap(), None)
            };
            println!("{recipe_name}: MACs {} -> {}", mac(&g), mac(&out.graph));
            assert!(mac(&out.graph) < mac(&g), "{recipe_name}");
        } else {
            let units = unstructured_layers(&g, recipe.layers);
            let layers: Vec<Layer> = units.iter().map(|u| u.0.clone()).collect();
            let settings = recipe.settings(&layers).unwrap();
            for (((layer, _, t), choice), s) in units.iter().zip(&out.layers).zip(&settings) {
                let z = zero_fraction(&out.graph, &t.name);
                let expected = match (choice.source.as_str(), s.granularity) {
                    ("skipped", _) => 0.0,
                    (_, Granularity::NM(n, m)) => 1.0 - n as f64 / m as f64,
                    _ => s.ratio.unwrap_or(recipe.sparsity),
                };
                assert!(
                    (z - expected).abs() < 0.01,
                    "{recipe_name} {}: zeros {z}, expected {expected}",
                    layer.name
                );
            }
            println!(
                "{recipe_name}: {} weights pruned by rule or default",
                units.len()
            );
        }
    }
}

fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    data.iter()
        .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// `prunus prune --target-sparsity --sensitivity --report --eval` writes consistent files.
#[test]
fn cli_report_and_sensitivity_files_are_consistent() {
    let model = fixture_path("mobilenet_v2");
    let g = fixture_graph("mobilenet_v2");
    let dir = temp_dir("prune-analysis");
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (calib, eval) = (samples(&g, 2, 4), samples(&g, 3, 5));
    let mut shape = calib.sample_shape.clone();
    shape[0] = 2;
    write_npy(&dir.join("calib.npy"), &shape, &calib.samples.concat());
    shape[0] = 3;
    write_npy(&dir.join("eval.npy"), &shape, &eval.samples.concat());
    let (ok, text) = prunus(&[
        "prune",
        &model.to_string_lossy(),
        "-o",
        &p("u.prunus"),
        "--layers",
        "1x1",
        "--target-sparsity",
        "0.5",
        "--calib",
        &p("calib.npy"),
        "--sensitivity",
        &p("sens"),
        "--sensitivity-ratios",
        "0.3,0.6,0.9",
        "--report",
        &p("report.md"),
        "--eval",
        &p("eval.npy"),
        "--latency-runs",
        "2",
        "--dense",
    ]);
    assert!(ok, "{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let packed = std::fs::read(dir.join("u.prunus")).unwrap();
    let parsed = prunus_format::parse(&packed).unwrap();
    let numel: u64 = parsed.graph.weights.iter().map(|w| w.numel() as u64).sum();
    assert_eq!(report["pruned"]["params"].as_u64(), Some(numel));
    assert_eq!(
        report["pruned"]["file_bytes"].as_u64(),
        Some(packed.len() as u64)
    );
    let dense_ir =
        prunus_tool::onnx::import(&std::fs::read(&model).unwrap(), &Default::default()).unwrap();
    let dense = graph_stats(&dense_ir.graph);
    assert_eq!(report["dense"]["params"].as_u64(), Some(dense.params));
    assert_eq!(report["dense"]["macs"].as_u64(), Some(dense.macs));
    assert_eq!(report["pruned"]["macs"].as_u64(), Some(dense.macs));
    let pointwise: usize = unstructured_layers(&g, Layers::Pointwise)
        .iter()
        .map(|u| u.2.data.len())
        .sum();
    let removed = dense.params - report["pruned"]["nonzero_params"].as_u64().unwrap();
    assert!(
        (removed as f64 - 0.5 * pointwise as f64).abs() <= 1.0 + 0.001 * pointwise as f64,
        "removed {removed} of {pointwise}"
    );
    let agreement = &report["agreement"];
    assert_eq!(agreement["samples"].as_u64(), Some(3));
    let agree = agreement["top1_agree"].as_u64().unwrap();
    assert!(agree <= 3 && (agreement["top1"].as_f64().unwrap() - agree as f64 / 3.0).abs() < 1e-12);
    for key in ["cosine", "kl"] {
        assert!(agreement[key].as_f64().is_some(), "{key}");
    }
    for side in ["dense", "pruned"] {
        assert!(report[side]["latency_ms"].as_f64().unwrap() > 0.0);
    }
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        unstructured_layers(&g, Layers::Pointwise).len()
    );
    assert!(!report["weights"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("# Pruning report") && md.contains("top-1"),
        "{md}"
    );

    let sens: Sensitivity =
        serde_json::from_slice(&std::fs::read(dir.join("sens/sensitivity.json")).unwrap()).unwrap();
    assert_eq!(sens.layers.len(), layers.len());
    assert!(sens.layers.iter().all(|l| l.points.len() == 3));
    let svg = std::fs::read_to_string(dir.join("sens/sensitivity.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), sens.layers.len());
    assert!(
        std::fs::read_to_string(dir.join("sens/sensitivity.md"))
            .unwrap()
            .contains("KL@0.90")
    );

    // The saved analysis reproduces the allocation without calibration data.
    let sens_json = p("sens/sensitivity.json");
    let m = model.to_string_lossy().into_owned();
    let (ok, text) = prunus(&[
        "prune",
        &m,
        "-o",
        &p("again.prunus"),
        "--layers",
        "1x1",
        "--target-sparsity",
        "0.5",
        "--sensitivity-from",
        &sens_json,
        "--dense",
    ]);
    assert!(ok, "{text}");
    assert!(
        std::fs::read(dir.join("again.prunus")).unwrap() == packed,
        "different allocation"
    );
    let (ok, text) = prunus(&[
        "prune",
        &m,
        "-o",
        &p("x.prunus"),
        "--granularity",
        "channel",
        "--target-macs",
        "1.5x",
        "--sensitivity-from",
        &sens_json,
    ]);
    assert!(!ok && text.contains("unstructured pruning"), "{text}");

    let (ok, text) = prunus(&[
        "prune",
        &model.to_string_lossy(),
        "-o",
        &p("x.prunus"),
        "--target-sparsity",
        "0.5",
    ]);
    assert!(!ok && text.contains("--calib"), "{text}");
    std::fs::write(
        dir.join("bad.json"),
        r#"{ "sparsity": 0.3, "rules": [ { "glob": "zzz*", "skip": true } ] }"#,
    )
    .unwrap();
    let (ok, text) = prunus(&[
        "prune",
        &model.to_string_lossy(),
        "-o",
        &p("x.prunus"),
        "--recipe",
        &p("bad.json"),
    ]);
    assert!(
        !ok && text.contains("zzz*") && text.contains("matches no"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sweep_options_are_validated() {
    for ratios in [vec![], vec![0.5, 0.2], vec![0.2, 1.0]] {
        let o = SweepOptions { ratios, samples: 1 };
        assert!(o.validate().is_err(), "{:?}", o.ratios);
    }
    assert!(SweepOptions::default().validate().is_ok());
}

/// `prunus prune --recipe R --recover lstsq` re-chooses the zeros of every layer by least
/// squares (OBS) exactly as the flags path does for the same uniform pruning: the two
/// pruned models have the same zeros, which differ from the magnitude zeros.
#[test]
fn cli_recipe_recovery_rechooses_zeros_like_the_flags() {
    let model = fixture_path("mobilenet_v2");
    let g = fixture_graph("mobilenet_v2");
    let dir = temp_dir("prune-recipe-recover");
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let calib = samples(&g, 4, 6);
    let mut shape = calib.sample_shape.clone();
    shape[0] = 4;
    write_npy(&dir.join("calib.npy"), &shape, &calib.samples.concat());
    std::fs::write(dir.join("r.json"), r#"{"layers": "1x1", "sparsity": 0.5}"#).unwrap();
    let run = |out: &str, how: &[&str], recover: bool| {
        let (model, calib, onnx) = (model.to_string_lossy(), p("calib.npy"), p(out));
        let mut args = vec!["prune", &*model, "-o", "", "--onnx-out", &onnx, "--dense"];
        let prunus_out = p(&format!("{out}.prunus"));
        args[3] = &prunus_out;
        args.extend_from_slice(how);
        if recover {
            args.extend_from_slice(&["--recover", "lstsq", "--calib", &calib]);
        }
        let (ok, text) = prunus(&args);
        assert!(ok, "{text}");
        OnnxGraph::parse(&std::fs::read(dir.join(out)).unwrap()).unwrap()
    };
    let recipe = p("r.json");
    let by_recipe = run("recipe.onnx", &["--recipe", &recipe], true);
    let uniform = ["--sparsity", "0.5", "--layers", "1x1"];
    let by_flags = run("flags.onnx", &uniform, true);
    let magnitude = run("magnitude.onnx", &uniform, false);
    let zeros = |g: &OnnxGraph, name: &str| -> Vec<bool> {
        let w = g.consts[name].as_f32().unwrap();
        w.iter().map(|v| *v == 0.0).collect()
    };
    let units = prunus_tool::prune::units::unstructured_layers(&g, Layers::Pointwise);
    assert!(!units.is_empty());
    let mut rechosen = 0;
    for (_, _, t) in &units {
        assert_eq!(
            zeros(&by_recipe, &t.name),
            zeros(&by_flags, &t.name),
            "{}",
            t.name
        );
        rechosen += usize::from(zeros(&by_recipe, &t.name) != zeros(&magnitude, &t.name));
    }
    assert!(rechosen > 0, "no layer's zeros were re-chosen");
}
