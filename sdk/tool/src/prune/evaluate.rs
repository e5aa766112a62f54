//! Output deviation of a pruned model from the dense one, measured with the Prunus runtime:
//! cosine similarity of the outputs, KL divergence of their softmax and top-1 agreement,
//! averaged over a few samples. The dense outputs are computed once ([`Evaluator::new`]);
//! every trial packs the pruned ONNX (BatchNorm folded), opens one single-threaded session
//! and runs the samples through it.

use serde::Serialize;

use super::PruneError;
use super::calibrate::{Calibration, pack};
use super::onnx_graph::OnnxGraph;

/// How far a model's outputs are from the dense model's (means over the samples).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Deviation {
    /// Mean cosine similarity of the output vectors (1 = same direction).
    pub cosine: f64,
    /// Mean KL divergence `KL(softmax(dense) ‖ softmax(pruned))` in nats.
    pub kl: f64,
    /// Fraction of samples whose arg-max matches the dense model's.
    pub top1: f64,
}

/// Cosine similarity of two vectors (1 when both are zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

fn log_softmax(x: &[f32]) -> Vec<f64> {
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let log_sum = x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    x.iter().map(|&v| v as f64 - max - log_sum).collect()
}

/// `KL(softmax(p) ‖ softmax(q))` of two logit vectors, in nats.
pub fn kl_softmax(p: &[f32], q: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(p), log_softmax(q));
    lp.iter()
        .zip(&lq)
        .map(|(&a, &b)| a.exp() * (a - b))
        .sum::<f64>()
        .max(0.0)
}

/// Index of the largest value (the first on ties).
pub fn argmax(x: &[f32]) -> usize {
    x.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Mean deviation of `outputs` from `reference`, sample by sample.
pub fn deviation(reference: &[Vec<f32>], outputs: &[Vec<f32>]) -> Deviation {
    let n = reference.len().min(outputs.len()).max(1) as f64;
    let mut d = Deviation {
        cosine: 0.0,
        kl: 0.0,
        top1: 0.0,
    };
    for (r, o) in reference.iter().zip(outputs) {
        d.cosine += cosine(r, o);
        d.kl += kl_softmax(r, o);
        d.top1 += f64::from(u8::from(argmax(r) == argmax(o)));
    }
    d.cosine /= n;
    d.kl /= n;
    d.top1 /= n;
    d
}

/// Runs serialized ONNX on every sample (one session, one thread); returns output 0 of each.
pub fn run_onnx(onnx: &[u8], samples: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, PruneError> {
    run_packed(&pack(onnx)?, samples)
}

/// Runs a `.prunus` model on every sample (one session, one thread); returns output 0 of
/// each.
pub fn run_packed(
    packed: &prunus::AlignedBytes,
    samples: &[Vec<f32>],
) -> Result<Vec<Vec<f32>>, PruneError> {
    let rt = |e: prunus::Error| PruneError::Runtime(e.to_string());
    let model = prunus::Model::from_bytes(packed.as_bytes()).map_err(rt)?;
    let mut session = model.session(prunus::Options::default()).map_err(rt)?;
    samples
        .iter()
        .map(|s| {
            session.run(&[s]).map_err(rt)?;
            Ok(session.output(0).map_err(rt)?.to_vec())
        })
        .collect()
}

/// Measures pruned variants of one dense model against its cached outputs.
#[derive(Clone, Debug)]
pub struct Evaluator {
    /// The samples every trial runs.
    pub samples: Vec<Vec<f32>>,
    /// The dense model's output on each sample.
    pub dense: Vec<Vec<f32>>,
}

impl Evaluator {
    /// Runs the dense model once on the first `max_samples` samples of `data` (all when 0).
    pub fn new(
        dense: &OnnxGraph,
        data: &Calibration,
        max_samples: usize,
    ) -> Result<Self, PruneError> {
        let input = dense
            .inputs
            .first()
            .ok_or_else(|| PruneError::Model("no graph input".into()))?;
        if dense.shape(input)? != data.sample_shape.as_slice() {
            return Err(PruneError::Calibration(format!(
                "samples are {:?}, the model input '{input}' is {:?}",
                data.sample_shape,
                dense.shape(input)?
            )));
        }
        let take = if max_samples == 0 {
            data.samples.len()
        } else {
            max_samples.min(data.samples.len())
        };
        let samples = data.samples[..take].to_vec();
        let outputs = run_onnx(&dense.to_bytes(), &samples)?;
        Ok(Evaluator {
            samples,
            dense: outputs,
        })
    }

    /// Deviation of a pruned graph from the dense model.
    pub fn measure(&self, pruned: &OnnxGraph) -> Result<Deviation, PruneError> {
        let outputs = run_onnx(&pruned.to_bytes(), &self.samples)?;
        Ok(deviation(&self.dense, &outputs))
    }
}
