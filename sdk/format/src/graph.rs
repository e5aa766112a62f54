//! The graph stored in a model file: tensors, weights, ops and metadata.
//!
//! The same types are the tool's intermediate representation: the ONNX importer and the
//! built-in zoo both produce a [`Graph`] plus weight data, and [`crate::write`] packs it.
//! Activations are NCHW with batch 1; every shape below includes the batch dimension.

use serde::{Deserialize, Serialize};

/// Index of an activation tensor in [`Graph::tensors`].
pub type TensorId = u32;
/// Index of a weight tensor in [`Graph::weights`].
pub type WeightId = u32;

/// A whole network: what the runtime executes, in node order (topological).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Producer, model name, input normalization, free-form key/values.
    pub metadata: Metadata,
    /// Every activation tensor (graph inputs, intermediates, outputs).
    pub tensors: Vec<TensorInfo>,
    /// Every weight tensor; its bytes live in the weights section.
    pub weights: Vec<WeightInfo>,
    /// Operations in execution order; each reads tensors defined earlier.
    pub nodes: Vec<Node>,
    /// Graph inputs, fed by the caller.
    pub inputs: Vec<TensorId>,
    /// Graph outputs, read by the caller.
    pub outputs: Vec<TensorId>,
}

impl Graph {
    /// Display name of a node's op, telling depthwise (`DwConv`: one input channel per
    /// group) from other grouped convolutions (`GroupConv`).
    pub fn node_kind(&self, node: &Node) -> &'static str {
        match &node.op {
            Op::Conv(c) if c.groups > 1 => {
                let per_group = self
                    .weights
                    .get(c.weight as usize)
                    .and_then(|w| w.shape.get(1));
                match per_group {
                    Some(1) => "DwConv",
                    _ => "GroupConv",
                }
            }
            op => op.kind_name(),
        }
    }
}

/// Descriptive metadata carried with the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Tool that wrote the file, e.g. `prunus 0.1.0 (onnx import)`.
    pub producer: String,
    /// Model name (ONNX graph name or zoo family).
    pub name: String,
    /// Input normalization the model expects, if the user or the source gave one.
    pub normalization: Option<Normalization>,
    /// Free-form key/value pairs (source file, opset, ...).
    pub extra: Vec<(String, String)>,
}

/// Per-channel input normalization: `x' = (x * scale - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Multiplier applied first (e.g. 1/255 for 8-bit images).
    pub scale: f32,
    /// Per-channel mean subtracted after scaling.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by last.
    pub std: Vec<f32>,
}

/// An activation tensor: name and shape (NCHW, N = 1, or N x K for flattened tensors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Name from the source model; unique within the graph.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<u32>,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }
}

/// How a weight tensor's elements are ordered in the file. Chosen per op at pack time so
/// that kernels of every ISA read the stored bytes directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Plain row-major order of the logical shape (OIHW for conv, `[K]` for vectors).
    RowMajor,
    /// `[O, I]` matrices (1x1 conv, Gemm) in panels of 8 output rows:
    /// element `(o, i)` lives at `(o / 8) * I * 8 + i * 8 + o % 8`; the last panel is
    /// zero-padded to 8 rows, so the stored length is `ceil(O / 8) * 8 * I`.
    Panel8,
}

/// How a weight tensor's elements are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// Little-endian IEEE f32; read in place.
    F32,
    /// Little-endian IEEE f16; widened to f32 once at session creation.
    F16,
    /// Blocked sparse f32 matrix (conv and Gemm weights; see [`crate::sparse`]): stored
    /// columns per block of `block` output channels, column deltas of `index_bytes` bytes.
    SparseBlocks {
        /// Output channels per block: 1, 2 or 4.
        block: u8,
        /// Bytes per column delta: 1, 2 or 4.
        index_bytes: u8,
        /// Stored columns over all blocks.
        nnz: u32,
    },
    /// Reserved: N:M structured sparsity (sparse inference issue).
    SparseNm,
    /// Reserved: int8 per-output-channel with f32 scales and i8 zero points.
    Int8PerChannel,
}

/// A weight tensor's place in the weights section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightInfo {
    /// Name from the source model (the ONNX initializer it came from).
    pub name: String,
    /// Logical shape (e.g. OIHW), independent of the stored layout.
    pub shape: Vec<u32>,
    /// Element order of the stored bytes.
    pub layout: Layout,
    /// Element encoding of the stored bytes.
    pub encoding: Encoding,
    /// Byte offset from the start of the weights section; a multiple of 64.
    pub offset: u64,
    /// Stored length in bytes.
    pub nbytes: u64,
}

impl WeightInfo {
    /// Number of logical elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Name from the source model (for errors and profiles).
    pub name: String,
    /// What the node computes.
    pub op: Op,
    /// Activation tensors read.
    pub inputs: Vec<TensorId>,
    /// Activation tensors written.
    pub outputs: Vec<TensorId>,
}

/// A pointwise activation, fused into a producing op or standalone.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)` (ReLU6 is `Clip { 0, 6 }`).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        /// Slope (1/6 in MobileNetV3).
        alpha: f32,
        /// Offset (0.5 in MobileNetV3).
        beta: f32,
    },
    /// `x * max(0, min(1, x / 6 + 0.5))`.
    HardSwish,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x > 0 ? x : alpha * x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
}

impl Activation {
    /// Applies the activation to one value (the reference every kernel is tested against).
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Clip { min, max } => x.max(min).min(max),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::LeakyRelu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
        }
    }
}

/// Element-wise binary operation between two activation tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryKind {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
}

impl BinaryKind {
    /// Applies the operation to one pair of values.
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryKind::Add => a + b,
            BinaryKind::Sub => a - b,
            BinaryKind::Mul => a * b,
            BinaryKind::Div => a / b,
        }
    }
}

/// 2-D convolution parameters (NCHW).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    /// Weight `[O, I/groups, KH, KW]`; [`Layout::Panel8`] for 1x1 ungrouped convs,
    /// [`Layout::RowMajor`] otherwise.
    pub weight: WeightId,
    /// Optional bias `[O]`.
    pub bias: Option<WeightId>,
    /// Kernel height and width.
    pub kernel: [u32; 2],
    /// Stride along H and W.
    pub stride: [u32; 2],
    /// Padding: top, left, bottom, right.
    pub pads: [u32; 4],
    /// Dilation along H and W.
    pub dilation: [u32; 2],
    /// Number of groups (`groups == I == O` is depthwise).
    pub groups: u32,
    /// Fused activation applied after bias.
    pub activation: Activation,
}

/// Pooling window parameters (NCHW).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Window height and width.
    pub kernel: [u32; 2],
    /// Stride along H and W.
    pub stride: [u32; 2],
    /// Padding: top, left, bottom, right. Windows are clipped to the input; the output
    /// shape (which may come from `ceil_mode`) is the output tensor's shape.
    pub pads: [u32; 4],
    /// Average pooling only: divide by the full window including explicit padding
    /// (ONNX `count_include_pad`), instead of the number of valid input elements.
    pub count_include_pad: bool,
}

/// The operations the runtime executes. Channel axes are axis 1 (NCHW).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// 2-D convolution with fused bias and activation. Inputs: `[x]`.
    Conv(Conv),
    /// Fully connected: `y = x W^T + b` on a `[1, K]` input. Weight `[O, K]` in
    /// [`Layout::Panel8`]. Inputs: `[x]`.
    Gemm {
        /// Weight `[O, K]`.
        weight: WeightId,
        /// Optional bias `[O]`.
        bias: Option<WeightId>,
        /// Fused activation.
        activation: Activation,
    },
    /// Element-wise binary op of two tensors with NCHW broadcasting: `b` has the shape of
    /// `a`, or `[1, C, 1, 1]`, or one element. Inputs: `[a, b]`.
    Binary {
        /// Which operation.
        kind: BinaryKind,
        /// Fused activation.
        activation: Activation,
    },
    /// Per-channel `y = act(x * scale[c] + shift[c])` (standalone BatchNorm, constant
    /// per-channel or scalar Add/Sub/Mul/Div). Inputs: `[x]`.
    ScaleShift {
        /// `[C]` multipliers.
        scale: WeightId,
        /// `[C]` offsets.
        shift: WeightId,
        /// Fused activation.
        activation: Activation,
    },
    /// Standalone activation. Inputs: `[x]`.
    Activation(Activation),
    /// Concatenation along channels. Inputs: the parts, in order.
    Concat,
    /// Channels `[start, end)` of the input. Inputs: `[x]`.
    SliceChannels {
        /// First channel kept.
        start: u32,
        /// One past the last channel kept.
        end: u32,
    },
    /// `groups x (C/groups)` → transposed channel order. Inputs: `[x]`.
    ChannelShuffle {
        /// Number of groups.
        groups: u32,
    },
    /// Max pooling. Inputs: `[x]`.
    MaxPool(Pool),
    /// Average pooling. Inputs: `[x]`.
    AveragePool(Pool),
    /// Mean over H and W, keeping `[1, C, 1, 1]`. Inputs: `[x]`.
    GlobalAveragePool,
    /// Same data, new shape (Flatten, Reshape, Squeeze...). Inputs: `[x]`.
    Reshape,
    /// Softmax over the last axis. Inputs: `[x]`.
    Softmax,
    /// Constant padding of H and W. Inputs: `[x]`.
    Pad {
        /// Padding: top, left, bottom, right.
        pads: [u32; 4],
        /// Fill value.
        value: f32,
    },
}

impl Op {
    /// Short name of the op alone (`Conv`, `Conv1x1`, `DwConv` for any grouped k×k conv,
    /// `Gemm`, ...); [`Graph::node_kind`] tells depthwise from group convolutions.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Op::Conv(c) if c.groups > 1 && c.kernel != [1, 1] => "DwConv",
            Op::Conv(c) if c.kernel == [1, 1] => "Conv1x1",
            Op::Conv(_) => "Conv",
            Op::Gemm { .. } => "Gemm",
            Op::Binary { kind, .. } => match kind {
                BinaryKind::Add => "Add",
                BinaryKind::Sub => "Sub",
                BinaryKind::Mul => "Mul",
                BinaryKind::Div => "Div",
            },
            Op::ScaleShift { .. } => "ScaleShift",
            Op::Activation(_) => "Activation",
            Op::Concat => "Concat",
            Op::SliceChannels { .. } => "Slice",
            Op::ChannelShuffle { .. } => "ChannelShuffle",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Reshape => "Reshape",
            Op::Softmax => "Softmax",
            Op::Pad { .. } => "Pad",
        }
    }

    /// The weight tensors this op reads.
    pub fn weight_ids(&self) -> Vec<WeightId> {
        match self {
            Op::Conv(c) => std::iter::once(c.weight).chain(c.bias).collect(),
            Op::Gemm { weight, bias, .. } => std::iter::once(*weight).chain(*bias).collect(),
            Op::ScaleShift { scale, shift, .. } => vec![*scale, *shift],
            _ => Vec::new(),
        }
    }
}
