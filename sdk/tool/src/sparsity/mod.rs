//! Per-layer choice of dense or sparse storage at pack time.
//!
//! Every Conv (1x1, grouped 1x1, k×k with one group) and Gemm weight that holds zeros is
//! a candidate for the blocked sparse encoding ([`prunus_format::sparse`]). For each
//! candidate and each block size the sparse kernels implement, a cost model whose
//! constants are measured per instruction set ([`costs`], re-measured by [`measure`] and
//! `prunus sparse-costs`) predicts the dense and the sparse run time; the weight is marked
//! sparse only where the best sparse prediction beats dense by [`MARGIN`]. The first
//! convolution (reads the image) and depthwise convolutions always stay dense.

pub mod costs;
pub mod measure;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use prunus_format::sparse::BLOCK_SIZES;
use prunus_format::{Encoding, Graph, Op, WeightId};

use crate::IrModel;
pub use costs::{IsaCosts, OpCosts};

/// Sparse storage is chosen only when predicted at least this many times faster than
/// dense: the cost model's error must not make any layer slower than dense.
pub const MARGIN: f64 = 1.2;

/// The instruction set whose cost constants decide (the machine the model will run on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// x86-64 with AVX2 + FMA (constants from timings).
    X86_64,
    /// AArch64 with NEON (constants from instruction counts under qemu).
    Aarch64,
}

impl Target {
    /// The architecture this tool runs on (x86-64 for any non-ARM host).
    pub fn host() -> Self {
        if cfg!(target_arch = "aarch64") {
            Target::Aarch64
        } else {
            Target::X86_64
        }
    }

    /// The name `--target` takes.
    pub fn name(self) -> &'static str {
        match self {
            Target::X86_64 => "x86_64",
            Target::Aarch64 => "aarch64",
        }
    }

    /// The committed cost constants of this target.
    pub fn costs(self) -> &'static IsaCosts {
        match self {
            Target::X86_64 => &costs::X86_64,
            Target::Aarch64 => &costs::AARCH64,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" => Ok(Target::X86_64),
            "aarch64" | "arm64" => Ok(Target::Aarch64),
            _ => Err(format!("unknown target '{s}' (aarch64, x86_64)")),
        }
    }
}

/// The kinds of op the sparse kernels execute, each with its own cost constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseOp {
    /// 1x1 convolution, ungrouped or grouped (not depthwise), of more than one pixel.
    Pointwise,
    /// k×k convolution with one group.
    Spatial,
    /// Fully connected layer, or a 1x1 convolution of a one-pixel plane.
    Gemm,
}

impl SparseOp {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            SparseOp::Pointwise => "1x1",
            SparseOp::Spatial => "kxk",
            SparseOp::Gemm => "gemm",
        }
    }
}

/// The shape of a weight's work: a `[rows, cols]` matrix applied at `pixels` positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Which kernel family runs it.
    pub op: SparseOp,
    /// Output channels (rows of the weight matrix).
    pub rows: usize,
    /// Inputs per output (`I/g · kh · kw`, or `K`).
    pub cols: usize,
    /// Output positions (`N·H·W`, or the Gemm batch).
    pub pixels: usize,
    /// Output channels per group (a sparse block may not straddle groups).
    pub rows_per_group: usize,
}

impl Workload {
    /// Block sizes the sparse kernels can use for this weight.
    pub fn blocks(&self) -> impl Iterator<Item = usize> + '_ {
        BLOCK_SIZES
            .into_iter()
            .filter(|b| self.rows_per_group.is_multiple_of(*b))
    }
}

/// A weight the sparse kernels could read, with the node that reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The weight.
    pub weight: WeightId,
    /// The node reading it.
    pub node: String,
    /// Its work.
    pub work: Workload,
}

/// Weights of `graph` that may be stored sparse: Conv (1x1 of any non-depthwise grouping,
/// k×k ungrouped) and Gemm weights read by exactly one node, never the first convolution.
pub fn candidates(graph: &Graph) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for node in &graph.nodes {
        let reads_image = node
            .inputs
            .first()
            .is_some_and(|x| graph.inputs.contains(x));
        let output = node
            .outputs
            .first()
            .and_then(|&t| graph.tensors.get(t as usize));
        let (weight, op, pixels, groups) = match &node.op {
            Op::Conv(c) if !reads_image => {
                let Some(shape) = graph.weights.get(c.weight as usize).map(|w| &w.shape) else {
                    continue;
                };
                let depthwise = c.groups > 1 && shape.get(1) == Some(&1);
                let op = match (c.kernel == [1, 1], c.groups == 1) {
                    _ if depthwise => continue,
                    (true, _) => SparseOp::Pointwise,
                    (false, true) => SparseOp::Spatial,
                    (false, false) => continue,
                };
                let Some(out) = output.filter(|t| t.shape.len() == 4) else {
                    continue;
                };
                let s = &out.shape;
                let pixels = s[0] as usize * s[2] as usize * s[3] as usize;
                // A 1x1 conv of a one-pixel plane (squeeze-excitation) runs as a Gemm.
                let op = if op == SparseOp::Pointwise && pixels == 1 {
                    SparseOp::Gemm
                } else {
                    op
                };
                (c.weight, op, pixels, c.groups as usize)
            }
            Op::Gemm { weight, .. } => {
                let Some(out) = output else { continue };
                let n = out.shape.iter().rev().skip(1).map(|&d| d as usize);
                (*weight, SparseOp::Gemm, n.product(), 1)
            }
            _ => continue,
        };
        let Some((rows, cols)) = graph
            .weights
            .get(weight as usize)
            .and_then(|w| prunus_format::sparse::sparse_matrix_dims(&w.shape))
        else {
            continue;
        };
        let readers = graph
            .nodes
            .iter()
            .filter(|n| n.op.weight_ids().contains(&weight))
            .count();
        if readers != 1 || rows == 0 || cols == 0 {
            continue;
        }
        out.push(Candidate {
            weight,
            node: node.name.clone(),
            work: Workload {
                op,
                rows,
                cols,
                pixels: pixels.max(1),
                rows_per_group: rows / groups.max(1),
            },
        });
    }
    out
}

/// Stored columns of a `[rows, cols]` matrix in blocks of `block` rows: per block, the
/// columns where any row is non-zero.
pub fn stored_columns(data: &[f32], rows: usize, cols: usize, block: usize) -> usize {
    (0..rows.div_ceil(block))
        .map(|b| {
            let rs = b * block..(b * block + block).min(rows);
            (0..cols)
                .filter(|&c| rs.clone().any(|r| data[r * cols + c] != 0.0))
                .count()
        })
        .sum()
}

/// The cost model's verdict on one candidate weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The weight and its work.
    pub candidate: Candidate,
    /// Fraction of its values that are zero.
    pub zeros: f64,
    /// Predicted dense cost (the target's unit: ns or instructions).
    pub dense: f64,
    /// The cheapest sparse block size with its stored columns and predicted cost, if any
    /// block size is allowed.
    pub best_sparse: Option<(usize, usize, f64)>,
    /// The block size it is stored with, or `None` for dense.
    pub chosen: Option<usize>,
}

impl Decision {
    /// Predicted dense / sparse speed-up of the best block size (1 without one).
    pub fn speedup(&self) -> f64 {
        self.best_sparse
            .map_or(1.0, |(_, _, s)| self.dense / s.max(1e-12))
    }
}

/// Decides, for every candidate weight of `model`, dense or sparse on `target`.
pub fn plan(model: &IrModel, target: Target) -> Vec<Decision> {
    let costs = target.costs();
    candidates(&model.graph)
        .into_iter()
        .filter_map(|candidate| {
            let data = model.weights.get(candidate.weight as usize)?;
            let w = candidate.work;
            if data.len() != w.rows * w.cols {
                return None;
            }
            let zero_count = data.iter().filter(|&&v| v == 0.0).count();
            let dense = costs.dense(&w);
            let best_sparse = w
                .blocks()
                .map(|b| {
                    let nnz = stored_columns(data, w.rows, w.cols, b);
                    (b, nnz, costs.sparse(&w, b, nnz))
                })
                .min_by(|x, y| x.2.total_cmp(&y.2));
            let chosen = best_sparse
                .filter(|&(b, nnz, cost)| {
                    zero_count > 0 && nnz < w.rows.div_ceil(b) * w.cols && cost * MARGIN <= dense
                })
                .map(|(b, _, _)| b);
            Some(Decision {
                candidate,
                zeros: zero_count as f64 / data.len().max(1) as f64,
                dense,
                best_sparse,
                chosen,
            })
        })
        .collect()
}

/// Marks the weights `decisions` chose sparse (and resets every other candidate to dense)
/// so that writing `model` stores them in the blocked sparse encoding.
pub fn apply(model: &mut IrModel, decisions: &[Decision]) {
    for d in decisions {
        if let Some(info) = model.graph.weights.get_mut(d.candidate.weight as usize) {
            info.encoding = match d.chosen {
                Some(block) => Encoding::SparseBlocks {
                    block: block as u8,
                    index_bytes: 0,
                    nnz: 0,
                },
                None => Encoding::F32,
            };
        }
    }
}

/// [`plan`] then [`apply`]: packs `model`'s weights sparse where `target` runs them faster.
pub fn pack_sparse(model: &mut IrModel, target: Target) -> Vec<Decision> {
    let decisions = plan(model, target);
    apply(model, &decisions);
    decisions
}

/// One line per sparse layer and a total, for the CLI.
pub fn summary(decisions: &[Decision], target: Target) -> String {
    let sparse: Vec<&Decision> = decisions.iter().filter(|d| d.chosen.is_some()).collect();
    let dense: f64 = decisions.iter().map(|d| d.dense).sum();
    let chosen: f64 = decisions
        .iter()
        .map(|d| match (d.chosen, d.best_sparse) {
            (Some(_), Some((_, _, s))) => s,
            _ => d.dense,
        })
        .sum();
    format!(
        "sparse: {} of {} candidate layers on {target} (cost model: {:.2}x faster over the candidates)",
        sparse.len(),
        decisions.len(),
        dense / chosen.max(1e-12)
    )
}
