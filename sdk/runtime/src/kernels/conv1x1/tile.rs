//! The SIMD micro-kernel of the pointwise convolutions: an `R` (output channels) x
//! `NV * LANES` (pixels) tile of `Y = W X`, accumulated in registers, with the fused
//! bias + residual + activation epilogue and the store. The residual is loaded into the
//! registers before the store, but the plane's tail recomputes (and re-stores) pixels
//! already stored, so the residual must not overlap the output (the planner never places
//! it there).
//!
//! Pixels are the vector dimension: in CHW each input channel's pixels are contiguous, so
//! per input channel `k` the tile loads `NV` pixel vectors and broadcasts `R` weights, then
//! does `R * NV` FMAs (AVX2: 4 x 2 -> 6 loads per 8 FMAs in 16 registers; AVX-512: 8 x 3
//! -> 11 loads per 24 FMAs in 32; NEON: 8 x 3 -> 5 loads per 24 FMAs, the 8 weights being
//! two vectors used lane by lane; row-major weights: one vector per row and 4 channels).
//! Output rows are then stored directly, with no transpose. Weights are read in place
//! through [`TileWeights`]: a [`Panel8`] panel (ungrouped) or row-major rows (grouped
//! convolutions). NEON's full 8 x 3 tiles on Panel8 weights run its assembly micro-kernel
//! instead, epilogue and store included ([`Simd::panel_tile_8x3`], called by the pointwise
//! kernel: 27 instructions per 24 FMAs, where this generic loop took 120 per 96;
//! MobileNetV2 122.9 -> 115.8 M instructions per inference, and with the epilogue
//! in assembly too, about 250 -> 90 per tile); row-major ones take 140 per 96 (45 per 24
//! with scalar weight loads).
//!
//! [`Panel8`]: prunus_format::Layout::Panel8

use prunus_format::layout::PANEL;

use crate::kernels::simd::{Simd, VecActivation};

/// The weights of one tile's `R` output channels, read in place, one column (input
/// channel) at a time.
pub(super) trait TileWeights<const R: usize>: Copy {
    /// One input channel's weights, as [`TileWeights::cols`] yields them.
    type Col: Copy;
    /// The columns, one per input channel, in order.
    fn cols(self) -> impl Iterator<Item = Self::Col>;
    /// Four consecutive columns, as [`TileWeights::col_quads`] yields them.
    type Quad: Copy;
    /// The columns in groups of four `(4i .. 4i + 4)`.
    fn col_quads(self) -> impl Iterator<Item = Self::Quad>;
    /// The last `K % 4` columns (those [`TileWeights::col_quads`] leaves).
    fn quad_rest(self) -> impl Iterator<Item = Self::Col>;
    /// The `R` weights of column `c`, each broadcast to a vector.
    fn splat<S: Simd>(self, s: S, c: Self::Col) -> [S::V; R];
    /// [`TileWeights::splat`] of the four columns of `q`.
    fn splat_quad<S: Simd>(self, s: S, q: Self::Quad) -> [[S::V; R]; 4];
    /// Prefetches the weights a few columns after `c` (those of large layers come from
    /// memory, each used by only a few pixel tiles).
    #[inline(always)]
    fn prefetch<S: Simd>(self, s: S, c: Self::Col) {
        let _ = (s, c);
    }
}

/// How far ahead [`PanelRows`] prefetches, in `f32` values.
const PREFETCH_AHEAD: usize = 512;

/// Rows `H * R .. (H + 1) * R` of one [`Panel8`](prunus_format::Layout::Panel8) panel,
/// given as its `K` columns of 8 (`H` is a const so the row index is too).
#[derive(Clone, Copy)]
pub(super) struct PanelRows<'a, const H: usize>(pub &'a [[f32; PANEL]]);

impl<'a, const R: usize, const H: usize> TileWeights<R> for PanelRows<'a, H> {
    type Col = &'a [f32; PANEL];
    type Quad = &'a [[f32; PANEL]; 4];

    #[inline(always)]
    fn cols(self) -> impl Iterator<Item = Self::Col> {
        self.0.iter()
    }

    #[inline(always)]
    fn col_quads(self) -> impl Iterator<Item = Self::Quad> {
        self.0.as_chunks::<4>().0.iter()
    }

    #[inline(always)]
    fn quad_rest(self) -> impl Iterator<Item = Self::Col> {
        self.0.as_chunks::<4>().1.iter()
    }

    #[inline(always)]
    fn splat<S: Simd>(self, s: S, c: Self::Col) -> [S::V; R] {
        // All 8 at once (NEON: two vector loads, lanes used by element); the unused half
        // of a 4-row tile is dead code.
        let all = s.splat_each(c);
        let mut out = [s.zero(); R];
        out.copy_from_slice(&all[H * R..(H + 1) * R]);
        out
    }

    #[inline(always)]
    fn prefetch<S: Simd>(self, s: S, c: Self::Col) {
        s.prefetch(c.as_ptr().wrapping_add(PREFETCH_AHEAD));
    }

    #[inline(always)]
    fn splat_quad<S: Simd>(self, s: S, q: Self::Quad) -> [[S::V; R]; 4] {
        let mut out = [[s.zero(); R]; 4];
        for (o, c) in out.iter_mut().zip(q) {
            *o = <Self as TileWeights<R>>::splat(self, s, c);
        }
        out
    }
}

/// `R` rows of a row-major matrix, each cut to the same `K` values.
#[derive(Clone, Copy)]
pub(super) struct RowMajorRows<'a, const R: usize>([&'a [f32]; R]);

impl<'a, const R: usize> RowMajorRows<'a, R> {
    /// The rows; panics unless all have the same length.
    pub fn new(rows: [&'a [f32]; R]) -> Self {
        assert!(
            rows.iter().all(|r| r.len() == rows[0].len()),
            "conv1x1: row-major rows of different lengths"
        );
        RowMajorRows(rows)
    }
}

/// Columns `4i .. 4i + 4` of [`RowMajorRows`], as `i`: made only by its `col_quads`, so
/// `i < K / 4`.
#[derive(Clone, Copy)]
pub(super) struct RowQuad(usize);

impl<const R: usize> TileWeights<R> for RowMajorRows<'_, R> {
    type Col = usize;
    type Quad = RowQuad;

    #[inline(always)]
    fn cols(self) -> impl Iterator<Item = usize> {
        0..self.0[0].len()
    }

    #[inline(always)]
    fn col_quads(self) -> impl Iterator<Item = RowQuad> {
        (0..self.0[0].len() / 4).map(RowQuad)
    }

    #[inline(always)]
    fn quad_rest(self) -> impl Iterator<Item = usize> {
        let k = self.0[0].len();
        k / 4 * 4..k
    }

    #[inline(always)]
    fn splat<S: Simd>(self, s: S, k: usize) -> [S::V; R] {
        let mut out = [s.zero(); R];
        for (o, row) in out.iter_mut().zip(&self.0) {
            *o = s.splat(row[k]);
        }
        out
    }

    /// Four consecutive values per row: NEON loads them as one vector and uses its
    /// lanes, one load per row instead of four.
    #[inline(always)]
    fn splat_quad<S: Simd>(self, s: S, RowQuad(i): RowQuad) -> [[S::V; R]; 4] {
        let mut out = [[s.zero(); R]; 4];
        for (r, row) in self.0.iter().enumerate() {
            // SAFETY: a `RowQuad` comes from `col_quads`: `i < K / 4` for the first row's
            // `K`, which every row has (checked by `new`).
            let four = s.splat_each(unsafe { row.as_chunks::<4>().0.get_unchecked(i) });
            for (o, v) in out.iter_mut().zip(four) {
                o[r] = v;
            }
        }
        out
    }
}

/// `acc[r][v] = sum_k w(k, r) * x[k, col + v * LANES ..][..LANES]` over the columns of `w`
/// and channels of `x` (planes of `plane` values); `col + NV * LANES <= plane`.
///
/// With 32 registers the loop takes four channels per iteration, each channel's pixels
/// cut without a bounds check (`col + NV * LANES <= plane` is checked once per tile), and
/// the first channel's products initialise the accumulators (no zeroing; `w * x` is the
/// FMA into `+0` but for the sign of a zero sum, which the bias add erases unless the
/// bias is `-0`).
#[inline(always)]
pub(super) fn tile<S: Simd, W: TileWeights<R>, const R: usize, const NV: usize>(
    s: S,
    w: W,
    x: &[f32],
    plane: usize,
    col: usize,
) -> [[S::V; NV]; R] {
    let n = NV * S::LANES;
    assert!(col + n <= plane, "conv1x1 tile: pixels past the plane");
    let x_quads = x.chunks_exact(4 * plane);
    let x_rest = x_quads.remainder();
    let mut quads = w.col_quads().zip(x_quads);
    // With 16 registers, unrolling made LLVM hoist the broadcasts and spill; AVX-512
    // (16 lanes) measured slower unrolled.
    let first = if S::REGISTERS >= 32 && S::LANES == 4 {
        quads.next()
    } else {
        None
    };
    let mut acc = [[s.zero(); NV]; R];
    let Some((q0, xq0)) = first else {
        // Zipping the columns with `chunks_exact` gives a loop with one counter and one
        // exit, so LLVM keeps the whole tile in registers (a second exit made it spill
        // accumulators every iteration, halving AVX2 throughput).
        for (c, xrow) in w.cols().zip(x.chunks_exact(plane)) {
            w.prefetch(s, c);
            rank1::<S, R, NV>(s, w.splat(s, c), &xrow[col..col + n], &mut acc);
        }
        return acc;
    };
    rank4::<S, W, R, NV, true>(s, w, q0, xq0, plane, col, &mut acc);
    for (q, xq) in quads {
        rank4::<S, W, R, NV, false>(s, w, q, xq, plane, col, &mut acc);
    }
    for (c, xrow) in w.quad_rest().zip(x_rest.chunks_exact(plane)) {
        rank1::<S, R, NV>(s, w.splat(s, c), &xrow[col..col + n], &mut acc);
    }
    acc
}

/// [`rank1`] of four channels, the columns of `q` over the 4 planes `xq`; with `FIRST`
/// the first channel's products replace `acc` instead of adding to it.
#[inline(always)]
fn rank4<S: Simd, W: TileWeights<R>, const R: usize, const NV: usize, const FIRST: bool>(
    s: S,
    w: W,
    q: W::Quad,
    xq: &[f32],
    plane: usize,
    col: usize,
    acc: &mut [[S::V; NV]; R],
) {
    let n = NV * S::LANES;
    for (j, wb) in w.splat_quad(s, q).into_iter().enumerate() {
        let at = j * plane + col;
        // SAFETY: `xq` holds 4 planes of `plane` values and `tile` checked `col + n <= plane`,
        // so `j * plane + col + n <= 4 * plane` for `j < 4`.
        let xv = load_row::<S, NV>(s, unsafe { xq.get_unchecked(at..at + n) });
        for (accr, &wb) in acc.iter_mut().zip(&wb) {
            for (a, &xv) in accr.iter_mut().zip(&xv) {
                *a = if FIRST && j == 0 {
                    s.mul(wb, xv)
                } else {
                    s.fma(*a, wb, xv)
                };
            }
        }
    }
}

/// `acc += wb outer xs[..NV * LANES]` for one input channel.
#[inline(always)]
fn rank1<S: Simd, const R: usize, const NV: usize>(
    s: S,
    wb: [S::V; R],
    xs: &[f32],
    acc: &mut [[S::V; NV]; R],
) {
    let xv = load_row::<S, NV>(s, xs);
    for (accr, &wb) in acc.iter_mut().zip(&wb) {
        for (a, &xv) in accr.iter_mut().zip(&xv) {
            *a = s.fma(*a, wb, xv);
        }
    }
}

/// The `NV` vectors at `xs[..NV * LANES]`, one load each (x86 folds them into the FMAs;
/// NEON pairs them into `ldp`).
#[inline(always)]
fn load_row<S: Simd, const NV: usize>(s: S, xs: &[f32]) -> [S::V; NV] {
    let l = S::LANES;
    let xs = &xs[..NV * l];
    let mut xv = [s.zero(); NV];
    for (v, x) in xv.iter_mut().enumerate() {
        *x = s.load(&xs[v * l..]);
    }
    xv
}

/// [`tile`] for one vector of `n < LANES` pixels (planes narrower than a vector).
#[inline(always)]
pub(super) fn tile_partial<S: Simd, W: TileWeights<R>, const R: usize>(
    s: S,
    w: W,
    x: &[f32],
    plane: usize,
    col: usize,
    n: usize,
) -> [[S::V; 1]; R] {
    let mut acc = [[s.zero(); 1]; R];
    for (c, xrow) in w.cols().zip(x.chunks_exact(plane)) {
        let xv = s.load_partial(&xrow[col..col + n]);
        for (accr, &wb) in acc.iter_mut().zip(&w.splat(s, c)) {
            accr[0] = s.fma(accr[0], wb, xv);
        }
    }
    acc
}

/// Output side of a tile: bias vectors, the activation, and where the rows go.
pub(super) struct TileOut<'a, S: Simd, const R: usize> {
    /// Per-row bias, splatted (zero without a bias and for rows past the last).
    pub bias: [S::V; R],
    /// Activation.
    pub act: &'a VecActivation<S>,
    /// Rows actually stored (`<= R`: the last tile of a channel range may be partial).
    pub rows: usize,
    /// The residual planes of the stored rows (`rows` planes, like the output's), added
    /// after the bias.
    pub residual: Option<&'a [f32]>,
}

impl<S: Simd, const R: usize> TileOut<'_, S, R> {
    /// Applies the epilogue to `acc` and stores its first `n` pixels (all of them if `n`
    /// is `NV * LANES`) at column `col` of the first `rows` planes of `y`.
    #[inline(always)]
    pub fn store<const NV: usize>(
        &self,
        s: S,
        mut acc: [[S::V; NV]; R],
        y: &mut [f32],
        plane: usize,
        col: usize,
        n: usize,
    ) {
        let l = S::LANES;
        for (accr, &b) in acc.iter_mut().zip(&self.bias) {
            for a in accr.iter_mut() {
                *a = s.add(*a, b);
            }
        }
        if let Some(res) = self.residual {
            add_residual(s, &mut acc, res, self.rows, plane, col, n);
        }
        self.act.apply_all(s, acc.as_flattened_mut());
        for (yrow, accr) in y.chunks_exact_mut(plane).take(self.rows).zip(&acc) {
            if n == NV * l {
                let ys = &mut yrow[col..col + NV * l];
                for (v, &a) in accr.iter().enumerate() {
                    s.store(a, &mut ys[v * l..]);
                }
            } else {
                s.store_partial(accr[0], &mut yrow[col..col + n]);
            }
        }
    }
}

/// Adds the residual to the first `rows` rows of a tile: `n` pixels (all of the tile if
/// `n == NV * LANES`) at column `col` of planes of `plane` values. Each residual value is
/// read before the tile is stored (the output may not overlap the residual anyway).
#[inline(always)]
pub(crate) fn add_residual<S: Simd, const R: usize, const NV: usize>(
    s: S,
    acc: &mut [[S::V; NV]; R],
    res: &[f32],
    rows: usize,
    plane: usize,
    col: usize,
    n: usize,
) {
    let l = S::LANES;
    for (rrow, accr) in res.chunks_exact(plane).take(rows).zip(acc.iter_mut()) {
        if n == NV * l {
            let rs = &rrow[col..col + NV * l];
            for (v, a) in accr.iter_mut().enumerate() {
                *a = s.add(*a, s.load(&rs[v * l..]));
            }
        } else {
            accr[0] = s.add(accr[0], s.load_partial(&rrow[col..col + n]));
        }
    }
}
