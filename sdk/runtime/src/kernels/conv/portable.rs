//! Direct 2-D convolutions on OIHW weights: the generic one (any kernel, stride, padding,
//! dilation and groups) and depthwise (`groups == in_c == out_c`).
//!
//! Both build each output row in place: start from the bias, add one pass per (input
//! channel, kernel row) that reads one input row, then apply the activation while the row
//! is in L1. Kernel rows that fall in the vertical padding are skipped per row. Within a
//! pass the output columns split into an interior, where every tap of the kernel row reads
//! inside the input (a branch-free loop, the kernel width a compile-time constant for
//! widths up to [`MAX_CONST_KW`] so the taps stay in registers and the loop vectorises over
//! columns), and the few border columns on either side, which check each tap.

use crate::kernels::activation::activation_in_place;
use crate::kernels::{ConvGeom, Epilogue};
use prunus_format::Activation;

/// Widest kernel row with a compile-time-width interior loop; wider rows use per-tap passes.
const MAX_CONST_KW: usize = 7;

/// Any convolution: full, grouped or depthwise; `w` is OIHW `[O, I/groups, KH, KW]`.
pub fn conv_generic(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    check(g, x, w, epi, y);
    let icpg = g.in_c / g.groups;
    let ocpg = g.out_c / g.groups;
    let in_hw = g.in_h * g.in_w;
    let out_hw = g.out_h * g.out_w;
    let kk = g.kernel[0] * g.kernel[1];
    if out_hw == 0 || ocpg == 0 {
        return;
    }
    let cols = Cols::new(g);
    for (o, yplane) in y.chunks_exact_mut(out_hw).enumerate() {
        let grp = o / ocpg;
        let wo = &w[o * icpg * kk..(o + 1) * icpg * kk];
        let xg = &x[grp * icpg * in_hw..(grp + 1) * icpg * in_hw];
        let bias = epi.bias.map_or(0.0, |b| b[o]);
        plane(g, &cols, wo, xg, bias, epi.activation, yplane);
    }
}

/// Depthwise convolution (`groups == in_c == out_c`); `w` is `[C, 1, KH, KW]`.
pub fn depthwise(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    check(g, x, w, epi, y);
    debug_assert!(
        g.groups == g.in_c && g.groups == g.out_c,
        "depthwise: groups, in_c and out_c differ"
    );
    let in_hw = g.in_h * g.in_w;
    let out_hw = g.out_h * g.out_w;
    let kk = g.kernel[0] * g.kernel[1];
    if out_hw == 0 {
        return;
    }
    let cols = Cols::new(g);
    for (c, yplane) in y.chunks_exact_mut(out_hw).enumerate() {
        let wc = &w[c * kk..(c + 1) * kk];
        let xc = &x[c * in_hw..(c + 1) * in_hw];
        let bias = epi.bias.map_or(0.0, |b| b[c]);
        plane(g, &cols, wc, xc, bias, epi.activation, yplane);
    }
}

/// Entry checks shared by both kernels.
fn check(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &[f32]) {
    debug_assert!(
        g.groups > 0 && g.in_c.is_multiple_of(g.groups) && g.out_c.is_multiple_of(g.groups),
        "conv: groups do not divide the channels"
    );
    debug_assert!(g.kernel[0] > 0 && g.kernel[1] > 0, "conv: empty kernel");
    debug_assert!(g.stride[0] > 0 && g.stride[1] > 0, "conv: zero stride");
    debug_assert!(
        g.dilation[0] > 0 && g.dilation[1] > 0,
        "conv: zero dilation"
    );
    debug_assert_eq!(x.len(), g.in_c * g.in_h * g.in_w, "conv: input length");
    let wlen = g.out_c * (g.in_c / g.groups.max(1)) * g.kernel[0] * g.kernel[1];
    debug_assert_eq!(w.len(), wlen, "conv: weight length");
    debug_assert_eq!(y.len(), g.out_c * g.out_h * g.out_w, "conv: output length");
    debug_assert!(
        epi.bias.is_none_or(|b| b.len() == g.out_c),
        "conv: bias length"
    );
}

/// One output channel: `wo` is its `[I/groups, KH, KW]` weights, `xg` the input planes of
/// its group.
fn plane(
    g: &ConvGeom,
    cols: &Cols,
    wo: &[f32],
    xg: &[f32],
    bias: f32,
    act: Activation,
    yplane: &mut [f32],
) {
    let [kh, kw] = g.kernel;
    let in_hw = g.in_h * g.in_w;
    for (oy, yrow) in yplane.chunks_exact_mut(g.out_w).enumerate() {
        yrow.fill(bias);
        // An empty input (or empty group) leaves the bias: chunks of size 0 are not allowed.
        if in_hw > 0 {
            for (wi, xplane) in wo.chunks_exact(kh * kw).zip(xg.chunks_exact(in_hw)) {
                for (ky, wrow) in wi.chunks_exact(kw).enumerate() {
                    let iy = oy * g.stride[0] + ky * g.dilation[0];
                    let Some(iy) = iy.checked_sub(g.pads[0]).filter(|&iy| iy < g.in_h) else {
                        continue; // this kernel row is in the vertical padding
                    };
                    cols.accumulate(wrow, &xplane[iy * g.in_w..(iy + 1) * g.in_w], yrow);
                }
            }
        }
        activation_in_place(act, yrow);
    }
}

/// Horizontal geometry of one convolution, shared by all its row passes.
struct Cols {
    in_w: usize,
    kw: usize,
    sw: usize,
    dw: usize,
    pl: usize,
    /// Interior output columns `[lo, hi)`: every tap reads inside the input row.
    lo: usize,
    hi: usize,
}

impl Cols {
    fn new(g: &ConvGeom) -> Self {
        let (in_w, out_w, kw) = (g.in_w, g.out_w, g.kernel[1]);
        let (sw, dw, pl) = (g.stride[1], g.dilation[1], g.pads[1]);
        let span = (kw - 1) * dw;
        // First tap inside: ox * sw >= pl. Last tap inside: ox * sw - pl + span <= in_w - 1.
        let lo = pl.div_ceil(sw).min(out_w);
        let hi = if in_w + pl > span {
            ((in_w - 1 + pl - span) / sw + 1).min(out_w)
        } else {
            0
        };
        Cols {
            in_w,
            kw,
            sw,
            dw,
            pl,
            lo,
            hi: hi.max(lo),
        }
    }

    /// `yrow[ox] += sum_kx wrow[kx] * xrow[ox * sw + kx * dw - pl]`, taps outside the row
    /// contributing zero. Not inlined: inlined with its eight `interior` instantiations,
    /// LLVM's code for `plane` changed with unrelated edits elsewhere in the crate (aarch64,
    /// scalar MobileNetV2: 387 -> 440 M instructions per inference; 391 M not inlined).
    #[inline(never)]
    fn accumulate(&self, wrow: &[f32], xrow: &[f32], yrow: &mut [f32]) {
        let (lo, hi) = (self.lo, self.hi);
        let (left, rest) = yrow.split_at_mut(lo);
        for (ox, out) in left.iter_mut().enumerate() {
            *out += self.border_dot(ox, wrow, xrow);
        }
        for (ox, out) in rest.iter_mut().enumerate().skip(hi - lo) {
            *out += self.border_dot(lo + ox, wrow, xrow);
        }
        if hi > lo {
            let seg = &mut rest[..hi - lo];
            let start = lo * self.sw - self.pl;
            let (sw, dw) = (self.sw, self.dw);
            match self.kw {
                1 => interior::<1>(wrow, xrow, seg, start, sw, dw),
                2 => interior::<2>(wrow, xrow, seg, start, sw, dw),
                3 => interior::<3>(wrow, xrow, seg, start, sw, dw),
                4 => interior::<4>(wrow, xrow, seg, start, sw, dw),
                5 => interior::<5>(wrow, xrow, seg, start, sw, dw),
                6 => interior::<6>(wrow, xrow, seg, start, sw, dw),
                MAX_CONST_KW => interior::<MAX_CONST_KW>(wrow, xrow, seg, start, sw, dw),
                _ => interior_wide(wrow, xrow, seg, start, sw, dw),
            }
        }
    }

    /// The dot product of one border column, checking each tap against the row.
    fn border_dot(&self, ox: usize, wrow: &[f32], xrow: &[f32]) -> f32 {
        let mut acc = 0.0;
        for (kx, &wv) in wrow.iter().enumerate() {
            let ix = ox * self.sw + kx * self.dw;
            if let Some(ix) = ix.checked_sub(self.pl).filter(|&ix| ix < self.in_w) {
                acc += wv * xrow[ix];
            }
        }
        acc
    }
}

/// Interior columns with a compile-time kernel width `K`: `seg[i] += sum_k w[k] *
/// xrow[start + i * sw + k * dw]`. Each tap is pre-sliced to exactly the range it reads,
/// so the loop body has no bounds checks left (stride 1) and `K` accumulating multiplies
/// per loaded output.
#[inline(always)]
fn interior<const K: usize>(
    wrow: &[f32],
    xrow: &[f32],
    seg: &mut [f32],
    start: usize,
    sw: usize,
    dw: usize,
) {
    let n = seg.len();
    let w: [f32; K] = std::array::from_fn(|k| wrow[k]);
    if sw == 1 {
        let taps: [&[f32]; K] = std::array::from_fn(|k| &xrow[start + k * dw..][..n]);
        for (i, out) in seg.iter_mut().enumerate() {
            let mut acc = *out;
            for k in 0..K {
                acc += w[k] * taps[k][i];
            }
            *out = acc;
        }
    } else if sw == 2 {
        // Stride 2 (the downsampling layers): view each tap as pairs and read the first of
        // each, which LLVM turns into a de-interleaving load. The last column's pair may
        // run past the row, so it is done on its own.
        let m = n - 1;
        let taps: [&[[f32; 2]]; K] =
            std::array::from_fn(|k| xrow[start + k * dw..][..2 * m].as_chunks::<2>().0);
        let (body, last) = seg.split_at_mut(m);
        for (i, out) in body.iter_mut().enumerate() {
            let mut acc = *out;
            for k in 0..K {
                acc += w[k] * taps[k][i][0];
            }
            *out = acc;
        }
        for (k, &wv) in w.iter().enumerate() {
            last[0] += wv * xrow[start + k * dw + 2 * m];
        }
    } else {
        let span = (n - 1) * sw + 1;
        let taps: [&[f32]; K] = std::array::from_fn(|k| &xrow[start + k * dw..][..span]);
        for (i, out) in seg.iter_mut().enumerate() {
            let mut acc = *out;
            for k in 0..K {
                acc += w[k] * taps[k][i * sw];
            }
            *out = acc;
        }
    }
}

/// Interior columns for kernel rows wider than [`MAX_CONST_KW`]: one axpy pass per tap.
fn interior_wide(wrow: &[f32], xrow: &[f32], seg: &mut [f32], start: usize, sw: usize, dw: usize) {
    for (k, &wv) in wrow.iter().enumerate() {
        let xs = &xrow[start + k * dw..];
        for (out, &v) in seg.iter_mut().zip(xs.iter().step_by(sw)) {
            *out += wv * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::test_support::*;
    use crate::kernels::conv::reference::{Case, run};
    use proptest::prelude::*;

    fn kernel_size() -> impl Strategy<Value = usize> {
        prop_oneof![1usize..=5, Just(7)]
    }

    /// Grouping: full (`groups == 1`), grouped with several channels per group, or
    /// depthwise-like (one input channel per group, with a channel multiplier).
    fn grouping() -> impl Strategy<Value = (usize, usize, usize)> {
        prop_oneof![
            (Just(1usize), 1usize..=8, 1usize..=8),
            (2usize..=4, 2usize..=4, 1usize..=4),
            (1usize..=37, Just(1usize), 1usize..=2),
        ]
    }

    prop_compose! {
        fn any_case(grouping: BoxedStrategy<(usize, usize, usize)>)(
            (groups, icpg, ocpg) in grouping,
            size in [1usize..=23, 1usize..=23],
            kernel in [kernel_size(), kernel_size()],
            stride in [1usize..=3, 1usize..=3],
            pads in [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
            dilation in [1usize..=2, 1usize..=2],
        ) -> Case {
            Case { groups, icpg, ocpg, size, kernel, stride, pads, dilation }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn conv_generic_matches_reference(
            case in any_case(grouping().boxed()),
            act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
        ) {
            run(conv_generic, case, act, with_bias, seed)?;
        }

        #[test]
        fn depthwise_matches_reference(
            case in any_case((1usize..=37).prop_map(|c| (c, 1, 1)).boxed()),
            act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
        ) {
            run(depthwise, case, act, with_bias, seed)?;
        }
    }

    fn dw3x3(stride: usize, pads: [usize; 4], size: usize) -> Case {
        Case {
            groups: 5,
            icpg: 1,
            ocpg: 1,
            size: [size, size],
            kernel: [3, 3],
            stride: [stride; 2],
            pads,
            dilation: [1, 1],
        }
    }

    #[test]
    fn depthwise_stride2_pad_bottom_right() {
        // TF "SAME" padding for stride 2 on an even input: (0, 0, 1, 1).
        let case = dw3x3(2, [0, 0, 1, 1], 8);
        assert_eq!((case.geom().out_h, case.geom().out_w), (4, 4));
        for act in ALL_ACTIVATIONS {
            run(depthwise, case, act, true, 11).unwrap();
            run(conv_generic, case, act, false, 12).unwrap();
        }
    }

    #[test]
    fn wide_kernel_row_uses_per_tap_passes() {
        // KW = 9 > MAX_CONST_KW takes `interior_wide`, stride 1 and 2.
        for stride in [1, 2] {
            let case = Case {
                kernel: [2, 9],
                stride: [1, stride],
                pads: [1, 4, 0, 3],
                ..dw3x3(1, [0; 4], 17)
            };
            run(depthwise, case, Activation::Relu, true, 13).unwrap();
            let grouped = Case {
                icpg: 3,
                ocpg: 2,
                ..case
            };
            run(conv_generic, grouped, Activation::None, true, 14).unwrap();
        }
    }

    #[test]
    fn kernel_wider_than_padded_input_is_all_border() {
        // in_w 2 with pads 3+3 and a 7-wide kernel: no interior column, every tap checked.
        let case = Case {
            kernel: [1, 7],
            pads: [0, 3, 0, 3],
            ..dw3x3(1, [0; 4], 2)
        };
        assert_eq!(Cols::new(&case.geom()).lo, Cols::new(&case.geom()).hi);
        run(depthwise, case, Activation::None, true, 15).unwrap();
    }

    #[test]
    fn exact_3x3_full_conv() {
        // One 3x3 input of 1..=9, all-ones kernel, pad 1: each output is a clipped box sum.
        let g = Case {
            groups: 1,
            ..dw3x3(1, [1; 4], 3)
        }
        .geom();
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut y = [0.0; 9];
        let epi = Epilogue::new(Some(&[-1.0]), Activation::None);
        conv_generic(&g, &x, &[1.0; 9], &epi, &mut y);
        assert_eq!(y, [11.0, 20.0, 15.0, 26.0, 44.0, 32.0, 23.0, 38.0, 27.0]);
    }
}
