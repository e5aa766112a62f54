//! Calibration state of a network under construction: the value of every live tensor for
//! a small batch of seeded N(0, 1) images, computed node by node as the graph grows.
//!
//! Each new node is run by the runtime crate as a one-node model (`one_node`), once per
//! image on the cached values of its inputs, so the whole calibration costs about one
//! forward pass of the batch.
//!
//! Batch statistics matter: with one image, a channel's variance over the few positions of
//! a late 2x2 or 7x7 feature map misses how much the channel moves between images, and the
//! weights scaled from it would blow up on other inputs. The batch is sized so that the
//! last feature maps (1/32 of the input) give at least [`TARGET_SAMPLES`] values per
//! channel. Values are dropped after the last node that reads them.

use prunus_format::{Activation, Conv, Graph, Node, Op, TensorId};

use super::layers::Norm;
use super::one_node::{self, failure};
use crate::ir::{BuildError, IrModel};

/// Values per channel wanted at the last (1/32-size) feature map.
const TARGET_SAMPLES: u32 = 64;
/// Largest calibration batch.
const MAX_IMAGES: u32 = 16;
/// Floor of a measured variance or second moment (a dead channel stays finite).
const MIN_VAR: f64 = 1e-4;

/// Number of calibration images for an input of `hw x hw`.
pub(crate) fn batch_size(hw: u32) -> u32 {
    let last = u64::from(hw.div_ceil(32).max(1));
    let per_image = last * last;
    (u64::from(TARGET_SAMPLES).div_ceil(per_image) as u32).clamp(1, MAX_IMAGES)
}

/// For each node index, the tensors it is the last reader of (graph outputs excluded).
pub(crate) fn liveness(graph: &Graph) -> Vec<Vec<TensorId>> {
    let mut last = vec![None; graph.tensors.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        for &t in &node.inputs {
            last[t as usize] = Some(i);
        }
    }
    let mut frees = vec![Vec::new(); graph.nodes.len()];
    for (t, l) in last.into_iter().enumerate() {
        if let Some(i) = l.filter(|_| !graph.outputs.contains(&(t as TensorId))) {
            frees[i].push(t as TensorId);
        }
    }
    frees
}

/// Values of the live tensors, per calibration image.
pub(crate) struct Calibration {
    /// `images[b][tensor]`: the value of `tensor` for image `b` (empty once dead).
    images: Vec<Vec<Vec<f32>>>,
    /// From [`liveness`]; empty to keep every value.
    frees: Vec<Vec<TensorId>>,
}

impl Calibration {
    /// Calibration of a graph whose input tensor `input` takes `inputs` (one per image).
    pub fn new(input: TensorId, inputs: Vec<Vec<f32>>, frees: Vec<Vec<TensorId>>) -> Self {
        let images = inputs
            .into_iter()
            .map(|v| {
                let mut values = vec![Vec::new(); input as usize + 1];
                values[input as usize] = v;
                values
            })
            .collect();
        Calibration { images, frees }
    }

    /// The values of tensor `id`, one per image (empty once dropped).
    pub fn values(&self, id: TensorId) -> impl Iterator<Item = &[f32]> {
        self.images
            .iter()
            .map(move |img| img.get(id as usize).map_or(&[][..], |v| v.as_slice()))
    }

    /// Evaluates the last node of `model` (whose weights are final) for every image.
    pub fn eval_last(&mut self, model: &IrModel) -> Result<(), BuildError> {
        let Some(node) = model.graph.nodes.last() else {
            return Ok(());
        };
        let outs = self.run(model, node, &node.op)?;
        self.store(model, node.outputs[0], outs);
        Ok(())
    }

    /// Calibrates the last node of `model`, a conv or Gemm whose weight holds its drawn,
    /// unscaled values (its bias has none yet): runs it without bias and activation,
    /// derives one scale per weight row and the bias as `norm` says (see `layers`; `noise`
    /// holds the random offsets, one per row), and stores its output for the scaled
    /// weights. Returns `(scale, bias)`; the caller scales the weight rows.
    pub fn fit_last(
        &mut self,
        model: &IrModel,
        norm: Norm,
        noise: &[f64],
    ) -> Result<(Vec<f32>, Vec<f32>), BuildError> {
        let Some(node) = model.graph.nodes.last() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (raw, weight, groups, act) = match &node.op {
            Op::Conv(c) => {
                let raw = Conv {
                    bias: None,
                    activation: Activation::None,
                    ..c.clone()
                };
                (Op::Conv(raw), c.weight, c.groups, c.activation)
            }
            Op::Gemm {
                weight, activation, ..
            } => {
                let raw = Op::Gemm {
                    weight: *weight,
                    bias: None,
                    activation: Activation::None,
                };
                (raw, *weight, 1, *activation)
            }
            other => return Err(failure(node, format!("cannot fit a {}", other.kind_name()))),
        };
        let mut outs = self.run(model, node, &raw)?;
        let ws = &model.graph.weights[weight as usize].shape;
        let rows = ws.first().map_or(1, |&r| r as usize);
        let taps = ws.iter().skip(2).product::<u32>() as usize;
        let plane = |id: TensorId| model.shape(id).iter().skip(2).product::<u32>() as usize;
        let out_plane = plane(node.outputs[0]);
        let (scale, shift): (Vec<f32>, Vec<f32>) = match norm {
            Norm::Bn => batch_stats(outs.iter().map(|v| v.as_slice()), out_plane)
                .into_iter()
                .zip(noise)
                .map(|((m, v), beta)| {
                    let s = 1.0 / v.max(MIN_VAR).sqrt();
                    (s as f32, (beta - s * m) as f32)
                })
                .unzip(),
            Norm::Bias | Norm::Bare => {
                let q: Vec<f64> = batch_stats(self.values(node.inputs[0]), plane(node.inputs[0]))
                    .into_iter()
                    .map(|(m, v)| m * m + v)
                    .collect();
                let w = &model.weights[weight as usize];
                row_second_moments(w, rows, groups as usize, taps, &q)
                    .iter()
                    .zip(noise)
                    .map(|(s, b)| {
                        let b = if norm == Norm::Bias { *b as f32 } else { 0.0 };
                        ((1.0 / s.max(MIN_VAR).sqrt()) as f32, b)
                    })
                    .unzip()
            }
        };
        for out in &mut outs {
            scale_bias_act(out, out_plane, &scale, &shift, act);
        }
        self.store(model, node.outputs[0], outs);
        Ok((scale, shift))
    }

    /// Runs `op` in place of the op of `node` (a node of `model`) on its own, once per
    /// image on the cached values of the node's inputs: the output of each image.
    fn run(&self, model: &IrModel, node: &Node, op: &Op) -> Result<Vec<Vec<f32>>, BuildError> {
        let inputs = self.images.iter().map(|img| {
            node.inputs
                .iter()
                .map(|&t| img.get(t as usize).map_or(&[][..], |v| v.as_slice()))
                .collect()
        });
        one_node::run(model, node, op, inputs)
    }

    /// Stores the values of tensor `id` (written by the last node of `model`) and drops the
    /// values that node was the last reader of.
    fn store(&mut self, model: &IrModel, id: TensorId, outs: Vec<Vec<f32>>) {
        for (img, out) in self.images.iter_mut().zip(outs) {
            if img.len() <= id as usize {
                img.resize(id as usize + 1, Vec::new());
            }
            img[id as usize] = out;
        }
        let index = model.graph.nodes.len().wrapping_sub(1);
        for &dead in self.frees.get(index).map_or(&[][..], |f| f.as_slice()) {
            for img in &mut self.images {
                if let Some(v) = img.get_mut(dead as usize) {
                    *v = Vec::new();
                }
            }
        }
    }
}

/// Applies `y = act(y * scale[c] + bias[c])` per channel of `plane` elements.
fn scale_bias_act(y: &mut [f32], plane: usize, scale: &[f32], bias: &[f32], act: Activation) {
    for ((chunk, s), b) in y.chunks_mut(plane.max(1)).zip(scale).zip(bias) {
        chunk.iter_mut().for_each(|v| *v = act.apply(*v * s + b));
    }
}

/// Per-channel `(mean, var)` over all images and positions (planes of `plane` elements).
pub(crate) fn batch_stats<'a>(
    values: impl Iterator<Item = &'a [f32]>,
    plane: usize,
) -> Vec<(f64, f64)> {
    let mut sums: Vec<(f64, f64, f64)> = Vec::new();
    for v in values {
        for (c, chunk) in v.chunks(plane.max(1)).enumerate() {
            if sums.len() <= c {
                sums.push((0.0, 0.0, 0.0));
            }
            let s = &mut sums[c];
            s.0 += chunk.len() as f64;
            s.1 += chunk.iter().map(|&x| f64::from(x)).sum::<f64>();
            s.2 += chunk
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>();
        }
    }
    sums.into_iter()
        .map(|(n, s1, s2)| {
            let mean = s1 / n.max(1.0);
            (mean, (s2 / n.max(1.0) - mean * mean).max(0.0))
        })
        .collect()
}

/// For each row of a grouped conv (or Gemm, `groups = taps = 1`) weight with `rows` rows
/// and `taps` values per input channel, `sum w^2 E[x^2]` given the per-input-channel second
/// moments `q`: the expected second moment of the row's output over random weight signs,
/// which unlike the realised one never nearly cancels.
pub(crate) fn row_second_moments(
    w: &[f32],
    rows: usize,
    groups: usize,
    taps: usize,
    q: &[f64],
) -> Vec<f64> {
    let fan_in = w.len() / rows.max(1);
    let per_in = fan_in / taps.max(1);
    let per_group_out = (rows / groups.max(1)).max(1);
    w.chunks(fan_in.max(1))
        .enumerate()
        .map(|(o, row)| {
            let base = (o / per_group_out) * per_in;
            row.chunks(taps.max(1))
                .enumerate()
                .map(|(j, t)| q[base + j] * t.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>())
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_moments_of_grouped_rows() {
        // 2 groups, 2 rows, 1 input channel per group, 2 taps.
        let w = [1.0f32, 2.0, 3.0, 0.0];
        assert_eq!(
            row_second_moments(&w, 2, 2, 2, &[10.0, 100.0]),
            [50.0, 900.0]
        );
    }

    #[test]
    fn batch_sizes() {
        assert_eq!(batch_size(224), 2);
        assert_eq!(batch_size(299), 1);
        assert_eq!(batch_size(64), 16);
        assert_eq!(batch_size(1), 16);
    }

    #[test]
    fn stats_over_images_and_positions() {
        let a = [1.0f32, 3.0, 0.0, 0.0];
        let b = [5.0f32, 7.0, 2.0, 2.0];
        let s = batch_stats([&a[..], &b[..]].into_iter(), 2);
        assert_eq!(s[0], (4.0, 5.0));
        assert_eq!(s[1], (1.0, 1.0));
    }
}
