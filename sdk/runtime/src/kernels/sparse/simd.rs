//! The SIMD sparse convolution, generic over [`Simd`]: tiles of `R = block` output rows x
//! `NV` vectors of pixels over pixel blocks of the input (direct) or of its im2col copy.
//!
//! Tile shapes (accumulators + input vectors + broadcasts within the register file):
//! 32 registers: 1 x 16 (AVX-512) or 1 x 8 (NEON; 1 x 4 for long blocks, see
//! [`LONG_BLOCK_COLUMNS`]), 2 x 6, 4 x 4; 16 registers (AVX2): 1 x 8, 2 x 4, 4 x 2. On
//! AVX-512 the 16-vector tiles of one row cover a 14x14 plane in one pass over the stored
//! columns (13 vectors) instead of a tile of 8 and a tail of 5: MobileNetV1's pointwise
//! layers at 90 %, best of 3 runs of 300, 1.96 -> 1.82 ms in all (14x14 layers 0.165 ->
//! 0.147 ms each); narrower tiles in L1-sized pixel blocks, with or without split
//! accumulators, measured slower (1 x 2: 2.26 ms, 1 x 1: 2.68 ms). Per
//! stored column a tile loads its `NV` input vectors (contiguous in whole tiles: NEON `ldp`
//! pairs) and the column's `R` values (NEON: one vector, or one 64-bit load for 2, used
//! lane by lane) and does `R * NV` FMAs; NEON takes two columns per loop iteration (22
//! instructions per column of a 4 x 4 tile, 16 FMAs; 19 of a 2 x 6, 12 FMAs).
//! The pixels left after a block's whole tiles make one tile of as many vectors as they
//! need, its last vector ending at the block's end (MobileNetV1's pointwise layers at
//! 90 %, block 1, AVX-512, best of 150: 1.1x faster on 14x14 planes, 1.3-1.4x on 7x7, than
//! the single-vector tiles it replaces, whose one accumulator chain waits on the FMA
//! latency); a rest shorter than a vector takes one vector ending there, if the source
//! holds the pixels before it (the last pixel of a 7x7 plane: no partial loads).

use super::portable;
use super::{SparseConv, SparseRows, SparseSource, check_conv};
use crate::kernels::Epilogue;
use crate::kernels::im2col::im2col_block;
use crate::kernels::simd::{Simd, SimdKernel, VecActivation, outer_fma};

/// Input values per pixel block of a direct (1x1) convolution: 64 KiB of f32, as the
/// dense pointwise kernel.
const BLOCK_VALUES: usize = 16384;

/// Most tiles per pixel block.
const MAX_BLOCK_TILES: usize = 16;

/// Average stored columns per block from which blocks of one row use 4-vector tiles on
/// NEON, 8 below: long blocks touch many input rows per tile, and halving the tile
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
            (1, true) if S::LANES >= 16 => self.blocks::<S, 1, 16>(s),
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
    fn blocks<S: Simd, const R: usize, const NV: usize>(self, s: S)
    where
        RestTiles<NV>: RestTile,
    {
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

    /// Epilogue, then stores the tile's vectors at pixels `col + v * LANES` of the block's
    /// rows, the last one at `last` instead (a tail tile's last vector ends at the plane's
    /// end, overlapping its neighbour: the pixels both hold are the same sums, bit for bit).
    /// A whole tile (`last` right after the others) is one slice per row.
    #[inline(always)]
    fn store<const NV: usize>(
        &self,
        s: S,
        mut acc: [[S::V; NV]; R],
        y: &mut [f32],
        plane: usize,
        col: usize,
        last: usize,
    ) {
        let l = S::LANES;
        let whole = last == col + (NV - 1) * l;
        let at = |v: usize| if v + 1 == NV { last } else { col + v * l };
        for (accr, &b) in acc.iter_mut().zip(&self.bias) {
            for a in accr.iter_mut() {
                *a = s.add(*a, b);
            }
        }
        if let Some(res) = self.residual {
            for (rrow, accr) in res.chunks_exact(plane).take(self.rows).zip(acc.iter_mut()) {
                if whole {
                    let rs = &rrow[col..col + NV * l];
                    for (v, a) in accr.iter_mut().enumerate() {
                        *a = s.add(*a, s.load(&rs[v * l..]));
                    }
                } else {
                    for (v, a) in accr.iter_mut().enumerate() {
                        *a = s.add(*a, s.load(&rrow[at(v)..]));
                    }
                }
            }
        }
        self.act.apply_all(s, acc.as_flattened_mut());
        for (yrow, accr) in y.chunks_exact_mut(plane).take(self.rows).zip(&acc) {
            if whole {
                let ys = &mut yrow[col..col + NV * l];
                for (v, &a) in accr.iter().enumerate() {
                    s.store(a, &mut ys[v * l..]);
                }
            } else {
                for (v, &a) in accr.iter().enumerate() {
                    s.store(a, &mut yrow[at(v)..]);
                }
            }
        }
    }

    /// Epilogue, then stores the first `n < LANES` pixels at `col` (planes narrower than a
    /// vector).
    #[inline(always)]
    fn store_partial(
        &self,
        s: S,
        mut acc: [S::V; R],
        y: &mut [f32],
        plane: usize,
        col: usize,
        n: usize,
    ) {
        for (a, &b) in acc.iter_mut().zip(&self.bias) {
            *a = s.add(*a, b);
        }
        if let Some(res) = self.residual {
            for (rrow, a) in res.chunks_exact(plane).take(self.rows).zip(acc.iter_mut()) {
                *a = s.add(*a, s.load_partial(&rrow[col..col + n]));
            }
        }
        self.act.apply_all(s, &mut acc);
        for (yrow, &a) in y.chunks_exact_mut(plane).take(self.rows).zip(&acc) {
            s.store_partial(a, &mut yrow[col..col + n]);
        }
    }
}

/// Block `b` over output pixels `cols`, reading `src` at `offset + pixel - shift` (the
/// source holds the pixels from `shift` to the end of `cols`).
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
) where
    RestTiles<NV>: RestTile,
{
    let (k0, k1) = (w.starts[b] as usize, w.starts[b + 1] as usize);
    let offs = &w.offsets[k0..k1];
    let vals = &w.values.as_chunks::<R>().0[k0..k1];
    let l = S::LANES;
    let (Some((w0, rest_vals)), Some((&o0, rest_offs))) = (vals.split_first(), offs.split_first())
    else {
        empty_block::<S, R, NV>(s, out, y, plane, cols);
        return;
    };
    let first = (w0, o0);
    let tw = NV * l;
    let mut col = cols.start;
    while col + tw <= cols.end {
        let last = col + tw - l;
        let (a, b) = (col - shift, last - shift);
        let acc = tile::<S, R, NV, true>(s, first, rest_vals, rest_offs, src, a, b);
        out.store(s, acc, y, plane, col, last);
        col += tw;
    }
    if col == cols.end {
        return;
    }
    if cols.end - shift >= l {
        // One tile of as many vectors as the rest needs, the last ending at the end (and
        // starting before `cols` if the rest is shorter than a vector: the source holds
        // the pixels from `shift` on, and the ones already stored get the same sums).
        let last = cols.end - l;
        let columns = Columns {
            first,
            vals: rest_vals,
            offs: rest_offs,
            src,
            at: col - shift,
            last: last - shift,
        };
        let vectors = (cols.end - col).div_ceil(l);
        RestTiles::<NV>::store(s, out, columns, vectors, y, plane, col, last);
    } else {
        let n = cols.end - col;
        let mut acc = [s.zero(); R];
        for (wv, &o) in vals.iter().zip(offs) {
            let at = o as usize + col - shift;
            let xv = s.load_partial(&src[at..at + n]);
            let wb = s.splat_each(wv);
            for (a, &wb) in acc.iter_mut().zip(&wb) {
                *a = s.fma(*a, wb, xv);
            }
        }
        out.store_partial(s, acc, y, plane, col, n);
    }
}

/// A block's stored columns and where a tile reads them (the arguments of [`tile`]).
struct Columns<'a, const R: usize> {
    first: (&'a [f32; R], u32),
    vals: &'a [[f32; R]],
    offs: &'a [u32],
    src: &'a [f32],
    at: usize,
    last: usize,
}

/// The tails of tiles `NV` vectors wide: tiles of 1 to `NV` vectors (a tail holds fewer
/// pixels than a whole tile, but may still need `NV` vectors).
struct RestTiles<const NV: usize>;

/// One tile of as many vectors as a tail needs, each vector count a separate instantiation
/// of [`tile`]; implemented per tile width, so a width compiles only the tails it can
/// have.
trait RestTile {
    /// Computes and stores (see [`BlockOut::store`]) a tile of `vectors` vectors.
    #[allow(clippy::too_many_arguments)] // one tile's inputs and outputs, all distinct
    fn store<S: Simd, const R: usize>(
        s: S,
        out: &BlockOut<S, R>,
        c: Columns<R>,
        vectors: usize,
        y: &mut [f32],
        plane: usize,
        col: usize,
        last: usize,
    );
}

/// Implements [`RestTile`] for tiles `$nv` vectors wide with tails of `$k` vectors.
macro_rules! rest_tiles {
    ($($nv:literal: $($k:literal)*;)*) => {$(
        impl RestTile for RestTiles<$nv> {
            #[inline(always)]
            fn store<S: Simd, const R: usize>(
                s: S,
                out: &BlockOut<S, R>,
                c: Columns<R>,
                vectors: usize,
                y: &mut [f32],
                plane: usize,
                col: usize,
                last: usize,
            ) {
                match vectors {
                    $($k => out.store(
                        s,
                        tile::<S, R, $k, false>(s, c.first, c.vals, c.offs, c.src, c.at, c.last),
                        y,
                        plane,
                        col,
                        last,
                    ),)*
                    _ => unreachable!("a tail has at most as many vectors as a whole tile"),
                }
            }
        }
    )*};
}

rest_tiles! {
    2: 1 2;
    4: 1 2 3 4;
    6: 1 2 3 4 5 6;
    8: 1 2 3 4 5 6 7 8;
    16: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16;
}

/// The outputs of a block without stored columns over `cols`: the epilogue of zero sums,
/// in tiles of `NV` vectors, then single vectors (the last ending at the end).
#[inline(always)]
fn empty_block<S: Simd, const R: usize, const NV: usize>(
    s: S,
    out: &BlockOut<S, R>,
    y: &mut [f32],
    plane: usize,
    cols: std::ops::Range<usize>,
) {
    let l = S::LANES;
    if cols.len() < l {
        out.store_partial(s, [s.zero(); R], y, plane, cols.start, cols.len());
        return;
    }
    let mut col = cols.start;
    while col + NV * l <= cols.end {
        out.store(s, [[s.zero(); NV]; R], y, plane, col, col + (NV - 1) * l);
        col += NV * l;
    }
    while col < cols.end {
        let at = col.min(cols.end - l);
        out.store(s, [[s.zero(); 1]; R], y, plane, at, at);
        col += l;
    }
}

/// `acc[r][v] = sum_k vals[k][r] * src[offs[k] + start(v) ..][..LANES]` over the stored
/// columns `first` (values, offset) then `vals`, `offs`; `start(v)` is `at + v * LANES`
/// but `last` for the last vector; `WHOLE` tiles have `last` right after the others (one
/// contiguous load of `NV` vectors per column).
///
/// The first column's products initialise the accumulators (no zeroing): `w * x` is the
/// FMA into `+0` but for the sign of a zero sum, which the bias add erases (`-0 + 0 =
/// +0`; only a bias of `-0` leaves a zero of the other sign). With 4-lane vectors and 32
/// registers (NEON) the loop takes two columns per iteration (half the loop overhead;
/// AVX-512 measured 1 % slower so).
#[allow(clippy::too_many_arguments)] // one tile's inputs, all distinct
#[inline(always)]
fn tile<S: Simd, const R: usize, const NV: usize, const WHOLE: bool>(
    s: S,
    (w0, o0): (&[f32; R], u32),
    vals: &[[f32; R]],
    offs: &[u32],
    src: &[f32],
    at: usize,
    last: usize,
) -> [[S::V; NV]; R] {
    let mut acc = [[s.zero(); NV]; R];
    let (wb, x0) = (
        s.splat_each(w0),
        inputs::<S, NV, WHOLE>(s, src, o0, at, last),
    );
    for (accr, &wb) in acc.iter_mut().zip(&wb) {
        for (a, &xv) in accr.iter_mut().zip(&x0) {
            *a = s.mul(wb, xv);
        }
    }
    if S::REGISTERS >= 32 && S::LANES == 4 {
        let (val_pairs, val_last) = vals.as_chunks::<2>();
        let (off_pairs, off_last) = offs.as_chunks::<2>();
        for ([w0, w1], &[o0, o1]) in val_pairs.iter().zip(off_pairs) {
            let x0 = inputs::<S, NV, WHOLE>(s, src, o0, at, last);
            let x1 = inputs::<S, NV, WHOLE>(s, src, o1, at, last);
            outer_fma(s, &mut acc, w0, x0);
            outer_fma(s, &mut acc, w1, x1);
        }
        if let (Some(w), Some(&o)) = (val_last.first(), off_last.first()) {
            outer_fma(s, &mut acc, w, inputs::<S, NV, WHOLE>(s, src, o, at, last));
        }
    } else {
        for (w, &o) in vals.iter().zip(offs) {
            outer_fma(s, &mut acc, w, inputs::<S, NV, WHOLE>(s, src, o, at, last));
        }
    }
    acc
}

/// The `NV` input vectors of the stored column at offset `o` (see [`tile`]). A function,
/// not a closure: closures are not always inlined into the ISA's `#[target_feature]` entry,
/// and then neither are the intrinsics (x86).
#[inline(always)]
fn inputs<S: Simd, const NV: usize, const WHOLE: bool>(
    s: S,
    src: &[f32],
    o: u32,
    at: usize,
    last: usize,
) -> [S::V; NV] {
    let l = S::LANES;
    let o = o as usize;
    let mut xv = [s.zero(); NV];
    // SAFETY (both loads): `check_conv` checked that the largest offset plus the span of the
    // source (the plane, or the im2col pixel block) is within `src`, and `pixels` keeps
    // every vector start (`at + v * LANES <= last`) within that span, at most `LANES`
    // before its end.
    if WHOLE {
        let xs = unsafe { src.get_unchecked(o + at..o + at + NV * l) };
        for (v, xv) in xv.iter_mut().enumerate() {
            *xv = s.load(&xs[v * l..]);
        }
    } else {
        for (v, xv) in xv.iter_mut().enumerate() {
            let p = o + if v + 1 == NV { last } else { at + v * l };
            *xv = s.load(unsafe { src.get_unchecked(p..p + l) });
        }
    }
    xv
}
