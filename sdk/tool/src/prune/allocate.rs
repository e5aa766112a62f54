//! Non-uniform ratios from sensitivity curves: greedy allocation to a global target.
//!
//! Every free layer starts at ratio 0. Each step raises the ratio of one layer to the next
//! point of its curve: the layer whose step costs the least extra deviation per unit of
//! cost removed (weights or MACs, measured with that layer alone pruned). The curves are
//! made monotone (running maximum) so noise cannot make a step look free. When a step
//! reaches the target, that layer's ratio is bisected between its last two points to the
//! smallest ratio meeting the target, so the result lands on it instead of overshooting.

use super::PruneError;

/// A layer's measured curve: deviation and remaining cost at increasing ratios, starting
/// at ratio 0 (deviation 0, the dense cost).
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    /// Ratios, ascending, the first 0.
    pub ratios: Vec<f64>,
    /// Deviation from the dense model at each ratio (e.g. KL divergence).
    pub deviation: Vec<f64>,
    /// Cost removed (weights or MACs) with only this layer pruned at each ratio.
    pub removed: Vec<f64>,
}

/// What the allocator needs per layer: a curve to move along, or a ratio that stays.
#[derive(Clone, Debug, PartialEq)]
pub enum Slot {
    /// Free: ratio chosen from the curve.
    Free(Curve),
    /// Pinned (a recipe ratio, or a skipped layer at 0).
    Fixed(f64),
}

/// Chooses per-layer ratios so that `remaining(ratios) <= target`, where `remaining` is the
/// fraction of the dense cost left (1 = nothing pruned) and decreases with every ratio.
pub fn allocate(
    slots: &[Slot],
    remaining: &dyn Fn(&[f64]) -> f64,
    target: f64,
) -> Result<Vec<f64>, PruneError> {
    let mut ratios: Vec<f64> = slots
        .iter()
        .map(|s| match s {
            Slot::Free(_) => 0.0,
            Slot::Fixed(r) => *r,
        })
        .collect();
    let envelopes: Vec<Option<Vec<f64>>> = slots
        .iter()
        .map(|s| match s {
            Slot::Free(c) => {
                let mut run = 0.0f64;
                Some(
                    c.deviation
                        .iter()
                        .map(|&d| {
                            run = run.max(d);
                            run
                        })
                        .collect(),
                )
            }
            Slot::Fixed(_) => None,
        })
        .collect();
    let mut step = vec![0usize; slots.len()];
    let mut current = remaining(&ratios);
    while current > target {
        // (price, layer, next point): the next point that removes anything, so a ratio
        // step that rounding makes empty does not stall a layer.
        let mut best: Option<(f64, usize, usize)> = None;
        for (i, slot) in slots.iter().enumerate() {
            let (Slot::Free(c), Some(env)) = (slot, &envelopes[i]) else {
                continue;
            };
            let k = step[i];
            let Some(j) = (k + 1..c.ratios.len()).find(|&j| c.removed[j] > c.removed[k]) else {
                continue;
            };
            let price = (env[j] - env[k]) / (c.removed[j] - c.removed[k]);
            if best.is_none_or(|(p, _, _)| price < p) {
                best = Some((price, i, j));
            }
        }
        let Some((_, i, j)) = best else {
            return Err(PruneError::Options(format!(
                "the target cannot be reached: at the largest analysed ratios {:.4} of the \
                 dense cost remains (target {target:.4}); analyse larger ratios or unpin layers",
                current
            )));
        };
        let Slot::Free(c) = &slots[i] else {
            continue;
        };
        let (lo, hi) = (c.ratios[step[i]], c.ratios[j]);
        ratios[i] = hi;
        step[i] = j;
        current = remaining(&ratios);
        if current <= target {
            ratios[i] = bisect(lo, hi, |r| {
                let mut trial = ratios.clone();
                trial[i] = r;
                remaining(&trial) <= target
            });
            current = remaining(&ratios);
        }
    }
    Ok(ratios)
}

/// The smallest ratio in `(lo, hi]` for which `meets` holds (`meets(hi)` is true).
fn bisect(mut lo: f64, mut hi: f64, meets: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..30 {
        if hi - lo < 1e-6 {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if meets(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Parses a MAC target: a fraction of the dense MACs to keep (`0.66`) or a reduction
/// factor (`1.5x` keeps 1/1.5). Returns the fraction kept.
pub fn parse_macs_target(text: &str) -> Result<f64, PruneError> {
    let bad = || {
        PruneError::Options(format!(
            "bad MAC target '{text}': give a kept fraction in (0, 1] (e.g. 0.66) or a \
             reduction like 1.5x"
        ))
    };
    let t = text.trim();
    let kept = match t.strip_suffix(['x', 'X']) {
        Some(f) => {
            let f: f64 = f.trim().parse().map_err(|_| bad())?;
            if !(f >= 1.0 && f.is_finite()) {
                return Err(bad());
            }
            1.0 / f
        }
        None => t.parse().map_err(|_| bad())?,
    };
    if kept > 0.0 && kept <= 1.0 {
        Ok(kept)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(dev_per_step: f64, size: f64) -> Slot {
        let ratios = vec![0.0, 0.25, 0.5, 0.75];
        Slot::Free(Curve {
            deviation: ratios.iter().map(|r| r * dev_per_step).collect(),
            removed: ratios.iter().map(|r| r * size).collect(),
            ratios,
        })
    }

    #[test]
    fn cheap_layers_go_first_and_the_target_is_met_exactly() {
        // Two layers of 100 weights; the second deviates 10x more per weight removed.
        let slots = [curve(1.0, 100.0), curve(10.0, 100.0), Slot::Fixed(0.5)];
        let remaining = |r: &[f64]| 1.0 - (r[0] * 100.0 + r[1] * 100.0 + r[2] * 100.0) / 300.0;
        let ratios = allocate(&slots, &remaining, 0.6).unwrap();
        assert_eq!(ratios[2], 0.5);
        assert!((remaining(&ratios) - 0.6).abs() < 1e-4, "{ratios:?}");
        assert!(ratios[0] > ratios[1], "{ratios:?}");
        assert!((ratios[0] - 0.7).abs() < 1e-4, "{ratios:?}");
    }

    #[test]
    fn steps_that_remove_nothing_are_skipped_over() {
        // Rounding: the first point of layer 0 removes nothing; it must still be pruned.
        let slots = [Slot::Free(Curve {
            ratios: vec![0.0, 0.25, 0.5],
            deviation: vec![0.0, 0.0, 1.0],
            removed: vec![0.0, 0.0, 50.0],
        })];
        let remaining = |r: &[f64]| if r[0] >= 0.5 { 0.5 } else { 1.0 };
        assert_eq!(allocate(&slots, &remaining, 0.6).unwrap(), vec![0.5]);
    }

    #[test]
    fn unreachable_target_is_an_error() {
        let slots = [curve(1.0, 10.0)];
        let remaining = |r: &[f64]| 1.0 - r[0];
        let e = allocate(&slots, &remaining, 0.1).unwrap_err();
        assert!(e.to_string().contains("cannot be reached"), "{e}");
    }

    #[test]
    fn mac_targets_parse() {
        assert_eq!(parse_macs_target("0.66").unwrap(), 0.66);
        assert!((parse_macs_target("1.5x").unwrap() - 1.0 / 1.5).abs() < 1e-12);
        for bad in ["0", "1.2.3", "0.5x", "-1", "2", "x"] {
            assert!(parse_macs_target(bad).is_err(), "{bad}");
        }
    }
}
