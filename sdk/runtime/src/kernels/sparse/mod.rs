//! Sparse convolutions and fully connected layers on weights stored in the blocked sparse
//! encoding ([`Encoding::SparseBlocks`](prunus_format::Encoding::SparseBlocks)).
//!
//! A weight is a matrix of `O` rows taken in blocks of `block` (1, 2 or 4) output channels;
//! each block stores the columns where any of its rows is non-zero, with `block` values per
//! column. At session creation every column is turned into the element offset of the input
//! row it multiplies ([`SparseIndex`], `index.rs`), so a kernel never decodes indices.
//!
//! - [`sparse_conv_simd`] (`simd.rs`), generic over [`Simd`](super::simd::Simd), and
//!   [`sparse_conv`] (`portable.rs`): CHW convolutions vectorised along the pixels. A tile
//!   is `block` output rows x several vectors of pixels, accumulated in registers: per
//!   stored column the tile loads its input vectors once and does `block` FMAs with each
//!   (a block of 4 is one input load per 4 FMAs, which is why blocks pay), then the fused
//!   bias, residual (a fused `Add`, if any) and activation. Pixels are taken in blocks so that the input rows of a block stay
//!   in cache while every output block passes over them.
//! - Pointwise stride-1 unpadded convolutions (grouped ones too: the offsets include the
//!   group's first input channel) read the input in place ([`SparseSource::Direct`]).
//!   Every other convolution (kxk, strided or padded 1x1, grouped) first copies each pixel
//!   block's input patches into a scratch buffer ([`im2col`](crate::kernels::im2col);
//!   [`SparseSource::Im2col`]), sized once at session creation, then runs the same tiles
//!   over it. Im2col was chosen over shifted products over the taps for its single code
//!   path (strides, pads, dilation and groups), not by measurement against them. Measured
//!   on SqueezeNet's expand 3x3 55x55x16->64, block 4 (AVX-512, best of 30): dense 290 us,
//!   sparse 220 us at 50 %, 97 us at 90 %, and 77 us with no stored column at all, i.e.
//!   the copy (16 x 9 rows x 3025 pixels) is most of the time at high sparsity. Shifted
//!   products on a once-padded input (8x fewer copied values here) are the next step for
//!   sparse kxk.
//! - [`sparse_gemv`] (`gemv.rs`): fully connected layers and pointwise convolutions of a
//!   one-pixel plane (squeeze-excitation): a gather of the input per stored column, the
//!   same code for every ISA (it is bound by the gathers and the value stream, not by
//!   arithmetic).
//!
//! [`SparseBench`] times the sparse kernel against the dense one on a shape (benches, and the
//! tool's per-layer choice).
//!
//! Each output value is the sum, in stored-column order, of its block's products, then
//! bias and activation: the same code and order whatever pixel block, tile or thread
//! computes it, so results are bitwise identical for any thread count.

mod gemv;
mod index;
mod measure;
mod portable;
mod simd;
#[cfg(test)]
mod tests;

use prunus_format::sparse::BLOCK_SIZES;

use crate::kernels::{ConvGeom, Epilogue};

pub use gemv::sparse_gemv;
pub use index::{SparseIndex, SparseSource};
pub use measure::SparseBench;
pub use portable::sparse_conv;
pub use simd::sparse_conv_simd;

/// A sparse weight as the kernels read it: the blocks of one call's output rows, their
/// stored columns' values and input offsets. Made by [`SparseIndex::rows`] (so that its
/// offsets were bounded when the index was built).
#[derive(Clone, Copy, Debug)]
pub struct SparseRows<'a> {
    /// Output channels per block (1, 2 or 4).
    pub(crate) block: usize,
    /// `block` values per stored column (all stored columns of the weight).
    pub(crate) values: &'a [f32],
    /// For the call's blocks, where their stored columns start: block `b` owns stored
    /// columns `starts[b] .. starts[b + 1]` (indices into `offsets`, and `values / block`).
    pub(crate) starts: &'a [u32],
    /// Per stored column, the element offset of the input row it multiplies (in the input
    /// for [`SparseSource::Direct`], in the im2col block for [`SparseSource::Im2col`]).
    pub(crate) offsets: &'a [u32],
    /// The largest of `offsets` (0 if none).
    pub(crate) max_offset: usize,
}

impl SparseRows<'_> {
    /// Blocks of this call.
    pub fn blocks(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Checks the invariants the kernels rely on (panics otherwise, like every kernel's
    /// entry checks), in `O(blocks)`: block size, increasing starts within `offsets`,
    /// enough values, `rows` output rows in whole blocks but the last, and every offset
    /// plus `span` within `source_len`.
    pub(crate) fn check(&self, rows: usize, span: usize, source_len: usize) {
        assert!(BLOCK_SIZES.contains(&self.block), "sparse: block size");
        assert!(!self.starts.is_empty(), "sparse: no block starts");
        assert!(
            self.starts.windows(2).all(|w| w[0] <= w[1]),
            "sparse: block starts decrease"
        );
        let last = self.starts[self.blocks()] as usize;
        assert!(
            last <= self.offsets.len(),
            "sparse: block starts past the offsets"
        );
        assert!(
            self.values.len() >= last * self.block,
            "sparse: fewer values than stored columns"
        );
        let blocks = self.blocks();
        assert!(
            rows <= blocks * self.block && rows + self.block > blocks * self.block,
            "sparse: {rows} output rows for {blocks} blocks of {}",
            self.block
        );
        assert!(
            self.offsets.is_empty() || self.max_offset + span <= source_len,
            "sparse: input offset {} + {span} past {source_len}",
            self.max_offset
        );
    }
}

/// A sparse convolution's arguments besides data: the geometry (`out_c` is the call's
/// output rows), the weight and where its offsets point.
#[derive(Clone, Copy, Debug)]
pub struct SparseConv<'a> {
    /// Geometry of the whole convolution (the call computes `y.len() / (out_h * out_w)`
    /// output channels, those of `weights`' blocks).
    pub geom: &'a ConvGeom,
    /// The call's blocks.
    pub weights: SparseRows<'a>,
    /// What the offsets index.
    pub source: SparseSource,
}

/// A sparse convolution kernel: `(conv, x [in_c * in_h * in_w], epilogue (bias of the
/// call's rows), y [rows * out_h * out_w], scratch)`; `scratch` needs
/// [`SparseSource::scratch_len`] values.
pub type SparseConvFn = fn(&SparseConv, &[f32], &Epilogue, &mut [f32], &mut [f32]);

/// A sparse matrix-vector product: `(weights (offsets into x), x, epilogue, y [rows])`.
pub type SparseGemvFn = fn(&SparseRows, &[f32], &Epilogue, &mut [f32]);

/// Entry checks of the convolution kernels; returns the output rows of the call.
fn check_conv(c: &SparseConv, x: &[f32], epi: &Epilogue, y: &[f32], scratch: &[f32]) -> usize {
    let g = c.geom;
    let out_hw = g.out_h * g.out_w;
    assert!(out_hw > 0, "sparse conv: empty output");
    assert_eq!(
        x.len(),
        g.in_c * g.in_h * g.in_w,
        "sparse conv: input length"
    );
    assert!(y.len().is_multiple_of(out_hw), "sparse conv: output length");
    let rows = y.len() / out_hw;
    assert!(
        epi.bias.is_none_or(|b| b.len() == rows),
        "sparse conv: bias length"
    );
    assert!(
        epi.residual.is_none_or(|r| r.len() == y.len()),
        "sparse conv: residual length"
    );
    match c.source {
        SparseSource::Direct => {
            assert!(
                g.kernel == [1, 1] && g.stride == [1, 1] && g.pads == [0; 4],
                "sparse conv: direct source needs a flat 1x1 convolution"
            );
            assert_eq!(g.in_h * g.in_w, out_hw, "sparse conv: plane size");
            c.weights.check(rows, out_hw, x.len());
        }
        SparseSource::Im2col { pixels } => {
            assert!(pixels > 0, "sparse conv: empty pixel block");
            let len = c.source.scratch_len(g);
            assert!(scratch.len() >= len, "sparse conv: scratch length");
            c.weights.check(rows, pixels, len);
        }
    }
    rows
}
