//! OBS-style mask selection with compensation (the SparseGPT procedure) for unstructured,
//! block and N:M pruning.
//!
//! Given the layer's least-squares weights `W*` (all inputs kept) and the Hessian
//! `H = X̃ᵀX̃ + λI` of its calibration inputs, columns are processed in order: within each
//! block of columns the weights with the smallest saliency `w² / [U]ⱼⱼ²` (`U` the upper
//! Cholesky factor of `H⁻¹`) are removed, and each removal's error is pushed onto the
//! row's later columns through `U`, so the remaining weights absorb it. The intercept
//! column (last) is never pruned and takes its share of the compensation.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

use super::Granularity;

/// Columns whose mask is chosen together.
const BLOCK: usize = 128;

/// Prunes `w` (`rows × k` row-major, the last column the intercept) in place to `zeros`
/// zeroed weights with `pattern`, using the Hessian `h` (`k × k`). Returns false (and
/// leaves `w` alone) when `H` is not positive definite or the pattern does not fit.
pub fn obs_prune(
    w: &mut [f64],
    rows: usize,
    h: &Mat<f64>,
    pattern: Granularity,
    zeros: usize,
) -> bool {
    let k = h.nrows();
    let cols = k - 1;
    if let Granularity::Block(b) = pattern
        && !rows.is_multiple_of(b.max(1))
    {
        return false;
    }
    let Ok(llt) = h.llt(Side::Lower) else {
        return false;
    };
    let hinv = llt.solve(Mat::<f64>::identity(k, k));
    let hinv = Mat::from_fn(k, k, |i, j| 0.5 * (hinv[(i, j)] + hinv[(j, i)]));
    let Ok(inv_llt) = hinv.llt(Side::Lower) else {
        return false;
    };
    let l = inv_llt.L();
    // U = Lᵀ: U[j][c] = L[c][j] for c >= j.
    let u = |j: usize, c: usize| l[(c, j)];
    let sal = |w: &[f64], r: usize, j: usize| (w[r * k + j] / u(j, j)).powi(2);
    let mut pruned = vec![false; rows * k];
    let mut done = 0usize;
    for b0 in (0..cols).step_by(BLOCK) {
        let b1 = (b0 + BLOCK).min(cols);
        let goal = ((zeros as f64) * b1 as f64 / cols as f64).round() as usize;
        let count = goal.saturating_sub(done);
        match pattern {
            Granularity::NM(n, m) => {
                // N:M groups start at multiples of m; a block is a multiple of m when m | BLOCK.
                let m = m.max(1);
                for r in 0..rows {
                    let mut g0 = b0 - b0 % m;
                    while g0 < b1 {
                        let g1 = (g0 + m).min(cols);
                        let mut idx: Vec<usize> = (g0.max(b0)..g1.min(b1)).collect();
                        idx.sort_by(|&a, &b| sal(w, r, a).total_cmp(&sal(w, r, b)));
                        let drop = idx.len().saturating_sub(n);
                        idx.iter()
                            .take(drop)
                            .for_each(|&j| pruned[r * k + j] = true);
                        g0 += m;
                    }
                }
            }
            Granularity::Block(b) => {
                let b = b.max(1);
                let mut units: Vec<(f64, usize, usize)> = (0..rows / b)
                    .flat_map(|rb| (b0..b1).map(move |j| (rb, j)))
                    .map(|(rb, j)| ((0..b).map(|i| sal(w, rb * b + i, j)).sum(), rb, j))
                    .collect();
                units.sort_by(|a, b| a.0.total_cmp(&b.0));
                for &(_, rb, j) in units.iter().take(count.div_ceil(b)) {
                    (0..b).for_each(|i| pruned[(rb * b + i) * k + j] = true);
                }
                done += count.div_ceil(b) * b;
            }
            _ => {
                let mut units: Vec<(f64, usize, usize)> = (0..rows)
                    .flat_map(|r| (b0..b1).map(move |j| (r, j)))
                    .map(|(r, j)| (sal(w, r, j), r, j))
                    .collect();
                units.sort_by(|a, b| a.0.total_cmp(&b.0));
                for &(_, r, j) in units.iter().take(count) {
                    pruned[r * k + j] = true;
                }
                done += count.min(units.len());
            }
        }
        for j in b0..b1 {
            let d = u(j, j);
            for r in 0..rows {
                if !pruned[r * k + j] {
                    continue;
                }
                let err = w[r * k + j] / d;
                let row = &mut w[r * k..(r + 1) * k];
                for (c, v) in row.iter_mut().enumerate().skip(j + 1) {
                    *v -= err * u(j, c);
                }
                row[j] = 0.0;
            }
        }
    }
    w.iter().all(|v| v.is_finite())
}
