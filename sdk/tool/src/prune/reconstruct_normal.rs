//! The normal equations of a layer's least-squares refit ([`super::reconstruct_layer::Fit`]):
//! Gram matrix and cross products accumulated over calibration positions in chunks, and
//! the choice of the ridge on held-out positions.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

use super::reconstruct_layer::Layer;

/// Rows accumulated per `flush` into the Gram matrices.
const CHUNK: usize = 128;

/// Normal equations of one layer, accumulated in chunks of positions.
pub(super) struct Accum {
    /// Per group: Gram matrix `(cols + 1)²` and cross products `(cols + 1) × rows/group`.
    pub(super) normal: Vec<(Mat<f64>, Mat<f64>)>,
    chunk_x: Vec<Mat<f64>>,
    chunk_y: Vec<Mat<f64>>,
    fill: usize,
}

impl Accum {
    /// Empty normal equations of `layer`.
    pub(super) fn new(layer: &Layer) -> Self {
        let (k, per) = (layer.cols + 1, layer.rows / layer.groups);
        let mats = |r: usize, c: usize| (0..layer.groups).map(|_| Mat::zeros(r, c)).collect();
        Accum {
            normal: (0..layer.groups)
                .map(|_| (Mat::zeros(k, k), Mat::zeros(k, per)))
                .collect(),
            chunk_x: mats(CHUNK, k),
            chunk_y: mats(CHUNK, per),
            fill: 0,
        }
    }

    /// Adds one position (as [`super::reconstruct_layer::Fit::add`]).
    pub(super) fn push(&mut self, layer: &Layer, patches: &[Vec<f64>], target: &[f64]) {
        let per = layer.rows / layer.groups;
        for grp in 0..layer.groups {
            let cx = &mut self.chunk_x[grp];
            for (c, &v) in patches[grp].iter().enumerate() {
                cx[(self.fill, c)] = v;
            }
            cx[(self.fill, layer.cols)] = 1.0;
            for r in 0..per {
                self.chunk_y[grp][(self.fill, r)] = target[grp * per + r];
            }
        }
        self.fill += 1;
        if self.fill == CHUNK {
            self.flush();
        }
    }

    /// Adds the buffered positions to the Gram matrices and cross products.
    pub(super) fn flush(&mut self) {
        let rows = self.fill;
        for (grp, (gram, cross)) in self.normal.iter_mut().enumerate() {
            let x = self.chunk_x[grp].subrows(0, rows);
            let y = self.chunk_y[grp].subrows(0, rows);
            *gram += x.transpose() * x;
            *cross += x.transpose() * y;
        }
        self.fill = 0;
    }
}

/// Relative ridges [`choose_ridge`] chooses from.
const RIDGES: [f64; 5] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];

/// The relative ridge of [`RIDGES`] whose least-squares fit (every input kept) on the
/// positions not held out has the least error on the held-out ones (`held`: their Gram
/// matrix and cross products); `default` when nothing is held out or nothing solves.
pub(super) fn choose_ridge(
    gram: &Mat<f64>,
    cross: &Mat<f64>,
    held: &(Mat<f64>, Mat<f64>),
    cols: usize,
    default: f64,
) -> f64 {
    let (hg, hc) = held;
    let k = cols + 1;
    let (held_n, all_n) = (hg[(cols, cols)], gram[(cols, cols)]);
    if held_n < 1.0 || all_n - held_n < k as f64 {
        return default;
    }
    let fit_gram = gram - hg;
    let fit_cross = cross - hc;
    let mut best = (f64::INFINITY, default);
    for r in RIDGES {
        let lambda = ridge_of(&fit_gram, cols, r);
        let a = Mat::from_fn(k, k, |i, j| {
            fit_gram[(i, j)] + if i == j && i < cols { lambda } else { 0.0 }
        });
        let Ok(llt) = a.llt(Side::Lower) else {
            continue;
        };
        let w = llt.solve(&fit_cross);
        // Σ_rows wᵀ H w − 2 wᵀ c (the held-out error up to a constant).
        let hw = hg * &w;
        let err: f64 = (0..w.ncols())
            .map(|r| {
                (0..k)
                    .map(|i| w[(i, r)] * (hw[(i, r)] - 2.0 * hc[(i, r)]))
                    .sum::<f64>()
            })
            .sum();
        if err.is_finite() && err < best.0 {
            best = (err, r);
        }
    }
    best.1
}

/// The absolute ridge of a group: `ridge` times its mean input energy.
pub(super) fn ridge_of(gram: &Mat<f64>, cols: usize, ridge: f64) -> f64 {
    let energy = (0..cols).map(|c| gram[(c, c)]).sum::<f64>() / cols as f64;
    ridge * energy + 1e-12
}
