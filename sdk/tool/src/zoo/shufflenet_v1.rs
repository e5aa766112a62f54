//! ShuffleNet v1 1.0x with 3 groups (Zhang et al. 2018).
//!
//! A 3x3 stem (24 channels), a 3x3 max pool, three stages of 4/8/4 units with 240/480/960
//! output channels, global average pooling and a 1000-way fully connected layer. A unit's
//! bottleneck has a quarter of the stage's output channels: grouped 1x1 conv with ReLU,
//! channel shuffle, depthwise 3x3 (stride 2 in a stage's first unit), grouped 1x1 conv.
//! Stride-1 units add the input and apply ReLU (a `Binary` add with fused ReLU); stride-2
//! units concatenate a 3x3 average pool (stride 2, padding 1) of the input with the
//! branch, whose last conv carries the ReLU (the pooled input is already non-negative, so
//! this equals ReLU after the concat). As in the paper, the first 1x1 conv of stage 2 is
//! not grouped (its input has only 24 channels); its output is still shuffled, as in the
//! reference implementation. BatchNorm after every conv.

use prunus_format::{Activation, TensorId};

use super::layers::{Layer, Net, RELU, cv, dw};

/// Groups of the 1x1 convs.
const GROUPS: u32 = 3;
/// Stage names, repeats and output channels for 3 groups.
const STAGES: [(&str, u32, u32); 3] = [("stage2", 4, 240), ("stage3", 8, 480), ("stage4", 4, 960)];

/// One unit of a stage with `out` output channels.
fn unit(net: &mut Net, name: &str, x: TensorId, out: u32, stride: u32, first_groups: u32) -> Layer {
    let cin = net.channels(x);
    let mid = out / 4;
    let branch_out = if stride == 2 { out - cin } else { out };
    let y = net.conv(
        &format!("{name}.gconv1"),
        x,
        cv(mid, 1).groups(first_groups).act(RELU),
    )?;
    let y = net.shuffle(&format!("{name}.shuffle"), y, GROUPS)?;
    let y = net.conv(&format!("{name}.dw"), y, dw(3).stride(stride))?;
    if stride == 2 {
        let y = net.conv(
            &format!("{name}.gconv2"),
            y,
            cv(branch_out, 1).groups(GROUPS).act(RELU),
        )?;
        let shortcut = net.avg_pool(&format!("{name}.shortcut"), x, 3, 2, 1)?;
        net.concat(&format!("{name}.cat"), &[shortcut, y])
    } else {
        let y = net.conv(
            &format!("{name}.gconv2"),
            y,
            cv(branch_out, 1).groups(GROUPS),
        )?;
        net.add(&format!("{name}.add"), x, y, RELU)
    }
}

/// Adds ShuffleNet v1 (g = 3, 1.0x) after `input`; returns the logits.
pub(super) fn build(net: &mut Net, input: TensorId) -> Layer {
    let mut x = net.conv("conv1", input, cv(24, 3).stride(2).act(RELU))?;
    x = net.max_pool("maxpool", x, 3, 2, [1; 4], false)?;
    for &(stage, repeats, out) in &STAGES {
        for i in 0..repeats {
            let stride = if i == 0 { 2 } else { 1 };
            let first_groups = if stage == "stage2" && i == 0 {
                1
            } else {
                GROUPS
            };
            x = unit(net, &format!("{stage}.{i}"), x, out, stride, first_groups)?;
        }
    }
    x = net.global_pool("avgpool", x)?;
    x = net.flatten("flatten", x)?;
    net.linear("fc", x, 1000, Activation::None)
}
