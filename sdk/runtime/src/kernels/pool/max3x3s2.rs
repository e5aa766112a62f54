//! 3x3 stride-2 max pooling reading the input rows in place (SqueezeNet's, ShuffleNet's and
//! Xception's pools): no copy of the rows into padded slots.
//!
//! Output vector `ox..ox + LANES` reads input columns `2 ox - pad ..= 2 ox - pad + 2 LANES`.
//! Per window row one de-interleaving load ([`Simd::load_deinterleaved`], NEON `ld2`) of
//! `2 ox - pad ..` gives the even columns (tap 0) and the odd ones (tap 1); the rows'
//! maxima are taken first (vertical, per phase), and tap 2, the even columns one to the
//! right, is the even maxima moved down a lane with the next vector's first even maximum
//! ([`Simd::shift_out`]): the vectors of a row are swept left to right carrying it. Per
//! output vector: three `ld2`, six `max`, one `ext`, one store.
//!
//! Window rows clipped by the padding repeat a valid row (the maximum is the same); output
//! columns whose window is clipped (left padding, a ceil-mode window past the right end)
//! are computed one by one. A row's last vector overlaps its predecessor where the
//! columns are not a multiple of the vector: recomputed maxima are the same values.

use std::ops::Range;

use super::{PoolGeom, window};
use crate::kernels::simd::{Simd, SimdKernel};

/// A checked 3x3 stride-2 max pooling whose every window holds an input value.
pub(super) struct MaxPool3x3S2<'a> {
    pub g: &'a PoolGeom,
    pub x: &'a [f32],
    pub y: &'a mut [f32],
}

impl SimdKernel for MaxPool3x3S2<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let MaxPool3x3S2 { g, x, y } = self;
        let (in_w, ow, pad) = (g.in_w, g.out_w, g.pads[1]);
        // Output columns a..b (rows lo..hi) have their windows inside the row (the
        // plane): 2 ox - pad >= 0 and 2 ox - pad + 2 <= in_w - 1.
        let inside = |pad: usize, len: usize, out: usize| {
            let lo = pad.div_ceil(2).min(out);
            let hi = if len + pad >= 3 {
                ((len + pad - 3) / 2 + 1).clamp(lo, out)
            } else {
                lo
            };
            lo..hi
        };
        let Range { start: a, end: b } = inside(pad, in_w, ow);
        let (lo, hi) = {
            let rows = inside(g.pads[0], g.in_h, g.out_h);
            // Pairs of rows from lo; a last odd row goes alone.
            (rows.start, rows.end - rows.len() % 2)
        };
        // Vectors need a full one inside; the other columns go one by one.
        let (edges, vectors) = if b - a >= S::LANES {
            ((0..a).chain(b..ow), a..b)
        } else {
            ((0..a).chain(a..ow), a..a)
        };
        let planes = x
            .chunks_exact(g.in_h * in_w)
            .zip(y.chunks_exact_mut(g.out_h * ow));
        for (xc, yc) in planes {
            // Window rows from input row `iy`, the last `n - 1 - clip` of them repeating
            // row `clip` (clipped by the padding: the maximum is the same).
            let rows_of = |iy: usize, n: usize, clip: usize| {
                let mut rows: [&[f32]; 5] = [&[]; 5];
                for (r, slot) in rows[..n].iter_mut().enumerate() {
                    let iy = iy + r.min(clip);
                    *slot = &xc[iy * in_w..(iy + 1) * in_w];
                }
                rows
            };
            let singles = (0..lo).chain(hi..g.out_h);
            for oy in singles {
                let y = &mut yc[oy * ow..(oy + 1) * ow];
                let iys = window(oy, 2, 3, g.pads[0], g.in_h);
                let rows = rows_of(iys.start, 3, iys.len() - 1);
                let band = Band::<1> { rows, pad };
                for ox in edges.clone() {
                    y[ox] = band.edge_max(ox, 0);
                }
                if !vectors.is_empty() {
                    band.vectors(s, vectors.clone(), [y]);
                }
            }
            for oy in (lo..hi).step_by(2) {
                let (y0, y1) = yc[oy * ow..(oy + 2) * ow].split_at_mut(ow);
                let rows = rows_of(2 * oy - g.pads[0], 5, 4);
                let band = Band::<2> { rows, pad };
                for ox in edges.clone() {
                    y0[ox] = band.edge_max(ox, 0);
                    y1[ox] = band.edge_max(ox, 1);
                }
                if !vectors.is_empty() {
                    band.vectors(s, vectors.clone(), [y0, y1]);
                }
            }
        }
    }
}

/// `R` (1 or 2) output rows: their `2 R + 1` window rows (each `in_w` long; output row `j`
/// reads rows `2 j ..= 2 j + 2`), and the left padding.
struct Band<'a, const R: usize> {
    rows: [&'a [f32]; 5],
    pad: usize,
}

impl<const R: usize> Band<'_, R> {
    /// The maximum of output row `j`'s window at column `ox`, clipped to the row.
    fn edge_max(&self, ox: usize, j: usize) -> f32 {
        let cols = window(ox, 2, 3, self.pad, self.rows[0].len());
        self.rows[2 * j..2 * j + 3]
            .iter()
            .flat_map(|r| &r[cols.clone()])
            .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
    }

    /// Output columns `cols` (at least a vector of them, every window inside the rows) of
    /// the rows `y`, left to right, the last vector overlapping its predecessor.
    #[inline(always)]
    fn vectors<S: Simd>(&self, s: S, cols: Range<usize>, y: [&mut [f32]; R]) {
        let (l, b, n) = (S::LANES, cols.end, self.rows[0].len());
        assert!(
            b - cols.start >= l
                && 2 * cols.start >= self.pad
                && 2 * b - self.pad < n
                && self.rows[..2 * R + 1].iter().all(|r| r.len() == n)
                && y.iter().all(|y| y.len() >= b),
            "max pool 3x3/2: windows outside the rows"
        );
        let mut y = y;
        let mut ox = cols.start;
        let mut cur = self.phase_max(s, ox);
        while ox + 2 * l <= b {
            let next = self.phase_max(s, ox + l);
            store(s, window_max(s, cur, next.map(|(e, _)| e)), ox, &mut y);
            cur = next;
            ox += l;
        }
        store(
            s,
            window_max(s, cur, self.column_max(s, ox + l)),
            ox,
            &mut y,
        );
        if ox + l < b {
            let last = b - l;
            let v = window_max(s, self.phase_max(s, last), self.column_max(s, b));
            store(s, v, last, &mut y);
        }
    }

    /// Per output row, the maxima over its three window rows of the even and the odd
    /// columns of output columns `ox..ox + LANES`' windows: `2 LANES` input columns from
    /// `2 ox - pad`.
    #[inline(always)]
    fn phase_max<S: Simd>(&self, s: S, ox: usize) -> [(S::V, S::V); R] {
        let c = 2 * ox - self.pad;
        let mut p = [(s.zero(), s.zero()); 5];
        for (p, row) in p.iter_mut().zip(&self.rows).take(2 * R + 1) {
            *p = phases(s, row, c);
        }
        let mut m = [(s.zero(), s.zero()); R];
        for (j, m) in m.iter_mut().enumerate() {
            let [r0, r1, r2] = [p[2 * j], p[2 * j + 1], p[2 * j + 2]];
            *m = (
                s.max(s.max(r0.0, r1.0), r2.0),
                s.max(s.max(r0.1, r1.1), r2.1),
            );
        }
        m
    }

    /// Per output row, the maximum over its three window rows of the first column of
    /// output column `ox`'s window (its only use: the column after vector `ox - LANES`'s
    /// even columns), in every lane.
    #[inline(always)]
    fn column_max<S: Simd>(&self, s: S, ox: usize) -> [S::V; R] {
        let c = 2 * ox - self.pad;
        let mut m = [s.zero(); R];
        for (j, m) in m.iter_mut().enumerate() {
            let r = &self.rows[2 * j..2 * j + 3];
            *m = s.splat(r[0][c].max(r[1][c]).max(r[2][c]));
        }
        m
    }
}

/// Stores vector `v[j]` at column `ox` of row `y[j]`.
#[inline(always)]
fn store<S: Simd, const R: usize>(s: S, v: [S::V; R], ox: usize, y: &mut [&mut [f32]; R]) {
    for (v, y) in v.into_iter().zip(y) {
        s.store(v, &mut y[ox..ox + S::LANES]);
    }
}

/// The even and odd columns of `row[c..c + 2 LANES]`, unchecked: [`Band::vectors`]
/// checked that the windows of its columns lie inside the rows, and `c` is the start of
/// one of its vectors' windows.
#[inline(always)]
fn phases<S: Simd>(s: S, row: &[f32], c: usize) -> (S::V, S::V) {
    // SAFETY: column `c + 2 LANES` is the last of the last lane's window, inside the row
    // (see above), so the `2 LANES` columns from `c` are too.
    s.load_deinterleaved(unsafe { row.get_unchecked(c..c + 2 * S::LANES) })
}

/// Per output row, the window maxima of a vector from its phase maxima `(even, odd)` and
/// the even maxima of the next vector (its first lane: the column after the last window's
/// middle).
#[inline(always)]
fn window_max<S: Simd, const R: usize>(
    s: S,
    phases: [(S::V, S::V); R],
    next_even: [S::V; R],
) -> [S::V; R] {
    let mut m = [s.zero(); R];
    for ((m, (even, odd)), next) in m.iter_mut().zip(phases).zip(next_even) {
        *m = s.max(s.max(even, odd), s.shift_out(even, next));
    }
    m
}
