//! Session-time preparation of a sparse weight: its column indices checked and turned into
//! input offsets for one convolution geometry (or a matrix-vector product).

use prunus_format::sparse::SparseView;

use super::SparseRows;
use crate::kernels::ConvGeom;

/// Values per im2col pixel block (256 KiB of f32, which stay in L2 while every output
/// block passes over them; measured 1.5x faster than 64 KiB on SqueezeNet's expand 3x3
/// 55x55x16->64 at 90 % sparsity: fewer and longer row copies).
const IM2COL_BLOCK_VALUES: usize = 65536;

/// Pixel blocks of im2col are multiples of this (whole tiles of every ISA).
const IM2COL_PIXEL_ALIGN: usize = 64;

/// What a sparse convolution's offsets index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseSource {
    /// The input itself: a stride-1, unpadded 1x1 convolution (offset = input channel x
    /// plane size).
    Direct,
    /// A scratch buffer holding, for one block of `pixels` output pixels, every input
    /// patch value: row `c * kh * kw + ky * kw + kx` (all groups' input channels `c`), one
    /// value per pixel of the block.
    Im2col {
        /// Output pixels per block (the row length of the scratch).
        pixels: usize,
    },
}

impl SparseSource {
    /// The source a convolution of this geometry uses.
    pub fn for_conv(g: &ConvGeom) -> Self {
        if g.kernel == [1, 1] && g.stride == [1, 1] && g.pads == [0; 4] {
            return SparseSource::Direct;
        }
        let rows = (g.in_c * g.kernel[0] * g.kernel[1]).max(1);
        let out_hw = g.out_h * g.out_w;
        let aligned = (IM2COL_BLOCK_VALUES / rows / IM2COL_PIXEL_ALIGN).max(1) * IM2COL_PIXEL_ALIGN;
        SparseSource::Im2col {
            pixels: aligned.min(out_hw).max(1),
        }
    }

    /// Scratch values one kernel call needs (0 for [`SparseSource::Direct`]).
    pub fn scratch_len(&self, g: &ConvGeom) -> usize {
        match *self {
            SparseSource::Direct => 0,
            SparseSource::Im2col { pixels } => g.in_c * g.kernel[0] * g.kernel[1] * pixels,
        }
    }
}

/// A sparse weight's stored columns as input offsets, in session memory; with the stored
/// values (read in place from the file) it makes the kernels' [`SparseRows`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparseIndex {
    /// Output channels per block.
    block: usize,
    /// `blocks + 1` prefix sums of the blocks' stored columns.
    starts: Vec<u32>,
    /// Per stored column, the input offset it multiplies.
    offsets: Vec<u32>,
    /// The largest offset.
    max_offset: usize,
}

impl SparseIndex {
    /// Checks `view`'s columns and computes the offsets for a convolution of geometry `g`
    /// reading `source` (`view` is `[out_c, in_c / groups * kh * kw]`).
    pub fn for_conv(view: &SparseView, g: &ConvGeom, source: SparseSource) -> Result<Self, String> {
        let groups = g.groups.max(1);
        let kk = g.kernel[0] * g.kernel[1];
        let cols_per_group = g.in_c / groups * kk;
        if view.rows() != g.out_c || view.cols() != cols_per_group {
            return Err(format!(
                "{}x{} sparse matrix for a convolution of {} outputs and {cols_per_group} inputs per output",
                view.rows(),
                view.cols(),
                g.out_c
            ));
        }
        let stride = match source {
            SparseSource::Direct => g.in_h * g.in_w,
            SparseSource::Im2col { pixels } => pixels,
        };
        Self::build(view, g.out_c / groups, cols_per_group, stride)
    }

    /// Checks `view`'s columns and computes the offsets for a matrix-vector product (a Gemm
    /// `[O, K]`, or a convolution of a one-pixel plane with `groups`: offsets into the
    /// whole input vector).
    pub fn for_gemv(view: &SparseView, groups: usize) -> Result<Self, String> {
        let groups = groups.max(1);
        Self::build(view, view.rows() / groups, view.cols(), 1)
    }

    /// Offsets `(group * cols_per_group + column) * stride`, the group being that of the
    /// block's first row; checks that offsets plus `stride` (the values read from each)
    /// fit in `u32`.
    fn build(
        view: &SparseView,
        rows_per_group: usize,
        cols_per_group: usize,
        stride: usize,
    ) -> Result<Self, String> {
        let block = view.block();
        let columns = view.columns()?;
        let rows_per_group = rows_per_group.max(1);
        let mut starts = Vec::with_capacity(view.rows().div_ceil(block) + 1);
        let mut offsets = Vec::with_capacity(columns.len());
        starts.push(0u32);
        let mut k = 0;
        for (b, count) in view.counts().enumerate() {
            let group = b * block / rows_per_group;
            for &col in &columns[k..k + count] {
                let offset = (group * cols_per_group + col as usize)
                    .checked_mul(stride)
                    .filter(|o| {
                        o.checked_add(stride)
                            .is_some_and(|end| end <= u32::MAX as usize)
                    })
                    .ok_or_else(|| format!("input offset of column {col} does not fit 32 bits"))?;
                offsets.push(offset as u32);
            }
            k += count;
            starts.push(k as u32);
        }
        let max_offset = offsets.iter().copied().max().unwrap_or(0) as usize;
        Ok(SparseIndex {
            block,
            starts,
            offsets,
            max_offset,
        })
    }

    /// Bytes of session memory this index holds.
    pub fn bytes(&self) -> usize {
        (self.starts.len() + self.offsets.len()) * 4
    }

    /// Output channels per block.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Stored columns over all blocks.
    pub fn nnz(&self) -> usize {
        self.offsets.len()
    }

    /// Blocks (of output rows).
    pub fn blocks(&self) -> usize {
        self.starts.len() - 1
    }

    /// The kernels' view of blocks `blocks` of this index with the stored `values`
    /// (`block` per stored column).
    pub fn rows<'a>(&'a self, values: &'a [f32], blocks: std::ops::Range<usize>) -> SparseRows<'a> {
        SparseRows {
            block: self.block,
            values,
            starts: &self.starts[blocks.start..=blocks.end],
            offsets: &self.offsets,
            max_offset: self.max_offset,
        }
    }
}
