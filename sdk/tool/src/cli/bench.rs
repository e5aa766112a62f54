//! `prunus bench`: load time and latency of one model, in the `key=value` protocol of
//! peerbench's command-line engines (`median_ms=`, `min_ms=`, `load_ms=`, `times_ms=`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;

use super::tensor_io::{random_tensor, read_tensor, write_tensor};

/// Arguments of `prunus bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// A .prunus file, or an .onnx file (imported in memory first; only the load of the
    /// packed model is timed).
    model: PathBuf,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Untimed runs before timing (the first is reported as first_ms).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Minimum number of timed runs.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Keep running after --runs while under this many seconds (0: exactly --runs runs).
    #[arg(long, default_value_t = 0.0)]
    max_seconds: f64,
    /// Upper bound on timed runs when --max-seconds extends them.
    #[arg(long, default_value_t = 100_000)]
    max_runs: usize,
    /// Input tensor (.npy or raw little-endian f32); default a seeded N(0, 1) input.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Write the last output here (raw f32, or .npy).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Input shape for .onnx models with symbolic dimensions (N,C,H,W).
    #[arg(long, value_parser = super::parse_shape)]
    input_shape: Option<Vec<u32>>,
    /// Print a per-layer time breakdown (mean ms per node and per op kind).
    #[arg(long)]
    profile: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Runs `prunus bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let is_onnx = args
        .model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let packed = if is_onnx {
        let ir = super::import_onnx(&args.model, args.input_shape.clone())?;
        Some(prunus::AlignedBytes::new(&ir.to_bytes(Default::default())?))
    } else {
        None
    };
    let options = prunus::Options {
        threads: args.threads,
        ..Default::default()
    };
    let start = Instant::now();
    let model = match &packed {
        Some(bytes) => prunus::Model::from_bytes(bytes.as_bytes())?,
        None => prunus::Model::open(&args.model)?,
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
    for _ in 0..args.warmup {
        let t = Instant::now();
        session.run(&[&input])?;
        first.get_or_insert(t.elapsed());
    }
    let mut times = Vec::with_capacity(args.runs);
    let mut per_node = vec![Duration::ZERO; model.graph().nodes.len()];
    let bench_start = Instant::now();
    while times.len() < args.runs
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
        write_tensor(path, &shape, out, &[Path::new(&args.model)])?;
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
