//! MobileNet v3 Small and Large (torchvision `mobilenet_v3_small` / `mobilenet_v3_large`):
//! inverted residual blocks with ReLU or hard swish, squeeze-excite with a hard-sigmoid
//! gate, a 1x1 conv to 6x the last width with hard swish, global average pooling, a
//! hidden fully connected layer with hard swish and the 1000-way classifier.

use prunus_format::{Activation, TensorId};

use super::layers::{HSWISH, Layer, Net, RELU, cv, dw, make_divisible};

/// One inverted residual block: input channels, kernel, expanded channels, output
/// channels, squeeze-excite, activation, stride.
type Block = (u32, u32, u32, u32, bool, Activation, u32);

const LARGE: [Block; 15] = [
    (16, 3, 16, 16, false, RELU, 1),
    (16, 3, 64, 24, false, RELU, 2),
    (24, 3, 72, 24, false, RELU, 1),
    (24, 5, 72, 40, true, RELU, 2),
    (40, 5, 120, 40, true, RELU, 1),
    (40, 5, 120, 40, true, RELU, 1),
    (40, 3, 240, 80, false, HSWISH, 2),
    (80, 3, 200, 80, false, HSWISH, 1),
    (80, 3, 184, 80, false, HSWISH, 1),
    (80, 3, 184, 80, false, HSWISH, 1),
    (80, 3, 480, 112, true, HSWISH, 1),
    (112, 3, 672, 112, true, HSWISH, 1),
    (112, 5, 672, 160, true, HSWISH, 2),
    (160, 5, 960, 160, true, HSWISH, 1),
    (160, 5, 960, 160, true, HSWISH, 1),
];

const SMALL: [Block; 11] = [
    (16, 3, 16, 16, true, RELU, 2),
    (16, 3, 72, 24, false, RELU, 2),
    (24, 3, 88, 24, false, RELU, 1),
    (24, 5, 96, 40, true, HSWISH, 2),
    (40, 5, 240, 40, true, HSWISH, 1),
    (40, 5, 240, 40, true, HSWISH, 1),
    (40, 5, 120, 48, true, HSWISH, 1),
    (48, 5, 144, 48, true, HSWISH, 1),
    (48, 5, 288, 96, true, HSWISH, 2),
    (96, 5, 576, 96, true, HSWISH, 1),
    (96, 5, 576, 96, true, HSWISH, 1),
];

/// Adds MobileNet v3 Small after `input`; returns the logits.
pub(super) fn build_small(net: &mut Net, input: TensorId) -> Layer {
    build(net, input, &SMALL, 1024)
}

/// Adds MobileNet v3 Large after `input`; returns the logits.
pub(super) fn build_large(net: &mut Net, input: TensorId) -> Layer {
    build(net, input, &LARGE, 1280)
}

fn build(net: &mut Net, input: TensorId, blocks: &[Block], last_channel: u32) -> Layer {
    let mut x = net.conv("features.0", input, cv(16, 3).stride(2).act(HSWISH))?;
    for (i, &(cin, k, exp, cout, se, act, stride)) in blocks.iter().enumerate() {
        let name = format!("features.{}", i + 1);
        let mut y = x;
        if exp != cin {
            y = net.conv(&format!("{name}.expand"), y, cv(exp, 1).act(act))?;
        }
        y = net.conv(&format!("{name}.dw"), y, dw(k).stride(stride).act(act))?;
        if se {
            y = net.se(
                &format!("{name}.se"),
                y,
                make_divisible(f64::from(exp / 4), 8),
            )?;
        }
        y = net.conv(&format!("{name}.project"), y, cv(cout, 1))?;
        x = if stride == 1 && cin == cout {
            net.add(&format!("{name}.add"), x, y, Activation::None)?
        } else {
            y
        };
    }
    let last_conv = 6 * net.channels(x);
    x = net.conv(
        &format!("features.{}", blocks.len() + 1),
        x,
        cv(last_conv, 1).act(HSWISH),
    )?;
    x = net.global_pool("avgpool", x)?;
    x = net.flatten("flatten", x)?;
    x = net.linear("classifier.0", x, last_channel, HSWISH)?;
    net.linear("classifier.3", x, 1000, Activation::None)
}
