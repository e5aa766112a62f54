//! Depthwise convolutions of small planes vectorised across channels: any kernel size up
//! to 7x7, any stride and padding.
//!
//! The row-vectorised kernels leave most of a vector idle on the 7- and 14-column rows of
//! the last stages, and pay a padded row copy, an epilogue and a partial store per row of
//! each channel. Here a vector holds one pixel of `LANES` channels instead: per group of
//! channels the input planes are transposed once into a zero-padded pixel-major buffer
//! (`[padded pixel][lane]`, on the stack), every output pixel is then `K * K` full-width
//! FMAs (a weight vector per tap, an input vector at the tap's offset: borders and strides
//! need no special case), `J` output pixels at a time in registers, and the results are
//! transposed back into the output planes. Taps run in the row kernels' order (bias, then
//! row by row), so the results are bit-identical to theirs.
//!
//! NEON (4 lanes) computes in row tiles instead ([`RowTiles`]: each input vector loaded
//! once per kernel row and used by every pixel of the tile that reads it) and transposes
//! whole groups with unchecked full vectors; it runs 5x5 on 14- and 7-column planes and 3x3
//! stride 1 on 7-column ones (on 14 columns `3x3s1.rs`'s streamed rows beat it). Instructions (cortex-a72) against the row kernels: MobileNetV2's
//! 14x14x384 3x3 0.77 -> 0.72 M, 7x7x960 3x3 0.77 -> 0.57 M; MobileNetV3's 14x14x672 5x5
//! stride 2 1.72 -> 0.89 M, 7x7x960 5x5 1.68 -> 0.87 M. A first version with the x86 tiles
//! and the generic (16-vector, stack) transposes cost 2-3x more than the row kernels.

use super::{FusedKernel, TileActivation, fused};
use crate::kernels::simd::{MAX_LANES, Simd, SimdKernel};
use crate::kernels::{ConvGeom, Epilogue};

/// Most padded input pixels per plane (the stack buffer: 32 KiB at 16 lanes).
const MAX_PADDED: usize = 512;

/// Most output pixels per plane.
const MAX_OUT: usize = 256;

/// Most taps (7x7).
const MAX_TAPS: usize = 49;

/// Output pixels per register tile of the flattened plane (x86-64).
const J: usize = 8;

/// Output pixels per register tile of a row (NEON): 7- and 14-column rows in whole tiles.
const ROW_J: usize = 7;

/// Widest output rows NEON runs here (the 14- and 7-column planes of the last stages).
const MAX_NEON_OUT_W: usize = 16;

/// A checked depthwise convolution with [`Packed::fits`] geometry.
pub(super) struct Packed<'a> {
    pub g: &'a ConvGeom,
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub epi: &'a Epilogue<'a>,
    pub y: &'a mut [f32],
}

impl Packed<'_> {
    /// Whether `g` (depthwise, dilation 1, sizes checked) runs here with `S` (ISAs of at
    /// least 8 lanes): planes that fit the stack buffers, with rows of at most 8 output
    /// columns, or 5x5 and larger kernels on rows of at most two vectors. Measured against
    /// the row kernels on AVX2 and AVX-512: faster on every 7-column plane (1.2-2.4x) and
    /// for 5x5 on 14x14 (1.1x, stride 2: 2.3x); 3x3 on 14x14 was 1.2-1.7x slower, where
    /// the two transposes cost more than 9 taps save.
    pub(super) fn fits<S: Simd>(g: &ConvGeom) -> bool {
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let (ph, pw) = padded(g);
        let shape = if S::LANES == 4 {
            // NEON: row tiles (see `RowTiles`) of 5x5 strides 1 and 2, and of 3x3 stride 1
            // on rows narrower than 2 vectors (3x3 stride 2 on 14x14: 9 % more instructions
            // than the in-place kernel; 3x3 stride 1 on 14x14, MobileNetV2's c384: 0.70 M
            // here, 0.55 M in place, streamed; 7x7 c960: 0.56 M here, 0.61 M in place).
            let narrow3x3 = (kh, sh) == (3, 1) && g.out_w < 2 * S::LANES;
            g.kernel[0] == g.kernel[1]
                && sh == sw
                && (matches!((kh, sh), (5, 1) | (5, 2)) || narrow3x3)
                && (ROW_J..=MAX_NEON_OUT_W).contains(&g.out_w)
                && g.in_w >= S::LANES
        } else {
            S::LANES >= 8 && (g.out_w <= 8 || kh * kw >= 25) && g.out_w <= 2 * S::LANES
        };
        shape
            && kh * kw <= MAX_TAPS
            && ph * pw <= MAX_PADDED
            && g.out_h * g.out_w <= MAX_OUT
            && g.out_h * g.out_w >= J
            && sh > 0
            && sw > 0
            && (g.out_h - 1) * sh + kh <= ph
            && (g.out_w - 1) * sw + kw <= pw
    }
}

/// Height and width of the zero-padded input plane.
fn padded(g: &ConvGeom) -> (usize, usize) {
    let [pt, pl, pb, pr] = g.pads;
    (g.in_h + pt + pb, g.in_w + pl + pr)
}

impl SimdKernel for Packed<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        fused(s, self.epi.activation, self)
    }
}

impl FusedKernel for Packed<'_> {
    #[inline(always)]
    fn run_fused<S: Simd, A: TileActivation<S>>(self, s: S, act: A) {
        let Packed { g, x, w, epi, y } = self;
        let l = S::LANES;
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [pt, pl, ..] = g.pads;
        let (ph, pw) = padded(g);
        let (ihw, ohw, taps) = (g.in_h * g.in_w, g.out_h * g.out_w, kh * kw);
        // Lanes past the last channel read zero inputs and the previous group's weights:
        // computed, never stored. The padding border is zeroed once and never written.
        let mut padded_in = [0.0f32; MAX_PADDED * MAX_LANES];
        let mut out = [0.0f32; MAX_OUT * MAX_LANES];
        let mut wt = [0.0f32; MAX_TAPS * MAX_LANES];
        // Offsets (in values) of each tap from an output pixel's window corner.
        let mut tap_at = [0usize; MAX_TAPS];
        for (t, at) in tap_at.iter_mut().enumerate().take(taps) {
            *at = ((t / kw) * pw + t % kw) * l;
        }
        let tap_at = &tap_at[..taps];
        for c0 in (0..g.in_c).step_by(l) {
            let n = l.min(g.in_c - c0);
            let xg = &x[c0 * ihw..(c0 + n) * ihw];
            for (i, prow) in padded_in[(pt * pw + pl) * l..]
                .chunks_mut(pw * l)
                .take(g.in_h)
                .enumerate()
            {
                match S::LANES {
                    4 => row_in::<S, 4>(s, g, xg, i, prow),
                    _ => row_in::<S, MAX_LANES>(s, g, xg, i, prow),
                }
            }
            for (lane, wc) in w[c0 * taps..(c0 + n) * taps].chunks_exact(taps).enumerate() {
                for (t, &v) in wc.iter().enumerate() {
                    wt[t * l + lane] = v;
                }
            }
            let bias = match epi.bias {
                Some(b) if n == l => s.load(&b[c0..c0 + n]),
                Some(b) => s.load_partial(&b[c0..c0 + n]),
                None => s.zero(),
            };
            let src = &padded_in[..ph * pw * l];
            if S::LANES == 4 {
                let rows = RowTiles {
                    g,
                    src,
                    wt: &wt,
                    bias,
                    act,
                    pw,
                };
                match (kh, sh) {
                    (3, _) => rows.plane::<3, 1, 9>(s, &mut out),
                    (_, 1) => rows.plane::<5, 1, 11>(s, &mut out),
                    _ => rows.plane::<5, 2, 17>(s, &mut out),
                }
            } else {
                let mut px = 0;
                while px < ohw {
                    // The last tile ends at the plane's end, recomputing some pixels.
                    let p0 = px.min(ohw - J);
                    let mut corner = [0usize; J];
                    for (j, c) in corner.iter_mut().enumerate() {
                        let (oi, oj) = ((p0 + j) / g.out_w, (p0 + j) % g.out_w);
                        *c = (oi * sh * pw + oj * sw) * l;
                    }
                    let mut acc = [bias; J];
                    for (t, &at) in tap_at.iter().enumerate() {
                        let wv = s.load(&wt[t * l..]);
                        for (a, &c) in acc.iter_mut().zip(&corner) {
                            // SAFETY: `fits` checked that every window lies in the padded
                            // plane: `c + at + l <= ph * pw * l = src.len()`.
                            let xv = s.load(unsafe { src.get_unchecked(c + at..c + at + l) });
                            *a = s.fma(*a, wv, xv);
                        }
                    }
                    act.apply(s, &mut acc);
                    for (j, &a) in acc.iter().enumerate() {
                        s.store(a, &mut out[(p0 + j) * l..]);
                    }
                    px = p0 + J;
                }
            }
            let yg = &mut y[c0 * ohw..(c0 + n) * ohw];
            match S::LANES {
                4 => plane_out::<S, 4>(s, &out, ohw, yg),
                _ => plane_out::<S, MAX_LANES>(s, &out, ohw, yg),
            }
        }
    }
}

/// Row `i` of the group's input planes `xg` (one per channel, at most `LANES`), transposed
/// into the pixel-major row `prow`. `N` is `LANES` or more (lanes past `LANES` unused): a
/// fixed 4 keeps NEON's vectors in registers.
#[inline(always)]
fn row_in<S: Simd, const N: usize>(s: S, g: &ConvGeom, xg: &[f32], i: usize, prow: &mut [f32]) {
    let (l, ihw) = (S::LANES, g.in_h * g.in_w);
    if N == l && xg.len() == N * ihw && g.in_w >= l && prow.len() >= g.in_w * l {
        // A whole group on rows of at least a vector: no partial vector, one check.
        for j0 in (0..g.in_w).step_by(l) {
            let j0 = j0.min(g.in_w - l);
            let mut v = [s.zero(); N];
            for (c, v) in v.iter_mut().enumerate() {
                let at = c * ihw + i * g.in_w + j0;
                // SAFETY: `c < N` planes of `ihw` values, row `i < in_h`, `j0 + l <= in_w`.
                *v = s.load(unsafe { xg.get_unchecked(at..at + l) });
            }
            transpose::<S, N>(s, &mut v);
            for (j, &v) in v.iter().enumerate() {
                let at = (j0 + j) * l;
                // SAFETY: `j0 + j < in_w` pixels of `l` values, inside `prow` (checked).
                s.store(v, unsafe { prow.get_unchecked_mut(at..at + l) });
            }
        }
        return;
    }
    for j0 in (0..g.in_w).step_by(l) {
        // Rows of at least a vector: the last vector ends at the row's end (rewriting a few
        // pixels), so no partial load.
        let (j0, m) = match g.in_w >= l {
            true => (j0.min(g.in_w - l), l),
            false => (j0, g.in_w - j0),
        };
        let mut v = [s.zero(); N];
        for (v, xc) in v.iter_mut().zip(xg.chunks_exact(ihw)) {
            let row = &xc[i * g.in_w + j0..][..m];
            *v = if m == l {
                s.load(row)
            } else {
                s.load_partial(row)
            };
        }
        transpose::<S, N>(s, &mut v);
        for (j, &v) in v.iter().enumerate().take(m) {
            s.store(v, &mut prow[(j0 + j) * l..]);
        }
    }
}

/// The group's pixel-major outputs `out` transposed into its output planes `yg` (planes of
/// `ohw`); `N` as for [`row_in`].
#[inline(always)]
fn plane_out<S: Simd, const N: usize>(s: S, out: &[f32], ohw: usize, yg: &mut [f32]) {
    let l = S::LANES;
    if N == l && yg.len() == N * ohw && ohw >= l && out.len() >= ohw * l {
        // A whole group of planes of at least a vector: as in `row_in`.
        for p0 in (0..ohw).step_by(l) {
            let p0 = p0.min(ohw - l);
            let mut v = [s.zero(); N];
            for (j, v) in v.iter_mut().enumerate() {
                let at = (p0 + j) * l;
                // SAFETY: pixel `p0 + j < ohw` of `l` values, inside `out` (checked).
                *v = s.load(unsafe { out.get_unchecked(at..at + l) });
            }
            transpose::<S, N>(s, &mut v);
            for (c, &v) in v.iter().enumerate() {
                let at = c * ohw + p0;
                // SAFETY: `c < N` planes of `ohw` values, `p0 + l <= ohw`.
                s.store(v, unsafe { yg.get_unchecked_mut(at..at + l) });
            }
        }
        return;
    }
    for p0 in (0..ohw).step_by(l) {
        // As the input: the last vector ends at the plane's end when it can.
        let (p0, m) = match ohw >= l {
            true => (p0.min(ohw - l), l),
            false => (p0, ohw - p0),
        };
        let mut v = [s.zero(); N];
        for (j, v) in v.iter_mut().enumerate().take(m) {
            *v = s.load(&out[(p0 + j) * l..]);
        }
        transpose::<S, N>(s, &mut v);
        for (v, yc) in v.iter().zip(yg.chunks_exact_mut(ohw)) {
            match m == l {
                true => s.store(*v, &mut yc[p0..p0 + m]),
                false => s.store_partial(*v, &mut yc[p0..p0 + m]),
            }
        }
    }
}

/// NEON's compute over one group of channels: every output row in tiles of [`ROW_J`]
/// consecutive pixels (the last ending at the row's end, recomputing a few), each tile's
/// window rows loaded once per kernel row as `IN = (ROW_J - 1) * ST + K` vectors and every
/// input vector used by each of the tile's pixels that reads it. The flattened-plane tiles
/// of the x86-64 path load each input vector once per tap and pixel: 17 instructions per 8
/// FMAs on NEON, whose loads do not fold into the FMA.
struct RowTiles<'a, S: Simd, A> {
    g: &'a ConvGeom,
    /// The padded, pixel-major input plane.
    src: &'a [f32],
    /// Weights, `[tap][lane]`.
    wt: &'a [f32],
    bias: S::V,
    act: A,
    /// Padded row width, in pixels.
    pw: usize,
}

impl<S: Simd, A: TileActivation<S>> RowTiles<'_, S, A> {
    /// The group's output pixels into `out` (`[pixel][lane]`).
    #[inline(always)]
    fn plane<const K: usize, const ST: usize, const IN: usize>(&self, s: S, out: &mut [f32]) {
        assert!(IN == (ROW_J - 1) * ST + K, "row tile: input vectors");
        let (l, g, pw) = (S::LANES, self.g, self.pw);
        assert!(
            g.out_w >= ROW_J
                && ((g.out_h - 1) * ST + K) * pw * l <= self.src.len()
                && ((g.out_w - 1) * ST + K) <= pw
                && K * K * l <= self.wt.len()
                && g.out_h * g.out_w * l <= out.len(),
            "row tile: plane out of range"
        );
        for oi in 0..g.out_h {
            let mut oj = 0;
            while oj < g.out_w {
                let oj0 = oj.min(g.out_w - ROW_J);
                let mut acc = [self.bias; ROW_J];
                for r in 0..K {
                    let at = ((oi * ST + r) * pw + oj0 * ST) * l;
                    // SAFETY: `at + IN * l <= src.len()`: the last window row of the last
                    // output row ends inside the padded plane (checked above).
                    let row = unsafe { self.src.get_unchecked(at..at + IN * l) };
                    let mut xin = [s.zero(); IN];
                    for (v, x) in xin.iter_mut().enumerate() {
                        *x = s.load(&row[v * l..]);
                    }
                    for kx in 0..K {
                        let wv = s.load(&self.wt[(r * K + kx) * l..]);
                        for (j, a) in acc.iter_mut().enumerate() {
                            *a = s.fma(*a, wv, xin[j * ST + kx]);
                        }
                    }
                }
                self.act.apply(s, &mut acc);
                let o = &mut out[(oi * g.out_w + oj0) * l..][..ROW_J * l];
                for (j, &a) in acc.iter().enumerate() {
                    s.store(a, &mut o[j * l..]);
                }
                oj = oj0 + ROW_J;
            }
        }
    }
}

/// Transposes the `LANES` x `LANES` matrix in the first `LANES` vectors of `v`: `log2
/// LANES` rounds of interleaving row `i` with row `i + LANES / 2`.
#[inline(always)]
fn transpose<S: Simd, const N: usize>(s: S, v: &mut [S::V; N]) {
    let half = S::LANES / 2;
    for _ in 0..S::LANES.trailing_zeros() {
        let mut t = [s.zero(); N];
        for i in 0..half {
            let (lo, hi) = s.interleave(v[i], v[i + half]);
            t[2 * i] = lo;
            t[2 * i + 1] = hi;
        }
        *v = t;
    }
}
