//! The 3x3 stride-2 depthwise kernel reading the input rows in place, for rows of even
//! width `2 * out_w` with one column of left padding (MobileNet's down-sampling layers):
//! no padded, de-interleaved copy of the rows.
//!
//! Output vector `ox..ox + LANES` of a window row reads input columns `2 ox - 1 ..= 2 ox +
//! 2 LANES - 1`: one de-interleaving load ([`Simd::load_deinterleaved`], NEON `ld2`) of
//! `2 ox ..` gives the even columns (tap 1) and the odd ones (tap 2); tap 0, the odd
//! columns one to the left, is the odd vector moved up a lane with the previous odd vector's
//! last lane ([`Simd::shift_in`]): the vector to the left in the tile, a broadcast of
//! column `2 ox - 1` for a tile's first vector, zero (the padding) at the row's start. The
//! right padding is never read (`2 (out_w - 1) + 1 = in_w - 1`). Rows in the vertical
//! padding read a zero row. Per window row and vector: one `ld2`, one `ext`, three FMAs per
//! output row reading it (the copy-based kernel spent 6 to 20 NEON instructions per FMA on
//! MobileNetV2's stride-2 layers, mostly in the copy).
//!
//! Each column tile of `NV` vectors is swept down the plane (its rows stay in L1 during
//! the sweep); every output row loads its three window rows' taps (carrying the shared row
//! to the next output row cost as many register moves as it saved loads; bands of 4 rows
//! of 2 vectors with all 9 window rows' taps live spilled on NEON: 2.5x the instructions).
//! The taps run in the same order as in [`super::kxk`], so both kernels give bit-identical
//! outputs.

use super::splat_3x3;
use crate::kernels::conv::epilogue::activate;
use crate::kernels::simd::{Simd, SimdKernel, VecActivation};
use crate::kernels::{ConvGeom, Epilogue};

/// Widest input row this kernel takes (the zero row of the vertical padding is a stack
/// array of this many values).
const MAX_IN_W: usize = 2048;

/// A checked 3x3 stride-2 depthwise convolution with [`InPlace3x3S2::fits`] geometry.
pub(super) struct InPlace3x3S2<'a> {
    pub g: &'a ConvGeom,
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub epi: &'a Epilogue<'a>,
    pub y: &'a mut [f32],
}

impl InPlace3x3S2<'_> {
    /// Whether `g` (3x3, stride 2, dilation 1, depthwise) runs here with `S`: one column
    /// of left padding, `in_w == 2 * out_w`, rows of at least one vector.
    pub(super) fn fits<S: Simd>(g: &ConvGeom) -> bool {
        g.kernel == [3, 3]
            && g.stride == [2, 2]
            && g.pads[1] == 1
            && g.in_w == 2 * g.out_w
            && g.out_w >= S::LANES
            && g.in_w <= MAX_IN_W
    }
}

impl SimdKernel for InPlace3x3S2<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // Tiles of 2 vectors: two output rows' 4 accumulators, 3 weight vectors and two
        // rows' 2 x 3 tap vectors fit 16 registers.
        self.planes::<S, 2>(s)
    }
}

impl InPlace3x3S2<'_> {
    /// Every plane in column tiles of `NV` vectors (2 or 1 on narrower rows), the last
    /// ending at the row's end (overlapping its predecessor with bit-identical values),
    /// each swept down the plane.
    #[inline(always)]
    fn planes<S: Simd, const NV: usize>(self, s: S) {
        let InPlace3x3S2 { g, x, w, epi, y } = self;
        let (in_w, ow) = (g.in_w, g.out_w);
        let act = VecActivation::new(s, epi.activation);
        let zero = [0.0f32; MAX_IN_W];
        let planes = x
            .chunks_exact(g.in_h * in_w)
            .zip(y.chunks_exact_mut(g.out_h * ow));
        for (c, ((xc, yc), wc)) in planes.zip(w.chunks_exact(9)).enumerate() {
            let wv = splat_3x3(s, wc);
            let k = Column {
                g,
                xc,
                zero: &zero[..in_w],
                wv,
                bias: s.splat(epi.bias.map_or(0.0, |b| b[c])),
                act: &act,
            };
            if ow >= NV * S::LANES {
                k.cover::<NV>(s, yc);
            } else if ow >= 2 * S::LANES {
                k.cover::<2>(s, yc);
            } else {
                k.cover::<1>(s, yc);
            }
        }
    }
}

/// One channel: its input plane, splatted weights, bias and activation.
struct Column<'a, S: Simd> {
    g: &'a ConvGeom,
    xc: &'a [f32],
    /// A zero row: the rows of the vertical padding.
    zero: &'a [f32],
    wv: [[S::V; 3]; 3],
    bias: S::V,
    act: &'a VecActivation<S>,
}

impl<S: Simd> Column<'_, S> {
    /// The output plane `yc` (rows at least `NV` vectors wide) in column tiles of `NV`
    /// vectors, the first reading the left padding.
    #[inline(always)]
    fn cover<const NV: usize>(&self, s: S, yc: &mut [f32]) {
        let (n, tw) = (self.g.out_w, NV * S::LANES);
        self.sweep::<NV, true>(s, yc, 0);
        let mut ox = tw;
        while ox < n {
            self.sweep::<NV, false>(s, yc, ox.min(n - tw));
            ox += tw;
        }
    }

    /// Output columns `ox .. ox + NV * LANES` of every row (`LEFT`: `ox == 0`), from the
    /// input columns `2 ox - 1 ..`: rows whose window is inside the plane in pairs (five
    /// input rows, the middle one shared, one bounds check), the others (reading the
    /// vertical padding) one by one with a zero row.
    #[inline(always)]
    fn sweep<const NV: usize, const LEFT: bool>(&self, s: S, yc: &mut [f32], ox: usize) {
        let g = self.g;
        let (in_w, ow, oh) = (g.in_w, g.out_w, g.out_h);
        let (tw, pt) = (NV * S::LANES, g.pads[0]);
        // Output rows lo..hi read input rows 2 oy - pt ..= 2 oy - pt + 2, all inside.
        let lo = pt.div_ceil(2).min(oh);
        let hi = ((g.in_h + pt).saturating_sub(1) / 2).clamp(lo, oh);
        let col = if LEFT { 0 } else { 2 * ox - 1 };
        let seg = 2 * tw + usize::from(!LEFT);
        let edge = |iy: isize| match usize::try_from(iy) {
            Ok(iy) if iy < g.in_h => &self.xc[iy * in_w + col..][..seg],
            _ => &self.zero[..seg],
        };
        let last_odd = (hi - lo) % 2 == 1;
        let singles = (0..lo).chain(hi - usize::from(last_odd)..oh);
        for oy in singles {
            let iy = 2 * oy as isize - pt as isize;
            let t0 = taps::<S, NV, LEFT>(s, edge(iy));
            let t1 = taps::<S, NV, LEFT>(s, edge(iy + 1));
            let t2 = taps::<S, NV, LEFT>(s, edge(iy + 2));
            let mut acc = [self.sum(s, self.bias, [&t0, &t1, &t2])];
            activate(s, self.act, acc.as_flattened_mut());
            s.store_n(acc[0], &mut yc[oy * ow + ox..][..tw]);
        }
        let xs = &self.xc[col..];
        for oy in (lo..hi - usize::from(last_odd)).step_by(2) {
            let rows = &xs[(2 * oy - pt) * in_w..][..4 * in_w + seg];
            let row = |k: usize| &rows[k * in_w..][..seg];
            let (t0, t1) = (
                taps::<S, NV, LEFT>(s, row(0)),
                taps::<S, NV, LEFT>(s, row(1)),
            );
            let t2 = taps::<S, NV, LEFT>(s, row(2));
            let first = self.sum(s, self.bias, [&t0, &t1, &t2]);
            let (t3, t4) = (
                taps::<S, NV, LEFT>(s, row(3)),
                taps::<S, NV, LEFT>(s, row(4)),
            );
            let mut acc = [first, self.sum(s, self.bias, [&t2, &t3, &t4])];
            activate(s, self.act, acc.as_flattened_mut());
            let ys = &mut yc[oy * ow..][..2 * ow];
            s.store_n(acc[0], &mut ys[ox..ox + tw]);
            s.store_n(acc[1], &mut ys[ow + ox..ow + ox + tw]);
        }
    }

    /// `acc` + the taps of three window rows, in window-row order (as the copying kernel).
    #[inline(always)]
    fn sum<const NV: usize>(&self, s: S, bias: S::V, rows: [&[[S::V; NV]; 3]; 3]) -> [S::V; NV] {
        let mut acc = [bias; NV];
        for (wk, t) in self.wv.iter().zip(rows) {
            for (v, a) in acc.iter_mut().enumerate() {
                *a = s.fma(*a, wk[0], t[0][v]);
                *a = s.fma(*a, wk[1], t[1][v]);
                *a = s.fma(*a, wk[2], t[2][v]);
            }
        }
        acc
    }
}

/// The three tap vectors (kx = 0, 1, 2) of each of `NV` vectors from a row segment: input
/// columns `2 ox - 1 .. 2 ox + 2 NV LANES` (`LEFT`: `0 .. 2 NV LANES`, the column before
/// is the zero padding).
#[inline(always)]
fn taps<S: Simd, const NV: usize, const LEFT: bool>(s: S, seg: &[f32]) -> [[S::V; NV]; 3] {
    let l = S::LANES;
    let (left, seg) = if LEFT {
        (s.zero(), &seg[..2 * NV * l])
    } else {
        (s.splat(seg[0]), &seg[1..2 * NV * l + 1])
    };
    let mut t = [[s.zero(); NV]; 3];
    for v in 0..NV {
        (t[1][v], t[2][v]) = s.load_deinterleaved(&seg[2 * v * l..]);
    }
    for v in 0..NV {
        t[0][v] = s.shift_in(if v == 0 { left } else { t[2][v - 1] }, t[2][v]);
    }
    t
}
