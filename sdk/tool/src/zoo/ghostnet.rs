//! GhostNet 1.0x (Han et al. 2020, reference implementation).
//!
//! Ghost bottlenecks: a ghost module (1x1 primary conv to half the channels, depthwise 3x3
//! "cheap" conv of those, both concatenated), an optional depthwise conv of stride 2,
//! optional squeeze-excite (hard-sigmoid gate), a second ghost module without ReLU, and a
//! residual add with the input or with a depthwise + 1x1 shortcut. BatchNorm after every
//! conv except in squeeze-excite and the `conv_head` 1x1 conv after global pooling.
//!
//! The reference slices each ghost module's output to its channel count; a channel slice
//! is added only when that drops channels, which no GhostNet 1.0x module does (all widths
//! are even), matching what the import's clean-up leaves of a full-range slice.

use prunus_format::{Activation, TensorId};

use super::layers::{Layer, Net, RELU, cv, dw, make_divisible};

/// Bottleneck settings: kernel, expanded channels, output channels, SE ratio, stride.
const BLOCKS: [(u32, u32, u32, f64, u32); 16] = [
    (3, 16, 16, 0.0, 1),
    (3, 48, 24, 0.0, 2),
    (3, 72, 24, 0.0, 1),
    (5, 72, 40, 0.25, 2),
    (5, 120, 40, 0.25, 1),
    (3, 240, 80, 0.0, 2),
    (3, 200, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 480, 112, 0.25, 1),
    (3, 672, 112, 0.25, 1),
    (5, 672, 160, 0.25, 2),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
];

/// Ghost module with `out` output channels.
fn ghost(net: &mut Net, name: &str, x: TensorId, out: u32, relu: bool) -> Layer {
    let init = out.div_ceil(2);
    let act = if relu { RELU } else { Activation::None };
    let primary = net.conv(&format!("{name}.primary"), x, cv(init, 1).act(act))?;
    let cheap = net.conv(&format!("{name}.cheap"), primary, dw(3).act(act))?;
    let cat = net.concat(&format!("{name}.cat"), &[primary, cheap])?;
    if 2 * init == out {
        Ok(cat)
    } else {
        net.slice(&format!("{name}.slice"), cat, 0, out)
    }
}

/// Adds GhostNet 1.0x after `input`; returns the logits.
pub(super) fn build(net: &mut Net, input: TensorId) -> Layer {
    let mut x = net.conv("conv_stem", input, cv(16, 3).stride(2).act(RELU))?;
    for (i, &(k, exp, c, se_ratio, stride)) in BLOCKS.iter().enumerate() {
        let name = format!("blocks.{i}");
        let cin = net.channels(x);
        let (mid, cout) = (
            make_divisible(f64::from(exp), 4),
            make_divisible(f64::from(c), 4),
        );
        let mut y = ghost(net, &format!("{name}.ghost1"), x, mid, true)?;
        if stride > 1 {
            y = net.conv(&format!("{name}.conv_dw"), y, dw(k).stride(stride))?;
        }
        if se_ratio > 0.0 {
            y = net.se(
                &format!("{name}.se"),
                y,
                make_divisible(f64::from(mid) * se_ratio, 4),
            )?;
        }
        y = ghost(net, &format!("{name}.ghost2"), y, cout, false)?;
        let shortcut = if cin == cout && stride == 1 {
            x
        } else {
            let s = net.conv(&format!("{name}.shortcut.dw"), x, dw(k).stride(stride))?;
            net.conv(&format!("{name}.shortcut.pw"), s, cv(cout, 1))?
        };
        x = net.add(&format!("{name}.add"), y, shortcut, Activation::None)?;
    }
    x = net.conv("conv_last", x, cv(make_divisible(960.0, 4), 1).act(RELU))?;
    x = net.global_pool("avgpool", x)?;
    x = net.conv("conv_head", x, cv(1280, 1).bias().act(RELU))?;
    x = net.flatten("flatten", x)?;
    net.linear("classifier", x, 1000, Activation::None)
}
