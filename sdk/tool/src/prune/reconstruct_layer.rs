//! One linear layer (`Conv` or `Gemm`) as rows of weights over input patches, and the
//! least-squares refit of those rows.
//!
//! [`Fit`] accumulates, over sampled output positions of calibration samples, the Gram
//! matrix `X̃ᵀX̃` of the pruned layer's input patches (with a constant column for the bias)
//! and the cross products `X̃ᵀY` with the dense layer's pre-BatchNorm outputs, plus the
//! per-channel mean and variance of both outputs. [`Fit::solve`] then refits every output
//! row on its kept inputs: `(X̃_Sᵀ X̃_S + λI) w = X̃_Sᵀ y` (ridge `λ` relative to the mean
//! input energy), one Cholesky factorization per group when every row keeps all its
//! inputs (channel pruning), one per row otherwise (unstructured, block, N:M).
//! Positions added as held out ([`Fit::add_held_out`]) choose `λ` per group: the ridge whose
//! fit on the other positions has the least error on them ([`super::reconstruct_normal`]).

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

use super::onnx_graph::{Const, OnnxGraph, attr_f, attr_i, attr_ints, node_name, op};
use super::reconstruct_normal::{Accum, choose_ridge, ridge_of};
use super::reconstruct_obs::obs_prune;
use super::shapes::pads_of;
use super::{Granularity, PruneError};

/// Geometry of a convolution (batch 1, NCHW).
#[derive(Clone, Debug)]
struct ConvGeom {
    cin: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dil: [usize; 2],
    pads: [usize; 4],
}

/// A Conv or Gemm node with its weights as `rows × cols` (output channel × inputs of one
/// group) and its bias.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Node index in its graph.
    pub node: usize,
    /// Output channels.
    pub rows: usize,
    /// Inputs of one output channel.
    pub cols: usize,
    /// Groups (1 for Gemm).
    pub groups: usize,
    /// Row-major `rows × cols` weights.
    pub weight: Vec<f32>,
    /// Per-output-channel bias (zeros when the node has none).
    pub bias: Vec<f32>,
    conv: Option<ConvGeom>,
    trans_b: bool,
    dims: Vec<usize>,
}

fn pair(n: &crate::onnx::proto::NodeProto, name: &str) -> [usize; 2] {
    match attr_ints(n, name) {
        Some(v) if v.len() == 2 => [v[0].max(1) as usize, v[1].max(1) as usize],
        _ => [1, 1],
    }
}

impl Layer {
    /// The layer of node `node`, or `None` when it is not a Conv / Gemm (alpha = beta = 1,
    /// per-channel or no bias) with constant f32 weights over a 4-D / 2-D input.
    pub fn from_node(g: &OnnxGraph, node: usize) -> Result<Option<Layer>, PruneError> {
        let n = &g.nodes()[node];
        let Some(w) = n.input.get(1).and_then(|t| g.consts.get(t)) else {
            return Ok(None);
        };
        let Some(wdata) = w.as_f32() else {
            return Ok(None);
        };
        let x = g.shape(&n.input[0])?;
        let bias_const = n
            .input
            .get(2)
            .filter(|b| !b.is_empty())
            .map(|b| g.consts.get(b));
        let bias_of = |rows: usize| -> Option<Vec<f32>> {
            match bias_const {
                None => Some(vec![0.0; rows]),
                Some(Some(c)) if c.as_f32().is_some_and(|v| v.len() == rows) => {
                    c.as_f32().map(<[f32]>::to_vec)
                }
                _ => None,
            }
        };
        match op(n) {
            "Conv" if w.dims.len() == 4 && x.len() == 4 && x[0] == 1 => {
                let y = g.shape(&n.output[0])?;
                let groups = attr_i(n, "group").unwrap_or(1).max(1) as usize;
                let (rows, cig) = (w.dims[0], w.dims[1]);
                if rows % groups != 0 || cig * groups != x[1] || y.len() != 4 {
                    return Err(PruneError::Node {
                        node: node_name(n),
                        reason: "weight shape does not match the input channels".into(),
                    });
                }
                let kernel = [w.dims[2], w.dims[3]];
                let (stride, dil) = (pair(n, "strides"), pair(n, "dilations"));
                let pads = pads_of(n, [x[2], x[3]], kernel, stride, dil);
                let Some(bias) = bias_of(rows) else {
                    return Ok(None);
                };
                Ok(Some(Layer {
                    node,
                    rows,
                    cols: cig * kernel[0] * kernel[1],
                    groups,
                    weight: wdata.to_vec(),
                    bias,
                    conv: Some(ConvGeom {
                        cin: x[1],
                        in_hw: [x[2], x[3]],
                        out_hw: [y[2], y[3]],
                        kernel,
                        stride,
                        dil,
                        pads,
                    }),
                    trans_b: true,
                    dims: w.dims.clone(),
                }))
            }
            "Gemm" if w.dims.len() == 2 && x.len() == 2 && x[0] == 1 => {
                if attr_f(n, "alpha").unwrap_or(1.0) != 1.0
                    || attr_f(n, "beta").unwrap_or(1.0) != 1.0
                    || attr_i(n, "transA").unwrap_or(0) != 0
                {
                    return Ok(None);
                }
                let trans_b = attr_i(n, "transB").unwrap_or(0) != 0;
                let (rows, cols) = if trans_b {
                    (w.dims[0], w.dims[1])
                } else {
                    (w.dims[1], w.dims[0])
                };
                let Some(bias) = bias_of(rows) else {
                    return Ok(None);
                };
                let weight = if trans_b {
                    wdata.to_vec()
                } else {
                    (0..rows * cols)
                        .map(|i| wdata[(i % cols) * rows + i / cols])
                        .collect()
                };
                Ok(Some(Layer {
                    node,
                    rows,
                    cols,
                    groups: 1,
                    weight,
                    bias,
                    conv: None,
                    trans_b,
                    dims: w.dims.clone(),
                }))
            }
            _ => Ok(None),
        }
    }

    /// Output positions of one sample.
    pub fn positions(&self) -> usize {
        self.conv.as_ref().map_or(1, |c| c.out_hw[0] * c.out_hw[1])
    }

    /// Elements of one input sample.
    pub fn input_len(&self) -> usize {
        match &self.conv {
            Some(c) => c.cin * c.in_hw[0] * c.in_hw[1],
            None => self.cols,
        }
    }

    /// The group of output channel `o`.
    pub fn group_of(&self, o: usize) -> usize {
        o / (self.rows / self.groups).max(1)
    }

    /// Fills `out[..cols]` with the inputs of group `grp` at output position `pos`.
    pub fn patch(&self, x: &[f32], pos: usize, grp: usize, out: &mut [f64]) {
        let Some(c) = &self.conv else {
            out.iter_mut().zip(x).for_each(|(o, &v)| *o = v as f64);
            return;
        };
        let cig = c.cin / self.groups;
        let [kh, kw] = c.kernel;
        let [ih, iw] = c.in_hw;
        let (oy, ox) = (pos / c.out_hw[1], pos % c.out_hw[1]);
        for ci in 0..cig {
            let plane = &x[(grp * cig + ci) * ih * iw..][..ih * iw];
            for i in 0..kh {
                let yy = (oy * c.stride[0] + i * c.dil[0]).checked_sub(c.pads[0]);
                for j in 0..kw {
                    let xx = (ox * c.stride[1] + j * c.dil[1]).checked_sub(c.pads[1]);
                    out[(ci * kh + i) * kw + j] = match (yy, xx) {
                        (Some(yy), Some(xx)) if yy < ih && xx < iw => plane[yy * iw + xx] as f64,
                        _ => 0.0,
                    };
                }
            }
        }
    }

    /// Output of row `o` for a patch of its group.
    pub fn output(&self, o: usize, patch: &[f64]) -> f64 {
        self.weight[o * self.cols..][..self.cols]
            .iter()
            .zip(patch)
            .map(|(&w, &x)| w as f64 * x)
            .sum::<f64>()
            + self.bias[o] as f64
    }

    /// The weights in the node's own layout.
    pub fn weight_const(&self) -> Const {
        let data = if self.trans_b {
            self.weight.clone()
        } else {
            let (rows, cols) = (self.rows, self.cols);
            (0..rows * cols)
                .map(|i| self.weight[(i % rows) * cols + i / rows])
                .collect()
        };
        Const::f32(self.dims.clone(), data)
    }
}

/// Largest system (inputs + 1) a layer is refit with.
pub const MAX_SYSTEM: usize = 4096;

/// Sufficient statistics of one layer over calibration samples.
pub struct Fit {
    /// Number of accumulated positions.
    pub n: usize,
    /// Per pruned output channel: sum and sum of squares of the dense target.
    dense: Vec<[f64; 2]>,
    /// Per pruned output channel: sum and sum of squares of the pruned output.
    pruned: Vec<[f64; 2]>,
    /// Normal equations over every position (least squares only).
    normal: Option<Accum>,
    /// Normal equations over the held-out positions only (the ridge is chosen on them).
    held_out: Option<Accum>,
    /// Relative ridge chosen by the last [`Fit::solve`] of each group.
    pub chosen_ridge: Vec<f64>,
}

/// Per-channel means and variances of the dense and pruned outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputStats {
    /// Dense (target) mean per channel.
    pub mean_dense: Vec<f64>,
    /// Dense variance per channel.
    pub var_dense: Vec<f64>,
    /// Pruned mean per channel.
    pub mean_pruned: Vec<f64>,
    /// Pruned variance per channel.
    pub var_pruned: Vec<f64>,
}

impl Fit {
    /// Statistics of `layer` (pruned); `least_squares` also collects the normal equations.
    pub fn new(layer: &Layer, least_squares: bool) -> Self {
        let ls = least_squares && layer.cols < MAX_SYSTEM;
        Fit {
            n: 0,
            dense: vec![[0.0; 2]; layer.rows],
            pruned: vec![[0.0; 2]; layer.rows],
            normal: ls.then(|| Accum::new(layer)),
            held_out: None,
            chosen_ridge: Vec::new(),
        }
    }

    /// Adds one output position: `patches[grp]` are the pruned layer's inputs of
    /// group `grp` (length `cols`), `target[o]` the dense output of pruned channel `o`.
    pub fn add(&mut self, layer: &Layer, patches: &[Vec<f64>], target: &[f64]) {
        let per = layer.rows / layer.groups;
        for (o, &t) in target.iter().enumerate().take(layer.rows) {
            let y = layer.output(o, &patches[o / per]);
            self.pruned[o][0] += y;
            self.pruned[o][1] += y * y;
            self.dense[o][0] += t;
            self.dense[o][1] += t * t;
        }
        if let Some(normal) = &mut self.normal {
            normal.push(layer, patches, target);
        }
        self.n += 1;
    }

    /// [`Fit::add`] of a held-out position: it counts in every statistic and in the final
    /// refit, and [`Fit::solve`] chooses the ridge by the error on the held-out positions
    /// of a fit on the others.
    pub fn add_held_out(&mut self, layer: &Layer, patches: &[Vec<f64>], target: &[f64]) {
        if self.normal.is_some() {
            self.held_out
                .get_or_insert_with(|| Accum::new(layer))
                .push(layer, patches, target);
        }
        self.add(layer, patches, target);
    }

    fn flush(&mut self) {
        for acc in [&mut self.normal, &mut self.held_out].into_iter().flatten() {
            acc.flush();
        }
    }

    /// Output statistics with the layer's current weights.
    pub fn stats(&self) -> OutputStats {
        let n = self.n.max(1) as f64;
        let mv = |s: &[[f64; 2]]| -> (Vec<f64>, Vec<f64>) {
            s.iter()
                .map(|&[a, b]| (a / n, (b / n - (a / n).powi(2)).max(0.0)))
                .unzip()
        };
        let (mean_dense, var_dense) = mv(&self.dense);
        let (mean_pruned, var_pruned) = mv(&self.pruned);
        OutputStats {
            mean_dense,
            var_dense,
            mean_pruned,
            var_pruned,
        }
    }

    /// Refits the rows of `layer` on their kept (nonzero) inputs and updates the pruned
    /// output statistics. With `reselect`, the zeros of every group are first chosen
    /// again, as many as there are, by [`obs_prune`] with that pattern from the
    /// least-squares weights of all inputs. A row is left alone when it has fewer than
    /// `min_ratio` samples per unknown or its system is not positive definite. Returns the
    /// refit row count.
    pub fn solve(
        &mut self,
        layer: &mut Layer,
        ridge: f64,
        min_ratio: f64,
        reselect: Option<Granularity>,
    ) -> usize {
        self.flush();
        let Some(normal) = self.normal.take() else {
            return 0;
        };
        let held_out = self.held_out.take();
        let (k, per) = (layer.cols + 1, layer.rows / layer.groups);
        let mut refit = 0;
        self.chosen_ridge.clear();
        for (grp, (gram, cross)) in normal.normal.iter().enumerate() {
            let relative = match &held_out {
                Some(h) => choose_ridge(gram, cross, &h.normal[grp], layer.cols, ridge),
                None => ridge,
            };
            self.chosen_ridge.push(relative);
            let lambda = ridge_of(gram, layer.cols, relative);
            let rows: Vec<usize> = (grp * per..(grp + 1) * per).collect();
            if let Some(pattern) = reselect
                && (self.n as f64) >= min_ratio * k as f64
            {
                reselect_group(layer, &rows, gram, cross, lambda, pattern);
            }
            let kept = |o: usize| -> Vec<usize> {
                (0..layer.cols)
                    .filter(|&c| layer.weight[o * layer.cols + c] != 0.0)
                    .chain([layer.cols])
                    .collect()
            };
            let full = rows.iter().all(|&o| kept(o).len() == k);
            let mut solutions: Vec<(usize, Vec<usize>, Vec<f64>)> = Vec::new();
            if full && (self.n as f64) >= min_ratio * k as f64 {
                let a = Mat::from_fn(k, k, |i, j| {
                    gram[(i, j)]
                        + if i == j && i < layer.cols {
                            lambda
                        } else {
                            0.0
                        }
                });
                if let Ok(llt) = a.llt(Side::Lower) {
                    let sol = llt.solve(cross);
                    for (r, &o) in rows.iter().enumerate() {
                        let w = (0..k).map(|i| sol[(i, r)]).collect();
                        solutions.push((o, (0..k).collect(), w));
                    }
                }
            } else {
                for (r, &o) in rows.iter().enumerate() {
                    let s = kept(o);
                    if (self.n as f64) < min_ratio * s.len() as f64 {
                        continue;
                    }
                    let a = Mat::from_fn(s.len(), s.len(), |i, j| {
                        gram[(s[i], s[j])]
                            + if i == j && s[i] < layer.cols {
                                lambda
                            } else {
                                0.0
                            }
                    });
                    let b = Mat::from_fn(s.len(), 1, |i, _| cross[(s[i], r)]);
                    if let Ok(llt) = a.llt(Side::Lower) {
                        let sol = llt.solve(&b);
                        let w = (0..s.len()).map(|i| sol[(i, 0)]).collect();
                        solutions.push((o, s, w));
                    }
                }
            }
            for (o, s, w) in solutions {
                if w.iter().any(|v| !v.is_finite()) {
                    continue;
                }
                let row = &mut layer.weight[o * layer.cols..][..layer.cols];
                for (&c, &v) in s.iter().zip(&w) {
                    if c < layer.cols {
                        row[c] = v as f32;
                    } else {
                        layer.bias[o] = v as f32;
                    }
                }
                self.pruned[o] = gram_stats(layer, o, gram);
                refit += 1;
            }
        }
        refit
    }

    /// Re-chooses the zeros of every group of `layer` ([`obs_prune`] with `pattern`, as
    /// many as the group has, compensated by the remaining weights) and updates the pruned
    /// output statistics, without the per-row refit of [`Fit::solve`]. The accumulated
    /// statistics are kept, so the same fit can try several masks of one layer (the
    /// sensitivity sweep with recovery). Groups with fewer than `min_ratio` samples per
    /// unknown keep their zeros.
    pub fn reselect(
        &mut self,
        layer: &mut Layer,
        ridge: f64,
        min_ratio: f64,
        pattern: Granularity,
    ) {
        self.flush();
        let Some(normal) = &self.normal else {
            return;
        };
        let (k, per) = (layer.cols + 1, layer.rows / layer.groups);
        for (grp, (gram, cross)) in normal.normal.iter().enumerate() {
            let rows: Vec<usize> = (grp * per..(grp + 1) * per).collect();
            if (self.n as f64) >= min_ratio * k as f64 {
                let lambda = ridge_of(gram, layer.cols, ridge);
                reselect_group(layer, &rows, gram, cross, lambda, pattern);
            }
            for &o in &rows {
                self.pruned[o] = gram_stats(layer, o, gram);
            }
        }
    }
}

/// Sum and sum of squares of row `o`'s output over the accumulated positions, from its
/// group's Gram matrix: `w̃ᵀ Σx̃` and `w̃ᵀ G w̃` (`w̃` the row with its bias).
fn gram_stats(layer: &Layer, o: usize, gram: &Mat<f64>) -> [f64; 2] {
    let k = layer.cols + 1;
    let full_w: Vec<f64> = layer.weight[o * layer.cols..][..layer.cols]
        .iter()
        .map(|&v| v as f64)
        .chain([layer.bias[o] as f64])
        .collect();
    let sum: f64 = (0..k).map(|c| full_w[c] * gram[(c, layer.cols)]).sum();
    let sq: f64 = (0..k)
        .map(|i| full_w[i] * (0..k).map(|j| gram[(i, j)] * full_w[j]).sum::<f64>())
        .sum();
    [sum, sq]
}

/// Re-chooses the zeros of the rows of one group ([`obs_prune`] on the least-squares
/// weights with every input) and writes the pruned weights; rows keep their bias.
fn reselect_group(
    layer: &mut Layer,
    rows: &[usize],
    gram: &Mat<f64>,
    cross: &Mat<f64>,
    lambda: f64,
    pattern: Granularity,
) {
    let (cols, k) = (layer.cols, layer.cols + 1);
    let zeros: usize = rows
        .iter()
        .map(|&o| {
            layer.weight[o * cols..(o + 1) * cols]
                .iter()
                .filter(|&&v| v == 0.0)
                .count()
        })
        .sum();
    if zeros == 0 {
        return;
    }
    let h = Mat::from_fn(k, k, |i, j| {
        gram[(i, j)] + if i == j && i < cols { lambda } else { 0.0 }
    });
    let Ok(llt) = h.llt(Side::Lower) else {
        return;
    };
    let full = llt.solve(cross);
    let mut w: Vec<f64> = (0..rows.len() * k).map(|i| full[(i % k, i / k)]).collect();
    if !obs_prune(&mut w, rows.len(), &h, pattern, zeros) {
        return;
    }
    for (r, &o) in rows.iter().enumerate() {
        for c in 0..cols {
            layer.weight[o * cols + c] = w[r * k + c] as f32;
        }
        layer.bias[o] = w[r * k + cols] as f32;
    }
}
