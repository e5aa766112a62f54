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
//! two vectors used lane by lane). Output rows are then stored directly, with no transpose. Weights are read in place through [`TileWeights`]: a [`Panel8`]
//! panel (ungrouped) or row-major rows (grouped convolutions).
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
    /// The columns in pairs `(2i, 2i + 1)`.
    fn col_pairs(self) -> impl Iterator<Item = (Self::Col, Self::Col)>;
    /// The last column if their number is odd (the one [`TileWeights::col_pairs`] leaves).
    fn odd_last(self) -> Option<Self::Col>;
    /// The `R` weights of column `c`, each broadcast to a vector.
    fn splat<S: Simd>(self, s: S, c: Self::Col) -> [S::V; R];
}

/// Rows `H * R .. (H + 1) * R` of one [`Panel8`](prunus_format::Layout::Panel8) panel,
/// given as its `K` columns of 8 (`H` is a const so the row index is too).
#[derive(Clone, Copy)]
pub(super) struct PanelRows<'a, const H: usize>(pub &'a [[f32; PANEL]]);

impl<'a, const R: usize, const H: usize> TileWeights<R> for PanelRows<'a, H> {
    type Col = &'a [f32; PANEL];

    #[inline(always)]
    fn cols(self) -> impl Iterator<Item = Self::Col> {
        self.0.iter()
    }

    #[inline(always)]
    fn col_pairs(self) -> impl Iterator<Item = (Self::Col, Self::Col)> {
        self.0.as_chunks::<2>().0.iter().map(|[a, b]| (a, b))
    }

    #[inline(always)]
    fn odd_last(self) -> Option<Self::Col> {
        self.0.as_chunks::<2>().1.first()
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
}

/// `R` rows of a row-major matrix, each cut to the same `K` values.
#[derive(Clone, Copy)]
pub(super) struct RowMajorRows<'a, const R: usize>(pub [&'a [f32]; R]);

impl<const R: usize> TileWeights<R> for RowMajorRows<'_, R> {
    type Col = usize;

    #[inline(always)]
    fn cols(self) -> impl Iterator<Item = usize> {
        0..self.0[0].len()
    }

    #[inline(always)]
    fn col_pairs(self) -> impl Iterator<Item = (usize, usize)> {
        (0..self.0[0].len() / 2).map(|i| (2 * i, 2 * i + 1))
    }

    #[inline(always)]
    fn odd_last(self) -> Option<usize> {
        let k = self.0[0].len();
        (k % 2 == 1).then(|| k - 1)
    }

    #[inline(always)]
    fn splat<S: Simd>(self, s: S, k: usize) -> [S::V; R] {
        let mut out = [s.zero(); R];
        for (o, row) in out.iter_mut().zip(&self.0) {
            *o = s.splat(row[k]);
        }
        out
    }
}

/// `acc[r][v] = sum_k w(k, r) * x[k, col + v * LANES ..][..LANES]` over the columns of `w`
/// and channels of `x` (planes of `plane` values); `col + NV * LANES <= plane`.
#[inline(always)]
pub(super) fn tile<S: Simd, W: TileWeights<R>, const R: usize, const NV: usize>(
    s: S,
    w: W,
    x: &[f32],
    plane: usize,
    col: usize,
) -> [[S::V; NV]; R] {
    let mut acc = [[s.zero(); NV]; R];
    // Zipping the columns with `chunks_exact` gives a loop with one counter and one exit,
    // so LLVM keeps the whole tile in registers (a second exit made it spill accumulators
    // every iteration, halving AVX2 throughput).
    if S::REGISTERS < 32 {
        // With 16 registers, unrolling made LLVM hoist the broadcasts and spill.
        for (c, xrow) in w.cols().zip(x.chunks_exact(plane)) {
            rank1::<S, W, R, NV>(s, w, c, xrow, col, &mut acc);
        }
        return acc;
    }
    // Two input channels per iteration: half the loop overhead (NEON: 59 instructions per
    // 48 FMAs instead of 32 per 24).
    for ((c0, c1), xrows) in w.col_pairs().zip(x.chunks_exact(2 * plane)) {
        let (x0, x1) = xrows.split_at(plane);
        rank1::<S, W, R, NV>(s, w, c0, x0, col, &mut acc);
        rank1::<S, W, R, NV>(s, w, c1, x1, col, &mut acc);
    }
    if let Some(c) = w.odd_last() {
        let x_last = x.chunks_exact(plane).last().unwrap_or(&[]);
        rank1::<S, W, R, NV>(s, w, c, x_last, col, &mut acc);
    }
    acc
}

/// `acc += w(c) outer x[col..][..NV * LANES]` for one input channel.
#[inline(always)]
fn rank1<S: Simd, W: TileWeights<R>, const R: usize, const NV: usize>(
    s: S,
    w: W,
    c: W::Col,
    xrow: &[f32],
    col: usize,
    acc: &mut [[S::V; NV]; R],
) {
    let l = S::LANES;
    let xs = &xrow[col..col + NV * l];
    let mut xv = [s.zero(); NV];
    for (v, xv) in xv.iter_mut().enumerate() {
        *xv = s.load(&xs[v * l..]);
    }
    let wb = w.splat(s, c);
    for (accr, &wb) in acc.iter_mut().zip(&wb) {
        for (a, &xv) in accr.iter_mut().zip(&xv) {
            *a = s.fma(*a, wb, xv);
        }
    }
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
