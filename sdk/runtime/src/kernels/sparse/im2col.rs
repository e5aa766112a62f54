//! Im2col of one block of output pixels, for the sparse kxk (and strided or padded 1x1)
//! convolutions: row `(c * kh + ky) * kw + kx` of the scratch holds, for each output pixel
//! `p0 .. p0 + n`, the input value under tap `(ky, kx)` of channel `c` (0 in the padding).

use crate::kernels::ConvGeom;

/// Fills rows of `stride` values of `scratch` with the patches of output pixels
/// `p0 .. p0 + n` (`n <= stride`); values past `n` in a row are left as they are.
pub(super) fn im2col_block(
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
        if stride == 1 {
            run[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
        } else {
            for (d, &v) in run[lo..hi]
                .iter_mut()
                .zip(src[start..].iter().step_by(stride))
            {
                *d = v;
            }
        }
    }
}
