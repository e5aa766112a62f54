//! Per-layer sensitivity analysis: every analysed layer is pruned alone at each ratio of a
//! sweep, the model is run on a few calibration samples through the Prunus runtime
//! ([`Evaluator`], dense outputs cached once), and the output deviation from the dense
//! model is recorded (cosine, KL of the softmax, top-1 agreement) together with what that
//! trial removed (weights for unstructured layers, MACs for channel groups).
//!
//! The curves feed [`super::allocate`]; [`super::report`] renders them as Markdown, JSON
//! and SVG.

use serde::{Deserialize, Serialize};

use super::Granularity;
use super::PruneError;
use super::allocate::Curve;
use super::depgraph::DepGraph;
use super::evaluate::{Deviation, Evaluator};
use super::onnx_graph::{Const, OnnxGraph};
use super::reconstruct::RecoverOptions;
use super::structured;
use super::sweep_recovery::RecoveredLayer;
use super::units::{Layer, MacModel, select_ratios};
use super::unstructured::{self, Target};

/// What to sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepOptions {
    /// Ratios tried on every layer, ascending, in `[0, 1)`.
    pub ratios: Vec<f64>,
    /// Calibration samples per trial (the first ones of the batch; 0 = all).
    pub samples: usize,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            ratios: (1..=9).map(|i| f64::from(i) / 10.0).collect(),
            samples: 8,
        }
    }
}

impl SweepOptions {
    /// Checks the ratios are ascending and in `[0, 1)`.
    pub fn validate(&self) -> Result<(), PruneError> {
        if self.ratios.is_empty() {
            return Err(PruneError::Options("no sensitivity ratios".into()));
        }
        if let Some(r) = self.ratios.iter().find(|r| !(0.0..1.0).contains(*r)) {
            return Err(PruneError::Options(format!(
                "sensitivity ratio {r} must be in [0, 1)"
            )));
        }
        if self.ratios.windows(2).any(|w| w[0] >= w[1]) {
            return Err(PruneError::Options(
                "sensitivity ratios must be strictly ascending".into(),
            ));
        }
        Ok(())
    }
}

/// One trial: a layer pruned alone at `ratio`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The layer's ratio.
    pub ratio: f64,
    /// Mean output cosine similarity with the dense model.
    pub cosine: f64,
    /// Mean KL divergence of the softmax from the dense model's.
    pub kl: f64,
    /// Fraction of samples whose top-1 class matches the dense model's.
    pub top1: f64,
    /// Weights (unstructured) or MACs (channel groups) this trial removed.
    pub removed: f64,
}

/// The sweep of one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerCurve {
    /// Index of the layer among all layers of its kind (the allocation order).
    pub index: usize,
    /// Layer name (the producing node).
    pub name: String,
    /// Weights or channel classes.
    pub size: usize,
    /// One point per ratio.
    pub points: Vec<Point>,
}

impl LayerCurve {
    /// The curve for allocation, deviation measured as KL divergence; starts at ratio 0.
    pub fn curve(&self) -> Curve {
        let mut c = Curve {
            ratios: vec![0.0],
            deviation: vec![0.0],
            removed: vec![0.0],
        };
        for p in self.points.iter().filter(|p| p.ratio > 0.0) {
            c.ratios.push(p.ratio);
            c.deviation.push(p.kl);
            c.removed.push(p.removed);
        }
        c
    }
}

/// Result of a sensitivity analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// `unstructured` (weights) or `channel` (coupled channel groups).
    pub mode: String,
    /// What `removed` counts: `weights` or `MACs`.
    pub cost: String,
    /// The dense model's total of that cost (prunable weights, or MACs).
    pub dense_cost: f64,
    /// Calibration samples each trial ran.
    pub samples: usize,
    /// Trials were recovered (least squares and BatchNorm matching) before measuring.
    #[serde(default)]
    pub recovered: bool,
    /// One curve per analysed layer.
    pub layers: Vec<LayerCurve>,
}

fn point(ratio: f64, d: Deviation, removed: f64) -> Point {
    Point {
        ratio,
        cosine: d.cosine,
        kl: d.kl,
        top1: d.top1,
        removed,
    }
}

/// Sweeps the unstructured layers marked in `analyse`, each with its granularity, by
/// magnitude pruning alone. `progress(done, total)` is called after every trial.
pub fn unstructured_sweep(
    g: &OnnxGraph,
    layers: &[(Layer, usize, Target)],
    granularities: &[Granularity],
    analyse: &[bool],
    options: &SweepOptions,
    eval: &Evaluator,
    progress: &dyn Fn(u64, u64),
) -> Result<Sensitivity, PruneError> {
    let sweep = Sweep {
        layers,
        granularities,
        analyse,
        options,
        eval,
    };
    sweep.run(g, None, progress)
}

/// [`unstructured_sweep`] with every trial recovered as `--recover lstsq` recovers it
/// ([`super::sweep_recovery`]), from statistics fit on `fit_samples` (calibration samples
/// `eval` does not measure, so overfitting shows in the curves).
#[allow(clippy::too_many_arguments)]
pub fn unstructured_sweep_recovered(
    g: &OnnxGraph,
    layers: &[(Layer, usize, Target)],
    granularities: &[Granularity],
    analyse: &[bool],
    options: &SweepOptions,
    eval: &Evaluator,
    fit_samples: &[Vec<f32>],
    progress: &dyn Fn(u64, u64),
) -> Result<Sensitivity, PruneError> {
    let sweep = Sweep {
        layers,
        granularities,
        analyse,
        options,
        eval,
    };
    sweep.run(g, Some(fit_samples), progress)
}

/// The arguments of an unstructured sweep.
struct Sweep<'a> {
    layers: &'a [(Layer, usize, Target)],
    granularities: &'a [Granularity],
    analyse: &'a [bool],
    options: &'a SweepOptions,
    eval: &'a Evaluator,
}

impl Sweep<'_> {
    fn run(
        &self,
        g: &OnnxGraph,
        fit_samples: Option<&[Vec<f32>]>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Sensitivity, PruneError> {
        let Sweep {
            layers,
            granularities,
            analyse,
            options,
            eval,
        } = *self;
        options.validate()?;
        let recover = RecoverOptions::default();
        let chosen: Vec<usize> = (0..layers.len()).filter(|&i| analyse[i]).collect();
        let total = (chosen.len() * options.ratios.len()) as u64;
        let mut work = g.clone();
        let mut curves = Vec::with_capacity(chosen.len());
        let mut done = 0;
        for &i in &chosen {
            let (layer, node, target) = &layers[i];
            let mut recovered = match fit_samples {
                Some(fit) => RecoveredLayer::new(g, *node, fit, &recover)?,
                None => None,
            };
            let mut points = Vec::with_capacity(options.ratios.len());
            for &ratio in &options.ratios {
                let mut t = target.clone();
                let mask = unstructured::prune(
                    std::slice::from_mut(&mut t),
                    granularities[i],
                    ratio,
                    false,
                )?;
                let removed = mask.iter().flatten().filter(|k| !**k).count() as f64;
                let pruned = Const::f32(t.dims.clone(), t.data);
                let measured = match &mut recovered {
                    Some(r) => eval.measure(&r.trial(g, pruned, granularities[i], &recover)?),
                    None => {
                        work.consts.insert(t.name.clone(), pruned);
                        let measured = eval.measure(&work);
                        work.consts.insert(
                            target.name.clone(),
                            Const::f32(target.dims.clone(), target.data.clone()),
                        );
                        measured
                    }
                };
                points.push(point(ratio, measured?, removed));
                done += 1;
                progress(done, total);
            }
            curves.push(LayerCurve {
                index: i,
                name: layer.name.clone(),
                size: layer.size,
                points,
            });
        }
        Ok(Sensitivity {
            mode: "unstructured".into(),
            cost: "weights".into(),
            dense_cost: layers.iter().map(|l| l.0.size as f64).sum(),
            samples: eval.samples.len(),
            recovered: fit_samples.is_some(),
            layers: curves,
        })
    }
}

/// Sweeps the channel groups of `dep` marked in `analyse`, classes chosen by `scores`.
/// `progress(done, total)` is called after every trial.
#[allow(clippy::too_many_arguments)]
pub fn structured_sweep(
    g: &OnnxGraph,
    dep: &DepGraph,
    layers: &[Layer],
    scores: &[f64],
    round: usize,
    analyse: &[bool],
    options: &SweepOptions,
    eval: &Evaluator,
    progress: &dyn Fn(u64, u64),
) -> Result<Sensitivity, PruneError> {
    options.validate()?;
    let macs = MacModel::new(g)?;
    let dense = macs.macs(dep, None) as f64;
    let chosen: Vec<usize> = (0..layers.len()).filter(|&i| analyse[i]).collect();
    let total = (chosen.len() * options.ratios.len()) as u64;
    let mut curves = Vec::with_capacity(chosen.len());
    let mut done = 0;
    for &i in &chosen {
        let mut points = Vec::with_capacity(options.ratios.len());
        for &ratio in &options.ratios {
            let mut ratios = vec![0.0; dep.groups.len()];
            ratios[i] = ratio;
            let removed = select_ratios(dep, scores, &ratios, round);
            let (pruned, _) = structured::apply(g, dep, &removed)?;
            let cut = dense - macs.macs(dep, Some(&removed)) as f64;
            points.push(point(ratio, eval.measure(&pruned)?, cut));
            done += 1;
            progress(done, total);
        }
        curves.push(LayerCurve {
            index: i,
            name: layers[i].name.clone(),
            size: layers[i].size,
            points,
        });
    }
    Ok(Sensitivity {
        mode: "channel".into(),
        cost: "MACs".into(),
        dense_cost: dense,
        samples: eval.samples.len(),
        recovered: false,
        layers: curves,
    })
}
