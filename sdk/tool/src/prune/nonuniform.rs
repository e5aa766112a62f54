//! Pruning an ONNX graph by a [`Recipe`]: per-layer settings from its rules, ratios from
//! the uniform sparsity, the pinned rule ratios, or — with a target — allocated from a
//! sensitivity analysis on calibration data ([`super::sensitivity`], [`allocate`]).

use std::collections::HashMap;

use serde::Serialize;

use super::allocate::{Slot, allocate};
use super::calibrate::{Calibration, activation_means};
use super::channel_select::reconstruction_scores;
use super::criteria::class_scores;
use super::depgraph::DepGraph;
use super::evaluate::Evaluator;
use super::export;
use super::onnx_graph::OnnxGraph;
use super::recipe::{LayerSetting, Recipe, Target, criterion_name, granularity_name};
use super::sensitivity::{
    Sensitivity, structured_sweep, unstructured_sweep, unstructured_sweep_recovered,
};
use super::units::{
    Layer, MacModel, select_ratios, structured_layers, structured_prune_ratios,
    unstructured_layers, unstructured_prune_ratios,
};
use super::unstructured::Target as UnstructuredTarget;
use super::{Criterion, Granularity, PruneError};

/// The ratio and settings one layer was pruned with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerChoice {
    /// Layer name (producing node).
    pub name: String,
    /// Weights or channel classes in the layer.
    pub size: usize,
    /// Removed fraction: of the weight's elements (unstructured family) or of the group's
    /// channel classes (channel, after rounding).
    pub ratio: f64,
    /// Granularity.
    pub granularity: String,
    /// Channel criterion (channel pruning only).
    pub criterion: Option<String>,
    /// How the ratio was chosen: `uniform`, `rule`, `allocated` or `skipped`.
    pub source: String,
}

/// Result of [`prune_with_recipe`].
#[derive(Clone, Debug)]
pub struct RecipeOutcome {
    /// The pruned graph.
    pub graph: OnnxGraph,
    /// Masks JSON keyed by the original weight names.
    pub masks: serde_json::Value,
    /// Channel pruning: kept channel indices of every tensor that lost channels.
    pub kept: HashMap<String, Vec<usize>>,
    /// Unstructured pruning: every pruned weight with its kept-mask and granularity (the
    /// pattern recovery may re-choose its zeros with).
    pub weights: Vec<(UnstructuredTarget, Vec<bool>, Granularity)>,
    /// Per-layer choices.
    pub layers: Vec<LayerChoice>,
    /// The sensitivity analysis, when one ran.
    pub sensitivity: Option<Sensitivity>,
}

/// Progress callbacks: `step(message)` when a stage starts, `trial(done, total)` during the
/// sensitivity sweep.
pub struct Progress<'a> {
    /// A stage starts.
    pub step: &'a dyn Fn(&str),
    /// A sweep trial finished.
    pub trial: &'a dyn Fn(u64, u64),
}

fn source(s: &LayerSetting, allocated: bool) -> &'static str {
    match (s.skip, s.ratio, allocated) {
        (true, _, _) => "skipped",
        (false, Some(_), _) => "rule",
        (false, None, true) => "allocated",
        (false, None, false) => "uniform",
    }
}

/// Where the sensitivity curves come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Analysis {
    /// Swept on the calibration data when a target needs them.
    IfNeeded,
    /// Always swept (to write the analysis out).
    Always,
    /// Measured before (a `sensitivity.json` of this model and mode); nothing is swept.
    Given(Sensitivity),
}

/// Prunes `g` by `recipe`. `calib` is needed by the activation criterion and by a sweep
/// (a target without given curves, or [`Analysis::Always`]).
pub fn prune_with_recipe(
    g: &OnnxGraph,
    recipe: &Recipe,
    calib: Option<&Calibration>,
    analysis: &Analysis,
    progress: &Progress<'_>,
) -> Result<RecipeOutcome, PruneError> {
    let sweep = match analysis {
        Analysis::IfNeeded => recipe.target.is_some(),
        Analysis::Always => true,
        Analysis::Given(_) => false,
    };
    let given = match analysis {
        Analysis::Given(s) => Some(s),
        _ => None,
    };
    let evaluator = match (sweep, calib) {
        (false, _) => None,
        (true, Some(c)) => {
            (progress.step)("running the dense model on the calibration samples");
            Some(Evaluator::new(g, c, recipe.sweep.samples)?)
        }
        (true, None) => {
            return Err(PruneError::Calibration(
                "a target or a sensitivity analysis needs calibration data (--calib)".into(),
            ));
        }
    };
    if recipe.granularity == Granularity::Channel {
        structured(g, recipe, calib, evaluator.as_ref(), given, progress)
    } else {
        unstructured(g, recipe, calib, evaluator.as_ref(), given, progress)
    }
}

fn structured(
    g: &OnnxGraph,
    recipe: &Recipe,
    calib: Option<&Calibration>,
    evaluator: Option<&Evaluator>,
    given: Option<&Sensitivity>,
    progress: &Progress<'_>,
) -> Result<RecipeOutcome, PruneError> {
    (progress.step)("building the channel dependency graph");
    let dep = DepGraph::build(g)?;
    let layers = structured_layers(g, &dep);
    let settings = recipe.settings(&layers)?;
    let measure = |criterion: Criterion, what: &str| {
        if !settings.iter().any(|s| s.criterion == criterion) {
            return Ok(None);
        }
        let calib = calib.ok_or_else(|| {
            PruneError::Calibration(format!("the {what} criterion needs --calib"))
        })?;
        (progress.step)(&format!("measuring {what} scores"));
        if criterion == Criterion::Activation {
            return activation_means(g, &dep, calib, &|_, _| {}).map(Some);
        }
        let mut wanted = vec![false; dep.classes.len()];
        for (group, s) in dep.groups.iter().zip(&settings) {
            if s.criterion == criterion && !s.skip {
                group.iter().for_each(|&id| wanted[id] = true);
            }
        }
        reconstruction_scores(g, &dep, calib, &Default::default(), &wanted, &|_, _| {}).map(Some)
    };
    let activations = measure(Criterion::Activation, "activation")?;
    let reconstruction = measure(Criterion::Reconstruction, "reconstruction")?;
    let mut by_criterion: Vec<(Criterion, Vec<f64>)> = Vec::new();
    let mut scores = vec![0.0; dep.classes.len()];
    for (group, s) in dep.groups.iter().zip(&settings) {
        if !by_criterion.iter().any(|(c, _)| *c == s.criterion) {
            let measured = match s.criterion {
                Criterion::Activation => activations.as_ref(),
                _ => reconstruction.as_ref(),
            };
            let v = class_scores(g, &dep, s.criterion, measured)?;
            by_criterion.push((s.criterion, v));
        }
        if let Some((_, v)) = by_criterion.iter().find(|(c, _)| *c == s.criterion) {
            group.iter().for_each(|&id| scores[id] = v[id]);
        }
    }
    let sensitivity = match (given, evaluator) {
        (Some(s), _) => Some(check_given(s, &layers, "channel")?),
        (None, Some(eval)) => {
            (progress.step)("sensitivity analysis");
            let analyse: Vec<bool> = settings.iter().map(|s| !s.skip).collect();
            Some(structured_sweep(
                g,
                &dep,
                &layers,
                &scores,
                recipe.round,
                &analyse,
                &recipe.sweep,
                eval,
                progress.trial,
            )?)
        }
        (None, None) => None,
    };
    let ratios = match (recipe.target, &sensitivity) {
        (Some(Target::MacsKept(kept)), Some(sens)) => {
            let macs = MacModel::new(g)?;
            let dense = macs.macs(&dep, None).max(1) as f64;
            let slots = slots(&layers, &settings, sens)?;
            let remaining = |r: &[f64]| {
                let removed = select_ratios(&dep, &scores, r, recipe.round);
                macs.macs(&dep, Some(&removed)) as f64 / dense
            };
            (progress.step)("allocating ratios");
            Some(allocate(&slots, &remaining, kept)?)
        }
        _ => None,
    };
    let chosen = choose(&settings, recipe.sparsity, ratios.as_deref());
    (progress.step)("removing channels");
    let (graph, result, removed) =
        structured_prune_ratios(g, &dep, &scores, &chosen, recipe.round)?;
    let dims = |name: &str| {
        g.consts
            .get(name)
            .map(|c| c.dims.clone())
            .unwrap_or_default()
    };
    let masks = export::structured_masks(&result, &dims);
    let choices = layers
        .iter()
        .zip(&settings)
        .zip(&dep.groups)
        .map(|((l, s), group)| LayerChoice {
            name: l.name.clone(),
            size: l.size,
            ratio: group.iter().filter(|&&id| removed[id]).count() as f64 / group.len() as f64,
            granularity: "channel".into(),
            criterion: Some(criterion_name(s.criterion).into()),
            source: source(s, ratios.is_some()).into(),
        })
        .collect();
    Ok(RecipeOutcome {
        graph,
        masks,
        kept: result.kept,
        weights: Vec::new(),
        layers: choices,
        sensitivity,
    })
}

/// Checks that curves measured before belong to these layers.
fn check_given(s: &Sensitivity, layers: &[Layer], mode: &str) -> Result<Sensitivity, PruneError> {
    if s.mode != mode {
        return Err(PruneError::Options(format!(
            "the sensitivity analysis is for {} pruning, the recipe prunes {mode}",
            s.mode
        )));
    }
    for c in &s.layers {
        if layers
            .get(c.index)
            .is_none_or(|l| l.name != c.name || l.size != c.size)
        {
            return Err(PruneError::Options(format!(
                "sensitivity curve '{}' (layer {}) does not match this model's layers",
                c.name, c.index
            )));
        }
    }
    Ok(s.clone())
}

/// Allocation slots: skipped and pinned layers fixed, the others free on their curve.
fn slots(
    layers: &[Layer],
    settings: &[LayerSetting],
    sens: &Sensitivity,
) -> Result<Vec<Slot>, PruneError> {
    let mut curves: HashMap<usize, _> = sens.layers.iter().map(|c| (c.index, c)).collect();
    settings
        .iter()
        .enumerate()
        .map(|(i, s)| match (s.skip, s.ratio, s.granularity) {
            (true, _, _) => Ok(Slot::Fixed(0.0)),
            (false, Some(r), _) => Ok(Slot::Fixed(r)),
            (false, None, Granularity::NM(n, m)) => Ok(Slot::Fixed(1.0 - n as f64 / m as f64)),
            (false, None, _) => match curves.remove(&i) {
                Some(c) => Ok(Slot::Free(c.curve())),
                None => Err(PruneError::Options(format!(
                    "no sensitivity curve for layer '{}'",
                    layers[i].name
                ))),
            },
        })
        .collect()
}

/// Final ratio of every layer.
fn choose(settings: &[LayerSetting], uniform: f64, allocated: Option<&[f64]>) -> Vec<f64> {
    settings
        .iter()
        .enumerate()
        .map(|(i, s)| match (s.skip, s.ratio, allocated) {
            (true, _, _) => 0.0,
            (false, Some(r), _) => r,
            (false, None, Some(a)) => a[i],
            (false, None, None) => uniform,
        })
        .collect()
}

fn unstructured(
    g: &OnnxGraph,
    recipe: &Recipe,
    calib: Option<&Calibration>,
    evaluator: Option<&Evaluator>,
    given: Option<&Sensitivity>,
    progress: &Progress<'_>,
) -> Result<RecipeOutcome, PruneError> {
    let units = unstructured_layers(g, recipe.layers);
    let layers: Vec<Layer> = units.iter().map(|u| u.0.clone()).collect();
    let settings = recipe.settings(&layers)?;
    let granularities: Vec<Granularity> = settings.iter().map(|s| s.granularity).collect();
    let sensitivity = match (given, evaluator) {
        (Some(s), _) => Some(check_given(s, &layers, "unstructured")?),
        (None, Some(eval)) => {
            (progress.step)("sensitivity analysis");
            let analyse: Vec<bool> = settings
                .iter()
                .map(|s| !s.skip && !matches!(s.granularity, Granularity::NM(..)))
                .collect();
            // Recovery is fit on the calibration samples the trials do not measure (all of
            // them when there are no others).
            let fit = calib
                .map(|c| match c.samples.get(eval.samples.len()..) {
                    Some(rest) if !rest.is_empty() => rest,
                    _ => &c.samples[..],
                })
                .filter(|_| recipe.recovered_sweep);
            Some(match fit {
                Some(fit) => unstructured_sweep_recovered(
                    g,
                    &units,
                    &granularities,
                    &analyse,
                    &recipe.sweep,
                    eval,
                    fit,
                    progress.trial,
                )?,
                None => unstructured_sweep(
                    g,
                    &units,
                    &granularities,
                    &analyse,
                    &recipe.sweep,
                    eval,
                    progress.trial,
                )?,
            })
        }
        (None, None) => None,
    };
    let ratios = match (recipe.target, &sensitivity) {
        (Some(Target::Sparsity(s)), Some(sens)) => {
            let sizes: Vec<f64> = layers.iter().map(|l| l.size as f64).collect();
            let total: f64 = sizes.iter().sum::<f64>().max(1.0);
            let remaining =
                |r: &[f64]| 1.0 - r.iter().zip(&sizes).map(|(r, n)| r * n).sum::<f64>() / total;
            (progress.step)("allocating ratios");
            Some(allocate(
                &slots(&layers, &settings, sens)?,
                &remaining,
                1.0 - s,
            )?)
        }
        _ => None,
    };
    let chosen = choose(&settings, recipe.sparsity, ratios.as_deref());
    let per_layer: Vec<(Granularity, f64)> = settings
        .iter()
        .zip(&chosen)
        .map(|(s, &r)| match (s.skip, s.granularity) {
            (true, _) => (Granularity::Unstructured, 0.0),
            (false, gr) => (gr, r),
        })
        .collect();
    (progress.step)("pruning weights");
    let mut graph = g.clone();
    let targets = units.into_iter().map(|u| u.2).collect();
    let pruned = unstructured_prune_ratios(&mut graph, targets, &per_layer)?;
    let masks = export::unstructured_masks(&granularity_name(recipe.granularity), &pruned);
    let choices = layers
        .iter()
        .zip(&settings)
        .zip(&pruned)
        .map(|((l, s), (_, mask))| LayerChoice {
            name: l.name.clone(),
            size: l.size,
            ratio: mask.iter().filter(|k| !**k).count() as f64 / mask.len().max(1) as f64,
            granularity: granularity_name(s.granularity),
            criterion: None,
            source: source(s, ratios.is_some()).into(),
        })
        .collect();
    Ok(RecipeOutcome {
        graph,
        masks,
        kept: HashMap::new(),
        weights: pruned
            .into_iter()
            .zip(&per_layer)
            .filter(|((_, mask), _)| mask.iter().any(|k| !*k))
            .map(|((t, mask), &(granularity, _))| (t, mask, granularity))
            .collect(),
        layers: choices,
        sensitivity,
    })
}
