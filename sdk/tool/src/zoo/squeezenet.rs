//! SqueezeNet 1.1 (torchvision `squeezenet1_1`).
//!
//! No BatchNorm: every conv has its own bias and ReLU. The three max pools use
//! `ceil_mode`. The classifier is a 1x1 conv to 1000 channels with ReLU (dropout is
//! omitted at inference), global average pooling and a flatten.

use prunus_format::TensorId;

use super::layers::{Layer, Net, RELU, cv};

/// Fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated.
fn fire(net: &mut Net, name: &str, x: TensorId, squeeze: u32, expand: u32) -> Layer {
    let s = net.conv(
        &format!("{name}.squeeze"),
        x,
        cv(squeeze, 1).bias().act(RELU),
    )?;
    let e1 = net.conv(
        &format!("{name}.expand1x1"),
        s,
        cv(expand, 1).bias().act(RELU),
    )?;
    let e3 = net.conv(
        &format!("{name}.expand3x3"),
        s,
        cv(expand, 3).bias().act(RELU),
    )?;
    net.concat(&format!("{name}.cat"), &[e1, e3])
}

/// Adds SqueezeNet 1.1 after `input`; returns the logits.
pub(super) fn build(net: &mut Net, input: TensorId) -> Layer {
    let mut x = net.conv(
        "features.0",
        input,
        cv(64, 3).stride(2).pad(0).bias().act(RELU),
    )?;
    x = net.max_pool("features.2", x, 3, 2, [0; 4], true)?;
    x = fire(net, "features.3", x, 16, 64)?;
    x = fire(net, "features.4", x, 16, 64)?;
    x = net.max_pool("features.5", x, 3, 2, [0; 4], true)?;
    x = fire(net, "features.6", x, 32, 128)?;
    x = fire(net, "features.7", x, 32, 128)?;
    x = net.max_pool("features.8", x, 3, 2, [0; 4], true)?;
    x = fire(net, "features.9", x, 48, 192)?;
    x = fire(net, "features.10", x, 48, 192)?;
    x = fire(net, "features.11", x, 64, 256)?;
    x = fire(net, "features.12", x, 64, 256)?;
    x = net.conv("classifier.1", x, cv(1000, 1).bias().act(RELU))?;
    x = net.global_pool("classifier.3", x)?;
    net.flatten("flatten", x)
}
