//! One-shot recovery after pruning, without training: layer-wise least-squares
//! reconstruction (He et al. 2017 / ThiNet for channel pruning; per-row refit of the kept
//! weights for unstructured, block and N:M) and BatchNorm recalibration / bias correction.
//!
//! Layers (Conv, Gemm) are processed in topological order. For each, the calibration
//! samples are run through the Prunus runtime twice — the dense model and the pruned model
//! *as already recovered* (so errors do not compound), each truncated to end at the
//! layer's input — and output positions are sampled. The target is the dense layer's
//! output *before* BatchNorm (`conv(x_dense, W_dense) + b`), so the BN that follows keeps
//! its meaning; [`reconstruct_layer::Fit`] refits the pruned weights and bias to it and
//! [`recalibrate`] then corrects the BN statistics (or the bias when no BN follows).

use std::collections::{HashMap, HashSet};

use super::calibrate::{Calibration, pack};
use super::onnx_graph::{Const, OnnxGraph, attr_f, op};
use super::recalibrate::{BnUpdate, correct_bias, update_bn};
use super::reconstruct_layer::{Fit, Layer};
use super::{Granularity, PruneError};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::tensor_shape_proto::{Dimension, dimension};
use crate::onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
use crate::onnx::proto::{TensorShapeProto, TypeProto, ValueInfoProto};

/// What one-shot recovery does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing (magnitude pruning only).
    None,
    /// Bias correction: per-channel means after every layer matched to the dense model's.
    Bias,
    /// BatchNorm statistics re-estimated on the pruned network (adaptive BN).
    Bn,
    /// Least-squares reconstruction of the pruned layers, then BN means and variances
    /// matched to the dense model's.
    Lstsq,
}

/// Options of [`recover`].
#[derive(Clone, Debug, PartialEq)]
pub struct RecoverOptions {
    /// What to do.
    pub recovery: Recovery,
    /// Calibration samples used (the first ones).
    pub samples: usize,
    /// Output positions sampled per sample and layer (all when the layer has fewer).
    pub positions: usize,
    /// Ridge, relative to the mean squared input of the layer (used as is when nothing is
    /// held out).
    pub ridge: f64,
    /// The last 1/N of the calibration samples are held out to choose each layer's ridge
    /// (fit on the others, least error on them; a contiguous block, since neighbouring
    /// samples are often crops of the same image); all samples then refit. 0: `ridge`.
    pub held_out_every: usize,
    /// Samples per unknown below which a row is not refit.
    pub min_ratio: f64,
    /// Least squares re-chooses the zeros of unstructured / block / N:M pruned layers
    /// with this pattern (OBS-style, [`super::reconstruct_obs`]); `None` keeps the
    /// magnitude masks. Channel-pruned layers are never re-masked.
    pub reselect: Option<Granularity>,
    /// Per weight (initializer name): the pattern that layer's zeros are re-chosen with,
    /// overriding `reselect` (recipes whose layers have different granularities).
    pub reselect_by_weight: HashMap<String, Granularity>,
}

impl Default for RecoverOptions {
    fn default() -> Self {
        RecoverOptions {
            recovery: Recovery::Lstsq,
            samples: 128,
            positions: 64,
            ridge: 1e-3,
            held_out_every: 0,
            min_ratio: 2.0,
            reselect: None,
            reselect_by_weight: HashMap::new(),
        }
    }
}

/// What [`recover`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoverReport {
    /// Layers visited (from the first pruned one on).
    pub layers: usize,
    /// Layers with refit rows.
    pub refit_layers: usize,
    /// Refit output rows.
    pub refit_rows: usize,
    /// BatchNorms updated.
    pub bn_updated: usize,
    /// Biases corrected (layers without a following BatchNorm).
    pub bias_corrected: usize,
}

/// The graph truncated to the nodes `output` depends on, with `output` as its only output.
pub fn truncated(g: &OnnxGraph, output: &str) -> Result<Vec<u8>, PruneError> {
    use prost::Message;
    let shape = g.shape(output)?.to_vec();
    let mut model = g.to_model();
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| PruneError::Model("no graph".into()))?;
    let mut need: HashSet<String> = HashSet::from([output.to_string()]);
    let mut keep = vec![false; graph.node.len()];
    for (i, n) in graph.node.iter().enumerate().rev() {
        if n.output.iter().any(|o| need.contains(o)) {
            keep[i] = true;
            need.extend(n.input.iter().cloned());
        }
    }
    let mut k = keep.into_iter();
    graph.node.retain(|_| k.next().unwrap_or(false));
    graph
        .initializer
        .retain(|t| need.contains(t.name.as_deref().unwrap_or_default()));
    graph.output = vec![ValueInfoProto {
        name: Some(output.to_string()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(dimension::Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }];
    Ok(model.encode_to_vec())
}

/// A callback on one sample's tensor.
pub(super) type PerSample<'a> = dyn FnMut(usize, &[f32]) -> Result<(), PruneError> + 'a;

/// Runs every sample through `g` truncated at tensor `x` and calls `each(sample, x)`.
pub(super) fn for_each_input(
    g: &OnnxGraph,
    x: &str,
    samples: &[Vec<f32>],
    each: &mut PerSample<'_>,
) -> Result<(), PruneError> {
    if g.inputs.iter().any(|i| i == x) {
        for (s, sample) in samples.iter().enumerate() {
            each(s, sample)?;
        }
        return Ok(());
    }
    let rt = |e: prunus::Error| PruneError::Runtime(e.to_string());
    let packed = pack(&truncated(g, x)?)?;
    let model = prunus::Model::from_bytes(packed.as_bytes()).map_err(rt)?;
    let mut session = model.session(prunus::Options::default()).map_err(rt)?;
    for (s, sample) in samples.iter().enumerate() {
        session.run(&[sample]).map_err(rt)?;
        each(s, session.output(0).map_err(rt)?)?;
    }
    Ok(())
}

/// Deterministic sample of `count` of `0..total` positions for (layer, sample).
pub(super) fn sample_positions(total: usize, count: usize, seed: u64) -> Vec<usize> {
    if count >= total {
        return (0..total).collect();
    }
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut v: Vec<usize> = (0..total).collect();
    for i in 0..count {
        let j = i + (next() % (total - i) as u64) as usize;
        v.swap(i, j);
    }
    v.truncate(count);
    v
}

/// One layer being recovered: the pruned and dense views, the dense channel of every
/// pruned output channel, and its statistics.
struct Work {
    pruned: Layer,
    dense: Layer,
    out_map: Vec<usize>,
    changed: bool,
    fit: Fit,
}

/// Seed of the sampled positions of a layer and sample (the same for both passes).
fn seed(w: &Work, sample: usize) -> u64 {
    (w.pruned.node as u64) << 32 | sample as u64
}

/// Recovers `pruned` (pruned from `dense`; same nodes in the same order) on `calib`.
/// `kept` maps every tensor that lost channels to its kept dense channels (empty for
/// unstructured pruning). `progress(done, total)` counts runs.
pub fn recover(
    dense: &OnnxGraph,
    pruned: &mut OnnxGraph,
    kept: &HashMap<String, Vec<usize>>,
    calib: &Calibration,
    options: &RecoverOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<RecoverReport, PruneError> {
    let mut report = RecoverReport::default();
    if options.recovery == Recovery::None {
        return Ok(report);
    }
    let input = dense
        .inputs
        .first()
        .ok_or_else(|| PruneError::Model("no graph input".into()))?;
    if dense.shape(input)? != calib.sample_shape.as_slice() {
        return Err(PruneError::Calibration(format!(
            "samples are {:?}, the model input '{input}' is {:?}",
            calib.sample_shape,
            dense.shape(input)?
        )));
    }
    let same_nodes = dense.nodes().len() == pruned.nodes().len()
        && dense
            .nodes()
            .iter()
            .zip(pruned.nodes())
            .all(|(a, b)| op(a) == op(b) && a.output == b.output);
    if !same_nodes {
        return Err(PruneError::Model(
            "the pruned graph's nodes differ from the dense graph's".into(),
        ));
    }
    let samples = &calib.samples[..calib.samples.len().min(options.samples.max(1))];
    let mut order: Vec<usize> = Vec::new();
    let mut first_changed = None;
    for i in 0..pruned.nodes().len() {
        let (Some(p), Some(d)) = (Layer::from_node(pruned, i)?, Layer::from_node(dense, i)?) else {
            continue;
        };
        if first_changed.is_none() && (p.weight != d.weight || p.bias != d.bias) {
            first_changed = Some(i);
        }
        if first_changed.is_some() {
            order.push(i);
        }
    }
    let mut steps: Vec<Vec<usize>> = Vec::new();
    let mut done: HashSet<usize> = HashSet::new();
    for &i in &order {
        if done.contains(&i) {
            continue;
        }
        let x = &pruned.nodes()[i].input[0];
        let step: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&j| !done.contains(&j) && pruned.nodes()[j].input[0] == *x)
            .collect();
        done.extend(step.iter().copied());
        steps.push(step);
    }
    let total = (2 * steps.len() * samples.len()) as u64;
    let mut done_runs = 0u64;
    let least_squares = options.recovery == Recovery::Lstsq;
    for step in &steps {
        let mut work = Vec::new();
        for &i in step {
            let (Some(p), Some(d)) = (Layer::from_node(pruned, i)?, Layer::from_node(dense, i)?)
            else {
                continue;
            };
            let y = &pruned.nodes()[i].output[0];
            let out_map = kept
                .get(y)
                .cloned()
                .unwrap_or_else(|| (0..p.rows).collect());
            if out_map.len() != p.rows || out_map.iter().any(|&o| o >= d.rows) {
                return Err(PruneError::Model(format!(
                    "kept channels of '{y}' do not match its producer"
                )));
            }
            let changed = p.cols != d.cols
                || out_map.iter().enumerate().any(|(o, &od)| {
                    p.weight[o * p.cols..(o + 1) * p.cols]
                        != d.weight[od * d.cols..(od + 1) * d.cols]
                });
            let fit = Fit::new(&p, least_squares && changed);
            work.push(Work {
                pruned: p,
                dense: d,
                out_map,
                changed,
                fit,
            });
        }
        if work.is_empty() {
            continue;
        }
        let x = pruned.nodes()[step[0]].input[0].clone();
        // Dense targets first (per sample and sampled position), then the pruned inputs.
        let mut targets: Vec<Vec<Vec<f32>>> = vec![Vec::new(); work.len()];
        for_each_input(dense, &x, samples, &mut |s, xs| {
            for (w, t) in work.iter().zip(targets.iter_mut()) {
                check_len(&w.dense, xs, &x)?;
                let mut patch = vec![0.0; w.dense.cols];
                for p in sample_positions(w.pruned.positions(), options.positions, seed(w, s)) {
                    let mut current = usize::MAX;
                    let mut row = Vec::with_capacity(w.pruned.rows);
                    for &od in &w.out_map {
                        let gd = w.dense.group_of(od);
                        if gd != current {
                            w.dense.patch(xs, p, gd, &mut patch);
                            current = gd;
                        }
                        row.push(w.dense.output(od, &patch) as f32);
                    }
                    t.push(row);
                }
            }
            done_runs += 1;
            progress(done_runs, total);
            Ok(())
        })?;
        for_each_input(pruned, &x, samples, &mut |s, xs| {
            for (w, t) in work.iter_mut().zip(targets.iter_mut()) {
                check_len(&w.pruned, xs, &x)?;
                let pos = sample_positions(w.pruned.positions(), options.positions, seed(w, s));
                let mut patches = vec![vec![0.0; w.pruned.cols]; w.pruned.groups];
                let first = s * pos.len();
                for (k, &p) in pos.iter().enumerate() {
                    for (grp, patch) in patches.iter_mut().enumerate() {
                        w.pruned.patch(xs, p, grp, patch);
                    }
                    let target: Vec<f64> = std::mem::take(&mut t[first + k])
                        .into_iter()
                        .map(f64::from)
                        .collect();
                    if held_out(s, samples.len(), options.held_out_every) {
                        w.fit.add_held_out(&w.pruned, &patches, &target);
                    } else {
                        w.fit.add(&w.pruned, &patches, &target);
                    }
                }
            }
            done_runs += 1;
            progress(done_runs, total);
            Ok(())
        })?;
        report.layers += work.len();
        for w in &mut work {
            if least_squares && w.changed {
                let weight = &pruned.nodes()[w.pruned.node].input[1];
                let reselect = options
                    .reselect_by_weight
                    .get(weight)
                    .copied()
                    .or(options.reselect)
                    .filter(|_| w.pruned.cols == w.dense.cols && w.pruned.rows == w.dense.rows);
                let rows = w
                    .fit
                    .solve(&mut w.pruned, options.ridge, options.min_ratio, reselect);
                if rows > 0 {
                    report.refit_layers += 1;
                    report.refit_rows += rows;
                }
            }
            let mode = match options.recovery {
                Recovery::Bias => BnUpdate::Mean,
                Recovery::Bn => BnUpdate::Reestimate,
                _ => BnUpdate::MatchDense,
            };
            apply(pruned, &w.pruned, &w.fit, w.changed, mode, &mut report)?;
        }
    }
    Ok(report)
}

/// Whether sample `s` of `n` is in the held-out last `1/every` (never when `every` is 0).
fn held_out(s: usize, n: usize, every: usize) -> bool {
    every > 0 && s * every >= (every - 1) * n
}

/// Updates unstructured targets and their kept-masks from the weights of `g` after
/// [`recover`] (least squares may re-choose the zeros).
pub fn refresh_masks(g: &OnnxGraph, pruned: &mut [(super::unstructured::Target, Vec<bool>)]) {
    for (t, mask) in pruned.iter_mut() {
        if let Some(v) = g.consts.get(&t.name).and_then(|c| c.as_f32())
            && v.len() == mask.len()
        {
            *mask = v.iter().map(|&x| x != 0.0).collect();
            t.data = v.to_vec();
        }
    }
}

fn check_len(layer: &Layer, xs: &[f32], x: &str) -> Result<(), PruneError> {
    if xs.len() != layer.input_len() {
        return Err(PruneError::Runtime(format!(
            "tensor '{x}' has {} values, its consumer expects {}",
            xs.len(),
            layer.input_len()
        )));
    }
    Ok(())
}

/// Writes `layer` back (its weights only when `changed`) and updates its BatchNorms (or
/// its bias) from `fit`'s output statistics.
pub(super) fn apply(
    g: &mut OnnxGraph,
    layer: &Layer,
    fit: &Fit,
    changed: bool,
    mode: BnUpdate,
    report: &mut RecoverReport,
) -> Result<(), PruneError> {
    let stats = fit.stats();
    let node = layer.node;
    let uses = g.const_uses();
    let y = g.nodes()[node].output[0].clone();
    let bns: Vec<usize> = g
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| op(n) == "BatchNormalization" && n.input.first() == Some(&y))
        .map(|(i, _)| i)
        .collect();
    let mut bias = layer.bias.clone();
    if bns.is_empty() {
        if mode != BnUpdate::Reestimate {
            correct_bias(&mut bias, &stats);
            report.bias_corrected += 1;
        }
    } else {
        for &b in &bns {
            let n = &g.nodes()[b];
            let eps = attr_f(n, "epsilon").unwrap_or(1e-5);
            let (mean_name, var_name) = (n.input[3].clone(), n.input[4].clone());
            let read = |name: &str| -> Result<Vec<f32>, PruneError> {
                g.consts
                    .get(name)
                    .and_then(|c| c.as_f32())
                    .map(<[f32]>::to_vec)
                    .ok_or_else(|| PruneError::Tensor {
                        tensor: name.to_string(),
                        reason: "BatchNorm statistics must be f32 constants".into(),
                    })
            };
            let (mut mean, mut var) = (read(&mean_name)?, read(&var_name)?);
            update_bn(&mut mean, &mut var, eps, &stats, mode);
            let dims = vec![mean.len()];
            g.set_node_const(b, 3, Const::f32(dims.clone(), mean), &uses);
            g.set_node_const(b, 4, Const::f32(dims, var), &uses);
            report.bn_updated += 1;
        }
    }
    if changed {
        g.set_node_const(node, 1, layer.weight_const(), &uses);
    }
    let has_bias = g.nodes()[node].input.get(2).is_some_and(|b| !b.is_empty());
    if has_bias || bias.iter().any(|&b| b != 0.0) {
        let dims = match g.nodes()[node].input.get(2).and_then(|b| g.consts.get(b)) {
            Some(c) if has_bias => c.dims.clone(),
            _ => vec![bias.len()],
        };
        g.set_node_const(node, 2, Const::f32(dims, bias), &uses);
    }
    Ok(())
}
