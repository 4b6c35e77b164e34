//! Training parameters (METHOD.md step 3), read from a JSON file (schema
//! `data-schema/train-config.schema.json`) with command-line overrides on top.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Augmentation;
use crate::model::UNet2dConfig;
use crate::preprocess::Preprocessing;
use crate::strategy::adapt::{Schedule, SelectCheckpoint};

/// Which optimiser updates the weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum (PyTorch convention: dampening 0) and L2 weight decay (the paper's).
    #[default]
    Sgd,
    /// Adam (beta 0.9/0.999, epsilon 1e-5 as burn's default) with L2 weight decay.
    Adam,
}

/// The network's architecture as a config file spells it (defaults: METHOD.md step 2). Converts
/// to [`UNet2dConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Architecture {
    /// Input channels. 1.
    pub in_channels: usize,
    /// Output classes (background, tumour). 2.
    pub classes: usize,
    /// Feature channels per level, top to bottleneck. [16, 32, 64, 128, 256].
    pub features: Vec<usize>,
    /// Encoder dropout per level. [0.05, 0.1, 0.2, 0.3, 0.5].
    pub dropout: Vec<f64>,
    /// Decoder dropout. 0.
    pub decoder_dropout: f64,
    /// LeakyReLU negative slope. 0.01.
    pub negative_slope: f64,
    /// Batch-norm epsilon. 1e-5.
    pub bn_epsilon: f64,
    /// Batch-norm running-statistics momentum. 0.1.
    pub bn_momentum: f64,
}

impl Default for Architecture {
    fn default() -> Self {
        Architecture::from(&UNet2dConfig::new())
    }
}

impl From<&UNet2dConfig> for Architecture {
    fn from(c: &UNet2dConfig) -> Self {
        Architecture {
            in_channels: c.in_channels,
            classes: c.classes,
            features: c.features.clone(),
            dropout: c.dropout.clone(),
            decoder_dropout: c.decoder_dropout,
            negative_slope: c.negative_slope,
            bn_epsilon: c.bn_epsilon,
            bn_momentum: c.bn_momentum,
        }
    }
}

impl Architecture {
    /// The burn config that builds this network.
    pub fn to_config(&self) -> UNet2dConfig {
        UNet2dConfig {
            in_channels: self.in_channels,
            classes: self.classes,
            features: self.features.clone(),
            dropout: self.dropout.clone(),
            decoder_dropout: self.decoder_dropout,
            negative_slope: self.negative_slope,
            bn_epsilon: self.bn_epsilon,
            bn_momentum: self.bn_momentum,
        }
    }
}

/// Everything a training run needs besides its data. Every field has a default (METHOD.md
/// step 3, except where noted); a config file may give any subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimiser steps. 12000 (the paper's; scale down on a CPU).
    pub iterations: usize,
    /// Slices per batch. 32.
    pub batch: usize,
    /// Base learning rate. 0.03.
    pub lr: f64,
    /// SGD momentum. 0.9.
    pub momentum: f64,
    /// L2 weight decay. 1e-4.
    pub weight_decay: f64,
    /// Poly schedule exponent: `lr * (1 - it / iterations)^power`. 0.9.
    pub poly_power: f64,
    /// Optimiser. sgd.
    pub optimizer: OptimizerKind,
    /// Fraction of each batch drawn from slices that hold tumour (the rest uniformly from all
    /// slices). 0: uniform, as the reference code.
    pub tumour_fraction: f64,
    /// Augmentation (METHOD.md step 3).
    pub augmentation: Augmentation,
    /// Validate on whole validation volumes every this many iterations (and after the last).
    /// 200.
    pub validate_every: usize,
    /// Slices per forward pass at validation and inference. 16.
    pub inference_batch: usize,
    /// Seed of the weights, the sampler, augmentation and dropout. 0.
    pub seed: u64,
    /// Preprocessing (METHOD.md step 1); saved in the model card.
    pub preprocessing: Preprocessing,
    /// Network architecture (METHOD.md step 2).
    pub model: Architecture,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            iterations: 12_000,
            batch: 32,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 1e-4,
            poly_power: 0.9,
            optimizer: OptimizerKind::Sgd,
            tumour_fraction: 0.0,
            augmentation: Augmentation::default(),
            validate_every: 200,
            inference_batch: 16,
            seed: 0,
            preprocessing: Preprocessing::default(),
            model: Architecture::default(),
        }
    }
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read training config {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid config (unknown field, wrong type).
    #[error("invalid training config {path}: {source}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// A field has an unusable value.
    #[error("invalid training config: `{field}` {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong, with the value found.
        reason: String,
    },
    /// The architecture cannot be built or cannot take the slice size.
    #[error("invalid training config: {0}")]
    Model(#[from] crate::model::Error),
}

impl TrainConfig {
    /// Reads a JSON config file (missing fields take their defaults; unknown fields are
    /// errors) and validates it.
    pub fn load(path: &Path) -> Result<TrainConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: TrainConfig = serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(config)
    }

    /// Checks every field's range and that the network takes `preprocessing.slice_size`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| Err(ConfigError::Invalid { field, reason });
        if self.iterations == 0 {
            return bad("iterations", "must be at least 1".into());
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1".into());
        }
        if self.inference_batch == 0 {
            return bad("inference_batch", "must be at least 1".into());
        }
        if self.validate_every == 0 {
            return bad("validate_every", "must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("must be > 0, found {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", format!("must be in [0, 1), found {}", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", format!("must be >= 0, found {}", self.weight_decay));
        }
        if !(self.poly_power.is_finite() && self.poly_power >= 0.0) {
            return bad("poly_power", format!("must be >= 0, found {}", self.poly_power));
        }
        if !(0.0..=1.0).contains(&self.tumour_fraction) {
            return bad(
                "tumour_fraction",
                format!("must be in [0, 1], found {}", self.tumour_fraction),
            );
        }
        if !(self.preprocessing.clip_quantile > 0.0 && self.preprocessing.clip_quantile <= 1.0) {
            return bad(
                "preprocessing.clip_quantile",
                format!("must be in (0, 1], found {}", self.preprocessing.clip_quantile),
            );
        }
        let model = self.model.to_config();
        model.validate()?;
        let n = self.preprocessing.slice_size;
        model.check_input_size(n, n)?;
        Ok(())
    }

    /// The optimiser and schedule of an adaptation plan that starts from this config, keeping
    /// the weights `select` says (validating every `validate_every` steps when it validates).
    pub fn schedule(&self, select: SelectCheckpoint) -> Schedule {
        Schedule {
            optimizer: self.optimizer,
            iterations: self.iterations,
            batch: self.batch,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            poly_power: self.poly_power,
            select,
            validate_every: self.validate_every,
        }
    }

    /// The learning rate at iteration `it` (0-based): `lr * (1 - it / iterations)^poly_power`.
    pub fn lr_at(&self, it: usize) -> f64 {
        let frac = 1.0 - it as f64 / self.iterations.max(1) as f64;
        self.lr * frac.max(0.0).powf(self.poly_power)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_partial_files_and_unknown_fields() {
        let c: TrainConfig = serde_json::from_str(r#"{"iterations": 10, "model": {"features": [4, 8]}}"#).unwrap();
        assert_eq!(c.iterations, 10);
        assert_eq!(c.lr, 0.03);
        assert_eq!(c.model.features, vec![4, 8]);
        assert_eq!(c.model.dropout, vec![0.05, 0.1, 0.2, 0.3, 0.5]);
        // One dropout per level is required.
        assert!(matches!(c.validate(), Err(ConfigError::Model(_))));
        assert!(serde_json::from_str::<TrainConfig>(r#"{"iteration": 10}"#).is_err());
        let d = TrainConfig::default();
        d.validate().unwrap();
        assert_eq!(d.model.to_config(), UNet2dConfig::new());
        assert!((d.lr_at(0) - 0.03).abs() < 1e-12);
        assert_eq!(d.lr_at(12_000), 0.0);
        assert!((d.lr_at(6000) - 0.03 * 0.5f64.powf(0.9)).abs() < 1e-12);
    }
}
