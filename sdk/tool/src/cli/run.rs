//! `prunus run`: run a model on a batch, sample by sample, and write the outputs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::tensor_io::{random_tensor, read_tensor, write_tensor};

/// Arguments of `prunus run`.
#[derive(Args)]
pub struct RunArgs {
    /// The .prunus file.
    model: PathBuf,
    /// Input: .npy of shape N x C x H x W (or C x H x W), or raw little-endian f32 holding
    /// N whole samples.
    #[arg(long, conflicts_with = "random", required_unless_present = "random")]
    input: Option<PathBuf>,
    /// Use a seeded N(0, 1) input instead of a file.
    #[arg(long)]
    random: bool,
    /// Seed of --random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file (.npy with shape N x ..., else raw f32). With several model outputs,
    /// output k > 0 goes to NAME_k.EXT.
    #[arg(short, long)]
    output: PathBuf,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn output_path(base: &Path, k: usize) -> PathBuf {
    if k == 0 {
        return base.to_path_buf();
    }
    let stem = base.file_stem().unwrap_or_default().to_string_lossy();
    let name = match base.extension() {
        Some(ext) => format!("{stem}_{k}.{}", ext.to_string_lossy()),
        None => format!("{stem}_{k}"),
    };
    base.with_file_name(name)
}

fn top5(values: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(5);
    idx
}

/// Runs `prunus run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let mut inputs: Vec<&Path> = vec![&args.model];
    inputs.extend(args.input.as_deref());
    prunus_tool::atomic::ensure_not_input(&args.output, &inputs)?;
    let model = prunus::Model::open(&args.model)?;
    let input_info = model.inputs().next().context("model has no input")?.clone();
    if model.graph().inputs.len() != 1 {
        bail!(
            "prunus run feeds models with one input; this one has {}",
            model.graph().inputs.len()
        );
    }
    let sample_len = input_info.numel();
    let data = match &args.input {
        Some(path) => {
            let t = read_tensor(path)?;
            if let Some(shape) = &t.shape {
                let chw: Vec<u64> = input_info.shape[1..].iter().map(|&d| d as u64).collect();
                let tail = &shape[shape.len().saturating_sub(3)..];
                if shape.len() < 3 || tail != chw.as_slice() || shape.len() > 4 {
                    bail!(
                        "{}: shape {shape:?} does not match the model input {:?} (N x C x H x W expected)",
                        path.display(),
                        input_info.shape
                    );
                }
            }
            t.data
        }
        None => random_tensor(sample_len, args.seed),
    };
    if data.is_empty() || data.len() % sample_len != 0 {
        bail!(
            "input has {} values, not a whole number of samples of {sample_len} ({:?})",
            data.len(),
            input_info.shape
        );
    }
    let options = prunus::Options {
        threads: args.threads,
        ..Default::default()
    };
    let mut session = model.session(options)?;
    let n_out = model.graph().outputs.len();
    let mut outputs: Vec<Vec<f32>> = vec![Vec::new(); n_out];
    for (i, sample) in data.chunks_exact(sample_len).enumerate() {
        session.run(&[sample])?;
        for (k, out) in outputs.iter_mut().enumerate() {
            out.extend_from_slice(session.output(k)?);
        }
        println!(
            "sample {i}: top-5 of output 0: {:?}",
            top5(session.output(0)?)
        );
    }
    let n = (data.len() / sample_len) as u64;
    for (k, (out, info)) in outputs.iter().zip(model.outputs()).enumerate() {
        let mut shape = vec![n];
        shape.extend(info.shape.iter().skip(1).map(|&d| d as u64));
        let path = output_path(&args.output, k);
        write_tensor(&path, &shape, out, &inputs)?;
        println!("wrote {} {:?}", path.display(), shape);
    }
    Ok(())
}
