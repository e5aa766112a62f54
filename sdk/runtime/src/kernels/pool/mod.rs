//! Max and average pooling over CHW data, with ONNX semantics for padding and ceil-mode
//! windows.
//!
//! Every window is clipped to the input, so padding never contributes a value: max pooling
//! ignores it, and average pooling divides by the number of valid input elements
//! (`count_include_pad = false`) or by the window clipped to the padded input
//! `[-pad_begin, in + pad_end)` (`true`; a ceil-mode window running past the padding is
//! clipped there too, as in ONNX Runtime and PyTorch). Clipping is done per output row and
//! column, so the inner loops run over contiguous, in-range input slices with no per-element
//! bounds branch.

use super::PoolGeom;

mod global_avg;
mod max3x3s2;
mod max_simd;
pub use global_avg::global_avg_pool_simd;
pub use max_simd::max_pool_simd;
use std::ops::Range;

/// Max pooling; `x` is `[c, in_h, in_w]`, `y` is `[c, out_h, out_w]`. A window that
/// covers no input element (impossible for ONNX-valid geometry) yields 0.
pub fn max_pool(g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    check(g, x, y);
    let (in_hw, out_hw) = (g.in_h * g.in_w, g.out_h * g.out_w);
    if out_hw == 0 {
        return;
    }
    for (c, yplane) in y.chunks_exact_mut(out_hw).enumerate() {
        let xplane = &x[c * in_hw..(c + 1) * in_hw];
        for (oy, yrow) in yplane.chunks_exact_mut(g.out_w).enumerate() {
            let rows = window(oy, g.stride[0], g.kernel[0], g.pads[0], g.in_h);
            for (ox, out) in yrow.iter_mut().enumerate() {
                let cols = window(ox, g.stride[1], g.kernel[1], g.pads[1], g.in_w);
                if rows.is_empty() || cols.is_empty() {
                    *out = 0.0;
                    continue;
                }
                let mut m = f32::NEG_INFINITY;
                for iy in rows.clone() {
                    let row = &xplane[iy * g.in_w..(iy + 1) * g.in_w];
                    m = row[cols.clone()].iter().fold(m, |m, &v| m.max(v));
                }
                *out = m;
            }
        }
    }
}

/// Average pooling; `x` is `[c, in_h, in_w]`, `y` is `[c, out_h, out_w]`. The divisor
/// follows [`PoolGeom::count_include_pad`]; a window with a zero divisor yields 0.
pub fn avg_pool(g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    check(g, x, y);
    let (in_hw, out_hw) = (g.in_h * g.in_w, g.out_h * g.out_w);
    if out_hw == 0 {
        return;
    }
    let [pt, pl, pb, pr] = g.pads;
    for (c, yplane) in y.chunks_exact_mut(out_hw).enumerate() {
        let xplane = &x[c * in_hw..(c + 1) * in_hw];
        for (oy, yrow) in yplane.chunks_exact_mut(g.out_w).enumerate() {
            let rows = window(oy, g.stride[0], g.kernel[0], pt, g.in_h);
            let padded_rows = padded_extent(oy, g.stride[0], g.kernel[0], pt + g.in_h + pb);
            for (ox, out) in yrow.iter_mut().enumerate() {
                let cols = window(ox, g.stride[1], g.kernel[1], pl, g.in_w);
                let count = if g.count_include_pad {
                    padded_rows * padded_extent(ox, g.stride[1], g.kernel[1], pl + g.in_w + pr)
                } else {
                    rows.len() * cols.len()
                };
                let mut sum = 0.0f32;
                for iy in rows.clone() {
                    let row = &xplane[iy * g.in_w..(iy + 1) * g.in_w];
                    sum = row[cols.clone()].iter().fold(sum, |s, &v| s + v);
                }
                *out = if count == 0 { 0.0 } else { sum / count as f32 };
            }
        }
    }
}

/// Entry checks shared by both kernels.
fn check(g: &PoolGeom, x: &[f32], y: &[f32]) {
    debug_assert!(g.kernel[0] > 0 && g.kernel[1] > 0, "pool: empty window");
    debug_assert!(g.stride[0] > 0 && g.stride[1] > 0, "pool: zero stride");
    debug_assert_eq!(x.len(), g.c * g.in_h * g.in_w, "pool: input length");
    debug_assert_eq!(y.len(), g.c * g.out_h * g.out_w, "pool: output length");
}

/// Input indices `[o * stride - pad, o * stride - pad + kernel)` clipped to `[0, len)`.
#[inline(always)]
fn window(o: usize, stride: usize, kernel: usize, pad: usize, len: usize) -> Range<usize> {
    let begin = o * stride; // in padded coordinates
    let end = begin + kernel;
    let lo = begin.saturating_sub(pad).min(len);
    let hi = end.saturating_sub(pad).clamp(lo, len);
    lo..hi
}

/// Length of the window `[o * stride, o * stride + kernel)` clipped to the padded extent
/// `[0, padded_len)` (padded coordinates).
#[inline(always)]
fn padded_extent(o: usize, stride: usize, kernel: usize, padded_len: usize) -> usize {
    let begin = (o * stride).min(padded_len);
    (o * stride + kernel).min(padded_len) - begin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::test_support::*;
    use proptest::prelude::*;

    /// ONNX semantics by direct enumeration of each window position in padded coordinates.
    pub(super) fn naive(g: &PoolGeom, x: &[f32], max: bool) -> Vec<f32> {
        let mut y = vec![0.0; g.c * g.out_h * g.out_w];
        let (pt, pl) = (g.pads[0] as isize, g.pads[1] as isize);
        let (ph_end, pw_end) = ((g.in_h + g.pads[2]) as isize, (g.in_w + g.pads[3]) as isize);
        for c in 0..g.c {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let (mut best, mut sum, mut valid, mut padded) =
                        (f32::NEG_INFINITY, 0.0f64, 0usize, 0usize);
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            let iy = (oy * g.stride[0] + ky) as isize - pt;
                            let ix = (ox * g.stride[1] + kx) as isize - pl;
                            if iy < ph_end && ix < pw_end {
                                padded += 1; // inside [-pad, in + pad_end)
                            }
                            if iy >= 0 && ix >= 0 && iy < g.in_h as isize && ix < g.in_w as isize {
                                let v = x[(c * g.in_h + iy as usize) * g.in_w + ix as usize];
                                best = best.max(v);
                                sum += v as f64;
                                valid += 1;
                            }
                        }
                    }
                    let count = if g.count_include_pad { padded } else { valid };
                    y[(c * g.out_h + oy) * g.out_w + ox] = if max {
                        best
                    } else {
                        (sum / count as f64) as f32
                    };
                }
            }
        }
        y
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn geom(
        c: usize,
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        ceil: bool,
        count_include_pad: bool,
    ) -> PoolGeom {
        let dim = |a: usize| {
            let input = size[a].max(kernel[a].saturating_sub(pads[a] + pads[a + 2]));
            let span = input + pads[a] + pads[a + 2] - kernel[a];
            let mut out = if ceil {
                span.div_ceil(stride[a])
            } else {
                span / stride[a]
            } + 1;
            // ONNX / PyTorch: drop a ceil-mode window starting past input + begin padding.
            if ceil && (out - 1) * stride[a] >= input + pads[a] {
                out -= 1;
            }
            (input, out)
        };
        let ((in_h, out_h), (in_w, out_w)) = (dim(0), dim(1));
        PoolGeom {
            c,
            in_h,
            in_w,
            out_h,
            out_w,
            kernel,
            stride,
            pads,
            count_include_pad,
        }
    }

    fn run(g: &PoolGeom, seed: u64) -> Result<(), TestCaseError> {
        let x = fill(&mut rng(seed), g.c * g.in_h * g.in_w);
        let mut y = vec![f32::NAN; g.c * g.out_h * g.out_w];
        max_pool(g, &x, &mut y);
        assert_close(&y, &naive(g, &x, true))?;
        y.fill(f32::NAN);
        avg_pool(g, &x, &mut y);
        assert_close(&y, &naive(g, &x, false))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn pooling_matches_reference(
            c in 1usize..=37,
            size in [1usize..=23, 1usize..=23],
            (kernel, pads) in [1usize..=5, 1usize..=5].prop_flat_map(|k| {
                // ONNX requires each pad to be smaller than the window along its axis.
                let p = |k: usize| 0..=(k - 1).min(3);
                (Just(k), [p(k[0]), p(k[1]), p(k[0]), p(k[1])])
            }),
            stride in [1usize..=3, 1usize..=3],
            ceil in any::<bool>(),
            count_include_pad in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let g = geom(c, size, kernel, stride, pads, ceil, count_include_pad);
            run(&g, seed)?;
        }
    }

    #[test]
    fn ceil_mode_window_past_padding() {
        // in 6, k 3, s 2, pads (1, 1): floor gives 3 outputs, ceil 4; the 4th window covers
        // padded positions [6, 9) of the padded extent [0, 8): input row 5, the bottom pad
        // and one position past it.
        let g = geom(2, [6, 6], [3, 3], [2, 2], [1, 1, 1, 1], true, true);
        assert_eq!((g.out_h, g.out_w), (4, 4));
        assert_eq!(
            geom(2, [6, 6], [3, 3], [2, 2], [1; 4], false, true).out_h,
            3
        );
        for seed in 0..4 {
            run(&g, seed).unwrap();
            run(
                &PoolGeom {
                    count_include_pad: false,
                    ..g
                },
                seed,
            )
            .unwrap();
        }
        let g1 = PoolGeom { c: 1, ..g };
        let mut y = vec![0.0; 16];
        let ramp: Vec<f32> = (0..36).map(|v| v as f32).collect();
        avg_pool(&g1, &ramp, &mut y);
        // Window rows [5, 8) -> input row 5 only (+ pad row 6), cols [5, 8) -> col 5 (+ 6):
        // sum 35 over a padded 2x2 = 8.75.
        assert_eq!(y[15], 35.0 / 4.0);
        max_pool(&g1, &ramp, &mut y);
        assert_eq!(y[15], 35.0);
        assert_eq!(y[0], 7.0); // rows/cols [-1, 2) -> input [0, 2) x [0, 2), max = 1*6 + 1
    }

    #[test]
    fn avg_excludes_padding_when_asked() {
        // 2x2 input, 2x2 window, stride 1, pad 1 all round: the corner window holds 1 input.
        let x = [4.0f32, 8.0, 12.0, 16.0];
        let mut y = [0.0; 9];
        let g = geom(1, [2, 2], [2, 2], [1, 1], [1; 4], false, false);
        avg_pool(&g, &x, &mut y);
        assert_eq!(y, [4.0, 6.0, 8.0, 8.0, 10.0, 12.0, 12.0, 14.0, 16.0]);
        avg_pool(
            &PoolGeom {
                count_include_pad: true,
                ..g
            },
            &x,
            &mut y,
        );
        assert_eq!(y, [1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 3.0, 7.0, 4.0]);
    }
}
