//! A small network builder on top of [`IrModel`] for the zoo families: convolutions with
//! folded BatchNorm and fused activation, squeeze-excite and the classifier here; pools,
//! residual adds and channel plumbing in `ops`.
//!
//! Weights are calibrated while the network is built ([`Net::calibrating`]): the builder
//! computes every tensor for a small batch of seeded N(0, 1) images, node by node with the
//! runtime (`calibrate`), draws each weight He-normal (`std = sqrt(2 / fan_in)`) and rescales it per output channel from the
//! statistics its layer really sees, as calibrated BatchNorm statistics would be:
//! - conv followed by BatchNorm ([`Norm::Bn`]): each output channel is normalised to unit
//!   variance and centred at a random N(0, 0.05) offset (the folded `beta`) by the weight
//!   scale and a new bias;
//! - conv or Gemm without BatchNorm ([`Norm::Bias`], [`Norm::Bare`]): each row is scaled so
//!   that `sum w^2 E[x^2]` is 1 (He initialisation for the actual input magnitude), with an
//!   N(0, 0.05) bias (or none).
//!
//! Statistics shift with the input size and random networks compound such shifts, so the
//! calibration runs at the requested size (up to the family default, beyond which
//! [`Net::replaying`] rebuilds the network with the weights calibrated at the default).

use prunus_format::{Activation, Conv, Op, TensorId};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

use super::calibrate::{self, Calibration};
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
        Cv {
            pads: Some([pad; 4]),
            ..self
        }
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
        Cv {
            norm: Norm::Bias,
            ..self
        }
    }
    /// Marks the conv as having neither bias nor BatchNorm.
    pub fn bare(self) -> Self {
        Cv {
            norm: Norm::Bare,
            ..self
        }
    }
}

/// How a [`Net`] obtains its weights.
enum Mode {
    /// Shapes only: weights are declared without values (to find tensor lifetimes).
    Structure,
    /// Weights are drawn and calibrated on the given images.
    Calibrate(Calibration),
    /// Weights are taken in creation order from a calibrated build of the same family.
    Replay(std::vec::IntoIter<Vec<f32>>),
}

/// A network under construction.
pub(crate) struct Net {
    pub(super) model: IrModel,
    rng: StdRng,
    mode: Mode,
    bn_channels: u64,
}

impl Net {
    fn with_input(name: &str, producer: &str, seed: u64, hw: u32, mode: Mode) -> (Net, TensorId) {
        let mut net = Net {
            model: IrModel::new(name, producer),
            rng: StdRng::seed_from_u64(seed),
            mode,
            bn_channels: 0,
        };
        let input = net.model.add_input("input", &[1, 3, hw, hw]);
        (net, input)
    }

    /// A network that only records shapes (its weights have no values), with graph input
    /// `[1, 3, hw, hw]`.
    pub fn structure(name: &str, hw: u32) -> (Net, TensorId) {
        Net::with_input(name, "", 0, hw, Mode::Structure)
    }

    /// A calibrating network with graph input `[1, 3, hw, hw]`, weights drawn from a
    /// generator seeded with `seed`; `frees` lists the tensors each node is the last reader
    /// of (from [`calibrate::liveness`] of the structure).
    pub fn calibrating(
        name: &str,
        producer: &str,
        seed: u64,
        hw: u32,
        frees: Vec<Vec<TensorId>>,
    ) -> (Net, TensorId) {
        let (mut net, input) = Net::with_input(name, producer, seed, hw, Mode::Structure);
        let n = 3 * hw as usize * hw as usize;
        let images = (0..calibrate::batch_size(hw))
            .map(|_| (0..n).map(|_| net.normal(1.0) as f32).collect())
            .collect();
        net.mode = Mode::Calibrate(Calibration::new(input, images, frees));
        (net, input)
    }

    /// A network with graph input `[1, 3, hw, hw]` whose weights are taken in order from
    /// `weights` (those of a calibrating build of the same family).
    pub fn replaying(
        name: &str,
        producer: &str,
        hw: u32,
        weights: Vec<Vec<f32>>,
    ) -> (Net, TensorId) {
        Net::with_input(name, producer, 0, hw, Mode::Replay(weights.into_iter()))
    }

    /// The calibration state, if this network calibrates.
    pub(super) fn calibration(&mut self) -> Option<(&IrModel, &mut Calibration)> {
        match &mut self.mode {
            Mode::Calibrate(c) => Some((&self.model, c)),
            _ => None,
        }
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

    /// The weights built so far (to replay them at another input size).
    pub fn into_weights(self) -> Vec<Vec<f32>> {
        self.model.weights
    }

    /// Finishes the graph: the tensor `output` is renamed `output` and made the graph output.
    pub fn finish(mut self, output: TensorId, extra: Vec<(String, String)>) -> IrModel {
        self.model.graph.tensors[output as usize].name = "output".to_string();
        self.model.set_outputs(&[output]);
        self.model.graph.metadata.extra = extra;
        self.model
    }

    fn normal(&mut self, std: f64) -> f64 {
        std * self.rng.sample::<f64, _>(StandardNormal)
    }

    /// Adds a weight: the next replayed one, or a declaration whose values calibration
    /// sets (or, for the structure, never).
    fn weight(&mut self, name: &str, shape: &[u32]) -> u32 {
        match &mut self.mode {
            Mode::Replay(weights) => {
                let numel = shape.iter().map(|&d| d as usize).product();
                let data = weights.next().unwrap_or_else(|| vec![0.0; numel]);
                self.model.add_weight(name, shape, data)
            }
            Mode::Structure | Mode::Calibrate(_) => {
                let id = self.model.add_weight(name, &[0], Vec::new());
                self.model.graph.weights[id as usize].shape = shape.to_vec();
                id
            }
        }
    }

    /// A convolution with folded BatchNorm (or its own bias) and fused activation.
    pub fn conv(&mut self, name: &str, x: TensorId, c: Cv) -> Layer {
        let cin = self.channels(x);
        let cout = if c.cout == 0 { cin } else { c.cout };
        let groups = if c.groups == 0 { cin } else { c.groups }.max(1);
        let weight = self.weight(&format!("{name}.weight"), &[cout, cin / groups, c.k, c.k]);
        let bias = (c.norm != Norm::Bare).then(|| self.weight(&format!("{name}.bias"), &[cout]));
        let conv = Conv {
            weight,
            bias,
            kernel: [c.k; 2],
            stride: [c.stride; 2],
            pads: c.pads.unwrap_or([(c.k - 1) / 2; 4]),
            dilation: [1, 1],
            groups,
            activation: c.act,
        };
        let y = self.model.add_node(name, Op::Conv(conv), &[x])?;
        if c.norm == Norm::Bn {
            self.bn_channels += u64::from(cout);
        }
        if matches!(self.mode, Mode::Calibrate(_)) {
            self.calibrate(weight, bias, c.norm)?;
        }
        Ok(y)
    }

    /// A fully connected layer on a `[1, K]` tensor, with bias and fused activation.
    pub fn linear(&mut self, name: &str, x: TensorId, out: u32, act: Activation) -> Layer {
        let k = self.model.shape(x).get(1).copied().unwrap_or(1);
        let weight = self.weight(&format!("{name}.weight"), &[out, k]);
        let bias = self.weight(&format!("{name}.bias"), &[out]);
        let op = Op::Gemm {
            weight,
            bias: Some(bias),
            activation: act,
        };
        let y = self.model.add_node(name, op, &[x])?;
        if matches!(self.mode, Mode::Calibrate(_)) {
            self.calibrate(weight, Some(bias), Norm::Bias)?;
        }
        Ok(y)
    }

    /// Draws the weights of the conv or Gemm just added (weight `weight`, bias `bias`),
    /// scales them as described in the module docs and computes its output.
    fn calibrate(&mut self, weight: u32, bias: Option<u32>, norm: Norm) -> Result<(), BuildError> {
        let ws = &self.model.graph.weights[weight as usize].shape;
        let (rows, fan_in) = (ws[0] as usize, ws[1..].iter().product::<u32>() as usize);
        let he = (2.0 / fan_in.max(1) as f64).sqrt();
        let w: Vec<f32> = (0..rows * fan_in).map(|_| self.normal(he) as f32).collect();
        let noise: Vec<f64> = (0..rows).map(|_| self.normal(BIAS_STD)).collect();
        let Mode::Calibrate(calib) = &mut self.mode else {
            return Ok(());
        };
        self.model.weights[weight as usize] = w;
        let (scale, shift) = calib.fit_last(&self.model, norm, &noise)?;
        let w = &mut self.model.weights[weight as usize];
        for (row, s) in w.chunks_mut(fan_in.max(1)).zip(&scale) {
            row.iter_mut().for_each(|v| *v *= s);
        }
        if let Some(b) = bias {
            self.model.weights[b as usize] = shift;
        }
        Ok(())
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
