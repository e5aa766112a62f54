//! The `K`x`K` depthwise kernel, stride `ST` (1 or 2), generic over [`Simd`]: the 3x3 and
//! 5x5 instantiations are the `depthwise` slot's fast paths.
//!
//! Per channel, per strip of at most [`STRIP`] output columns, per output row: the `K`
//! input rows it reads are in a [`RowRing`] (zero-padded, de-interleaved for stride 2,
//! copied once per input row), so a tile of `NV` output vectors is `K * K * NV`
//! unconditional loads and FMAs with the `K * K` weights splatted once per channel, then
//! bias and activation in registers and one store per vector. Kernel rows in the vertical
//! padding are skipped. The row's last, partial vector is recomputed as a full vector ending
//! at the row's end (bit-identical values); rows narrower than a vector store partially.

use std::array::from_fn;

use crate::kernels::conv::epilogue::activate;
use crate::kernels::conv::rows::RowRing;
use crate::kernels::simd::{MAX_LANES, Simd, SimdKernel, VecActivation};
use crate::kernels::{ConvGeom, Epilogue};

/// Output columns per strip: wider rows are done in strips so that the ring fits a stack
/// buffer (every zoo model's rows fit one strip).
pub(super) const STRIP: usize = 256;

/// Phase width of a ring slot for a strip of `n` columns: every tap of every vector of the
/// strip (the last one rounded up to a whole vector) reads inside it; whole vectors.
#[inline(always)]
pub(super) fn phase_width(n: usize, k: usize, lanes: usize) -> usize {
    (n + k + lanes).next_multiple_of(lanes)
}

/// Ring buffer values: the largest ring (5x5, stride 2: a window of 7 rows and the zero
/// slot) of one plane.
const RING: usize = (7 + 1) * 2 * (STRIP + 2 * MAX_LANES);

/// A checked `K`x`K` stride-`ST` depthwise convolution (dilation 1, any padding).
pub(super) struct DepthwiseKxK<'a, const K: usize, const ST: usize> {
    pub g: &'a ConvGeom,
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub epi: &'a Epilogue<'a>,
    pub y: &'a mut [f32],
}

impl<const K: usize, const ST: usize> SimdKernel for DepthwiseKxK<'_, K, ST> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // Bands of RH = 2 output rows read a window of W = K + ST input rows. Tile width NV
        // (vectors): the K * K weights, RH * NV accumulators and NV loaded vectors fit the
        // register file (32: NV 4 for 3x3, 2 for 5x5; 16: NV 2, 5x5 weights spill).
        match (K, ST, S::REGISTERS >= 32) {
            (3, 1, true) => self.planes::<S, 2, 4, 4>(s),
            (3, 2, true) => self.planes::<S, 2, 5, 4>(s),
            (3, 1, false) => self.planes::<S, 2, 4, 2>(s),
            (3, 2, false) => self.planes::<S, 2, 5, 2>(s),
            (5, 1, _) => self.planes::<S, 2, 6, 2>(s),
            (5, 2, _) => self.planes::<S, 2, 7, 2>(s),
            _ => unreachable!("depthwise {K}x{K} stride {ST} has no fast path"),
        }
    }
}

impl<const K: usize, const ST: usize> DepthwiseKxK<'_, K, ST> {
    /// Every plane, in bands of `RH` output rows over a ring of `W` input rows.
    #[inline(always)]
    fn planes<S: Simd, const RH: usize, const W: usize, const NV: usize>(self, s: S) {
        debug_assert_eq!(W, K + (RH - 1) * ST, "depthwise: window rows");
        let DepthwiseKxK { g, x, w, epi, y } = self;
        let (in_hw, out_hw, ow) = (g.in_h * g.in_w, g.out_h * g.out_w, g.out_w);
        let act = VecActivation::new(s, epi.activation);
        let pw = phase_width(STRIP.min(ow), K, S::LANES);
        let mut buf = [0.0f32; RING];
        let mut ring = RowRing::<W, ST>::new(&mut buf, 1, pw);
        let planes = x.chunks_exact(in_hw).zip(y.chunks_exact_mut(out_hw));
        for (c, ((xc, yc), wc)) in planes.zip(w.chunks_exact(K * K)).enumerate() {
            let wk: &[[f32; K]; K] = wc.as_chunks::<K>().0.try_into().expect("K rows");
            let bias = s.splat(epi.bias.map_or(0.0, |b| b[c]));
            let k = Taps::<S, K, ST> {
                w: wk,
                bias,
                act: &act,
                pw,
            };
            for ox0 in (0..ow).step_by(STRIP) {
                let cols = ox0..ox0 + STRIP.min(ow - ox0);
                let ix0 = (ox0 * ST) as isize - g.pads[1] as isize;
                ring.start(ix0, (cols.len() - 1) * ST + K);
                let mut oy = 0;
                while oy < g.out_h {
                    let iy0 = (oy * ST) as isize - g.pads[0] as isize;
                    let slots = ring.advance(s, xc, [g.in_h, g.in_w], iy0);
                    let rows: [Option<&[f32]>; W] = from_fn(|r| slots[r].map(|i| ring.slot(0, i)));
                    let band = &mut yc[oy * ow..];
                    if oy + RH <= g.out_h {
                        let mut yrows = band.chunks_exact_mut(ow).map(|r| &mut r[cols.clone()]);
                        let yrows: [&mut [f32]; RH] = from_fn(|_| yrows.next().unwrap());
                        k.band::<W, RH, NV>(s, &rows, yrows);
                        oy += RH;
                    } else {
                        k.band::<W, 1, NV>(s, &rows, [&mut band[cols.clone()]]);
                        oy += 1;
                    }
                }
            }
        }
    }
}

/// One channel's splatted weights, bias and activation, and the ring's phase width.
struct Taps<'a, S: Simd, const K: usize, const ST: usize> {
    w: &'a [[f32; K]; K],
    bias: S::V,
    act: &'a VecActivation<S>,
    pw: usize,
}

impl<S: Simd, const K: usize, const ST: usize> Taps<'_, S, K, ST> {
    /// `RH` output row segments (strip columns `0..n`) from the window `rows`: tiles of
    /// `NV` vectors, then of 2 and 1, the last of each ending at the row's end (overlapping
    /// the previous one with bit-identical values); a row narrower than a vector is stored
    /// partially.
    #[inline(always)]
    fn band<const W: usize, const RH: usize, const NV: usize>(
        &self,
        s: S,
        rows: &[Option<&[f32]>; W],
        mut yrows: [&mut [f32]; RH],
    ) {
        let n = yrows[0].len();
        if self.cover::<W, RH, NV>(s, rows, &mut yrows)
            || self.cover::<W, RH, 2>(s, rows, &mut yrows)
            || self.cover::<W, RH, 1>(s, rows, &mut yrows)
        {
            return;
        }
        let acc = self.tile::<W, RH, 1>(s, rows, 0);
        for (yrow, a) in yrows.iter_mut().zip(&acc) {
            s.store_partial(a[0], &mut yrow[..n]);
        }
    }

    /// Covers the rows with tiles of `NV` vectors if they are at least that wide.
    #[inline(always)]
    fn cover<const W: usize, const RH: usize, const NV: usize>(
        &self,
        s: S,
        rows: &[Option<&[f32]>; W],
        yrows: &mut [&mut [f32]; RH],
    ) -> bool {
        let l = S::LANES;
        let (n, tw) = (yrows[0].len(), NV * S::LANES);
        if n < tw {
            return false;
        }
        let mut ox = 0;
        loop {
            let at = ox.min(n - tw);
            let acc = self.tile::<W, RH, NV>(s, rows, at);
            for (yrow, a) in yrows.iter_mut().zip(&acc) {
                let ys = &mut yrow[at..at + tw];
                for (v, &a) in a.iter().enumerate() {
                    s.store(a, &mut ys[v * l..]);
                }
            }
            ox += tw;
            if ox >= n {
                return true;
            }
        }
    }

    /// `RH` x `NV` output vectors from strip column `ox`: bias + the `K * K` taps of each
    /// output row (row `r` reads window rows `r * ST ..`), activated.
    #[inline(always)]
    fn tile<const W: usize, const RH: usize, const NV: usize>(
        &self,
        s: S,
        rows: &[Option<&[f32]>; W],
        ox: usize,
    ) -> [[S::V; NV]; RH] {
        let l = S::LANES;
        let used = K + (RH - 1) * ST;
        let mut acc = [[self.bias; NV]; RH];
        for (wr, row) in rows[..used].iter().enumerate() {
            let Some(row) = row else { continue };
            for kx in 0..K {
                // Tap kx of column ox reads phase kx % ST at ox + kx / ST.
                let off = (kx % ST) * self.pw + kx / ST + ox;
                let t = &row[off..off + NV * l];
                let xv: [S::V; NV] = from_fn(|v| s.load(&t[v * l..]));
                for (r, accr) in acc.iter_mut().enumerate() {
                    if wr >= r * ST && wr - r * ST < K {
                        let wk = s.splat(self.w[wr - r * ST][kx]);
                        for (a, &xv) in accr.iter_mut().zip(&xv) {
                            *a = s.fma(*a, wk, xv);
                        }
                    }
                }
            }
        }
        activate(s, self.act, acc.as_flattened_mut());
        acc
    }
}
