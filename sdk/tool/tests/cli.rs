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
        listing.contains("DwConv 3x3/2") && listing.contains("f32 panel8"),
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

/// The on-board benchmark: no model file (or `--zoo`) gives one table row per model and
/// thread count, and the same results as JSON and Markdown.
#[test]
fn board_bench_table_json_and_markdown() {
    let dir = TempDir::new("board");
    let model = dir.path("own.prunus");
    ok(&[
        "zoo",
        "shufflenet_v2_x1_0",
        "-o",
        &model,
        "--input-hw",
        "64",
    ]);
    let json = dir.path("r.json");
    let md = dir.path("r.md");
    let out = ok(&[
        "bench",
        &model,
        "--zoo",
        "squeezenet1_1,mobilenet_v2",
        "--input-hw",
        "64",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--threads",
        "1,2",
        "--affinity",
        "big",
        "--json",
        &json,
        "--markdown",
        &md,
    ]);
    assert!(out.contains("| model | input | threads |"), "{out}");
    for name in ["own", "squeezenet1_1", "mobilenet_v2"] {
        assert!(out.contains(&format!("| {name} | 64x64 | 1 |")), "{out}");
        assert!(out.contains(&format!("| {name} | 64x64 | 2 |")), "{out}");
    }
    // No cpufreq here (or one kind of core): `big` is honoured or explained, never fatal.
    assert!(out.contains("affinity big ("), "{out}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 6, "3 models x 2 thread counts");
    for r in results {
        assert_eq!(r["runs"], 2, "exactly --runs runs: {r}");
        assert_eq!(r["times_ms"].as_array().unwrap().len(), 2);
        let (min, med, max) = (
            r["min_ms"].as_f64().unwrap(),
            r["median_ms"].as_f64().unwrap(),
            r["max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < min && min <= med && med <= max, "{r}");
        assert!(r["load_ms"].as_f64().unwrap() >= 0.0, "{r}");
        assert_eq!(r["input"], serde_json::json!([1, 3, 64, 64]));
        assert!(r["macs"].as_u64().unwrap() > 0, "{r}");
    }
    assert_eq!(results[0]["model"], "own");
    assert_eq!(report["settings"]["threads"], serde_json::json!([1, 2]));
    assert!(report["system"]["arch"].is_string());

    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(markdown.starts_with("### prunus "), "{markdown}");
    assert_eq!(
        markdown.lines().filter(|l| l.starts_with("| ")).count(),
        7,
        "head + 6 rows:\n{markdown}"
    );
}

#[test]
fn board_bench_errors_and_thread_lists() {
    let dir = TempDir::new("board-errors");
    fails(
        &["bench", "--zoo", "resnet50"],
        "unknown zoo family 'resnet50'",
    );
    fails(
        &["bench", "--zoo", "squeezenet1_1", "--input", "x.npy"],
        "exactly one model",
    );
    fails(
        &["bench", "--zoo", "squeezenet1_1", "--threads", "0"],
        "at least 1",
    );
    let model = dir.path("m.prunus");
    ok(&["zoo", "squeezenet1_1", "-o", &model, "--input-hw", "64"]);
    let two = ok(&["bench", &model, "--threads", "1,2", "--runs", "1"]);
    assert!(
        two.contains("| m | 64x64 | 1 |") && two.contains("| m | 64x64 | 2 |"),
        "a thread list makes one model a table:\n{two}"
    );
    fails(&["bench", &model, "--isa", "sse9"], "sse9");
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
