//! A small model that uses every op, with deterministic weights: for tests, examples and
//! fuzzing seeds (it packs to a few kilobytes).

use crate::builder::{BuildError, ModelBuilder};
use crate::graph::{Activation, BinaryKind, Conv, Op, Pool, TensorId};

/// A deterministic pseudo-random generator (xorshift), so samples need no dependency.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

struct Sample {
    b: ModelBuilder,
    rng: Xorshift,
}

impl Sample {
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: TensorId,
        out_c: u32,
        k: u32,
        stride: u32,
        pads: [u32; 4],
        groups: u32,
        activation: Activation,
    ) -> Result<TensorId, BuildError> {
        let in_c = self.b.shape(x)[1];
        let fan_in = in_c / groups * k * k;
        let n = (out_c * fan_in) as usize;
        let scale = (3.0 / fan_in as f32).sqrt();
        let w = self.rng.vec(n, scale);
        let weight = self
            .b
            .add_weight(&format!("{name}.weight"), &[out_c, in_c / groups, k, k], w);
        let b = self.rng.vec(out_c as usize, 0.1);
        let bias = Some(self.b.add_weight(&format!("{name}.bias"), &[out_c], b));
        let conv = Conv {
            weight,
            bias,
            kernel: [k, k],
            stride: [stride, stride],
            pads,
            dilation: [1, 1],
            groups,
            activation,
        };
        self.b.add_node(name, Op::Conv(conv), &[x])
    }
}

/// Builds the sample: input `[1, 4, 10, 9]`, output `[1, 10]` (softmax probabilities).
///
/// Covers conv 3x3/s2 with asymmetric pads, 1x1, depthwise, grouped conv, concat, channel
/// shuffle, channel slice, residual add, per-channel mul, scale-shift, every activation
/// kind, max/avg/global pooling, pad, reshape, gemm and softmax.
pub fn sample_model(seed: u64) -> Result<ModelBuilder, BuildError> {
    let mut s = Sample {
        b: ModelBuilder::new("sample", "prunus-format sample"),
        rng: Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
    };
    let clip = Activation::Clip { min: 0.0, max: 6.0 };
    let x = s.b.add_input("input", &[1, 4, 10, 9]);
    let t1 = s.conv("stem", x, 8, 3, 2, [1, 0, 1, 1], 1, clip)?;
    let t2 = s.conv("pw", t1, 8, 1, 1, [0; 4], 1, Activation::None)?;
    let t3 = s.conv("dw", t1, 8, 3, 1, [1; 4], 8, Activation::HardSwish)?;
    let t4 = s.b.add_node("cat", Op::Concat, &[t2, t3])?;
    let t5 =
        s.b.add_node("shuffle", Op::ChannelShuffle { groups: 2 }, &[t4])?;
    let t6 =
        s.b.add_node("slice", Op::SliceChannels { start: 2, end: 14 }, &[t5])?;
    let t7 = s.conv(
        "group",
        t6,
        12,
        3,
        1,
        [1; 4],
        4,
        Activation::LeakyRelu { alpha: 0.1 },
    )?;
    let add = Op::Binary {
        kind: BinaryKind::Add,
        activation: Activation::Relu,
    };
    let t8 = s.b.add_node("residual", add, &[t6, t7])?;
    let scale = s.rng.vec(12, 1.0);
    let shift = s.rng.vec(12, 0.5);
    let scale = s.b.add_weight("bn.scale", &[12], scale);
    let shift = s.b.add_weight("bn.shift", &[12], shift);
    let ss = Op::ScaleShift {
        scale,
        shift,
        activation: Activation::Sigmoid,
    };
    let t9 = s.b.add_node("bn", ss, &[t8])?;
    let pool = |k, stride, pads| Pool {
        kernel: [k, k],
        stride: [stride, stride],
        pads,
        count_include_pad: false,
    };
    let t10 =
        s.b.add_node("maxpool", Op::MaxPool(pool(3, 2, [1; 4])), &[t9])?;
    let t11 =
        s.b.add_node("avgpool", Op::AveragePool(pool(2, 1, [0; 4])), &[t10])?;
    let t12 = s.b.add_node("gap", Op::GlobalAveragePool, &[t11])?;
    let gate = Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
    let t13 = s.b.add_node("gate", Op::Activation(gate), &[t12])?;
    let mul = Op::Binary {
        kind: BinaryKind::Mul,
        activation: Activation::None,
    };
    let t14 = s.b.add_node("se", mul, &[t11, t13])?;
    let padded = Op::Pad {
        pads: [1, 0, 0, 1],
        value: 0.5,
    };
    let t15 = s.b.add_node("pad", padded, &[t14])?;
    let t16 = s.b.add_node("gap2", Op::GlobalAveragePool, &[t15])?;
    let t17 =
        s.b.add_node_with_shape("flatten", Op::Reshape, &[t16], Some(vec![1, 12]))?;
    let fc_w = s.rng.vec(10 * 12, 0.5);
    let fc_b = s.rng.vec(10, 0.1);
    let weight = s.b.add_weight("fc.weight", &[10, 12], fc_w);
    let bias = Some(s.b.add_weight("fc.bias", &[10], fc_b));
    let gemm = Op::Gemm {
        weight,
        bias,
        activation: Activation::None,
    };
    let t18 = s.b.add_node("fc", gemm, &[t17])?;
    let out = s.b.add_node("output", Op::Softmax, &[t18])?;
    s.b.set_outputs(&[out]);
    Ok(s.b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_packs_and_parses_back_to_the_same_graph() {
        let model = sample_model(7).unwrap();
        let bytes = model.to_bytes(Default::default()).unwrap();
        let parsed = crate::parse(&bytes).unwrap();
        assert_eq!(parsed.graph.nodes, model.graph.nodes);
        assert_eq!(parsed.graph.tensors, model.graph.tensors);
        assert_eq!(parsed.graph.weights.len(), model.graph.weights.len());
        crate::verify_weights(&bytes, &parsed.sections).unwrap();
        // A different seed changes weights but not structure.
        let other = sample_model(8).unwrap();
        assert_eq!(other.graph.nodes, model.graph.nodes);
        assert_ne!(other.weights, model.weights);
    }
}
