//! Helpers shared by the tool's integration tests: the generated fixtures
//! (`tests/fixtures/generated`, made by `bash tests/fixtures/setup_venv.sh`; missing ones
//! fail with that hint, they never skip), the venv's python, the `prunus` binary and
//! running a packed model. Each test binary uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use prunus_tool::prune::onnx_graph::OnnxGraph;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$PRUNUS_FIXTURES`, else `tests/fixtures/generated`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("PRUNUS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/fixtures/generated"))
}

/// A fixture file that must exist.
fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "missing fixture {}: run `bash tests/fixtures/setup_venv.sh` (or set PRUNUS_FIXTURES)",
        path.display()
    );
    path
}

/// The ONNX file of fixture `name`.
pub fn fixture_path(name: &str) -> PathBuf {
    existing(fixtures_dir().join(format!("{name}.onnx")))
}

/// The ONNX bytes of fixture `name`.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Fixture `name`, parsed for pruning.
pub fn fixture_graph(name: &str) -> OnnxGraph {
    OnnxGraph::parse(&fixture_bytes(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The input tensor the fixture's onnxruntime reference was computed on.
pub fn fixture_input(name: &str) -> Vec<f32> {
    let path = existing(fixtures_dir().join(format!("{name}.in0.npy")));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&raw[..]).expect("npy header");
    npy.into_vec().expect("f32 npy")
}

/// The venv's python (`$PRUNUS_PYTHON`, else `.venv/bin/python` at the root), which has
/// onnx and onnxruntime.
pub fn python() -> PathBuf {
    let python = std::env::var_os("PRUNUS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no python at {} (set PRUNUS_PYTHON or run `bash tests/fixtures/setup_venv.sh`)",
        python.display()
    );
    python
}

/// Runs the `prunus` binary: success and stdout + stderr.
pub fn prunus(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prunus"))
        .args(args)
        .output()
        .expect("run prunus");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A fresh directory under the system's temporary directory, unique per process and tag.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prunus-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Output 0 of a `.prunus` file's model on input `x`, default options.
pub fn run_prunus_bytes(bytes: &[u8], x: &[f32]) -> Vec<f32> {
    let bytes = prunus::AlignedBytes::new(bytes);
    let model = prunus::Model::from_bytes(bytes.as_bytes()).expect("open");
    let mut session = model.session(prunus::Options::default()).expect("session");
    session.run(&[x]).expect("run");
    session.output(0).expect("output").to_vec()
}

/// Cosine similarity, in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-300)
}
