//! Inference: whole-volume prediction with a [`crate::model::UNet2d`] ([`predict_volume`]:
//! masks back on the input's grid), and what is computed besides masks: Monte-Carlo dropout
//! uncertainty and its reductions, and the STDR slice descriptor.

mod descriptor;
mod predict;
mod uncertainty;

pub use descriptor::{descriptor, DescriptorConfig};
pub use predict::{
    predict_prepared, predict_volume, restore_mask, slice_descriptors, slice_probabilities, McUncertainty,
    PredictOptions, Prediction,
};
pub use uncertainty::{from_samples, PixelUncertainty, Reduction};
