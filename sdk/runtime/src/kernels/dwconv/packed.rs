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

use crate::kernels::simd::{MAX_LANES, Simd, SimdKernel, VecActivation};
use crate::kernels::{ConvGeom, Epilogue};

/// Most padded input pixels per plane (the stack buffer: 32 KiB at 16 lanes).
const MAX_PADDED: usize = 512;

/// Most output pixels per plane.
const MAX_OUT: usize = 256;

/// Most taps (7x7).
const MAX_TAPS: usize = 49;

/// Output pixels per register tile.
const J: usize = 8;

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
        S::LANES >= 8
            && (g.out_w <= 8 || kh * kw >= 25)
            && g.out_w <= 2 * S::LANES
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
        let Packed { g, x, w, epi, y } = self;
        let l = S::LANES;
        let [kh, kw] = g.kernel;
        let [sh, sw] = g.stride;
        let [pt, pl, ..] = g.pads;
        let (ph, pw) = padded(g);
        let (ihw, ohw, taps) = (g.in_h * g.in_w, g.out_h * g.out_w, kh * kw);
        let act = VecActivation::new(s, epi.activation);
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
                for j0 in (0..g.in_w).step_by(l) {
                    let m = l.min(g.in_w - j0);
                    let mut v = [s.zero(); MAX_LANES];
                    for (v, xc) in v.iter_mut().zip(xg.chunks_exact(ihw)) {
                        *v = s.load_partial(&xc[i * g.in_w + j0..][..m]);
                    }
                    transpose(s, &mut v);
                    for (j, &v) in v.iter().enumerate().take(m) {
                        s.store(v, &mut prow[(j0 + j) * l..]);
                    }
                }
            }
            for (lane, wc) in w[c0 * taps..(c0 + n) * taps].chunks_exact(taps).enumerate() {
                for (t, &v) in wc.iter().enumerate() {
                    wt[t * l + lane] = v;
                }
            }
            let bias = epi
                .bias
                .map_or(s.zero(), |b| s.load_partial(&b[c0..c0 + n]));
            let src = &padded_in[..ph * pw * l];
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
                act.apply_all(s, &mut acc);
                for (j, &a) in acc.iter().enumerate() {
                    s.store(a, &mut out[(p0 + j) * l..]);
                }
                px = p0 + J;
            }
            let yg = &mut y[c0 * ohw..(c0 + n) * ohw];
            for p0 in (0..ohw).step_by(l) {
                let m = l.min(ohw - p0);
                let mut v = [s.zero(); MAX_LANES];
                for (j, v) in v.iter_mut().enumerate().take(m) {
                    *v = s.load(&out[(p0 + j) * l..]);
                }
                transpose(s, &mut v);
                for (v, yc) in v.iter().zip(yg.chunks_exact_mut(ohw)) {
                    s.store_partial(*v, &mut yc[p0..p0 + m]);
                }
            }
        }
    }
}

/// Transposes the `LANES` x `LANES` matrix in the first `LANES` vectors of `v`: `log2
/// LANES` rounds of interleaving row `i` with row `i + LANES / 2`.
#[inline(always)]
fn transpose<S: Simd>(s: S, v: &mut [S::V; MAX_LANES]) {
    let half = S::LANES / 2;
    for _ in 0..S::LANES.trailing_zeros() {
        let mut t = [s.zero(); MAX_LANES];
        for i in 0..half {
            let (lo, hi) = s.interleave(v[i], v[i + half]);
            t[2 * i] = lo;
            t[2 * i + 1] = hi;
        }
        *v = t;
    }
}
