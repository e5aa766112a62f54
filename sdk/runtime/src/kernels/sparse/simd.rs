//! The SIMD sparse convolution, generic over [`Simd`]: tiles of `R = block` output rows x
//! `NV` vectors of pixels over pixel blocks of the input (direct) or of its im2col copy.
//!
//! Tile shapes (accumulators + input vectors + broadcasts within the register file):
//! 32 registers (AVX-512, NEON): 1 x 8 (1 x 4 for long blocks, see
//! [`LONG_BLOCK_COLUMNS`]), 2 x 6, 4 x 4; 16 registers (AVX2): 1 x 8, 2 x 4, 4 x 2. Per stored column a tile loads its `NV` input vectors and the column's `R`
//! values (NEON: one vector, used lane by lane) and does `R * NV` FMAs.

use super::im2col::im2col_block;
use super::portable;
use super::{SparseConv, SparseRows, SparseSource, check_conv};
use crate::kernels::Epilogue;
use crate::kernels::conv1x1::tile::add_residual;
use crate::kernels::simd::{Simd, SimdKernel, VecActivation};

/// Input values per pixel block of a direct (1x1) convolution: 64 KiB of f32, as the
/// dense pointwise kernel.
const BLOCK_VALUES: usize = 16384;

/// Most tiles per pixel block.
const MAX_BLOCK_TILES: usize = 16;

/// Average stored columns per block from which blocks of one row use 4-vector tiles on 32
/// registers, 8 below: long blocks touch many input rows per tile, and halving the tile
/// halves the input slab each tile streams from L2 (measured 1.5x faster on 28x28x256 at
/// 50 %); short blocks are dominated by the per-tile epilogue, which wide tiles amortise.
const LONG_BLOCK_COLUMNS: usize = 64;

/// Sparse convolution (see [`SparseConv`]); CPUs without `S` run [`portable::sparse_conv`].
pub fn sparse_conv_simd<S: Simd>(
    c: &SparseConv,
    x: &[f32],
    epi: &Epilogue,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    match S::detect() {
        Some(s) => {
            let rows = check_conv(c, x, epi, y, scratch);
            s.vectorize(Kernel {
                c,
                x,
                epi,
                y,
                scratch,
                rows,
            })
        }
        None => portable::sparse_conv(c, x, epi, y, scratch),
    }
}

/// A checked sparse convolution call.
struct Kernel<'a> {
    c: &'a SparseConv<'a>,
    x: &'a [f32],
    epi: &'a Epilogue<'a>,
    y: &'a mut [f32],
    scratch: &'a mut [f32],
    rows: usize,
}

impl SimdKernel for Kernel<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let w = &self.c.weights;
        let stored = (w.starts[w.blocks()] - w.starts[0]) as usize;
        let long_blocks = stored >= LONG_BLOCK_COLUMNS * w.blocks();
        match (w.block, S::REGISTERS >= 32) {
            (1, true) if long_blocks => self.blocks::<S, 1, 4>(s),
            (1, _) => self.blocks::<S, 1, 8>(s),
            (2, true) => self.blocks::<S, 2, 6>(s),
            (2, false) => self.blocks::<S, 2, 4>(s),
            (_, true) => self.blocks::<S, 4, 4>(s),
            (_, false) => self.blocks::<S, 4, 2>(s),
        }
    }
}

impl Kernel<'_> {
    /// Pixel blocks, then output blocks, then pixel tiles.
    #[inline(always)]
    fn blocks<S: Simd, const R: usize, const NV: usize>(self, s: S) {
        let Kernel {
            c,
            x,
            epi,
            y,
            scratch,
            rows,
        } = self;
        let g = c.geom;
        let out_hw = g.out_h * g.out_w;
        let act = VecActivation::new(s, epi.activation);
        let tw = NV * S::LANES;
        let w = &c.weights;
        match c.source {
            SparseSource::Direct => {
                let pb = (BLOCK_VALUES / g.in_c.max(1) / tw).clamp(1, MAX_BLOCK_TILES) * tw;
                for p0 in (0..out_hw).step_by(pb) {
                    let cols = p0..(p0 + pb).min(out_hw);
                    for b in 0..w.blocks() {
                        let out = BlockOut::new(s, &act, epi, b, R, rows, out_hw);
                        let yb = &mut y[b * R * out_hw..(b * R + out.rows) * out_hw];
                        pixels::<S, R, NV>(s, w, b, x, 0, &out, yb, out_hw, cols.clone());
                    }
                }
            }
            SparseSource::Im2col { pixels: pb } => {
                for p0 in (0..out_hw).step_by(pb) {
                    let n = pb.min(out_hw - p0);
                    im2col_block(g, x, p0, n, pb, scratch);
                    for b in 0..w.blocks() {
                        let out = BlockOut::new(s, &act, epi, b, R, rows, out_hw);
                        let yb = &mut y[b * R * out_hw..(b * R + out.rows) * out_hw];
                        pixels::<S, R, NV>(s, w, b, scratch, p0, &out, yb, out_hw, p0..p0 + n);
                    }
                }
            }
        }
    }
}

/// Output side of one block: bias vectors, activation, real rows, their residual planes.
struct BlockOut<'a, S: Simd, const R: usize> {
    bias: [S::V; R],
    act: &'a VecActivation<S>,
    rows: usize,
    residual: Option<&'a [f32]>,
}

impl<'a, S: Simd, const R: usize> BlockOut<'a, S, R> {
    #[inline(always)]
    fn new(
        s: S,
        act: &'a VecActivation<S>,
        epi: &Epilogue<'a>,
        b: usize,
        block: usize,
        rows: usize,
        plane: usize,
    ) -> Self {
        let o0 = b * block;
        let real = block.min(rows - o0);
        let mut bv = [s.zero(); R];
        if let Some(bias) = epi.bias {
            for (v, &b) in bv.iter_mut().zip(&bias[o0..o0 + real]) {
                *v = s.splat(b);
            }
        }
        BlockOut {
            bias: bv,
            act,
            rows: real,
            residual: epi.residual.map(|r| &r[o0 * plane..(o0 + real) * plane]),
        }
    }

    /// Epilogue, then stores the first `n` pixels (all if `n == NV * LANES`) at `col` of
    /// the block's rows.
    #[inline(always)]
    fn store<const NV: usize>(
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

/// Block `b` over output pixels `cols`, reading `src` at `offset + pixel - shift`.
#[allow(clippy::too_many_arguments)] // one tile loop's inputs, all distinct
#[inline(always)]
fn pixels<S: Simd, const R: usize, const NV: usize>(
    s: S,
    w: &SparseRows,
    b: usize,
    src: &[f32],
    shift: usize,
    out: &BlockOut<S, R>,
    y: &mut [f32],
    plane: usize,
    cols: std::ops::Range<usize>,
) {
    let (k0, k1) = (w.starts[b] as usize, w.starts[b + 1] as usize);
    let offs = &w.offsets[k0..k1];
    let vals = &w.values.as_chunks::<R>().0[k0..k1];
    let l = S::LANES;
    let tw = NV * l;
    let mut col = cols.start;
    while col + tw <= cols.end {
        let acc = tile::<S, R, NV>(s, vals, offs, src, col - shift);
        out.store(s, acc, y, plane, col, tw);
        col += tw;
    }
    while col + l <= cols.end {
        let acc = tile::<S, R, 1>(s, vals, offs, src, col - shift);
        out.store(s, acc, y, plane, col, l);
        col += l;
    }
    if col < cols.end {
        if cols.len() >= l {
            // One vector ending at the block's end, recomputing (bit-identically) pixels
            // already stored.
            let last = cols.end - l;
            let acc = tile::<S, R, 1>(s, vals, offs, src, last - shift);
            out.store(s, acc, y, plane, last, l);
        } else {
            let n = cols.end - col;
            let mut acc = [[s.zero(); 1]; R];
            for (wv, &o) in vals.iter().zip(offs) {
                let at = o as usize + col - shift;
                let xv = s.load_partial(&src[at..at + n]);
                let wb = s.splat_each(wv);
                for (a, &wb) in acc.iter_mut().zip(&wb) {
                    a[0] = s.fma(a[0], wb, xv);
                }
            }
            out.store(s, acc, y, plane, col, n);
        }
    }
}

/// `acc[r][v] = sum_k vals[k][r] * src[offs[k] + at + v * LANES ..][..LANES]`.
#[inline(always)]
fn tile<S: Simd, const R: usize, const NV: usize>(
    s: S,
    vals: &[[f32; R]],
    offs: &[u32],
    src: &[f32],
    at: usize,
) -> [[S::V; NV]; R] {
    let l = S::LANES;
    let mut acc = [[s.zero(); NV]; R];
    for (wv, &o) in vals.iter().zip(offs) {
        let o = o as usize + at;
        // SAFETY: `check_conv` checked that the largest offset plus the span of the source
        // (the plane, or the im2col pixel block) is within `src`, and `pixels` keeps
        // `at + NV * LANES` within that span (tiles end by the end of the pixel range).
        let xs = unsafe { src.get_unchecked(o..o + NV * l) };
        let mut xv = [s.zero(); NV];
        for (v, xv) in xv.iter_mut().enumerate() {
            *xv = s.load(&xs[v * l..]);
        }
        let wb = s.splat_each(wv);
        for (accr, &wb) in acc.iter_mut().zip(&wb) {
            for (a, &xv) in accr.iter_mut().zip(&xv) {
                *a = s.fma(*a, wb, xv);
            }
        }
    }
    acc
}
