//! The `prunus` binary end to end: zoo → inspect → run → bench, and bad input gives a clear
//! error and a non-zero exit, never a panic, never an overwritten input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn prunus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prunus"))
        .args(args)
        .output()
        .expect("run prunus")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let out = prunus(args);
    assert!(
        out.status.success(),
        "prunus {args:?} failed:\n{}",
        text(&out)
    );
    text(&out)
}

fn fails(args: &[&str], expect: &str) {
    let out = prunus(args);
    let t = text(&out);
    assert!(!out.status.success(), "prunus {args:?} should fail:\n{t}");
    assert!(!t.contains("panicked"), "prunus {args:?} panicked:\n{t}");
    assert!(
        t.contains(expect),
        "prunus {args:?}: expected '{expect}' in:\n{t}"
    );
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("prunus-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(output: &str, key: &str) -> f64 {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in:\n{output}"))
        .parse()
        .unwrap()
}

#[test]
fn zoo_inspect_run_bench() {
    let dir = TempDir::new("flow");
    let model = dir.path("m.prunus");
    let summary = ok(&["zoo", "mobilenet_v2", "-o", &model, "--input-hw", "64"]);
    assert!(
        summary.contains("params:") && summary.contains("MACs:"),
        "{summary}"
    );
    let listing = ok(&["inspect", &model]);
    assert!(
        listing.contains("DwConv 3x3/2") && listing.contains("Panel8"),
        "{listing}"
    );

    // A batch of 2 runs sample by sample and writes [2, 1000].
    let batch: Vec<f32> = (0..2 * 3 * 64 * 64)
        .map(|i| ((i % 251) as f32 / 125.0) - 1.0)
        .collect();
    let input = dir.path("x.f32");
    std::fs::write(
        &input,
        batch
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let out = dir.path("y.npy");
    let log = ok(&["run", &model, "--input", &input, "--output", &out]);
    assert!(
        log.contains("sample 1:") && log.contains("[2, 1000]"),
        "{log}"
    );
    let npy = std::fs::read(&out).unwrap();
    let npy = npyz::NpyFile::new(&npy[..]).expect("output is .npy");
    assert_eq!(npy.shape(), &[2, 1000]);
    let values: Vec<f32> = npy.into_vec().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    assert_ne!(
        values[..1000],
        values[1000..],
        "two samples give two outputs"
    );

    let raw_out = dir.path("b.f32");
    let first = dir.path("first.f32");
    std::fs::write(&first, &std::fs::read(&input).unwrap()[..3 * 64 * 64 * 4]).unwrap();
    let b = ok(&[
        "bench", &model, "--runs", "3", "--warmup", "1", "--input", &first, "--output", &raw_out,
    ]);
    assert!(
        key(&b, "median_ms") > 0.0 && key(&b, "load_ms") > 0.0,
        "{b}"
    );
    assert_eq!(
        key(&b, "runs"),
        3.0,
        "exactly --runs runs when --max-seconds is 0"
    );
    let times = b.lines().find_map(|l| l.strip_prefix("times_ms=")).unwrap();
    assert_eq!(times.split(',').count(), 3);
    assert_eq!(std::fs::metadata(&raw_out).unwrap().len(), 4000);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = TempDir::new("errors");
    fails(
        &["zoo", "resnet50", "-o", &dir.path("r.prunus")],
        "resnet50",
    );
    fails(&["inspect", &dir.path("missing.prunus")], "missing.prunus");
    let junk = dir.path("junk.prunus");
    std::fs::write(
        &junk,
        b"definitely not a model file, but long enough to hold a header",
    )
    .unwrap();
    fails(&["inspect", &junk], "not a Prunus model");
    fails(&["bench", &junk], "not a Prunus model");
    let model = dir.path("m.prunus");
    ok(&["zoo", "squeezenet1_1", "-o", &model, "--input-hw", "64"]);
    let wrong = dir.path("wrong.f32");
    std::fs::write(&wrong, [0u8; 12]).unwrap();
    fails(
        &[
            "run",
            &model,
            "--input",
            &wrong,
            "--output",
            &dir.path("o.npy"),
        ],
        "not a whole number of samples",
    );
    // The tool never overwrites its input.
    let before = std::fs::read(&model).unwrap();
    fails(
        &["run", &model, "--random", "--output", &model],
        "refusing to overwrite",
    );
    assert_eq!(std::fs::read(&model).unwrap(), before);
    fails(&["import", &junk, "-o", &junk], "refusing to overwrite");
    fails(
        &["import", &junk, "-o", &dir.path("j.prunus")],
        "junk.prunus",
    );
    assert!(
        !Path::new(&dir.path("j.prunus")).exists(),
        "no output written on failure"
    );
    fails(
        &[
            "import",
            &junk,
            "-o",
            &dir.path("k.prunus"),
            "--input-shape",
            "1,x,2",
        ],
        "bad dimension",
    );
}
