//! Magnitude pruning of weights without changing shapes: single weights, blocks of 2 or 4
//! output channels at the same input position (the blocks of the sparse kernels), or N:M
//! (at most N nonzeros in every M consecutive weights of an output row). Per-layer ratios
//! are exact (`round(s · units)` units zeroed in every layer); a global ratio thresholds
//! all layers together.

use super::Granularity;
use super::PruneError;

/// One weight tensor to prune, viewed as a matrix of output channels × the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The weight's name (ONNX initializer or Prunus weight).
    pub name: String,
    /// Its dimensions.
    pub dims: Vec<usize>,
    /// The output-channel axis (0 for OIHW convs and `[O, K]` matrices, 1 for `[K, O]`).
    pub out_axis: usize,
    /// Row-major values; zeroed in place.
    pub data: Vec<f32>,
}

impl Target {
    /// Output channels.
    pub fn rows(&self) -> usize {
        self.dims.get(self.out_axis).copied().unwrap_or(1).max(1)
    }

    /// Elements per output channel.
    pub fn cols(&self) -> usize {
        self.data.len() / self.rows()
    }

    /// Flat index of element `col` of output row `o`.
    pub fn index(&self, o: usize, col: usize) -> usize {
        let inner: usize = self.dims[self.out_axis + 1..].iter().product();
        let (a, b) = (col / inner.max(1), col % inner.max(1));
        (a * self.rows() + o) * inner + b
    }
}

/// A unit of pruning: its score and its element indices.
struct Unit {
    score: f64,
    elems: Vec<usize>,
}

fn units(t: &Target, granularity: Granularity) -> Vec<Vec<usize>> {
    let (rows, cols) = (t.rows(), t.cols());
    match granularity {
        Granularity::Block(b) => {
            let mut v = Vec::new();
            for ob in (0..rows).step_by(b.max(1)) {
                for c in 0..cols {
                    v.push((ob..(ob + b).min(rows)).map(|o| t.index(o, c)).collect());
                }
            }
            v
        }
        _ => (0..t.data.len()).map(|i| vec![i]).collect(),
    }
}

fn score(t: &Target, elems: &[usize]) -> f64 {
    (elems
        .iter()
        .map(|&i| (t.data[i] as f64).powi(2))
        .sum::<f64>()
        / elems.len().max(1) as f64)
        .sqrt()
}

/// Prunes every target; returns the kept-mask of each (true = kept).
pub fn prune(
    targets: &mut [Target],
    granularity: Granularity,
    sparsity: f64,
    global: bool,
) -> Result<Vec<Vec<bool>>, PruneError> {
    if !(0.0..=1.0).contains(&sparsity) && !matches!(granularity, Granularity::NM(..)) {
        return Err(PruneError::Options(format!(
            "sparsity {sparsity} is outside [0, 1]"
        )));
    }
    let mut masks: Vec<Vec<bool>> = targets.iter().map(|t| vec![true; t.data.len()]).collect();
    match granularity {
        Granularity::Channel => {
            return Err(PruneError::Options(
                "channel granularity is structured pruning".into(),
            ));
        }
        Granularity::NM(n, m) => {
            if n == 0 || m == 0 || n > m {
                return Err(PruneError::Options(format!("invalid N:M pattern {n}:{m}")));
            }
            for (t, mask) in targets.iter().zip(&mut masks) {
                for o in 0..t.rows() {
                    let cols = t.cols();
                    for start in (0..cols).step_by(m) {
                        let mut idx: Vec<usize> = (start..(start + m).min(cols))
                            .map(|c| t.index(o, c))
                            .collect();
                        idx.sort_by(|&a, &b| {
                            t.data[b].abs().total_cmp(&t.data[a].abs()).then(a.cmp(&b))
                        });
                        idx.iter().skip(n).for_each(|&i| mask[i] = false);
                    }
                }
            }
        }
        Granularity::Unstructured | Granularity::Block(_) => {
            let all: Vec<Vec<Unit>> = targets
                .iter()
                .map(|t| {
                    units(t, granularity)
                        .into_iter()
                        .map(|elems| Unit {
                            score: score(t, &elems),
                            elems,
                        })
                        .collect()
                })
                .collect();
            if global {
                let mut order: Vec<(usize, usize)> = all
                    .iter()
                    .enumerate()
                    .flat_map(|(ti, us)| (0..us.len()).map(move |u| (ti, u)))
                    .collect();
                order.sort_by(|a, b| {
                    all[a.0][a.1]
                        .score
                        .total_cmp(&all[b.0][b.1].score)
                        .then(a.cmp(b))
                });
                let count = (sparsity * order.len() as f64).round() as usize;
                for &(ti, u) in order.iter().take(count) {
                    all[ti][u].elems.iter().for_each(|&i| masks[ti][i] = false);
                }
            } else {
                for (us, mask) in all.iter().zip(&mut masks) {
                    let mut order: Vec<usize> = (0..us.len()).collect();
                    order.sort_by(|&a, &b| us[a].score.total_cmp(&us[b].score).then(a.cmp(&b)));
                    let count = (sparsity * us.len() as f64).round() as usize;
                    for &u in order.iter().take(count) {
                        us[u].elems.iter().for_each(|&i| mask[i] = false);
                    }
                }
            }
        }
    }
    for (t, mask) in targets.iter_mut().zip(&masks) {
        t.data
            .iter_mut()
            .zip(mask)
            .filter(|(_, k)| !**k)
            .for_each(|(v, _)| *v = 0.0);
    }
    Ok(masks)
}
