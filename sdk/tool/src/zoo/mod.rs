//! The built-in model zoo: the lightweight CNN families with deterministic random weights.
//!
//! [`build`] produces, for each family of [`FAMILIES`], the graph an ONNX import of the
//! reference model would give after BatchNorm folding and activation fusion: convolutions
//! with bias and fused activation, residual `Add`s, squeeze-excite `Mul`s, `Concat`,
//! channel slices and shuffles, pools and the classifier `Gemm`. The graph input is
//! `input` (`[1, 3, H, W]`), the output tensor `output` (`[1, 1000]` logits).
//!
//! Weights are drawn from a generator seeded by [`ZooOptions::seed`] and the family name,
//! He-normal, and rescaled per output channel from the statistics each layer sees on a
//! small batch of seeded N(0, 1) images of the input size (of the family default size for
//! larger inputs), as calibrated BatchNorm statistics would be (see `layers`), so
//! activations and logits stay O(1). The statistics are measured while the graph is built,
//! each new node run by the runtime crate on the values cached for its inputs
//! (`calibrate`, `one_node`). The same options give the same weights on every platform.
//!
//! Parameter counts: the built graph holds folded weights (a conv with BatchNorm has one
//! bias value per channel instead of `gamma` and `beta`). [`published_comparison`] counts
//! a model the way its family's published figure does ([`ParamConvention`]); MACs are
//! those of convolutions and Gemm ([`crate::stats`]). At the default input size:
//!
//! | family | graph params | published convention | published | MACs | published |
//! |---|---:|---:|---:|---:|---:|
//! | squeezenet1_1 | 1,235,496 | 1,235,496 | 1,235,496 | 349.2M | 350M |
//! | mobilenet_v1 | 4,221,032 | 4,231,976 | 4.2M | 568.7M | 569M |
//! | mobilenet_v2 | 3,487,816 | 3,504,872 | 3,504,872 | 300.8M | 300M |
//! | mobilenet_v3_small | 2,536,800 | 2,542,856 | 2.5M | 56.5M | 56M |
//! | mobilenet_v3_large | 5,470,832 | 5,483,032 | 5.4M | 216.6M | 219M |
//! | shufflenet_v1 | 1,853,488 | 1,865,728 | 1.9M | 137.5M | 138M |
//! | shufflenet_v2_x1_0 | 2,270,514 | 2,278,604 | 2.3M | 144.9M | 146M |
//! | ghostnet_1_0 | 5,171,524 | 5,182,508 | 5.2M | 141.2M | 141M |
//! | xception | 22,828,688 | 22,910,480 | 22,910,480 | 8,357M | 8.4G |

mod calibrate;
mod ghostnet;
mod layers;
mod mobilenet_v1;
mod mobilenet_v2;
mod mobilenet_v3;
mod one_node;
mod ops;
mod shufflenet_v1;
mod shufflenet_v2;
mod squeezenet;
mod xception;

#[cfg(test)]
mod tests;

use crate::ir::{BuildError, IrModel};
use crate::stats::graph_stats;
use layers::Net;
use prunus_format::TensorId;

/// One model family of the zoo with its published size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    /// Family name, as accepted by [`build`].
    pub name: &'static str,
    /// Default input height and width.
    pub input_hw: u32,
    /// Published parameter count (in the family's [`ParamConvention`]).
    pub published_params: u64,
    /// Published multiply-accumulates of one inference at `input_hw`.
    pub published_macs: u64,
    /// Where the published figures come from.
    pub source: &'static str,
}

/// How a published parameter count treats BatchNorm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamConvention {
    /// No BatchNorm in the model: every weight of the graph, as built.
    Graph,
    /// Conv and linear weights and biases plus BatchNorm `gamma` and `beta`
    /// (torchvision's `sum(p.numel() for p in model.parameters())`, and the papers).
    BnAffine,
    /// As [`ParamConvention::BnAffine`] plus the BatchNorm running mean and variance
    /// (Keras' `model.count_params()`, which includes non-trainable weights).
    BnAffineAndStats,
}

/// Every family of the zoo, in a fixed order.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "squeezenet1_1",
        input_hw: 224,
        published_params: 1_235_496,
        published_macs: 350_000_000,
        source: "torchvision squeezenet1_1: 1,235,496 params, 0.35 GFLOPS (MACs)",
    },
    Family {
        name: "mobilenet_v1",
        input_hw: 224,
        published_params: 4_200_000,
        published_macs: 569_000_000,
        source: "MobileNets paper (Howard et al. 2017), 1.0 MobileNet-224: 4.2M params, 569M mult-adds",
    },
    Family {
        name: "mobilenet_v2",
        input_hw: 224,
        published_params: 3_504_872,
        published_macs: 300_000_000,
        source: "torchvision mobilenet_v2: 3,504,872 params; MobileNetV2 paper: 300M MACs",
    },
    Family {
        name: "mobilenet_v3_small",
        input_hw: 224,
        published_params: 2_500_000,
        published_macs: 56_000_000,
        source: "Searching for MobileNetV3 paper, Small 1.0: 2.5M params, 56M MAdds",
    },
    Family {
        name: "mobilenet_v3_large",
        input_hw: 224,
        published_params: 5_400_000,
        published_macs: 219_000_000,
        source: "Searching for MobileNetV3 paper, Large 1.0: 5.4M params, 219M MAdds",
    },
    Family {
        name: "shufflenet_v1",
        input_hw: 224,
        published_params: 1_900_000,
        published_macs: 138_000_000,
        source: "ShuffleNet authors' reference (megvii-model/ShuffleNet-Series), 1.0x group=3: \
                 1.9M params, 138M FLOPs (MACs); mmpretrain lists 1.87M",
    },
    Family {
        name: "shufflenet_v2_x1_0",
        input_hw: 224,
        published_params: 2_300_000,
        published_macs: 146_000_000,
        source: "ShuffleNet V2 paper, 1x: 2.3M params, 146M FLOPs (MACs)",
    },
    Family {
        name: "ghostnet_1_0",
        input_hw: 224,
        published_params: 5_200_000,
        published_macs: 141_000_000,
        source: "GhostNet paper (Han et al. 2020), 1.0x: 5.2M params, 141M FLOPs (MACs)",
    },
    Family {
        name: "xception",
        input_hw: 299,
        published_params: 22_910_480,
        published_macs: 8_400_000_000,
        source: "Keras Xception: 22,910,480 params (incl. BatchNorm statistics); ~8.4G MACs",
    },
];

impl Family {
    /// How [`Family::published_params`] counts BatchNorm.
    pub fn param_convention(&self) -> ParamConvention {
        match self.name {
            "squeezenet1_1" => ParamConvention::Graph,
            "xception" => ParamConvention::BnAffineAndStats,
            _ => ParamConvention::BnAffine,
        }
    }
}

/// The family called `name`, if the zoo has it.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}

/// Options of [`build`].
#[derive(Clone, Debug, Default)]
pub struct ZooOptions {
    /// Input height and width; `None` for the family default ([`Family::input_hw`]).
    pub input_hw: Option<u32>,
    /// Seed of the random weights (mixed with the family name).
    pub seed: u64,
}

/// Why [`build`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    /// No family has this name.
    #[error("unknown model family '{name}' (known: {known})")]
    UnknownFamily {
        /// The name asked for.
        name: String,
        /// The known family names, comma-separated.
        known: String,
    },
    /// The graph could not be built (e.g. an input size too small for the network).
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Key of [`crate::IrModel`] metadata `extra` holding the folded BatchNorm channel count.
pub const BN_CHANNELS_KEY: &str = "zoo.folded_bn_channels";

/// Builds the family `name` with deterministic random weights (see the module docs).
///
/// Fails with [`ZooError::UnknownFamily`] for a name not in [`FAMILIES`] and with
/// [`ZooError::Build`] for an input size the network does not fit (e.g. smaller than its
/// total stride).
pub fn build(name: &str, options: &ZooOptions) -> Result<IrModel, ZooError> {
    let fam = family(name).ok_or_else(|| unknown(name))?;
    let hw = options.input_hw.unwrap_or(fam.input_hw);
    let producer = format!("prunus {} (zoo)", env!("CARGO_PKG_VERSION"));
    let build_family = builder(fam.name).ok_or_else(|| unknown(name))?;
    let seed = family_seed(fam.name, options.seed);
    // Calibrate at the requested size, or at the default size for larger inputs.
    let calibration_hw = hw.min(fam.input_hw);
    let (mut structure, input) = Net::structure(fam.name, calibration_hw);
    let output = build_family(&mut structure, input)?;
    structure.model.set_outputs(&[output]);
    let frees = calibrate::liveness(&structure.model.graph);
    let (mut calibration, input) =
        Net::calibrating(fam.name, &producer, seed, calibration_hw, frees);
    let mut output = build_family(&mut calibration, input)?;
    let bn_channels = calibration.bn_channels();
    let net = if hw == calibration_hw {
        calibration
    } else {
        let (mut net, input) = Net::replaying(fam.name, &producer, hw, calibration.into_weights());
        output = build_family(&mut net, input)?;
        net
    };
    let extra = vec![
        ("zoo.family".to_string(), fam.name.to_string()),
        ("zoo.seed".to_string(), options.seed.to_string()),
        ("zoo.source".to_string(), fam.source.to_string()),
        (BN_CHANNELS_KEY.to_string(), bn_channels.to_string()),
    ];
    Ok(net.finish(output, extra))
}

fn unknown(name: &str) -> ZooError {
    ZooError::UnknownFamily {
        name: name.to_string(),
        known: FAMILIES
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A family's graph builder: adds the layers after the input, returns the logits.
type Builder = fn(&mut Net, TensorId) -> layers::Layer;

/// The builder of family `name`.
fn builder(name: &str) -> Option<Builder> {
    Some(match name {
        "squeezenet1_1" => squeezenet::build,
        "mobilenet_v1" => mobilenet_v1::build,
        "mobilenet_v2" => mobilenet_v2::build,
        "mobilenet_v3_small" => mobilenet_v3::build_small,
        "mobilenet_v3_large" => mobilenet_v3::build_large,
        "shufflenet_v1" => shufflenet_v1::build,
        "shufflenet_v2_x1_0" => shufflenet_v2::build,
        "ghostnet_1_0" => ghostnet::build,
        "xception" => xception::build,
        _ => return None,
    })
}

/// The generator seed of family `name` for the user seed `seed` (FNV-1a of the name).
fn family_seed(name: &str, seed: u64) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A zoo model's size counted like its family's published figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// The family.
    pub family: &'static Family,
    /// How `params` is counted.
    pub convention: ParamConvention,
    /// Parameters of the built graph (folded weights, as stored).
    pub graph_params: u64,
    /// Parameters in the published convention.
    pub params: u64,
    /// Multiply-accumulates of the built graph (convolutions and Gemm).
    pub macs: u64,
}

impl Comparison {
    /// `params / published_params`.
    pub fn params_ratio(&self) -> f64 {
        self.params as f64 / self.family.published_params as f64
    }

    /// `macs / published_macs`.
    pub fn macs_ratio(&self) -> f64 {
        self.macs as f64 / self.family.published_macs as f64
    }
}

/// Counts a model built by [`build`] in the convention of its family's published figures:
/// each folded BatchNorm channel has one bias value in the graph where the source model
/// had `gamma` and `beta` (and, for Keras, the running mean and variance). `None` if the
/// model is not a zoo model (unknown family, or no folded BatchNorm count in its metadata).
pub fn published_comparison(model: &IrModel) -> Option<Comparison> {
    let meta = &model.graph.metadata;
    let family = family(&meta.name)?;
    let bn: u64 = meta
        .extra
        .iter()
        .find(|(k, _)| k == BN_CHANNELS_KEY)?
        .1
        .parse()
        .ok()?;
    let stats = graph_stats(&model.graph);
    let convention = family.param_convention();
    let extra_per_channel = match convention {
        ParamConvention::Graph => 0,
        ParamConvention::BnAffine => 1,
        ParamConvention::BnAffineAndStats => 3,
    };
    Some(Comparison {
        family,
        convention,
        graph_params: stats.params,
        params: stats.params + extra_per_channel * bn,
        macs: stats.macs,
    })
}
