//! ShuffleNet v2 1.0x (torchvision `shufflenet_v2_x1_0`).
//!
//! Stride-1 units split the channels in halves (two channel slices), transform the second
//! half (1x1 conv, ReLU, depthwise 3x3, 1x1 conv, ReLU) and concatenate; stride-2 units
//! run a depthwise 3x3 + 1x1 branch next to the main one. Every unit ends with a channel
//! shuffle of 2 groups. BatchNorm after every conv.

use prunus_format::{Activation, TensorId};

use super::layers::{Layer, Net, RELU, cv, dw};

/// Stage names, repeats and output channels.
const STAGES: [(&str, u32, u32); 3] = [("stage2", 4, 116), ("stage3", 8, 232), ("stage4", 4, 464)];

/// One unit with `out` output channels.
fn unit(net: &mut Net, name: &str, x: TensorId, out: u32, stride: u32) -> Layer {
    let half = out / 2;
    let (left, right) = if stride == 1 {
        let c = net.channels(x);
        let left = net.slice(&format!("{name}.split.0"), x, 0, c / 2)?;
        let right = net.slice(&format!("{name}.split.1"), x, c / 2, c)?;
        (left, right)
    } else {
        let b = net.conv(&format!("{name}.branch1.dw"), x, dw(3).stride(stride))?;
        let b = net.conv(&format!("{name}.branch1.pw"), b, cv(half, 1).act(RELU))?;
        (b, x)
    };
    let y = net.conv(&format!("{name}.branch2.pw1"), right, cv(half, 1).act(RELU))?;
    let y = net.conv(&format!("{name}.branch2.dw"), y, dw(3).stride(stride))?;
    let y = net.conv(&format!("{name}.branch2.pw2"), y, cv(half, 1).act(RELU))?;
    let cat = net.concat(&format!("{name}.cat"), &[left, y])?;
    net.shuffle(&format!("{name}.shuffle"), cat, 2)
}

/// Adds ShuffleNet v2 1.0x after `input`; returns the logits.
pub(super) fn build(net: &mut Net, input: TensorId) -> Layer {
    let mut x = net.conv("conv1", input, cv(24, 3).stride(2).act(RELU))?;
    x = net.max_pool("maxpool", x, 3, 2, [1; 4], false)?;
    for &(stage, repeats, out) in &STAGES {
        for i in 0..repeats {
            let stride = if i == 0 { 2 } else { 1 };
            x = unit(net, &format!("{stage}.{i}"), x, out, stride)?;
        }
    }
    x = net.conv("conv5", x, cv(1024, 1).act(RELU))?;
    x = net.global_pool("avgpool", x)?;
    x = net.flatten("flatten", x)?;
    net.linear("fc", x, 1000, Activation::None)
}
