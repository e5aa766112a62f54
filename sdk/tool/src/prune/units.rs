//! The layers non-uniform pruning assigns ratios to, and pruning with one ratio per layer.
//!
//! * Unstructured: one [`Layer`] per prunable weight ([`super::onnx_targets`]), pruned with
//!   its own granularity and ratio.
//! * Structured: one [`Layer`] per coupled group of the dependency graph; every group loses
//!   its own fraction of channel classes ([`select_ratios`]).
//!
//! [`MacModel`] counts the multiply-accumulates of the graph a structured selection would
//! give without rewriting it, so allocation can search ratios cheaply.

use serde::Serialize;

use super::depgraph::DepGraph;
use super::onnx_graph::{Const, OnnxGraph, attr_i, node_name, op};
use super::structured::{self, StructuredResult};
use super::unstructured::{self, Target};
use super::{Granularity, Layers, PruneError, keep_count, onnx_targets};

/// A unit that receives one ratio.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Layer {
    /// Display name: the (first) producing node.
    pub name: String,
    /// Node and weight names recipe rules match against.
    pub names: Vec<String>,
    /// Prunable weights (unstructured) or channel classes (structured).
    pub size: usize,
}

/// Unstructured layers of `g`: one per weight [`onnx_targets`] returns, in graph order.
pub fn unstructured_layers(g: &OnnxGraph, layers: Layers) -> Vec<(Layer, usize, Target)> {
    onnx_targets(g, layers)
        .into_iter()
        .map(|(i, t)| {
            let node = node_name(&g.nodes()[i]);
            let layer = Layer {
                name: node.clone(),
                names: vec![node, t.name.clone()],
                size: t.data.len(),
            };
            (layer, i, t)
        })
        .collect()
}

/// Structured layers of `g`: one per group of `dep`, named by the Conv/Gemm/MatMul nodes
/// whose output channels the group holds.
pub fn structured_layers(g: &OnnxGraph, dep: &DepGraph) -> Vec<Layer> {
    let mut group_of = vec![usize::MAX; dep.classes.len()];
    for (gi, group) in dep.groups.iter().enumerate() {
        group.iter().for_each(|&id| group_of[id] = gi);
    }
    let mut names: Vec<Vec<String>> = vec![Vec::new(); dep.groups.len()];
    for n in g.nodes() {
        if !matches!(op(n), "Conv" | "Gemm" | "MatMul") {
            continue;
        }
        let Some(&(_, _, c)) = n.output.first().and_then(|y| dep.index.get(y)) else {
            continue;
        };
        let mut seen: Vec<usize> = (0..c)
            .filter_map(|ch| dep.class_of(&n.output[0], ch))
            .map(|id| group_of[id])
            .filter(|&gi| gi != usize::MAX)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for gi in seen {
            names[gi].push(node_name(n));
            if let Some(w) = n.input.get(1) {
                names[gi].push(w.clone());
            }
        }
    }
    dep.groups
        .iter()
        .zip(names)
        .enumerate()
        .map(|(gi, (group, names))| Layer {
            name: names
                .first()
                .cloned()
                .unwrap_or_else(|| format!("group{gi}")),
            names,
            size: group.len(),
        })
        .collect()
}

/// Chooses the classes to remove: the lowest-scored `n - keep` of every group `i` at
/// `ratios[i]`, then puts back the best class of any tensor that would lose all channels.
pub fn select_ratios(dep: &DepGraph, scores: &[f64], ratios: &[f64], round: usize) -> Vec<bool> {
    let mut removed = vec![false; dep.classes.len()];
    for (group, &ratio) in dep.groups.iter().zip(ratios) {
        let keep = keep_count(group.len(), ratio, round);
        let mut order = group.clone();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        order
            .iter()
            .take(group.len() - keep)
            .for_each(|&id| removed[id] = true);
    }
    for t in &dep.tensors {
        let (_, base, n) = dep.index[t];
        let ids: Vec<usize> = (0..n).map(|c| dep.slot_class[base + c]).collect();
        if ids.iter().all(|&id| removed[id])
            && let Some(&best) = ids
                .iter()
                .max_by(|&&a, &&b| scores[a].total_cmp(&scores[b]))
        {
            removed[best] = false;
        }
    }
    removed
}

/// Structured pruning with one ratio per group of `dep`; returns the graph, what was
/// kept, and the removed classes (indexed by class id).
pub fn structured_prune_ratios(
    g: &OnnxGraph,
    dep: &DepGraph,
    scores: &[f64],
    ratios: &[f64],
    round: usize,
) -> Result<(OnnxGraph, StructuredResult, Vec<bool>), PruneError> {
    check_ratios(ratios, dep.groups.len())?;
    let removed = select_ratios(dep, scores, ratios, round);
    let (graph, result) = structured::apply(g, dep, &removed)?;
    Ok((graph, result, removed))
}

fn check_ratios(ratios: &[f64], n: usize) -> Result<(), PruneError> {
    if ratios.len() != n {
        return Err(PruneError::Options(format!(
            "{} ratios for {n} layers",
            ratios.len()
        )));
    }
    match ratios.iter().find(|r| !(0.0..1.0).contains(*r)) {
        Some(r) => Err(PruneError::Options(format!("ratio {r} must be in [0, 1)"))),
        None => Ok(()),
    }
}

/// Unstructured pruning of `targets` (from [`unstructured_layers`]) in `g`, each with its
/// own `(granularity, ratio)`; returns the targets with their kept-masks.
pub fn unstructured_prune_ratios(
    g: &mut OnnxGraph,
    targets: Vec<Target>,
    settings: &[(Granularity, f64)],
) -> Result<Vec<(Target, Vec<bool>)>, PruneError> {
    if settings.len() != targets.len() {
        return Err(PruneError::Options(format!(
            "{} settings for {} weights",
            settings.len(),
            targets.len()
        )));
    }
    let mut out = Vec::with_capacity(targets.len());
    for (mut t, &(granularity, ratio)) in targets.into_iter().zip(settings) {
        let mask = unstructured::prune(std::slice::from_mut(&mut t), granularity, ratio, false)?
            .pop()
            .unwrap_or_default();
        g.consts
            .insert(t.name.clone(), Const::f32(t.dims.clone(), t.data.clone()));
        out.push((t, mask));
    }
    Ok(out)
}

/// One Conv/Gemm/MatMul of the MAC count.
#[derive(Clone, Debug)]
struct MacNode {
    input: String,
    output: String,
    /// Multiply-accumulates per (output channel × input channel seen by one filter).
    unit: u64,
    /// Group count; 0 marks a depthwise conv (one input channel per filter).
    groups: usize,
    out_channels: usize,
    in_channels: usize,
}

/// Counts the MACs of `g` after removing a set of channel classes (convolutions and
/// Gemm/MatMul, as [`crate::stats`] counts them on the imported model).
#[derive(Clone, Debug)]
pub struct MacModel {
    nodes: Vec<MacNode>,
}

impl MacModel {
    /// Reads the convolutions and matrix products of `g`.
    pub fn new(g: &OnnxGraph) -> Result<Self, PruneError> {
        let mut nodes = Vec::new();
        for n in g.nodes() {
            let kind = op(n);
            if !matches!(kind, "Conv" | "Gemm" | "MatMul") {
                continue;
            }
            let Some(w) = n.input.get(1).and_then(|t| g.consts.get(t)) else {
                continue;
            };
            let ys = g.shape(&n.output[0])?;
            let node = if kind == "Conv" {
                let groups = attr_i(n, "group").unwrap_or(1).max(1) as usize;
                let kernel: usize = w.dims[2..].iter().product();
                let spatial: usize = ys.iter().product::<usize>() / ys[1].max(1);
                let depthwise = groups > 1 && w.dims[1] == 1;
                MacNode {
                    input: n.input[0].clone(),
                    output: n.output[0].clone(),
                    unit: (spatial * kernel) as u64,
                    groups: if depthwise { 0 } else { groups },
                    out_channels: w.dims[0],
                    in_channels: w.dims[1] * groups,
                }
            } else {
                let trans_b = kind == "Gemm" && attr_i(n, "transB").unwrap_or(0) != 0;
                let (o, i) = if trans_b {
                    (w.dims[0], w.dims[1])
                } else {
                    (w.dims[1], w.dims[0])
                };
                MacNode {
                    input: n.input[0].clone(),
                    output: n.output[0].clone(),
                    unit: 1,
                    groups: 1,
                    out_channels: o,
                    in_channels: i,
                }
            };
            nodes.push(node);
        }
        Ok(MacModel { nodes })
    }

    /// MACs of the graph with the classes marked in `removed` gone (none: the dense MACs).
    pub fn macs(&self, dep: &DepGraph, removed: Option<&[bool]>) -> u64 {
        let kept = |t: &str, full: usize| -> usize {
            match (removed, dep.index.get(t)) {
                (Some(removed), Some(&(_, base, n))) => (base..base + n)
                    .filter(|&s| !removed[dep.slot_class[s]])
                    .count(),
                _ => full,
            }
        };
        let mut total = 0u64;
        for m in &self.nodes {
            let ko = kept(&m.output, m.out_channels);
            let per_filter = match m.groups {
                0 => 1,
                g => kept(&m.input, m.in_channels) / g,
            };
            total += m.unit * (ko * per_filter) as u64;
        }
        total
    }
}
