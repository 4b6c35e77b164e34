//! Source reference points (METHOD.md step 5): K-means centroids of the source training
//! slices' descriptors. With the weights, this file is all that leaves the source hospital:
//! it holds no image data (`data-schema/references.schema.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{kmeans, CandidatePool, Error};
use crate::infer::DescriptorConfig;

/// The `format` field of a references file.
pub const FORMAT: &str = "delinea-references";

/// K-means centroids of source descriptors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// Always `"delinea-references"`.
    pub format: String,
    /// Layout version (1).
    pub format_version: u32,
    /// The source centre(s) the descriptors came from.
    pub centres: Vec<String>,
    /// Source slices clustered.
    pub slices: usize,
    /// K asked for (fewer centroids when there were fewer distinct descriptors).
    pub k: usize,
    /// Lloyd iterations.
    pub iterations: usize,
    /// Seed of the k-means++ initialisation.
    pub seed: u64,
    /// How the descriptors were computed.
    pub descriptor: DescriptorConfig,
    /// The reference points, each as long as a descriptor.
    pub centroids: Vec<Vec<f32>>,
}

impl References {
    /// Clusters the descriptors of `pool` (computed without augmentation, with `descriptor`).
    pub fn from_pool(
        pool: &CandidatePool,
        descriptor: DescriptorConfig,
        centres: Vec<String>,
        k: usize,
        iterations: usize,
        seed: u64,
    ) -> References {
        let points: Vec<Vec<f32>> = pool
            .rows
            .iter()
            .map(|r| r.descriptor.clone())
            .filter(|d| !d.is_empty())
            .collect();
        let clusters = kmeans(&points, k, iterations, seed);
        References {
            format: FORMAT.into(),
            format_version: 1,
            centres,
            slices: points.len(),
            k,
            iterations,
            seed,
            descriptor,
            centroids: clusters.centroids,
        }
    }

    /// Reads and checks a references file.
    pub fn load(path: &Path) -> Result<References, Error> {
        let bad = |reason: String| Error::References {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let r: References = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if r.format != FORMAT {
            return Err(bad(format!("format is {:?}, expected {FORMAT:?}", r.format)));
        }
        let len = r.centroids.first().map_or(0, Vec::len);
        if len == 0
            || r.centroids
                .iter()
                .any(|c| c.len() != len || c.iter().any(|v| !v.is_finite()))
        {
            return Err(bad("centroids must be non-empty, equally long and finite".into()));
        }
        Ok(r)
    }

    /// Writes the file atomically (pretty JSON).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::fsutil::write_json_atomic(path, self)
    }
}
