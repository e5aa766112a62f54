//! Compute kernels on CHW (batch 1) f32 data, and the dispatch table that picks them.
//!
//! Every kernel here is a plain, portable implementation; each has a naive reference in its
//! tests and a property test against it. The table ([`KernelTable`]) is the only place that
//! knows which implementation runs for an ISA; later SIMD kernels plug into it.

pub mod activation;
pub mod binary;
pub mod conv;
pub mod conv1x1;
pub mod gemm;
pub mod layout_ops;
pub mod pool;

use prunus_format::Activation;

/// Geometry of one 2-D convolution over CHW data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input channels (all groups).
    pub in_c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels (all groups).
    pub out_c: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along H and W.
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Dilation along H and W.
    pub dilation: [usize; 2],
    /// Groups (`groups == in_c == out_c` is depthwise).
    pub groups: usize,
}

/// What is applied to each output value after the accumulation: `act(acc + bias[o])`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Per-output-channel bias, if any.
    pub bias: Option<&'a [f32]>,
    /// Activation applied last.
    pub activation: Activation,
}

/// Geometry of a pooling window over CHW data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    /// Channels.
    pub c: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output height (may include a ceil-mode window).
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along H and W.
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Average pooling: divide by the window clipped to the padded input (true) or to the
    /// input (false).
    pub count_include_pad: bool,
}

/// How the second operand of a binary op broadcasts against the first (`[C, H*W]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    /// Same shape.
    Full,
    /// One value per channel; `hw` values per channel in the first operand.
    PerChannel {
        /// Spatial size of the first operand.
        hw: usize,
    },
    /// One value for everything.
    Scalar,
}

/// A convolution: `(geometry, x [in_c*in_h*in_w], weight, epilogue, y [out_c*out_h*out_w])`.
/// For [`KernelTable::conv1x1`] the weight is in `Panel8` layout; otherwise OIHW row-major.
pub type ConvFn = fn(&ConvGeom, &[f32], &[f32], &Epilogue, &mut [f32]);

/// A fully connected layer: `(x [K], weight Panel8 [O, K], epilogue, y [O])`.
pub type GemmFn = fn(&[f32], &[f32], &Epilogue, &mut [f32]);

/// A pooling: `(geometry, x, y)`.
pub type PoolFn = fn(&PoolGeom, &[f32], &mut [f32]);

/// The instruction set a session's kernels are chosen for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD.
    Scalar,
}

impl Isa {
    /// Name as accepted by the `PRUNUS_ISA` environment variable.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
        }
    }

    /// Every ISA this build has kernels for, best first.
    pub fn available() -> &'static [Isa] {
        &[Isa::Scalar]
    }
}

/// The kernels one session uses, chosen once when the session is created.
#[derive(Clone, Copy, Debug)]
pub struct KernelTable {
    /// Which ISA the table was built for.
    pub isa: Isa,
    /// 1x1 ungrouped convolution (Panel8 weights; any stride and padding).
    pub conv1x1: ConvFn,
    /// Depthwise convolution (`groups == in_c == out_c`), OIHW weights.
    pub depthwise: ConvFn,
    /// Any other convolution (full or grouped), OIHW weights.
    pub conv: ConvFn,
    /// Fully connected.
    pub gemm: GemmFn,
    /// Max pooling.
    pub max_pool: PoolFn,
    /// Average pooling.
    pub avg_pool: PoolFn,
}

impl KernelTable {
    /// The table for `isa`.
    pub fn for_isa(isa: Isa) -> Self {
        match isa {
            Isa::Scalar => KernelTable {
                isa,
                conv1x1: conv1x1::conv1x1,
                depthwise: conv::depthwise,
                conv: conv::conv_generic,
                gemm: gemm::gemm,
                max_pool: pool::max_pool,
                avg_pool: pool::avg_pool,
            },
        }
    }
}

/// `y = act(x)` element-wise.
pub use activation::activation;
/// Applies `kind` element-wise with broadcasting and a fused activation:
/// `y = act(a (kind) b)`; `a` and `y` have the full shape.
pub use binary::binary;
/// Per-channel `y = act(x * scale[c] + shift[c])` over `[C, hw]`.
pub use binary::scale_shift;
/// Channel shuffle, global average pool, padding and softmax (memory-bound glue).
pub use layout_ops::{channel_shuffle, global_avg_pool, pad, softmax};
