//! The experiment config (`data-schema/experiment-config.schema.json`): how the source model is
//! trained, how each target is queried and adapted. Every field has a default (METHOD.md);
//! a file may give any subset, and command-line flags override it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;
use crate::infer::DescriptorConfig;
use crate::strategy::adapt::{Schedule, SelectCheckpoint};
use crate::strategy::query::{self, Aggregate, Budget, Unit};
use crate::train::{OptimizerKind, TrainConfig};

/// Everything an experiment needs besides its data and its list of target domains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Training of the source model (METHOD.md step 3; schema `train-config`).
    pub source: TrainConfig,
    /// Adaptation of the source model to each target (METHOD.md step 7).
    pub adaptation: AdaptationConfig,
    /// Query strategies, each crossed with every adaptation. `["random", "entropy", "stdr"]`.
    pub queries: Vec<String>,
    /// Adaptation strategies: those that learn from labels are crossed with every query; the
    /// label-free ones (`tent`, `adabn`) run once per domain (`none` and `supervised` always run
    /// on their own and are not listed here). `["finetune+pseudo"]`.
    pub adapts: Vec<String>,
    /// Labelling budget: a count (`"12"`), a fraction (`"0.2"`) or a percentage. `"20%"`.
    pub budget: String,
    /// What the budget counts: `slice` (the reference) or `volume`. `slice`.
    pub unit: Unit,
    /// How a volume's score comes from its slices (volume unit only). `mean`.
    pub aggregate: Aggregate,
    /// MC-dropout samples for the uncertainty strategies (entropy, BALD, margin, UGTST). 8.
    pub mc_samples: usize,
    /// Source reference points (METHOD.md step 5).
    pub references: ReferenceConfig,
    /// Seed of the queries, MC dropout, k-means and adaptation (the source model has its own,
    /// `source.seed`). 0.
    pub seed: u64,
    /// An existing source model folder (`delinea train`'s, or one `delinea model import` made
    /// from PyTorch): the protocol adapts it instead of training one, and `source` then only
    /// gives the adaptation its augmentation, momentum and weight decay. Relative paths are
    /// taken from the current folder. None: train the source model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_model: Option<PathBuf>,
    /// Existing source reference points (`delinea reference`, or `delinea reference import` of
    /// the source side's centroids) for STDR; None: computed from the source centre's training
    /// cases with the source model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_references: Option<PathBuf>,
    /// How many times the whole protocol runs, each replicate with its own seeds
    /// ([`replicate_seed`]): source model, reference points, every query and adaptation.
    /// Replicate 0 is the run with the config's seeds; the tables give every replicate's
    /// medians and their spread. 1.
    #[serde(skip_serializing_if = "is_one")]
    pub replicates: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// The most replicates an experiment may ask for.
pub const MAX_REPLICATES: usize = 100;

/// The seed replicate `r` uses where the config says `seed`: `seed` itself for replicate 0,
/// then `seed + r · 0x9E3779B97F4A7C15` (the golden-ratio increment, wrapping), so that
/// replicates of neighbouring seeds do not share seeds.
pub fn replicate_seed(seed: u64, r: usize) -> u64 {
    seed.wrapping_add((r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// How the source model is adapted to a target: its own length, sampling, optimiser and
/// checkpoint selection, defaulting to the paper's code (`train_single_center_finetune.py`);
/// momentum, weight decay, poly power and augmentation are the source config's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptationConfig {
    /// Gradient steps. 16000 (the paper's; scale down on a CPU).
    pub iterations: usize,
    /// Slices per batch. 32.
    pub batch: usize,
    /// Optimiser. `sgd` (the reference code's; it mentions Adam at lr 1e-4 as the alternative).
    pub optimizer: OptimizerKind,
    /// Base learning rate (poly decay). 0.03.
    pub lr: f64,
    /// Fraction of each batch drawn from slices whose labels (true or pseudo) hold tumour, the
    /// rest uniformly. 0: uniform, as the reference code (the source's setting is not copied).
    pub tumour_fraction: f64,
    /// Which weights each label-using adaptation keeps: `best_target_val` (the paper's protocol:
    /// the best median DSC on the domain's validation split, whose labels the hospital must
    /// draw too) or `last` (only the selection's labels are used). Label-free adaptations
    /// (Tent, AdaBN) always keep the last. `best_target_val`.
    pub select: SelectCheckpoint,
    /// Steps between validations when selecting on the target's validation split. 100 (the
    /// reference's).
    pub validate_every: usize,
}

impl AdaptationConfig {
    /// `base` (the source's training config) with this adaptation's iterations, batch,
    /// optimiser, learning rate, sampling and validation interval, and `seed`.
    pub fn training(&self, base: &TrainConfig, seed: u64) -> TrainConfig {
        TrainConfig {
            iterations: self.iterations,
            batch: self.batch,
            optimizer: self.optimizer,
            lr: self.lr,
            tumour_fraction: self.tumour_fraction,
            validate_every: self.validate_every,
            seed,
            ..base.clone()
        }
    }
}

impl Default for AdaptationConfig {
    fn default() -> Self {
        AdaptationConfig {
            iterations: 16_000,
            batch: 32,
            optimizer: OptimizerKind::Sgd,
            lr: 0.03,
            tumour_fraction: 0.0,
            select: SelectCheckpoint::BestTargetVal,
            validate_every: 100,
        }
    }
}

/// K-means of the source training slices' descriptors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceConfig {
    /// Reference points K (METHOD.md: 30-40). 40.
    pub k: usize,
    /// Lloyd iterations. 20.
    pub iterations: usize,
    /// How the STDR descriptors are computed, at the source and the targets alike (METHOD.md
    /// step 4: softmax channel 0, the background, as the paper's code; a 16 × 16 grid).
    pub descriptor: DescriptorConfig,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            k: 40,
            iterations: 20,
            descriptor: DescriptorConfig::default(),
        }
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            source: TrainConfig::default(),
            adaptation: AdaptationConfig::default(),
            queries: ["random", "entropy", "stdr"].map(String::from).to_vec(),
            adapts: vec!["finetune+pseudo".into()],
            budget: "20%".into(),
            unit: Unit::Slice,
            aggregate: Aggregate::Mean,
            mc_samples: 8,
            references: ReferenceConfig::default(),
            seed: 0,
            source_model: None,
            source_references: None,
            replicates: 1,
        }
    }
}

impl ExperimentConfig {
    /// Reads a JSON config (missing fields take their defaults; unknown fields are errors).
    pub fn load(path: &Path) -> Result<ExperimentConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| Error::ConfigFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The source model's slice size and classes: its card's (`source_model`), or the source
    /// training config's; and which of the two they came from.
    fn source_shape(&self) -> Result<(usize, usize, &'static str), Error> {
        match &self.source_model {
            Some(dir) => {
                let card = crate::model::checkpoint::load_card(dir).map_err(|e| Error::Config {
                    field: "source_model",
                    reason: e.to_string(),
                })?;
                Ok((card.slice_size, card.architecture.classes, "the source_model's"))
            }
            None => Ok((
                self.source.preprocessing.slice_size,
                self.source.model.classes,
                "source.preprocessing's",
            )),
        }
    }

    /// Replicate `r`'s config: one replicate, its seeds ([`replicate_seed`]) in place of
    /// `seed` and `source.seed`. Replicate 0's is this config with `replicates` 1.
    pub fn replicate(&self, r: usize) -> ExperimentConfig {
        let mut c = self.clone();
        c.replicates = 1;
        c.seed = replicate_seed(self.seed, r);
        c.source.seed = replicate_seed(self.source.seed, r);
        c
    }

    /// The parsed budget.
    pub fn budget(&self) -> Result<Budget, Error> {
        Ok(Budget::parse(&self.budget)?)
    }

    /// Checks every field's range, the source training config, and the budget.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        self.source.validate().map_err(Error::SourceConfig)?;
        self.budget()?;
        let a = &self.adaptation;
        if !(1..=MAX_REPLICATES).contains(&self.replicates) {
            return bad(
                "replicates",
                format!("must be from 1 to {MAX_REPLICATES}, found {}", self.replicates),
            );
        }
        if a.iterations == 0 {
            return bad("adaptation.iterations", "must be at least 1".into());
        }
        if a.batch == 0 {
            return bad("adaptation.batch", "must be at least 1".into());
        }
        if !(a.lr.is_finite() && a.lr > 0.0) {
            return bad("adaptation.lr", format!("must be > 0, found {}", a.lr));
        }
        if !(0.0..=1.0).contains(&a.tumour_fraction) {
            return bad(
                "adaptation.tumour_fraction",
                format!("must be in [0, 1], found {}", a.tumour_fraction),
            );
        }
        if a.validate_every == 0 {
            return bad("adaptation.validate_every", "must be at least 1".into());
        }
        let (size, classes, from) = self.source_shape()?;
        if let Err(reason) = self.references.descriptor.kernel(size) {
            return bad(
                "references.descriptor",
                format!("at {from} slice size {size}: {reason}"),
            );
        }
        if self.references.k == 0 {
            return bad("references.k", "must be at least 1".into());
        }
        let channel = self.references.descriptor.channel;
        if channel >= classes {
            return bad(
                "references.descriptor.channel",
                format!("must name one of the model's {classes} classes (0..{classes}), found {channel}"),
            );
        }
        if self.queries.is_empty() && self.adapts.is_empty() {
            return Ok(()); // source-only and supervised only
        }
        if self.queries.is_empty() != self.adapts.is_empty() {
            return bad(
                "queries/adapts",
                "give both at least one query and one adaptation, or neither".into(),
            );
        }
        Ok(())
    }

    /// The training config of an adaptation: the source's, with the adaptation's iterations,
    /// batch, optimiser, learning rate, sampling and validation interval, and the experiment's
    /// seed.
    pub fn adaptation_training(&self) -> TrainConfig {
        self.adaptation.training(&self.source, self.seed)
    }

    /// The schedule adaptation plans start from ([`ExperimentConfig::adaptation_training`]'s,
    /// keeping the weights `adaptation.select` says).
    pub fn adaptation_schedule(&self) -> Schedule {
        self.adaptation_training().schedule(self.adaptation.select)
    }

    /// How to build a query pool that serves strategies needing `needs` (MC samples, batch
    /// and seed from this config).
    pub fn pool_options(&self, needs: query::Needs) -> query::PoolOptions {
        query::PoolOptions {
            needs,
            mc_samples: self.mc_samples,
            batch: self.source.inference_batch,
            seed: self.seed,
            descriptor: self.references.descriptor,
            augmentation: self.source.augmentation.clone(),
            ..query::PoolOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_partial_files_and_bad_values() {
        let c: ExperimentConfig =
            serde_json::from_str(r#"{"adaptation": {"iterations": 5}, "budget": "10%", "unit": "volume"}"#).unwrap();
        assert_eq!((c.adaptation.iterations, c.adaptation.batch), (5, 32));
        let s = c.adaptation_schedule();
        assert_eq!(
            (s.optimizer, s.lr, s.select, s.validate_every),
            (OptimizerKind::Sgd, 0.03, SelectCheckpoint::BestTargetVal, 100),
            "the reference code's: SGD 0.03, the best target-validation checkpoint every 100 steps"
        );
        assert_eq!((c.unit, c.references.k), (Unit::Volume, 40));
        c.validate().unwrap();
        assert_eq!(c.adaptation_training().iterations, 5);
        assert!(serde_json::from_str::<ExperimentConfig>(r#"{"budgets": "10%"}"#).is_err());
        let bad = ExperimentConfig {
            budget: "150%".into(),
            ..ExperimentConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("bad budget"));
        let no_adapt = ExperimentConfig {
            adapts: vec![],
            ..ExperimentConfig::default()
        };
        assert!(no_adapt.validate().unwrap_err().to_string().contains("queries/adapts"));
        let tumour: ExperimentConfig =
            serde_json::from_str(r#"{"references": {"descriptor": {"channel": 1}}}"#).unwrap();
        tumour.validate().unwrap();
        assert_eq!(tumour.pool_options(query::Needs::default()).descriptor.channel, 1);
        let mut coarse = tumour.clone();
        coarse.references.descriptor.grid = 12;
        let e = coarse.validate().unwrap_err().to_string();
        assert!(e.contains("references.descriptor") && e.contains("256 × 256"), "{e}");
        coarse.references.descriptor.grid = 8;
        coarse.validate().unwrap();
        let old: Result<ExperimentConfig, _> =
            serde_json::from_str(r#"{"references": {"descriptor": {"channel": 0, "pool": 16}}}"#);
        let e = old.unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("\"grid\": 16"), "what to write instead: {e}");
        let r = c.replicate(2);
        assert_eq!(
            (r.replicates, r.seed, r.source.seed),
            (1, replicate_seed(0, 2), replicate_seed(0, 2))
        );
        assert_eq!(
            c.replicate(0),
            ExperimentConfig {
                replicates: 1,
                ..c.clone()
            }
        );
        assert_ne!(replicate_seed(0, 1), replicate_seed(1, 0));
        let many = ExperimentConfig {
            replicates: 0,
            ..ExperimentConfig::default()
        };
        assert!(many
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`replicates` must be from 1 to 100, found 0"));
        let mut no_such = tumour;
        no_such.references.descriptor.channel = 2;
        let e = no_such.validate().unwrap_err().to_string();
        assert!(
            e.contains("references.descriptor.channel") && e.contains("found 2"),
            "{e}"
        );
    }
}
