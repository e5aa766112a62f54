//! Pruning recipes: JSON files (read with `serde_json`; unknown keys are errors) that give
//! defaults and per-layer rules matched on node or weight names. Documented with examples
//! in `sdk/tool/recipes/README.md`.
//!
//! ```json
//! {
//!   "granularity": "channel",
//!   "criterion": "l2",
//!   "round": 8,
//!   "target_macs": "1.5x",
//!   "rules": [
//!     { "glob": "*classifier*", "skip": true },
//!     { "regex": "^features\\.1[0-9]\\.", "ratio": 0.2 }
//!   ]
//! }
//! ```
//!
//! A *layer* is one prunable weight (unstructured family) or one coupled channel group
//! (`channel`), named by its producing nodes and their weights; a rule applies to a layer
//! when its pattern matches any of those names. Rules apply in file order and a later
//! rule overrides the fields an earlier one set. A rule that matches no layer is an error
//! (it is almost always a typo).

use serde::Deserialize;

use super::sensitivity::SweepOptions;
use super::units::Layer;
use super::{Criterion, Granularity, Layers, allocate};

/// Why a recipe was rejected. Messages name the field or rule.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// Not JSON, an unknown key, or a value of the wrong type.
    #[error("recipe: {0}")]
    Json(#[from] serde_json::Error),
    /// A top-level field with a bad value.
    #[error("recipe field '{field}': {reason}")]
    Field {
        /// The key.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A rule with a bad pattern or value, or one that matches no layer.
    #[error("recipe rule {index} ({pattern}): {reason}")]
    Rule {
        /// Position in `rules`, from 0.
        index: usize,
        /// The rule's pattern as written (`glob '…'` or `regex '…'`).
        pattern: String,
        /// What is wrong.
        reason: String,
    },
}

/// A MAC target as written: a kept fraction (`0.66`) or a reduction (`"1.5x"`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MacTarget {
    /// Fraction of the dense MACs kept.
    Fraction(f64),
    /// `"0.66"` or `"1.5x"`.
    Text(String),
}

/// The sensitivity sweep used when a target is set.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Ratios tried on every layer, ascending, in `[0, 1)` (default 0.1, 0.2, …, 0.9).
    pub ratios: Option<Vec<f64>>,
    /// Calibration samples per trial (default 8; 0 = all).
    pub samples: Option<usize>,
}

/// One rule. Exactly one of `glob` / `regex`; any of the other fields.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Shell-style pattern over the whole name: `*` any run of characters, `?` one.
    pub glob: Option<String>,
    /// Regular expression (Rust `regex` syntax) found anywhere in the name; anchor with
    /// `^…$` for a whole-name match.
    pub regex: Option<String>,
    /// Fixed ratio for the matched layers (kept as is by target allocation).
    pub ratio: Option<f64>,
    /// `true`: the matched layers are not pruned.
    pub skip: Option<bool>,
    /// Channel importance for matched groups: `l1`, `l2`, `bn`, `fpgm`, `activation`,
    /// `reconstruction` (channel recipes only).
    pub criterion: Option<String>,
    /// Granularity of matched weights: `unstructured`, `block2`, `block4`, `N:M`
    /// (unstructured-family recipes only).
    pub granularity: Option<String>,
}

/// A recipe file as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecipeFile {
    /// `unstructured` (default), `block2`, `block4`, `N:M` (e.g. `2:4`) or `channel`.
    pub granularity: Option<String>,
    /// Uniform ratio of every layer no rule pins.
    pub sparsity: Option<f64>,
    /// Unstructured: global fraction of the prunable weights removed, split over layers
    /// from the sensitivity analysis.
    pub target_sparsity: Option<f64>,
    /// Channel: MACs kept (`0.66`) or the reduction (`"1.5x"`), split over groups from the
    /// sensitivity analysis.
    pub target_macs: Option<MacTarget>,
    /// Channel importance (default `l1`); unstructured pruning is by magnitude.
    pub criterion: Option<String>,
    /// Unstructured: `all` (default: convolutions and Gemm) or `1x1` (pointwise convs).
    pub layers: Option<String>,
    /// Channel: kept channels per group rounded to a multiple of this (default 1).
    pub round: Option<usize>,
    /// Sensitivity sweep settings.
    pub sensitivity: Option<SweepSpec>,
    /// Per-layer rules, applied in order.
    #[serde(default)]
    pub rules: Vec<RuleFile>,
}

/// What the allocation aims at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Fraction of all prunable weights removed.
    Sparsity(f64),
    /// Fraction of the dense MACs kept.
    MacsKept(f64),
}

/// A validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// `glob '…'` or `regex '…'`, for messages.
    pub pattern: String,
    matcher: regex::Regex,
    /// Fixed ratio.
    pub ratio: Option<f64>,
    /// Skip the layer.
    pub skip: Option<bool>,
    /// Criterion override.
    pub criterion: Option<Criterion>,
    /// Granularity override.
    pub granularity: Option<Granularity>,
}

impl Rule {
    /// Whether the rule applies to `layer`.
    pub fn matches(&self, layer: &Layer) -> bool {
        layer.names.iter().any(|n| self.matcher.is_match(n))
    }
}

/// A validated recipe (from a file or from the command-line flags).
#[derive(Clone, Debug)]
pub struct Recipe {
    /// Default granularity.
    pub granularity: Granularity,
    /// Default channel criterion.
    pub criterion: Criterion,
    /// Weights unstructured pruning touches.
    pub layers: Layers,
    /// Channel rounding multiple.
    pub round: usize,
    /// Uniform ratio of layers without a fixed one (0 when a target allocates them).
    pub sparsity: f64,
    /// Allocation target, if any.
    pub target: Option<Target>,
    /// Sensitivity sweep.
    pub sweep: SweepOptions,
    /// Unstructured sweep trials are recovered as `--recover lstsq` recovers the pruned
    /// model (the CLI sets it from `--recover`), so the allocation fits the recovered
    /// network.
    pub recovered_sweep: bool,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// What a recipe decides for one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerSetting {
    /// Fixed ratio (`None`: the uniform ratio, or allocated from the target).
    pub ratio: Option<f64>,
    /// Not pruned.
    pub skip: bool,
    /// Channel criterion.
    pub criterion: Criterion,
    /// Granularity.
    pub granularity: Granularity,
}

/// Parses `unstructured`, `block2`, `block4`, `N:M`, `channel`.
pub fn parse_granularity(s: &str) -> Result<Granularity, String> {
    match s {
        "unstructured" => Ok(Granularity::Unstructured),
        "block2" => Ok(Granularity::Block(2)),
        "block4" => Ok(Granularity::Block(4)),
        "channel" => Ok(Granularity::Channel),
        _ => match s.split_once(':') {
            Some((n, m)) => match (n.parse::<usize>(), m.parse::<usize>()) {
                (Ok(n), Ok(m)) if n >= 1 && n <= m => Ok(Granularity::NM(n, m)),
                _ => Err(format!("bad N:M pattern '{s}' (e.g. 2:4)")),
            },
            None => Err(format!(
                "unknown granularity '{s}' (unstructured, block2, block4, N:M, channel)"
            )),
        },
    }
}

/// Parses `l1`, `l2`, `bn`, `fpgm`, `activation`, `reconstruction`.
pub fn parse_criterion(s: &str) -> Result<Criterion, String> {
    match s {
        "l1" => Ok(Criterion::L1),
        "l2" => Ok(Criterion::L2),
        "bn" => Ok(Criterion::Bn),
        "fpgm" => Ok(Criterion::Fpgm),
        "activation" => Ok(Criterion::Activation),
        "reconstruction" => Ok(Criterion::Reconstruction),
        _ => Err(format!(
            "unknown criterion '{s}' (l1, l2, bn, fpgm, activation, reconstruction)"
        )),
    }
}

/// The name [`parse_granularity`] accepts for `g`.
pub fn granularity_name(g: Granularity) -> String {
    match g {
        Granularity::Unstructured => "unstructured".into(),
        Granularity::Block(b) => format!("block{b}"),
        Granularity::NM(n, m) => format!("{n}:{m}"),
        Granularity::Channel => "channel".into(),
    }
}

/// The name [`parse_criterion`] accepts for `c`.
pub fn criterion_name(c: Criterion) -> &'static str {
    match c {
        Criterion::L1 => "l1",
        Criterion::L2 => "l2",
        Criterion::Bn => "bn",
        Criterion::Fpgm => "fpgm",
        Criterion::Activation => "activation",
        Criterion::Reconstruction => "reconstruction",
    }
}

fn glob_regex(glob: &str) -> String {
    let mut re = String::from("^");
    for ch in glob.chars() {
        match ch {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    re
}

fn field(field: &'static str, reason: impl Into<String>) -> RecipeError {
    RecipeError::Field {
        field,
        reason: reason.into(),
    }
}

impl Recipe {
    /// Parses and validates recipe JSON.
    pub fn from_json(text: &str) -> Result<Self, RecipeError> {
        let file: RecipeFile = serde_json::from_str(text)?;
        Self::from_file(&file)
    }

    /// Validates a parsed recipe file.
    pub fn from_file(file: &RecipeFile) -> Result<Self, RecipeError> {
        let granularity = match &file.granularity {
            Some(s) => parse_granularity(s).map_err(|e| field("granularity", e))?,
            None => Granularity::Unstructured,
        };
        let channel = granularity == Granularity::Channel;
        let criterion = match &file.criterion {
            Some(s) => parse_criterion(s).map_err(|e| field("criterion", e))?,
            None => Criterion::L1,
        };
        if !channel && !matches!(criterion, Criterion::L1 | Criterion::L2) {
            return Err(field(
                "criterion",
                "unstructured, block and N:M pruning use weight magnitude (l1 or l2)",
            ));
        }
        let layers = match file.layers.as_deref() {
            None | Some("all") => Layers::All,
            Some("1x1") => Layers::Pointwise,
            Some(other) => return Err(field("layers", format!("'{other}' is not 1x1 or all"))),
        };
        let target = match (file.target_sparsity, &file.target_macs) {
            (Some(_), Some(_)) => {
                return Err(field("target_macs", "give target_sparsity or target_macs"));
            }
            (Some(_), None) if channel => {
                return Err(field("target_sparsity", "channel recipes take target_macs"));
            }
            (None, Some(_)) if !channel => {
                return Err(field(
                    "target_macs",
                    "target_macs needs granularity 'channel'",
                ));
            }
            (Some(s), None) if (0.0..1.0).contains(&s) => Some(Target::Sparsity(s)),
            (Some(s), None) => {
                return Err(field("target_sparsity", format!("{s} is not in [0, 1)")));
            }
            (None, Some(m)) => {
                let text = match m {
                    MacTarget::Fraction(f) => f.to_string(),
                    MacTarget::Text(t) => t.clone(),
                };
                let kept = allocate::parse_macs_target(&text)
                    .map_err(|e| field("target_macs", e.to_string()))?;
                Some(Target::MacsKept(kept))
            }
            (None, None) => None,
        };
        let sparsity = match (file.sparsity, target) {
            (Some(_), Some(_)) => {
                return Err(field("sparsity", "give sparsity or a target, not both"));
            }
            (Some(s), None) if (0.0..1.0).contains(&s) => s,
            (Some(s), None) => return Err(field("sparsity", format!("{s} is not in [0, 1)"))),
            (None, _) => 0.0,
        };
        let mut sweep = SweepOptions::default();
        if let Some(spec) = &file.sensitivity {
            if let Some(r) = &spec.ratios {
                sweep.ratios = r.clone();
            }
            if let Some(n) = spec.samples {
                sweep.samples = n;
            }
            sweep
                .validate()
                .map_err(|e| field("sensitivity", e.to_string()))?;
        }
        let rules = file
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| Self::rule(i, r, channel))
            .collect::<Result<_, _>>()?;
        Ok(Recipe {
            granularity,
            criterion,
            layers,
            round: file.round.unwrap_or(1).max(1),
            sparsity,
            target,
            sweep,
            recovered_sweep: false,
            rules,
        })
    }

    fn rule(index: usize, r: &RuleFile, channel: bool) -> Result<Rule, RecipeError> {
        let (pattern, source) = match (&r.glob, &r.regex) {
            (Some(g), None) => (format!("glob '{g}'"), glob_regex(g)),
            (None, Some(x)) => (format!("regex '{x}'"), x.clone()),
            _ => {
                return Err(RecipeError::Rule {
                    index,
                    pattern: "no pattern".into(),
                    reason: "give exactly one of 'glob' or 'regex'".into(),
                });
            }
        };
        let bad = |reason: String| RecipeError::Rule {
            index,
            pattern: pattern.clone(),
            reason,
        };
        let matcher = regex::Regex::new(&source).map_err(|e| bad(format!("bad pattern: {e}")))?;
        if let Some(x) = r.ratio.filter(|x| !(0.0..1.0).contains(x)) {
            return Err(bad(format!("ratio {x} is not in [0, 1)")));
        }
        let criterion = r
            .criterion
            .as_deref()
            .map(parse_criterion)
            .transpose()
            .map_err(bad)?;
        if criterion.is_some() && !channel {
            return Err(bad("'criterion' applies to channel recipes only".into()));
        }
        let granularity = r
            .granularity
            .as_deref()
            .map(parse_granularity)
            .transpose()
            .map_err(bad)?;
        if let Some(gr) = granularity
            && (gr == Granularity::Channel || channel)
        {
            return Err(bad(
                "per-rule granularity chooses among unstructured, block2, block4 and N:M \
                 in an unstructured-family recipe"
                    .into(),
            ));
        }
        Ok(Rule {
            pattern: pattern.clone(),
            matcher,
            ratio: r.ratio,
            skip: r.skip,
            criterion,
            granularity,
        })
    }

    /// Settings of every layer; fails if a rule matches none of them.
    pub fn settings(&self, layers: &[Layer]) -> Result<Vec<LayerSetting>, RecipeError> {
        let mut out: Vec<LayerSetting> = layers
            .iter()
            .map(|_| LayerSetting {
                ratio: None,
                skip: false,
                criterion: self.criterion,
                granularity: self.granularity,
            })
            .collect();
        for (index, rule) in self.rules.iter().enumerate() {
            let mut hit = false;
            for (layer, s) in layers.iter().zip(&mut out) {
                if !rule.matches(layer) {
                    continue;
                }
                hit = true;
                s.ratio = rule.ratio.or(s.ratio);
                s.skip = rule.skip.unwrap_or(s.skip);
                s.criterion = rule.criterion.unwrap_or(s.criterion);
                s.granularity = rule.granularity.unwrap_or(s.granularity);
            }
            if !hit {
                return Err(RecipeError::Rule {
                    index,
                    pattern: rule.pattern.clone(),
                    reason: "matches no prunable layer".into(),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_errors_name_the_problem() {
        let err = |json: &str| Recipe::from_json(json).unwrap_err().to_string();
        let e = err(r#"{ "sparsity": 0.5, "ratio_of_layers": 2 }"#);
        assert!(e.contains("ratio_of_layers"), "{e}");
        let e = err(r#"{ "sparsity": 0.5, "rules": [ { "glob": "a*", "skipp": true } ] }"#);
        assert!(e.contains("skipp"), "{e}");
        let e = err(r#"{ "sparsity": 0.5, "rules": [ { "regex": "block(1", "ratio": 0.2 } ] }"#);
        assert!(
            e.contains("rule 0") && e.contains("block(1") && e.contains("bad pattern"),
            "{e}"
        );
        let e = err(r#"{ "sparsity": 0.5, "rules": [ { "glob": "x", "regex": "y" } ] }"#);
        assert!(e.contains("rule 0") && e.contains("exactly one"), "{e}");
        let e = err(r#"{ "granularity": "blocky", "sparsity": 0.5 }"#);
        assert!(e.contains("granularity") && e.contains("blocky"), "{e}");
        let e = err(r#"{ "target_macs": "1.5x" }"#);
        assert!(e.contains("target_macs") && e.contains("channel"), "{e}");
        let e = err(r#"{ "granularity": "channel", "target_macs": "0.5y" }"#);
        assert!(e.contains("target_macs") && e.contains("0.5y"), "{e}");
        let e = err(r#"{ "sparsity": 1.5 }"#);
        assert!(e.contains("sparsity") && e.contains("1.5"), "{e}");
        let e = err(r#"{ "sparsity": 0.5, "rules": [ { "glob": "a", "ratio": -0.1 } ] }"#);
        assert!(e.contains("rule 0") && e.contains("-0.1"), "{e}");
        let e = err(r#"{ "sparsity": 0.5, "rules": [ { "glob": "a", "criterion": "bn" } ] }"#);
        assert!(e.contains("criterion") && e.contains("channel"), "{e}");
        let e = err(r#"{ "sparsity": 0.5 "#);
        assert!(e.contains("recipe"), "{e}");

        let recipe = Recipe::from_json(
            r#"{ "sparsity": 0.5, "rules": [ { "glob": "conv*" }, { "glob": "nothing*", "skip": true } ] }"#,
        )
        .unwrap();
        let layers = [Layer {
            name: "conv1".into(),
            names: vec!["conv1".into(), "conv1.weight".into()],
            size: 10,
        }];
        match recipe.settings(&layers) {
            Err(RecipeError::Rule { index, pattern, .. }) => {
                assert_eq!(index, 1);
                assert!(pattern.contains("nothing*"), "{pattern}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rules_apply_in_order_with_later_fields_winning() {
        let recipe = Recipe::from_json(
            r#"{ "sparsity": 0.5, "rules": [
                { "glob": "block*", "ratio": 0.7, "granularity": "block4" },
                { "regex": "^block2/", "skip": true },
                { "glob": "block2/b", "skip": false }
            ] }"#,
        )
        .unwrap();
        let layer = |n: &str| Layer {
            name: n.into(),
            names: vec![n.into(), format!("{n}.weight")],
            size: 4,
        };
        let s = recipe
            .settings(&[
                layer("block1/a"),
                layer("block2/a"),
                layer("block2/b"),
                layer("head"),
            ])
            .unwrap();
        assert_eq!(
            (s[0].ratio, s[0].skip, s[0].granularity),
            (Some(0.7), false, Granularity::Block(4))
        );
        assert!(s[1].skip);
        assert_eq!((s[2].ratio, s[2].skip), (Some(0.7), false));
        assert_eq!(
            (s[3].ratio, s[3].skip, s[3].granularity),
            (None, false, Granularity::Unstructured)
        );
    }
}
