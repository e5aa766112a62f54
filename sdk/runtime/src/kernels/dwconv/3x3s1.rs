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
//! parameters, the last overlapping its predecessor) are swept down the plane in bands of
//! `RH` output rows that share their `RH + 2` window rows' loads (the last band overlapping
//! its predecessor), as in [`super::kxk`], with the taps in the same order: both kernels
//! give bit-identical outputs. It saves the copy on NEON's narrow rows only (see
//! [`InPlace3x3S1::fits`]).

use super::splat_3x3;
use crate::kernels::conv::epilogue::activate;
use crate::kernels::simd::{Simd, SimdKernel, VecActivation};
use crate::kernels::{ConvGeom, Epilogue};

/// Widest input row this kernel takes (the zero row of the vertical padding is a stack
/// array of this many values).
const MAX_IN_W: usize = 2048;

/// Widest output row this kernel runs (NEON instructions, MobileNetV2's layers: 7x7 -8 %,
/// 14x14 -15 %, 28x28 -9 %; 56x56 equal, 112x112 +8 %). On x86-64 (AVX2, AVX-512) it ran
/// up to 3x slower than the copying kernel, and runs nowhere.
const MAX_OUT_W: usize = 32;

/// Output rows per band (NEON: 4 rows of 2 vectors, as the copying kernel).
const RH: usize = 4;

/// Input rows a band reads.
const W: usize = RH + 2;

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
    /// of padding left and right, rows of at least one vector, planes of at least a band
    /// of rows; and where it measured faster than the copying kernel: on NEON (4 lanes),
    /// rows of at most [`MAX_OUT_W`] columns.
    pub(super) fn fits<S: Simd>(g: &ConvGeom) -> bool {
        S::LANES == 4
            && g.out_w <= MAX_OUT_W
            && g.kernel == [3, 3]
            && g.stride == [1, 1]
            && g.pads[1] == 1
            && g.pads[3] == 1
            && g.out_w == g.in_w
            && g.out_w >= S::LANES
            && g.out_h >= RH
            && g.in_w <= MAX_IN_W
    }
}

impl SimdKernel for InPlace3x3S1<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let InPlace3x3S1 { g, x, w, epi, y } = self;
        let (in_w, ow) = (g.in_w, g.out_w);
        let act = VecActivation::new(s, epi.activation);
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
                act: &act,
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
struct Plane<'a, S: Simd> {
    g: &'a ConvGeom,
    xc: &'a [f32],
    /// A zero row: the rows of the vertical padding.
    zero: &'a [f32],
    wv: [[S::V; 3]; 3],
    bias: S::V,
    act: &'a VecActivation<S>,
}

impl<S: Simd> Plane<'_, S> {
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

    /// Output columns `ox .. ox + NV * LANES` of every row, in bands of [`RH`] rows (the
    /// last ending at the plane's end): bands whose window is inside the plane with one
    /// bounds check, the others with zero rows.
    #[inline(always)]
    fn sweep<const NV: usize, const LEFT: bool, const RIGHT: bool>(
        &self,
        s: S,
        yc: &mut [f32],
        ox: usize,
    ) {
        let g = self.g;
        let (in_w, ow, oh) = (g.in_w, g.out_w, g.out_h);
        let (tw, pt) = (NV * S::LANES, g.pads[0] as isize);
        let col = if LEFT { ox } else { ox - 1 };
        let seg = tw + usize::from(!LEFT) + usize::from(!RIGHT);
        let mut oy = 0;
        while oy < oh {
            oy = oy.min(oh - RH);
            let top = oy as isize - pt;
            let acc = if top >= 0 && top as usize + W <= g.in_h {
                let rows = &self.xc[top as usize * in_w + col..][..(W - 1) * in_w + seg];
                let rows: [&[f32]; W] = std::array::from_fn(|r| &rows[r * in_w..][..seg]);
                self.tile::<NV, LEFT, RIGHT>(s, &rows)
            } else {
                let rows: [&[f32]; W] =
                    std::array::from_fn(|r| match usize::try_from(top + r as isize) {
                        Ok(iy) if iy < g.in_h => &self.xc[iy * in_w + col..][..seg],
                        _ => &self.zero[..seg],
                    });
                self.tile::<NV, LEFT, RIGHT>(s, &rows)
            };
            let band = &mut yc[oy * ow..][..RH * ow];
            for (yrow, a) in band.chunks_exact_mut(ow).zip(acc) {
                s.store_n(a, &mut yrow[ox..ox + tw]);
            }
            oy += RH;
        }
    }

    /// [`RH`] x `NV` output vectors from the window's row segments (input columns
    /// `ox - 1 ..= ox + NV LANES`, without the padding column at a row's end): bias, the
    /// taps by window row (unrolled by hand on NEON, as in [`super::kxk`]), activation.
    #[inline(always)]
    fn tile<const NV: usize, const LEFT: bool, const RIGHT: bool>(
        &self,
        s: S,
        rows: &[&[f32]; W],
    ) -> [[S::V; NV]; RH] {
        let mut acc = [[self.bias; NV]; RH];
        macro_rules! window_rows {
            ($($wr:literal)*) => {$(
                self.window_row::<NV, LEFT, RIGHT>(s, rows[$wr], $wr, &mut acc);
            )*};
        }
        if S::LANES == 4 {
            window_rows!(0 1 2 3 4 5);
        } else {
            for (wr, row) in rows.iter().enumerate() {
                self.window_row::<NV, LEFT, RIGHT>(s, row, wr, &mut acc);
            }
        }
        activate(s, self.act, acc.as_flattened_mut());
        acc
    }

    /// Adds window row `wr` (its segment `seg`) to the output rows that read it: each tap
    /// of each vector loaded once, for up to three output rows.
    #[inline(always)]
    fn window_row<const NV: usize, const LEFT: bool, const RIGHT: bool>(
        &self,
        s: S,
        seg: &[f32],
        wr: usize,
        acc: &mut [[S::V; NV]; RH],
    ) {
        let l = S::LANES;
        // Index of column ox in the segment.
        let at = usize::from(!LEFT);
        let seg = &seg[..NV * l + at + usize::from(!RIGHT)];
        for kx in 0..3 {
            let mut xv = [s.zero(); NV];
            for (v, x) in xv.iter_mut().enumerate() {
                let c = at + v * l;
                *x = if kx == 0 && LEFT && v == 0 {
                    s.shift_in(s.zero(), s.load(&seg[c..]))
                } else if kx == 2 && RIGHT && v == NV - 1 {
                    s.shift_out(s.load(&seg[c..]), s.zero())
                } else {
                    s.load(&seg[c + kx - 1..])
                };
            }
            for (r, accr) in acc.iter_mut().enumerate() {
                if wr >= r && wr - r < 3 {
                    let wk = self.wv[wr - r][kx];
                    for (a, &x) in accr.iter_mut().zip(&xv) {
                        *a = s.fma(*a, wk, x);
                    }
                }
            }
        }
    }
}
