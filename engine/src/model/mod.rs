//! The segmentation network and its loss (METHOD.md steps 2-3).
//!
//! [`UNet2dConfig`] (burn `Config`, saved as JSON) builds a [`UNet2d`], generic over the burn
//! backend: nothing here names a concrete backend; the caller picks one at the edge
//! ([`crate::device`]). [`SegLossConfig`] builds the training loss. Training loops, checkpoints
//! and inference live in their own stages (`train/`, `infer/`).
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use delinea::model::UNet2dConfig;
//!
//! let device = Default::default();
//! let config = UNet2dConfig::new().with_features(vec![4, 8]).with_dropout(vec![0.0, 0.1]);
//! let net = config.init::<Flex>(&device).unwrap();
//! let x = Tensor::<Flex, 4>::zeros([1, 1, 16, 16], &device); // [batch, 1, H, W]
//! let (logits, features) = net.forward_with_features(x);
//! assert_eq!(logits.dims(), [1, 2, 16, 16]); // [batch, classes, H, W]
//! assert_eq!(features.dims(), [1, 4, 16, 16]); // [batch, features[0], H, W]
//! ```

pub mod checkpoint;
pub mod kernels;
mod loss;
mod norm;
pub mod timing;
mod unet;

pub use checkpoint::{CheckpointError, ModelCard};
pub use loss::{normalised_entropy, LossTerms, SegLoss, SegLossConfig};
pub use norm::{train_only_batch_norm_affine, BatchNorm2d, BatchNorm2dConfig};
pub use unet::{ConvBlock, UNet2d, UNet2dConfig, UpBlock};

/// What can go wrong building or feeding a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A config field has a value the model cannot be built with.
    #[error("invalid model config: `{field}` {reason}")]
    InvalidConfig {
        /// The field (or fields) at fault.
        field: &'static str,
        /// What is wrong, with the value found.
        reason: String,
    },
    /// A slice size the network cannot take (skips would not line up).
    #[error("input of {height}x{width} pixels: both sides must be non-zero multiples of {multiple}")]
    InputSize {
        /// Height found.
        height: usize,
        /// Width found.
        width: usize,
        /// Required multiple, `2^(depth-1)`.
        multiple: usize,
    },
}

#[cfg(test)]
mod tests;

/// Serialises the tests that draw random numbers (building a network does: parameters are
/// initialised randomly, lazily on first use): flex keeps one process-wide RNG (`Backend::seed`
/// sets it, every random op advances it), so tests running in parallel would interleave draws.
#[cfg(test)]
pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
