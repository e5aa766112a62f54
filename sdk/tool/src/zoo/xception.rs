//! Xception (Keras `Xception`, 299x299 input).
//!
//! Entry flow: two 3x3 convs without padding, then three blocks of two separable convs
//! and a 3x3 stride-2 max pool with TensorFlow `same` padding, added to a strided 1x1
//! conv shortcut. Middle flow: eight residual blocks of three ReLU + separable conv.
//! Exit flow: one more downsampling block (728 -> 1024), two separable convs with ReLU
//! (1536, 2048), global average pooling and a 1000-way fully connected layer.
//! A separable conv is a depthwise 3x3 without bias or BatchNorm followed by a 1x1 conv
//! with BatchNorm (folded into its bias). Keras' ReLUs before separable convs become
//! fused activations of the preceding conv or add.

use prunus_format::{Activation, TensorId};

use super::layers::{Layer, Net, RELU, cv, dw};

/// TensorFlow `same` padding of a `k`-window with stride `s` on `size`: (begin, end).
fn same_pads(size: u32, k: u32, s: u32) -> (u32, u32) {
    let out = size.div_ceil(s.max(1));
    let total = ((out.max(1) - 1) * s + k).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Separable conv: depthwise 3x3 (no bias), then 1x1 with folded BatchNorm and `act`.
fn sep(net: &mut Net, name: &str, x: TensorId, cout: u32, act: Activation) -> Layer {
    let d = net.conv(&format!("{name}.dw"), x, dw(3).bare())?;
    net.conv(&format!("{name}.pw"), d, cv(cout, 1).act(act))
}

/// Downsampling block: two separable convs (ReLU between), `same` max pool, plus a
/// strided 1x1 conv shortcut. `x` is the block input (already through ReLU if Keras
/// applies one before the first separable conv); `shortcut_in` feeds the shortcut.
fn down(net: &mut Net, name: &str, x: TensorId, shortcut_in: TensorId, c1: u32, c2: u32) -> Layer {
    let res = net.conv(
        &format!("{name}.shortcut"),
        shortcut_in,
        cv(c2, 1).stride(2),
    )?;
    let y = sep(net, &format!("{name}.sep1"), x, c1, RELU)?;
    let y = sep(net, &format!("{name}.sep2"), y, c2, Activation::None)?;
    let (p0, p1) = same_pads(net.height(y), 3, 2);
    let y = net.max_pool(&format!("{name}.pool"), y, 3, 2, [p0, p0, p1, p1], false)?;
    net.add(&format!("{name}.add"), y, res, Activation::None)
}

/// Adds Xception after `input`; returns the logits.
pub(super) fn build(net: &mut Net, input: TensorId) -> Layer {
    let x = net.conv("block1.conv1", input, cv(32, 3).stride(2).pad(0).act(RELU))?;
    let x = net.conv("block1.conv2", x, cv(64, 3).pad(0).act(RELU))?;
    let x = down(net, "block2", x, x, 128, 128)?;
    let x_relu = net.relu("block3.relu", x)?;
    let x = down(net, "block3", x_relu, x, 256, 256)?;
    let x_relu = net.relu("block4.relu", x)?;
    let mut x = down(net, "block4", x_relu, x, 728, 728)?;
    for b in 5..13 {
        let name = format!("block{b}");
        let y = net.relu(&format!("{name}.relu"), x)?;
        let y = sep(net, &format!("{name}.sep1"), y, 728, RELU)?;
        let y = sep(net, &format!("{name}.sep2"), y, 728, RELU)?;
        let y = sep(net, &format!("{name}.sep3"), y, 728, Activation::None)?;
        x = net.add(&format!("{name}.add"), y, x, Activation::None)?;
    }
    let x_relu = net.relu("block13.relu", x)?;
    let x = down(net, "block13", x_relu, x, 728, 1024)?;
    let x = sep(net, "block14.sep1", x, 1536, RELU)?;
    let x = sep(net, "block14.sep2", x, 2048, RELU)?;
    let x = net.global_pool("avg_pool", x)?;
    let x = net.flatten("flatten", x)?;
    net.linear("predictions", x, 1000, Activation::None)
}
