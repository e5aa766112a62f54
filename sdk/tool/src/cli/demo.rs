//! `prunus demo`: the whole path on built-in defaults — build every zoo family, pack it
//! into a file, memory-map it, run it, and print one table.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use prunus_tool::stats::graph_stats;
use prunus_tool::zoo::{FAMILIES, ZooOptions};

use super::tensor_io::random_tensor;

/// Arguments of `prunus demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Families to run (default: all).
    #[arg(long, num_args = 1..)]
    families: Vec<String>,
    /// Timed runs per family (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Input height and width for every family (default: each family's own).
    #[arg(long)]
    input_hw: Option<u32>,
}

/// Runs `prunus demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("prunus-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = table(args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn table(args: &DemoArgs, dir: &std::path::Path) -> Result<()> {
    println!(
        "| {:<20} | {:>7} | {:>9} | {:>8} | {:>9} | {:>7} | {:>10} | {:>9} |",
        "family", "input", "params M", "MACs M", "file MB", "load ms", "latency ms", "arena MB"
    );
    println!(
        "|{:-<22}|{:->9}|{:->11}|{:->10}|{:->11}|{:->9}|{:->12}|{:->11}|",
        "", "", "", "", "", "", "", ""
    );
    for family in FAMILIES {
        if !args.families.is_empty() && !args.families.iter().any(|f| f == family.name) {
            continue;
        }
        let options = ZooOptions {
            input_hw: args.input_hw,
            seed: 0,
        };
        let ir = prunus_tool::zoo::build(family.name, &options)?;
        let stats = graph_stats(&ir.graph);
        let bytes = ir.to_bytes(Default::default())?;
        let path = dir.join(format!("{}.prunus", family.name));
        prunus_tool::atomic::write_atomic(&path, &bytes, &[])?;

        let t = Instant::now();
        let model = prunus::Model::open(&path)?;
        let mut session = model.session(prunus::Options {
            threads: args.threads,
            ..Default::default()
        })?;
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        let input_info = model.inputs().next().context("model has no input")?;
        let input = random_tensor(input_info.numel(), 1);
        let hw = input_info.shape[2];
        session.run(&[&input])?;
        let mut times: Vec<f64> = (0..args.runs.max(1))
            .map(|_| {
                let t = Instant::now();
                session
                    .run(&[&input])
                    .map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        println!(
            "| {:<20} | {:>7} | {:>9.3} | {:>8.1} | {:>9.2} | {:>7.3} | {:>10.2} | {:>9.2} |",
            family.name,
            format!("{hw}x{hw}"),
            stats.params as f64 / 1e6,
            stats.macs as f64 / 1e6,
            bytes.len() as f64 / 1e6,
            load_ms,
            times[times.len() / 2],
            session.report().arena_bytes as f64 / 1e6,
        );
    }
    println!(
        "(fp32, {} thread(s), ISA chosen per session; latency = median of {} runs)",
        args.threads,
        args.runs.max(1)
    );
    Ok(())
}
