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
    /// A script policy failed (syntax, runtime, limits), `path:line:col: message`.
    #[error(transparent)]
    Script(crate::script::ScriptError),
    /// A policy's plan does not fit the `adapt-plan` schema.
    #[error("adaptation strategy {strategy}: {reason}")]
    Plan {
        /// The strategy.
        strategy: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// A plugin that cannot be used (refused, not found, bad parameters).
    #[error(transparent)]
    Plugin(crate::plugin::PluginError),
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
    /// The argmax of the model the adaptation starts from (the source model), computed once
    /// before the gradient steps.
    Pseudo,
    /// Two stages: first fine-tune on the plan's true-labelled sources alone (same schedule),
    /// then take that model's argmax as the pseudo-labels and fine-tune it again on every
    /// source. Where the source model collapses, its own pseudo-labels are empty; the
    /// fine-tuned model's are not.
    PseudoFromFinetuned,
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

/// Which weights an adaptation keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelectCheckpoint {
    /// The weights after the last step: no label beyond the plan's data is read.
    #[default]
    Last,
    /// The best median DSC on the target's validation split (its labels), checked every
    /// `validate_every` steps and after the last, as the paper's code does (every 100).
    BestTargetVal,
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
    /// Which weights are kept (absent in older plans: last).
    #[serde(default)]
    pub select: SelectCheckpoint,
    /// Steps between validations when `select` is `best_target_val` (absent: 100).
    #[serde(default = "default_validate_every")]
    pub validate_every: usize,
}

fn default_validate_every() -> usize {
    100
}

impl Default for Schedule {
    /// METHOD.md step 7: SGD, 16 000 iterations of batch 32, lr 0.03, momentum 0.9, wd 1e-4,
    /// poly 0.9; the last weights kept (validate every 100 when asked to select).
    fn default() -> Self {
        Schedule {
            optimizer: OptimizerKind::Sgd,
            iterations: 16_000,
            batch: 32,
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 1e-4,
            poly_power: 0.9,
            select: SelectCheckpoint::Last,
            validate_every: default_validate_every(),
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

/// A plan as JSON (what a script or a plugin returns): `strategy`, `target` and `schedule`
/// filled from `name` and `state` where it leaves them out, then read against the schema; the
/// error names the field that does not fit.
pub fn plan_from_json(mut plan: serde_json::Value, name: &str, state: &AdaptState) -> Result<AdaptPlan, String> {
    let Some(fields) = plan.as_object_mut() else {
        return Err(format!("a plan must be an object (a map), not {plan}"));
    };
    fields.entry("strategy").or_insert_with(|| name.into());
    fields.entry("target").or_insert_with(|| state.target.clone().into());
    if !fields.contains_key("schedule") {
        let schedule = serde_json::to_value(state.schedule).map_err(|e| e.to_string())?;
        fields.insert("schedule".into(), schedule);
    }
    serde_path_to_error::deserialize::<_, AdaptPlan>(plan)
        .map_err(|e| format!("the plan's field {}: {}", e.path(), e.inner()))
}

/// An adaptation strategy: a name and a plan.
pub trait AdaptStrategy: Send + Sync {
    /// The name it is registered under.
    fn name(&self) -> String;
    /// The plan for `state` (a script or plugin may fail to make one).
    fn plan(&self, state: &AdaptState) -> Result<AdaptPlan, Error>;
}
