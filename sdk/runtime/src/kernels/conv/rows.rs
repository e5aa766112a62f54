//! Zero-padded (and, for stride 2, de-interleaved) copies of input rows, for the
//! convolutions vectorised along the output row ([depthwise](crate::kernels::dwconv) and
//! [direct](super::direct)).
//!
//! A kernel tap `kx` of output column `ox` reads input column `ox * ST + kx - pad_left`.
//! Copying the columns an output strip reads into a slot, with zeros where the padding is,
//! makes every tap of every output vector an in-bounds, unconditional vector load: the
//! borders need no separate code. For `ST = 2` the slot is split into two *phases*, the
//! even and the odd columns, so that tap `kx` reads phase `kx % 2` at offset `ox + kx / 2`:
//! a contiguous load instead of a strided gather. (The copy is plain Rust inside the ISA's
//! `#[target_feature]` context; LLVM turns the de-interleave into shuffles.)
//!
//! The slots form a ring of `K` rows per channel indexed by `input row % K`: moving to the
//! next output row copies only the `ST` input rows it has not seen yet.

use crate::kernels::simd::Simd;

/// Copies input columns `[ix0, ix0 + need)` of `xrow` (zero outside the row) into `slot`
/// as `ST` phases of `pw` values: phase `p` holds columns `ix0 + p, ix0 + p + ST, ...`.
/// Positions past `need` keep stale values (they only reach output lanes that are not
/// stored). `pw` is a multiple of `S::LANES` and at least `need / ST + S::LANES`, so a
/// vector stored at any needed position fits.
#[inline(always)]
pub(crate) fn fill_row<S: Simd, const ST: usize>(
    s: S,
    xrow: &[f32],
    ix0: isize,
    need: usize,
    slot: &mut [f32],
    pw: usize,
) {
    fill_row_padded::<S, ST>(s, xrow, ix0, need, slot, pw, 0.0)
}

/// [`fill_row`] with `pad` outside the row instead of zero (max pooling pads with -inf).
#[inline(always)]
pub(crate) fn fill_row_padded<S: Simd, const ST: usize>(
    s: S,
    xrow: &[f32],
    ix0: isize,
    need: usize,
    slot: &mut [f32],
    pw: usize,
    pad: f32,
) {
    let pad = s.splat(pad);
    debug_assert!(need.div_ceil(ST) + S::LANES <= pw, "fill_row: phase width");
    let w = xrow.len() as isize;
    // Positions [lo, hi) of the slot read inside the row.
    let lo = (-ix0).clamp(0, need as isize) as usize;
    let hi = (w - ix0).clamp(lo as isize, need as isize) as usize;
    let src: &[f32] = if hi > lo {
        &xrow[(ix0 + lo as isize) as usize..][..hi - lo]
    } else {
        &[]
    };
    match ST {
        1 => {
            let slot = &mut slot[..pw];
            fill(s, slot, 0, lo, pad);
            copy(s, &mut slot[lo..hi], src);
            fill(s, slot, hi, need, pad);
        }
        2 => {
            let (even, odd) = slot[..2 * pw].split_at_mut(pw);
            // Even position 2i is in [a, b) when a <= 2i < b, i.e. ceil(a/2) <= i < ceil(b/2);
            // odd position 2i + 1 when a/2 <= i < b/2 (floor).
            fill(s, even, 0, lo.div_ceil(2), pad);
            fill(s, odd, 0, lo / 2, pad);
            let (mut at, mut src) = (lo, src);
            if at % 2 == 1
                && let [first, rest @ ..] = src
            {
                odd[at / 2] = *first;
                (at, src) = (at + 1, rest);
            }
            let m = src.len() / 2;
            let base = at / 2;
            deinterleave(
                &src[..2 * m],
                &mut even[base..base + m],
                &mut odd[base..base + m],
            );
            if src.len() % 2 == 1 {
                even[base + m] = src[2 * m];
            }
            fill(s, even, hi.div_ceil(2), need.div_ceil(2), pad);
            fill(s, odd, hi / 2, need / 2, pad);
        }
        _ => unreachable!("fill_row: stride {ST} has no row layout"),
    }
}

/// Pairs of values per de-interleaving block.
const BLOCK: usize = 8;

/// `even[i] = pairs[2i]`, `odd[i] = pairs[2i + 1]`, in fixed blocks of [`BLOCK`] pairs
/// (the last one overlapping its predecessor) that LLVM's SLP vectoriser turns into
/// shuffles; its loop vectoriser left a scalar remainder of up to 31 pairs per row, which
/// cost more than the stride-2 taps themselves on 112-column rows.
#[inline(always)]
fn deinterleave(pairs: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let m = even.len();
    if m < BLOCK {
        for i in 0..m {
            even[i] = pairs[2 * i];
            odd[i] = pairs[2 * i + 1];
        }
        return;
    }
    let mut i = 0;
    while i + BLOCK <= m {
        deinterleave_block(pairs, even, odd, i);
        i += BLOCK;
    }
    if i < m {
        deinterleave_block(pairs, even, odd, m - BLOCK);
    }
}

/// One block of [`deinterleave`] at pair `from` (a function, not a closure: a closure LLVM
/// does not inline is compiled without the ISA's features, and is scalar).
#[inline(always)]
fn deinterleave_block(pairs: &[f32], even: &mut [f32], odd: &mut [f32], from: usize) {
    let p: &[f32; 2 * BLOCK] = pairs[2 * from..][..2 * BLOCK].try_into().unwrap();
    let e: &mut [f32; BLOCK] = (&mut even[from..from + BLOCK]).try_into().unwrap();
    let o: &mut [f32; BLOCK] = (&mut odd[from..from + BLOCK]).try_into().unwrap();
    for i in 0..BLOCK {
        e[i] = p[2 * i];
        o[i] = p[2 * i + 1];
    }
}

/// `phase[from..to] = v`, by whole vectors from `from` (there is room for one past `to`);
/// usually one store. (A `fill` becomes a `memset` call, slow for a few values.)
#[inline(always)]
fn fill<S: Simd>(s: S, phase: &mut [f32], from: usize, to: usize, v: S::V) {
    let mut at = from;
    while at < to {
        s.store(v, &mut phase[at..at + S::LANES]);
        at += S::LANES;
    }
}

/// `dst = src` with vector loads and stores, the last vector overlapping its predecessor
/// (`copy_from_slice` becomes a `memcpy` call, slow for short rows).
#[inline(always)]
pub(crate) fn copy<S: Simd>(s: S, dst: &mut [f32], src: &[f32]) {
    let (n, l) = (dst.len(), S::LANES);
    if n < l {
        return copy_short(dst, src);
    }
    for (d, v) in dst.chunks_exact_mut(l).zip(src.chunks_exact(l)) {
        s.store(s.load(v), d);
    }
    if !n.is_multiple_of(l) {
        s.store(s.load(&src[n - l..]), &mut dst[n - l..]);
    }
}

/// `dst = src` for fewer than 16 values, with fixed-size (overlapping) moves.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32], at: usize) {
        let d: &mut [f32; N] = (&mut dst[at..at + N]).try_into().unwrap();
        *d = src[at..at + N].try_into().unwrap();
    }
    let n = dst.len();
    if n >= 8 {
        fixed::<8>(dst, src, 0);
        fixed::<8>(dst, src, n - 8);
    } else if n >= 4 {
        fixed::<4>(dst, src, 0);
        fixed::<4>(dst, src, n - 4);
    } else {
        for (d, &v) in dst.iter_mut().zip(src).take(3) {
            *d = v;
        }
    }
}

/// A ring of padded input rows: for each of `channels` planes, `K` slots of `ST` phases of
/// `pw` values, holding the same input rows for every channel.
pub(crate) struct RowRing<'b, const K: usize, const ST: usize> {
    buf: &'b mut [f32],
    channels: usize,
    pw: usize,
    /// The strip: its first input column and how many columns (positions) it reads.
    ix0: isize,
    need: usize,
    /// The input row each slot holds (`isize::MIN`: none).
    held: [isize; K],
}

impl<'b, const K: usize, const ST: usize> RowRing<'b, K, ST> {
    /// Values of `buf` a ring of `channels` planes with phases of `pw` values uses (with
    /// one all-zero slot after the planes).
    #[inline(always)]
    pub(crate) fn len(channels: usize, pw: usize) -> usize {
        (channels * K + 1) * ST * pw
    }

    /// An empty ring over `buf` (at least [`RowRing::len`] values).
    #[inline(always)]
    pub(crate) fn new(buf: &'b mut [f32], channels: usize, pw: usize) -> Self {
        assert!(buf.len() >= Self::len(channels, pw), "row ring: buffer");
        buf[channels * K * ST * pw..][..ST * pw].fill(0.0);
        RowRing {
            buf,
            channels,
            pw,
            ix0: 0,
            need: 0,
            held: [isize::MIN; K],
        }
    }

    /// Starts a strip (or new planes): forgets every row; rows will hold input columns
    /// `[ix0, ix0 + need)` (`need / ST + LANES <= pw`).
    #[inline(always)]
    pub(crate) fn start(&mut self, ix0: isize, need: usize) {
        (self.ix0, self.need) = (ix0, need);
        self.held = [isize::MIN; K];
    }

    /// Makes input rows `iy0 .. iy0 + K` of the planes `x` (`[channels, in_h, in_w]`)
    /// available. Returns the slot of each kernel row, `None` for rows in the vertical
    /// padding.
    #[inline(always)]
    pub(crate) fn advance<S: Simd>(
        &mut self,
        s: S,
        x: &[f32],
        [in_h, in_w]: [usize; 2],
        iy0: isize,
    ) -> [Option<usize>; K] {
        let mut slots = [None; K];
        let slot_len = ST * self.pw;
        for (ky, out) in slots.iter_mut().enumerate() {
            let iy = iy0 + ky as isize;
            if iy < 0 || iy >= in_h as isize {
                continue;
            }
            let slot = iy as usize % K;
            if self.held[slot] != iy {
                self.held[slot] = iy;
                for c in 0..self.channels {
                    let xrow = &x[(c * in_h + iy as usize) * in_w..][..in_w];
                    let at = (c * K + slot) * slot_len;
                    let slot = &mut self.buf[at..at + slot_len];
                    fill_row::<S, ST>(s, xrow, self.ix0, self.need, slot, self.pw);
                }
            }
            *out = Some(slot);
        }
        slots
    }

    /// The whole ring, for kernels that address it with [`RowRing::offset`].
    #[inline(always)]
    pub(crate) fn data(&self) -> &[f32] {
        &self.buf[..Self::len(self.channels, self.pw)]
    }

    /// Where the slot `slot` of channel `c` starts in [`RowRing::data`]; `None` (a row in
    /// the vertical padding) gives the zero slot.
    #[inline(always)]
    pub(crate) fn offset(&self, c: usize, slot: Option<usize>) -> usize {
        let slot_len = ST * self.pw;
        match slot {
            Some(slot) => (c * K + slot) * slot_len,
            None => self.channels * K * slot_len,
        }
    }

    /// The slot `slot` of channel `c`: `ST` phases of `pw` values.
    #[inline(always)]
    pub(crate) fn slot(&self, c: usize, slot: usize) -> &[f32] {
        let slot_len = ST * self.pw;
        &self.buf[(c * K + slot) * slot_len..][..slot_len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::reference::for_each_simd;

    /// The first `need` positions of the slot hold columns `ix0 ..` of `row` (zero outside).
    fn expect(slot: &[f32], st: usize, pw: usize, ix0: isize, need: usize, row: &[f32]) {
        for p in 0..need {
            let v = slot[p % st * pw + p / st];
            let col = ix0 + p as isize;
            let want = usize::try_from(col).ok().and_then(|c| row.get(c)).copied();
            assert_eq!(v, want.unwrap_or(0.0), "position {p} (column {col})");
        }
    }

    fn fill_cases<S: Simd>(s: S) {
        let pw = 64;
        let mut slot = vec![f32::NAN; 2 * pw];
        for len in [1, 3, 7, 16, 17, 31, 40] {
            let x: Vec<f32> = (1..=len).map(|v| v as f32).collect();
            for ix0 in [-20, -3, -2, -1, 0, 1, 2, 5, 9, 40] {
                for need in [1, 2, 5, 16, 33, 48] {
                    fill_row::<S, 1>(s, &x, ix0, need, &mut slot, pw);
                    expect(&slot, 1, pw, ix0, need, &x);
                    fill_row::<S, 2>(s, &x, ix0, need, &mut slot, pw);
                    expect(&slot, 2, pw, ix0, need, &x);
                }
            }
        }
        // A long row: vector copies and de-interleaving blocks, the last overlapping.
        let x: Vec<f32> = (0..101).map(|v| v as f32).collect();
        let mut slot = vec![f32::NAN; 2 * 80];
        fill_row::<S, 2>(s, &x, -1, 120, &mut slot, 80);
        expect(&slot, 2, 80, -1, 120, &x);
        fill_row::<S, 1>(s, &x, -2, 140, &mut slot, 160);
        expect(&slot, 1, 160, -2, 140, &x);
    }

    fn ring_cases<S: Simd>(s: S) {
        // Two 4x3 planes; 3x3 kernel, stride 2, top pad 1.
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let pw = 32;
        let mut buf = vec![0.0; RowRing::<3, 2>::len(2, pw)];
        let mut ring = RowRing::<3, 2>::new(&mut buf, 2, pw);
        ring.start(-1, 5);
        let slots = ring.advance(s, &x, [4, 3], -1);
        assert_eq!(slots, [None, Some(0), Some(1)]);
        // Channel 1, row 1 (values 15, 16, 17) from column -1: even -1, 1, .. odd 0, 2, ..
        assert_eq!(ring.slot(1, 1)[..2], [0., 16.]);
        assert_eq!(ring.slot(1, 1)[pw..pw + 3], [15., 17., 0.]);
        let slots = ring.advance(s, &x, [4, 3], 1);
        assert_eq!(slots, [Some(1), Some(2), Some(0)]);
        // Slot 0 now holds channel 0, row 3 (9, 10, 11).
        assert_eq!(ring.slot(0, 0)[pw..pw + 2], [9.0, 11.0]);
    }

    #[test]
    fn fill_row_pads_and_deinterleaves() {
        for_each_simd!(fill_cases);
    }

    #[test]
    fn ring_copies_each_row_once() {
        for_each_simd!(ring_cases);
    }
}
