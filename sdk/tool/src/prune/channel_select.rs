//! Data-driven channel selection ([`super::Criterion::Reconstruction`]): keep the channels
//! the consumer layer needs to reproduce its dense output, in the spirit of He et al. 2017
//! channel selection, solved greedily OBS-style.
//!
//! For every ungrouped Conv / Gemm reading prunable channels, the Gram matrix
//! `H = X̃ᵀX̃ + λI` of its input patches (plus a constant column for the bias) is
//! accumulated on the dense model's calibration activations. Starting from the dense
//! weights `β` (the exact least-squares solution), channels are removed one at a time: the
//! one whose removal, with the other weights refit by least squares, raises the output
//! error least — `Δ = Σₒ β_Jₒᵀ [H⁻¹]_JJ⁻¹ β_Jₒ` over the channel's columns `J` — after
//! which `β` and `H⁻¹` are updated for the refit. Output rows are weighted by the scale of
//! the BatchNorm that follows (`|γ| / √(σ² + ε)`), so the error is measured where the
//! network sees it. A channel's score is its position in the removal order (late = kept).

use std::collections::HashMap;

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

use super::PruneError;
use super::calibrate::Calibration;
use super::depgraph::DepGraph;
use super::onnx_graph::{OnnxGraph, attr_f, op};
use super::reconstruct::{for_each_input, sample_positions};
use super::reconstruct_layer::{Layer, MAX_SYSTEM};

/// Rows accumulated per Gram update.
const CHUNK: usize = 256;

/// Options of [`reconstruction_scores`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectOptions {
    /// Calibration samples used (the first ones).
    pub samples: usize,
    /// Output positions sampled per sample and layer.
    pub positions: usize,
    /// Ridge, relative to the mean squared input of the layer.
    pub ridge: f64,
}

impl Default for SelectOptions {
    fn default() -> Self {
        SelectOptions {
            samples: 128,
            positions: 64,
            ridge: 1e-5,
        }
    }
}

/// Gram matrix of one consumer's input patches, accumulated in chunks.
struct Gram {
    layer: Layer,
    gram: Mat<f64>,
    chunk: Mat<f64>,
    fill: usize,
}

impl Gram {
    fn new(layer: Layer) -> Self {
        let k = layer.cols + 1;
        Gram {
            layer,
            gram: Mat::zeros(k, k),
            chunk: Mat::zeros(CHUNK, k),
            fill: 0,
        }
    }

    fn add(&mut self, xs: &[f32], pos: usize) {
        let cols = self.layer.cols;
        let mut patch = vec![0.0; cols];
        self.layer.patch(xs, pos, 0, &mut patch);
        for (c, &v) in patch.iter().enumerate() {
            self.chunk[(self.fill, c)] = v;
        }
        self.chunk[(self.fill, cols)] = 1.0;
        self.fill += 1;
        if self.fill == CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let x = self.chunk.subrows(0, self.fill);
        self.gram += x.transpose() * x;
        self.fill = 0;
    }
}

/// Per-channel scores (higher = keep) of every tensor read by an ungrouped Conv / Gemm
/// whose channels are prunable, measured on `calib` (see the module docs); tensors without
/// a class marked in `wanted` (indexed by class id) are not measured.
/// `progress(done, total)` counts calibration runs.
pub fn reconstruction_scores(
    g: &OnnxGraph,
    dep: &DepGraph,
    calib: &Calibration,
    options: &SelectOptions,
    wanted: &[bool],
    progress: &dyn Fn(u64, u64),
) -> Result<HashMap<String, Vec<f64>>, PruneError> {
    let prunable = |t: &str, c: usize| {
        dep.class_of(t, c).is_some_and(|id| {
            dep.classes[id].prunable() && wanted.get(id).copied().unwrap_or(false)
        })
    };
    let mut consumers: Vec<(String, Vec<Layer>)> = Vec::new();
    for i in 0..g.nodes().len() {
        let Some(layer) = Layer::from_node(g, i)? else {
            continue;
        };
        let x = g.nodes()[i].input[0].clone();
        let channels = g.shape(&x)?.get(1).copied().unwrap_or(0);
        if layer.groups != 1
            || layer.cols + 1 > MAX_SYSTEM
            || channels == 0
            || !layer.cols.is_multiple_of(channels)
            || !(0..channels).any(|c| prunable(&x, c))
        {
            continue;
        }
        match consumers.iter_mut().find(|(t, _)| *t == x) {
            Some((_, layers)) => layers.push(layer),
            None => consumers.push((x, vec![layer])),
        }
    }
    let samples = &calib.samples[..calib.samples.len().min(options.samples.max(1))];
    let total = (consumers.len() * samples.len()) as u64;
    let mut done = 0u64;
    let mut scores = HashMap::new();
    for (x, layers) in consumers {
        let mut grams: Vec<Gram> = layers.into_iter().map(Gram::new).collect();
        for_each_input(g, &x, samples, &mut |s, xs| {
            for gram in grams.iter_mut() {
                if xs.len() != gram.layer.input_len() {
                    return Err(PruneError::Runtime(format!(
                        "tensor '{x}' has {} values, its consumer expects {}",
                        xs.len(),
                        gram.layer.input_len()
                    )));
                }
                let seed = (gram.layer.node as u64) << 32 | s as u64;
                for p in sample_positions(gram.layer.positions(), options.positions, seed) {
                    gram.add(xs, p);
                }
            }
            done += 1;
            progress(done, total);
            Ok(())
        })?;
        let channels = g.shape(&x)?[1];
        let free: Vec<bool> = (0..channels).map(|c| prunable(&x, c)).collect();
        let mut sum = vec![0.0; channels];
        for gram in &mut grams {
            gram.flush();
            let weights = output_weights(g, &gram.layer)?;
            let order = removal_order(&gram.layer, &gram.gram, &weights, &free, options.ridge);
            let n = order.len().max(1) as f64;
            let mut score = vec![1.0; channels];
            for (rank, &c) in order.iter().enumerate() {
                score[c] = (rank + 1) as f64 / n;
            }
            sum.iter_mut().zip(&score).for_each(|(a, b)| *a += b);
        }
        let count = grams.len() as f64;
        scores.insert(x, sum.into_iter().map(|v| v / count).collect());
    }
    Ok(scores)
}

/// Weight of every output row of `layer` in the error: the scale of the BatchNorm reading
/// its output, or 1.
fn output_weights(g: &OnnxGraph, layer: &Layer) -> Result<Vec<f64>, PruneError> {
    let y = &g.nodes()[layer.node].output[0];
    let Some(bn) = g
        .nodes()
        .iter()
        .find(|n| op(n) == "BatchNormalization" && n.input.first() == Some(y))
    else {
        return Ok(vec![1.0; layer.rows]);
    };
    let read = |i: usize| g.consts.get(&bn.input[i]).and_then(|c| c.as_f32());
    let eps = attr_f(bn, "epsilon").unwrap_or(1e-5) as f64;
    match (read(1), read(4)) {
        (Some(gamma), Some(var)) if gamma.len() == layer.rows && var.len() == layer.rows => {
            Ok(gamma
                .iter()
                .zip(var)
                .map(|(&a, &v)| (a as f64).abs() / (v as f64 + eps).sqrt())
                .collect())
        }
        _ => Ok(vec![1.0; layer.rows]),
    }
}

/// Greedy backward elimination of the channels marked `free` (input channel `c` owns
/// columns `c·u .. (c+1)·u` of `layer`): returns them in removal order, cheapest first.
/// `gram` is `X̃ᵀX̃` (`cols + 1` square, intercept last); `weights` scales each output row.
fn removal_order(
    layer: &Layer,
    gram: &Mat<f64>,
    weights: &[f64],
    free: &[bool],
    ridge: f64,
) -> Vec<usize> {
    let (cols, rows) = (layer.cols, layer.rows);
    let k = cols + 1;
    let u = cols / free.len();
    let energy = (0..cols).map(|c| gram[(c, c)]).sum::<f64>() / cols as f64;
    let lambda = ridge * energy + 1e-12;
    let h = Mat::from_fn(k, k, |i, j| {
        gram[(i, j)] + if i == j && i < cols { lambda } else { 0.0 }
    });
    let mut candidates: Vec<usize> = (0..free.len()).filter(|&c| free[c]).collect();
    let Ok(llt) = h.llt(Side::Lower) else {
        return candidates;
    };
    let mut hinv = llt.solve(Mat::<f64>::identity(k, k));
    // β: k × rows, the dense weights (intercept last), rows scaled by their weight.
    let mut beta = Mat::from_fn(k, rows, |i, o| {
        let w = if i < cols {
            layer.weight[o * cols + i]
        } else {
            layer.bias[o]
        };
        w as f64 * weights[o]
    });
    let mut order = Vec::with_capacity(candidates.len());
    while !candidates.is_empty() {
        let mut best: Option<(f64, usize, Mat<f64>)> = None;
        for (idx, &c) in candidates.iter().enumerate() {
            let j0 = c * u;
            let block = Mat::from_fn(u, u, |a, b| hinv[(j0 + a, j0 + b)]);
            let Ok(inv) = block
                .llt(Side::Lower)
                .map(|l| l.solve(Mat::<f64>::identity(u, u)))
            else {
                continue;
            };
            let bj = beta.subrows(j0, u);
            let cost: f64 = (0..rows)
                .map(|o| {
                    (0..u)
                        .map(|a| bj[(a, o)] * (0..u).map(|b| inv[(a, b)] * bj[(b, o)]).sum::<f64>())
                        .sum::<f64>()
                })
                .sum();
            if best.as_ref().is_none_or(|(b, _, _)| cost < *b) {
                best = Some((cost, idx, inv));
            }
        }
        let Some((_, idx, inv)) = best else {
            // Numerically singular leftovers: remove them in index order.
            order.append(&mut candidates);
            break;
        };
        let c = candidates.remove(idx);
        order.push(c);
        let j0 = c * u;
        // Refit: β -= H⁻¹[:,J] M β_J and H⁻¹ -= H⁻¹[:,J] M H⁻¹[J,:], M = [H⁻¹]_JJ⁻¹.
        let col = hinv.subcols(j0, u).to_owned();
        let gain = &col * &inv;
        let bj = beta.subrows(j0, u).to_owned();
        beta -= &gain * &bj;
        hinv -= &gain * col.transpose();
        for a in 0..u {
            for o in 0..rows {
                beta[(j0 + a, o)] = 0.0;
            }
        }
    }
    order
}
