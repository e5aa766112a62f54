//! Importance of each channel class: weight magnitude (L1, L2), BatchNorm gamma (network
//! slimming), FPGM (distance to the other filters of the layer: filters near the geometric
//! median are redundant), mean |activation| measured on calibration data with the
//! Prunus runtime, and the consumer's least-squares reconstruction error
//! ([`super::channel_select`]). Scores of every layer a class touches are summed.

use std::collections::HashMap;

use super::depgraph::DepGraph;
use super::onnx_graph::{OnnxGraph, attr_i, op};
use super::{Criterion, PruneError};

/// Filters of a producing node: `(output tensor, rows)` where row `o` is the flattened
/// weights of output channel `o`.
fn producer_rows(g: &OnnxGraph) -> Vec<(String, Vec<Vec<f32>>)> {
    let mut out = Vec::new();
    for n in g.nodes() {
        let (o_axis, ok) = match op(n) {
            "Conv" => (0, true),
            "Gemm" => (
                if attr_i(n, "transB").unwrap_or(0) != 0 {
                    0
                } else {
                    1
                },
                true,
            ),
            "MatMul" => (1, true),
            _ => (0, false),
        };
        let Some(w) = n.input.get(1).and_then(|t| g.consts.get(t)).filter(|_| ok) else {
            continue;
        };
        let Some(data) = w.as_f32() else { continue };
        let rows_n = w.dims[o_axis];
        let inner: usize = w.dims[o_axis + 1..].iter().product();
        let outer: usize = w.dims[..o_axis].iter().product();
        let mut rows = vec![Vec::with_capacity(outer * inner); rows_n];
        for a in 0..outer {
            for (r, row) in rows.iter_mut().enumerate() {
                let s = (a * rows_n + r) * inner;
                row.extend_from_slice(&data[s..s + inner]);
            }
        }
        out.push((n.output[0].clone(), rows));
    }
    out
}

/// FPGM score of each row: summed distance to (up to 256 evenly spaced) other rows.
fn fpgm(rows: &[Vec<f32>]) -> Vec<f64> {
    let step = rows.len().div_ceil(256).max(1);
    rows.iter()
        .map(|a| {
            rows.iter()
                .step_by(step)
                .map(|b| {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| ((x - y) as f64).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .sum()
        })
        .collect()
}

/// Score of every class (higher = more important; non-prunable classes get 0).
/// `measured` (tensor → per-channel score measured on calibration data: the mean |a| for
/// [`Criterion::Activation`], [`super::channel_select`]'s scores for
/// [`Criterion::Reconstruction`]) is required by those two; a class measured on several
/// tensors gets the mean.
pub fn class_scores(
    g: &OnnxGraph,
    dep: &DepGraph,
    criterion: Criterion,
    measured: Option<&HashMap<String, Vec<f64>>>,
) -> Result<Vec<f64>, PruneError> {
    let mut l1 = vec![0.0f64; dep.classes.len()];
    let mut score = vec![0.0f64; dep.classes.len()];
    let mut have = vec![false; dep.classes.len()];
    for (y, rows) in producer_rows(g) {
        let fp = (criterion == Criterion::Fpgm).then(|| fpgm(&rows));
        for (o, row) in rows.iter().enumerate() {
            let Some(id) = dep.class_of(&y, o) else {
                continue;
            };
            l1[id] += row.iter().map(|v| v.abs() as f64).sum::<f64>();
            match criterion {
                Criterion::L2 => {
                    score[id] += row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt()
                }
                Criterion::Fpgm => score[id] += fp.as_ref().map(|f| f[o]).unwrap_or(0.0),
                _ => {}
            }
            have[id] = true;
        }
    }
    match criterion {
        Criterion::L1 => return Ok(l1),
        Criterion::L2 | Criterion::Fpgm => return Ok(score),
        Criterion::Bn => {
            have.iter_mut().for_each(|h| *h = false);
            for n in g.nodes().iter().filter(|n| op(n) == "BatchNormalization") {
                let Some(gamma) = g.consts.get(&n.input[1]).and_then(|c| c.as_f32()) else {
                    continue;
                };
                for (c, v) in gamma.iter().enumerate() {
                    if let Some(id) = dep.class_of(&n.input[0], c) {
                        score[id] += v.abs() as f64;
                        have[id] = true;
                    }
                }
            }
        }
        Criterion::Activation | Criterion::Reconstruction => {
            let acts = measured.ok_or_else(|| {
                PruneError::Calibration(format!(
                    "the {criterion:?} criterion needs calibration data"
                ))
            })?;
            let mut count = vec![0usize; dep.classes.len()];
            for (t, means) in acts {
                for (c, m) in means.iter().enumerate() {
                    if let Some(id) = dep.class_of(t, c) {
                        score[id] += m;
                        count[id] += 1;
                    }
                }
            }
            for id in 0..score.len() {
                have[id] = count[id] > 0;
                if have[id] {
                    score[id] /= count[id] as f64;
                }
            }
        }
    }
    // A group where some class has no BN / no measured activation falls back to L1, so
    // the classes of one group are always compared on the same scale.
    for group in &dep.groups {
        if group.iter().any(|&id| !have[id]) {
            group.iter().for_each(|&id| score[id] = l1[id]);
        }
    }
    Ok(score)
}
