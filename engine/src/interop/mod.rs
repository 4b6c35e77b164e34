//! Models from elsewhere and to elsewhere (README "Models from elsewhere").
//!
//! - [`import_model`]: a PyTorch checkpoint (`.pth`/`.pt`, `torch.save`'s zip; bare, nested
//!   under `state_dict`/`model`/`net`, or with DataParallel's `module.` prefix) or a
//!   `.safetensors` file of the reference network (PyMIC/SSL4MIS `UNet`, [`pymic`]) becomes a
//!   delinea model folder, its widths, input channels and classes read off the shapes;
//! - [`export_safetensors`]: a model folder's weights under the reference network's names;
//! - [`export_onnx`]: the inference network as ONNX (opset 17, [`onnx`]);
//! - [`import_references`]: the source side's K-means centroids (`.npy`, `.pt`).
//!
//! Reading uses burn-store (PyTorch's pickle and zip, in pure Rust) and the safetensors crate;
//! nothing here loads libtorch or Python.

mod export;
mod import;
pub mod onnx;
pub mod pickle;
pub mod pymic;
pub mod read;
mod references;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use export::{export_safetensors, named_tensors};
pub use import::{import_model, sha256_file, ImportCard, ImportOptions};
pub use onnx::export_onnx;
pub use references::{import_references, parse_npy, Matrix};

use crate::model::CheckpointError;

/// How a model came into delinea from elsewhere (a model card's `imported`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRecord {
    /// The file imported (its name).
    pub file: String,
    /// Its sha256 (hex).
    pub sha256: String,
    /// `pytorch` or `safetensors`.
    pub format: String,
    /// The checkpoint key the state_dict was nested under (`state_dict`), if any.
    pub nested_under: Option<String>,
    /// A prefix removed from every key (`module.`), if any.
    pub prefix_removed: Option<String>,
    /// The naming the keys were mapped from.
    pub mapping: String,
    /// Tensors mapped onto delinea's network.
    pub tensors: usize,
    /// What the import left out, counted.
    pub ignored: Vec<String>,
}

/// What can go wrong importing or exporting. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file cannot be read as a model file.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The tensors are not the reference network's.
    #[error("{path} is not the PyMIC/SSL4MIS UNet delinea imports: {}", summary(problems))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Every key that did not match.
        problems: Vec<String>,
    },
    /// `--card` or `--slice-size` gives values the network cannot take.
    #[error("importing {path}: {reason}")]
    Card {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The output folder is already there.
    #[error("{path} already exists and is not empty: choose a new folder for the imported model")]
    OutExists {
        /// The folder.
        path: PathBuf,
    },
    /// Reference points that cannot be used.
    #[error("reference points {path}: {reason}")]
    References {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model folder could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A delinea network whose tensors disagree with its own card (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The problems of a mismatch, the first twelve listed.
fn summary(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(12).map(String::as_str).collect();
    let more = match problems.len().saturating_sub(12) {
        0 => String::new(),
        n => format!("; and {n} more"),
    };
    format!("{} problem(s): {}{more}", problems.len(), shown.join("; "))
}
