//! Max pooling vectorised along the output row, generic over [`Simd`]: square 2x2 and 3x3
//! windows, stride 1 or 2, any padding and ceil mode as long as every window holds an input
//! value (always, for ONNX-valid geometry). 3x3 stride 2 (SqueezeNet's, ShuffleNet's and
//! Xception's pools) reads the rows in place (`max3x3s2.rs`); the other windows go through
//! padded slots, as below.
//!
//! Per output row: the element-wise maximum of the window's input rows (clipped to the
//! input: padding never contributes) over the columns the row reads, written straight into
//! a slot padded with -inf (set once per call when rows fit a strip) and, for stride 2,
//! de-interleaved into even and odd columns ([`Span::copy_max`]), so each of the `K`
//! horizontal taps of an output vector is one contiguous load and a `max`. Rows go in bands
//! of [`BAND`]: the band's slots are all filled before any of its taps run. SqueezeNet's
//! three pools (AVX2 on AVX-512, alone): 137 + 111 + 101 -> 82 + 50 + 33 µs; before, each
//! row's maxima went through a row buffer whose overlapping last vector was reloaded while
//! its stores were in flight, missing store forwarding. The in-place 3x3 stride-2 kernel
//! then took them to 77-103 + 38-50 + 21-22 µs (two runs), and NEON from 5.95 M to 2.4 M
//! instructions per SqueezeNet inference. NaN inputs may propagate where the portable
//! kernel (`f32::max`) would skip them.

use super::max3x3s2::MaxPool3x3S2;
use super::{PoolGeom, max_pool, window};
use crate::kernels::conv::rows::{Span, fill_all, phases};
use crate::kernels::simd::{MAX_LANES, Simd, SimdKernel};

/// Output columns per strip.
const STRIP: usize = 256;

/// Slot values: two phases of a strip, its window and a vector of slack.
const SLOT: usize = 2 * (STRIP + 4 * MAX_LANES);

/// Output rows per band (their slots: 20 KiB).
const BAND: usize = 8;

/// Max pooling, generic over the ISA; other windows and strides, geometry with empty
/// windows, and CPUs without `S`, run the portable [`max_pool`].
pub fn max_pool_simd<S: Simd>(g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    let [k, kw] = g.kernel;
    let axis_ok = |a: usize, input: usize, out: usize| {
        g.pads[a] < k && (out - 1) * g.stride[a] < input + g.pads[a]
    };
    let fast = k == kw
        && g.stride[0] == g.stride[1]
        && g.in_h * g.in_w > 0
        && g.out_h * g.out_w > 0
        && axis_ok(0, g.in_h, g.out_h)
        && axis_ok(1, g.in_w, g.out_w);
    match S::detect() {
        Some(s) if fast => {
            assert_eq!(x.len(), g.c * g.in_h * g.in_w, "max pool: input length");
            assert_eq!(y.len(), g.c * g.out_h * g.out_w, "max pool: output length");
            match (k, g.stride[0]) {
                (2, 1) => s.vectorize(MaxPool::<2, 1> { g, x, y }),
                (2, 2) => s.vectorize(MaxPool::<2, 2> { g, x, y }),
                (3, 1) => s.vectorize(MaxPool::<3, 1> { g, x, y }),
                (3, 2) => s.vectorize(MaxPool3x3S2 { g, x, y }),
                _ => max_pool(g, x, y),
            }
        }
        _ => max_pool(g, x, y),
    }
}

/// A checked `K`x`K` stride-`ST` max pooling whose every window holds an input value.
struct MaxPool<'a, const K: usize, const ST: usize> {
    g: &'a PoolGeom,
    x: &'a [f32],
    y: &'a mut [f32],
}

impl<const K: usize, const ST: usize> SimdKernel for MaxPool<'_, K, ST> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let MaxPool { g, x, y } = self;
        let (l, ow) = (S::LANES, g.out_w);
        let (in_hw, out_hw) = (g.in_h * g.in_w, g.out_h * g.out_w);
        let mut slots = [0.0f32; BAND * SLOT];
        // The strip whose -inf padding the slots hold (the same for every channel when the
        // rows fit one strip: filled once per call).
        let mut padded = None;
        for (xc, yc) in x.chunks_exact(in_hw).zip(y.chunks_exact_mut(out_hw)) {
            for ox0 in (0..ow).step_by(STRIP) {
                let n = STRIP.min(ow - ox0);
                let pw = (n + K + l).next_multiple_of(l);
                let need = (n - 1) * ST + K;
                let ix0 = (ox0 * ST) as isize - g.pads[1] as isize;
                // The input columns the strip reads.
                let c0 = ix0.max(0) as usize;
                let c1 = ((ix0 + need as isize).max(0) as usize).min(g.in_w).max(c0);
                // The window rows are cut to columns c0..c1; the slots' padding is -inf.
                let span = Span::new(ix0 - c0 as isize, need, c1 - c0);
                if padded != Some(ox0) {
                    for slot in slots.chunks_exact_mut(SLOT) {
                        fill_all(s, &mut slot[..ST * pw], f32::NEG_INFINITY);
                    }
                    padded = Some(ox0);
                }
                // The band's vertical maxima, then its taps: the taps' unaligned loads do not
                // read stores still in flight.
                for (b, yband) in yc.chunks_mut(BAND * ow).enumerate() {
                    let bslots = slots.chunks_exact_mut(SLOT);
                    for (j, (_, slot)) in yband.chunks_exact(ow).zip(bslots).enumerate() {
                        // A clipped window repeats its last row (the maximum is the same).
                        let iys = window(b * BAND + j, ST, K, g.pads[0], g.in_h);
                        let mut rows: [&[f32]; K] = [&[]; K];
                        for (r, row) in rows.iter_mut().enumerate() {
                            let iy = iys.start + r.min(iys.len() - 1);
                            *row = &xc[iy * g.in_w + c0..iy * g.in_w + c1];
                        }
                        span.copy_max::<S, ST, K>(s, rows, phases(slot, pw));
                    }
                    let bslots = slots.chunks_exact(SLOT);
                    for (yrow, slot) in yband.chunks_exact_mut(ow).zip(bslots) {
                        taps::<S, K, ST>(s, &slot[..ST * pw], pw, &mut yrow[ox0..ox0 + n]);
                    }
                }
            }
        }
    }
}

/// `yrow[ox] = max over kx of column ox * ST + kx` of the slot (phases of `pw`).
#[inline(always)]
fn taps<S: Simd, const K: usize, const ST: usize>(s: S, slot: &[f32], pw: usize, yrow: &mut [f32]) {
    let (n, l) = (yrow.len(), S::LANES);
    if n < l {
        return s.store_partial(window_max::<S, K, ST>(s, slot, pw, 0), yrow);
    }
    let mut ox = 0;
    while ox < n {
        let o = ox.min(n - l);
        s.store(window_max::<S, K, ST>(s, slot, pw, o), &mut yrow[o..o + l]);
        ox += l;
    }
}

/// The window maxima of output columns `ox..ox + LANES` (a function: a closure LLVM does
/// not inline is compiled without the ISA's features, and calls `max`).
#[inline(always)]
fn window_max<S: Simd, const K: usize, const ST: usize>(
    s: S,
    slot: &[f32],
    pw: usize,
    ox: usize,
) -> S::V {
    let mut m = s.load(&slot[ox..ox + S::LANES]);
    for kx in 1..K {
        let off = (kx % ST) * pw + kx / ST + ox;
        m = s.max(m, s.load(&slot[off..off + S::LANES]));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::super::tests::{geom, naive};
    use super::*;
    use crate::kernels::PoolFn;
    use crate::kernels::activation::test_support::*;
    use crate::kernels::{Isa, KernelTable};
    use proptest::prelude::*;

    /// The table's `max_pool` slot for every available ISA and each SIMD instantiation.
    fn kernels() -> Vec<(&'static str, PoolFn)> {
        let mut all: Vec<(&'static str, PoolFn)> = Isa::available()
            .iter()
            .map(|&isa| (isa.name(), KernelTable::for_isa(isa).max_pool))
            .collect();
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::simd::{Avx2, Avx512};
            if Avx2::detect().is_some() {
                all.push(("max_pool_simd::<Avx2>", max_pool_simd::<Avx2>));
            }
            if Avx512::detect().is_some() {
                all.push(("max_pool_simd::<Avx512>", max_pool_simd::<Avx512>));
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            use crate::kernels::simd::Neon;
            if Neon::detect().is_some() {
                all.push(("max_pool_simd::<Neon>", max_pool_simd::<Neon>));
            }
        }
        all
    }

    fn check(g: &PoolGeom, seed: u64) -> Result<(), TestCaseError> {
        let x = fill(&mut rng(seed), g.c * g.in_h * g.in_w);
        let want = naive(g, &x, true);
        for (name, f) in kernels() {
            let mut y = vec![f32::NAN; want.len()];
            f(g, &x, &mut y);
            assert_close(&y, &want)
                .map_err(|e| TestCaseError::fail(format!("{name} {g:?}: {e}")))?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn max_pool_matches_reference_on_every_isa(
            c in 1usize..=19,
            size in [1usize..=40, 1usize..=40],
            (k, pads) in (2usize..=3).prop_flat_map(|k| (Just(k), [0..k, 0..k, 0..k, 0..k])),
            stride in 1usize..=2,
            ceil in any::<bool>(),
            seed in any::<u64>(),
        ) {
            check(&geom(c, size, [k, k], [stride; 2], pads, ceil, false), seed)?;
        }
    }

    #[test]
    fn zoo_pools_and_wide_rows() {
        // SqueezeNet (111 -> 55, ceil), Xception (147 -> 74, pad 1), rows over a strip.
        for (size, pads, ceil) in [
            (111, [0; 4], true),
            (147, [1; 4], false),
            (600, [1; 4], true),
        ] {
            check(
                &geom(3, [size.min(40), size], [3, 3], [2, 2], pads, ceil, false),
                1,
            )
            .unwrap();
        }
    }
}
