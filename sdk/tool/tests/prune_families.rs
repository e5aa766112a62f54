//! Structured pruning of the nine fixture families (tests/fixtures/generated, see its
//! README; `bash tests/fixtures/setup_venv.sh` makes them). Missing fixtures fail, they do
//! not skip.
//!
//! * `dead_channels_prune_exactly`: channels made dead in the dense model (filters, bias,
//!   BN gamma and beta zeroed for every producer of a whole dependency class) are pruned;
//!   the pruned model's output must equal the dense one's — through residuals, concat,
//!   shuffle and groups.
//! * `thirty_percent_loads_in_onnxruntime`: 30 % of the classes of every prunable group
//!   (L1) removed; the pruned ONNX is checked by `tests/fixtures/check_pruned.py` with the
//!   venv's python (`PRUNUS_PYTHON`, default `.venv/bin/python` at the repository root):
//!   onnx.checker passes, onnxruntime loads it, and its output agrees with Prunus's on it
//!   (cosine ≥ 0.99999).

mod common;

use std::collections::HashMap;

use prunus_tool::prune::depgraph::DepGraph;
use prunus_tool::prune::onnx_graph::{Const, OnnxGraph, op};
use prunus_tool::prune::{
    Criterion, StructuredOptions, calibrate, select, structured, structured_prune,
};
use prunus_tool::zoo::FAMILIES;

use common::{fixture_bytes, fixture_input, python, repo_root, temp_dir};

/// The nine family names (the fixtures are named after them).
fn families() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().map(|f| f.name)
}

fn run(onnx: &[u8], input: &[f32]) -> Vec<f32> {
    let packed = calibrate::pack(onnx).unwrap_or_else(|e| panic!("{e}"));
    let model = prunus::Model::from_bytes(packed.as_bytes()).unwrap();
    let mut session = model.session(Default::default()).unwrap();
    session.run(&[input]).unwrap();
    session.output(0).unwrap().to_vec()
}

/// Deterministic pseudo-random scores, so the selection is spread over each group.
fn scrambled_scores(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64)
        .collect()
}

fn zero_at(c: &mut Const, axis: usize, index: usize) {
    let dims = c.dims.clone();
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    if let prunus_tool::prune::onnx_graph::ConstData::F32(v) = &mut c.data {
        for o in 0..outer {
            let s = (o * dims[axis] + index) * inner;
            v[s..s + inner].iter_mut().for_each(|x| *x = 0.0);
        }
    }
}

/// Makes every channel of the removed classes output exactly zero.
fn kill(g: &mut OnnxGraph, dep: &DepGraph, removed: &[bool]) {
    let nodes = g.nodes().to_vec();
    for n in &nodes {
        let y = &n.output[0];
        let Some(&(_, _, cy)) = dep.index.get(y) else {
            continue;
        };
        match op(n) {
            "Conv" | "Gemm" => {
                let trans = op(n) == "Conv"
                    || n.attribute
                        .iter()
                        .any(|a| a.name.as_deref() == Some("transB") && a.i == Some(1));
                for o in (0..cy).filter(|&o| removed[dep.class_of(y, o).unwrap()]) {
                    let w = g.consts.get_mut(&n.input[1]).unwrap();
                    zero_at(w, if trans { 0 } else { 1 }, o);
                    if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
                        zero_at(g.consts.get_mut(b).unwrap(), 0, o);
                    }
                }
            }
            "BatchNormalization" => {
                for c in (0..cy).filter(|&c| removed[dep.class_of(y, c).unwrap()]) {
                    for p in [1, 2] {
                        zero_at(g.consts.get_mut(&n.input[p]).unwrap(), 0, c);
                    }
                }
            }
            _ => {}
        }
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |a, b| a.max(b.abs()))
}

#[test]
fn dead_channels_prune_exactly() {
    let mut failures = Vec::new();
    for name in families() {
        let (bytes, input) = (fixture_bytes(name), fixture_input(name));
        let mut g = OnnxGraph::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dep = DepGraph::build(&g).unwrap();
        let removed = select(&dep, &scrambled_scores(dep.classes.len()), 0.3, 1);
        kill(&mut g, &dep, &removed);
        let dense = run(&g.to_bytes(), &input);
        let (pruned, _) =
            structured::apply(&g, &dep, &removed).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = run(&pruned.to_bytes(), &input);
        let diff = dense
            .iter()
            .zip(&out)
            .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
        let count = removed.iter().filter(|&&r| r).count();
        let tensors_shrunk = dep
            .tensors
            .iter()
            .filter(|t| g.shapes[*t] != pruned.shapes[*t])
            .count();
        println!(
            "{name:22} groups {:4} classes {:6} removed {count:5} tensors shrunk {tensors_shrunk:4} max|diff| {diff:.3e} (max|ref| {:.3})",
            dep.groups.len(),
            dep.classes.iter().filter(|c| c.prunable()).count(),
            max_abs(&dense)
        );
        if count == 0 || dense.len() != out.len() || diff > 1e-4 * max_abs(&dense) {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "not exact: {failures:?}");
}

#[test]
fn thirty_percent_loads_in_onnxruntime() {
    let python = python();
    let dir = temp_dir("prune-families");
    let mut stats = HashMap::new();
    for name in families() {
        let (bytes, input) = (fixture_bytes(name), fixture_input(name));
        let g = OnnxGraph::parse(&bytes).unwrap();
        let options = StructuredOptions {
            sparsity: 0.3,
            criterion: Criterion::L1,
            round: 1,
        };
        let outcome =
            structured_prune(&g, &options, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let pruned = outcome.graph.to_bytes();
        let out = run(&pruned, &input);
        std::fs::write(dir.join(format!("{name}.onnx")), &pruned).unwrap();
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        std::fs::write(dir.join(format!("{name}.input.f32")), f32s(&input)).unwrap();
        std::fs::write(dir.join(format!("{name}.prunus.f32")), f32s(&out)).unwrap();
        let params = |g: &OnnxGraph| {
            g.consts
                .values()
                .map(|c| c.dims.iter().product::<usize>())
                .sum::<usize>()
        };
        stats.insert(name, (params(&g), params(&outcome.graph), outcome.counts));
        println!(
            "{name:22} params {:9} -> {:9} ({:.1} %), classes removed {} of {}",
            params(&g),
            params(&outcome.graph),
            100.0 * params(&outcome.graph) as f64 / params(&g) as f64,
            outcome.counts.2,
            outcome.counts.1
        );
        assert!(outcome.counts.2 > 0, "{name}: nothing pruned");
    }
    let script = repo_root().join("tests/fixtures/check_pruned.py");
    let result = std::process::Command::new(&python)
        .arg(&script)
        .arg(&dir)
        .args(families())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    println!("{}", String::from_utf8_lossy(&result.stdout));
    eprintln!("{}", String::from_utf8_lossy(&result.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        result.status.success(),
        "check_pruned.py failed (see above)"
    );
}
