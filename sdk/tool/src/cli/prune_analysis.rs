//! The `prunus prune` flags for non-uniform pruning and reports: `--recipe`,
//! `--target-sparsity`, `--target-macs`, `--sensitivity DIR`, `--report PATH.md` and
//! `--eval X.npy` (flattened into [`super::prune::PruneArgs`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prunus_tool::atomic::write_atomic;
use prunus_tool::prune::calib_data::{self, Preprocess};
use prunus_tool::prune::calibrate::{Calibration, pack};
use prunus_tool::prune::nonuniform::{
    Analysis, LayerChoice, Progress, RecipeOutcome, prune_with_recipe,
};
use prunus_tool::prune::onnx_graph::OnnxGraph;
use prunus_tool::prune::plot::sensitivity_svg;
use prunus_tool::prune::recipe::{
    MacTarget, Recipe, RecipeFile, SweepSpec, criterion_name, granularity_name,
};
use prunus_tool::prune::report::{PruneReport, agreement, model_stats, weight_ratios};
use prunus_tool::prune::{Criterion, Granularity, Layers};

/// Non-uniform pruning, sensitivity analysis and the report.
#[derive(Args, Clone, Debug, Default)]
pub struct AnalysisArgs {
    /// Pruning recipe (JSON: defaults plus per-layer glob/regex rules; see
    /// sdk/tool/recipes/README.md). Replaces --sparsity, --granularity, --criterion,
    /// --layers and --round.
    #[arg(long, conflicts_with_all = ["sparsity", "channels", "granularity", "criterion", "layers", "round", "global"])]
    pub recipe: Option<PathBuf>,
    /// Unstructured: remove this fraction of all prunable weights, with per-layer ratios
    /// allocated from a sensitivity analysis on --calib.
    #[arg(long, conflicts_with_all = ["sparsity", "channels", "global", "target_macs"])]
    pub target_sparsity: Option<f64>,
    /// Channel: keep this fraction of the dense MACs (0.66) or cut them by a factor (1.5x),
    /// per-group ratios allocated from a sensitivity analysis on --calib.
    #[arg(long, conflicts_with_all = ["sparsity", "channels", "global"])]
    pub target_macs: Option<String>,
    /// Run the sensitivity analysis (on --calib) and write sensitivity.{md,json,svg} here.
    #[arg(long, value_name = "OUT_DIR", conflicts_with = "global")]
    pub sensitivity: Option<PathBuf>,
    /// Allocate from a sensitivity.json written before by --sensitivity for this model
    /// and mode (no sweep, no --calib needed).
    #[arg(long, value_name = "PATH.json", conflicts_with = "sensitivity")]
    pub sensitivity_from: Option<PathBuf>,
    /// Sensitivity sweep ratios, comma separated (default 0.1,0.2,...,0.9).
    #[arg(long, value_delimiter = ',')]
    pub sensitivity_ratios: Option<Vec<f64>>,
    /// Calibration samples per sensitivity trial (default 8; 0 = all).
    #[arg(long)]
    pub sensitivity_samples: Option<usize>,
    /// Write a report (params, MACs, size, latency dense vs pruned, agreement, per-layer
    /// ratios) to PATH.md and PATH.json.
    #[arg(long, value_name = "PATH.md")]
    pub report: Option<PathBuf>,
    /// Evaluation batch (.npy, N x C x H x W float32) for the report's agreement numbers.
    #[arg(long, requires = "report")]
    pub eval: Option<PathBuf>,
    /// Timed runs per model for the report's latency (median; after one warm-up).
    #[arg(long, default_value_t = 5, requires = "report")]
    pub latency_runs: usize,
}

/// The simple-case flags of `prunus prune`, for a recipe built from them.
pub struct Flags {
    /// Granularity.
    pub granularity: Granularity,
    /// Channel criterion.
    pub criterion: Criterion,
    /// Unstructured layer set.
    pub layers: Layers,
    /// Channel rounding.
    pub round: usize,
    /// Uniform ratio, if given.
    pub sparsity: Option<f64>,
    /// The pruned model will be recovered by least squares: so are the sweep's trials.
    pub recovered: bool,
}

impl AnalysisArgs {
    /// Pruning goes through a recipe (a file, a target or a sensitivity analysis).
    pub fn drives_pruning(&self) -> bool {
        self.recipe.is_some()
            || self.target_sparsity.is_some()
            || self.target_macs.is_some()
            || self.sensitivity.is_some()
            || self.sensitivity_from.is_some()
    }

    /// Output paths this module writes (checked against the input before any work).
    pub fn outputs(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(r) = &self.report {
            v.push(r.clone());
            v.push(r.with_extension("json"));
        }
        v
    }

    fn recipe(&self, flags: &Flags) -> Result<Recipe> {
        let mut file = match &self.recipe {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str::<RecipeFile>(&text)
                    .map_err(prunus_tool::prune::recipe::RecipeError::from)
                    .with_context(|| format!("in {}", path.display()))?
            }
            None => RecipeFile {
                granularity: Some(granularity_name(flags.granularity)),
                sparsity: flags.sparsity,
                criterion: Some(criterion_name(flags.criterion).into()),
                layers: Some(
                    match flags.layers {
                        Layers::Pointwise => "1x1",
                        Layers::All => "all",
                    }
                    .into(),
                ),
                round: Some(flags.round),
                ..Default::default()
            },
        };
        if let Some(s) = self.target_sparsity {
            file.target_sparsity = Some(s);
            file.sparsity = None;
        }
        if let Some(m) = &self.target_macs {
            file.target_macs = Some(MacTarget::Text(m.clone()));
            file.sparsity = None;
        }
        if self.sensitivity_ratios.is_some() || self.sensitivity_samples.is_some() {
            let spec = file.sensitivity.get_or_insert_with(SweepSpec::default);
            spec.ratios = self.sensitivity_ratios.clone().or(spec.ratios.take());
            spec.samples = self.sensitivity_samples.or(spec.samples);
        }
        let what = match &self.recipe {
            Some(p) => format!("in {}", p.display()),
            None => "in the flags".into(),
        };
        let mut recipe = Recipe::from_file(&file).with_context(|| what)?;
        recipe.recovered_sweep = flags.recovered;
        Ok(recipe)
    }

    /// Prunes `dense` by the recipe, target or analysis (calibration data read with
    /// `preprocess`, see [`calib_data::read`]); writes the sensitivity files.
    pub fn prune(
        &self,
        dense: &OnnxGraph,
        flags: &Flags,
        calib: Option<&Path>,
        preprocess: Option<&Preprocess>,
        inputs: &[&Path],
    ) -> Result<RecipeOutcome> {
        let recipe = self.recipe(flags)?;
        if recipe.target.is_none()
            && recipe.sparsity == 0.0
            && self.sensitivity.is_none()
            && !matches!(recipe.granularity, Granularity::NM(..))
            && recipe.rules.iter().all(|r| r.ratio.is_none())
        {
            bail!("nothing to prune: give a sparsity, a target or rules with ratios");
        }
        let analysis = match (&self.sensitivity, &self.sensitivity_from) {
            (Some(_), _) => Analysis::Always,
            (None, Some(path)) => {
                if recipe.target.is_none() {
                    bail!("--sensitivity-from needs a target (--target-sparsity or --target-macs)");
                }
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Analysis::Given(
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a sensitivity.json", path.display()))?,
                )
            }
            (None, None) => Analysis::IfNeeded,
        };
        let calib = calib.map(|p| calib_data::read(p, preprocess)).transpose()?;
        let spinner = ProgressBar::new_spinner();
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let bar = ProgressBar::hidden();
        let trial = |done: u64, total: u64| {
            if bar.is_hidden() {
                spinner.finish_and_clear();
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "sensitivity {bar:30} {pos}/{len} trials {elapsed} (eta {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_length(total);
            }
            bar.set_position(done);
        };
        let step = |msg: &str| {
            if bar.is_hidden() {
                spinner.set_message(msg.to_string());
            } else {
                bar.set_message(msg.to_string());
            }
        };
        let outcome = prune_with_recipe(
            dense,
            &recipe,
            calib.as_ref(),
            &analysis,
            &Progress {
                step: &step,
                trial: &trial,
            },
        );
        spinner.finish_and_clear();
        bar.finish_and_clear();
        let outcome = outcome?;
        if let (Some(dir), Some(sens)) = (&self.sensitivity, &outcome.sensitivity) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in [
                ("sensitivity.md", sens.markdown()),
                ("sensitivity.json", sens.json()),
                ("sensitivity.svg", sensitivity_svg(sens)),
            ] {
                let path = dir.join(name);
                write_atomic(&path, text.as_bytes(), inputs)?;
                println!("wrote:  {}", path.display());
            }
        }
        let count = |source: &str| outcome.layers.iter().filter(|l| l.source == source).count();
        println!(
            "layers: {} ({} uniform, {} by rule, {} allocated, {} skipped)",
            outcome.layers.len(),
            count("uniform"),
            count("rule"),
            count("allocated"),
            count("skipped")
        );
        Ok(outcome)
    }

    /// Writes the report if `--report` was given. `input` is the model file read (ONNX or
    /// `.prunus`), `packed` the pruned `.prunus` written to `output`.
    pub fn write_report(
        &self,
        input: &Path,
        input_bytes: &[u8],
        output: &Path,
        packed: &[u8],
        masks: &serde_json::Value,
        layers: &[LayerChoice],
    ) -> Result<()> {
        let Some(path) = &self.report else {
            return Ok(());
        };
        let bar = ProgressBar::new_spinner().with_message("measuring the report");
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let dense_packed = if input_bytes.starts_with(&prunus_format::MAGIC) {
            input_bytes.to_vec()
        } else {
            pack(input_bytes)?.as_bytes().to_vec()
        };
        let dense = model_stats(&dense_packed, self.latency_runs)?;
        let pruned = model_stats(packed, self.latency_runs)?;
        let agreement = match &self.eval {
            Some(p) => {
                let data = Calibration::read_npy(p)?;
                Some(agreement(&dense_packed, packed, &data.samples)?)
            }
            None => None,
        };
        bar.finish_and_clear();
        let report = PruneReport {
            input: input.display().to_string(),
            output: output.display().to_string(),
            granularity: masks["granularity"].as_str().unwrap_or("").to_string(),
            dense,
            pruned,
            agreement,
            weights: weight_ratios(masks),
            layers: layers.to_vec(),
        };
        write_atomic(path, report.markdown().as_bytes(), &[input])?;
        let json_path = path.with_extension("json");
        write_atomic(&json_path, report.json().as_bytes(), &[input])?;
        println!("wrote:  {} and {}", path.display(), json_path.display());
        if let Some(a) = &report.agreement {
            println!(
                "agreement: top-1 {}/{}, cosine {:.6}, KL {:.6}",
                a.top1_agree, a.samples, a.cosine, a.kl
            );
        }
        println!(
            "latency: {:.3} ms -> {:.3} ms (1 thread, median of {})",
            report.dense.latency_ms, report.pruned.latency_ms, self.latency_runs
        );
        Ok(())
    }
}
