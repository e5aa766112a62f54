//! The weightless layers of [`Net`]: activations, residual adds, squeeze-excite scaling,
//! channel plumbing, pools and the flatten before the classifier.

use prunus_format::{Activation, BinaryKind, Op, Pool, TensorId};

use super::layers::{Layer, Net, RELU};

impl Net {
    /// Adds a weightless node (output shape inferred, or `shape`); in the calibration pass
    /// also computes its value.
    fn node(&mut self, name: &str, op: Op, inputs: &[TensorId], shape: Option<Vec<u32>>) -> Layer {
        let y = self.model.add_node_with_shape(name, op, inputs, shape)?;
        if let Some((model, calib)) = self.calibration() {
            calib.eval_last(model)?;
        }
        Ok(y)
    }

    /// A standalone ReLU (when its input has other, non-rectified readers).
    pub fn relu(&mut self, name: &str, x: TensorId) -> Layer {
        self.node(name, Op::Activation(RELU), &[x], None)
    }

    /// `act(a + b)`.
    pub fn add(&mut self, name: &str, a: TensorId, b: TensorId, act: Activation) -> Layer {
        let op = Op::Binary {
            kind: BinaryKind::Add,
            activation: act,
        };
        self.node(name, op, &[a, b], None)
    }

    /// `x * gate` with a `[1, C, 1, 1]` gate.
    pub fn mul(&mut self, name: &str, x: TensorId, gate: TensorId) -> Layer {
        let op = Op::Binary {
            kind: BinaryKind::Mul,
            activation: Activation::None,
        };
        self.node(name, op, &[x, gate], None)
    }

    /// Concatenation along channels.
    pub fn concat(&mut self, name: &str, parts: &[TensorId]) -> Layer {
        self.node(name, Op::Concat, parts, None)
    }

    /// Channels `[start, end)` of `x`.
    pub fn slice(&mut self, name: &str, x: TensorId, start: u32, end: u32) -> Layer {
        self.node(name, Op::SliceChannels { start, end }, &[x], None)
    }

    /// Channel shuffle with `groups` groups.
    pub fn shuffle(&mut self, name: &str, x: TensorId, groups: u32) -> Layer {
        self.node(name, Op::ChannelShuffle { groups }, &[x], None)
    }

    /// Max pooling, `k x k` windows with `stride` and `pads` (top, left, bottom, right);
    /// `ceil` selects PyTorch's `ceil_mode` output size (a last window must start inside the
    /// input or its left padding).
    pub fn max_pool(
        &mut self,
        name: &str,
        x: TensorId,
        k: u32,
        stride: u32,
        pads: [u32; 4],
        ceil: bool,
    ) -> Layer {
        let shape = match (ceil, self.model.shape(x)) {
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
        self.node(name, op, &[x], shape)
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
        self.node(name, op, &[x], None)
    }

    /// Global average pooling to `[1, C, 1, 1]`.
    pub fn global_pool(&mut self, name: &str, x: TensorId) -> Layer {
        self.node(name, Op::GlobalAveragePool, &[x], None)
    }

    /// Flattens `[1, C, H, W]` to `[1, C * H * W]` (used after global pooling).
    pub fn flatten(&mut self, name: &str, x: TensorId) -> Layer {
        let numel = self
            .model
            .shape(x)
            .iter()
            .fold(1u32, |acc, &d| acc.saturating_mul(d));
        self.node(name, Op::Reshape, &[x], Some(vec![1, numel]))
    }
}

/// Output size of a ceil-mode pooling window along one axis (PyTorch's rule); 0 when the
/// window does not fit (shape inference then reports the error).
fn ceil_out(size: u32, pad0: u32, pad1: u32, k: u32, stride: u32) -> u32 {
    let padded = u64::from(size) + u64::from(pad0) + u64::from(pad1);
    let (k, stride) = (u64::from(k), u64::from(stride));
    if padded < k || stride == 0 {
        return 0;
    }
    let mut out = (padded - k).div_ceil(stride) + 1;
    if (out - 1) * stride >= u64::from(size) + u64::from(pad0) {
        out -= 1;
    }
    u32::try_from(out).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::ceil_out;

    #[test]
    fn ceil_mode_sizes() {
        // torchvision squeezenet1_1 at 224: 111 -> 55 -> 27 -> 13.
        assert_eq!(ceil_out(111, 0, 0, 3, 2), 55);
        assert_eq!(ceil_out(55, 0, 0, 3, 2), 27);
        assert_eq!(ceil_out(27, 0, 0, 3, 2), 13);
        // floor would give 2; ceil adds a window starting inside the input.
        assert_eq!(ceil_out(6, 0, 0, 3, 2), 3);
        // a last window starting in the right padding is dropped.
        assert_eq!(ceil_out(5, 1, 1, 2, 2), 3);
        assert_eq!(ceil_out(1, 0, 0, 3, 2), 0);
    }
}
