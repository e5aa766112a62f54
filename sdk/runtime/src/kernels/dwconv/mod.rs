//! Depthwise convolutions (`groups == in_c == out_c`, OIHW weights `[C, 1, KH, KW]`) on CHW
//! data with fused bias and activation.
//!
//! [`depthwise_simd`] dispatches by shape: small planes (on ISAs of 8 or more lanes,
//! 7-column outputs, and 5x5 kernels on planes of up to 512 padded pixels; on NEON, 7- to
//! 16-column outputs of 5x5 and 7-column ones of 3x3 stride 1) run `packed.rs`,
//! vectorised across channels instead of along rows (AVX-512, 7x7x576 5x5: 80 -> 33 µs;
//! 7x7x960 3x3: 40 -> 32 µs; 14x14x288 5x5 stride 2: 49 -> 21 µs; 14x14x672 5x5: 134 ->
//! 122 µs; MobileNetV3-Small 1.13 -> 0.98 ms; 3x3 on 14x14 planes stays on the row kernels,
//! 1.2-1.7x faster there); 3x3 stride 2 with one column of left padding on
//! rows of even width (MobileNet's down-sampling layers) runs `3x3s2.rs`, and on NEON 3x3
//! stride 1 with one column of padding on each side `3x3s1.rs`, which read the input rows
//! in place; 3x3 and 5x5 kernels with stride 1 or 2 and dilation 1, any
//! (asymmetric) padding, run the row-vectorised kernel of `kxk.rs`, written once generic
//! over [`Simd`] and over the kernel size and stride; every other shape (other sizes,
//! dilations, mixed strides) runs the portable [`conv::depthwise`].
//!
//! Design, as measured (x86-64 time, NEON instruction counts under qemu):
//! - Vectorised along the output row, since CHW keeps each channel's row contiguous.
//! - Borders by copying the input rows once into zero-padded slots, which makes every tap
//!   of every vector a plain load; the padding is written once per strip, each row copy
//!   writes only the row (a padded copy per row cost NEON more than the taps on 7x7 planes).
//! - Stride 2 by de-interleaving that copy into even and odd columns, so each tap is again a
//!   contiguous load. The copy de-interleaves two vectors at a time with
//!   [`Simd::deinterleave`] (two permutes); the auto-vectorised plain-Rust loop it replaced
//!   left scalar tails on x86-64 and cost more than the taps (MobileNetV2's 112->56 layer
//!   -25 %, 56->28 -27 % on AVX-512). Computing stride 1 and dropping every other column
//!   would double the work.
//! - 3x3 stride 2 with left padding 1 on even-width rows needs no copy at all: one
//!   de-interleaving load gives taps 1 and 2, and tap 0 is the odd columns moved up a lane
//!   ([`Simd::shift_in`]); the right padding is never read. MobileNetV2's stride-2 layers:
//!   NEON instructions 112->56 4.41 -> 2.96 M, 56->28 2.17 -> 1.28 M, 28->14 1.05 -> 0.46 M,
//!   14->7 1.30 -> 0.52 M (with the harness's per-run input copy).
//! - Rows narrower than a vector end in a masked partial store (AVX2 `vmaskmovps`, AVX-512
//!   masks; the stack-buffer default went through a `memcpy` call: -20 % on 7x7 planes).
//! - Bands of 2 output rows, whose shared input rows are loaded once (1.4 NEON instructions
//!   per FMA in the 3x3 tile), and which keep two accumulator chains per vector on rows
//!   too narrow for several vectors; bands of 4 rows for 3x3 stride-1 rows of one vector
//!   (MobileNetV2's 14x14 and 7x7 planes: -10 to -15 % on AVX-512).
//! - NEON runs 3x3 in bands of 4 rows of 2 vectors (MobileNetV2's depthwise layers: 32.1 M
//!   -> 29.5 M instructions, with the multi-vector loads below): 4 rows of 4
//!   vectors spilled (16 accumulators, LLVM hoists the loads; +12 % at 112x112), and the
//!   window-row loop is unrolled by hand (LLVM kept 6- and 9-row windows as a loop with the
//!   accumulators in memory: +80 %). [`Simd::load_n`]'s `vld1q_f32_x4` compiles to `ldp` /
//!   `ldur` pairs, not one multi-register `ld1`.
//! - Blocks of rows whose padded copies fit 16 KiB, so they are still in L1 when the taps
//!   read them (the whole 64 KiB buffer: MobileNetV2's 112->56 stride-2 layer 20 % slower).
//! - The activation matched once per call (`fused`), not per tile: MobileNetV2's
//!   depthwise layers (bench/insn_ops.py, NEON, all Clip) 20.66 -> 20.04 M instructions, at
//!   +190 KB of aarch64 code (each kernel instantiated for None, Relu, Clip and the rest).
//! - NEON streams 3x3 columns down the plane in place (`3x3s1.rs`, `3x3s2.rs`): each input
//!   row loaded once per column tile, the output rows reading it carried in registers
//!   (stride 1: 3 rows, stride 2: 2). MobileNetV2's depthwise layers 20.04 -> 16.47 M
//!   instructions (stride 1 at 112x112 2.70 -> 2.15 M, 56x56 3.30 -> 2.48 M, both off the
//!   copying kernel; 14x14 0.70 -> 0.55 M, off `packed.rs`).
//! - Computing small planes over the flattened plane (vectors across row ends, to fill
//!   16-lane vectors on 7-column rows) was tried and measured slower everywhere but 7x7 on
//!   NEON (-10 %); instead AVX-512 hands rows of at most 8 columns to AVX2
//!   ([`depthwise_simd2`]).

#[path = "3x3s1.rs"]
mod in_place_3x3s1;
#[path = "3x3s2.rs"]
mod in_place_3x3s2;
mod kxk;
mod packed;
#[cfg(test)]
mod tests;

use in_place_3x3s1::InPlace3x3S1;
use in_place_3x3s2::InPlace3x3S2;
use kxk::DepthwiseKxK;
use packed::Packed;

use prunus_format::Activation;

use crate::kernels::conv;
use crate::kernels::simd::{Simd, VecActivation};
use crate::kernels::{ConvGeom, Epilogue};

/// Stack buffer of the kernel, in values (64 KiB): a block of padded input rows.
const BUF: usize = 16384;

/// Depthwise convolution, generic over the ISA; shapes without a fast path (and CPUs
/// without `S`) run the portable [`conv::depthwise`].
pub fn depthwise_simd<S: Simd>(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let fast = g.dilation == [1, 1]
        && g.groups == g.in_c
        && g.in_c == g.out_c
        && g.in_h * g.in_w > 0
        && g.out_h * g.out_w > 0;
    match S::detect() {
        Some(s) if fast => {
            check(g, x, w, epi, y);
            match (g.kernel, g.stride) {
                _ if Packed::fits::<S>(g) => s.vectorize(Packed { g, x, w, epi, y }),
                ([3, 3], [1, 1]) if InPlace3x3S1::fits::<S>(g) => {
                    s.vectorize(InPlace3x3S1 { g, x, w, epi, y })
                }
                ([3, 3], [1, 1]) => s.vectorize(DepthwiseKxK::<3, 1> { g, x, w, epi, y }),
                ([3, 3], [2, 2]) if InPlace3x3S2::fits::<S>(g) => {
                    s.vectorize(InPlace3x3S2 { g, x, w, epi, y })
                }
                ([3, 3], [2, 2]) => s.vectorize(DepthwiseKxK::<3, 2> { g, x, w, epi, y }),
                ([5, 5], [1, 1]) => s.vectorize(DepthwiseKxK::<5, 1> { g, x, w, epi, y }),
                ([5, 5], [2, 2]) => s.vectorize(DepthwiseKxK::<5, 2> { g, x, w, epi, y }),
                _ => conv::depthwise(g, x, w, epi, y),
            }
        }
        _ => conv::depthwise(g, x, w, epi, y),
    }
}

/// [`depthwise_simd`] on `Wide`, except planes whose rows are at most `Narrow::LANES` wide,
/// which run on `Narrow` (AVX-512 and AVX2: a 16-lane vector would be half idle on the
/// 7-column rows of the last stages), and stride-2 rows too narrow for `Wide`'s in-place
/// kernel but not for `Narrow`'s (MobileNetV2's 28->14 layer on AVX-512: 0.037 -> 0.025 ms).
pub fn depthwise_simd2<Wide: Simd, Narrow: Simd>(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    epi: &Epilogue,
    y: &mut [f32],
) {
    let in_place_narrow = !InPlace3x3S2::fits::<Wide>(g) && InPlace3x3S2::fits::<Narrow>(g);
    if Packed::fits::<Wide>(g) {
        depthwise_simd::<Wide>(g, x, w, epi, y)
    } else if g.out_w <= Narrow::LANES || in_place_narrow {
        depthwise_simd::<Narrow>(g, x, w, epi, y)
    } else {
        depthwise_simd::<Wide>(g, x, w, epi, y)
    }
}

/// The fused activation of the kernels' register tiles, a type per kind: [`fused`] matches
/// the [`Activation`] once per call and runs the kernel instantiated for it, so a tile
/// applies it with no dispatch (the per-tile `match` cost NEON 7 to 10 instructions per
/// tile, with Clip's bounds reloaded from the stack).
pub(super) trait TileActivation<S: Simd>: Copy {
    /// The activation of every vector of `vs`, in place.
    fn apply(&self, s: S, vs: &mut [S::V]);
}

/// No activation.
#[derive(Clone, Copy)]
struct Linear;

/// `max(v, 0)`.
#[derive(Clone, Copy)]
struct Relu;

/// `min(max(v, lo), hi)`.
#[derive(Clone, Copy)]
struct Clip<V> {
    lo: V,
    hi: V,
}

/// Every other kind, matched per tile.
#[derive(Clone, Copy)]
struct Other<S: Simd>(VecActivation<S>);

impl<S: Simd> TileActivation<S> for Linear {
    #[inline(always)]
    fn apply(&self, _: S, _: &mut [S::V]) {}
}

impl<S: Simd> TileActivation<S> for Relu {
    #[inline(always)]
    fn apply(&self, s: S, vs: &mut [S::V]) {
        let zero = s.zero();
        for v in vs {
            *v = s.max(*v, zero);
        }
    }
}

impl<S: Simd> TileActivation<S> for Clip<S::V> {
    #[inline(always)]
    fn apply(&self, s: S, vs: &mut [S::V]) {
        for v in vs {
            *v = s.min(s.max(*v, self.lo), self.hi);
        }
    }
}

impl<S: Simd> TileActivation<S> for Other<S> {
    #[inline(always)]
    fn apply(&self, s: S, vs: &mut [S::V]) {
        self.0.apply_all(s, vs)
    }
}

/// A kernel body generic over its tiles' activation.
pub(super) trait FusedKernel {
    /// The body, with the ISA token and the activation.
    fn run_fused<S: Simd, A: TileActivation<S>>(self, s: S, act: A);
}

/// Runs `k` instantiated for the kind of `act` (None, Relu and Clip, MobileNets' and
/// ShuffleNet's, on their own; every other kind in one instance).
#[inline(always)]
pub(super) fn fused<S: Simd, K: FusedKernel>(s: S, act: Activation, k: K) {
    match act {
        Activation::None => k.run_fused(s, Linear),
        Activation::Relu => k.run_fused(s, Relu),
        Activation::Clip { min, max } => k.run_fused(
            s,
            Clip {
                lo: s.splat(min),
                hi: s.splat(max),
            },
        ),
        other => k.run_fused(s, Other(VecActivation::new(s, other))),
    }
}

/// A 3x3 channel's 9 weights `wc`, splatted as `[ky][kx]` from vectors of weights (NEON
/// keeps 3 registers and multiplies by element), for the in-place kernels.
#[inline(always)]
fn splat_3x3<S: Simd>(s: S, wc: &[f32]) -> [[S::V; 3]; 3] {
    let w9: &[f32; 9] = wc.try_into().expect("9 weights");
    let all = s.splat_each(w9);
    let mut wv = [[s.zero(); 3]; 3];
    for (ky, row) in wv.iter_mut().enumerate() {
        row.copy_from_slice(&all[ky * 3..ky * 3 + 3]);
    }
    wv
}

/// Entry checks (once per call; the kernels index within these lengths).
fn check(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &[f32]) {
    let c = g.in_c;
    assert_eq!(x.len(), c * g.in_h * g.in_w, "depthwise: input length");
    assert_eq!(
        w.len(),
        c * g.kernel[0] * g.kernel[1],
        "depthwise: weight length"
    );
    assert_eq!(y.len(), c * g.out_h * g.out_w, "depthwise: output length");
    assert!(
        epi.bias.is_none_or(|b| b.len() == c),
        "depthwise: bias length"
    );
}
