//! Training, the part that needs no network: the slices a model learns from, sampled in
//! seeded batches, and their augmentation (METHOD.md step 3); the training config and the
//! [`Trainer`] loop that fits a [`crate::model::UNet2d`] and keeps the best checkpoint.

mod adapt;
mod augment;
mod config;
mod data;
mod trainer;

pub use adapt::{check_supported, execute as execute_adapt_plan, AdaptError, AdaptInputs};
pub use augment::{rot90_flip, rotate, Augmentation};
pub use config::{Architecture, ConfigError, OptimizerKind, TrainConfig};
pub use data::{CaseFilter, Error, SliceRef, SliceSet};
pub use trainer::{Event, Objective, TrainError, Trainer, TrainingData, TrainingLog, ValCase};
