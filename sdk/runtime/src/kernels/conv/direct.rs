//! Direct full and grouped `K`x`K` convolutions (stride `ST` 1 or 2, dilation 1, any
//! padding) vectorised along the output row, generic over [`Simd`].
//!
//! The register tile is the pointwise kernels' one turned sideways: `R` output channels x
//! `NV` vectors of one output row, accumulated over every (input channel, kernel row,
//! kernel column) of the group with one broadcast weight per channel and `NV` loads per
//! step, then bias and activation in registers and one store per vector. The loads come
//! from a [`RowRing`] holding the zero-padded (for stride 2 de-interleaved) input rows of
//! every input channel of the group, each input row copied once per column strip, so no
//! tap ever checks a border: an im2col that keeps one copy of each row instead of `K * K`
//! shifted ones. The ring is a 64 KiB stack array; wider rows are cut into strips, and
//! groups with more input channels than fit into blocks whose partial sums go through the
//! output (the last block applies the activation).

use std::array::from_fn;

use super::epilogue::activate;
use super::rows::RowRing;
use crate::kernels::simd::{Simd, SimdKernel, VecActivation};
use crate::kernels::{ConvGeom, Epilogue};

/// Ring buffer values: 64 KiB on the stack.
const RING: usize = 16384;

/// Widest strip of output columns.
const STRIP: usize = 256;

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
        // R x NV accumulators, NV loaded vectors and a broadcast weight in the register file.
        if S::REGISTERS >= 32 {
            self.conv::<S, 8, 3>(s)
        } else {
            self.conv::<S, 4, 3>(s)
        }
    }
}

/// How a convolution is cut so that the ring fits [`RING`]: strips of output columns,
/// ring phases of `pw` values, blocks of `icb` input channels.
#[derive(Clone, Copy, Debug)]
struct Cut {
    strip: usize,
    pw: usize,
    icb: usize,
}

impl Cut {
    fn new(out_w: usize, icpg: usize, k: usize, st: usize, lanes: usize) -> Self {
        let pw = |n: usize| (n + k + lanes).next_multiple_of(lanes);
        let mut strip = out_w.min(STRIP);
        // Narrower strips before channel blocks (which send partial sums through memory),
        // down to 4 vectors.
        while strip > 4 * lanes && icpg * k * st * pw(strip) > RING {
            strip = (strip / 2).max(4 * lanes);
        }
        let icb = (RING / (k * st * pw(strip))).clamp(1, icpg);
        Cut {
            strip,
            pw: pw(strip),
            icb,
        }
    }
}

impl<const K: usize, const ST: usize> DirectConv<'_, K, ST> {
    #[inline(always)]
    fn conv<S: Simd, const R: usize, const NV: usize>(self, s: S) {
        let DirectConv { g, x, w, epi, y } = self;
        let (icpg, ocpg) = (g.in_c / g.groups, g.out_c / g.groups);
        let (in_hw, ow, ohw, kk) = (g.in_h * g.in_w, g.out_w, g.out_h * g.out_w, K * K);
        let act = VecActivation::new(s, epi.activation);
        let cut = Cut::new(ow, icpg, K, ST, S::LANES);
        let mut buf = [0.0f32; RING];
        for grp in 0..g.groups {
            let xg = &x[grp * icpg * in_hw..][..icpg * in_hw];
            for ox0 in (0..ow).step_by(cut.strip) {
                let n = cut.strip.min(ow - ox0);
                let ix0 = (ox0 * ST) as isize - g.pads[1] as isize;
                for ic0 in (0..icpg).step_by(cut.icb) {
                    let nb = cut.icb.min(icpg - ic0);
                    let mut ring = RowRing::<K, ST>::new(&mut buf, nb, cut.pw);
                    ring.start(ix0, (n - 1) * ST + K);
                    let xb = &xg[ic0 * in_hw..][..nb * in_hw];
                    for oy in 0..g.out_h {
                        let iy0 = (oy * ST) as isize - g.pads[0] as isize;
                        let slots = ring.advance(s, xb, [g.in_h, g.in_w], iy0);
                        for o0 in (0..ocpg).step_by(R) {
                            let o = grp * ocpg + o0;
                            let rows = R.min(ocpg - o0);
                            // Rows past the group's last repeat its first: computed, not stored.
                            let wr: [&[f32]; R] = from_fn(|r| {
                                let o = o + if r < rows { r } else { 0 };
                                &w[(o * icpg + ic0) * kk..][..nb * kk]
                            });
                            let taps = Taps {
                                ring: &ring,
                                slots: &slots,
                                w: wr,
                                pw: cut.pw,
                            };
                            let out = Out {
                                bias: from_fn(|r| match epi.bias {
                                    Some(b) if r < rows => s.splat(b[o + r]),
                                    _ => s.zero(),
                                }),
                                act: &act,
                                rows,
                                first: ic0 == 0,
                                last: ic0 + nb == icpg,
                                plane: ohw,
                            };
                            let yt = &mut y[o * ohw..(o + rows) * ohw];
                            columns::<S, K, ST, R, NV>(s, &taps, &out, yt, oy * ow + ox0, n);
                        }
                    }
                }
            }
        }
    }
}

/// The inputs of one output row's tiles: ring rows of the block's channels, and the
/// weights of the tile's `R` output channels for those channels (`[nb, K, K]` each).
struct Taps<'r, 'b, const K: usize, const ST: usize, const R: usize> {
    ring: &'r RowRing<'b, K, ST>,
    slots: &'r [Option<usize>; K],
    w: [&'r [f32]; R],
    pw: usize,
}

/// Output side of a tile: bias, activation, how many rows are real, and whether this
/// channel block is the first (start from the bias) and the last (activate) of the sum.
struct Out<'a, S: Simd, const R: usize> {
    bias: [S::V; R],
    act: &'a VecActivation<S>,
    rows: usize,
    first: bool,
    last: bool,
    plane: usize,
}

/// One output row segment (`n` columns from `base` in each plane of `y`): tiles of `NV`
/// vectors, then single vectors. With a single channel block the last tile ends at the
/// row's end, overlapping its predecessor (bit-identical values); otherwise (partial sums
/// are read back) the tail is done exactly, with partial loads and stores.
#[inline(always)]
fn columns<S: Simd, const K: usize, const ST: usize, const R: usize, const NV: usize>(
    s: S,
    taps: &Taps<K, ST, R>,
    out: &Out<S, R>,
    y: &mut [f32],
    base: usize,
    n: usize,
) {
    let (l, tw) = (S::LANES, NV * S::LANES);
    let single = out.first && out.last;
    let mut ox = 0;
    while ox + tw <= n {
        let acc = taps.tile::<S, NV>(s, out.init::<NV>(s, y, base + ox, tw), ox);
        out.store(s, acc, y, base + ox, tw);
        ox += tw;
    }
    if ox == n {
        return;
    }
    if single && n >= tw && n - ox > tw - l {
        let at = n - tw;
        let acc = taps.tile::<S, NV>(s, out.init::<NV>(s, y, base + at, tw), at);
        return out.store(s, acc, y, base + at, tw);
    }
    while ox + l <= n {
        let acc = taps.tile::<S, 1>(s, out.init::<1>(s, y, base + ox, l), ox);
        out.store(s, acc, y, base + ox, l);
        ox += l;
    }
    if ox < n {
        let (at, m) = if single && n >= l {
            (n - l, l)
        } else {
            (ox, n - ox)
        };
        let acc = taps.tile::<S, 1>(s, out.init::<1>(s, y, base + at, m), at);
        out.store(s, acc, y, base + at, m);
    }
}

impl<const K: usize, const ST: usize, const R: usize> Taps<'_, '_, K, ST, R> {
    /// Adds the taps of every channel of the block to `acc` (`NV` vectors from strip
    /// column `ox`).
    #[inline(always)]
    fn tile<S: Simd, const NV: usize>(
        &self,
        s: S,
        mut acc: [[S::V; NV]; R],
        ox: usize,
    ) -> [[S::V; NV]; R] {
        let l = S::LANES;
        let kk = K * K;
        for (ic, plane) in (0..self.w[0].len() / kk).zip(self.ring.planes()) {
            let wi: [&[[f32; K]; K]; R] = from_fn(|r| {
                let wc = &self.w[r][ic * kk..(ic + 1) * kk];
                wc.as_chunks::<K>().0.try_into().expect("K rows")
            });
            for (ky, slot) in self.slots.iter().enumerate() {
                let Some(slot) = *slot else { continue };
                let row = self.ring.slot_of(plane, slot);
                for kx in 0..K {
                    // Tap kx of column ox reads phase kx % ST at ox + kx / ST.
                    let off = (kx % ST) * self.pw + kx / ST + ox;
                    let xs = &row[off..off + NV * l];
                    let xv: [S::V; NV] = from_fn(|v| s.load(&xs[v * l..]));
                    for (accr, wr) in acc.iter_mut().zip(&wi) {
                        let wb = s.splat(wr[ky][kx]);
                        for (a, &xv) in accr.iter_mut().zip(&xv) {
                            *a = s.fma(*a, wb, xv);
                        }
                    }
                }
            }
        }
        acc
    }
}

impl<S: Simd, const R: usize> Out<'_, S, R> {
    /// The accumulators a tile of `m` columns at `at` starts from: the bias, or the partial
    /// sums of the previous channel blocks.
    #[inline(always)]
    fn init<const NV: usize>(&self, s: S, y: &[f32], at: usize, m: usize) -> [[S::V; NV]; R] {
        if self.first {
            return from_fn(|r| [self.bias[r]; NV]);
        }
        let l = S::LANES;
        from_fn(|r| {
            let r = r.min(self.rows - 1);
            let ys = &y[r * self.plane + at..][..m];
            from_fn(|v| {
                if m == NV * l {
                    s.load(&ys[v * l..])
                } else {
                    s.load_partial(ys)
                }
            })
        })
    }

    /// Activates (last block) and stores `m` columns at `at` of the real rows.
    #[inline(always)]
    fn store<const NV: usize>(
        &self,
        s: S,
        mut acc: [[S::V; NV]; R],
        y: &mut [f32],
        at: usize,
        m: usize,
    ) {
        let l = S::LANES;
        if self.last {
            activate(s, self.act, acc.as_flattened_mut());
        }
        for (yp, accr) in y.chunks_exact_mut(self.plane).zip(&acc).take(self.rows) {
            let ys = &mut yp[at..at + m];
            if m == NV * l {
                for (v, &a) in accr.iter().enumerate() {
                    s.store(a, &mut ys[v * l..]);
                }
            } else {
                s.store_partial(accr[0], ys);
            }
        }
    }
}
