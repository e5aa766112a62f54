//! `prunus sparse-costs` (hidden): measures the dense and sparse kernels on a grid of
//! one-node models and prints the cost constants of `prunus_tool::sparsity::costs` as
//! Rust source, with the fit's error per grid point.
//!
//! On the host it times sessions in this process (one thread). With `--measure-cmd CMD`
//! it writes every grid model to a file and runs `CMD FILE` through `sh -c`, reading the
//! first number after `=` on its output: e.g. aarch64 instruction counts with
//! `--measure-cmd 'toolchains/insn-per-inference.sh target/aarch64-unknown-linux-gnu/release/prunus'`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use prunus_tool::sparsity::measure::{self, Sample};
use prunus_tool::sparsity::{MARGIN, Target};

/// Arguments of `prunus sparse-costs`.
#[derive(Args)]
pub struct SparseCostsArgs {
    /// Whose constants are fitted (names the printed const and starts from its constants
    /// for anything the grid does not cover); default: this machine's.
    #[arg(long)]
    target: Option<Target>,
    /// External measure: `CMD FILE` is run for every grid model (through `sh -c`); the first
    /// number after `=` it prints is the cost. Default: time sessions here (ns).
    #[arg(long)]
    measure_cmd: Option<String>,
    /// Directory for the grid models of --measure-cmd (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Host timing: minimum timed runs per model.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Host timing: minimum seconds per model.
    #[arg(long, default_value_t = 0.05)]
    seconds: f64,
}

fn external(cmd: &str, file: &std::path::Path) -> Result<f64> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} '{}'", file.display()))
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split('=')
        .skip(1)
        .find_map(|rest| {
            let number: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-')
                .collect();
            number.parse::<f64>().ok()
        })
        .with_context(|| format!("no number after '=' in the output of {cmd}: {text}"))
}

/// Runs `prunus sparse-costs`.
pub fn run(args: &SparseCostsArgs) -> Result<()> {
    let target = args.target.unwrap_or_else(Target::host);
    let points = measure::grid()?;
    let dir = match (&args.measure_cmd, &args.dir) {
        (Some(_), Some(d)) => Some(d.clone()),
        (Some(_), None) => {
            Some(std::env::temp_dir().join(format!("prunus-sparse-costs-{}", std::process::id())))
        }
        (None, _) => None,
    };
    if let Some(d) = &dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut samples = Vec::with_capacity(points.len());
    for (i, mut point) in points.into_iter().enumerate() {
        let cost = match (&args.measure_cmd, &dir) {
            (Some(cmd), Some(d)) => {
                let file = d.join(format!("grid{i:03}.prunus"));
                std::fs::write(&file, &point.bytes)
                    .with_context(|| format!("writing {}", file.display()))?;
                external(cmd, &file)?
            }
            _ => measure::time_ns(&point.bytes, args.runs, args.seconds)?,
        };
        point.bytes = Vec::new();
        eprint!("\rmeasured {} models", i + 1);
        samples.push(Sample { point, cost });
    }
    eprintln!();
    let base = target.costs();
    let fitted = measure::fit(&samples, base);
    println!(
        "{:<5} {:>5} {:>5} {:>6} {:>5} {:>7} {:>14} {:>14} {:>7}",
        "op", "rows", "cols", "pixels", "block", "density", "measured", "predicted", "error"
    );
    for s in &samples {
        let p = &s.point;
        let predicted = measure::predict(&fitted, p);
        println!(
            "{:<5} {:>5} {:>5} {:>6} {:>5} {:>7.2} {:>14.0} {:>14.0} {:>6.1}%",
            p.work.op.name(),
            p.work.rows,
            p.work.cols,
            p.work.pixels,
            p.block.map_or("dense".to_string(), |b| b.to_string()),
            p.density,
            s.cost,
            predicted,
            100.0 * (predicted - s.cost) / s.cost.max(1e-12)
        );
    }
    let source = match &args.measure_cmd {
        Some(_) => format!(
            "prunus sparse-costs --measure-cmd ({} grid models)",
            samples.len()
        ),
        None => format!(
            "prunus sparse-costs on {} ({} grid models, 1 thread)",
            std::env::consts::ARCH,
            samples.len()
        ),
    };
    let name = match target {
        Target::X86_64 => "X86_64",
        Target::Aarch64 => "AARCH64",
    };
    println!();
    println!("// sparse is chosen when predicted >= {MARGIN}x faster than dense");
    print!("{}", measure::rust_source(name, &fitted, &source));
    Ok(())
}
