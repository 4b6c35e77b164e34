//! Training, the part that needs no network: the slices a model learns from, sampled in
//! seeded batches, and their augmentation (METHOD.md step 3). The optimiser and the model
//! itself come with the `model` stage.

mod augment;
mod data;

pub use augment::{rot90_flip, rotate, Augmentation};
pub use data::{CaseFilter, Error, SliceRef, SliceSet};
