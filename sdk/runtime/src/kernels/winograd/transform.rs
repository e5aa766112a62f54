//! The F(4x4, 3x3) transforms (Lavin & Gray 2016, interpolation points 0, ±1, ±2, ∞),
//! vectorised across tiles: lane `l` of every vector belongs to the `l`-th tile of a run
//! of horizontally adjacent tiles.
//!
//! - Input: `V = Bᵀ d B` of each 6x6 input tile `d`, read from a [`Phases`] copy of the
//!   padded input in which a tile's column `c` is a contiguous run over tiles.
//! - Output: `Y = Aᵀ M A` of each 6x6 product tile `M`, bias and activation, written as
//!   4x4 output blocks with an in-register 4-way interleave (two rounds of
//!   [`Simd::interleave`]).
//! - Weights: `U = G g Gᵀ`, once per session, for 8 output channels at a time
//!   ([`weight_tiles`]).

use prunus_format::layout::PANEL;

use super::XI;
use crate::kernels::conv::epilogue::activate;
use crate::kernels::simd::{Simd, VecActivation};

/// Lanes of the weight transform: the same kernel element of one panel's output channels.
pub(super) type Lanes = [f32; PANEL];

/// `G v` of a column or row `v` of three kernel elements (6x3 `G`, the weight transform),
/// lane-wise (LLVM vectorises the lanes).
#[inline(always)]
fn weight_1d([a, b, c]: [Lanes; 3]) -> [Lanes; 6] {
    let mut out = [[0.0; PANEL]; 6];
    for l in 0..PANEL {
        let (a, b, c) = (a[l], b[l], c[l]);
        let even = a + c;
        out[0][l] = a * (1.0 / 4.0);
        out[1][l] = (even + b) * (-1.0 / 6.0);
        out[2][l] = (even - b) * (-1.0 / 6.0);
        let (outer, mid) = (a * (1.0 / 24.0) + c * (1.0 / 6.0), b * (1.0 / 12.0));
        out[3][l] = outer + mid;
        out[4][l] = outer - mid;
        out[5][l] = c;
    }
    out
}

/// `U = G g Gᵀ` (row-major 6x6) of one panel's 3x3 kernels `g` (row-major 3x3 of lanes).
pub(super) fn weight_tiles(g: &[Lanes; 9]) -> [Lanes; 36] {
    // Columns first (`G g`, 6x3), then each of its rows through `G` again.
    let c0 = weight_1d([g[0], g[3], g[6]]);
    let c1 = weight_1d([g[1], g[4], g[7]]);
    let c2 = weight_1d([g[2], g[5], g[8]]);
    let mut u = [[0.0; PANEL]; 36];
    for (a, row) in u.chunks_exact_mut(6).enumerate() {
        row.copy_from_slice(&weight_1d([c0[a], c1[a], c2[a]]));
    }
    u
}

/// The transforms' constants, splatted once per call.
#[derive(Clone, Copy)]
pub(super) struct Consts<S: Simd> {
    p2: S::V,
    p4: S::V,
    p8: S::V,
    m1: S::V,
    m2: S::V,
    m4: S::V,
    m5: S::V,
}

impl<S: Simd> Consts<S> {
    #[inline(always)]
    pub(super) fn new(s: S) -> Self {
        Consts {
            p2: s.splat(2.0),
            p4: s.splat(4.0),
            p8: s.splat(8.0),
            m1: s.splat(-1.0),
            m2: s.splat(-2.0),
            m4: s.splat(-4.0),
            m5: s.splat(-5.0),
        }
    }
}

/// `Bᵀ d` of one column of six values (12 adds or FMAs).
#[inline(always)]
fn input_1d<S: Simd>(s: S, k: &Consts<S>, d: [S::V; 6]) -> [S::V; 6] {
    let t1 = s.fma(d[4], d[2], k.m4); // d4 - 4 d2
    let t2 = s.fma(d[3], d[1], k.m4); // d3 - 4 d1
    let t3 = s.fma(d[4], d[2], k.m1); // d4 - d2
    let t4 = s.fma(d[3], d[1], k.m1); // d3 - d1
    [
        s.fma(s.fma(d[4], d[2], k.m5), d[0], k.p4),
        s.add(t1, t2),
        s.fma(t1, t2, k.m1),
        s.fma(t3, t4, k.p2),
        s.fma(t3, t4, k.m2),
        s.fma(s.fma(d[5], d[3], k.m5), d[1], k.p4),
    ]
}

/// `Aᵀ m` of one column of six values (10 adds or FMAs).
#[inline(always)]
fn output_1d<S: Simd>(s: S, k: &Consts<S>, m: [S::V; 6]) -> [S::V; 4] {
    let s1 = s.add(m[1], m[2]);
    let d1 = s.fma(m[1], m[2], k.m1);
    let s2 = s.add(m[3], m[4]);
    let d2 = s.fma(m[3], m[4], k.m1);
    [
        s.add(s.add(m[0], s1), s2),
        s.fma(d1, d2, k.p2),
        s.fma(s1, s2, k.p4),
        s.add(s.fma(d1, d2, k.p8), m[5]),
    ]
}

/// One input channel's band of padded rows, de-interleaved by column phase: value
/// `(row, 4 k + p)` of the padded band at `data[(row * 4 + p) * stride + k]`. Tile `t`'s
/// column `c` (0..6) is then phase `c % 4` at `k = t + c / 4`, so a run of tiles reads
/// one contiguous vector per tile column.
pub(super) struct Phases<'a> {
    /// The de-interleaved band.
    pub data: &'a mut [f32],
    /// Values per phase row: at least the tiles per row rounded up to [`MAX_LANES`], plus
    /// one (so that full vectors at `k = t + 1` stay inside).
    ///
    /// [`MAX_LANES`]: crate::kernels::simd::MAX_LANES
    pub stride: usize,
    /// Values per phase row that [`Phases::fill`] writes: the tiles per row plus one, all
    /// that stored tiles read. The values past them (read only for tiles that a run
    /// computes and does not store) stay as the caller set them: zero.
    pub len: usize,
}

impl Phases<'_> {
    /// Fills the band from input plane `x` (`in_h` x `in_w`): `rows` padded rows from
    /// padded row `top` (input row `top - pad_top`), zero outside the input. Where all
    /// four phases of a run of `LANES` values lie inside the row, one
    /// [`Simd::load_deinterleaved4`] (NEON `ld4`) splits `4 LANES` input columns; the
    /// values at the row's ends one by one.
    #[inline(always)]
    pub(super) fn fill<S: Simd>(
        &mut self,
        s: S,
        x: &[f32],
        [in_h, in_w]: [usize; 2],
        [pad_top, pad_left]: [usize; 2],
        top: usize,
        rows: usize,
    ) {
        let (stride, len, l) = (self.stride, self.len.min(self.stride), S::LANES);
        // Value k of every phase is inside the row for k in kv..kv_end (input columns
        // 4 k - pad_left ..= 4 k + 3 - pad_left); vectors cover kv..kv + runs * LANES.
        let kv = pad_left.div_ceil(4).min(len);
        let kv_end = ((in_w + pad_left) / 4).clamp(kv, len);
        let runs = (kv_end - kv) / l;
        let ends = (0..kv).chain(kv + runs * l..len);
        for (r, band_row) in self.data[..rows * 4 * stride]
            .chunks_exact_mut(4 * stride)
            .enumerate()
        {
            let iy = (top + r).checked_sub(pad_top).filter(|&iy| iy < in_h);
            let Some(iy) = iy else {
                for phase in band_row.chunks_exact_mut(stride) {
                    phase[..len].fill(0.0);
                }
                continue;
            };
            let src = &x[iy * in_w..(iy + 1) * in_w];
            for k in ends.clone() {
                for p in 0..4 {
                    let col = (4 * k + p).checked_sub(pad_left).filter(|&c| c < in_w);
                    band_row[p * stride + k] = col.map_or(0.0, |c| src[c]);
                }
            }
            for run in 0..runs {
                let k = kv + run * l;
                let phases = s.load_deinterleaved4(&src[4 * k - pad_left..]);
                for (p, v) in phases.into_iter().enumerate() {
                    s.store(v, &mut band_row[p * stride + k..][..l]);
                }
            }
        }
    }
}

/// Where one run of tiles' transformed values go (or come from): value `ξ` (0..36) of the
/// run's first tile at `data[ξ * xi_stride + offset]`, the run's tiles consecutive.
///
/// Runs are stored and loaded as whole vectors, also when they have fewer tiles than
/// lanes: a store's extra lanes land on tiles that a later run overwrites (runs are
/// stored in order of offset) or in the slack after each `ξ`'s matrix; a load's extra
/// lanes are never stored. So `data` must hold a vector past the last run of `ξ = 35`.
pub(super) struct TileRun<D> {
    /// The transformed block: `V` (written) or `M` (read).
    pub data: D,
    /// Values between consecutive `ξ`.
    pub xi_stride: usize,
    /// The run's first tile.
    pub offset: usize,
    /// Tiles in the run (`1..=LANES`).
    pub n: usize,
}

impl<D: AsRef<[f32]>> TileRun<D> {
    /// Checks, once per run, that every `ξ`'s vector is inside `data`.
    #[inline(always)]
    fn check<S: Simd>(&self) {
        let end = (XI - 1) * self.xi_stride + self.offset + S::LANES;
        assert!(end <= self.data.as_ref().len(), "winograd: tile run");
    }
}

/// `V = Bᵀ d B` for a run of tiles whose top padded row is `row` of `band` and whose
/// first tile is tile `t` of its row.
#[inline(always)]
pub(super) fn input_tiles<S: Simd>(
    s: S,
    k: &Consts<S>,
    band: &Phases,
    row: usize,
    t: usize,
    out: TileRun<&mut [f32]>,
) {
    let st = band.stride;
    let last = ((row + 5) * 4 + 3) * st + t + 1 + S::LANES;
    assert!(last <= band.data.len(), "winograd: band");
    out.check::<S>();
    // Plain loops, no closures: a closure is not compiled with the kernel's target
    // features, and LLVM may leave it a call taking vectors through memory.
    let mut cols = [[s.zero(); 6]; 6];
    for (c, col) in cols.iter_mut().enumerate() {
        let mut d = [s.zero(); 6];
        for (r, v) in d.iter_mut().enumerate() {
            let at = ((row + r) * 4 + c % 4) * st + t + c / 4;
            // SAFETY: at + LANES <= last <= band.data.len(), checked above.
            *v = s.load(unsafe { band.data.get_unchecked(at..at + S::LANES) });
        }
        *col = input_1d(s, k, d);
    }
    for a in 0..6 {
        let mut e = [s.zero(); 6];
        for (v, col) in e.iter_mut().zip(&cols) {
            *v = col[a];
        }
        let v = input_1d(s, k, e);
        for (b, &vb) in v.iter().enumerate() {
            let at = (a * 6 + b) * out.xi_stride + out.offset;
            // SAFETY: at + LANES is inside out.data (out.check above).
            s.store(vb, unsafe { out.data.get_unchecked_mut(at..at + S::LANES) });
        }
    }
}

/// The output block of a run of tiles: plane `y` (`out_w` wide), rows `oy .. oy + rows`
/// (`rows <= 4`), columns from `ox` to the plane's end.
pub(super) struct OutBlock<'a> {
    /// The output plane.
    pub y: &'a mut [f32],
    /// Plane width.
    pub out_w: usize,
    /// First row.
    pub oy: usize,
    /// Rows to write.
    pub rows: usize,
    /// First column.
    pub ox: usize,
}

/// `Y = Aᵀ M A + bias`, activated, for a run of tiles, written to `out`.
#[inline(always)]
pub(super) fn output_tiles<S: Simd>(
    s: S,
    k: &Consts<S>,
    m: TileRun<&[f32]>,
    bias: S::V,
    act: &VecActivation<S>,
    out: OutBlock,
) {
    m.check::<S>();
    let mut q = [[s.zero(); 4]; 6];
    for (a, qa) in q.iter_mut().enumerate() {
        let mut row = [s.zero(); 6];
        for (b, v) in row.iter_mut().enumerate() {
            let at = (a * 6 + b) * m.xi_stride + m.offset;
            // SAFETY: at + LANES is inside m.data (m.check above).
            *v = s.load(unsafe { m.data.get_unchecked(at..at + S::LANES) });
        }
        *qa = output_1d(s, k, row);
    }
    let mut y: [S::V; 16] = [s.zero(); 16];
    for j in 0..4 {
        let mut e = [s.zero(); 6];
        for (v, qa) in e.iter_mut().zip(&q) {
            *v = qa[j];
        }
        let col = output_1d(s, k, e);
        for i in 0..4 {
            y[i * 4 + j] = s.add(col[i], bias);
        }
    }
    activate(s, act, &mut y);
    let width = (out.out_w - out.ox).min(4 * m.n);
    for i in 0..out.rows {
        // Lane l of y[i * 4 + j] is column 4 l + j: two rounds of interleaving.
        let (e0, e1) = s.interleave(y[i * 4], y[i * 4 + 2]);
        let (o0, o1) = s.interleave(y[i * 4 + 1], y[i * 4 + 3]);
        let (r0, r1) = s.interleave(e0, o0);
        let (r2, r3) = s.interleave(e1, o1);
        let start = (out.oy + i) * out.out_w + out.ox;
        let row = &mut out.y[start..start + width];
        for (v, part) in [r0, r1, r2, r3].into_iter().zip(row.chunks_mut(S::LANES)) {
            store_n(s, v, part);
        }
    }
}

/// Stores the first `dst.len()` (1..=LANES) lanes of `v`.
#[inline(always)]
fn store_n<S: Simd>(s: S, v: S::V, dst: &mut [f32]) {
    if dst.len() == S::LANES {
        s.store(v, dst)
    } else {
        s.store_partial(v, dst)
    }
}
