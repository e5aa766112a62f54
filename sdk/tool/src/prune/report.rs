//! The report after pruning (dense vs pruned: parameters, MACs, file size, single-thread
//! latency, agreement on evaluation data, per-weight ratios) as Markdown and JSON, and the
//! sensitivity analysis as Markdown, JSON and an SVG plot ([`super::plot`]).

use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;

use super::PruneError;
use super::evaluate::{argmax, deviation, run_packed};
use super::nonuniform::LayerChoice;
use super::prunus_file;
use super::sensitivity::Sensitivity;
use crate::stats::graph_stats;

/// Size and speed of one model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ModelStats {
    /// Weight elements read by the nodes (as `prunus inspect` counts them).
    pub params: u64,
    /// Those that are not zero.
    pub nonzero_params: u64,
    /// Multiply-accumulates of one inference (convolutions and Gemm).
    pub macs: u64,
    /// Size of the `.prunus` file in bytes.
    pub file_bytes: u64,
    /// Median wall time of one inference, one thread, in milliseconds.
    pub latency_ms: f64,
}

/// Agreement of the pruned model with the dense one on evaluation data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// Evaluation samples.
    pub samples: usize,
    /// Samples whose top-1 class matches the dense model's.
    pub top1_agree: usize,
    /// `top1_agree / samples`.
    pub top1: f64,
    /// Mean cosine similarity of the outputs.
    pub cosine: f64,
    /// Mean KL divergence of the softmax (dense ‖ pruned), nats.
    pub kl: f64,
}

/// The fraction of one weight that pruning removed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightRatio {
    /// Original weight name.
    pub weight: String,
    /// Removed fraction of its elements (zeroed or physically removed).
    pub removed: f64,
}

/// Everything `--report` writes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PruneReport {
    /// The input model.
    pub input: String,
    /// The `.prunus` written.
    pub output: String,
    /// Granularity of the masks.
    pub granularity: String,
    /// The dense model.
    pub dense: ModelStats,
    /// The pruned model.
    pub pruned: ModelStats,
    /// Agreement on `--eval` data, if given.
    pub agreement: Option<Agreement>,
    /// Removed fraction of every pruned weight, from the masks.
    pub weights: Vec<WeightRatio>,
    /// Per-layer choices of recipe / target pruning.
    pub layers: Vec<LayerChoice>,
}

/// Reads a `.prunus` buffer's counts and times `runs` single-threaded inferences (after
/// one warm-up) on a fixed pseudo-random input.
pub fn model_stats(packed: &[u8], runs: usize) -> Result<ModelStats, PruneError> {
    let (ir, _) = prunus_file::read(packed)?;
    let stats = graph_stats(&ir.graph);
    let nonzero_params = ir
        .graph
        .nodes
        .iter()
        .flat_map(|n| n.op.weight_ids())
        .map(|w| ir.weights[w as usize].iter().filter(|v| **v != 0.0).count() as u64)
        .sum();
    let rt = |e: prunus::Error| PruneError::Runtime(e.to_string());
    let aligned = prunus::AlignedBytes::new(packed);
    let model = prunus::Model::from_bytes(aligned.as_bytes()).map_err(rt)?;
    let inputs: Vec<Vec<f32>> = model
        .inputs()
        .map(|t| {
            (0..t.numel())
                .map(|i| {
                    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / 8.4e6 - 1.0
                })
                .collect()
        })
        .collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let mut session = model.session(prunus::Options::default()).map_err(rt)?;
    session.run(&refs).map_err(rt)?;
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            session.run(&refs).map_err(rt)?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, PruneError>>()?;
    times.sort_by(f64::total_cmp);
    Ok(ModelStats {
        params: stats.params,
        nonzero_params,
        macs: stats.macs,
        file_bytes: packed.len() as u64,
        latency_ms: times[times.len() / 2],
    })
}

/// Agreement of `pruned` with `dense` (both `.prunus` buffers) on `samples`.
pub fn agreement(
    dense: &[u8],
    pruned: &[u8],
    samples: &[Vec<f32>],
) -> Result<Agreement, PruneError> {
    let a = run_packed(&prunus::AlignedBytes::new(dense), samples)?;
    let b = run_packed(&prunus::AlignedBytes::new(pruned), samples)?;
    let d = deviation(&a, &b);
    let top1_agree = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count();
    Ok(Agreement {
        samples: samples.len(),
        top1_agree,
        top1: d.top1,
        cosine: d.cosine,
        kl: d.kl,
    })
}

/// Removed fraction of every weight in a masks JSON ([`super::export`]).
pub fn weight_ratios(masks: &serde_json::Value) -> Vec<WeightRatio> {
    let Some(weights) = masks.get("weights").and_then(|w| w.as_object()) else {
        return Vec::new();
    };
    let mut out: Vec<WeightRatio> = weights
        .iter()
        .filter_map(|(name, w)| {
            let removed = match w.get("sparsity").and_then(|s| s.as_f64()) {
                Some(s) => s,
                None => {
                    let len = |k: &str| w.get(k).and_then(|v| v.as_array()).map(Vec::len);
                    let shape: Vec<usize> = serde_json::from_value(w.get("shape")?.clone()).ok()?;
                    let full = shape.first()? * shape.get(1)?;
                    1.0 - (len("kept_out")? * len("kept_in")?) as f64 / full.max(1) as f64
                }
            };
            Some(WeightRatio {
                weight: name.clone(),
                removed,
            })
        })
        .collect();
    out.sort_by(|a, b| a.weight.cmp(&b.weight));
    out
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "-".into()
    } else {
        format!("{:.3}", a / b)
    }
}

impl PruneReport {
    /// JSON text.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Markdown text.
    pub fn markdown(&self) -> String {
        let (d, p) = (&self.dense, &self.pruned);
        let mut s = String::new();
        let _ = writeln!(s, "# Pruning report\n");
        let _ = writeln!(
            s,
            "`{}` → `{}` ({} pruning)\n",
            self.input, self.output, self.granularity
        );
        let _ = writeln!(
            s,
            "| | dense | pruned | pruned / dense |\n|---|---:|---:|---:|"
        );
        let rows: [(&str, f64, f64, String, String); 5] = [
            (
                "params",
                d.params as f64,
                p.params as f64,
                d.params.to_string(),
                p.params.to_string(),
            ),
            (
                "nonzero params",
                d.nonzero_params as f64,
                p.nonzero_params as f64,
                d.nonzero_params.to_string(),
                p.nonzero_params.to_string(),
            ),
            (
                "MACs",
                d.macs as f64,
                p.macs as f64,
                d.macs.to_string(),
                p.macs.to_string(),
            ),
            (
                "file bytes",
                d.file_bytes as f64,
                p.file_bytes as f64,
                d.file_bytes.to_string(),
                p.file_bytes.to_string(),
            ),
            (
                "latency (ms, 1 thread)",
                d.latency_ms,
                p.latency_ms,
                format!("{:.3}", d.latency_ms),
                format!("{:.3}", p.latency_ms),
            ),
        ];
        for (name, a, b, ta, tb) in rows {
            let _ = writeln!(s, "| {name} | {ta} | {tb} | {} |", ratio(b, a));
        }
        match &self.agreement {
            Some(a) => {
                let _ = writeln!(
                    s,
                    "\nAgreement with the dense model on {} evaluation samples: top-1 {}/{} \
                     ({:.2} %), mean cosine {:.6}, mean KL {:.6}.",
                    a.samples,
                    a.top1_agree,
                    a.samples,
                    100.0 * a.top1,
                    a.cosine,
                    a.kl
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "\nNo evaluation data (`--eval`): agreement not measured."
                );
            }
        }
        if !self.layers.is_empty() {
            let _ = writeln!(
                s,
                "\n## Layers\n\n| layer | size | granularity | criterion | ratio | chosen by |\n\
                 |---|---:|---|---|---:|---|"
            );
            for l in &self.layers {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.3} | {} |",
                    l.name,
                    l.size,
                    l.granularity,
                    l.criterion.as_deref().unwrap_or("magnitude"),
                    l.ratio,
                    l.source
                );
            }
        }
        let _ = writeln!(s, "\n## Weights\n\n| weight | removed |\n|---|---:|");
        for w in &self.weights {
            let _ = writeln!(s, "| {} | {:.3} |", w.weight, w.removed);
        }
        s
    }
}

impl Sensitivity {
    /// JSON text.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Markdown: KL divergence per layer and ratio, then top-1 agreement and cosine at
    /// the largest ratio.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Sensitivity analysis ({} pruning)\n\nEach layer pruned alone; deviation from \
             the dense model over {} calibration samples. `removed` is the {} the trial at \
             the largest ratio removed (dense total {:.0}).\n",
            self.mode, self.samples, self.cost, self.dense_cost
        );
        let ratios: Vec<f64> = self
            .layers
            .first()
            .map(|l| l.points.iter().map(|p| p.ratio).collect())
            .unwrap_or_default();
        let _ = write!(s, "| layer | size |");
        for r in &ratios {
            let _ = write!(s, " KL@{r:.2} |");
        }
        let _ = writeln!(s, " top-1@max | cosine@max | removed |");
        let _ = writeln!(
            s,
            "|---|---:|{}---:|---:|---:|",
            "---:|".repeat(ratios.len())
        );
        for l in &self.layers {
            let _ = write!(s, "| {} | {} |", l.name, l.size);
            for p in &l.points {
                let _ = write!(s, " {:.3e} |", p.kl);
            }
            if let Some(p) = l.points.last() {
                let _ = write!(s, " {:.3} | {:.5} | {:.0} |", p.top1, p.cosine, p.removed);
            }
            let _ = writeln!(s);
        }
        s
    }
}
