//! `prunus`: import ONNX models, inspect, run and benchmark Prunus model files.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Prunus: smaller, faster CNNs on ARM boards.
#[derive(Parser)]
#[command(name = "prunus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import an ONNX model: fold BatchNorm, fuse activations, pack into a .prunus file.
    Import(cli::import::ImportArgs),
    /// Show a model's graph: per-layer shapes, parameters, MACs and weight encodings.
    Inspect {
        /// The .prunus file.
        file: PathBuf,
    },
    /// Run a model on an input (.npy, N x C x H x W) or a random input; write the outputs.
    Run(cli::run::RunArgs),
    /// Measure load time and latency (peerbench's command-line engine protocol).
    Bench(cli::bench::BenchArgs),
    /// Write a built-in zoo model (deterministic random weights), or list the families.
    Zoo(cli::zoo::ZooArgs),
    /// Build every zoo family, pack, memory-map, run, and print a table.
    Demo(cli::demo::DemoArgs),
    /// Prune a model: channels (structured, from ONNX) or weights/blocks/N:M (dense zeros).
    Prune(cli::prune::PruneArgs),
    /// Measure the dense/sparse kernel cost constants of the pack-time cost model.
    #[command(hide = true)]
    SparseCosts(cli::sparse_costs::SparseCostsArgs),
}

fn main() -> ExitCode {
    cli::sysinfo::release_large_buffers_on_free();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Import(args) => cli::import::run(&args),
        Command::Inspect { file } => cli::inspect::run(&file),
        Command::Run(args) => cli::run::run(&args),
        Command::Bench(args) => cli::bench::run(&args),
        Command::Zoo(args) => cli::zoo::run(&args),
        Command::Demo(args) => cli::demo::run(&args),
        Command::Prune(args) => cli::prune::run(&args),
        Command::SparseCosts(args) => cli::sparse_costs::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
