//! Errors of the dataset stage.

use std::path::PathBuf;

/// Why a manifest could not be loaded or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The manifest.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// The manifest is not valid JSON of the manifest schema.
    #[error("{path}: {cause}")]
    Json {
        /// The manifest.
        path: PathBuf,
        /// Where and what (line, column, field).
        cause: serde_json::Error,
    },
    /// The manifest parses but contradicts itself (duplicate ids, unknown centre …).
    #[error("{path}: {}", problems.join("; "))]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// Every problem found, each naming the case or centre.
        problems: Vec<String>,
    },
}
