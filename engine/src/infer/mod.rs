//! What inference computes besides masks, from arrays a network produced: Monte-Carlo
//! dropout uncertainty and its reductions, and the STDR slice descriptor. The forward passes
//! themselves belong to the `model` stage.

mod descriptor;
mod uncertainty;

pub use descriptor::{descriptor, DescriptorConfig};
pub use uncertainty::{from_samples, PixelUncertainty, Reduction};
