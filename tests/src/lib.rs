//! Shared helpers for the integration tests: the fixture manifest written by
//! `tests/fixtures/make_fixtures.py`, `.npy` loading, numeric comparison and temporary
//! files.
//!
//! The fixtures (ONNX models plus onnxruntime reference tensors) are generated, not
//! committed; see `tests/fixtures/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

/// Environment variable overriding the fixture directory.
pub const FIXTURES_ENV: &str = "PRUNUS_FIXTURES";

/// Manifest version this crate understands (`version` in `manifest.json`).
pub const MANIFEST_VERSION: u32 = 1;

/// How to create the fixtures; part of every "fixtures missing" error.
pub const GENERATE_HINT: &str = "generate them with `python3 tests/fixtures/make_fixtures.py` \
     (needs numpy, onnx and onnxruntime), or run `tests/fixtures/setup_venv.sh`, which creates \
     a venv with the pinned versions and generates them; see tests/fixtures/README.md";

/// The directory holding `manifest.json`: `$PRUNUS_FIXTURES` if set, else
/// `tests/fixtures/generated`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os(FIXTURES_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join("generated"),
    }
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's python, which has onnx and onnxruntime: `$PRUNUS_PYTHON`, else
/// `.venv/bin/python` at the repository root (made by `tests/fixtures/setup_venv.sh`).
/// Panics with that hint when it is missing: the tests that need it fail, never skip.
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

/// `manifest.json`: every fixture model with its reference tensors.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// onnxruntime version that computed the references.
    pub onnxruntime: String,
    /// The models, base families first, each followed by its variants.
    pub models: Vec<ModelEntry>,
    /// Directory the file names below are relative to (set by [`Manifest::load`]).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One fixture model.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelEntry {
    /// Model name (file stem).
    pub name: String,
    /// Architecture family it is built from (equal to `name` for base models).
    pub family: String,
    /// The ONNX file.
    pub file: String,
    /// ONNX opset.
    pub opset: u32,
    /// `base`, or what this variant changes.
    pub variant: String,
    /// Name of the graph input.
    pub input_name: String,
    /// Input shape with batch 1, in `input_layout` order.
    pub input_shape: Vec<usize>,
    /// `NCHW` or `NHWC` (the layout of the graph input and of the input `.npy` files).
    pub input_layout: String,
    /// Whether the ONNX input's batch dimension is symbolic (`N`).
    pub symbolic_batch: bool,
    /// Name of the graph output.
    pub output_name: String,
    /// Output shape.
    pub output_shape: Vec<usize>,
    /// Two input `.npy` files.
    pub inputs: Vec<String>,
    /// The onnxruntime outputs for `inputs`, one `.npy` each.
    pub outputs: Vec<String>,
    /// Intermediate ONNX tensor name → `.npy` file (onnxruntime, for input 0).
    pub intermediates: BTreeMap<String, String>,
    /// The keys of `intermediates` in depth (graph) order.
    pub intermediate_order: Vec<String>,
}

impl Manifest {
    /// Reads `dir/manifest.json`. A missing manifest is an error that says how to generate
    /// the fixtures.
    pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join("manifest.json");
        if !path.is_file() {
            bail!(
                "fixture manifest {} is missing: the ONNX fixtures are not generated; {GENERATE_HINT}",
                path.display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut manifest: Manifest =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        ensure!(
            manifest.version == MANIFEST_VERSION,
            "{} has version {}, this test expects {MANIFEST_VERSION}; regenerate the fixtures ({GENERATE_HINT})",
            path.display(),
            manifest.version
        );
        for model in &manifest.models {
            model.check()?;
        }
        manifest.dir = dir.to_path_buf();
        Ok(manifest)
    }

    /// The entry called `name`.
    pub fn model(&self, name: &str) -> anyhow::Result<&ModelEntry> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .with_context(|| format!("model '{name}' is not in the fixture manifest"))
    }

    /// Path of a file named in the manifest.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl ModelEntry {
    /// Checks the entry is internally consistent.
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.inputs.len() == 2 && self.outputs.len() == 2,
            "{}: expected two inputs and two outputs",
            self.name
        );
        ensure!(
            self.intermediate_order.len() == self.intermediates.len()
                && self
                    .intermediate_order
                    .iter()
                    .all(|t| self.intermediates.contains_key(t)),
            "{}: intermediate_order does not list the intermediates",
            self.name
        );
        ensure!(
            matches!(self.input_layout.as_str(), "NCHW" | "NHWC") && self.input_shape.len() == 4,
            "{}: unsupported input layout {} / shape {:?}",
            self.name,
            self.input_layout,
            self.input_shape
        );
        Ok(())
    }

    /// The input shape in NCHW order, whatever the layout of the graph input.
    pub fn input_shape_nchw(&self) -> Vec<usize> {
        let s = &self.input_shape;
        match self.input_layout.as_str() {
            "NHWC" => vec![s[0], s[3], s[1], s[2]],
            _ => s.clone(),
        }
    }
}

/// A dense `f32` array read from a `.npy` file (C order).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<f32>,
}

/// Reads a little-endian `f32` `.npy` file in C order.
pub fn read_npy(path: &Path) -> anyhow::Result<NpyArray> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        npyz::NpyFile::new(&bytes[..]).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        file.order() == npyz::Order::C,
        "{} is in Fortran order",
        path.display()
    );
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = file
        .into_vec()
        .with_context(|| format!("{} does not hold f32 values", path.display()))?;
    ensure!(
        data.len() == shape.iter().product::<usize>(),
        "{}: {} values for shape {shape:?}",
        path.display(),
        data.len()
    );
    Ok(NpyArray { shape, data })
}

/// Converts NHWC data of shape `[n, h, w, c]` to NCHW.
pub fn nhwc_to_nchw(data: &[f32], shape: &[usize]) -> Vec<f32> {
    let [n, h, w, c] = [shape[0], shape[1], shape[2], shape[3]];
    assert_eq!(
        data.len(),
        n * h * w * c,
        "NHWC data does not match {shape:?}"
    );
    let mut out = vec![0.0; data.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out[((b * c + ch) * h + y) * w + x] = data[((b * h + y) * w + x) * c + ch];
                }
            }
        }
    }
    out
}

/// How close a computed tensor is to its reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// `max |actual - reference|`.
    pub max_abs_diff: f64,
    /// `max |reference|`.
    pub max_abs_ref: f64,
    /// Cosine similarity of the two tensors as vectors (1 when both are zero).
    pub cosine: f64,
    /// Whether any value of `actual` is NaN or infinite.
    pub non_finite: bool,
}

impl Comparison {
    /// `max_abs_diff / max_abs_ref` (the diff itself when the reference is all zeros).
    pub fn relative_max_diff(&self) -> f64 {
        if self.max_abs_ref > 0.0 {
            self.max_abs_diff / self.max_abs_ref
        } else {
            self.max_abs_diff
        }
    }

    /// Whether `max|diff| <= rel_tol * max|ref|`, `cosine >= min_cosine` and all values are
    /// finite.
    pub fn within(&self, rel_tol: f64, min_cosine: f64) -> bool {
        !self.non_finite
            && self.max_abs_diff <= rel_tol * self.max_abs_ref
            && self.cosine >= min_cosine
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max|diff| {:.3e} (max|ref| {:.3e}, relative {:.2e}), cosine {:.8}{}",
            self.max_abs_diff,
            self.max_abs_ref,
            self.relative_max_diff(),
            self.cosine,
            if self.non_finite {
                ", NON-FINITE values"
            } else {
                ""
            }
        )
    }
}

/// Compares `actual` with `reference` element by element (in `f64`).
///
/// # Panics
/// If the lengths differ (check shapes first).
pub fn compare(reference: &[f32], actual: &[f32]) -> Comparison {
    assert_eq!(
        reference.len(),
        actual.len(),
        "compared tensors differ in length"
    );
    let (mut max_abs_diff, mut max_abs_ref) = (0.0f64, 0.0f64);
    let (mut dot, mut norm_ref, mut norm_act) = (0.0f64, 0.0f64, 0.0f64);
    let mut non_finite = false;
    for (&r, &a) in reference.iter().zip(actual) {
        let (r, a) = (r as f64, a as f64);
        non_finite |= !a.is_finite();
        max_abs_diff = max_abs_diff.max((a - r).abs());
        max_abs_ref = max_abs_ref.max(r.abs());
        dot += r * a;
        norm_ref += r * r;
        norm_act += a * a;
    }
    if non_finite {
        max_abs_diff = f64::INFINITY;
    }
    Comparison {
        max_abs_diff,
        max_abs_ref,
        cosine: cosine_from(dot, norm_ref, norm_act),
        non_finite,
    }
}

/// Cosine similarity of two equally long vectors (1 when both are zero, 0 when one is).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "cosine of vectors of different lengths");
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    cosine_from(dot, na, nb)
}

fn cosine_from(dot: f64, norm_a_sq: f64, norm_b_sq: f64) -> f64 {
    match (norm_a_sq > 0.0, norm_b_sq > 0.0) {
        (false, false) => 1.0,
        (true, true) => dot / (norm_a_sq.sqrt() * norm_b_sq.sqrt()),
        _ => 0.0,
    }
}

/// A file in the system temp directory with a unique name, removed on drop.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Writes `bytes` to a new file named `prunus-test-<pid>-<n>-<stem>.<extension>`.
    pub fn with_contents(stem: &str, extension: &str, bytes: &[u8]) -> anyhow::Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("prunus-test-{}-{n}-{stem}.{extension}", std::process::id());
        let file = TempFile {
            path: std::env::temp_dir().join(name),
        };
        std::fs::write(&file.path, bytes)
            .with_context(|| format!("writing {}", file.path.display()))?;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: a leftover file in the temp directory is harmless.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;

    #[test]
    fn comparison_of_identical_and_scaled_tensors() {
        let a = [1.0f32, -2.0, 3.0];
        let same = compare(&a, &a);
        assert_eq!(same.max_abs_diff, 0.0);
        assert_eq!(same.max_abs_ref, 3.0);
        assert!((same.cosine - 1.0).abs() < 1e-12);
        assert!(same.within(0.0, 1.0 - 1e-12));

        let doubled: Vec<f32> = a.iter().map(|x| 2.0 * x).collect();
        let c = compare(&a, &doubled);
        assert_eq!(c.max_abs_diff, 3.0);
        assert!((c.relative_max_diff() - 1.0).abs() < 1e-12);
        assert!((c.cosine - 1.0).abs() < 1e-12, "scaling keeps the cosine");
        assert!(!c.within(1e-4, 0.99999));

        let flipped: Vec<f32> = a.iter().map(|x| -x).collect();
        assert!((cosine(&a, &flipped) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn non_finite_values_never_pass() {
        let c = compare(&[1.0, 2.0], &[1.0, f32::NAN]);
        assert!(c.non_finite);
        assert!(!c.within(f64::INFINITY, -1.0));
    }

    #[test]
    fn nhwc_to_nchw_moves_channels_first() {
        // [1, 2, 2, 3]: value encodes (y, x, c) as 100y + 10x + c.
        let shape = [1, 2, 2, 3];
        let mut nhwc = Vec::new();
        for y in 0..2 {
            for x in 0..2 {
                for c in 0..3 {
                    nhwc.push((100 * y + 10 * x + c) as f32);
                }
            }
        }
        let nchw = nhwc_to_nchw(&nhwc, &shape);
        assert_eq!(nchw[0..4], [0.0, 10.0, 100.0, 110.0]);
        assert_eq!(nchw[8..12], [2.0, 12.0, 102.0, 112.0]);
    }

    #[test]
    fn npy_round_trip_through_temp_file() {
        let data = [0.5f32, -1.25, 3.0, 4.0, 5.5, -6.0];
        let mut bytes = Vec::new();
        {
            let mut writer = npyz::WriteOptions::new()
                .default_dtype()
                .shape(&[2, 3])
                .writer(&mut bytes)
                .begin_nd()
                .unwrap();
            writer.extend(data.iter().copied()).unwrap();
            writer.finish().unwrap();
        }
        let file = TempFile::with_contents("roundtrip", "npy", &bytes).unwrap();
        let path = file.path().to_path_buf();
        let array = read_npy(&path).unwrap();
        assert_eq!(array.shape, vec![2, 3]);
        assert_eq!(array.data, data);
        drop(file);
        assert!(!path.exists(), "TempFile removes its file on drop");
    }

    #[test]
    fn missing_manifest_explains_how_to_generate() {
        let dir = std::env::temp_dir().join(format!("prunus-no-fixtures-{}", std::process::id()));
        let err = Manifest::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("make_fixtures.py") && err.contains("missing"),
            "{err}"
        );
    }
}
