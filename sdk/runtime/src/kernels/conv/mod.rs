//! Convolutions other than the pointwise ones, on OIHW weights.
//!
//! - [`conv_simd`] (`direct.rs`): full and grouped 3x3 convolutions, stride 1 or 2 (the
//!   stems, grouped 3x3s, and the stride-1 ones with fewer than 8 channels), written once
//!   generic over [`Simd`]; other shapes run [`conv_generic`]. Ungrouped 3x3 stride-1
//!   convolutions with at least 8 input and output channels (SqueezeNet's expand,
//!   Xception's entry) run [`winograd`](super::winograd) instead, when the ISA has it.
//! - [`conv_generic`] and [`depthwise`] (`portable.rs`): any kernel, stride, padding,
//!   dilation and groups, plain Rust; the fallback of every fast path.
//! - `rows.rs`: padded, de-interleaved input rows shared by the kernels vectorised along
//!   the output row (here and in [`dwconv`](super::dwconv)); `epilogue.rs`: their fused
//!   activation.
//!
//! # Direct, im2col + GEMM, or Winograd
//!
//! Measured on this x86-64 host (AVX-512, 1 thread, GFLOP/s, best of runs), against im2col
//! of the whole plane followed by the pointwise SIMD GEMM (`conv1x1_simd` on Panel8
//! weights), whose micro-kernel reaches 235-250 GFLOP/s on large pointwise shapes:
//!
//! | shape                         | direct | im2col + GEMM (im2col share) |
//! |-------------------------------|-------:|-----------------------------:|
//! | stem 3x3/2, 224x224x3 -> 32   |    142 |                    87 (57 %) |
//! | SqueezeNet 3x3, 55x55x16 -> 64 |   197 |                   133 (44 %) |
//! | SqueezeNet 3x3, 27x27x32 -> 128 |  215 |                   174 (31 %) |
//! | SqueezeNet 3x3, 13x13x64 -> 256 |  177 |                   191 (19 %) |
//! | Xception 3x3, 149x149x32 -> 64 |   198 |                   119 (38 %) |
//!
//! And against Winograd F(4x4, 3x3) (later, one criterion run: `cargo bench -p
//! prunus-bench --bench kernels -- winograd/avx512`; GFLOP/s of the direct convolution's
//! work):
//!
//! | shape                           | direct | Winograd |
//! |---------------------------------|-------:|---------:|
//! | SqueezeNet 3x3, 55x55x16 -> 64  |    186 |      323 |
//! | SqueezeNet 3x3, 27x27x32 -> 128 |    184 |      347 |
//! | SqueezeNet 3x3, 13x13x64 -> 256 |    123 |      298 |
//! | Xception 3x3, 147x147x32 -> 64  |    182 |      395 |
//!
//! Copying `K * K` shifted planes costs more than the GEMM gains except on the smallest
//! planes, and it needs a scratch buffer of `K * K * in_c * out_hw` values per session (25
//! MB for Xception's entry convolution); the direct kernel needs 64 KiB of stack and no
//! repacked weights. Winograd does 4x fewer multiplies on stride 1; its transforms and
//! the products' small inner dimension take back about half of that (1.7-2.4x faster
//! than direct above). On NEON it cuts SqueezeNet's instructions per inference by a third
//! (157.4 -> 104.5 M, cortex-a72).
//!
//! On NEON the stems (27 taps) run im2col + GEMM after all
//! ([`KernelTable::im2col_taps`](crate::kernels::KernelTable::im2col_taps), lowered by the
//! session): the pointwise assembly tile with its epilogue does their products in 1.4
//! instructions per FMA, and the whole-plane im2col costs about a third of that again.
//! MobileNetV2's stem, 224x224x3 -> 32: 6.38 M instructions direct, 4.85 M (1.23 M of them
//! im2col) this way; SqueezeNet 93.3 -> 90.0 M per inference. The price is the patches in
//! the session scratch (27 x 112 x 112 values, 1.35 MB, for MobileNetV2).

mod direct;
pub(crate) mod epilogue;
mod portable;
#[cfg(test)]
pub(crate) mod reference;
pub(crate) mod rows;
#[cfg(test)]
mod tests;

use direct::DirectConv;

use crate::kernels::simd::Simd;
use crate::kernels::{ConvGeom, Epilogue};

pub use portable::{conv_generic, depthwise};

/// Full or grouped convolution on OIHW weights, generic over the ISA: 3x3 kernels with
/// stride 1 or 2 and dilation 1 (any padding, any groups) run the direct kernel; other
/// shapes, and CPUs without `S`, run [`conv_generic`].
pub fn conv_simd<S: Simd>(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let sizes_ok = g.groups > 0
        && g.in_c.is_multiple_of(g.groups)
        && g.out_c.is_multiple_of(g.groups)
        && g.in_c > 0
        && g.out_c > 0
        && g.in_h * g.in_w > 0
        && g.out_h * g.out_w > 0;
    match S::detect() {
        Some(s) if sizes_ok && g.dilation == [1, 1] => {
            check(g, x, w, epi, y);
            match (g.kernel, g.stride) {
                ([3, 3], [1, 1]) => s.vectorize(DirectConv::<3, 1> { g, x, w, epi, y }),
                ([3, 3], [2, 2]) => s.vectorize(DirectConv::<3, 2> { g, x, w, epi, y }),
                _ => conv_generic(g, x, w, epi, y),
            }
        }
        _ => conv_generic(g, x, w, epi, y),
    }
}

/// Entry checks (once per call; the kernels index within these lengths).
fn check(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &[f32]) {
    let icpg = g.in_c / g.groups;
    assert_eq!(x.len(), g.in_c * g.in_h * g.in_w, "conv: input length");
    let kk = g.kernel[0] * g.kernel[1];
    assert_eq!(w.len(), g.out_c * icpg * kk, "conv: weight length");
    assert_eq!(y.len(), g.out_c * g.out_h * g.out_w, "conv: output length");
    assert!(
        epi.bias.is_none_or(|b| b.len() == g.out_c),
        "conv: bias length"
    );
}
