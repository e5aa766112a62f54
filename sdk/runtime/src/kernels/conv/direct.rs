//! Direct full and grouped `K`x`K` convolutions (stride `ST` 1 or 2, dilation 1, any
//! padding) vectorised along the output row, generic over [`Simd`].
//!
//! An implicit GEMM: the register tile is the pointwise kernels' one, `R` output channels x
//! `NV` output vectors (8 x 3 on 32 registers, 4 x 2 on AVX2's 16: 4 x 3 spilled, 45 vs 90
//! GFLOP/s), accumulated over the `taps = input channels x K x K` of the group with one
//! broadcast weight per output channel and `NV` loads per tap, then bias and activation in
//! registers and one store per vector. The loads come from a [`RowRing`] holding the
//! zero-padded (for stride 2 de-interleaved) input rows of every input channel of the
//! group, each input row copied once per column strip, so no tap ever checks a border: an
//! im2col that keeps one copy of each row instead of `K * K` shifted ones. A tap's vector is
//! read at an offset from a per-band table (input channel, kernel row -> ring slot; kernel
//! column -> phase and shift), so the loop over taps is the GEMM's loop over K.
//!
//! Output rows go in bands of [`RH`]. A tile is `NV` consecutive vectors of one row (one
//! table lookup per tap) while the row has them; the rest of the band's vectors (each row
//! covered by whole vectors, the last one overlapping its predecessor with bit-identical
//! values) are grouped `NV` at a time from anywhere in the band, so tiles stay full on the
//! narrow planes of the late layers (13 columns) as on wide ones: `R` x 3 vectors of one
//! row left 13-column planes at 70-100 GFLOP/s (AVX-512), these reach 180.
//!
//! The ring is a 64 KiB stack array; wider rows are cut into strips, and groups with more
//! input channels than fit into blocks whose partial sums go through the output (the last
//! block applies the activation). Weights are packed as `[taps][R]` panels (a 64 KiB stack
//! array, once per channel block for every zoo model) so that a tap's `R` weights are
//! contiguous: no faster on x86-64 (the broadcasts hit L1 either way), but NEON loads them
//! as `R / 4` vectors and multiplies by element, where the OIHW rows in place cost one
//! scalar load and one bounds check per weight (the stem: 62 instructions per 24 FMAs).
//! Each tap's `NV` vectors are one [`Simd::load_n`] (NEON: `ldp` pairs), unchecked: a
//! tile checks its largest tap offset once ([`Taps`]), and row tiles take two taps per
//! iteration. NEON, SqueezeNet: 177.9 -> 157.4 M instructions per inference (the 3x3
//! expand layers' loop 38 -> 30.5 instructions per 24 FMAs).

use std::array::from_fn;

use super::epilogue::activate;
use super::rows::RowRing;
use crate::kernels::simd::{Simd, SimdKernel, VecActivation, outer_fma};
use crate::kernels::{ConvGeom, Epilogue};

/// Ring buffer values: 64 KiB on the stack.
const RING: usize = 16384;

/// Widest strip of output columns.
const STRIP: usize = 256;

/// Output rows per band.
const RH: usize = 3;

/// Most taps (input channels x K x K) of one channel block: sizes the offset table.
const MAX_TAPS: usize = 1152;

/// Packed weights (values, 64 KiB on the stack): `[taps][R]` panels of output channels.
const PACK: usize = 16384;

const _: () = assert!(PACK >= MAX_TAPS * 8, "a panel of 8 channels fits");

/// Packs the weights of output channels `o0..o1` (input channels `ic0..` of the
/// `icpg` of their group, `kk` taps each: `taps` taps per channel) as `[taps][R]`
/// panels of `R` channels, so that a tap's `R` weights are one contiguous load; a last
/// panel's channels past `o1` repeat its first (computed, not stored).
#[inline(always)]
fn pack_weights<const R: usize>(
    packed: &mut [f32],
    w: &[f32],
    [o0, o1]: [usize; 2],
    [icpg, ic0, kk]: [usize; 3],
    taps: usize,
) {
    for (p, panel) in (o0..o1).step_by(R).zip(packed.chunks_exact_mut(R * taps)) {
        for r in 0..R {
            let o = if p + r < o1 { p + r } else { p };
            let src = &w[(o * icpg + ic0) * kk..][..taps];
            for (dst, &v) in panel.as_chunks_mut::<R>().0.iter_mut().zip(src) {
                dst[r] = v;
            }
        }
    }
}

/// A checked direct convolution.
pub(super) struct DirectConv<'a, const K: usize, const ST: usize> {
    pub g: &'a ConvGeom,
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub epi: &'a Epilogue<'a>,
    pub y: &'a mut [f32],
}

impl<const K: usize, const ST: usize> SimdKernel for DirectConv<'_, K, ST> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // R x NV accumulators, NV loaded vectors and a broadcast weight in the register
        // file (as the pointwise tile); bands of RH rows read windows of W = K + 2 ST rows.
        match (K, ST, S::REGISTERS >= 32) {
            (3, 1, true) => self.conv::<S, 8, 3, 5>(s),
            (3, 2, true) => self.conv::<S, 8, 3, 7>(s),
            (3, 1, false) => self.conv::<S, 4, 2, 5>(s),
            (3, 2, false) => self.conv::<S, 4, 2, 7>(s),
            _ => unreachable!("direct convolution {K}x{K} stride {ST} has no fast path"),
        }
    }
}

/// How a convolution is cut so that the ring fits [`RING`] and the taps [`MAX_TAPS`]:
/// strips of output columns, ring phases of `pw` values, blocks of `icb` input channels.
#[derive(Clone, Copy, Debug)]
struct Cut {
    strip: usize,
    pw: usize,
    icb: usize,
}

impl Cut {
    /// For windows of `w` rows (stride `st`, kernel `k`x`k`).
    fn new(out_w: usize, icpg: usize, [k, st, w]: [usize; 3], lanes: usize) -> Self {
        let pw = |n: usize| (n + k + lanes).next_multiple_of(lanes);
        // Values of `n` channels (and the zero slot) for strips of `strip` columns.
        let ring = |channels: usize, strip: usize| (channels * w + 1) * st * pw(strip);
        let max_icb = (MAX_TAPS / (k * k)).max(1);
        let mut strip = out_w.min(STRIP);
        // Narrower strips before channel blocks (which send partial sums through memory),
        // down to 4 vectors.
        while strip > 4 * lanes && ring(icpg.min(max_icb), strip) > RING {
            strip = (strip / 2).max(4 * lanes);
        }
        let mut icb = icpg.min(max_icb);
        while icb > 1 && ring(icb, strip) > RING {
            icb = icb.div_ceil(2);
        }
        Cut {
            strip,
            pw: pw(strip),
            icb,
        }
    }
}

/// One output vector of a band: band row `h`, strip column `c`, `m` columns stored.
#[derive(Clone, Copy, Debug)]
struct Vect {
    h: usize,
    c: usize,
    m: usize,
}

impl<const K: usize, const ST: usize> DirectConv<'_, K, ST> {
    #[inline(always)]
    fn conv<S: Simd, const R: usize, const NV: usize, const W: usize>(self, s: S) {
        debug_assert_eq!(W, K + (RH - 1) * ST, "direct: window rows");
        let DirectConv { g, x, w, epi, y } = self;
        let (icpg, ocpg) = (g.in_c / g.groups, g.out_c / g.groups);
        let (in_hw, ow, ohw, kk) = (g.in_h * g.in_w, g.out_w, g.out_h * g.out_w, K * K);
        let l = S::LANES;
        let act = VecActivation::new(s, epi.activation);
        let cut = Cut::new(ow, icpg, [K, ST, W], l);
        let mut buf = [0.0f32; RING];
        let mut offs = [0u32; RH * MAX_TAPS];
        let mut packed = [0.0f32; PACK];
        for grp in 0..g.groups {
            let xg = &x[grp * icpg * in_hw..][..icpg * in_hw];
            for ox0 in (0..ow).step_by(cut.strip) {
                let n = cut.strip.min(ow - ox0);
                let ix0 = (ox0 * ST) as isize - g.pads[1] as isize;
                for ic0 in (0..icpg).step_by(cut.icb) {
                    let nb = cut.icb.min(icpg - ic0);
                    let (first, last) = (ic0 == 0, ic0 + nb == icpg);
                    // Overlapping vectors and bands recompute values: only when no partial
                    // sum is read back.
                    let single = first && last;
                    let xb = &xg[ic0 * in_hw..][..nb * in_hw];
                    let taps = nb * kk;
                    // Output channels whose packed weights fit PACK, all at once (every
                    // zoo model's convolutions but the widest: one pass).
                    let opass = (PACK / (taps * R) * R).min(ocpg.next_multiple_of(R));
                    for ob0 in (0..ocpg).step_by(opass) {
                        let ob1 = (ob0 + opass).min(ocpg);
                        pack_weights::<R>(
                            &mut packed,
                            w,
                            [grp * ocpg + ob0, grp * ocpg + ob1],
                            [icpg, ic0, kk],
                            taps,
                        );
                        let mut ring = RowRing::<W, ST>::new(&mut buf, nb, cut.pw);
                        ring.start(s, ix0, (n - 1) * ST + K, g.in_w);
                        // Per band row: `full` whole vectors at multiples of LANES (row tiles
                        // of NV of them), and a last partial one.
                        let full = n / l;
                        let ncols = n.div_ceil(l);
                        let row_tiles = full / NV;
                        let left_per_row = ncols - row_tiles * NV;
                        let vect = |h: usize, j: usize| {
                            let c = j * l;
                            match (single && n >= l, n - c < l) {
                                (true, true) => Vect { h, c: n - l, m: l },
                                _ => Vect {
                                    h,
                                    c,
                                    m: l.min(n - c),
                                },
                            }
                        };
                        let left =
                            |i: usize| vect(i / left_per_row, row_tiles * NV + i % left_per_row);
                        let mut oy = 0;
                        while oy < g.out_h {
                            // Bands of RH rows; the last ends at the plane's end, overlapping
                            // its predecessor, unless partial sums are read back.
                            let band = match oy + RH <= g.out_h || !single {
                                true => oy,
                                false => g.out_h.saturating_sub(RH),
                            };
                            let rh = RH.min(g.out_h - band);
                            let iy0 = (band * ST) as isize - g.pads[0] as isize;
                            let slots = ring.advance(s, xb, [g.in_h, g.in_w], iy0);
                            // offs[h][ic, ky, kx]: where output row h's tap starts in the ring.
                            for (h, oh) in offs.chunks_exact_mut(MAX_TAPS).take(rh).enumerate() {
                                let taps_h = oh[..taps].as_chunks_mut::<K>().0;
                                for (t, row) in taps_h.iter_mut().enumerate() {
                                    let (ic, ky) = (t / K, t % K);
                                    let at = ring.offset(ic, slots[h * ST + ky]);
                                    for (kx, o) in row.iter_mut().enumerate() {
                                        *o = (at + (kx % ST) * cut.pw + kx / ST) as u32;
                                    }
                                }
                            }
                            let rows_taps: [Taps; RH] =
                                from_fn(|h| Taps::new(&offs[h * MAX_TAPS..][..taps]));
                            let nleft = rh * left_per_row;
                            for o0 in (ob0..ob1).step_by(R) {
                                let o = grp * ocpg + o0;
                                let rows = R.min(ocpg - o0);
                                let wr = packed[(o0 - ob0) * taps..][..R * taps].as_chunks::<R>().0;
                                let out = Out {
                                    bias: from_fn(|r| match epi.bias {
                                        Some(b) if r < rows => s.splat(b[o + r]),
                                        _ => s.zero(),
                                    }),
                                    act: &act,
                                    rows,
                                    first,
                                    last,
                                    plane: ohw,
                                    ow,
                                    base: band * ow + ox0,
                                };
                                let yt = &mut y[o * ohw..(o + rows) * ohw];
                                let buf = ring.data();
                                // Row tiles: NV consecutive vectors, one offset per tap.
                                for (h, &oh) in rows_taps[..rh].iter().enumerate() {
                                    for t in 0..row_tiles {
                                        let c = t * NV * l;
                                        let vs: [Vect; NV] = from_fn(|v| Vect {
                                            h,
                                            c: c + v * l,
                                            m: l,
                                        });
                                        let acc = out.init::<NV>(s, yt, &vs);
                                        let acc = tile_row::<S, R, NV>(s, buf, oh, c, wr, acc);
                                        out.store(s, acc, yt, &vs);
                                    }
                                }
                                // The rest, NV vectors from anywhere in the band (a short last
                                // tile repeats its last vector).
                                for t0 in (0..nleft).step_by(NV) {
                                    let vs: [Vect; NV] = from_fn(|v| left((t0 + v).min(nleft - 1)));
                                    let acc = out.init::<NV>(s, yt, &vs);
                                    let vo: [Taps; NV] = from_fn(|v| rows_taps[vs[v].h]);
                                    let cs = vs.map(|v| v.c);
                                    let acc = tile::<S, R, NV>(s, buf, vo, cs, wr, acc);
                                    out.store(s, acc, yt, &vs);
                                }
                            }
                            oy = band + rh;
                        }
                    }
                }
            }
        }
    }
}

/// One output row's tap offsets into the ring and the largest of them, found once per band
/// row so that a tile checks its reads once, not once per tap.
#[derive(Clone, Copy)]
struct Taps<'a> {
    offs: &'a [u32],
    max: usize,
}

impl<'a> Taps<'a> {
    fn new(offs: &'a [u32]) -> Self {
        let max = offs.iter().max().map_or(0, |&m| m as usize);
        Taps { offs, max }
    }
}

/// Adds every tap to the `R` x `NV` tile of consecutive vectors: tap `k` reads
/// `NV * LANES` values of `buf` from `offs[k] + c`, weighted by `w[k][r]` for output
/// channel `r`.
#[inline(always)]
fn tile_row<S: Simd, const R: usize, const NV: usize>(
    s: S,
    buf: &[f32],
    taps: Taps,
    c: usize,
    w: &[[f32; R]],
    mut acc: [[S::V; NV]; R],
) -> [[S::V; NV]; R] {
    let span = NV * S::LANES;
    assert!(
        taps.max + c + span <= buf.len(),
        "direct: a tap reads past the ring"
    );
    let inputs = |o: u32| {
        let at = o as usize + c;
        // SAFETY: `o <= taps.max` (`Taps::new`), so `at + span <= buf.len()` (the assert).
        s.load_n::<NV>(unsafe { buf.get_unchecked(at..at + span) })
    };
    // Two taps per iteration: half the loop and address overhead (NEON, SqueezeNet's 3x3
    // expand layers: 33 -> 30.5 instructions per 24 FMAs).
    let (offs2, offs_rest) = taps.offs.as_chunks::<2>();
    let (w2, w_rest) = w.as_chunks::<2>();
    for (&[o0, o1], [w0, w1]) in offs2.iter().zip(w2) {
        let (x0, x1) = (inputs(o0), inputs(o1));
        outer_fma(s, &mut acc, w0, x0);
        outer_fma(s, &mut acc, w1, x1);
    }
    for (&o, wk) in offs_rest.iter().zip(w_rest) {
        outer_fma(s, &mut acc, wk, inputs(o));
    }
    acc
}

/// Adds every tap to the `R` x `NV` tile: vector `v` of tap `k` is `LANES` values of `buf`
/// from `taps[v].offs[k] + cs[v]`, weighted by `w[k][r]` for output channel `r`.
#[inline(always)]
fn tile<S: Simd, const R: usize, const NV: usize>(
    s: S,
    buf: &[f32],
    taps: [Taps; NV],
    cs: [usize; NV],
    w: &[[f32; R]],
    mut acc: [[S::V; NV]; R],
) -> [[S::V; NV]; R] {
    let l = S::LANES;
    let n = w.len();
    for (t, &c) in taps.iter().zip(&cs) {
        assert!(
            t.max + c + l <= buf.len(),
            "direct: a tap reads past the ring"
        );
    }
    let offs = taps.map(|t| &t.offs[..n]);
    // One counter, one exit (see the pointwise tile): the tile stays in registers.
    for (k, wk) in w.iter().enumerate() {
        let xv: [S::V; NV] = from_fn(|v| {
            let at = offs[v][k] as usize + cs[v];
            // SAFETY: `offs[v][k] <= taps[v].max` (`Taps::new`), so `at + l <= buf.len()`
            // (the asserts above).
            s.load(unsafe { buf.get_unchecked(at..at + l) })
        });
        outer_fma(s, &mut acc, wk, xv);
    }
    acc
}

/// Output side of a band's tiles: bias, activation, how many output channels are real,
/// and whether this channel block is the first (start from the bias) and the last
/// (activate) of the sum.
struct Out<'a, S: Simd, const R: usize> {
    bias: [S::V; R],
    act: &'a VecActivation<S>,
    rows: usize,
    first: bool,
    last: bool,
    /// Output plane size, row width, and the band's first value in a plane.
    plane: usize,
    ow: usize,
    base: usize,
}

impl<S: Simd, const R: usize> Out<'_, S, R> {
    /// Where vector `v` is in a plane of `y`.
    #[inline(always)]
    fn at(&self, v: &Vect) -> usize {
        self.base + v.h * self.ow + v.c
    }

    /// The accumulators of a tile: the bias, or the partial sums of the previous channel
    /// blocks.
    #[inline(always)]
    fn init<const NV: usize>(&self, s: S, y: &[f32], vs: &[Vect; NV]) -> [[S::V; NV]; R] {
        if self.first {
            return from_fn(|r| [self.bias[r]; NV]);
        }
        from_fn(|r| {
            let yp = &y[r.min(self.rows - 1) * self.plane..][..self.plane];
            from_fn(|v| {
                let ys = &yp[self.at(&vs[v])..][..vs[v].m];
                if vs[v].m == S::LANES {
                    s.load(ys)
                } else {
                    s.load_partial(ys)
                }
            })
        })
    }

    /// Activates (last block) and stores the tile's vectors for the real output channels.
    #[inline(always)]
    fn store<const NV: usize>(
        &self,
        s: S,
        mut acc: [[S::V; NV]; R],
        y: &mut [f32],
        vs: &[Vect; NV],
    ) {
        if self.last {
            activate(s, self.act, acc.as_flattened_mut());
        }
        for (yp, accr) in y.chunks_exact_mut(self.plane).zip(&acc).take(self.rows) {
            for (v, &a) in vs.iter().zip(accr) {
                let ys = &mut yp[self.at(v)..][..v.m];
                if v.m == S::LANES {
                    s.store(a, ys);
                } else {
                    s.store_partial(a, ys);
                }
            }
        }
    }
}
