//! `prunus prune`: structured (channel) or unstructured (weight, block, N:M) pruning of an
//! ONNX model, or unstructured pruning of a `.prunus` file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prunus_tool::atomic::{ensure_not_input, write_atomic};
use prunus_tool::prune::calib_data::{self, Preprocess};
use prunus_tool::prune::calibrate::activation_means;
use prunus_tool::prune::channel_select::reconstruction_scores;
use prunus_tool::prune::depgraph::DepGraph;
use prunus_tool::prune::onnx_graph::OnnxGraph;
use prunus_tool::prune::reconstruct::{RecoverOptions, Recovery, recover, refresh_masks};
use prunus_tool::prune::{
    Criterion, Granularity, Layers, StructuredOptions, export, prunus_file, structured_prune,
    unstructured_prune_onnx,
};
use prunus_tool::stats::graph_stats;

use super::prune_analysis::{AnalysisArgs, Flags};

/// Arguments of `prunus prune`.
#[derive(Args)]
#[command(after_help = "\
Unstructured, block and N:M pruning keep every shape: each pruned 1x1, kxk and Gemm weight \
is stored in the blocked sparse encoding where the cost model of --target predicts it runs \
faster than dense (first conv and depthwise stay dense), else as dense zeros (--dense: always). \
Channel pruning physically removes channels, following every coupling (residual Add, SE Mul, \
Concat, Split/Slice, channel shuffle, grouped/depthwise convs, BatchNorm, Flatten->Gemm); it \
needs the ONNX model with its BatchNormalization nodes. The first convolution is never pruned.

Examples:
  prunus prune mnv2.onnx -o mnv2-c30.prunus --granularity channel --sparsity 0.3 --round 8 --onnx-out mnv2-c30.onnx
  prunus prune mnv2.onnx -o mnv2-u70.prunus --sparsity 0.7 --layers 1x1 --masks masks.json
  prunus prune mnv2.prunus -o mnv2-24.prunus --granularity 2:4
  prunus prune mnv2.onnx -o mnv2-1.5x.prunus --granularity channel --target-macs 1.5x --round 8 \
    --calib calib.npy --sensitivity sens/ --report report.md --eval eval.npy
  prunus prune mnv2.onnx -o mnv2-r.prunus --recipe sdk/tool/recipes/mobilenet_v2.json
  prunus prune mnv2.onnx -o mnv2-u50.prunus --sparsity 0.5 --layers 1x1 --global \
    --recover lstsq --calib crops_u8_nhwc.npy --calib-preprocess imagenet

--recover lstsq refits, layer by layer on the calibration data, the weights of every pruned \
layer (unstructured: zeros re-chosen OBS-style, same count and pattern) or every consumer of \
pruned channels (channel) so it reproduces the dense layer's pre-BatchNorm output, then \
matches the BatchNorm statistics to the dense model's. With --target-sparsity, every \
sensitivity trial is recovered the same way (fit on the calibration samples the trial is not \
measured on), so the per-layer ratios are allocated for the recovered network.

Recipes, targets, the sensitivity analysis and the report: sdk/tool/recipes/README.md.")]
pub struct PruneArgs {
    /// The model: ONNX (any granularity) or .prunus (unstructured/block/N:M only).
    input: PathBuf,
    /// The .prunus file to write (never the input; written atomically).
    #[arg(short, long)]
    output: PathBuf,
    /// Also write the pruned model as ONNX (ONNX input only).
    #[arg(long)]
    onnx_out: Option<PathBuf>,
    /// Write the masks as JSON, keyed by the original weight names.
    #[arg(long)]
    masks: Option<PathBuf>,
    /// Fraction removed: of the weights / blocks of every layer, or of the channels of every
    /// coupled group (channel granularity).
    #[arg(long, conflicts_with = "channels")]
    sparsity: Option<f64>,
    /// Channel granularity: fraction of channels to keep in every group (a width
    /// multiplier; 0.7 is --sparsity 0.3).
    #[arg(long)]
    channels: Option<f64>,
    /// unstructured | block2 | block4 | N:M (e.g. 2:4) | channel. `--block 1|2|4` is
    /// unstructured | block2 | block4.
    #[arg(long, alias = "block", default_value = "unstructured", value_parser = parse_granularity)]
    granularity: Granularity,
    /// Channel importance: l1 | l2 | bn | fpgm | activation | reconstruction (the last two
    /// need --calib; reconstruction keeps the channels the next layer needs most to
    /// reproduce its dense output). Unstructured pruning always uses magnitude.
    #[arg(long, default_value = "l1", value_parser = prunus_tool::prune::recipe::parse_criterion)]
    criterion: Criterion,
    /// Weights pruned by unstructured/block/N:M: 1x1 (pointwise convs) or all (convs but
    /// depthwise ones, and Gemm).
    #[arg(long, default_value = "all", value_parser = parse_layers)]
    layers: Layers,
    /// One threshold over all layers instead of the same ratio in every layer.
    #[arg(long)]
    global: bool,
    /// Calibration data for --criterion activation and --recover: .npy, N x C x H x W float32
    /// (preprocessed) or uint8 N x H x W x C images with --calib-preprocess.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Channel granularity: kept channels per group rounded to a multiple of this (SIMD).
    #[arg(long, default_value_t = 1)]
    round: usize,
    /// Instruction set whose sparse/dense cost model picks each layer's encoding:
    /// aarch64 | x86_64 (default: this machine's).
    #[arg(long)]
    target: Option<prunus_tool::sparsity::Target>,
    /// Store every weight dense (pruned weights as zeros), whatever the cost model says.
    #[arg(long)]
    dense: bool,
    /// One-shot recovery on --calib data (ONNX input): none | bias (bias correction) | bn
    /// (re-estimate BatchNorm statistics) | lstsq (least-squares refit of the pruned layers,
    /// then BatchNorm statistics matched to the dense model's).
    #[arg(long, default_value = "none", value_parser = parse_recovery)]
    recover: Recovery,
    /// Preprocessing of uint8 N x H x W x C --calib images: imagenet, or e.g.
    /// scale=255,mean=0.5:0.5:0.5,std=0.5:0.5:0.5[,bgr] (float32 NCHW .npy is used as is).
    #[arg(long, value_parser = parse_preprocess)]
    calib_preprocess: Option<Preprocess>,
    /// Calibration samples used by --recover (the first ones of --calib).
    #[arg(long, default_value_t = 128)]
    recover_samples: usize,
    /// --recover lstsq: ridge relative to each layer's mean squared input, used when
    /// --recover-held-out is 0.
    #[arg(long, default_value_t = 1e-3)]
    recover_ridge: f64,
    /// --recover lstsq: the last 1/N of the calibration samples are held out to choose each
    /// layer's ridge (least error on them of a fit on the others); 0 uses --recover-ridge.
    #[arg(long, default_value_t = 0)]
    recover_held_out: usize,
    #[command(flatten)]
    analysis: AnalysisArgs,
}

fn parse_preprocess(s: &str) -> Result<Preprocess, String> {
    Preprocess::parse(s).map_err(|e| e.to_string())
}

fn parse_recovery(s: &str) -> Result<Recovery, String> {
    match s {
        "none" => Ok(Recovery::None),
        "bias" => Ok(Recovery::Bias),
        "bn" => Ok(Recovery::Bn),
        "lstsq" => Ok(Recovery::Lstsq),
        _ => Err(format!("unknown recovery '{s}' (none, bias, bn, lstsq)")),
    }
}

/// Runs `--recover` on the pruned graph (`kept`: kept channels of pruned tensors;
/// `reselect`: the pattern least squares may re-choose the zeros with, `by_weight` that
/// pattern per weight name when layers differ).
fn recover_graph(
    args: &PruneArgs,
    dense: &OnnxGraph,
    mut pruned: OnnxGraph,
    kept: &HashMap<String, Vec<usize>>,
    reselect: Option<Granularity>,
    by_weight: HashMap<String, Granularity>,
) -> Result<OnnxGraph> {
    if args.recover == Recovery::None {
        return Ok(pruned);
    }
    let path = args
        .calib
        .as_ref()
        .context("--recover needs --calib X.npy")?;
    let calib = calib_data::read(path, args.calib_preprocess.as_ref())?;
    let options = RecoverOptions {
        recovery: args.recover,
        samples: args.recover_samples,
        reselect,
        reselect_by_weight: by_weight,
        ridge: args.recover_ridge,
        held_out_every: args.recover_held_out,
        ..Default::default()
    };
    let bar = ProgressBar::new(1).with_style(
        ProgressStyle::with_template("recovering {bar:30} {pos}/{len} runs {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = recover(
        dense,
        &mut pruned,
        kept,
        &calib,
        &options,
        &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    println!(
        "recovered: {} layers, {} refit ({} rows), {} BatchNorms updated, {} biases corrected",
        report.layers,
        report.refit_layers,
        report.refit_rows,
        report.bn_updated,
        report.bias_corrected
    );
    Ok(pruned)
}

/// Marks the weights of `model` sparse where `args.target`'s cost model says so.
fn pack_sparse(args: &PruneArgs, model: &mut prunus_tool::IrModel) {
    if !args.dense {
        let target = args
            .target
            .unwrap_or_else(prunus_tool::sparsity::Target::host);
        let decisions = prunus_tool::sparsity::pack_sparse(model, target);
        println!("{}", prunus_tool::sparsity::summary(&decisions, target));
    }
}

/// [`recipe::parse_granularity`](prunus_tool::prune::recipe::parse_granularity), plus the
/// `--block 1|2|4` spellings.
fn parse_granularity(s: &str) -> Result<Granularity, String> {
    let name = match s {
        "1" => "unstructured",
        "2" => "block2",
        "4" => "block4",
        other => other,
    };
    prunus_tool::prune::recipe::parse_granularity(name)
}

fn parse_layers(s: &str) -> Result<Layers, String> {
    match s {
        "1x1" => Ok(Layers::Pointwise),
        "all" => Ok(Layers::All),
        _ => Err(format!("unknown layer set '{s}' (1x1, all)")),
    }
}

fn granularity_name(g: Granularity) -> String {
    match g {
        Granularity::Unstructured => "unstructured".into(),
        Granularity::Block(b) => format!("block{b}"),
        Granularity::NM(n, m) => format!("{n}:{m}"),
        Granularity::Channel => "channel".into(),
    }
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(msg.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn write_json(path: &Path, value: &serde_json::Value, inputs: &[&Path]) -> Result<()> {
    let text = serde_json::to_string(value)?;
    write_atomic(path, text.as_bytes(), inputs)?;
    println!("wrote:  {}", path.display());
    Ok(())
}

/// Runs `prunus prune`.
pub fn run(args: &PruneArgs) -> Result<()> {
    let input = args.input.as_path();
    for out in [
        Some(&args.output),
        args.onnx_out.as_ref(),
        args.masks.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(&args.analysis.outputs())
    {
        ensure_not_input(out, &[input])?;
    }
    let sparsity = match (args.sparsity, args.channels) {
        (Some(s), None) => s,
        (None, Some(r)) if args.granularity == Granularity::Channel => 1.0 - r,
        (None, Some(_)) => bail!("--channels applies to --granularity channel; use --sparsity"),
        (None, None) if matches!(args.granularity, Granularity::NM(..)) => 0.0,
        (None, None) if args.analysis.drives_pruning() => 0.0,
        _ => bail!("give --sparsity S (or --channels R for channel pruning)"),
    };
    if !(0.0..=1.0).contains(&sparsity) {
        bail!("sparsity {sparsity} is outside [0, 1]");
    }
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    if bytes.starts_with(&prunus_format::MAGIC) {
        if args.analysis.drives_pruning() {
            bail!(
                "--recipe, --target-sparsity, --target-macs and the sensitivity analysis need the ONNX model"
            );
        }
        return prune_prunus(args, &bytes, sparsity);
    }
    let bar = spinner("parsing ONNX and propagating shapes");
    let dense = OnnxGraph::parse(&bytes).with_context(|| format!("reading {}", input.display()))?;
    bar.finish_and_clear();
    let mut layers = Vec::new();
    let (pruned, masks, kept) = if args.analysis.drives_pruning() {
        let flags = Flags {
            granularity: args.granularity,
            criterion: args.criterion,
            layers: args.layers,
            round: args.round,
            sparsity: args.sparsity.or(args.channels.map(|c| 1.0 - c)),
            recovered: args.recover == Recovery::Lstsq,
        };
        let outcome = args.analysis.prune(
            &dense,
            &flags,
            args.calib.as_deref(),
            args.calib_preprocess.as_ref(),
            &[input],
        )?;
        layers = outcome.layers;
        if outcome.weights.is_empty() {
            (outcome.graph, outcome.masks, Some(outcome.kept))
        } else {
            // Unstructured: least squares re-chooses every layer's zeros with its own
            // pattern (same count), so the masks are taken after recovery.
            let by_weight = outcome
                .weights
                .iter()
                .map(|(t, _, pattern)| (t.name.clone(), *pattern))
                .collect();
            let g = recover_graph(
                args,
                &dense,
                outcome.graph,
                &HashMap::new(),
                None,
                by_weight,
            )?;
            let mut pruned: Vec<_> = outcome
                .weights
                .into_iter()
                .map(|(t, m, _)| (t, m))
                .collect();
            refresh_masks(&g, &mut pruned);
            let granularity = outcome.masks["granularity"]
                .as_str()
                .unwrap_or("unstructured")
                .to_string();
            (g, export::unstructured_masks(&granularity, &pruned), None)
        }
    } else if args.granularity == Granularity::Channel {
        let measured = if matches!(
            args.criterion,
            Criterion::Activation | Criterion::Reconstruction
        ) {
            let path = args
                .calib
                .as_ref()
                .context("this --criterion needs --calib X.npy")?;
            let calib = calib_data::read(path, args.calib_preprocess.as_ref())?;
            let dep = DepGraph::build(&dense)?;
            let bar = ProgressBar::new(1).with_style(
                ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} runs {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let show = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let scores = if args.criterion == Criterion::Activation {
                activation_means(&dense, &dep, &calib, &show)?
            } else {
                let all = vec![true; dep.classes.len()];
                reconstruction_scores(&dense, &dep, &calib, &Default::default(), &all, &show)?
            };
            bar.finish_and_clear();
            Some(scores)
        } else {
            None
        };
        let options = StructuredOptions {
            sparsity,
            criterion: args.criterion,
            round: args.round,
        };
        let bar = spinner("building the channel dependency graph and pruning");
        let outcome = structured_prune(&dense, &options, measured.as_ref())?;
        bar.finish_and_clear();
        let (groups, classes, removed) = outcome.counts;
        println!(
            "groups: {groups} coupled groups, {classes} prunable channel classes, {removed} removed"
        );
        let dims = |name: &str| {
            dense
                .consts
                .get(name)
                .map(|c| c.dims.clone())
                .unwrap_or_default()
        };
        let masks = export::structured_masks(&outcome.result, &dims);
        (outcome.graph, masks, Some(outcome.result.kept))
    } else {
        if args.criterion != Criterion::L1 && args.criterion != Criterion::L2 {
            bail!("unstructured, block and N:M pruning use weight magnitude; drop --criterion");
        }
        let mut g = dense.clone();
        let mut pruned =
            unstructured_prune_onnx(&mut g, args.layers, args.granularity, sparsity, args.global)?;
        // Least squares may re-choose the zeros (same count and pattern): masks after it.
        let g = recover_graph(
            args,
            &dense,
            g,
            &HashMap::new(),
            Some(args.granularity),
            HashMap::new(),
        )?;
        refresh_masks(&g, &mut pruned);
        report_sparsity(&pruned);
        (
            g,
            export::unstructured_masks(&granularity_name(args.granularity), &pruned),
            None,
        )
    };
    let pruned = match kept {
        Some(kept) => recover_graph(args, &dense, pruned, &kept, None, HashMap::new())?,
        None => pruned,
    };
    let onnx_bytes = pruned.to_bytes();
    let bar = spinner("importing the pruned model (BatchNorm folding)");
    let dense_ir =
        prunus_tool::onnx::import(&bytes, &Default::default()).context("importing the input")?;
    let mut ir = prunus_tool::onnx::import(&onnx_bytes, &Default::default())
        .context("importing the pruned model")?;
    pack_sparse(args, &mut ir);
    let packed = ir.to_bytes(prunus_format::WriteOptions::default())?;
    bar.finish_and_clear();
    write_atomic(&args.output, &packed, &[input])?;
    let (a, b) = (graph_stats(&dense_ir.graph), graph_stats(&ir.graph));
    println!(
        "params: {} -> {} ({:.1} %)   MACs: {} -> {} ({:.2}x fewer)",
        a.params,
        b.params,
        100.0 * b.params as f64 / a.params.max(1) as f64,
        a.macs,
        b.macs,
        a.macs as f64 / b.macs.max(1) as f64
    );
    println!("wrote:  {} ({} bytes)", args.output.display(), packed.len());
    if let Some(path) = &args.onnx_out {
        write_atomic(path, &onnx_bytes, &[input])?;
        println!("wrote:  {}", path.display());
    }
    if let Some(path) = &args.masks {
        write_json(path, &masks, &[input])?;
    }
    args.analysis
        .write_report(input, &bytes, &args.output, &packed, &masks, &layers)
}

fn report_sparsity(pruned: &[(prunus_tool::prune::unstructured::Target, Vec<bool>)]) {
    let total: usize = pruned.iter().map(|(_, m)| m.len()).sum();
    let zeros: usize = pruned
        .iter()
        .map(|(_, m)| m.iter().filter(|k| !**k).count())
        .sum();
    println!(
        "pruned: {} weights in {} layers, {zeros} zeroed ({:.1} %)",
        total,
        pruned.len(),
        100.0 * zeros as f64 / total.max(1) as f64
    );
}

fn prune_prunus(args: &PruneArgs, bytes: &[u8], sparsity: f64) -> Result<()> {
    if args.granularity == Granularity::Channel {
        bail!(
            "a .prunus input has BatchNorm folded away: it accepts unstructured, block and N:M \
             magnitude pruning only; give the ONNX model for channel pruning"
        );
    }
    if args.onnx_out.is_some() {
        bail!("--onnx-out needs an ONNX input");
    }
    if args.recover != Recovery::None {
        bail!("--recover needs the ONNX model (BatchNorm statistics and calibration runs)");
    }
    if args.criterion != Criterion::L1 && args.criterion != Criterion::L2 {
        bail!("a .prunus input is pruned by weight magnitude only; drop --criterion");
    }
    let (mut model, f16) = prunus_file::read(bytes)?;
    let pruned = prunus_file::prune(
        &mut model,
        args.layers,
        args.granularity,
        sparsity,
        args.global,
    )?;
    report_sparsity(&pruned);
    pack_sparse(args, &mut model);
    let packed = model.to_bytes(prunus_format::WriteOptions { f16 })?;
    write_atomic(&args.output, &packed, &[&args.input])?;
    println!("wrote:  {} ({} bytes)", args.output.display(), packed.len());
    let masks = export::unstructured_masks(&granularity_name(args.granularity), &pruned);
    if let Some(path) = &args.masks {
        write_json(path, &masks, &[&args.input])?;
    }
    args.analysis
        .write_report(&args.input, bytes, &args.output, &packed, &masks, &[])
}
