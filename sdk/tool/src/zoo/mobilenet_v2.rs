//! MobileNet v2 (torchvision `mobilenet_v2`, width 1.0): inverted residual blocks with
//! ReLU6, linear bottlenecks and residual adds, a 1x1 conv to 1280 channels, global
//! average pooling and a 1000-way fully connected layer.

use prunus_format::{Activation, TensorId};

use super::layers::{Layer, Net, RELU6, cv, dw};

/// Inverted residual settings: expansion `t`, output channels `c`, repeats `n`, stride `s`.
const SETTINGS: [(u32, u32, u32, u32); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Adds MobileNet v2 after `input`; returns the logits.
pub(super) fn build(net: &mut Net, input: TensorId) -> Layer {
    let mut x = net.conv("features.0", input, cv(32, 3).stride(2).act(RELU6))?;
    let mut index = 1;
    for &(t, c, n, s) in &SETTINGS {
        for i in 0..n {
            let name = format!("features.{index}");
            let stride = if i == 0 { s } else { 1 };
            let cin = net.channels(x);
            let mut y = x;
            if t != 1 {
                y = net.conv(&format!("{name}.expand"), y, cv(cin * t, 1).act(RELU6))?;
            }
            y = net.conv(&format!("{name}.dw"), y, dw(3).stride(stride).act(RELU6))?;
            y = net.conv(&format!("{name}.project"), y, cv(c, 1))?;
            x = if stride == 1 && cin == c {
                net.add(&format!("{name}.add"), x, y, Activation::None)?
            } else {
                y
            };
            index += 1;
        }
    }
    x = net.conv(&format!("features.{index}"), x, cv(1280, 1).act(RELU6))?;
    x = net.global_pool("avgpool", x)?;
    x = net.flatten("flatten", x)?;
    net.linear("classifier.1", x, 1000, Activation::None)
}
