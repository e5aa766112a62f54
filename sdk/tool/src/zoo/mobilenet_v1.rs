//! MobileNet v1 (Howard et al. 2017), width 1.0: a 3x3 stem and 13 depthwise-separable
//! blocks, BatchNorm and ReLU after every conv, global average pooling and a 1000-way
//! fully connected layer.

use prunus_format::{Activation, TensorId};

use super::layers::{Layer, Net, RELU, cv, dw};

/// Output channels and depthwise stride of the 13 separable blocks.
const BLOCKS: [(u32, u32); 13] = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
];

/// Adds MobileNet v1 after `input`; returns the logits.
pub(super) fn build(net: &mut Net, input: TensorId) -> Layer {
    let mut x = net.conv("features.0", input, cv(32, 3).stride(2).act(RELU))?;
    for (i, &(cout, stride)) in BLOCKS.iter().enumerate() {
        let name = format!("features.{}", i + 1);
        x = net.conv(&format!("{name}.dw"), x, dw(3).stride(stride).act(RELU))?;
        x = net.conv(&format!("{name}.pw"), x, cv(cout, 1).act(RELU))?;
    }
    x = net.global_pool("avgpool", x)?;
    x = net.flatten("flatten", x)?;
    net.linear("fc", x, 1000, Activation::None)
}
