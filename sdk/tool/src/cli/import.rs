//! `prunus import`: ONNX → .prunus. Conv and Gemm weights that already hold zeros (pruned
//! in training) are stored sparse where the cost model of `--target` predicts it is faster
//! ([`prunus_tool::sparsity`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Arguments of `prunus import`.
#[derive(Args)]
pub struct ImportArgs {
    /// The ONNX model.
    input: PathBuf,
    /// The .prunus file to write (never the input; written atomically).
    #[arg(short, long)]
    output: PathBuf,
    /// Input shape N,C,H,W: fixes a symbolic batch or dynamic H/W (e.g. 1,3,224,224).
    #[arg(long, value_parser = super::parse_shape)]
    input_shape: Option<Vec<u32>>,
    /// Store weights as f16 (half the file; widened to f32 when a session is created).
    #[arg(long)]
    f16: bool,
    /// Store every weight dense, even where zeros would run faster sparse.
    #[arg(long)]
    dense: bool,
    /// Instruction set whose sparse/dense cost model picks each layer's encoding:
    /// aarch64 | x86_64 (default: this machine's).
    #[arg(long)]
    target: Option<prunus_tool::sparsity::Target>,
}

/// Runs `prunus import`.
pub fn run(args: &ImportArgs) -> Result<()> {
    prunus_tool::atomic::ensure_not_input(&args.output, &[&args.input])?;
    let mut model = super::import_onnx(&args.input, args.input_shape.clone())?;
    if !args.dense {
        let target = args
            .target
            .unwrap_or_else(prunus_tool::sparsity::Target::host);
        let decisions = prunus_tool::sparsity::pack_sparse(&mut model, target);
        if decisions.iter().any(|d| d.chosen.is_some()) {
            println!("{}", prunus_tool::sparsity::summary(&decisions, target));
        }
    }
    let bytes = model.to_bytes(prunus_format::WriteOptions { f16: args.f16 })?;
    prunus_tool::atomic::write_atomic(&args.output, &bytes, &[&args.input])?;
    super::print_summary(&model.graph, bytes.len());
    println!("wrote:  {}", args.output.display());
    Ok(())
}
