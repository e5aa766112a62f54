//! Measuring a sparse convolution against its dense kernel on one shape, for benchmarks and
//! for the tool's per-layer choice between the two (a layer is worth storing sparse only
//! where the sparse kernel is faster on the target).

use std::time::{Duration, Instant};

use prunus_format::Activation;
use prunus_format::layout::pack_panel8;
use prunus_format::sparse::{BLOCK_SIZES, SparseView, encode};

use super::{SparseConv, SparseIndex, SparseSource};
use crate::kernels::{ConvFn, ConvGeom, Epilogue, Isa, KernelTable};

/// One convolution with block-pruned random weights, runnable with the dense and the sparse
/// kernel of an ISA on the same data.
#[derive(Clone, Debug)]
pub struct SparseBench {
    geom: ConvGeom,
    table: KernelTable,
    dense: ConvFn,
    x: Vec<f32>,
    /// Dense weights in the layout `dense` reads.
    w: Vec<f32>,
    bias: Vec<f32>,
    values: Vec<f32>,
    index: SparseIndex,
    source: SparseSource,
    scratch: Vec<f32>,
    y: Vec<f32>,
}

impl SparseBench {
    /// A convolution of geometry `g` whose weight keeps each (block of `block` rows,
    /// column) with probability `1 - sparsity` (as block pruning leaves it), for `isa`.
    /// Errors for what the sparse kernels do not run: depthwise convolutions, blocks other
    /// than 1, 2, 4 or not dividing the outputs of a group, inconsistent geometries.
    pub fn new(
        isa: Isa,
        g: ConvGeom,
        block: usize,
        sparsity: f64,
        seed: u64,
    ) -> Result<Self, String> {
        if g.groups > 1 && g.groups == g.in_c && g.in_c == g.out_c {
            return Err("sparse kernels do not run depthwise convolutions".into());
        }
        let groups_ok = g.groups > 0
            && g.in_c.is_multiple_of(g.groups)
            && g.out_c.is_multiple_of(g.groups)
            && (g.groups == 1 || (g.out_c / g.groups).is_multiple_of(block));
        if !BLOCK_SIZES.contains(&block) || !groups_ok || g.out_c * g.out_h * g.out_w == 0 {
            return Err(format!("no sparse kernel for block {block} on {g:?}"));
        }
        let cols = g.in_c / g.groups * g.kernel[0] * g.kernel[1];
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut w = vec![0.0f32; g.out_c * cols];
        for b0 in (0..g.out_c).step_by(block) {
            for c in 0..cols {
                if next() >= sparsity {
                    for o in b0..(b0 + block).min(g.out_c) {
                        w[o * cols + c] = (next() * 2.0 - 1.0) as f32 * 0.1;
                    }
                }
            }
        }
        let m = encode(&w, g.out_c, cols, block);
        let view = SparseView::new(&m.bytes, g.out_c, cols, m.encoding())?;
        let source = SparseSource::for_conv(&g);
        let index = SparseIndex::for_conv(&view, &g, source)?;
        let table = KernelTable::for_isa(isa);
        let (dense, w) = if g.kernel == [1, 1] && g.groups == 1 {
            (table.conv1x1, pack_panel8(&w, g.out_c, cols))
        } else if g.kernel == [1, 1] {
            (table.group_conv1x1, w)
        } else {
            (table.conv, w)
        };
        let x = (0..g.in_c * g.in_h * g.in_w)
            .map(|_| next() as f32 * 2.0 - 1.0)
            .collect();
        Ok(SparseBench {
            geom: g,
            table,
            dense,
            x,
            w,
            bias: (0..g.out_c).map(|o| o as f32 * 0.01).collect(),
            values: view.values(),
            scratch: vec![0.0; source.scratch_len(&g)],
            index,
            source,
            y: vec![0.0; g.out_c * g.out_h * g.out_w],
        })
    }

    /// Stored columns of the sparse weight (over all blocks).
    pub fn nnz(&self) -> usize {
        self.index.nnz()
    }

    /// The output of the last run.
    pub fn output(&self) -> &[f32] {
        &self.y
    }

    /// Runs the dense kernel once (ReLU epilogue with bias).
    pub fn run_dense(&mut self) {
        let epi = Epilogue::new(Some(&self.bias), Activation::Relu);
        (self.dense)(&self.geom, &self.x, &self.w, &epi, &mut self.y);
    }

    /// Runs the sparse kernel once (same epilogue).
    pub fn run_sparse(&mut self) {
        let epi = Epilogue::new(Some(&self.bias), Activation::Relu);
        let conv = SparseConv {
            geom: &self.geom,
            weights: self.index.rows(&self.values, 0..self.index.blocks()),
            source: self.source,
        };
        (self.table.sparse_conv)(&conv, &self.x, &epi, &mut self.y, &mut self.scratch);
    }

    /// Best time of `runs` calls of the dense kernel and of the sparse kernel (after one
    /// warm-up call each).
    pub fn best_times(&mut self, runs: usize) -> (Duration, Duration) {
        let best = |f: &mut dyn FnMut()| {
            f();
            (0..runs.max(1))
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let dense = best(&mut || self.run_dense());
        let sparse = best(&mut || self.run_sparse());
        (dense, sparse)
    }
}
