//! Sparse inference against onnxruntime: every fixture family (see
//! `tests/fixtures/README.md`) is pruned to 50 % and 90 % (unstructured magnitude, 1x1,
//! k×k and Gemm weights; what `prunus prune --onnx-out` writes), the zeroed weights are
//! exported as ONNX, imported with sparse packing (the cost model of this machine, as
//! `prunus import` does) and also with every candidate weight sparse, and run by Prunus.
//! `tests/fixtures/check_pruned.py`, with the venv's python (`PRUNUS_PYTHON`, default
//! `.venv/bin/python` at the repository root), runs each pruned ONNX in onnxruntime and
//! checks Prunus's output against it: cosine ≥ 0.99999. Missing fixtures or python fail.

use std::process::Command;

use prunus::{AlignedBytes, Model, Options};
use prunus_format::{Encoding, WriteOptions};
use prunus_integration_tests::{fixtures_dir, python, read_npy, repo_root};
use prunus_tool::prune::onnx_graph::OnnxGraph;
use prunus_tool::prune::{Granularity, Layers, unstructured_prune_onnx};
use prunus_tool::sparsity::{self, Decision, Target};
use prunus_tool::zoo::FAMILIES;

fn run(bytes: &[u8], x: &[f32]) -> Vec<f32> {
    let bytes = AlignedBytes::new(bytes);
    let model = Model::from_bytes(bytes.as_bytes()).expect("open");
    let mut session = model.session(Options::default()).expect("session");
    session.run(&[x]).expect("run");
    session.output(0).expect("output").to_vec()
}

fn sparse_count(model: &prunus_tool::IrModel) -> usize {
    model
        .graph
        .weights
        .iter()
        .filter(|w| matches!(w.encoding, Encoding::SparseBlocks { .. }))
        .count()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn pruned_families_run_sparse_like_onnxruntime() {
    let python = python();
    let fixtures = fixtures_dir();
    let dir = std::env::temp_dir().join(format!("prunus-sparse-ort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut names = Vec::new();
    for family in FAMILIES.iter().map(|f| f.name) {
        let onnx_path = fixtures.join(format!("{family}.onnx"));
        let bytes = std::fs::read(&onnx_path).unwrap_or_else(|e| {
            panic!(
                "missing fixture {} ({e}): run `bash tests/fixtures/setup_venv.sh`",
                onnx_path.display()
            )
        });
        let x = read_npy(&fixtures.join(format!("{family}.in0.npy")))
            .unwrap_or_else(|e| panic!("{e:#}"))
            .data;
        for percent in [50, 90] {
            let mut graph = OnnxGraph::parse(&bytes).expect("parse");
            unstructured_prune_onnx(
                &mut graph,
                Layers::All,
                Granularity::Unstructured,
                f64::from(percent) / 100.0,
                false,
            )
            .expect("prune");
            let pruned = graph.to_bytes();
            let mut chosen =
                prunus_tool::onnx::import(&pruned, &Default::default()).expect("import");
            sparsity::pack_sparse(&mut chosen, Target::host());
            let mut forced = chosen.clone();
            let all: Vec<Decision> = sparsity::plan(&forced, Target::host())
                .into_iter()
                .map(|d| Decision {
                    chosen: d.best_sparse.map(|(b, _, _)| b),
                    ..d
                })
                .collect();
            sparsity::apply(&mut forced, &all);
            assert!(sparse_count(&forced) > 0, "{family}: nothing sparse");
            for (suffix, model) in [("", &chosen), ("_all", &forced)] {
                let name = format!("{family}_s{percent}{suffix}");
                let packed = model.to_bytes(WriteOptions::default()).expect("pack");
                let out = run(&packed, &x);
                eprintln!(
                    "{name:32} {:3} sparse weights, {:>9} bytes",
                    sparse_count(model),
                    packed.len()
                );
                std::fs::write(dir.join(format!("{name}.onnx")), &pruned).expect("write");
                std::fs::write(dir.join(format!("{name}.input.f32")), f32_bytes(&x))
                    .expect("write");
                std::fs::write(dir.join(format!("{name}.prunus.f32")), f32_bytes(&out))
                    .expect("write");
                names.push(name);
            }
        }
    }
    let output = Command::new(&python)
        .arg(repo_root().join("tests/fixtures/check_pruned.py"))
        .arg(&dir)
        .args(&names)
        .args(["--min-cosine", "0.99999"])
        .output()
        .expect("running check_pruned.py");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&output.stderr));
    let ok_lines = report.lines().filter(|l| l.ends_with(" ok")).count();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "onnxruntime disagrees:\n{report}");
    assert_eq!(ok_lines, names.len(), "{report}");
}
