//! The `K`x`K` depthwise kernel, stride `ST` (1 or 2), generic over [`Simd`]: the 3x3 and
//! 5x5 instantiations are the `depthwise` slot's fast paths.
//!
//! Per strip of at most [`STRIP`] output columns, per block of output rows, per channel:
//! the input rows the block reads are copied once into a stack buffer, zero-padded and for
//! stride 2 de-interleaved ([`Span`]), so that every tap of every output vector is an
//! unconditional, in-bounds load with no border code. The block's slots of the vertical
//! padding are zero rows for every channel, cleared once per block, and the strip and block
//! bookkeeping is done once for all channels (per channel it cost NEON as many instructions
//! as the FMAs on 7x7 planes: channels innermost, -20 % there, -5 to -12 % on the others). Blocks are sized to stay in L1 ([`BLOCK_VALUES`]). Output rows go in bands
//! of `RH` = 2 (4 for 3x3 stride-1 rows of one vector, and for every 3x3 on NEON: 7 to
//! 16 % fewer instructions on MobileNetV2's wide planes; the input rows they share are
//! loaded once), a block's last partial band overlapping its predecessor, each band in
//! tiles of `NV` vectors: `K * K` loads and `RH * K * K` FMAs per
//! vector with the weights in registers, then bias and activation in registers and one
//! store per vector. A row's last tile ends at the row's end, overlapping its predecessor
//! (bit-identical values); rows narrower than a vector store partially. Small planes fit
//! one block: no per-row bookkeeping (the per-row ring this replaced cost 3 to 4 times the
//! FMAs' instructions on NEON on the 7x7 and 14x14 planes).

use std::array::from_fn;

use super::{BUF, FusedKernel, TileActivation, fused};
use crate::kernels::conv::rows::{Span, fill_all, phases};
use crate::kernels::simd::{MAX_LANES, Simd, SimdKernel};
use crate::kernels::{ConvGeom, Epilogue};

/// Output columns per strip: wider rows are done in strips so that a block of rows fits
/// the stack buffer (every zoo model's rows fit one strip).
pub(super) const STRIP: usize = 256;

/// Phase width of a row slot for a strip of `n` columns: every tap of every vector of the
/// strip (the last one rounded up to a whole vector) reads inside it; whole vectors.
#[inline(always)]
pub(super) fn phase_width(n: usize, k: usize, lanes: usize) -> usize {
    (n + k + lanes).next_multiple_of(lanes)
}

/// Values of padded input rows a block of output rows reads, at most (when a band of rows
/// fits): blocks sized to stay in L1 while their rows are read (the whole 64 KiB buffer
/// spilled to L2 between a row's copy and its taps).
const BLOCK_VALUES: usize = 4096;

// The buffer holds at least the 7-row window of a 5x5 stride-2 band of a full strip.
const _: () = assert!(BUF >= 7 * 2 * (STRIP + 2 * MAX_LANES));

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
        fused(s, self.epi.activation, self)
    }
}

impl<const K: usize, const ST: usize> FusedKernel for DepthwiseKxK<'_, K, ST> {
    #[inline(always)]
    fn run_fused<S: Simd, A: TileActivation<S>>(self, s: S, act: A) {
        // Bands of RH = 2 output rows read a window of W = K + ST input rows. Tile width NV
        // (vectors): the K * K weights, RH * NV accumulators and NV loaded vectors fit the
        // register file (32: NV 4 for 3x3, 2 for 5x5; 16: NV 2, 5x5 weights spill).
        // Rows of one vector: bands of 4 rows (4 independent accumulator chains, each
        // input row loaded once for 4 output rows instead of 2).
        // NEON (32 registers of 4 lanes) runs 3x3 in bands of 4 rows of 2 vectors: each
        // tap's vectors loaded once for 4 output rows (4 rows of 4 vectors spilled).
        let narrow = self.g.out_w <= S::LANES;
        let neon = S::LANES == 4 && S::REGISTERS >= 32;
        match (K, ST, S::REGISTERS >= 32) {
            (3, 1, _) if narrow => self.planes::<S, A, 4, 6, 1>(s, act),
            (3, 1, true) if neon => self.planes::<S, A, 4, 6, 2>(s, act),
            (3, 2, true) if neon => self.planes::<S, A, 4, 9, 2>(s, act),
            (3, 1, true) => self.planes::<S, A, 2, 4, 4>(s, act),
            (3, 2, true) => self.planes::<S, A, 2, 5, 4>(s, act),
            (3, 1, false) => self.planes::<S, A, 2, 4, 2>(s, act),
            (3, 2, false) => self.planes::<S, A, 2, 5, 2>(s, act),
            (5, 1, _) => self.planes::<S, A, 2, 6, 2>(s, act),
            (5, 2, _) => self.planes::<S, A, 2, 7, 2>(s, act),
            _ => unreachable!("depthwise {K}x{K} stride {ST} has no fast path"),
        }
    }
}

impl<const K: usize, const ST: usize> DepthwiseKxK<'_, K, ST> {
    /// Every plane, in blocks of rows, bands of `RH` output rows reading windows of `W`
    /// input rows.
    #[inline(always)]
    fn planes<S: Simd, A: TileActivation<S>, const RH: usize, const W: usize, const NV: usize>(
        self,
        s: S,
        act: A,
    ) {
        debug_assert_eq!(W, K + (RH - 1) * ST, "depthwise: window rows");
        let DepthwiseKxK { g, x, w, epi, y } = self;
        let (in_hw, out_hw, ow) = (g.in_h * g.in_w, g.out_h * g.out_w, g.out_w);
        let pw = phase_width(STRIP.min(ow), K, S::LANES);
        let slot = ST * pw;
        // Output rows per block: a multiple of RH (at least one band) whose input rows fit
        // the L1-sized budget.
        let block = (((BLOCK_VALUES / slot).saturating_sub(K) / ST + 1) / RH * RH).max(RH);
        let mut buf = [0.0f32; BUF];
        // The strip whose padding the buffer holds (the same for every channel when the
        // rows fit one strip: set once per call).
        let mut padded = None;
        for ox0 in (0..ow).step_by(STRIP) {
            let cols = ox0..ox0 + STRIP.min(ow - ox0);
            let ix0 = (ox0 * ST) as isize - g.pads[1] as isize;
            let need = (cols.len() - 1) * ST + K;
            let span = Span::new(ix0, need, g.in_w);
            if padded != Some(span) {
                let rows = ((block - 1) * ST + K).min(BUF / slot);
                fill_all(s, &mut buf[..rows * slot], 0.0);
                padded = Some(span);
            }
            for oy0 in (0..g.out_h).step_by(block) {
                let oy1 = (oy0 + block).min(g.out_h);
                // Slot r holds input row iy0 + r; slots first..last hold rows inside the
                // plane, the others (the vertical padding) are zero rows for every channel.
                let iy0 = (oy0 * ST) as isize - g.pads[0] as isize;
                let nrows = (oy1 - 1 - oy0) * ST + K;
                let first = (-iy0).clamp(0, nrows as isize) as usize;
                let last = (g.in_h as isize - iy0).clamp(first as isize, nrows as isize) as usize;
                let slots = buf.chunks_exact_mut(slot).take(nrows).enumerate();
                for (_, dst) in slots.filter(|(r, _)| !(first..last).contains(r)) {
                    span.clear::<S, ST>(s, phases(dst, pw));
                }
                let inside = (iy0 + first as isize) as usize * g.in_w..;
                let planes = x.chunks_exact(in_hw).zip(y.chunks_exact_mut(out_hw));
                for (c, ((xc, yc), wc)) in planes.zip(w.chunks_exact(K * K)).enumerate() {
                    let xrows = xc[inside.clone()].chunks_exact(g.in_w).take(last - first);
                    for (xrow, dst) in xrows.zip(buf[first * slot..].chunks_exact_mut(slot)) {
                        span.copy::<S, ST>(s, xrow, phases(dst, pw));
                    }
                    // The weights after the copy (live across it, they were reloaded from
                    // the stack for every row).
                    let wk: &[[f32; K]; K] = wc.as_chunks::<K>().0.try_into().expect("K rows");
                    let k = Taps::<S, A, K, ST> {
                        w: *wk,
                        wv: wk.map(|row| row.map(|v| s.splat(v))),
                        bias: s.splat(epi.bias.map_or(0.0, |b| b[c])),
                        act,
                        pw,
                    };
                    k.block::<W, RH, NV>(s, &buf, slot, oy0..oy1, &mut yc[..], (ow, &cols));
                }
            }
        }
    }
}

/// One channel's weights, bias and activation, and the row slots' phase width.
struct Taps<S: Simd, A, const K: usize, const ST: usize> {
    /// The weights by value, and splatted once per channel. 3x3 taps use the splatted ones
    /// (kept in registers: 5 % fewer NEON instructions, up to 25 % faster on x86); 5x5
    /// ones splat per use (25 vectors do not fit the registers: the splatted ones spilled,
    /// 10 % more NEON instructions).
    w: [[f32; K]; K],
    wv: [[S::V; K]; K],
    bias: S::V,
    act: A,
    pw: usize,
}

impl<S: Simd, A: TileActivation<S>, const K: usize, const ST: usize> Taps<S, A, K, ST> {
    /// Output rows `oys` (strip columns `cols` of rows of `ow`) of the plane `yc` from the
    /// block's padded rows in `buf` (slots of `slot` values, slot 0 the input row of output
    /// row `oys.start`): bands of `RH` rows, a last partial band of a block of at least
    /// `RH` rows ending at the block's end, overlapping its predecessor (bit-identical
    /// values), else bands of 2 and 1.
    #[inline(always)]
    fn block<const W: usize, const RH: usize, const NV: usize>(
        &self,
        s: S,
        buf: &[f32],
        slot: usize,
        oys: std::ops::Range<usize>,
        yc: &mut [f32],
        (ow, cols): (usize, &std::ops::Range<usize>),
    ) {
        let (oy0, oy1) = (oys.start, oys.end);
        let mut oy = oy0;
        while oy < oy1 {
            if oy + RH > oy1 && oy1 - oy0 >= RH {
                oy = oy1 - RH;
            }
            let r0 = (oy - oy0) * ST * slot;
            let rows: [&[f32]; W] = from_fn(|r| {
                let at = (r0 + r * slot).min(buf.len() - slot);
                &buf[at..at + slot]
            });
            let band = &mut yc[oy * ow..];
            if oy + RH <= oy1 {
                let mut yrows = band.chunks_exact_mut(ow).map(|r| &mut r[cols.clone()]);
                let yrows: [&mut [f32]; RH] = from_fn(|_| yrows.next().unwrap());
                self.band::<W, RH, NV>(s, &rows, yrows);
                oy += RH;
            } else if RH > 2 && oy + 2 <= oy1 {
                let (y0, y1) = band[..2 * ow].split_at_mut(ow);
                let yrows = [&mut y0[cols.clone()], &mut y1[cols.clone()]];
                self.band::<W, 2, NV>(s, &rows, yrows);
                oy += 2;
            } else {
                self.band::<W, 1, NV>(s, &rows, [&mut band[cols.clone()]]);
                oy += 1;
            }
        }
    }

    /// `RH` output row segments (strip columns `0..n`) from the window `rows`: tiles of
    /// `NV` vectors, then of 2 and 1, the last of each ending at the row's end (overlapping
    /// the previous one with bit-identical values); a row narrower than a vector is stored
    /// partially.
    #[inline(always)]
    fn band<const W: usize, const RH: usize, const NV: usize>(
        &self,
        s: S,
        rows: &[&[f32]; W],
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
        rows: &[&[f32]; W],
        yrows: &mut [&mut [f32]; RH],
    ) -> bool {
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
                    s.store(a, &mut ys[v * S::LANES..]);
                }
            }
            ox += tw;
            if ox >= n {
                return true;
            }
        }
    }

    /// `RH` x `NV` output vectors from strip column `ox`: bias + the `K * K` taps of each
    /// output row (row `r` reads window rows `r * ST ..`), activated. On NEON the loop over
    /// window rows is unrolled by hand (up to 12 rows): LLVM left the 6- and 9-row windows
    /// of 4-row bands as a loop, with the accumulators in memory (a store per FMA).
    #[inline(always)]
    fn tile<const W: usize, const RH: usize, const NV: usize>(
        &self,
        s: S,
        rows: &[&[f32]; W],
        ox: usize,
    ) -> [[S::V; NV]; RH] {
        const { assert!(W <= 12, "depthwise: window rows") };
        let used = K + (RH - 1) * ST;
        let mut acc = [[self.bias; NV]; RH];
        macro_rules! window_rows {
            ($($wr:literal)*) => {$(
                if $wr < used {
                    self.window_row::<W, RH, NV>(s, rows, ox, $wr, &mut acc);
                }
            )*};
        }
        if S::LANES == 4 {
            window_rows!(0 1 2 3 4 5 6 7 8 9 10 11);
        } else {
            // x86-64 (bands of 2 rows): LLVM's own loop is faster (hand-unrolled: +25 %
            // on AVX-512 at 112x112).
            for wr in 0..used {
                self.window_row::<W, RH, NV>(s, rows, ox, wr, &mut acc);
            }
        }
        self.act.apply(s, acc.as_flattened_mut());
        acc
    }

    /// Adds window row `wr`'s taps (at strip column `ox`) to the output rows that read it.
    #[inline(always)]
    fn window_row<const W: usize, const RH: usize, const NV: usize>(
        &self,
        s: S,
        rows: &[&[f32]; W],
        ox: usize,
        wr: usize,
        acc: &mut [[S::V; NV]; RH],
    ) {
        let l = S::LANES;
        let row = rows[wr];
        // Each phase cut once to what the taps read, so the taps' own slices (constant
        // offsets and lengths) need no bounds checks.
        let ph: [&[f32]; ST] = from_fn(|p| {
            let reach = (K - 1 - p) / ST + NV * l;
            &row[p * self.pw + ox..][..reach]
        });
        for kx in 0..K {
            // Tap kx of column ox reads phase kx % ST at ox + kx / ST.
            let t = &ph[kx % ST][kx / ST..][..NV * l];
            let xv = s.load_n::<NV>(t);
            for (r, accr) in acc.iter_mut().enumerate() {
                if wr >= r * ST && wr - r * ST < K {
                    let (ky, w) = (wr - r * ST, &self.w);
                    let wk = if K <= 3 {
                        self.wv[ky][kx]
                    } else {
                        s.splat(w[ky][kx])
                    };
                    for (a, &xv) in accr.iter_mut().zip(&xv) {
                        *a = s.fma(*a, wk, xv);
                    }
                }
            }
        }
    }
}
