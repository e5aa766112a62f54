//! Measuring the cost constants of [`super::costs`]: one-node models (a 1x1 conv, a
//! grouped 1x1 conv, a 3x3 conv, a Gemm) over a grid of shapes, each dense and sparse at
//! several densities and every block size, are measured (host timings in this process, or
//! any external per-file measure such as instruction counts under qemu) and the linear
//! cost model is fitted to them.

use std::time::Instant;

use prunus_format::{Activation, Conv, Encoding, Op, WriteOptions};

use super::costs::{IsaCosts, OpCosts, block_index};
use super::{SparseOp, Workload, stored_columns};
use crate::IrModel;

/// Densities (fraction of stored columns per block) the sparse models are measured at.
pub const DENSITIES: [f64; 5] = [0.5, 0.3, 0.2, 0.1, 0.05];

/// Errors while building or measuring the grid.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A one-node model could not be built or written.
    #[error("building a grid model: {0}")]
    Build(String),
    /// The runtime rejected or failed a model.
    #[error("running a grid model: {0}")]
    Runtime(#[from] prunus::Error),
    /// An external measure failed.
    #[error("measuring a grid model: {0}")]
    Measure(String),
}

/// One grid model: its work and how its weight is stored.
#[derive(Clone, Debug)]
pub struct Point {
    /// The layer's work.
    pub work: Workload,
    /// Sparse block size, `None` for dense.
    pub block: Option<usize>,
    /// Fraction of stored columns per block (1 for dense).
    pub density: f64,
    /// Stored columns (sparse only; 0 for dense).
    pub nnz: usize,
    /// The packed one-node model.
    pub bytes: Vec<u8>,
}

/// A grid point with its measured cost.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The point (its bytes are dropped once measured).
    pub point: Point,
    /// Measured cost (ns or instructions).
    pub cost: f64,
}

/// `(op, in channels, out channels, groups, output height = width)` of the grid.
const SHAPES: [(SparseOp, u32, u32, u32, u32); 17] = [
    (SparseOp::Pointwise, 16, 96, 1, 48),
    (SparseOp::Pointwise, 64, 64, 1, 56),
    (SparseOp::Pointwise, 144, 24, 1, 24),
    (SparseOp::Pointwise, 128, 128, 1, 28),
    (SparseOp::Pointwise, 256, 256, 1, 14),
    (SparseOp::Pointwise, 512, 512, 1, 7),
    (SparseOp::Pointwise, 240, 240, 3, 14),
    (SparseOp::Spatial, 16, 64, 1, 48),
    (SparseOp::Spatial, 32, 128, 1, 24),
    (SparseOp::Spatial, 64, 256, 1, 12),
    (SparseOp::Spatial, 128, 128, 1, 14),
    (SparseOp::Gemm, 1024, 1000, 1, 1),
    (SparseOp::Gemm, 1280, 1000, 1, 1),
    (SparseOp::Gemm, 576, 1024, 1, 1),
    (SparseOp::Gemm, 576, 144, 1, 1),
    (SparseOp::Gemm, 144, 576, 1, 1),
    (SparseOp::Gemm, 960, 240, 1, 1),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A `[rows, cols]` weight whose blocks of `block` rows keep each column with probability
/// `density` (every kept value non-zero).
fn weight(rows: usize, cols: usize, block: usize, density: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed | 1);
    let mut data = vec![0.0f32; rows * cols];
    for b in 0..rows.div_ceil(block) {
        for c in 0..cols {
            if density >= 1.0 || rng.next() < density {
                for r in b * block..(b * block + block).min(rows) {
                    data[r * cols + c] = (rng.next() as f32 - 0.5) * 0.2 + 0.01;
                }
            }
        }
    }
    data
}

/// A one-node model of `op` with `weight` (stored sparse with `block` when given).
fn one_node(
    (op, cin, cout, groups, hw): (SparseOp, u32, u32, u32, u32),
    data: Vec<f32>,
    block: Option<usize>,
) -> Result<IrModel, MeasureError> {
    let build = |e: &dyn std::fmt::Display| MeasureError::Build(e.to_string());
    let mut m = IrModel::new("sparse-costs", "prunus sparse-costs");
    let (k, pad) = if op == SparseOp::Spatial {
        (3, 1)
    } else {
        (1, 0)
    };
    let (x, shape, node_op) = if op == SparseOp::Gemm {
        let x = m.add_input("x", &[1, cin]);
        let w = m.add_weight("w", &[cout, cin], data);
        let b = m.add_weight("b", &[cout], vec![0.01; cout as usize]);
        let gemm = Op::Gemm {
            weight: w,
            bias: Some(b),
            activation: Activation::None,
        };
        (x, vec![1, cout], gemm)
    } else {
        let x = m.add_input("x", &[1, cin, hw, hw]);
        let w = m.add_weight("w", &[cout, cin / groups, k, k], data);
        let b = m.add_weight("b", &[cout], vec![0.01; cout as usize]);
        let conv = Op::Conv(Conv {
            weight: w,
            bias: Some(b),
            kernel: [k, k],
            stride: [1, 1],
            pads: [pad; 4],
            dilation: [1, 1],
            groups,
            activation: Activation::Relu,
        });
        (x, vec![1, cout, hw, hw], conv)
    };
    let y = m
        .add_node_with_shape("layer", node_op, &[x], Some(shape))
        .map_err(|e| build(&e))?;
    m.set_outputs(&[y]);
    if let Some(block) = block {
        m.graph.weights[0].encoding = Encoding::SparseBlocks {
            block: block as u8,
            index_bytes: 0,
            nnz: 0,
        };
    }
    Ok(m)
}

/// The grid: every shape dense, and sparse at every density with every block size it
/// allows.
pub fn grid() -> Result<Vec<Point>, MeasureError> {
    let mut points = Vec::new();
    for (i, &shape) in SHAPES.iter().enumerate() {
        let (op, cin, cout, groups, hw) = shape;
        let k = if op == SparseOp::Spatial { 9 } else { 1 };
        let work = Workload {
            op,
            rows: cout as usize,
            cols: (cin / groups * k) as usize,
            pixels: (hw * hw) as usize,
            rows_per_group: (cout / groups) as usize,
        };
        let seed = 0x9E37_79B9 + i as u64;
        let dense = weight(work.rows, work.cols, 1, 1.0, seed);
        let bytes = one_node(shape, dense, None)?
            .to_bytes(WriteOptions::default())
            .map_err(|e| MeasureError::Build(e.to_string()))?;
        points.push(Point {
            work,
            block: None,
            density: 1.0,
            nnz: 0,
            bytes,
        });
        let blocks: Vec<usize> = work.blocks().collect();
        for (j, &density) in DENSITIES.iter().enumerate() {
            for &block in &blocks {
                let data = weight(work.rows, work.cols, block, density, seed + 97 * j as u64);
                let nnz = stored_columns(&data, work.rows, work.cols, block);
                let bytes = one_node(shape, data, Some(block))?
                    .to_bytes(WriteOptions::default())
                    .map_err(|e| MeasureError::Build(e.to_string()))?;
                points.push(Point {
                    work,
                    block: Some(block),
                    density,
                    nnz,
                    bytes,
                });
            }
        }
    }
    Ok(points)
}

/// Median nanoseconds of one run of the packed model `bytes` in this process, one thread:
/// at least `min_runs` timed runs and until `min_seconds` have passed.
pub fn time_ns(bytes: &[u8], min_runs: usize, min_seconds: f64) -> Result<f64, MeasureError> {
    let aligned = prunus::AlignedBytes::new(bytes);
    let model = prunus::Model::from_bytes(aligned.as_bytes())?;
    let mut session = model.session(prunus::Options::default())?;
    let numel: usize = model
        .inputs()
        .next()
        .map(|t| t.shape.iter().map(|&d| d as usize).product())
        .unwrap_or(0);
    let input: Vec<f32> = (0..numel).map(|i| ((i % 17) as f32 - 8.0) * 0.1).collect();
    for _ in 0..2 {
        session.run(&[&input])?;
    }
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < min_runs || start.elapsed().as_secs_f64() < min_seconds {
        let t = Instant::now();
        session.run(&[&input])?;
        times.push(t.elapsed().as_secs_f64() * 1e9);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Solves the `n`×`n` system `m · x = v` by Gaussian elimination with partial pivoting.
fn solve(mut m: Vec<Vec<f64>>, mut v: Vec<f64>) -> Option<Vec<f64>> {
    let n = v.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, pivot);
        v.swap(col, pivot);
        let (top, below) = m.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for (r, row) in below.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (a, b) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *a -= f * b;
            }
            v[col + 1 + r] -= f * v[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let rest: f64 = (row + 1..n).map(|k| m[row][k] * x[k]).sum();
        x[row] = (v[row] - rest) / m[row][row];
    }
    Some(x)
}

/// Non-negative least squares of `cost ≈ Σ coef·feature` with relative weighting (each
/// sample's error divided by its cost): the best non-negative solution over every subset
/// of the (few) features.
fn fit_nonneg<const K: usize>(rows: &[([f64; K], f64)]) -> [f64; K] {
    let weight = |c: f64| 1.0 / (c * c).max(1e-30);
    let error = |coef: &[f64; K]| -> f64 {
        rows.iter()
            .map(|(f, c)| {
                let p: f64 = f.iter().zip(coef).map(|(x, a)| x * a).sum();
                weight(*c) * (p - c).powi(2)
            })
            .sum()
    };
    let mut best = ([0.0; K], f64::INFINITY);
    for mask in 1u32..(1 << K) {
        let used: Vec<usize> = (0..K).filter(|&k| mask & (1 << k) != 0).collect();
        let mut m = vec![vec![0.0; used.len()]; used.len()];
        let mut v = vec![0.0; used.len()];
        for (f, c) in rows {
            let w = weight(*c);
            for (i, &a) in used.iter().enumerate() {
                v[i] += w * f[a] * c;
                for (j, &b) in used.iter().enumerate() {
                    m[i][j] += w * f[a] * f[b];
                }
            }
        }
        let Some(x) = solve(m, v) else { continue };
        if x.iter().any(|&c| c < 0.0 || !c.is_finite()) {
            continue;
        }
        let mut coef = [0.0; K];
        for (&k, &c) in used.iter().zip(&x) {
            coef[k] = c;
        }
        let e = error(&coef);
        if e < best.1 {
            best = (coef, e);
        }
    }
    best.0
}

fn fit_op(samples: &[Sample], op: SparseOp, fallback: &OpCosts) -> OpCosts {
    let of_op = || samples.iter().filter(move |s| s.point.work.op == op);
    // Per weight (the weights, or the stored values) and pixel, per output, per input,
    // per weight.
    let features = |s: &Sample, weights: f64| {
        let w = s.point.work;
        let (outputs, inputs) = ((w.rows * w.pixels) as f64, (w.cols * w.pixels) as f64);
        [weights * w.pixels as f64, outputs, inputs, weights]
    };
    let dense: Vec<([f64; 4], f64)> = of_op()
        .filter(|s| s.point.block.is_none())
        .map(|s| {
            let w = s.point.work;
            (features(s, (w.rows * w.cols) as f64), s.cost)
        })
        .collect();
    let mut costs = *fallback;
    if !dense.is_empty() {
        [
            costs.dense_mac,
            costs.dense_output,
            costs.dense_input,
            costs.dense_weight,
        ] = fit_nonneg(&dense);
    }
    for block in prunus_format::sparse::BLOCK_SIZES {
        let rows: Vec<([f64; 4], f64)> = of_op()
            .filter(|s| s.point.block == Some(block))
            .map(|s| (features(s, (s.point.nnz * block) as f64), s.cost))
            .collect();
        if !rows.is_empty() {
            let i = block_index(block);
            [
                costs.sparse_value[i],
                costs.sparse_output[i],
                costs.sparse_input[i],
                costs.sparse_weight[i],
            ] = fit_nonneg(&rows);
        }
    }
    costs
}

/// Fits the cost constants to `samples`; op kinds or block sizes without samples keep
/// `base`'s constants.
pub fn fit(samples: &[Sample], base: &IsaCosts) -> IsaCosts {
    IsaCosts {
        pointwise: fit_op(samples, SparseOp::Pointwise, &base.pointwise),
        spatial: fit_op(samples, SparseOp::Spatial, &base.spatial),
        gemm: fit_op(samples, SparseOp::Gemm, &base.gemm),
        ..*base
    }
}

/// Predicted cost of a sample's point under `costs`.
pub fn predict(costs: &IsaCosts, point: &Point) -> f64 {
    match point.block {
        None => costs.dense(&point.work),
        Some(b) => costs.sparse(&point.work, b, point.nnz),
    }
}

fn op_source(name: &str, c: &OpCosts) -> String {
    let arr = |a: &[f64; 3]| format!("[{:.6e}, {:.6e}, {:.6e}]", a[0], a[1], a[2]);
    let fields = [
        format!("dense_mac: {:.6e}", c.dense_mac),
        format!("dense_output: {:.6e}", c.dense_output),
        format!("dense_input: {:.6e}", c.dense_input),
        format!("dense_weight: {:.6e}", c.dense_weight),
        format!("sparse_value: {}", arr(&c.sparse_value)),
        format!("sparse_output: {}", arr(&c.sparse_output)),
        format!("sparse_input: {}", arr(&c.sparse_input)),
        format!("sparse_weight: {}", arr(&c.sparse_weight)),
    ];
    let body: String = fields.iter().map(|f| format!("        {f},\n")).collect();
    format!("    {name}: OpCosts {{\n{body}    }},\n")
}

/// The constants as Rust source for [`super::costs`] (`const_name` = `X86_64` or
/// `AARCH64`).
pub fn rust_source(const_name: &str, costs: &IsaCosts, source: &str) -> String {
    format!(
        "pub const {const_name}: IsaCosts = IsaCosts {{\n    unit: {:?},\n    source: {:?},\n{}{}{}}};\n",
        costs.unit,
        source,
        op_source("pointwise", &costs.pointwise),
        op_source("spatial", &costs.spatial),
        op_source("gemm", &costs.gemm)
    )
}
