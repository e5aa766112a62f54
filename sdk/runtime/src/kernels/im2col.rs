//! Im2col: row `(c * kh + ky) * kw + kx` of the scratch holds, for each output pixel, the
//! input value under tap `(ky, kx)` of channel `c` (0 in the padding). The sparse kxk (and
//! strided or padded 1x1) convolutions gather blocks of output pixels; sessions gather a
//! whole plane to run a strided 1x1 convolution without padding, or (NEON) a full one with
//! few taps, on the pointwise kernels (the session's `Step::Conv`).

use crate::kernels::ConvGeom;

/// The patches of every output pixel of `g` (`y` is `[in_c * kh * kw, out_h * out_w]`).
pub fn im2col(g: &ConvGeom, x: &[f32], y: &mut [f32]) {
    let out_hw = g.out_h * g.out_w;
    assert_eq!(x.len(), g.in_c * g.in_h * g.in_w, "im2col: input length");
    assert_eq!(
        y.len(),
        g.in_c * g.kernel[0] * g.kernel[1] * out_hw,
        "im2col: output length"
    );
    if out_hw > 0 {
        im2col_block(g, x, 0, out_hw, out_hw, y);
    }
}

/// Fills rows of `stride` values of `scratch` with the patches of output pixels
/// `p0 .. p0 + n` (`n <= stride`); values past `n` in a row are left as they are.
pub(crate) fn im2col_block(
    g: &ConvGeom,
    x: &[f32],
    p0: usize,
    n: usize,
    stride: usize,
    scratch: &mut [f32],
) {
    let [kh, kw] = g.kernel;
    let in_hw = g.in_h * g.in_w;
    let rows = scratch.chunks_exact_mut(stride).take(g.in_c * kh * kw);
    for (r, row) in rows.enumerate() {
        let (c, tap) = (r / (kh * kw), r % (kh * kw));
        let (ky, kx) = (tap / kw, tap % kw);
        let plane = &x[c * in_hw..(c + 1) * in_hw];
        let dst = &mut row[..n];
        // Output rows touched by the block, each a run of output columns.
        let mut p = p0;
        while p < p0 + n {
            let (oy, ox0) = (p / g.out_w, p % g.out_w);
            let ox1 = g.out_w.min(ox0 + p0 + n - p);
            let run = &mut dst[p - p0..p - p0 + (ox1 - ox0)];
            let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pads[0] as isize;
            if iy < 0 || iy as usize >= g.in_h {
                run.fill(0.0);
            } else {
                let src = &plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
                let x0 = (kx * g.dilation[1]) as isize - g.pads[1] as isize;
                fill_row(run, src, ox0, x0, g.stride[1]);
            }
            p += ox1 - ox0;
        }
    }
}

/// `run[i] = src[(ox0 + i) * stride + x0]`, 0 outside `src`.
fn fill_row(run: &mut [f32], src: &[f32], ox0: usize, x0: isize, stride: usize) {
    let w = src.len() as isize;
    // Output columns whose input column is inside the row: `lo .. hi` (relative to ox0).
    let first = |ox: usize| (ox * stride) as isize + x0;
    let mut lo = 0;
    while lo < run.len() && first(ox0 + lo) < 0 {
        lo += 1;
    }
    let mut hi = run.len();
    while hi > lo && first(ox0 + hi - 1) >= w {
        hi -= 1;
    }
    run[..lo].fill(0.0);
    run[hi..].fill(0.0);
    if lo < hi {
        let start = first(ox0 + lo) as usize;
        let (n, run) = (hi - lo, &mut run[lo..hi]);
        match stride {
            1 => run.copy_from_slice(&src[start..start + n]),
            // Pairs, so that it vectorises (NEON: `ld2`); the last value may have no pair.
            2 => {
                let src = &src[start..start + 2 * n - 1];
                let (body, last) = run.split_at_mut(n - 1);
                for (d, pair) in body.iter_mut().zip(src.as_chunks::<2>().0) {
                    *d = pair[0];
                }
                last[0] = src[2 * n - 2];
            }
            _ => {
                for (d, &v) in run.iter_mut().zip(src[start..].iter().step_by(stride)) {
                    *d = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::test_support::{fill, rng};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every value is the input under its tap, or 0 in the padding: any kernel,
        /// stride, padding and dilation (1x1 strided without padding is the gather of the
        /// strided pointwise convolutions).
        #[test]
        fn im2col_takes_the_value_under_each_tap(
            c in 1usize..=4,
            (h, w) in (1usize..=17, 1usize..=17),
            (kh, kw) in (1usize..=5, 1usize..=5),
            (sh, sw) in (1usize..=3, 1usize..=3),
            (dh, dw) in (1usize..=2, 1usize..=2),
            pads in prop::array::uniform4(0usize..=2),
            seed in any::<u64>(),
        ) {
            let span = |k: usize, d: usize| (k - 1) * d + 1;
            let (eh, ew) = (h + pads[0] + pads[2], w + pads[1] + pads[3]);
            prop_assume!(eh >= span(kh, dh) && ew >= span(kw, dw));
            let g = ConvGeom {
                in_c: c,
                in_h: h,
                in_w: w,
                out_c: 1,
                out_h: (eh - span(kh, dh)) / sh + 1,
                out_w: (ew - span(kw, dw)) / sw + 1,
                kernel: [kh, kw],
                stride: [sh, sw],
                pads,
                dilation: [dh, dw],
                groups: 1,
            };
            let x = fill(&mut rng(seed), c * h * w);
            let out_hw = g.out_h * g.out_w;
            let mut y = vec![f32::NAN; c * kh * kw * out_hw];
            im2col(&g, &x, &mut y);
            for (r, row) in y.chunks_exact(out_hw).enumerate() {
                let (ch, ky, kx) = (r / (kh * kw), r / kw % kh, r % kw);
                for (p, &v) in row.iter().enumerate() {
                    let iy = (p / g.out_w * sh + ky * dh) as isize - pads[0] as isize;
                    let ix = (p % g.out_w * sw + kx * dw) as isize - pads[1] as isize;
                    let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                    let want = match inside {
                        true => x[(ch * h + iy as usize) * w + ix as usize],
                        false => 0.0,
                    };
                    prop_assert_eq!(v.to_bits(), want.to_bits(), "row {} pixel {}", r, p);
                }
            }
        }
    }
}
