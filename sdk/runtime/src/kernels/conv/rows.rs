//! Zero-padded (and, for stride 2, de-interleaved) copies of input rows, for the
//! convolutions vectorised along the output row ([depthwise](crate::kernels::dwconv) and
//! [direct](super::direct)).
//!
//! A kernel tap `kx` of output column `ox` reads input column `ox * ST + kx - pad_left`.
//! Copying the columns an output strip reads into a slot, with zeros where the padding is,
//! makes every tap of every output vector an in-bounds, unconditional vector load: the
//! borders need no separate code. For `ST = 2` the slot is split into two *phases*, the
//! even and the odd columns, so that tap `kx` reads phase `kx % 2` at offset `ox + kx / 2`:
//! a contiguous load instead of a strided gather; the copy de-interleaves with
//! [`Simd::deinterleave`].
//!
//! All rows of a strip read the same columns, so the padding positions are written once per
//! strip and each row copy writes only its [`Span`]. The direct convolution keeps its rows
//! in a [`RowRing`] of `K` slots per channel indexed by `input row % K`: moving to the next
//! band copies only the input rows it has not seen yet.

use crate::kernels::simd::Simd;

/// The part of a strip's row slots that holds input values: of the padded positions
/// `[0, need)` (input columns `ix0 ..`), positions `[lo, hi)` are inside the input row, the
/// others padding. Every row of a strip has the same span, so the padding is written once
/// per strip ([`fill_all`]) and each row copy writes only the span (a per-row padded copy
/// cost NEON about a hundred instructions a row, more than the taps on 7-column planes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    lo: usize,
    hi: usize,
    /// Input column of position `lo`.
    start: usize,
}

impl Span {
    /// The span of positions `[0, need)` from input column `ix0` over rows of `in_w`.
    #[inline(always)]
    pub(crate) fn new(ix0: isize, need: usize, in_w: usize) -> Self {
        let lo = (-ix0).clamp(0, need as isize) as usize;
        let hi = (in_w as isize - ix0).clamp(lo as isize, need as isize) as usize;
        Span {
            lo,
            hi,
            start: (ix0 + lo as isize).max(0) as usize,
        }
    }

    /// Copies the span's columns of `xrow` into `ST` phases (phase `p` holds positions
    /// `p, p + ST, ...`); the other positions are left as they are.
    #[inline(always)]
    pub(crate) fn copy<S: Simd, const ST: usize>(
        &self,
        s: S,
        xrow: &[f32],
        mut phases: [&mut [f32]; ST],
    ) {
        let Span { lo, hi, start } = *self;
        if hi == lo {
            return;
        }
        let src = &xrow[start..start + (hi - lo)];
        match &mut phases[..] {
            [slot] => copy(s, &mut slot[lo..hi], src),
            [even, odd] => {
                let (mut at, mut src) = (lo, src);
                if at % 2 == 1
                    && let [first, rest @ ..] = src
                {
                    odd[at / 2] = *first;
                    (at, src) = (at + 1, rest);
                }
                let (m, base) = (src.len() / 2, at / 2);
                let (e, o) = (&mut even[base..base + m], &mut odd[base..base + m]);
                deinterleave(s, &src[..2 * m], e, o);
                if src.len() % 2 == 1 {
                    even[base + m] = src[2 * m];
                }
            }
            _ => unreachable!("row copy: stride {ST} has no row layout"),
        }
    }

    /// [`Span::copy`] of the element-wise maximum of `rows` (a window of fewer rows repeats
    /// one: the maximum is the same), read straight from the rows: max pooling's vertical
    /// maxima, with no intermediate row to reload (reloading one, its last vector
    /// overlapping two recent stores, missed store forwarding on every row).
    #[inline(always)]
    pub(crate) fn copy_max<S: Simd, const ST: usize, const K: usize>(
        &self,
        s: S,
        rows: [&[f32]; K],
        mut phases: [&mut [f32]; ST],
    ) {
        let Span { lo, hi, start } = *self;
        let (n, l) = (hi - lo, S::LANES);
        if n == 0 || K == 0 {
            return;
        }
        let rows = rows.map(|r| &r[start..start + n]);
        // The maximum of the rows' value at column `at`.
        let smax = |at: usize| -> f32 { rows.iter().fold(f32::NEG_INFINITY, |m, r| m.max(r[at])) };
        match &mut phases[..] {
            [slot] => {
                let dst = &mut slot[lo..hi];
                if n < l {
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = smax(i);
                    }
                    return;
                }
                let mut at = 0;
                loop {
                    let a = at.min(n - l);
                    s.store(max_at(s, &rows, a), &mut dst[a..a + l]);
                    at += l;
                    if at >= n {
                        break;
                    }
                }
            }
            [even, odd] => {
                let mut at = 0;
                if lo % 2 == 1 {
                    odd[lo / 2] = smax(0);
                    at = 1;
                }
                let (m, base) = ((n - at) / 2, (lo + at) / 2);
                let (e, o) = (&mut even[base..base + m], &mut odd[base..base + m]);
                if m < l {
                    for (j, (e, o)) in e.iter_mut().zip(o.iter_mut()).enumerate() {
                        (*e, *o) = (smax(at + 2 * j), smax(at + 2 * j + 1));
                    }
                } else {
                    let mut j = 0;
                    loop {
                        let p = j.min(m - l);
                        let c = at + 2 * p;
                        let (a, b) = (max_at(s, &rows, c), max_at(s, &rows, c + l));
                        let (ev, ov) = s.deinterleave(a, b);
                        s.store(ev, &mut e[p..p + l]);
                        s.store(ov, &mut o[p..p + l]);
                        j += l;
                        if j >= m {
                            break;
                        }
                    }
                }
                if (n - at) % 2 == 1 {
                    even[base + m] = smax(n - 1);
                }
            }
            _ => unreachable!("row copy: stride {ST} has no row layout"),
        }
    }

    /// Sets the span's positions to zero (a row of the vertical padding in a slot whose
    /// padding is already zero), by whole vectors: positions past the span's end may be
    /// zeroed too, so each phase needs a vector of room past its share of `need`.
    #[inline(always)]
    pub(crate) fn clear<S: Simd, const ST: usize>(&self, s: S, mut phases: [&mut [f32]; ST]) {
        let (lo, hi) = (self.lo, self.hi);
        for (p, phase) in phases.iter_mut().enumerate() {
            // Position i * ST + p is in [lo, hi) when (lo - p) / ST <= i < (hi - p) / ST,
            // rounding up.
            let from = lo.saturating_sub(p).div_ceil(ST);
            let to = hi.saturating_sub(p).div_ceil(ST);
            let mut at = from;
            while at < to {
                s.store(s.zero(), &mut phase[at..at + S::LANES]);
                at += S::LANES;
            }
        }
    }
}

/// `buf = v`, by vectors (a `fill` becomes a `memset` call, slow for short slices).
#[inline(always)]
pub(crate) fn fill_all<S: Simd>(s: S, buf: &mut [f32], v: f32) {
    let vv = s.splat(v);
    let mut chunks = buf.chunks_exact_mut(S::LANES);
    for d in &mut chunks {
        s.store(vv, d);
    }
    for d in chunks.into_remainder() {
        *d = v;
    }
}

/// A slot as its `ST` phases of `pw` values.
#[inline(always)]
pub(crate) fn phases<const ST: usize>(slot: &mut [f32], pw: usize) -> [&mut [f32]; ST] {
    let mut chunks = slot[..ST * pw].chunks_exact_mut(pw);
    std::array::from_fn(|_| chunks.next().expect("ST phases"))
}

/// `even[i] = pairs[2i]`, `odd[i] = pairs[2i + 1]`, by [`Simd::load_deinterleaved`] of two
/// vectors at a time (four such pairs per [`Simd::store_n`] of each phase where the row
/// allows), the last pair of vectors overlapping its predecessor (a plain loop
/// was vectorised by LLVM with a scalar tail of up to 31 pairs per row on x86-64, which
/// cost more than the stride-2 taps themselves); fewer pairs than a vector, partially.
#[inline(always)]
fn deinterleave<S: Simd>(s: S, pairs: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let (m, l) = (even.len(), S::LANES);
    let (p, e, o) = (&pairs[..2 * m], &mut even[..m], &mut odd[..m]);
    if m < l {
        let (ev, ov) = s.deinterleave(s.load_partial(p), s.load_partial(&p[l.min(2 * m)..]));
        s.store_partial(ev, e);
        s.store_partial(ov, o);
        return;
    }
    if m <= 2 * l {
        // Two pairs of vectors, overlapping (the loops below cost more on short rows).
        let (first, last) = (
            s.load_deinterleaved(p),
            s.load_deinterleaved(&p[2 * (m - l)..]),
        );
        s.store(first.0, &mut e[..l]);
        s.store(first.1, &mut o[..l]);
        s.store(last.0, &mut e[m - l..]);
        s.store(last.1, &mut o[m - l..]);
        return;
    }
    // Four pairs of vectors per step, stored four vectors at a time (NEON: 4 `ld2`, 2 `st1`).
    let (p4, e4, o4) = (
        p.chunks_exact(8 * l),
        e.chunks_exact_mut(4 * l),
        o.chunks_exact_mut(4 * l),
    );
    let done = m - m % (4 * l);
    for ((src, e), o) in p4.zip(e4).zip(o4) {
        let (mut ev, mut ov) = ([s.zero(); 4], [s.zero(); 4]);
        for (i, (ev, ov)) in ev.iter_mut().zip(&mut ov).enumerate() {
            (*ev, *ov) = s.load_deinterleaved(&src[2 * i * l..]);
        }
        s.store_n(ev, e);
        s.store_n(ov, o);
    }
    let (pv, ev, ov) = (
        p[2 * done..].chunks_exact(2 * l),
        e[done..].chunks_exact_mut(l),
        o[done..].chunks_exact_mut(l),
    );
    for ((src, e), o) in pv.zip(ev).zip(ov) {
        let (ev, ov) = s.load_deinterleaved(src);
        s.store(ev, e);
        s.store(ov, o);
    }
    if !m.is_multiple_of(l) {
        let at = m - l;
        let (ev, ov) = s.load_deinterleaved(&p[2 * at..]);
        s.store(ev, &mut e[at..]);
        s.store(ov, &mut o[at..]);
    }
}

/// The element-wise maximum of the vectors at `rows[..][at..]`, `at + LANES` at most the
/// rows' common length (a function: a closure LLVM does not inline is compiled without the
/// ISA's features).
#[inline(always)]
fn max_at<S: Simd, const K: usize>(s: S, rows: &[&[f32]; K], at: usize) -> S::V {
    let l = S::LANES;
    // SAFETY: every caller passes `at + LANES <=` the length the rows were all cut to.
    let mut m = s.load(unsafe { rows[0].get_unchecked(at..at + l) });
    for &r in &rows[1..] {
        // SAFETY: as above.
        m = s.max(m, s.load(unsafe { r.get_unchecked(at..at + l) }));
    }
    m
}

/// `dst = src` with vector loads and stores: rows of up to 4 vectors as 2 or 4 vectors at
/// fixed positions, overlapping (the loops below cost NEON 40 instructions per 7-value row,
/// more than the row's depthwise taps on 7x7 planes), longer ones four vectors per step
/// (paired loads and stores on aarch64), the last vector overlapping its predecessor
/// (`copy_from_slice` becomes a `memcpy` call, slow for short rows).
#[inline(always)]
pub(crate) fn copy<S: Simd>(s: S, dst: &mut [f32], src: &[f32]) {
    let (n, l) = (dst.len(), S::LANES);
    let src = &src[..n];
    if n < l {
        return copy_short(dst, src);
    }
    if n <= 2 * l {
        let (first, last) = (s.load(&src[..l]), s.load(&src[n - l..]));
        s.store(first, &mut dst[..l]);
        s.store(last, &mut dst[n - l..]);
        return;
    }
    if n <= 4 * l {
        let (head, tail) = (s.load_n::<2>(src), s.load_n::<2>(&src[n - 2 * l..]));
        s.store_n(head, dst);
        s.store_n(tail, &mut dst[n - 2 * l..]);
        return;
    }
    let (d4, s4) = (dst.chunks_exact_mut(4 * l), src.chunks_exact(4 * l));
    let done = n - n % (4 * l);
    for (d, v) in d4.zip(s4) {
        let vs: [S::V; 4] = std::array::from_fn(|i| s.load(&v[i * l..]));
        for (i, v) in vs.into_iter().enumerate() {
            s.store(v, &mut d[i * l..]);
        }
    }
    for (d, v) in dst[done..]
        .chunks_exact_mut(l)
        .zip(src[done..].chunks_exact(l))
    {
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
    /// The strip's input columns.
    span: Span,
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
        RowRing {
            buf,
            channels,
            pw,
            span: Span::new(0, 0, 0),
            held: [isize::MIN; K],
        }
    }

    /// Starts a strip (or new planes): zeroes the ring and forgets every row; rows will
    /// hold input columns `[ix0, ix0 + need)` of rows of `in_w` (`need / ST + LANES <= pw`).
    #[inline(always)]
    pub(crate) fn start<S: Simd>(&mut self, s: S, ix0: isize, need: usize, in_w: usize) {
        debug_assert!(
            need.div_ceil(ST) + S::LANES <= self.pw,
            "row ring: phase width"
        );
        self.span = Span::new(ix0, need, in_w);
        self.held = [isize::MIN; K];
        let len = Self::len(self.channels, self.pw);
        fill_all(s, &mut self.buf[..len], 0.0);
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
                    self.span.copy::<S, ST>(s, xrow, phases(slot, self.pw));
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

    /// A strip: padding set once, then rows copied into the span, or cleared.
    fn strip<S: Simd, const ST: usize>(s: S, x: &[f32], ix0: isize, need: usize, pw: usize) {
        let mut slot = vec![f32::NAN; ST * pw];
        fill_all(s, &mut slot, 0.0);
        let span = Span::new(ix0, need, x.len());
        let other: Vec<f32> = x.iter().map(|v| v + 100.0).collect();
        span.copy::<S, ST>(s, &other, phases(&mut slot, pw));
        span.copy::<S, ST>(s, x, phases(&mut slot, pw));
        expect(&slot, ST, pw, ix0, need, x);
        span.clear::<S, ST>(s, phases(&mut slot, pw));
        expect(&slot, ST, pw, ix0, need, &[]);
    }

    fn fill_cases<S: Simd>(s: S) {
        for len in [1, 3, 7, 16, 17, 31, 40, 101] {
            let x: Vec<f32> = (1..=len).map(|v| v as f32).collect();
            for ix0 in [-20, -3, -2, -1, 0, 1, 2, 5, 9, 40] {
                for need in [1, 2, 5, 16, 33, 48, 120] {
                    strip::<S, 1>(s, &x, ix0, need, 160);
                    strip::<S, 2>(s, &x, ix0, need, 80);
                }
            }
        }
    }

    fn ring_cases<S: Simd>(s: S) {
        // Two 4x3 planes; 3x3 kernel, stride 2, top pad 1.
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let pw = 32;
        let mut buf = vec![0.0; RowRing::<3, 2>::len(2, pw)];
        let mut ring = RowRing::<3, 2>::new(&mut buf, 2, pw);
        ring.start(s, -1, 5, 3);
        let slots = ring.advance(s, &x, [4, 3], -1);
        assert_eq!(slots, [None, Some(0), Some(1)]);
        // Channel 1, row 1 (values 15, 16, 17) from column -1: even -1, 1, .. odd 0, 2, ..
        let slot = |c, k| &ring.data()[ring.offset(c, Some(k))..];
        assert_eq!(slot(1, 1)[..2], [0., 16.]);
        assert_eq!(slot(1, 1)[pw..pw + 3], [15., 17., 0.]);
        let slots = ring.advance(s, &x, [4, 3], 1);
        assert_eq!(slots, [Some(1), Some(2), Some(0)]);
        // Slot 0 now holds channel 0, row 3 (9, 10, 11).
        let slot = |c, k| &ring.data()[ring.offset(c, Some(k))..];
        assert_eq!(slot(0, 0)[pw..pw + 2], [9.0, 11.0]);
        assert_eq!(ring.data()[ring.offset(1, None)..][..2 * pw], [0.0; 64]);
    }

    #[test]
    fn spans_copy_and_deinterleave() {
        for_each_simd!(fill_cases);
    }

    #[test]
    fn ring_copies_each_row_once() {
        for_each_simd!(ring_cases);
    }
}
