//! 3x3 stride-1 convolutions (ungrouped) by Winograd F(4x4, 3x3): 36 multiplies per 4x4
//! output block instead of 144, for SqueezeNet's expand and Xception's entry
//! convolutions.
//!
//! Per block of tile rows (sized so the block's transformed input and products stay in
//! L2, `BLOCK_VALUES`):
//! 1. each input channel's band of padded rows is copied once, de-interleaved by column
//!    phase (four phases per `ld4` on NEON: SqueezeNet 85.4 -> 84.3 M instructions per
//!    inference), and `V = Bᵀ d B` is computed for every 6x6 input tile, vectorised across
//!    tiles (`transform.rs`);
//! 2. the 36 products `M_ξ = U_ξ V_ξ` are pointwise convolutions over "pixels" that are
//!    tiles, run by the pointwise kernel ([`conv1x1_simd`]) on Panel8 weights;
//! 3. `Y = Aᵀ M A`, bias and activation are written as 4x4 output blocks.
//!
//! The weights `U = G g Gᵀ` are transformed once, when a session is created
//! ([`pack_weights`]), into session memory: 36 Panel8 matrices, 4x the 3x3 weight. A file
//! keeps the 3x3 weight (it stays small, and the choice between this kernel and the direct
//! one is the runtime's, per ISA).
//!
//! Numerics: the transforms multiply by up to 8 and the weight transform by fractions of
//! 24, so rounding errors grow with the magnitudes summed, not with the result: the
//! property tests bound each output's error by 1e-5 of its sum of `|x w|` (an f64
//! reference); measured errors are about a tenth of that.

mod transform;

#[cfg(test)]
mod tests;

use prunus_format::Activation;
use prunus_format::layout::PANEL;

use self::transform::{Consts, OutBlock, Phases, TileRun, input_tiles, output_tiles, weight_tiles};
use crate::kernels::conv1x1::conv1x1_simd;
use crate::kernels::simd::{MAX_LANES, Simd, SimdKernel, VecActivation};
use crate::kernels::{ConvGeom, Epilogue};

/// A Winograd convolution: `(geometry, x, weights, epilogue, y, scratch)`; `scratch` holds
/// at least [`scratch_len`] values. The geometry's `out_c` is the call's share of the
/// weights' output channels.
pub type WinogradFn = fn(&ConvGeom, &[f32], WinogradWeights, &Epilogue, &mut [f32], &mut [f32]);

/// Transformed weights ([`pack_weights`]) and which of their output channels a call
/// computes: `geom.out_c` of them from `first`.
#[derive(Clone, Copy, Debug)]
pub struct WinogradWeights<'a> {
    /// All of [`pack_weights`]' output.
    pub u: &'a [f32],
    /// Output channels the weights were packed for.
    pub out_c: usize,
    /// The call's first output channel (a multiple of [`PANEL`]).
    pub first: usize,
}

/// Transformed values per tile.
const XI: usize = 36;

/// Values of `V` and `M` per block of tile rows (2 MiB of f32). Measured on AVX-512 (1 MiB
/// L2): 512 KiB blocks ran SqueezeNet's 3x3 layers 1.2x slower (the products of fewer tiles
/// per call), whole-layer blocks Xception's entry convolution 1.2x slower.
const BLOCK_VALUES: usize = 524_288;

/// Fewest input and output channels for which the transforms pay for themselves.
const MIN_CHANNELS: usize = 8;

/// Whether `g` runs this kernel: 3x3, stride 1, dilation 1, ungrouped, with at least
/// `MIN_CHANNELS` (8) input and output channels.
pub fn applies(g: &ConvGeom) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.in_c >= MIN_CHANNELS
        && g.out_c >= MIN_CHANNELS
        && g.out_h * g.out_w > 0
        && g.out_h + 2 == g.in_h + g.pads[0] + g.pads[2]
        && g.out_w + 2 == g.in_w + g.pads[1] + g.pads[3]
}

/// Tiles along H and W.
fn tiles(g: &ConvGeom) -> [usize; 2] {
    [g.out_h.div_ceil(4), g.out_w.div_ceil(4)]
}

/// Tile rows per block: as many as fit `BLOCK_VALUES` with all `out_c` output channels
/// of the weights (the same for every share of them a call computes), at least one.
fn block_rows(g: &ConvGeom, out_c: usize) -> usize {
    let [th, tw] = tiles(g);
    let per_tile = XI * (g.in_c + out_c);
    (BLOCK_VALUES / (per_tile * tw)).clamp(1, th)
}

/// Values per phase row of the de-interleaved band (see [`Phases::stride`]).
fn phase_stride(g: &ConvGeom) -> usize {
    tiles(g)[1].next_multiple_of(MAX_LANES) + 1
}

/// Values of one Panel8 weight matrix `[out_c, in_c]`.
fn matrix_len(out_c: usize, in_c: usize) -> usize {
    out_c.div_ceil(PANEL) * PANEL * in_c
}

/// Length of [`pack_weights`]' output.
pub fn packed_len(g: &ConvGeom) -> usize {
    XI * matrix_len(g.out_c, g.in_c)
}

/// Scratch values a call needs: `V` and `M` of one block, and one channel's band. `g`
/// has all the weights' output channels; a call computing a share of them needs no more.
pub fn scratch_len(g: &ConvGeom) -> usize {
    let rows = block_rows(g, g.out_c);
    XI * ((g.in_c + g.out_c) * rows * tiles(g)[1] + 2 * MAX_LANES)
        + (4 * rows + 2) * 4 * phase_stride(g)
}

/// `U_ξ = (G g Gᵀ)_ξ` of the OIHW 3x3 weight `w`, as 36 Panel8 `[out_c, in_c]` matrices
/// (padding rows zero). Panics if `w` is not `out_c * in_c * 9` long.
pub fn pack_weights(g: &ConvGeom, w: &[f32]) -> Vec<f32> {
    assert_eq!(w.len(), g.out_c * g.in_c * 9, "winograd: weight length");
    let len = matrix_len(g.out_c, g.in_c);
    let mut u = vec![0.0; XI * len];
    let kernels = w.as_chunks::<9>().0;
    for p in 0..g.out_c.div_ceil(PANEL) {
        for i in 0..g.in_c {
            // Element t of the panel's kernels for input channel i, one lane per row.
            let mut lanes = [[0.0; PANEL]; 9];
            for (r, o) in (p * PANEL..g.out_c.min((p + 1) * PANEL)).enumerate() {
                for (lane, &v) in lanes.iter_mut().zip(&kernels[o * g.in_c + i]) {
                    lane[r] = v;
                }
            }
            let at = (p * g.in_c + i) * PANEL;
            for (xi, tile) in weight_tiles(&lanes).iter().enumerate() {
                u[xi * len + at..xi * len + at + PANEL].copy_from_slice(tile);
            }
        }
    }
    u
}

/// The Winograd convolution, generic over the ISA. The epilogue's residual is not read
/// (lowering gives none). Panics on inconsistent lengths, or if the CPU lacks `S` (the
/// kernel table holds this kernel only for detected ISAs).
pub fn winograd_simd<S: Simd>(
    g: &ConvGeom,
    x: &[f32],
    w: WinogradWeights,
    epi: &Epilogue,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    assert!(applies(g), "winograd: geometry {g:?}");
    assert_eq!(x.len(), g.in_c * g.in_h * g.in_w, "winograd: input length");
    let full = matrix_len(w.out_c, g.in_c);
    assert_eq!(w.u.len(), XI * full, "winograd: weight length");
    assert!(
        w.first.is_multiple_of(PANEL) && w.first + g.out_c <= w.out_c,
        "winograd: output channels"
    );
    // Each ξ's rows of this call's channels: a run of whole panels of its matrix.
    let u = (full, w.first * g.in_c, matrix_len(g.out_c, g.in_c));
    assert_eq!(
        y.len(),
        g.out_c * g.out_h * g.out_w,
        "winograd: output length"
    );
    assert!(
        epi.bias.is_none_or(|b| b.len() == g.out_c),
        "winograd: bias"
    );
    let whole = ConvGeom {
        out_c: w.out_c,
        ..*g
    };
    assert!(
        scratch.len() >= scratch_len(&whole),
        "winograd: scratch length"
    );
    let s = S::detect().expect("winograd: the kernel table holds only detected ISAs");
    s.vectorize(Winograd {
        g,
        x,
        w: w.u,
        u,
        rows: block_rows(g, w.out_c),
        bias: epi.bias,
        act: epi.activation,
        y,
        scratch,
    });
}

/// A checked call.
struct Winograd<'a> {
    g: &'a ConvGeom,
    x: &'a [f32],
    w: &'a [f32],
    /// Values per ξ in `w`, offset and length of the call's rows in each.
    u: (usize, usize, usize),
    /// Tile rows per block.
    rows: usize,
    bias: Option<&'a [f32]>,
    act: Activation,
    y: &'a mut [f32],
    scratch: &'a mut [f32],
}

impl SimdKernel for Winograd<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let g = self.g;
        let [th, tw] = tiles(g);
        let rows = self.rows;
        let k = Consts::new(s);
        let act = VecActivation::new(s, self.act);
        let (in_hw, out_hw) = (g.in_h * g.in_w, g.out_h * g.out_w);
        // Each ξ's matrix is followed by a vector of slack: runs of fewer tiles than
        // lanes are stored and loaded as whole vectors (see `TileRun`).
        let (vm, band) = self
            .scratch
            .split_at_mut(XI * ((g.in_c + g.out_c) * rows * tw + 2 * MAX_LANES));
        // Zero once: fills write only the values runs of stored tiles read.
        band.fill(0.0);
        let mut band = Phases {
            data: band,
            stride: phase_stride(g),
            len: tw + 1,
        };
        for ty0 in (0..th).step_by(rows) {
            let nrows = rows.min(th - ty0);
            let tb = nrows * tw;
            let (v_stride, m_stride) = (g.in_c * tb + MAX_LANES, g.out_c * tb + MAX_LANES);
            let (v, rest) = vm.split_at_mut(XI * v_stride);
            let m = &mut rest[..XI * m_stride];
            for (c, plane) in self.x.chunks_exact(in_hw).enumerate() {
                let dims = [g.in_h, g.in_w];
                band.fill(
                    s,
                    plane,
                    dims,
                    [g.pads[0], g.pads[1]],
                    4 * ty0,
                    4 * nrows + 2,
                );
                for r in 0..nrows {
                    for t in (0..tw).step_by(S::LANES) {
                        let run = TileRun {
                            data: &mut *v,
                            xi_stride: v_stride,
                            offset: c * tb + r * tw + t,
                            n: S::LANES.min(tw - t),
                        };
                        input_tiles(s, &k, &band, 4 * r, t, run);
                    }
                }
            }
            products::<S>(g, tb, (v, v_stride), (self.w, self.u), (m, m_stride));
            for (o, plane) in self.y.chunks_exact_mut(out_hw).enumerate() {
                let bias = s.splat(self.bias.map_or(0.0, |b| b[o]));
                for r in 0..nrows {
                    let oy = 4 * (ty0 + r);
                    for t in (0..tw).step_by(S::LANES) {
                        let run = TileRun {
                            data: &*m,
                            xi_stride: m_stride,
                            offset: o * tb + r * tw + t,
                            n: S::LANES.min(tw - t),
                        };
                        let out = OutBlock {
                            y: plane,
                            out_w: g.out_w,
                            oy,
                            rows: (g.out_h - oy).min(4),
                            ox: 4 * t,
                        };
                        output_tiles(s, &k, run, bias, &act, out);
                    }
                }
            }
        }
    }
}

/// `M_ξ = U_ξ V_ξ` for the 36 `ξ` of a block of `tb` tiles: pointwise convolutions whose
/// pixels are the tiles. `V_ξ` and `M_ξ` start every `v_stride` and `m_stride` values;
/// `U_ξ` is `w[ξ * per_xi + offset..][..len]`.
fn products<S: Simd>(
    g: &ConvGeom,
    tb: usize,
    (v, v_stride): (&[f32], usize),
    (w, (per_xi, offset, len)): (&[f32], (usize, usize, usize)),
    (m, m_stride): (&mut [f32], usize),
) {
    let geom = ConvGeom {
        in_c: g.in_c,
        in_h: 1,
        in_w: tb,
        out_c: g.out_c,
        out_h: 1,
        out_w: tb,
        kernel: [1, 1],
        stride: [1, 1],
        pads: [0; 4],
        dilation: [1, 1],
        groups: 1,
    };
    let none = Epilogue::new(None, Activation::None);
    let vm = v.chunks_exact(v_stride).zip(m.chunks_exact_mut(m_stride));
    for (xi, (v, m)) in vm.enumerate() {
        let at = xi * per_xi + offset;
        let m = &mut m[..g.out_c * tb];
        conv1x1_simd::<S>(&geom, &v[..g.in_c * tb], &w[at..at + len], &none, m);
    }
}
