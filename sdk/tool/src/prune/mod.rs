//! Offline pruning of ONNX graphs (BatchNorm still present) and of `.prunus` files.
//!
//! * **Structured** ([`structured_prune`]): the channel dependency graph ([`depgraph`])
//!   finds which channels of which tensors must go together — through residual `Add`, SE
//!   `Mul`, `Concat`, `Split`/`Slice`, channel shuffles, grouped and depthwise convs,
//!   BatchNorm, pooling and `Flatten → Gemm` — a [`Criterion`] scores them, every coupled
//!   group loses the same fraction (rounded to a multiple for SIMD), and [`structured`]
//!   physically removes them.
//! * **Unstructured** ([`unstructured`]): magnitude pruning of single weights, blocks of 2/4
//!   output channels or N:M, per layer or global; shapes are unchanged (zeros stored
//!   densely until the sparse encodings land).
//! * [`export`] writes the pruned ONNX and the masks keyed by the original weight names.
//! * Non-uniform ratios ([`nonuniform`]): a [`recipe`] (JSON defaults and name-pattern
//!   rules) or a target (`--target-sparsity`, `--target-macs`) whose per-layer ratios are
//!   [`allocate`]d from a [`sensitivity`] sweep measured with the runtime ([`evaluate`]);
//!   layers are weights or coupled channel groups ([`units`]). [`report`] and [`plot`]
//!   write the pruning report and the sensitivity analysis.
//! * [`reconstruct`] recovers accuracy in one shot on calibration data: least-squares refit
//!   of the pruned layers and BatchNorm recalibration / bias correction ([`recalibrate`]).

pub mod allocate;
pub mod calib_data;
pub mod calibrate;
pub mod channel_select;
pub mod criteria;
pub mod depgraph;
pub mod evaluate;
pub mod export;
pub mod nonuniform;
pub mod onnx_graph;
pub mod plot;
pub mod prunus_file;
pub mod recalibrate;
pub mod recipe;
pub mod reconstruct;
pub mod reconstruct_layer;
mod reconstruct_normal;
pub mod reconstruct_obs;
pub mod report;
pub mod sensitivity;
pub mod shapes;
pub mod structured;
pub mod sweep_recovery;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_allocation;
#[cfg(test)]
mod tests_recovery;
pub mod units;
pub mod unstructured;

use std::collections::HashMap;

use depgraph::DepGraph;
use onnx_graph::{Const, OnnxGraph, attr_i, op};
use structured::StructuredResult;
use unstructured::Target;

/// Why pruning failed. Messages name the node or tensor.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Not a valid ONNX protobuf.
    #[error("malformed ONNX protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Structurally wrong or unsupported model.
    #[error("{0}")]
    Model(String),
    /// A node the tool cannot handle, or inconsistent shapes.
    #[error("node '{node}': {reason}")]
    Node {
        /// Node name.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// A constant tensor that cannot be read.
    #[error("tensor '{tensor}': {reason}")]
    Tensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// Calibration data missing or unusable.
    #[error("calibration: {0}")]
    Calibration(String),
    /// The pruned model could not be imported.
    #[error("importing the pruned model: {0}")]
    Import(#[from] crate::onnx::ImportError),
    /// The runtime refused the model or the data.
    #[error("runtime: {0}")]
    Runtime(String),
    /// A `.prunus` input could not be read or written.
    #[error(".prunus file: {0}")]
    Format(String),
    /// A recipe that cannot be used.
    #[error(transparent)]
    Recipe(#[from] recipe::RecipeError),
}

/// How channel importance is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// Sum of |w| of the filters producing the channel.
    L1,
    /// L2 norm of those filters.
    L2,
    /// |gamma| of the BatchNorms on the channel (network slimming).
    Bn,
    /// Summed distance of the filter to the layer's other filters (FPGM).
    Fpgm,
    /// Mean |activation| on calibration data.
    Activation,
    /// Least output error of the consumer layer after a least-squares refit, on
    /// calibration data ([`channel_select`]).
    Reconstruction,
}

/// What is pruned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// Single weights.
    Unstructured,
    /// Blocks of 2 or 4 output channels at one input position.
    Block(usize),
    /// At most N nonzeros in every M consecutive weights of a row.
    NM(usize, usize),
    /// Whole channels (structured).
    Channel,
}

/// Which weights unstructured pruning touches (the first convolution and depthwise
/// convolutions always stay dense).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layers {
    /// 1x1 ungrouped convolutions.
    Pointwise,
    /// Every convolution but depthwise ones, Gemm and MatMul.
    All,
}

/// Options of structured pruning.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StructuredOptions {
    /// Fraction of channel classes removed from every group.
    pub sparsity: f64,
    /// Importance criterion.
    pub criterion: Criterion,
    /// Kept classes per group rounded to a multiple of this (1 = no rounding).
    pub round: usize,
}

/// Result of [`structured_prune`].
#[derive(Clone, Debug)]
pub struct StructuredOutcome {
    /// The pruned graph.
    pub graph: OnnxGraph,
    /// Kept indices per tensor and per weight.
    pub result: StructuredResult,
    /// Prunable groups, prunable classes, removed classes.
    pub counts: (usize, usize, usize),
}

/// Kept classes of a group of `n` at `sparsity`, rounded to a multiple of `round`.
pub fn keep_count(n: usize, sparsity: f64, round: usize) -> usize {
    let removed = (sparsity * n as f64 + 1e-9).floor() as usize;
    let keep = n.saturating_sub(removed);
    let r = round.max(1);
    if r == 1 {
        return keep.max(1).min(n);
    }
    let rounded = ((keep as f64 / r as f64).round() as usize * r).max(r);
    rounded.min(n).max(1)
}

/// Chooses the classes to remove: the lowest-scored `n - keep` of every group, then puts
/// back the best class of any tensor that would lose all its channels.
pub fn select(dep: &DepGraph, scores: &[f64], sparsity: f64, round: usize) -> Vec<bool> {
    units::select_ratios(dep, scores, &vec![sparsity; dep.groups.len()], round)
}

/// Structured pruning of `g`: builds the dependency graph, scores, selects and removes.
/// `measured`: the per-channel scores of the data-driven criteria (see
/// [`criteria::class_scores`]).
pub fn structured_prune(
    g: &OnnxGraph,
    options: &StructuredOptions,
    measured: Option<&HashMap<String, Vec<f64>>>,
) -> Result<StructuredOutcome, PruneError> {
    if !(0.0..1.0).contains(&options.sparsity) {
        return Err(PruneError::Options(format!(
            "channel sparsity {} must be in [0, 1)",
            options.sparsity
        )));
    }
    let dep = DepGraph::build(g)?;
    let scores = criteria::class_scores(g, &dep, options.criterion, measured)?;
    let removed = select(&dep, &scores, options.sparsity, options.round);
    let (graph, result) = structured::apply(g, &dep, &removed)?;
    let prunable = dep.classes.iter().filter(|c| c.prunable()).count();
    Ok(StructuredOutcome {
        graph,
        result,
        counts: (
            dep.groups.len(),
            prunable,
            removed.iter().filter(|&&r| r).count(),
        ),
    })
}

/// The weights of `g` that unstructured pruning touches: `(node index, target)`.
pub fn onnx_targets(g: &OnnxGraph, layers: Layers) -> Vec<(usize, Target)> {
    let mut out = Vec::new();
    for (i, n) in g.nodes().iter().enumerate() {
        if n.input.first().is_some_and(|x| g.inputs.contains(x)) {
            continue; // the first layer stays dense
        }
        let Some(w) = n.input.get(1).and_then(|t| g.consts.get(t)) else {
            continue;
        };
        let Some(data) = w.as_f32() else { continue };
        let out_axis = match op(n) {
            "Conv" => {
                let groups = attr_i(n, "group").unwrap_or(1);
                let pointwise = w.dims.len() == 4 && w.dims[2..] == [1, 1] && groups == 1;
                // Depthwise weights are a small share of the MACs and have no sparse kernel.
                let depthwise = groups > 1 && w.dims.get(1) == Some(&1);
                if depthwise || (layers == Layers::Pointwise && !pointwise) {
                    continue;
                }
                0
            }
            "Gemm" if layers == Layers::All => usize::from(attr_i(n, "transB").unwrap_or(0) == 0),
            "MatMul" if layers == Layers::All && w.dims.len() == 2 => 1,
            _ => continue,
        };
        out.push((
            i,
            Target {
                name: n.input[1].clone(),
                dims: w.dims.clone(),
                out_axis,
                data: data.to_vec(),
            },
        ));
    }
    out
}

/// Unstructured pruning of an ONNX graph in place; returns the kept-mask per weight name.
pub fn unstructured_prune_onnx(
    g: &mut OnnxGraph,
    layers: Layers,
    granularity: Granularity,
    sparsity: f64,
    global: bool,
) -> Result<Vec<(Target, Vec<bool>)>, PruneError> {
    let (_, mut targets): (Vec<usize>, Vec<Target>) = onnx_targets(g, layers).into_iter().unzip();
    let masks = unstructured::prune(&mut targets, granularity, sparsity, global)?;
    for t in &targets {
        g.consts
            .insert(t.name.clone(), Const::f32(t.dims.clone(), t.data.clone()));
    }
    Ok(targets.into_iter().zip(masks).collect())
}
