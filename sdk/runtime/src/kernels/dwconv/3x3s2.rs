//! The 3x3 stride-2 depthwise kernel reading the input rows in place, for rows of even
//! width `2 * out_w` with one column of left padding (MobileNet's down-sampling layers):
//! no padded, de-interleaved copy of the rows.
//!
//! Output vector `ox..ox + LANES` of a window row reads input columns `2 ox - 1 ..= 2 ox +
//! 2 LANES - 1`: one de-interleaving load ([`Simd::load_deinterleaved`], NEON `ld2`) of
//! `2 ox ..` gives the even columns (tap 1) and the odd ones (tap 2); tap 0, the odd
//! columns one to the left, is the odd vector moved up a lane with the previous odd vector's
//! last lane ([`Simd::shift_in`]): the vector to the left in the tile, zero (the padding)
//! at the row's start, and for a tile's first vector elsewhere a broadcast of column
//! `2 ox - 1` (x86-64) or the odd half of a de-interleaving load from `2 ox - 2` (NEON: one
//! `ld2` instead of `ld1r` + `ext`). The right padding is never read (`2 (out_w - 1) + 1 =
//! in_w - 1`). Rows in the vertical padding read a zero row. Per window row and vector:
//! one `ld2`, one `ext`, three FMAs per output row reading it (the copy-based kernel spent
//! 6 to 20 NEON instructions per FMA on MobileNetV2's stride-2 layers, mostly in the copy).
//!
//! Each column tile of `NV` vectors is swept down the plane (its rows stay in L1 during
//! the sweep), streamed: each window row's taps are loaded once and added to the (one or
//! two) output rows that read it, the second carried to the next output row in registers
//! ([`Column::stream`]). NEON instructions, MobileNetV2's layers, against pairs of output
//! rows loading their 5 window rows (1.25 loads per output row more): 112->56 2.83 ->
//! 2.46 M, 56->28 1.22 -> 1.05 M, 28->14 0.43 -> 0.38 M, 14->7 0.48 -> 0.45 M. Bands of 4
//! output rows of 2 vectors sharing their 9 window rows (unrolled) spilled on NEON: LLVM
//! hoisted every row's `ld2` above the FMAs (+10 to +30 %, as an earlier attempt with all
//! 9 rows' taps live: 2.5x). The taps run in the same order as in [`super::kxk`], so both
//! kernels give bit-identical outputs.

use super::{FusedKernel, TileActivation, fused, splat_3x3};
use crate::kernels::simd::{Simd, SimdKernel};
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
        fused(s, self.epi.activation, self)
    }
}

impl FusedKernel for InPlace3x3S2<'_> {
    #[inline(always)]
    fn run_fused<S: Simd, A: TileActivation<S>>(self, s: S, act: A) {
        // Tiles of 2 vectors: two output rows' 4 accumulators, 3 weight vectors and two
        // rows' 2 x 3 tap vectors fit 16 registers.
        self.planes::<S, A, 2>(s, act)
    }
}

impl InPlace3x3S2<'_> {
    /// Every plane in column tiles of `NV` vectors (2 or 1 on narrower rows), the last
    /// ending at the row's end (overlapping its predecessor with bit-identical values),
    /// each swept down the plane.
    #[inline(always)]
    fn planes<S: Simd, A: TileActivation<S>, const NV: usize>(self, s: S, act: A) {
        let InPlace3x3S2 { g, x, w, epi, y } = self;
        let (in_w, ow) = (g.in_w, g.out_w);
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
                act,
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
struct Column<'a, S: Simd, A> {
    g: &'a ConvGeom,
    xc: &'a [f32],
    /// A zero row: the rows of the vertical padding.
    zero: &'a [f32],
    wv: [[S::V; 3]; 3],
    bias: S::V,
    act: A,
}

impl<S: Simd, A: TileActivation<S>> Column<'_, S, A> {
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
    /// input row segments of [`seg_len`] values from [`seg_start`]: rows whose window is
    /// inside the plane streamed ([`Self::stream`]), the others (reading the vertical
    /// padding) one by one with a zero row.
    #[inline(always)]
    fn sweep<const NV: usize, const LEFT: bool>(&self, s: S, yc: &mut [f32], ox: usize) {
        let g = self.g;
        let (in_w, ow, oh) = (g.in_w, g.out_w, g.out_h);
        let (tw, pt) = (NV * S::LANES, g.pads[0]);
        // Output rows lo..hi read input rows 2 oy - pt ..= 2 oy - pt + 2, all inside.
        let lo = pt.div_ceil(2).min(oh);
        let hi = ((g.in_h + pt).saturating_sub(1) / 2).clamp(lo, oh);
        let col = seg_start::<S, LEFT>(ox);
        let seg = seg_len::<S, LEFT>(tw);
        let edge = |iy: isize| match usize::try_from(iy) {
            Ok(iy) if iy < g.in_h => &self.xc[iy * in_w + col..][..seg],
            _ => &self.zero[..seg],
        };
        for oy in (0..lo).chain(hi..oh) {
            let iy = 2 * oy as isize - pt as isize;
            let mut acc = [self.bias; NV];
            for (ky, row) in [edge(iy), edge(iy + 1), edge(iy + 2)]
                .into_iter()
                .enumerate()
            {
                self.add(s, &taps::<S, NV, LEFT>(s, row), ky, &mut acc);
            }
            self.act.apply(s, &mut acc);
            s.store_n(acc, &mut yc[oy * ow + ox..][..tw]);
        }
        if lo < hi {
            let rows = &self.xc[(2 * lo - pt) * in_w + col..][..2 * (hi - lo) * in_w + seg];
            let ys = &mut yc[lo * ow + ox..][..(hi - lo - 1) * ow + tw];
            self.stream::<NV, LEFT>(s, rows, ys);
        }
    }

    /// The output rows of `ys` (rows of `out_w` from the tile's first column, the last cut
    /// to the tile), from the input row segments at `rows` (rows of `in_w`, two per output
    /// row and one more): each input row loaded once, its taps added to the (one or two)
    /// output rows that read it, the second of which is carried to the next output row in
    /// registers; two output rows per iteration (with one, LLVM moved the carried row
    /// between registers).
    #[inline(always)]
    fn stream<const NV: usize, const LEFT: bool>(&self, s: S, rows: &[f32], ys: &mut [f32]) {
        // The widths as locals: read through `self.g` they were reloaded for every row (the
        // stores may alias them), and the row addresses computed with a multiplication.
        let (in_w, ow, tw) = (self.g.in_w, self.g.out_w, NV * S::LANES);
        let n = (ys.len() - tw) / ow + 1;
        assert!(
            rows.len() == 2 * n * in_w + seg_len::<S, LEFT>(tw) && ys.len() == (n - 1) * ow + tw,
            "3x3 stride 2: rows out of range"
        );
        let w = (in_w, ow);
        let mut next = [self.bias; NV];
        self.add(s, &row_taps::<S, NV, LEFT>(s, rows, in_w, 0), 0, &mut next);
        let mut j = 0;
        while j + 2 < n {
            self.out_row::<NV, LEFT, true>(s, rows, ys, w, j, &mut next);
            self.out_row::<NV, LEFT, true>(s, rows, ys, w, j + 1, &mut next);
            j += 2;
        }
        if j + 2 == n {
            self.out_row::<NV, LEFT, true>(s, rows, ys, w, j, &mut next);
            j += 1;
        }
        self.out_row::<NV, LEFT, false>(s, rows, ys, w, j, &mut next);
    }

    /// Output row `j` of [`Self::stream`] (rows of `in_w` and `ow`): `next` (bias and
    /// window row 0) plus window rows 1 and 2, stored; `next` becomes output row `j + 1`'s
    /// bias and window row 0 (its input row 2 j + 2) if `NEXT`.
    #[inline(always)]
    fn out_row<const NV: usize, const LEFT: bool, const NEXT: bool>(
        &self,
        s: S,
        rows: &[f32],
        ys: &mut [f32],
        (in_w, ow): (usize, usize),
        j: usize,
        next: &mut [S::V; NV],
    ) {
        let tw = NV * S::LANES;
        let mut acc = *next;
        self.add(
            s,
            &row_taps::<S, NV, LEFT>(s, rows, in_w, 2 * j + 1),
            1,
            &mut acc,
        );
        let t = row_taps::<S, NV, LEFT>(s, rows, in_w, 2 * j + 2);
        self.add(s, &t, 2, &mut acc);
        if NEXT {
            *next = [self.bias; NV];
            self.add(s, &t, 0, next);
        }
        self.act.apply(s, &mut acc);
        // SAFETY: `j < n` (the caller's), and `ys` holds `n - 1` rows of `ow` and `tw` more.
        s.store_n(acc, unsafe { ys.get_unchecked_mut(j * ow..j * ow + tw) });
    }

    /// Adds the taps `t` of window row `ky` to `acc`, in the copying kernel's order.
    #[inline(always)]
    fn add<const NV: usize>(&self, s: S, t: &[[S::V; NV]; 3], ky: usize, acc: &mut [S::V; NV]) {
        let wk = self.wv[ky];
        for (v, a) in acc.iter_mut().enumerate() {
            *a = s.fma(*a, wk[0], t[0][v]);
            *a = s.fma(*a, wk[1], t[1][v]);
            *a = s.fma(*a, wk[2], t[2][v]);
        }
    }
}

/// Whether tap 0 of a tile's first vector is the odd half of a de-interleaving load from
/// column `2 ox - 2` (NEON: one `ld2` instead of a broadcast and an `ext`), rather than
/// the tap-2 vector moved up a lane with column `2 ox - 1` (x86-64: the broadcast and the
/// shift are cheaper than the two loads and two permutes of a de-interleaving load).
#[inline(always)]
fn tap0_loaded<S: Simd>() -> bool {
    S::LANES == 4
}

/// Input columns a tile's row segment holds before column `2 ox`: none for the first tile
/// (the column before is the zero padding), else `2 ox - 1` and, if [`tap0_loaded`],
/// `2 ox - 2`.
#[inline(always)]
fn lead<S: Simd, const LEFT: bool>() -> usize {
    match (LEFT, tap0_loaded::<S>()) {
        (true, _) => 0,
        (false, true) => 2,
        (false, false) => 1,
    }
}

/// First input column of the row segments of output columns `ox ..`.
#[inline(always)]
fn seg_start<S: Simd, const LEFT: bool>(ox: usize) -> usize {
    2 * ox - lead::<S, LEFT>()
}

/// Values of the row segments of a tile of `tw` output columns.
#[inline(always)]
fn seg_len<S: Simd, const LEFT: bool>(tw: usize) -> usize {
    2 * tw + lead::<S, LEFT>()
}

/// The taps of input row `r <= 2 n` of [`Column::stream`]'s `rows` (rows of `in_w`).
#[inline(always)]
fn row_taps<S: Simd, const NV: usize, const LEFT: bool>(
    s: S,
    rows: &[f32],
    in_w: usize,
    r: usize,
) -> [[S::V; NV]; 3] {
    let seg = seg_len::<S, LEFT>(NV * S::LANES);
    // SAFETY: `rows` holds `2 n` rows of `in_w` values and a segment of `seg`, and
    // `r <= 2 n` (checked in `stream`).
    taps::<S, NV, LEFT>(s, unsafe { rows.get_unchecked(r * in_w..r * in_w + seg) })
}

/// The three tap vectors (kx = 0, 1, 2) of each of `NV` vectors from a row segment
/// ([`seg_len`] values from input column `2 ox - `[`lead`]).
#[inline(always)]
fn taps<S: Simd, const NV: usize, const LEFT: bool>(s: S, seg: &[f32]) -> [[S::V; NV]; 3] {
    let l = S::LANES;
    let at = lead::<S, LEFT>();
    let body = &seg[at..at + 2 * NV * l];
    let mut t = [[s.zero(); NV]; 3];
    for v in 0..NV {
        (t[1][v], t[2][v]) = s.load_deinterleaved(&body[2 * v * l..]);
    }
    t[0][0] = match (LEFT, tap0_loaded::<S>()) {
        (true, _) => s.shift_in(s.zero(), t[2][0]),
        (false, true) => s.load_deinterleaved(&seg[..2 * l]).1,
        (false, false) => s.shift_in(s.splat(seg[0]), t[2][0]),
    };
    for v in 1..NV {
        t[0][v] = s.shift_in(t[2][v - 1], t[2][v]);
    }
    t
}
