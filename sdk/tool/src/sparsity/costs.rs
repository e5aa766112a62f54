//! Cost constants of the dense and sparse kernels, per instruction set.
//!
//! A layer is a `[rows, cols]` weight matrix applied at `pixels` output positions. Its
//! predicted cost is linear in the work:
//!
//! * dense: `dense_mac · rows·cols·pixels + dense_output · rows·pixels
//!   + dense_input · cols·pixels + dense_weight · rows·cols`
//! * sparse, blocks of `b` rows, `nnz` stored columns:
//!   `sparse_value[b] · nnz·b·pixels + sparse_output[b] · rows·pixels
//!   + sparse_input[b] · cols·pixels + sparse_weight[b] · nnz·b`
//!
//! (the input term is the im2col copy of k×k convolutions and the input traffic of large
//! planes; the weight term is the per-weight work that does not scale with the pixels,
//! which dominates small planes).
//!
//! The constants are fitted (least relative squared error) to one-node models over a grid
//! of shapes and densities by [`super::measure`]; re-measure with
//! `prunus sparse-costs` (x86-64 timings, ns) or
//! `prunus sparse-costs --measure-cmd 'toolchains/insn-per-inference.sh target/aarch64-unknown-linux-gnu/release/prunus'`
//! (aarch64 instructions under qemu) and paste the printed constants here. Only ratios
//! within one target matter, so the two targets' units differ.

use super::{SparseOp, Workload};

/// Cost constants of one op kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpCosts {
    /// Dense: per multiply-accumulate.
    pub dense_mac: f64,
    /// Dense: per output element (bias, activation, store, loop overhead).
    pub dense_output: f64,
    /// Dense: per input element of the matrix view (`cols · pixels`).
    pub dense_input: f64,
    /// Dense: per weight (`rows · cols`), whatever the pixels.
    pub dense_weight: f64,
    /// Sparse: per stored value and output position, for blocks of 1, 2, 4 rows.
    pub sparse_value: [f64; 3],
    /// Sparse: per output element, for blocks of 1, 2, 4 rows.
    pub sparse_output: [f64; 3],
    /// Sparse: per input element of the matrix view, for blocks of 1, 2, 4 rows.
    pub sparse_input: [f64; 3],
    /// Sparse: per stored value (`nnz · b`), whatever the pixels, for blocks of 1, 2, 4 rows.
    pub sparse_weight: [f64; 3],
}

/// Cost constants of one instruction set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IsaCosts {
    /// What one unit of cost is (`ns` or `insn`).
    pub unit: &'static str,
    /// Where the constants came from.
    pub source: &'static str,
    /// 1x1 convolutions (grouped ones too).
    pub pointwise: OpCosts,
    /// k×k convolutions with one group.
    pub spatial: OpCosts,
    /// Fully connected layers.
    pub gemm: OpCosts,
}

/// Index of a block size in the per-block arrays.
pub fn block_index(block: usize) -> usize {
    match block {
        1 => 0,
        2 => 1,
        _ => 2,
    }
}

impl IsaCosts {
    /// The constants of one op kind.
    pub fn of(&self, op: SparseOp) -> &OpCosts {
        match op {
            SparseOp::Pointwise => &self.pointwise,
            SparseOp::Spatial => &self.spatial,
            SparseOp::Gemm => &self.gemm,
        }
    }

    /// Predicted dense cost of `w`.
    pub fn dense(&self, w: &Workload) -> f64 {
        let c = self.of(w.op);
        let outputs = (w.rows * w.pixels) as f64;
        let inputs = (w.cols * w.pixels) as f64;
        c.dense_mac * outputs * w.cols as f64
            + c.dense_output * outputs
            + c.dense_input * inputs
            + c.dense_weight * (w.rows * w.cols) as f64
    }

    /// Predicted sparse cost of `w` with blocks of `block` rows and `nnz` stored columns.
    pub fn sparse(&self, w: &Workload, block: usize, nnz: usize) -> f64 {
        let c = self.of(w.op);
        let i = block_index(block);
        let values = (nnz * block * w.pixels) as f64;
        c.sparse_value[i] * values
            + c.sparse_output[i] * (w.rows * w.pixels) as f64
            + c.sparse_input[i] * (w.cols * w.pixels) as f64
            + c.sparse_weight[i] * (nnz * block) as f64
    }
}

/// x86-64, one thread, the best kernel set of the measuring machine (AVX-512 here; AVX2
/// machines run the same tiles at half the vector width, so the dense/sparse ratios stay
/// close): nanoseconds.
pub const X86_64: IsaCosts = IsaCosts {
    unit: "ns",
    source: "prunus sparse-costs on x86_64 (272 grid models, 1 thread)",
    pointwise: OpCosts {
        dense_mac: 7.849967e-3,
        dense_output: 6.616659e-2,
        dense_input: 2.683678e-2,
        dense_weight: 1.409677e-1,
        sparse_value: [2.456759e-2, 1.310419e-2, 8.794374e-3],
        sparse_output: [6.987488e-2, 7.020809e-2, 6.794069e-2],
        sparse_input: [5.145405e-2, 4.736701e-2, 4.506219e-2],
        sparse_weight: [1.204654e0, 7.794080e-1, 4.915034e-1],
    },
    spatial: OpCosts {
        dense_mac: 9.466173e-3,
        dense_output: 0.000000e0,
        dense_input: 0.000000e0,
        dense_weight: 1.823001e-1,
        sparse_value: [2.656734e-2, 1.143847e-2, 6.949449e-3],
        sparse_output: [0.000000e0, 0.000000e0, 0.000000e0],
        sparse_input: [2.798166e-1, 2.690911e-1, 2.742753e-1],
        sparse_weight: [2.087445e0, 3.865136e0, 1.776903e0],
    },
    gemm: OpCosts {
        dense_mac: 3.942094e-2,
        dense_output: 1.844812e-1,
        dense_input: 0.000000e0,
        dense_weight: 0.000000e0,
        sparse_value: [2.292113e-1, 1.365643e-1, 2.008838e-1],
        sparse_output: [1.594629e0, 1.268703e0, 6.628223e-1],
        sparse_input: [0.000000e0, 2.647655e-3, 6.225070e-2],
        sparse_weight: [0.000000e0, 0.000000e0, 0.000000e0],
    },
};

/// AArch64 (NEON), one thread: guest instructions per inference under qemu
/// (`toolchains/insn-per-inference.sh`, QEMU_CPU cortex-a72).
pub const AARCH64: IsaCosts = IsaCosts {
    unit: "insn",
    source: "prunus sparse-costs --measure-cmd toolchains/insn-per-inference.sh, cortex-a72 (272 grid models)",
    pointwise: OpCosts {
        dense_mac: 3.189225e-1,
        dense_output: 2.792397e0,
        dense_input: 2.292187e-1,
        dense_weight: 8.641327e-1,
        sparse_value: [5.358768e-1, 4.088038e-1, 3.459856e-1],
        sparse_output: [1.668738e0, 1.620372e0, 2.715963e0],
        sparse_input: [6.953341e-1, 6.963625e-1, 6.419138e-1],
        sparse_weight: [1.247053e1, 5.805477e0, 3.231433e0],
    },
    spatial: OpCosts {
        dense_mac: 3.062890e-1,
        dense_output: 0.000000e0,
        dense_input: 9.512338e0,
        dense_weight: 2.930367e1,
        sparse_value: [5.063039e-1, 3.212035e-1, 2.743485e-1],
        sparse_output: [0.000000e0, 0.000000e0, 0.000000e0],
        sparse_input: [4.921918e0, 5.536694e0, 6.038562e0],
        sparse_weight: [5.027387e1, 4.312979e1, 3.397154e1],
    },
    gemm: OpCosts {
        dense_mac: 6.239885e-1,
        dense_output: 1.984190e1,
        dense_input: 2.895751e0,
        dense_weight: 0.000000e0,
        sparse_value: [0.000000e0, 0.000000e0, 0.000000e0],
        sparse_output: [6.556157e1, 4.235470e1, 2.916169e1],
        sparse_input: [2.063030e-1, 1.587756e0, 3.533556e0],
        sparse_weight: [3.745676e0, 2.981583e0, 2.316282e0],
    },
};
