//! A small network builder on top of [`IrModel`] for the zoo families: convolutions with
//! folded BatchNorm and fused activation, squeeze-excite, pools, residual adds, channel
//! plumbing and the classifier.
//!
//! [`Net`] owns the random generator. Weights are drawn He-normal
//! (`std = sqrt(2 / fan_in)`), then each output channel is rescaled the way a calibrated
//! BatchNorm would (see [`super::moments`]): a conv followed by BatchNorm ([`Norm::Bn`])
//! gets unit-variance pre-activations and a bias that centres each channel at a small
//! N(0, 0.05) offset (the folded `beta`); a conv or Gemm without BatchNorm ([`Norm::Bias`],
//! [`Norm::Bare`]) gets unit second moment pre-activations and an N(0, 0.05) bias (or none).
//! This keeps activations O(1) through every family without running the model.

use prunus_format::{Activation, BinaryKind, Conv, Op, Pool, TensorId};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

use super::moments::{self, Moments};
use crate::ir::{BuildError, IrModel};

/// ReLU.
pub(crate) const RELU: Activation = Activation::Relu;
/// ReLU6, i.e. `Clip { 0, 6 }`.
pub(crate) const RELU6: Activation = Activation::Clip { min: 0.0, max: 6.0 };
/// Hard swish (MobileNetV3).
pub(crate) const HSWISH: Activation = Activation::HardSwish;
/// Hard sigmoid `relu6(x + 3) / 6`, the squeeze-excite gate.
pub(crate) const HSIGMOID: Activation = Activation::HardSigmoid {
    alpha: 1.0 / 6.0,
    beta: 0.5,
};

/// Standard deviation of the random biases and folded BatchNorm offsets.
const BIAS_STD: f64 = 0.05;

/// Result of adding one layer: its output tensor.
pub(crate) type Layer = Result<TensorId, BuildError>;

/// What follows a convolution in the source model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Norm {
    /// A BatchNorm, folded into the conv's weights and a new bias.
    Bn,
    /// Nothing: the conv has its own bias.
    Bias,
    /// Nothing, and the conv has no bias (Xception's depthwise convs).
    Bare,
}

/// Convolution settings, built with [`cv`] or [`dw`] and the chained setters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cv {
    cout: u32,
    k: u32,
    stride: u32,
    pads: Option<[u32; 4]>,
    groups: u32,
    act: Activation,
    norm: Norm,
}

/// A `k x k` convolution to `cout` channels: stride 1, symmetric padding `(k - 1) / 2`,
/// one group, no activation, followed by BatchNorm.
pub(crate) fn cv(cout: u32, k: u32) -> Cv {
    Cv {
        cout,
        k,
        stride: 1,
        pads: None,
        groups: 1,
        act: Activation::None,
        norm: Norm::Bn,
    }
}

/// A `k x k` depthwise convolution (as many groups and outputs as input channels).
pub(crate) fn dw(k: u32) -> Cv {
    Cv {
        cout: 0,
        groups: 0,
        ..cv(0, k)
    }
}

impl Cv {
    /// Sets the stride.
    pub fn stride(self, stride: u32) -> Self {
        Cv { stride, ..self }
    }
    /// Sets the same padding on all four sides.
    pub fn pad(self, pad: u32) -> Self {
        self.pads([pad; 4])
    }
    /// Sets the padding: top, left, bottom, right.
    pub fn pads(self, pads: [u32; 4]) -> Self {
        Cv { pads: Some(pads), ..self }
    }
    /// Sets the number of groups.
    pub fn groups(self, groups: u32) -> Self {
        Cv { groups, ..self }
    }
    /// Sets the fused activation.
    pub fn act(self, act: Activation) -> Self {
        Cv { act, ..self }
    }
    /// Marks the conv as having its own bias and no BatchNorm.
    pub fn bias(self) -> Self {
        Cv { norm: Norm::Bias, ..self }
    }
    /// Marks the conv as having neither bias nor BatchNorm.
    pub fn bare(self) -> Self {
        Cv { norm: Norm::Bare, ..self }
    }
}

/// A network under construction: the model, the random generator and the per-channel
/// statistics of every tensor.
pub(crate) struct Net {
    model: IrModel,
    rng: StdRng,
    stats: Vec<Moments>,
    bn_channels: u64,
}

impl Net {
    /// An empty network named `name` seeded with `seed`, with the graph input `input`
    /// of shape `[1, 3, hw, hw]`.
    pub fn new(name: &str, producer: &str, seed: u64, hw: u32) -> (Net, TensorId) {
        let mut net = Net {
            model: IrModel::new(name, producer),
            rng: StdRng::seed_from_u64(seed),
            stats: Vec::new(),
            bn_channels: 0,
        };
        let input = net.model.add_input("input", &[1, 3, hw, hw]);
        net.record(input, Moments::standard(3));
        (net, input)
    }

    /// Channels of tensor `x` (axis 1).
    pub fn channels(&self, x: TensorId) -> u32 {
        self.model.shape(x).get(1).copied().unwrap_or(1)
    }

    /// Height of tensor `x` (axis 2; 1 if it has none).
    pub fn height(&self, x: TensorId) -> u32 {
        self.model.shape(x).get(2).copied().unwrap_or(1)
    }

    /// Channels of the BatchNorms folded so far (each one's `gamma` and `beta` became
    /// one bias value per channel).
    pub fn bn_channels(&self) -> u64 {
        self.bn_channels
    }

    /// Finishes the graph: the tensor `output` is renamed `output` and made the graph output.
    pub fn finish(mut self, output: TensorId, extra: Vec<(String, String)>) -> IrModel {
        self.model.graph.tensors[output as usize].name = "output".to_string();
        self.model.set_outputs(&[output]);
        self.model.graph.metadata.extra = extra;
        self.model
    }

    fn record(&mut self, id: TensorId, stats: Moments) {
        let i = id as usize;
        if self.stats.len() <= i {
            self.stats.resize(i + 1, Moments::default());
        }
        self.stats[i] = stats;
    }

    fn stats(&self, id: TensorId) -> &Moments {
        &self.stats[id as usize]
    }

    fn normal(&mut self, std: f64) -> f64 {
        std * self.rng.sample::<f64, _>(StandardNormal)
    }

    /// A convolution with folded BatchNorm (or its own bias) and fused activation.
    pub fn conv(&mut self, name: &str, x: TensorId, c: Cv) -> Layer {
        let cin = self.channels(x);
        let cout = if c.cout == 0 { cin } else { c.cout };
        let groups = if c.groups == 0 { cin } else { c.groups }.max(1);
        let taps = (c.k * c.k) as usize;
        let fan_in = (cin / groups) as usize * taps;
        let he = (2.0 / fan_in.max(1) as f64).sqrt();
        let data: Vec<f32> = (0..cout as usize * fan_in).map(|_| self.normal(he) as f32).collect();
        let weight = self.model.add_weight(&format!("{name}.weight"), &[cout, cin / groups, c.k, c.k], data);
        let bias = (c.norm != Norm::Bare)
            .then(|| self.model.add_weight(&format!("{name}.bias"), &[cout], vec![0.0; cout as usize]));
        let op = Op::Conv(Conv {
            weight,
            bias,
            kernel: [c.k; 2],
            stride: [c.stride; 2],
            pads: c.pads.unwrap_or([(c.k - 1) / 2; 4]),
            dilation: [1, 1],
            groups,
            activation: c.act,
        });
        let y = self.model.add_node(name, op, &[x])?;
        // The shapes are consistent: rescale the weights to the statistics they see.
        let stats = self.normalize(x, weight, bias, cout as usize, groups as usize, taps, c.norm, c.act);
        self.record(y, stats);
        if c.norm == Norm::Bn {
            self.bn_channels += u64::from(cout);
        }
        Ok(y)
    }

    /// Rescales each output row of `weight` and sets `bias` as described in the module docs;
    /// returns the statistics after the activation.
    #[allow(clippy::too_many_arguments)]
    fn normalize(
        &mut self,
        x: TensorId,
        weight: u32,
        bias: Option<u32>,
        cout: usize,
        groups: usize,
        taps: usize,
        norm: Norm,
        act: Activation,
    ) -> Moments {
        let w = &self.model.weights[weight as usize];
        let pre = moments::linear_stats(self.stats(x), w, cout, groups, taps);
        let fan_in = w.len() / cout.max(1);
        let mut out = Moments::default();
        let mut biases = Vec::with_capacity(cout);
        for (o, &(m, v)) in pre.iter().enumerate() {
            let (scale, b) = match norm {
                Norm::Bn => {
                    let scale = 1.0 / v.max(1e-12).sqrt();
                    (scale, self.normal(BIAS_STD) - scale * m)
                }
                Norm::Bias => (1.0 / (m * m + v).max(1e-12).sqrt(), self.normal(BIAS_STD)),
                Norm::Bare => (1.0 / (m * m + v).max(1e-12).sqrt(), 0.0),
            };
            let row = &mut self.model.weights[weight as usize][o * fan_in..(o + 1) * fan_in];
            row.iter_mut().for_each(|w| *w = (*w as f64 * scale) as f32);
            let (am, av) = moments::activation(act, scale * m + b, scale * scale * v);
            out.mean.push(am);
            out.var.push(av);
            biases.push(b as f32);
        }
        if let Some(bias) = bias {
            self.model.weights[bias as usize] = biases;
        }
        out
    }

    /// A fully connected layer on a `[1, K]` tensor, with bias and fused activation.
    pub fn linear(&mut self, name: &str, x: TensorId, out: u32, act: Activation) -> Layer {
        let k = self.model.shape(x).get(1).copied().unwrap_or(1);
        let he = (2.0 / k.max(1) as f64).sqrt();
        let data: Vec<f32> = (0..out as usize * k as usize).map(|_| self.normal(he) as f32).collect();
        let weight = self.model.add_weight(&format!("{name}.weight"), &[out, k], data);
        let bias = self.model.add_weight(&format!("{name}.bias"), &[out], vec![0.0; out as usize]);
        let op = Op::Gemm {
            weight,
            bias: Some(bias),
            activation: act,
        };
        let y = self.model.add_node(name, op, &[x])?;
        let stats = self.normalize(x, weight, Some(bias), out as usize, 1, 1, Norm::Bias, act);
        self.record(y, stats);
        Ok(y)
    }

    /// Squeeze-excite: global pool, 1x1 conv to `squeeze` channels with ReLU, 1x1 conv back
    /// with the hard-sigmoid gate, and the channel-wise product with `x`.
    pub fn se(&mut self, name: &str, x: TensorId, squeeze: u32) -> Layer {
        let c = self.channels(x);
        let s = self.global_pool(&format!("{name}.avgpool"), x)?;
        let s = self.conv(&format!("{name}.fc1"), s, cv(squeeze, 1).bias().act(RELU))?;
        let s = self.conv(&format!("{name}.fc2"), s, cv(c, 1).bias().act(HSIGMOID))?;
        self.mul(&format!("{name}.scale"), x, s)
    }

    /// A standalone ReLU (when its input has other, non-rectified readers).
    pub fn relu(&mut self, name: &str, x: TensorId) -> Layer {
        let y = self.model.add_node(name, Op::Activation(RELU), &[x])?;
        let stats = self.stats(x).map(|m, v| moments::activation(RELU, m, v));
        self.record(y, stats);
        Ok(y)
    }

    /// `act(a + b)`.
    pub fn add(&mut self, name: &str, a: TensorId, b: TensorId, act: Activation) -> Layer {
        let y = self.binary(name, BinaryKind::Add, act, a, b)?;
        let (sa, sb) = (self.stats(a), self.stats(b));
        let mut stats = Moments::default();
        for c in 0..sa.channels() {
            let (m, v) = (sa.mean[c] + sb.mean[c], sa.var[c] + sb.var[c]);
            let (m, v) = moments::activation(act, m, v);
            stats.mean.push(m);
            stats.var.push(v);
        }
        self.record(y, stats);
        Ok(y)
    }

    /// `x * gate` with a `[1, C, 1, 1]` gate.
    pub fn mul(&mut self, name: &str, x: TensorId, gate: TensorId) -> Layer {
        let y = self.binary(name, BinaryKind::Mul, Activation::None, x, gate)?;
        let (sx, sg) = (self.stats(x), self.stats(gate));
        let mut stats = Moments::default();
        for c in 0..sx.channels() {
            let (mx, vx, mg, vg) = (sx.mean[c], sx.var[c], sg.mean[c], sg.var[c]);
            stats.mean.push(mx * mg);
            stats.var.push((vx + mx * mx) * (vg + mg * mg) - (mx * mg) * (mx * mg));
        }
        self.record(y, stats);
        Ok(y)
    }

    fn binary(&mut self, name: &str, kind: BinaryKind, activation: Activation, a: TensorId, b: TensorId) -> Layer {
        self.model.add_node(name, Op::Binary { kind, activation }, &[a, b])
    }

    /// Concatenation along channels.
    pub fn concat(&mut self, name: &str, parts: &[TensorId]) -> Layer {
        let y = self.model.add_node(name, Op::Concat, parts)?;
        let stats = Moments::concat(parts.iter().map(|&p| &self.stats[p as usize]));
        self.record(y, stats);
        Ok(y)
    }

    /// Channels `[start, end)` of `x`.
    pub fn slice(&mut self, name: &str, x: TensorId, start: u32, end: u32) -> Layer {
        let y = self.model.add_node(name, Op::SliceChannels { start, end }, &[x])?;
        let stats = self.stats(x).slice(start as usize, end as usize);
        self.record(y, stats);
        Ok(y)
    }

    /// Channel shuffle with `groups` groups.
    pub fn shuffle(&mut self, name: &str, x: TensorId, groups: u32) -> Layer {
        let y = self.model.add_node(name, Op::ChannelShuffle { groups }, &[x])?;
        let stats = self.stats(x).shuffle(groups as usize);
        self.record(y, stats);
        Ok(y)
    }

    /// Max pooling, `k x k` windows with `stride` and `pads`; `ceil` selects PyTorch's
    /// `ceil_mode` output size (a last window must start inside the input or left padding).
    pub fn max_pool(&mut self, name: &str, x: TensorId, k: u32, stride: u32, pads: [u32; 4], ceil: bool) -> Layer {
        let shape = self.model.shape(x).to_vec();
        let out_shape = match (ceil, shape.as_slice()) {
            (true, &[n, c, h, w]) => Some(vec![
                n,
                c,
                ceil_out(h, pads[0], pads[2], k, stride),
                ceil_out(w, pads[1], pads[3], k, stride),
            ]),
            _ => None,
        };
        let op = Op::MaxPool(Pool {
            kernel: [k, k],
            stride: [stride, stride],
            pads,
            count_include_pad: false,
        });
        let y = self.model.add_node_with_shape(name, op, &[x], out_shape)?;
        // Neighbouring values are correlated: count about half the window as independent.
        let (e, var) = moments::max_of_normals((k * k).div_ceil(2) as usize);
        let stats = self.stats(x).map(|m, v| (m + e * v.sqrt(), var * v));
        self.record(y, stats);
        Ok(y)
    }

    /// Average pooling, `k x k` windows with `stride` and `pad` on every side, dividing by
    /// the full window (PyTorch's default `count_include_pad`).
    pub fn avg_pool(&mut self, name: &str, x: TensorId, k: u32, stride: u32, pad: u32) -> Layer {
        let op = Op::AveragePool(Pool {
            kernel: [k, k],
            stride: [stride, stride],
            pads: [pad; 4],
            count_include_pad: true,
        });
        let y = self.model.add_node(name, op, &[x])?;
        // Between independent (var / k^2) and fully correlated (var) neighbours.
        let stats = self.stats(x).map(|m, v| (m, v / k as f64));
        self.record(y, stats);
        Ok(y)
    }

    /// Global average pooling to `[1, C, 1, 1]`.
    pub fn global_pool(&mut self, name: &str, x: TensorId) -> Layer {
        let area: u64 = self.model.shape(x).iter().skip(2).map(|&d| u64::from(d)).product();
        let y = self.model.add_node(name, Op::GlobalAveragePool, &[x])?;
        let stats = self.stats(x).map(|m, v| (m, v / area.max(1) as f64));
        self.record(y, stats);
        Ok(y)
    }

    /// Flattens `[1, C, H, W]` to `[1, C * H * W]` (only used after global pooling).
    pub fn flatten(&mut self, name: &str, x: TensorId) -> Layer {
        let numel = self.model.shape(x).iter().product::<u32>();
        let y = self.model.add_node_with_shape(name, Op::Reshape, &[x], Some(vec![1, numel]))?;
        let stats = self.stats(x).clone();
        self.record(y, stats);
        Ok(y)
    }
}

/// Rounds `v` to the nearest multiple of `divisor`, at least `divisor` and not below 90 % of
/// `v` (torchvision's and GhostNet's `_make_divisible`).
pub(crate) fn make_divisible(v: f64, divisor: u32) -> u32 {
    let d = f64::from(divisor);
    let mut out = (((v + d / 2.0) / d).floor() * d).max(d);
    if out < 0.9 * v {
        out += d;
    }
    out as u32
}

/// Output size of a ceil-mode pooling window along one axis (PyTorch's rule).
fn ceil_out(size: u32, pad0: u32, pad1: u32, k: u32, stride: u32) -> u32 {
    let padded = size + pad0 + pad1;
    if padded < k || stride == 0 {
        return 0; // shape inference reports the error
    }
    let mut out = (padded - k).div_ceil(stride) + 1;
    if (out - 1) * stride >= size + pad0 {
        out -= 1;
    }
    out
}
