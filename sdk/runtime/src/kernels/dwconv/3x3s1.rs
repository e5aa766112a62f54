//! The 3x3 stride-1 depthwise kernel reading the input rows in place, for rows with one
//! column of padding on each side (`out_w == in_w`, MobileNet's stride-1 layers): no padded
//! copy of the rows.
//!
//! Output vector `ox..ox + LANES` of a window row reads input columns `ox - 1 ..= ox +
//! LANES`: three unaligned loads (taps 0, 1, 2), except at the row's ends, where the column
//! outside is the zero padding: tap 0 of the row's first vector is tap 1 moved up a lane
//! with a zero ([`Simd::shift_in`]), tap 2 of its last vector tap 1 moved down a lane
//! ([`Simd::shift_out`]). Rows in the vertical padding read a zero row.
//!
//! Column tiles of `NV` vectors (the first and last with those end cases as const
//! parameters, the last overlapping its predecessor) are streamed down the plane: each
//! window row is loaded once and added to the three output rows that read it, two of which
//! are carried in registers (see [`Plane::sweep`]); the taps run in the order of
//! [`super::kxk`], so both kernels give bit-identical outputs. NEON instructions against
//! the bands of 4 rows this replaced (6 window rows loaded per 4 output rows), MobileNetV2's
//! layers: 112x112 2.70 -> 2.15 M (the copying kernel ran there), 56x56 3.30 -> 2.48 M
//! (idem), 28x28 1.24 -> 1.00 M, 14x14 c384 0.70 -> 0.55 M (`super::packed` ran there).

use super::{FusedKernel, TileActivation, fused, splat_3x3};
use crate::kernels::simd::{Simd, SimdKernel};
use crate::kernels::{ConvGeom, Epilogue};

/// Widest input row this kernel takes (the zero row of the vertical padding is a stack
/// array of this many values).
const MAX_IN_W: usize = 2048;

/// Widest output row this kernel runs, on NEON (all of MobileNetV2's, see the module docs;
/// with bands of 4 rows it ran only up to 32 columns, and 8 % slower than the copying
/// kernel at 112). On x86-64 (AVX2, AVX-512) the banded version ran up to 3x slower than
/// the copying kernel, and it runs nowhere.
const MAX_OUT_W: usize = 128;

/// A checked 3x3 stride-1 depthwise convolution with [`InPlace3x3S1::fits`] geometry.
pub(super) struct InPlace3x3S1<'a> {
    pub g: &'a ConvGeom,
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub epi: &'a Epilogue<'a>,
    pub y: &'a mut [f32],
}

impl InPlace3x3S1<'_> {
    /// Whether `g` (3x3, dilation 1, depthwise) runs here with `S`: stride 1, one column
    /// of padding left and right, rows of at least one vector, planes of at least 2 rows;
    /// and where it measured faster than the copying kernel: on NEON (4 lanes), rows of at
    /// most [`MAX_OUT_W`] columns.
    pub(super) fn fits<S: Simd>(g: &ConvGeom) -> bool {
        S::LANES == 4
            && g.out_w <= MAX_OUT_W
            && g.kernel == [3, 3]
            && g.stride == [1, 1]
            && g.pads[1] == 1
            && g.pads[3] == 1
            && g.out_w == g.in_w
            && g.out_w >= S::LANES
            && g.out_h >= 2
            && g.in_w <= MAX_IN_W
    }
}

impl SimdKernel for InPlace3x3S1<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        fused(s, self.epi.activation, self)
    }
}

impl FusedKernel for InPlace3x3S1<'_> {
    #[inline(always)]
    fn run_fused<S: Simd, A: TileActivation<S>>(self, s: S, act: A) {
        let InPlace3x3S1 { g, x, w, epi, y } = self;
        let (in_w, ow) = (g.in_w, g.out_w);
        let zero = [0.0f32; MAX_IN_W];
        let planes = x
            .chunks_exact(g.in_h * in_w)
            .zip(y.chunks_exact_mut(g.out_h * ow));
        for (c, ((xc, yc), wc)) in planes.zip(w.chunks_exact(9)).enumerate() {
            let wv = splat_3x3(s, wc);
            let k = Plane {
                g,
                xc,
                zero: &zero[..in_w],
                wv,
                bias: s.splat(epi.bias.map_or(0.0, |b| b[c])),
                act,
            };
            if ow >= 2 * S::LANES {
                k.cover::<2>(s, yc);
            } else {
                k.cover::<1>(s, yc);
            }
        }
    }
}

/// One channel: its input plane, splatted weights, bias and activation.
struct Plane<'a, S: Simd, A> {
    g: &'a ConvGeom,
    xc: &'a [f32],
    /// A zero row: the rows of the vertical padding.
    zero: &'a [f32],
    wv: [[S::V; 3]; 3],
    bias: S::V,
    act: A,
}

impl<S: Simd, A: TileActivation<S>> Plane<'_, S, A> {
    /// The output plane `yc` (rows at least `NV` vectors wide) in column tiles of `NV`
    /// vectors: the first reading the left padding, the last the right one (one tile
    /// reading both on rows of exactly `NV` vectors).
    #[inline(always)]
    fn cover<const NV: usize>(&self, s: S, yc: &mut [f32]) {
        let (n, tw) = (self.g.out_w, NV * S::LANES);
        if n == tw {
            return self.sweep::<NV, true, true>(s, yc, 0);
        }
        self.sweep::<NV, true, false>(s, yc, 0);
        let mut ox = tw;
        while ox + tw < n {
            self.sweep::<NV, false, false>(s, yc, ox);
            ox += tw;
        }
        self.sweep::<NV, false, true>(s, yc, n - tw);
    }

    /// Output columns `ox .. ox + NV * LANES` of every row, streamed down the plane: window
    /// row `i` (input row `i - pads[0]`, a zero row outside the plane) is loaded once and
    /// its taps added to the three output rows that read it, `i - 2` (then activated and
    /// stored), `i - 1` and `i` (started from the bias), the last two carried to the next
    /// row in registers. Rows inside the plane run unrolled by 3 (the carried rows change
    /// registers with a period of 3; with one row per iteration they were moved), with one
    /// bounds check for the tile.
    #[inline(always)]
    fn sweep<const NV: usize, const LEFT: bool, const RIGHT: bool>(
        &self,
        s: S,
        yc: &mut [f32],
        ox: usize,
    ) {
        let g = self.g;
        // The sizes as locals: read through `g` they were reloaded for every row (the
        // stores may alias them).
        let (in_w, in_h, ow, oh, pt) = (g.in_w, g.in_h, g.out_w, g.out_h, g.pads[0]);
        let tw = NV * S::LANES;
        let col = if LEFT { ox } else { ox - 1 };
        let seg = tw + usize::from(!LEFT) + usize::from(!RIGHT);
        assert!(oh >= 2 && ox + tw <= ow, "3x3 stride 1: tile out of range");
        let ys = &mut yc[ox..][..(oh - 1) * ow + tw];
        // Window row i's segment.
        let edge = |i: usize| match i.checked_sub(pt) {
            Some(iy) if iy < in_h => &self.xc[iy * in_w + col..][..seg],
            _ => &self.zero[..seg],
        };
        // Rows 0 and 1 start output rows 0 and 1.
        let mut c = [[self.bias; NV]; 2];
        let t0 = self.taps::<NV, LEFT, RIGHT>(s, edge(0));
        self.add(s, &t0, 0, &mut c[0]);
        let t1 = self.taps::<NV, LEFT, RIGHT>(s, edge(1));
        self.add(s, &t1, 1, &mut c[0]);
        self.add(s, &t1, 0, &mut c[1]);
        // Window rows 2.. inside the plane (mid), those above it (rows of padding past the
        // first 2) and below it while output rows start (the padding).
        let lo = pt.clamp(2, oh);
        let hi = (in_h + pt).clamp(lo, oh);
        for i in 2..lo {
            self.step::<NV, LEFT, RIGHT, true>(s, edge(i), ys, i, &mut c);
        }
        if lo < hi {
            let rows = &self.xc[(lo - pt) * in_w + col..][..(hi - lo - 1) * in_w + seg];
            let row = |k: usize| {
                // SAFETY: `rows` holds `hi - lo - 1` rows of `in_w` values and a segment of
                // `seg`, and `k < hi - lo`.
                unsafe { rows.get_unchecked(k * in_w..k * in_w + seg) }
            };
            let mut k = 0;
            while k + 3 <= hi - lo {
                self.step::<NV, LEFT, RIGHT, true>(s, row(k), ys, lo + k, &mut c);
                self.step::<NV, LEFT, RIGHT, true>(s, row(k + 1), ys, lo + k + 1, &mut c);
                self.step::<NV, LEFT, RIGHT, true>(s, row(k + 2), ys, lo + k + 2, &mut c);
                k += 3;
            }
            while k < hi - lo {
                self.step::<NV, LEFT, RIGHT, true>(s, row(k), ys, lo + k, &mut c);
                k += 1;
            }
        }
        for i in hi..oh {
            self.step::<NV, LEFT, RIGHT, true>(s, edge(i), ys, i, &mut c);
        }
        // Window rows oh and oh + 1 end the last two output rows.
        self.step::<NV, LEFT, RIGHT, false>(s, edge(oh), ys, oh, &mut c);
        let mut last = c[0];
        self.add(
            s,
            &self.taps::<NV, LEFT, RIGHT>(s, edge(oh + 1)),
            2,
            &mut last,
        );
        self.act.apply(s, &mut last);
        s.store_n(last, &mut ys[(oh - 1) * ow..][..tw]);
    }

    /// Window row `i` (segment `seg`, `2 <= i <= oh`): ends output row `i - 2` (`c[0]`),
    /// stored into `ys` (rows of `out_w` from the tile's column, at least `i - 1` of them
    /// and a tile), adds to row `i - 1` (`c[1]`, then `c[0]`) and, if `START`, starts row
    /// `i` (then `c[1]`).
    #[inline(always)]
    fn step<const NV: usize, const LEFT: bool, const RIGHT: bool, const START: bool>(
        &self,
        s: S,
        seg: &[f32],
        ys: &mut [f32],
        i: usize,
        c: &mut [[S::V; NV]; 2],
    ) {
        let (ow, tw) = (self.g.out_w, NV * S::LANES);
        let t = self.taps::<NV, LEFT, RIGHT>(s, seg);
        let mut done = c[0];
        self.add(s, &t, 2, &mut done);
        c[0] = c[1];
        self.add(s, &t, 1, &mut c[0]);
        if START {
            c[1] = [self.bias; NV];
            self.add(s, &t, 0, &mut c[1]);
        }
        self.act.apply(s, &mut done);
        let at = (i - 2) * ow;
        debug_assert!(at + tw <= ys.len());
        // SAFETY: `ys` holds `oh - 1` rows of `ow` values and a tile, and `i - 2 < oh - 1`
        // (the last row is stored by the caller).
        s.store_n(done, unsafe { ys.get_unchecked_mut(at..at + tw) });
    }

    /// Adds taps `t` with the weights of window row `ky` to `acc`, by tap (as the copying
    /// kernel).
    #[inline(always)]
    fn add<const NV: usize>(&self, s: S, t: &[[S::V; NV]; 3], ky: usize, acc: &mut [S::V; NV]) {
        let wk = self.wv[ky];
        for (kx, tk) in t.iter().enumerate() {
            for (a, &x) in acc.iter_mut().zip(tk) {
                *a = s.fma(*a, wk[kx], x);
            }
        }
    }

    /// The taps (kx = 0, 1, 2) of each of `NV` vectors from a row segment (input columns
    /// `ox - 1 ..= ox + NV LANES`, without the padding column at a row's end).
    #[inline(always)]
    fn taps<const NV: usize, const LEFT: bool, const RIGHT: bool>(
        &self,
        s: S,
        seg: &[f32],
    ) -> [[S::V; NV]; 3] {
        let l = S::LANES;
        // Index of column ox in the segment.
        let at = usize::from(!LEFT);
        let seg = &seg[..NV * l + at + usize::from(!RIGHT)];
        let mut t = [[s.zero(); NV]; 3];
        for (kx, tk) in t.iter_mut().enumerate() {
            for (v, x) in tk.iter_mut().enumerate() {
                let c = at + v * l;
                *x = if kx == 0 && LEFT && v == 0 {
                    s.shift_in(s.zero(), s.load(&seg[c..]))
                } else if kx == 2 && RIGHT && v == NV - 1 {
                    s.shift_out(s.load(&seg[c..]), s.zero())
                } else {
                    s.load(&seg[c + kx - 1..])
                };
            }
        }
        t
    }
}
