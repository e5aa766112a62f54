//! `prunus import`: ONNX → .prunus.

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
}

/// Runs `prunus import`.
pub fn run(args: &ImportArgs) -> Result<()> {
    prunus_tool::atomic::ensure_not_input(&args.output, &[&args.input])?;
    let model = super::import_onnx(&args.input, args.input_shape.clone())?;
    let bytes = model.to_bytes(prunus_format::WriteOptions { f16: args.f16 })?;
    prunus_tool::atomic::write_atomic(&args.output, &bytes, &[&args.input])?;
    super::print_summary(&model.graph, bytes.len());
    println!("wrote:  {}", args.output.display());
    Ok(())
}
