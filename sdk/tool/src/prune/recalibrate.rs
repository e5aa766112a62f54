//! BatchNorm statistics recalibration and bias correction after pruning.
//!
//! A pruned (and possibly refit) layer's pre-BatchNorm output has a different per-channel
//! mean and variance than the dense layer's on the same data. Three updates, from the
//! statistics measured by the recovery pass ([`super::reconstruct`]):
//!
//! * [`BnUpdate::Mean`] (bias correction): shifts the BN running mean — or the layer's bias
//!   when no BN follows — by the mean difference, so the pruned channel's mean after the
//!   layer equals the dense one's.
//! * [`BnUpdate::MatchDense`]: also rescales the running variance so the BN output has the
//!   dense BN output's mean *and* variance on the calibration data.
//! * [`BnUpdate::Reestimate`] (adaptive BN): running mean and variance become the pruned
//!   network's own statistics on the calibration data.

use super::reconstruct_layer::OutputStats;

/// How BatchNorm statistics are updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnUpdate {
    /// Mean shift only (bias correction).
    Mean,
    /// Mean and variance matched to the dense model's BN output.
    MatchDense,
    /// Running statistics re-estimated on the pruned network.
    Reestimate,
}

/// Updates a BatchNorm's running `mean` and `var` (epsilon `eps`) from the statistics of
/// its input channels.
pub fn update_bn(mean: &mut [f32], var: &mut [f32], eps: f32, stats: &OutputStats, mode: BnUpdate) {
    let eps = eps as f64;
    for c in 0..mean.len().min(var.len()).min(stats.mean_pruned.len()) {
        let (md, vd) = (stats.mean_dense[c], stats.var_dense[c]);
        let (mp, vp) = (stats.mean_pruned[c], stats.var_pruned[c]);
        let (m, v) = (mean[c] as f64, var[c] as f64);
        let (new_m, new_v) = match mode {
            BnUpdate::Mean => (m + mp - md, v),
            BnUpdate::Reestimate => (mp, vp),
            BnUpdate::MatchDense => {
                // (y_p - m') / sqrt(v' + eps) has the mean and spread of (y_d - m) / sqrt(v + eps).
                let k = if vd > 1e-12 && vp > 1e-12 {
                    (vp / vd).sqrt()
                } else {
                    1.0
                };
                (mp - k * (md - m), (k * k * (v + eps) - eps).max(0.0))
            }
        };
        if new_m.is_finite() && new_v.is_finite() {
            mean[c] = new_m as f32;
            var[c] = new_v as f32;
        }
    }
}

/// Bias correction of a layer without a following BatchNorm: `bias -= mean_pruned -
/// mean_dense` per channel.
pub fn correct_bias(bias: &mut [f32], stats: &OutputStats) {
    for (c, b) in bias.iter_mut().enumerate().take(stats.mean_pruned.len()) {
        let shift = stats.mean_pruned[c] - stats.mean_dense[c];
        if shift.is_finite() {
            *b -= shift as f32;
        }
    }
}
