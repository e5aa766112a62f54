//! `prunus bench` as the on-board benchmark (like ncnn's benchncnn): the zoo families
//! (deterministic non-zero weights, built on the board, no files needed) and/or given
//! model files, each packed into a file, memory-mapped and run; one table row per model,
//! thread count and kernel set, streamed to stdout as it is measured, then written as JSON
//! and Markdown on request (`board_report`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use prunus_tool::stats::graph_stats;
use prunus_tool::zoo::{FAMILIES, ZooOptions};
use serde::Serialize;

use super::affinity;
use super::bench::{BenchArgs, median, ms};
use super::board_report::{self, Report, Settings};
use super::sysinfo;
use super::tensor_io::random_tensor;

/// One measured row: a model at one thread count and kernel set.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Zoo family name or file stem.
    pub model: String,
    /// `zoo` or the file path.
    pub source: String,
    /// Input shape (N, C, H, W).
    pub input: Vec<usize>,
    /// Parameters (folded weights).
    pub params: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
    /// Worker threads asked for.
    pub threads: usize,
    /// Kernel set the session used.
    pub isa: String,
    /// Timed runs.
    pub runs: usize,
    /// Fastest run, ms.
    pub min_ms: f64,
    /// Median run, ms.
    pub median_ms: f64,
    /// Slowest run, ms.
    pub max_ms: f64,
    /// Mean run, ms.
    pub mean_ms: f64,
    /// Open (mmap + validation) and session creation, ms.
    pub load_ms: f64,
    /// Activation arena, KiB.
    pub arena_kb: u64,
    /// Peak resident set of the process while this row ran, KiB (VmHWM, reset per row
    /// where the kernel allows; otherwise the process peak so far).
    pub peak_rss_kb: Option<u64>,
    /// CPU temperature before and after the row, °C.
    pub temp_c: [Option<f64>; 2],
    /// Every timed run, ms.
    pub times_ms: Vec<f64>,
}

/// A model to measure.
enum Source {
    Zoo(&'static str),
    File(PathBuf),
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::Zoo(name) => name.to_string(),
            Source::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }
}

/// The zoo families `--zoo` names (`all` or a comma-separated list).
fn zoo_families(spec: &str) -> Result<Vec<&'static str>> {
    if spec.trim().eq_ignore_ascii_case("all") {
        return Ok(FAMILIES.iter().map(|f| f.name).collect());
    }
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|name| {
            FAMILIES
                .iter()
                .find(|f| f.name == name.trim())
                .map(|f| f.name)
                .with_context(|| {
                    let known: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
                    format!(
                        "unknown zoo family '{}' (known: all, {})",
                        name.trim(),
                        known.join(", ")
                    )
                })
        })
        .collect()
}

/// Writes `source` as a .prunus file in `dir` (zoo: built here; .onnx: imported) or
/// returns the given .prunus path.
fn prepare(source: &Source, args: &BenchArgs, dir: &Path) -> Result<PathBuf> {
    let ir = match source {
        Source::Zoo(name) => {
            let options = ZooOptions {
                input_hw: args.input_hw,
                seed: 0,
            };
            prunus_tool::zoo::build(name, &options)
                .with_context(|| format!("building zoo family {name}"))?
        }
        Source::File(path)
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("onnx")) =>
        {
            super::import_onnx(path, args.input_shape.clone())?
        }
        Source::File(path) => return Ok(path.clone()),
    };
    let bytes = ir.to_bytes(Default::default())?;
    let path = dir.join(format!("{}.prunus", source.name()));
    prunus_tool::atomic::write_atomic(&path, &bytes, &[])?;
    Ok(path)
}

/// Resets the kernel's peak-RSS mark (VmHWM) so the next reading is this row's peak.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Opens `path`, runs warmup + timed runs, and returns the row.
fn measure(
    source: &Source,
    path: &Path,
    threads: usize,
    isa: Option<prunus::Isa>,
    args: &BenchArgs,
    settings: &Settings,
) -> Result<Row> {
    let temp_start = sysinfo::temperature_c();
    let start = Instant::now();
    let model = prunus::Model::open(path)?;
    let mut session = model.session(prunus::Options {
        threads,
        isa,
        ..Default::default()
    })?;
    let load = start.elapsed();
    let info = model
        .inputs()
        .next()
        .cloned()
        .context("model has no input")?;
    let input = random_tensor(info.numel(), 0);
    for _ in 0..settings.warmup {
        session.run(&[&input])?;
    }
    let mut times = Vec::with_capacity(settings.runs);
    let bench_start = Instant::now();
    while times.len() < settings.runs
        || (bench_start.elapsed().as_secs_f64() < args.max_seconds && times.len() < args.max_runs)
    {
        let t = Instant::now();
        session.run(&[&input])?;
        times.push(ms(t.elapsed()));
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let stats = graph_stats(model.graph());
    Ok(Row {
        model: source.name(),
        source: match source {
            Source::Zoo(_) => "zoo".into(),
            Source::File(p) => p.display().to_string(),
        },
        input: info.shape.iter().map(|&d| d as usize).collect(),
        params: stats.params,
        macs: stats.macs,
        threads,
        isa: session.isa().name().to_string(),
        runs: times.len(),
        min_ms: sorted[0],
        median_ms: median(&sorted),
        max_ms: sorted[sorted.len() - 1],
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
        load_ms: ms(load),
        arena_kb: (session.report().arena_bytes / 1024) as u64,
        peak_rss_kb: super::peak_rss_kb(),
        temp_c: [temp_start, sysinfo::temperature_c()],
        times_ms: times,
    })
}

/// Runs the table benchmark.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.input.is_some() || args.output.is_some() || args.profile {
        bail!("--input, --output and --profile take exactly one model file (and no --zoo)");
    }
    let mut sources: Vec<Source> = args.models.iter().cloned().map(Source::File).collect();
    let zoo_spec = match (&args.zoo, args.models.is_empty()) {
        (Some(spec), _) => Some(spec.as_str()),
        (None, true) => Some("all"),
        (None, false) => None,
    };
    if let Some(spec) = zoo_spec {
        sources.extend(zoo_families(spec)?.into_iter().map(Source::Zoo));
    } else if args.input_hw.is_some() {
        bail!("--input-hw applies to zoo families; for .onnx files use --input-shape");
    }
    if sources.is_empty() {
        bail!("nothing to benchmark: --zoo names no family");
    }
    let isas: Vec<Option<prunus::Isa>> = if args.isa.is_empty() {
        vec![None]
    } else {
        args.isa
            .iter()
            .map(|name| prunus::Isa::parse(name).map(Some))
            .collect::<Result<_, _>>()?
    };

    let pinning = affinity::apply(args.affinity);
    let threads = if args.threads.is_empty() {
        vec![pinning.cpus.len().max(1)]
    } else {
        args.threads.clone()
    };
    if threads.contains(&0) {
        bail!("--threads must be at least 1");
    }
    let settings = Settings {
        runs: args.runs.unwrap_or(10),
        warmup: args.warmup.unwrap_or(2),
        max_seconds: args.max_seconds,
        cooldown_s: args.cooldown,
        threads: threads.clone(),
        affinity: pinning,
        peak_rss_per_row: reset_peak_rss(),
    };
    let mut report = Report::new(sysinfo::collect(), settings);
    print!("{}", report.header_markdown());

    let dir = std::env::temp_dir().join(format!("prunus-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run_all(args, &sources, &isas, &threads, &dir, &mut report);
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    print!("{}", report.footer_markdown());

    let inputs: Vec<&Path> = args.models.iter().map(PathBuf::as_path).collect();
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)? + "\n";
        prunus_tool::atomic::write_atomic(path, json.as_bytes(), &inputs)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.markdown {
        prunus_tool::atomic::write_atomic(path, report.markdown().as_bytes(), &inputs)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn run_all(
    args: &BenchArgs,
    sources: &[Source],
    isas: &[Option<prunus::Isa>],
    threads: &[usize],
    dir: &Path,
    report: &mut Report,
) -> Result<()> {
    let mut first = true;
    for source in sources {
        if !first && args.cooldown > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(args.cooldown));
        }
        first = false;
        if matches!(source, Source::Zoo(_)) {
            eprintln!("building {} ...", source.name());
        }
        let path = prepare(source, args, dir)?;
        for &isa in isas {
            for &n in threads {
                reset_peak_rss();
                let row = measure(source, &path, n, isa, args, &report.settings)?;
                println!("{}", board_report::row_markdown(&row));
                report.results.push(row);
            }
        }
        if !matches!(source, Source::File(p) if *p == path) {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}
