//! Compute kernels on CHW (batch 1) f32 data, and the dispatch table that picks them.
//!
//! Every op has a plain, portable implementation; the fast ones are written once against
//! the [`simd`] abstraction and instantiated per ISA (AVX2, AVX-512, NEON). Each kernel has
//! a naive reference in its tests and a property test against it, run for every ISA the
//! CPU supports. The table ([`KernelTable`]) is the only place that knows which
//! implementation runs for an ISA.

pub mod activation;
pub mod binary;
pub mod conv;
pub mod conv1x1;
pub mod dwconv;
pub mod gemm;
pub mod im2col;
pub mod layout_ops;
pub mod pool;
pub mod simd;
pub mod sparse;
pub mod split;
pub mod winograd;

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

/// What is applied to each output value after the accumulation:
/// `act(acc + bias[o] + residual[i])`, added in that order.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Per-output-channel bias, if any.
    pub bias: Option<&'a [f32]>,
    /// A tensor of the output's shape added after the bias (a residual `Add` fused into the
    /// producing convolution). Only the flat pointwise kernels ([`KernelTable::conv1x1`],
    /// stride 1, no padding, more than one pixel) and [`KernelTable::sparse_conv`] read
    /// it; lowering gives it to no other kernel. Must not overlap the output.
    pub residual: Option<&'a [f32]>,
    /// Activation applied last.
    pub activation: Activation,
}

impl<'a> Epilogue<'a> {
    /// `act(acc + bias[o])`, no residual.
    pub fn new(bias: Option<&'a [f32]>, activation: Activation) -> Self {
        Epilogue {
            bias,
            residual: None,
            activation,
        }
    }
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

/// A global average pooling: `(hw, x, y)`, `x` is `[C, hw]` with `C = y.len()`.
pub type GlobalPoolFn = fn(usize, &[f32], &mut [f32]);

/// The instruction set a session's kernels are chosen for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD (whatever the compiler auto-vectorises for the
    /// build's baseline target).
    Scalar,
    /// x86-64 AVX2 with FMA, 8 lanes.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 AVX-512F, 16 lanes (pointwise kernels; the rest as [`Isa::Avx2`]).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// aarch64 NEON, 4 lanes.
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Isa {
    /// Name as accepted by the `PRUNUS_ISA` environment variable.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => "neon",
        }
    }

    /// Every ISA this build has kernels for and this CPU supports, best first
    /// ([`Isa::Scalar`] last, always present). Detected once, cached by `std`.
    pub fn available() -> &'static [Isa] {
        #[cfg(target_arch = "x86_64")]
        {
            use simd::Simd;
            match (simd::Avx512::detect(), simd::Avx2::detect()) {
                (Some(_), Some(_)) => &[Isa::Avx512, Isa::Avx2, Isa::Scalar],
                (None, Some(_)) => &[Isa::Avx2, Isa::Scalar],
                _ => &[Isa::Scalar],
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            use simd::Simd;
            match simd::Neon::detect() {
                Some(_) => &[Isa::Neon, Isa::Scalar],
                None => &[Isa::Scalar],
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            &[Isa::Scalar]
        }
    }
}

/// The kernels one session uses, chosen once when the session is created.
#[derive(Clone, Copy, Debug)]
pub struct KernelTable {
    /// Which ISA the table was built for.
    pub isa: Isa,
    /// 1x1 ungrouped convolution (Panel8 weights; any stride and padding).
    pub conv1x1: ConvFn,
    /// 1x1 grouped convolution (`1 < groups`, not depthwise), OIHW (row-major) weights.
    pub group_conv1x1: ConvFn,
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
    /// Global average pooling (bit-identical in every table).
    pub global_avg_pool: GlobalPoolFn,
    /// Convolution on a sparse weight (any but depthwise; see [`sparse`]).
    pub sparse_conv: sparse::SparseConvFn,
    /// Matrix-vector product on a sparse weight (Gemm, one-pixel pointwise convolution).
    pub sparse_gemv: sparse::SparseGemvFn,
    /// 3x3 stride-1 convolution by Winograd F(4x4, 3x3) on transformed weights, for the
    /// geometries [`winograd::applies`] accepts; `None` where [`KernelTable::conv`] runs
    /// them (the portable table). Unlike the other entries it needs the CPU to support
    /// the table's ISA (which [`Isa::available`] guarantees).
    pub winograd: Option<winograd::WinogradFn>,
    /// Ungrouped kxk convolutions with at most this many taps per output (input channels x
    /// kernel area; the 3-channel stems have 27) that Winograd does not take run as
    /// [`im2col`] of the whole plane into the session scratch, then [`KernelTable::conv1x1`]
    /// on their weights packed as Panel8 (once, at session creation); 0: never. NEON: 32,
    /// where the pointwise assembly tile does the stems in fewer instructions than the
    /// direct kernel; x86-64: 0, where the direct kernel measured faster (see [`conv`]).
    pub im2col_taps: usize,
}

impl KernelTable {
    /// The table for `isa`. SIMD entries check the CPU themselves (and fall back to the
    /// portable kernels), so every table is safe to use on any CPU; only
    /// [`Isa::available`] ones are fast.
    pub fn for_isa(isa: Isa) -> Self {
        let portable = KernelTable {
            isa,
            conv1x1: conv1x1::conv1x1,
            group_conv1x1: conv::conv_generic,
            depthwise: conv::depthwise,
            conv: conv::conv_generic,
            gemm: gemm::gemm,
            max_pool: pool::max_pool,
            avg_pool: pool::avg_pool,
            global_avg_pool: layout_ops::global_avg_pool,
            sparse_conv: sparse::sparse_conv,
            sparse_gemv: sparse::sparse_gemv,
            winograd: None,
            im2col_taps: 0,
        };
        match isa {
            Isa::Scalar => portable,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => KernelTable {
                depthwise: dwconv::depthwise_simd::<simd::Avx2>,
                conv: conv::conv_simd::<simd::Avx2>,
                max_pool: pool::max_pool_simd::<simd::Avx2>,
                global_avg_pool: pool::global_avg_pool_simd::<simd::Avx2>,
                conv1x1: conv1x1::conv1x1_simd::<simd::Avx2>,
                group_conv1x1: conv1x1::group_conv1x1_simd::<simd::Avx2>,
                gemm: gemm::gemm_simd::<simd::Avx2>,
                sparse_conv: sparse::sparse_conv_simd::<simd::Avx2>,
                winograd: Some(winograd::winograd_simd::<simd::Avx2>),
                ..portable
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => KernelTable {
                depthwise: dwconv::depthwise_simd2::<simd::Avx512, simd::Avx2>,
                conv: conv::conv_simd::<simd::Avx512>,
                // Memory-bound: 8-lane rows measured 1.2-1.4x faster than 16-lane ones.
                max_pool: pool::max_pool_simd::<simd::Avx2>,
                // 8 partial sums: one AVX2 vector (the portable kernel's order).
                global_avg_pool: pool::global_avg_pool_simd::<simd::Avx2>,
                conv1x1: conv1x1::conv1x1_simd::<simd::Avx512>,
                group_conv1x1: conv1x1::group_conv1x1_simd::<simd::Avx512>,
                // A panel is 8 wide: this runs the AVX2 matrix-vector product.
                gemm: gemm::gemm_simd::<simd::Avx512>,
                sparse_conv: sparse::sparse_conv_simd::<simd::Avx512>,
                winograd: Some(winograd::winograd_simd::<simd::Avx512>),
                ..portable
            },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => KernelTable {
                depthwise: dwconv::depthwise_simd::<simd::Neon>,
                conv: conv::conv_simd::<simd::Neon>,
                max_pool: pool::max_pool_simd::<simd::Neon>,
                global_avg_pool: pool::global_avg_pool_simd::<simd::Neon>,
                conv1x1: conv1x1::conv1x1_simd::<simd::Neon>,
                group_conv1x1: conv1x1::group_conv1x1_simd::<simd::Neon>,
                gemm: gemm::gemm_simd::<simd::Neon>,
                sparse_conv: sparse::sparse_conv_simd::<simd::Neon>,
                winograd: Some(winograd::winograd_simd::<simd::Neon>),
                im2col_taps: 32,
                ..portable
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
