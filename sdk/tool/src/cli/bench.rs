//! `prunus bench`: load time and latency.
//!
//! With exactly one model file (and no `--zoo`, `--json`, `--markdown`, `--isa`, nor a list
//! of thread counts) it prints the
//! `key=value` protocol of peerbench's command-line engines (`median_ms=`, `min_ms=`,
//! `load_ms=`, `times_ms=`). Otherwise — no model, several, `--zoo all|name,...` — it is the
//! on-board benchmark ([`super::board_bench`]): every model, a table of min / median / max ms,
//! load ms and peak RSS, optionally written as JSON and Markdown.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;

use super::affinity::Affinity;
use super::tensor_io::{random_tensor, read_tensor, write_tensor};

/// Arguments of `prunus bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// .prunus or .onnx files (an .onnx file is imported in memory first; only the load of
    /// the packed model is timed). None: the built-in zoo families (see --zoo).
    pub models: Vec<PathBuf>,
    /// Zoo families to run: `all` or a comma-separated list (see `prunus zoo --list`).
    /// The default when no model file is given is `all`.
    #[arg(long)]
    pub zoo: Option<String>,
    /// Worker threads; a list (`1,4`) gives the table, one row per count. Default 1 for one
    /// model, else the number of cores the bench runs on.
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Untimed runs before timing (the first is reported as first_ms). Default 5 for one
    /// model, 2 for the table.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Minimum number of timed runs. Default 30 for one model, 10 for the table.
    #[arg(long)]
    pub runs: Option<usize>,
    /// Keep running after --runs while under this many seconds (0: exactly --runs runs).
    #[arg(long, default_value_t = 0.0)]
    pub max_seconds: f64,
    /// Upper bound on timed runs when --max-seconds extends them.
    #[arg(long, default_value_t = 100_000)]
    pub max_runs: usize,
    /// Seconds to sleep before each model after the first (lets a passively cooled board
    /// cool down, like benchncnn's cooling_down).
    #[arg(long, default_value_t = 0.0)]
    pub cooldown: f64,
    /// Cores to run on: `big` or `little` (by cpufreq maximum frequency; pins the process),
    /// or `all` (no pinning).
    #[arg(long, value_enum, default_value_t = Affinity::All)]
    pub affinity: Affinity,
    /// Input height and width for the zoo families (default: each family's, 224 or 299).
    #[arg(long)]
    pub input_hw: Option<u32>,
    /// Kernel sets to compare in the table, e.g. `scalar,neon` (default: PRUNUS_ISA or the
    /// best this CPU has).
    #[arg(long, value_delimiter = ',')]
    pub isa: Vec<String>,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the results as a Markdown table (the format to paste into an issue).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Input tensor (.npy or raw little-endian f32); default a seeded N(0, 1) input.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write the last output here (raw f32, or .npy).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Input shape for .onnx models with symbolic dimensions (N,C,H,W).
    #[arg(long, value_parser = super::parse_shape)]
    pub input_shape: Option<Vec<u32>>,
    /// Print a per-layer time breakdown (mean ms per node and per op kind; one model).
    #[arg(long)]
    pub profile: bool,
}

impl BenchArgs {
    /// Whether this is the one-model `key=value` protocol rather than the table.
    fn is_single_model(&self) -> bool {
        self.models.len() == 1
            && self.threads.len() <= 1
            && self.zoo.is_none()
            && self.json.is_none()
            && self.markdown.is_none()
            && self.isa.is_empty()
    }
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median of sorted values.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Runs `prunus bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.runs == Some(0) {
        bail!("--runs must be at least 1");
    }
    if args.is_single_model() {
        single_model(args, &args.models[0])
    } else {
        super::board_bench::run(args)
    }
}

/// One model, `key=value` lines.
fn single_model(args: &BenchArgs, model_path: &Path) -> Result<()> {
    let runs = args.runs.unwrap_or(30);
    let warmup = args.warmup.unwrap_or(5);
    let threads = args.threads.first().copied().unwrap_or(1);
    if args.affinity != Affinity::All {
        let pinning = super::affinity::apply(args.affinity);
        println!(
            "affinity={} ({}, cpus {})",
            args.affinity.name(),
            pinning.note,
            super::affinity::format_cpus(&pinning.cpus)
        );
    }
    let is_onnx = model_path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let packed = if is_onnx {
        // The imported graph goes before the copy into aligned storage (peak memory).
        let bytes = super::import_onnx(model_path, args.input_shape.clone())?
            .to_bytes(Default::default())?;
        Some(prunus::AlignedBytes::new(&bytes))
    } else {
        None
    };
    let options = prunus::Options {
        threads,
        ..Default::default()
    };
    let start = Instant::now();
    let model = match &packed {
        Some(bytes) => prunus::Model::from_bytes(bytes.as_bytes())?,
        None => prunus::Model::open(model_path)?,
    };
    let mut session = model.session(options)?;
    let load = start.elapsed();

    let info = model.inputs().next().cloned();
    let Some(info) = info else {
        bail!("model has no input")
    };
    let input = match &args.input {
        Some(path) => read_tensor(path)?.data,
        None => random_tensor(info.numel(), 0),
    };
    if input.len() != info.numel() {
        bail!(
            "input has {} values, the model input {:?} needs {}",
            input.len(),
            info.shape,
            info.numel()
        );
    }

    let mut first = None;
    for _ in 0..warmup {
        let t = Instant::now();
        session.run(&[&input])?;
        first.get_or_insert(t.elapsed());
    }
    let mut times = Vec::with_capacity(runs);
    let mut per_node = vec![Duration::ZERO; model.graph().nodes.len()];
    let bench_start = Instant::now();
    while times.len() < runs
        || (bench_start.elapsed().as_secs_f64() < args.max_seconds && times.len() < args.max_runs)
    {
        let t = Instant::now();
        if args.profile {
            session.run_profiled(&[&input], |node, d| per_node[node] += d)?;
        } else {
            session.run(&[&input])?;
        }
        let elapsed = t.elapsed();
        first.get_or_insert(elapsed);
        times.push(ms(elapsed));
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);

    println!(
        "version=prunus {} ({})",
        env!("CARGO_PKG_VERSION"),
        session.isa().name()
    );
    println!("load_ms={:.3}", ms(load));
    println!("first_ms={:.3}", first.map(ms).unwrap_or_default());
    println!("median_ms={:.3}", median(&sorted));
    println!("min_ms={:.3}", sorted[0]);
    println!("max_ms={:.3}", sorted[sorted.len() - 1]);
    println!("runs={}", times.len());
    let list: Vec<String> = times.iter().map(|t| format!("{t:.3}")).collect();
    println!("times_ms={}", list.join(","));
    println!("arena_kb={}", session.report().arena_bytes / 1024);
    if let Some(rss) = super::peak_rss_kb() {
        println!("peak_rss_kb={rss}");
    }
    if args.profile {
        print_profile(model.graph(), &per_node, times.len());
    }
    if let Some(path) = &args.output {
        let out = session.output(0)?;
        let shape: Vec<u64> = model
            .outputs()
            .next()
            .map(|t| t.shape.iter().map(|&d| d as u64).collect())
            .unwrap_or_default();
        write_tensor(path, &shape, out, &[model_path])?;
    }
    Ok(())
}

fn print_profile(graph: &prunus_format::Graph, per_node: &[Duration], runs: usize) {
    let total: f64 = per_node.iter().map(|d| ms(*d)).sum::<f64>() / runs as f64;
    let mut by_kind: std::collections::BTreeMap<&str, f64> = Default::default();
    println!("# profile: mean ms per run, per node (total {total:.3} ms)");
    for (node, d) in graph.nodes.iter().zip(per_node) {
        let t = ms(*d) / runs as f64;
        *by_kind.entry(node.op.kind_name()).or_default() += t;
        println!(
            "#   {:<40} {:<18} {:>8.3} ms",
            node.name,
            node.op.kind_name(),
            t
        );
    }
    println!("# profile per op kind:");
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (kind, t) in kinds {
        println!(
            "#   {kind:<18} {t:>8.3} ms {:>5.1} %",
            100.0 * t / total.max(1e-9)
        );
    }
}
