//! Adaptation strategies (METHOD.md step 7 and "Baselines"): how to adapt the source model
//! once labels for the selection have arrived.
//!
//! A strategy does not train: it returns a declarative [`AdaptPlan`] — which data, which
//! labels (true or pseudo), which parameters train, which loss terms, how long — that the
//! trainer executes. Plans are plain data, so they can be printed, saved with a model and
//! compared in tests.

mod builtin;

pub use builtin::{by_name, BUILTIN_NAMES};

use serde::{Deserialize, Serialize};

use super::query::Selection;
pub use crate::train::OptimizerKind;

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No strategy of that name.
    #[error("unknown adaptation strategy {name:?}; builtins: {}", BUILTIN_NAMES.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
}

/// What a strategy sees when it plans.
#[derive(Debug, Clone)]
pub struct AdaptState {
    /// The labelled selection (slices or volumes of the target's training split).
    pub selection: Selection,
    /// The target centre (or rater domain).
    pub target: String,
    /// Optimiser and schedule to start from (METHOD.md: the source's, 16 000 iterations).
    pub schedule: Schedule,
}

/// Which target training rows a data source covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    /// The selection's rows.
    Selected,
    /// Every row not in the selection.
    Unselected,
    /// Every target training row.
    All,
}

/// Where a data source's targets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// The expert labels (of the selection, or all of them for the supervised bound).
    True,
    /// The source model's argmax, computed once before adaptation.
    Pseudo,
    /// No labels (entropy minimisation, BN statistics).
    Unlabelled,
}

/// One stream of training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DataSource {
    /// Which rows.
    pub rows: Rows,
    /// Which labels.
    pub labels: LabelSource,
}

/// Which parameters are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trainable {
    /// Every weight.
    All,
    /// Only the batch-norm scale and shift (Tent); every other weight stays bit-identical.
    BatchNormAffine,
    /// Nothing (no gradient step).
    Nothing,
}

/// How batch normalisation behaves while adapting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchNorm {
    /// As in training: batch statistics normalise, the running statistics follow the training
    /// batches as an exponential average (the layer's momentum).
    Train,
    /// Tent: batch statistics normalise every adaptation forward pass; after the last step the
    /// running statistics are re-estimated on the plan's data with the adapted scale and shift
    /// (an AdaBN pass), so the saved model, evaluated with running statistics, normalises with
    /// the target's statistics ("AdaBN + affine").
    BatchStatistics,
    /// Re-estimate the running statistics on the target data, no gradient (AdaBN).
    Reestimate,
}

/// A loss term and its weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "term")]
pub enum LossTerm {
    /// 0.5 · (cross-entropy + soft Dice on the tumour channel), against the source's labels.
    Segmentation {
        /// Weight.
        weight: f64,
    },
    /// Prediction entropy normalised by log(classes) (Tent).
    Entropy {
        /// Weight.
        weight: f64,
    },
}

/// Optimiser and schedule (METHOD.md step 3: SGD, poly decay).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Schedule {
    /// The optimiser (absent in older plans: sgd).
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Gradient steps.
    pub iterations: usize,
    /// Slices per batch.
    pub batch: usize,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (unused by Adam).
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Poly decay power: `lr * (1 - it / iterations)^power`.
    pub poly_power: f64,
}

impl Default for Schedule {
    /// METHOD.md step 7: SGD, 16 000 iterations of batch 32, lr 0.03, momentum 0.9, wd 1e-4,
    /// poly 0.9.
    fn default() -> Self {
        Schedule {
            optimizer: OptimizerKind::Sgd,
            iterations: 16_000,
            batch: 32,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 1e-4,
            poly_power: 0.9,
        }
    }
}

/// What the trainer does to adapt (`data-schema/adapt-plan.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AdaptPlan {
    /// The strategy that made it.
    pub strategy: String,
    /// The target centre or rater domain.
    pub target: String,
    /// Data streams, mixed in each batch in proportion to their sizes.
    pub data: Vec<DataSource>,
    /// Which parameters train.
    pub trainable: Trainable,
    /// Batch-norm behaviour.
    pub batch_norm: BatchNorm,
    /// Loss terms.
    pub loss: Vec<LossTerm>,
    /// Optimiser and schedule (`iterations` 0: no gradient step).
    pub schedule: Schedule,
}

/// An adaptation strategy: a name and a plan.
pub trait AdaptStrategy: Send + Sync {
    /// The name it is registered under.
    fn name(&self) -> String;
    /// The plan for `state`.
    fn plan(&self, state: &AdaptState) -> AdaptPlan;
}
