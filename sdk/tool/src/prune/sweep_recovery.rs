//! Sensitivity trials with one-shot recovery: a layer pruned alone is recovered the way
//! `--recover lstsq` recovers it — its zeros re-chosen OBS-style and compensated by its
//! other weights on its calibration inputs ([`Fit::reselect`]), its BatchNorm matched to
//! the dense model's output — before the model is measured, so the curves the allocation
//! reads are those of the recovered network, not of magnitude pruning.
//!
//! Every other layer is dense, so the layer's inputs are the dense network's: one pass over
//! the fit samples accumulates its statistics, and every ratio of the sweep reuses them.
//! The fit samples should be calibration samples the trials are *not* measured on, so a
//! layer whose refit overfits its calibration data shows it in its curve.

use super::onnx_graph::{Const, OnnxGraph};
use super::recalibrate::BnUpdate;
use super::reconstruct::{RecoverOptions, RecoverReport, apply, for_each_input, sample_positions};
use super::reconstruct_layer::{Fit, Layer, MAX_SYSTEM};
use super::{Granularity, PruneError};

/// One layer's calibration statistics, ready to recover any mask of it.
pub struct RecoveredLayer {
    dense: Layer,
    fit: Fit,
}

impl RecoveredLayer {
    /// Accumulates the statistics of node `node` of `g` (dense) over `samples` at
    /// `options.positions` sampled output positions each. `None` when the node is not a
    /// layer least squares handles (see [`Layer::from_node`]) or its system is too large.
    pub fn new(
        g: &OnnxGraph,
        node: usize,
        samples: &[Vec<f32>],
        options: &RecoverOptions,
    ) -> Result<Option<Self>, PruneError> {
        let Some(dense) = Layer::from_node(g, node)? else {
            return Ok(None);
        };
        if dense.cols + 1 > MAX_SYSTEM || samples.is_empty() {
            return Ok(None);
        }
        let mut fit = Fit::new(&dense, true);
        let x = g.nodes()[node].input[0].clone();
        let per = dense.rows / dense.groups;
        for_each_input(g, &x, samples, &mut |s, xs| {
            if xs.len() != dense.input_len() {
                return Err(PruneError::Runtime(format!(
                    "tensor '{x}' has {} values, its consumer expects {}",
                    xs.len(),
                    dense.input_len()
                )));
            }
            let mut patches = vec![vec![0.0; dense.cols]; dense.groups];
            let seed = (node as u64) << 32 | s as u64;
            for p in sample_positions(dense.positions(), options.positions, seed) {
                for (grp, patch) in patches.iter_mut().enumerate() {
                    dense.patch(xs, p, grp, patch);
                }
                let target: Vec<f64> = (0..dense.rows)
                    .map(|o| dense.output(o, &patches[o / per]))
                    .collect();
                fit.add(&dense, &patches, &target);
            }
            Ok(())
        })?;
        Ok(Some(RecoveredLayer { dense, fit }))
    }

    /// `g` with this layer's weight replaced by `pruned` (its shape, zeros where pruned),
    /// the zeros re-chosen with `pattern` and compensated, and its BatchNorm (or bias)
    /// matched to the dense output.
    pub fn trial(
        &mut self,
        g: &OnnxGraph,
        pruned: Const,
        pattern: Granularity,
        options: &RecoverOptions,
    ) -> Result<OnnxGraph, PruneError> {
        let node = self.dense.node;
        let mut work = g.clone();
        let name = work.nodes()[node].input[1].clone();
        work.consts.insert(name.clone(), pruned);
        let mut layer = Layer::from_node(&work, node)?.ok_or_else(|| PruneError::Tensor {
            tensor: name,
            reason: "the pruned weight no longer matches its layer".into(),
        })?;
        self.fit
            .reselect(&mut layer, options.ridge, options.min_ratio, pattern);
        apply(
            &mut work,
            &layer,
            &self.fit,
            true,
            BnUpdate::MatchDense,
            &mut RecoverReport::default(),
        )?;
        Ok(work)
    }
}
