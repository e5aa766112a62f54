//! `prunus zoo`: write a built-in family as a .prunus file.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use prunus_tool::zoo::{FAMILIES, ZooOptions};

/// Arguments of `prunus zoo`.
#[derive(Args)]
pub struct ZooArgs {
    /// Family name (see --list).
    name: Option<String>,
    /// The .prunus file to write.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Input height and width (default: the family's, 224 or 299).
    #[arg(long)]
    input_hw: Option<u32>,
    /// Weight seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Store weights as f16.
    #[arg(long)]
    f16: bool,
    /// List the families with their published parameters and MACs.
    #[arg(long)]
    list: bool,
}

/// Runs `prunus zoo`.
pub fn run(args: &ZooArgs) -> Result<()> {
    if args.list || args.name.is_none() {
        println!(
            "{:<20} {:>6} {:>12} {:>10}  source",
            "family", "input", "params", "MACs"
        );
        for f in FAMILIES {
            println!(
                "{:<20} {:>6} {:>12} {:>9.0}M  {}",
                f.name,
                f.input_hw,
                f.published_params,
                f.published_macs as f64 / 1e6,
                f.source
            );
        }
        return Ok(());
    }
    let (Some(name), Some(output)) = (&args.name, &args.output) else {
        bail!("usage: prunus zoo NAME -o FILE.prunus (or --list)");
    };
    let options = ZooOptions {
        input_hw: args.input_hw,
        seed: args.seed,
    };
    let model = prunus_tool::zoo::build(name, &options)?;
    let bytes = model.to_bytes(prunus_format::WriteOptions { f16: args.f16 })?;
    prunus_tool::atomic::write_atomic(output, &bytes, &[])?;
    super::print_summary(&model.graph, bytes.len());
    println!("wrote:  {}", output.display());
    Ok(())
}
