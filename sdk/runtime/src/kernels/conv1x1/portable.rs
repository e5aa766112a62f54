//! Portable 1x1 ungrouped convolution on [`Panel8`](prunus_format::Layout::Panel8) weights:
//! a GEMM `Y[O, HW] = W[O, I] X[I, HW]` with fused bias and activation.
//!
//! The micro-kernel computes an 8 (output channels, one panel) x `T` (pixels) tile: per
//! input channel it loads the panel's 8 weights and `T` pixels of that channel's row, and
//! does the outer product into `[[f32; T]; 8]` accumulators. With fixed-size arrays LLVM
//! keeps the tile in registers and vectorises over pixels with each weight broadcast.
//!
//! Stride 1 without padding (the common case) treats the pixels as one flat row and blocks
//! them so the input block (`I` x block pixels) stays in cache while every panel passes
//! over it. Other strides and paddings go row by row: rows and columns that fall in the
//! padding read no input and are `act(bias)`.

use crate::kernels::{ConvGeom, Epilogue};
use prunus_format::Activation;
use prunus_format::layout::PANEL;

/// Pixels per tile of the main micro-kernel.
const TILE: usize = 8;

/// Input values per pixel block of the stride-1 path (64 KiB of f32): the block stays in
/// L2 while every panel passes over it, and each panel's weights stay in L1 across the
/// block's tiles. Larger blocks measured faster than L1-sized ones.
const BLOCK_VALUES: usize = 16384;

/// 1x1 convolution, `groups == 1`, any stride and padding; `w` is Panel8 `[O, I]`
/// (`ceil(O/8) * 8 * I` values).
pub fn conv1x1(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let (ic, oc) = (g.in_c, g.out_c);
    let in_hw = g.in_h * g.in_w;
    let out_hw = g.out_h * g.out_w;
    debug_assert_eq!(g.kernel, [1, 1], "conv1x1: kernel is not 1x1");
    debug_assert_eq!(g.groups, 1, "conv1x1: grouped");
    debug_assert_eq!(x.len(), ic * in_hw, "conv1x1: input length");
    debug_assert_eq!(
        w.len(),
        oc.div_ceil(PANEL) * PANEL * ic,
        "conv1x1: weight length"
    );
    debug_assert_eq!(y.len(), oc * out_hw, "conv1x1: output length");
    debug_assert!(
        epi.bias.is_none_or(|b| b.len() == oc),
        "conv1x1: bias length"
    );
    if out_hw == 0 || oc == 0 {
        return;
    }
    let fast = g.stride == [1, 1] && g.pads == [0; 4];
    assert!(
        epi.residual
            .is_none_or(|r| fast && ic > 0 && r.len() == y.len()),
        "conv1x1: a residual needs a flat convolution and the output's length"
    );
    if ic == 0 || in_hw == 0 {
        // No input values: every output is the epilogue of an empty sum.
        for (o, plane) in y.chunks_exact_mut(out_hw).enumerate() {
            plane.fill(epi.activation.apply(epi.bias.map_or(0.0, |b| b[o])));
        }
        return;
    }
    if fast {
        debug_assert_eq!(
            out_hw, in_hw,
            "conv1x1: stride 1 without padding changes the size"
        );
        flat(ic, oc, in_hw, x, w, epi, y);
    } else {
        strided(g, x, w, epi, y);
    }
}

/// The panel's bias values (zero past `out_c` and without a bias).
#[inline(always)]
fn panel_bias(epi: &Epilogue, o0: usize, rows: usize) -> [f32; PANEL] {
    let mut bias = [0.0; PANEL];
    if let Some(b) = epi.bias {
        bias[..rows].copy_from_slice(&b[o0..o0 + rows]);
    }
    bias
}

/// Stride 1, no padding: pixels are one flat row of `hw` values per channel.
fn flat(ic: usize, oc: usize, hw: usize, x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let act = epi.activation;
    let block = (BLOCK_VALUES / ic / TILE).clamp(1, 32) * TILE;
    let panels = oc.div_ceil(PANEL);
    for b0 in (0..hw).step_by(block) {
        let b1 = (b0 + block).min(hw);
        for (p, wp) in w.chunks_exact(PANEL * ic).take(panels).enumerate() {
            let o0 = p * PANEL;
            let rows = PANEL.min(oc - o0);
            let bias = panel_bias(epi, o0, rows);
            let yp = &mut y[o0 * hw..(o0 + rows) * hw];
            let res = epi.residual.map(|r| &r[o0 * hw..(o0 + rows) * hw]);
            let mut col = b0;
            while col + TILE <= b1 {
                let acc = tile::<TILE>(wp, x, hw, col, 1);
                store(&acc, &bias, res, act, yp, hw, col);
                col += TILE;
            }
            if col + 4 <= b1 {
                let acc = tile::<4>(wp, x, hw, col, 1);
                store(&acc, &bias, res, act, yp, hw, col);
                col += 4;
            }
            while col < b1 {
                let acc = tile::<1>(wp, x, hw, col, 1);
                store(&acc, &bias, res, act, yp, hw, col);
                col += 1;
            }
        }
    }
}

/// Any stride and padding, one output row at a time.
fn strided(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let (ic, oc) = (g.in_c, g.out_c);
    let in_hw = g.in_h * g.in_w;
    let out_hw = g.out_h * g.out_w;
    let [sh, sw] = g.stride;
    let [pt, pl, _, _] = g.pads;
    let act = epi.activation;
    // Output columns whose input column `ox * sw - pl` lies inside the input.
    let ox0 = pl.div_ceil(sw).min(g.out_w);
    let ox1 = (g.in_w + pl).div_ceil(sw).clamp(ox0, g.out_w);
    for (p, wp) in w
        .chunks_exact(PANEL * ic)
        .take(oc.div_ceil(PANEL))
        .enumerate()
    {
        let o0 = p * PANEL;
        let rows = PANEL.min(oc - o0);
        let bias = panel_bias(epi, o0, rows);
        let yp = &mut y[o0 * out_hw..(o0 + rows) * out_hw];
        for oy in 0..g.out_h {
            let row0 = oy * g.out_w;
            let iy = (oy * sh).checked_sub(pt).filter(|&iy| iy < g.in_h);
            let Some(iy) = iy else {
                fill_bias(yp, out_hw, &bias, act, row0..row0 + g.out_w);
                continue;
            };
            fill_bias(yp, out_hw, &bias, act, row0..row0 + ox0);
            fill_bias(yp, out_hw, &bias, act, row0 + ox1..row0 + g.out_w);
            // Input offset (within a channel plane) of output column `ox`.
            let src = |ox: usize| iy * g.in_w + ox * sw - pl;
            let mut ox = ox0;
            while ox + TILE <= ox1 {
                let acc = tile::<TILE>(wp, x, in_hw, src(ox), sw);
                store(&acc, &bias, None, act, yp, out_hw, row0 + ox);
                ox += TILE;
            }
            if ox + 4 <= ox1 {
                let acc = tile::<4>(wp, x, in_hw, src(ox), sw);
                store(&acc, &bias, None, act, yp, out_hw, row0 + ox);
                ox += 4;
            }
            while ox < ox1 {
                let acc = tile::<1>(wp, x, in_hw, src(ox), sw);
                store(&acc, &bias, None, act, yp, out_hw, row0 + ox);
                ox += 1;
            }
        }
    }
}

/// The 8 x `T` tile of one panel `wp` (`I * 8` values) at input offset `base` within each
/// channel plane of `plane` values, pixels `step` apart.
#[inline(always)]
fn tile<const T: usize>(
    wp: &[f32],
    x: &[f32],
    plane: usize,
    base: usize,
    step: usize,
) -> [[f32; T]; PANEL] {
    let (wcols, _) = wp.as_chunks::<PANEL>();
    let span = (T - 1) * step + 1;
    let mut acc = [[0.0f32; T]; PANEL];
    for (wv, xrow) in wcols.iter().zip(x.chunks_exact(plane)) {
        let xs = &xrow[base..base + span];
        let xv: [f32; T] = if step == 1 {
            // Contiguous: one (vector) load; `first_chunk` cannot fail as `span == T`.
            xs.first_chunk::<T>().copied().unwrap_or([0.0; T])
        } else {
            std::array::from_fn(|t| xs[t * step])
        };
        for r in 0..PANEL {
            for t in 0..T {
                acc[r][t] += wv[r] * xv[t];
            }
        }
    }
    acc
}

/// Writes the first `rows` rows of a tile (`yp.len() / plane` rows) at column `col`,
/// adding the residual rows `res` (same shape as `yp`) after the bias.
#[inline(always)]
fn store<const T: usize>(
    acc: &[[f32; T]; PANEL],
    bias: &[f32; PANEL],
    res: Option<&[f32]>,
    act: Activation,
    yp: &mut [f32],
    plane: usize,
    col: usize,
) {
    for (r, ((yrow, a), &b)) in yp.chunks_exact_mut(plane).zip(acc).zip(bias).enumerate() {
        let out = &mut yrow[col..col + T];
        match res {
            Some(res) => {
                let rs = &res[r * plane + col..r * plane + col + T];
                for ((out, &v), &rv) in out.iter_mut().zip(a).zip(rs) {
                    *out = act.apply(v + b + rv);
                }
            }
            None => {
                for (out, &v) in out.iter_mut().zip(a) {
                    *out = act.apply(v + b);
                }
            }
        }
    }
}

/// Sets columns `cols` of each panel row to `act(bias)` (outputs that read only padding).
fn fill_bias(
    yp: &mut [f32],
    plane: usize,
    bias: &[f32; PANEL],
    act: Activation,
    cols: std::ops::Range<usize>,
) {
    if cols.is_empty() {
        return;
    }
    for (yrow, &b) in yp.chunks_exact_mut(plane).zip(bias) {
        yrow[cols.clone()].fill(act.apply(b));
    }
}

#[cfg(test)]
mod tests {
    use super::super::reference::{geom, naive};
    use super::*;
    use crate::kernels::activation::test_support::*;
    use proptest::prelude::*;
    use prunus_format::layout::pack_panel8;

    #[allow(clippy::too_many_arguments)]
    fn run(
        (in_c, out_c, in_h, in_w): (usize, usize, usize, usize),
        stride: [usize; 2],
        pads: [usize; 4],
        act: Activation,
        with_bias: bool,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let g = geom((in_c, out_c, in_h, in_w), stride, pads, 1);
        let mut r = rng(seed);
        let x = fill(&mut r, in_c * in_h * in_w);
        let w_rm = fill(&mut r, out_c * in_c);
        let bias = fill(&mut r, out_c);
        let bias = with_bias.then_some(&bias[..]);
        let want = naive(&g, &x, &w_rm, bias, act);
        let w = pack_panel8(&w_rm, out_c, in_c);
        let mut y = vec![f32::NAN; want.len()];
        conv1x1(&g, &x, &w, &Epilogue::new(bias, act), &mut y);
        assert_close(&y, &want)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn conv1x1_stride1_matches_reference(
            in_c in 1usize..=37, out_c in 1usize..=37, h in 1usize..=23, w in 1usize..=23,
            act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
        ) {
            run((in_c, out_c, h, w), [1, 1], [0; 4], act, with_bias, seed)?;
        }

        #[test]
        fn conv1x1_any_stride_and_padding_matches_reference(
            in_c in 1usize..=37, out_c in 1usize..=37, h in 1usize..=23, w in 1usize..=23,
            sh in 1usize..=3, sw in 1usize..=3,
            pt in 0usize..=3, pl in 0usize..=3, pb in 0usize..=3, pr in 0usize..=3,
            act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
        ) {
            run((in_c, out_c, h, w), [sh, sw], [pt, pl, pb, pr], act, with_bias, seed)?;
        }
    }

    #[test]
    fn partial_last_panel_o9() {
        // O = 9: the second panel has one real row, and y is exactly 9 planes long, so a
        // write past out_c would panic; every activation, both paths.
        for act in ALL_ACTIVATIONS {
            run((5, 9, 3, 7), [1, 1], [0; 4], act, true, 1).unwrap();
            run((5, 9, 3, 7), [2, 1], [1, 0, 0, 2], act, true, 2).unwrap();
        }
    }

    #[test]
    fn large_image_crosses_pixel_blocks() {
        // 600 input channels -> blocks of 3 tiles; 37x23 pixels -> many blocks, a partial last one.
        run((600, 11, 37, 23), [1, 1], [0; 4], Activation::Relu, true, 3).unwrap();
    }

    #[test]
    fn padding_only_outputs_are_act_of_bias() {
        // 1x1 input, pads 1 all round, stride 1: a 3x3 output with only the centre reading x.
        let g = ConvGeom {
            in_c: 1,
            in_h: 1,
            in_w: 1,
            out_c: 2,
            out_h: 3,
            out_w: 3,
            kernel: [1, 1],
            stride: [1, 1],
            pads: [1; 4],
            dilation: [1, 1],
            groups: 1,
        };
        let w = pack_panel8(&[2.0, -1.0], 2, 1);
        let bias = [0.5, -0.25];
        let epi = Epilogue::new(Some(&bias), Activation::Relu);
        let mut y = [f32::NAN; 18];
        conv1x1(&g, &[3.0], &w, &epi, &mut y);
        let mut want = [0.5f32; 18];
        want[9..].fill(0.0);
        want[4] = 6.5;
        want[13] = 0.0; // relu(-3 - 0.25)
        assert_eq!(y, want);
    }
}
