//! SIMD pointwise convolutions, generic over [`Simd`]: ungrouped on
//! [`Panel8`](prunus_format::Layout::Panel8) weights and grouped on row-major `[O, I/g]`
//! weights, both stride 1 without padding. Sessions run a strided one without padding
//! (Xception's and ResNet-style shortcuts) here too, on its input's strided pixels gathered
//! first ([`im2col`](crate::kernels::im2col)): Xception's four went from 9 to
//! 52-115 GMAC/s (AVX-512). Padded ones run the portable kernel.
//!
//! Pixels are split into blocks so that a block of the input (`I` x block pixels, about
//! [`BLOCK_VALUES`]) stays in L2 while every weight tile passes over it, each tile's weights
//! staying in L1 across the block; a last block shorter than a tile joins the one before.
//! Weight panels are prefetched a few KiB ahead: a large layer's weights come from memory,
//! and on small planes each is used by only a few tiles (7x7x1024->1024 with cold weights,
//! AVX-512: 56 -> 87 GMAC/s, as fast as with weights in cache). Within a block, tiles of `NV` vectors, then of one
//! vector; the last pixels of a plane are done by one more vector ending at the plane's
//! end (recomputing a few pixels, with identical results), or by partial loads when the
//! plane is narrower than a vector. A plane of one pixel (SE blocks) is a matrix-vector
//! product and runs [`gemm_simd`].

use prunus_format::layout::PANEL;

use super::portable;
use super::tile::{PanelRows, RowMajorRows, TileOut, TileWeights, tile, tile_partial};
use crate::kernels::conv::conv_generic;
use crate::kernels::gemm::gemm_simd;
use crate::kernels::simd::{PanelActivation, PanelEpilogue, Simd, SimdKernel, VecActivation};
use crate::kernels::{ConvGeom, Epilogue};

/// Input values per pixel block (64 KiB of f32; measured as for the portable kernel).
const BLOCK_VALUES: usize = 16384;

/// Most tiles per pixel block (bounds the block for thin inputs).
const MAX_BLOCK_TILES: usize = 16;

/// 1x1 convolution, `groups == 1`, on Panel8 `[O, I]` weights, any stride and padding
/// (strided or padded ones, and CPUs without `S`, run the portable kernel).
pub fn conv1x1_simd<S: Simd>(g: &ConvGeom, x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let hw = g.in_h * g.in_w;
    let flat = g.stride == [1, 1] && g.pads == [0; 4] && g.groups == 1 && g.kernel == [1, 1];
    match S::detect() {
        Some(_) if flat && hw == 1 && epi.residual.is_none() => gemm_simd::<S>(x, w, epi, y),
        Some(s) if flat && hw > 0 && g.in_c > 0 && g.out_c > 0 => {
            check(
                g,
                x,
                w.len(),
                epi,
                y,
                g.out_c.div_ceil(PANEL) * PANEL * g.in_c,
            );
            s.vectorize(Pointwise {
                g,
                x,
                w,
                panel8: true,
                epi,
                y,
            })
        }
        _ => portable::conv1x1(g, x, w, epi, y),
    }
}

/// Grouped 1x1 convolution (`1 < groups < in_c`) on row-major `[O, I/groups]` weights, as
/// one kernel over all groups; strided or padded ones run the generic convolution.
pub fn group_conv1x1_simd<S: Simd>(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    epi: &Epilogue,
    y: &mut [f32],
) {
    let flat = g.stride == [1, 1] && g.pads == [0; 4] && g.kernel == [1, 1];
    let hw = g.in_h * g.in_w;
    let sizes_ok = g.groups > 0
        && g.in_c.is_multiple_of(g.groups)
        && g.out_c.is_multiple_of(g.groups)
        && g.in_c > 0
        && g.out_c > 0
        && hw > 0;
    match S::detect() {
        Some(s) if flat && sizes_ok => {
            check(g, x, w.len(), epi, y, g.out_c * (g.in_c / g.groups));
            s.vectorize(Pointwise {
                g,
                x,
                w,
                panel8: false,
                epi,
                y,
            })
        }
        _ => conv_generic(g, x, w, epi, y),
    }
}

/// Entry checks (once per call; the loops index within these lengths).
fn check(g: &ConvGeom, x: &[f32], w_len: usize, epi: &Epilogue, y: &[f32], want_w: usize) {
    assert_eq!(g.in_h * g.in_w, g.out_h * g.out_w, "conv1x1: output size");
    assert_eq!(x.len(), g.in_c * g.in_h * g.in_w, "conv1x1: input length");
    assert_eq!(w_len, want_w, "conv1x1: weight length");
    assert_eq!(
        y.len(),
        g.out_c * g.out_h * g.out_w,
        "conv1x1: output length"
    );
    assert!(
        epi.bias.is_none_or(|b| b.len() == g.out_c),
        "conv1x1: bias length"
    );
    assert!(
        epi.residual.is_none_or(|r| r.len() == y.len()),
        "conv1x1: residual length"
    );
}

/// A checked stride-1 pointwise convolution.
struct Pointwise<'a> {
    g: &'a ConvGeom,
    x: &'a [f32],
    w: &'a [f32],
    /// `w` is Panel8 `[O, I]` (`groups == 1`), else row-major `[O, I/groups]`.
    panel8: bool,
    epi: &'a Epilogue<'a>,
    y: &'a mut [f32],
}

impl SimdKernel for Pointwise<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // Tile shape from the register file: R x NV accumulators, NV inputs, R broadcasts.
        // 32 registers: 8 x 3 (24 + 3 + 2 on NEON, whose broadcasts are lanes of 2 loads).
        // 16 registers: 4 x 2 (8 + 2 + 4). 4 x 3 would fit in theory but LLVM spilled
        // accumulators every iteration with it (measured 30-50% slower).
        if S::REGISTERS >= 32 {
            self.blocks::<S, 8, 3>(s)
        } else {
            self.blocks::<S, 4, 2>(s)
        }
    }
}

impl Pointwise<'_> {
    /// Pixel blocks, then weight tiles of `R` output channels, then pixel tiles.
    #[inline(always)]
    fn blocks<S: Simd, const R: usize, const NV: usize>(self, s: S) {
        let Pointwise {
            g,
            x,
            w,
            panel8,
            epi,
            y,
        } = self;
        let (ic, oc, groups) = (g.in_c, g.out_c, g.groups);
        let (icg, ocg) = (ic / groups, oc / groups);
        let hw = g.in_h * g.in_w;
        let act = VecActivation::new(s, epi.activation);
        let asm_act = PanelActivation::of(epi.activation);
        let tw = NV * S::LANES;
        let block = (BLOCK_VALUES / icg / tw).clamp(1, MAX_BLOCK_TILES) * tw;
        let mut b0 = 0;
        while b0 < hw {
            // A last block shorter than a tile joins this one: the weights, which large
            // layers read from memory once per block, are not fetched again for a few pixels.
            let end = if hw - b0 < block + tw { hw } else { b0 + block };
            let cols = b0..end;
            b0 = end;
            if panel8 {
                let panels = w.as_chunks::<PANEL>().0.chunks_exact(ic);
                for (p, wp) in panels.take(oc.div_ceil(PANEL)).enumerate() {
                    for h in 0..PANEL / R {
                        let o0 = p * PANEL + h * R;
                        if o0 >= oc {
                            break;
                        }
                        let rows = R.min(oc - o0);
                        let out = TileOut {
                            bias: tile_bias::<S, R>(s, epi.bias, o0, rows),
                            act: &act,
                            rows,
                            residual: epi.residual.map(|r| &r[o0 * hw..(o0 + rows) * hw]),
                        };
                        let asm = match (R == PANEL && rows == PANEL, asm_act) {
                            (true, Some(act)) => Some(AsmPanel {
                                w: wp,
                                epi: PanelEpilogue {
                                    bias: epi
                                        .bias
                                        .map(|b| b[o0..o0 + PANEL].try_into().expect("8 biases")),
                                    residual: out.residual,
                                    act,
                                },
                            }),
                            _ => None,
                        };
                        let yt = &mut y[o0 * hw..(o0 + rows) * hw];
                        let w0 = PanelRows::<0>(wp);
                        match h {
                            0 => pixels::<S, _, R, NV>(s, w0, asm, x, &out, yt, hw, &cols),
                            _ => {
                                let w1 = PanelRows::<1>(wp);
                                pixels::<S, _, R, NV>(s, w1, None, x, &out, yt, hw, &cols)
                            }
                        }
                    }
                }
            } else {
                for grp in 0..groups {
                    let xg = &x[grp * icg * hw..(grp + 1) * icg * hw];
                    for o0 in (grp * ocg..(grp + 1) * ocg).step_by(R) {
                        let rows = R.min((grp + 1) * ocg - o0);
                        // Rows past the group's last repeat its first row: computed, not stored.
                        let mut wr = [&w[o0 * icg..(o0 + 1) * icg]; R];
                        for (r, row) in wr.iter_mut().enumerate().take(rows) {
                            *row = &w[(o0 + r) * icg..(o0 + r + 1) * icg];
                        }
                        let wr = RowMajorRows::new(wr);
                        let out = TileOut {
                            bias: tile_bias::<S, R>(s, epi.bias, o0, rows),
                            act: &act,
                            rows,
                            residual: epi.residual.map(|r| &r[o0 * hw..(o0 + rows) * hw]),
                        };
                        let yt = &mut y[o0 * hw..(o0 + rows) * hw];
                        pixels::<S, _, R, NV>(s, wr, None, xg, &out, yt, hw, &cols);
                    }
                }
            }
        }
    }
}

/// The bias of output channels `o0 .. o0 + rows`, splatted; zero past `rows` or without.
#[inline(always)]
fn tile_bias<S: Simd, const R: usize>(
    s: S,
    bias: Option<&[f32]>,
    o0: usize,
    rows: usize,
) -> [S::V; R] {
    let mut out = [s.zero(); R];
    if let Some(b) = bias {
        for (o, &b) in out.iter_mut().zip(&b[o0..o0 + rows]) {
            *o = s.splat(b);
        }
    }
    out
}

/// A whole 8-row panel's weights and epilogue, for the ISA's assembly tile
/// ([`Simd::panel_tile_8x3`]).
#[derive(Clone, Copy)]
struct AsmPanel<'a> {
    w: &'a [[f32; PANEL]],
    epi: PanelEpilogue<'a>,
}

/// One weight tile over the pixel range `cols` of planes of `hw` values; its full tiles by
/// the ISA's assembly tile where it has one and `asm` is given.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pixels<S: Simd, W: TileWeights<R>, const R: usize, const NV: usize>(
    s: S,
    w: W,
    asm: Option<AsmPanel>,
    x: &[f32],
    out: &TileOut<S, R>,
    y: &mut [f32],
    hw: usize,
    cols: &std::ops::Range<usize>,
) {
    let l = S::LANES;
    let tw = NV * l;
    let mut col = cols.start;
    while col + tw <= cols.end {
        let done = match &asm {
            Some(a) if NV == 3 => s.panel_tile_8x3(x, hw, col, a.w, &a.epi, y),
            _ => false,
        };
        if !done {
            out.store(s, tile::<S, W, R, NV>(s, w, x, hw, col), y, hw, col, tw);
        }
        col += tw;
    }
    while col + l <= cols.end {
        out.store(s, tile::<S, W, R, 1>(s, w, x, hw, col), y, hw, col, l);
        col += l;
    }
    if col < cols.end {
        if hw >= l {
            // Blocks are whole tiles, so only the plane's end has a tail: one vector ending
            // there, recomputing (bit-identically) pixels already stored.
            let last = hw - l;
            out.store(s, tile::<S, W, R, 1>(s, w, x, hw, last), y, hw, last, l);
        } else {
            let n = cols.end - col;
            out.store(
                s,
                tile_partial::<S, W, R>(s, w, x, hw, col, n),
                y,
                hw,
                col,
                n,
            );
        }
    }
}
