//! Source reference points (METHOD.md step 5): K-means centroids of the source training
//! slices' descriptors. With the weights, this file is all that leaves the source hospital:
//! it holds no image data (`data-schema/references.schema.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{kmeans, CandidatePool, Error};
use crate::infer::DescriptorConfig;

/// The `format` field of a references file.
pub const FORMAT: &str = "delinea-references";

/// The layout version written and read.
pub const FORMAT_VERSION: u32 = 2;

/// K-means centroids of source descriptors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// Always `"delinea-references"`.
    pub format: String,
    /// Layout version (2: the descriptor records its grid; 1 recorded a max-pooling kernel).
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
            slices: points.len(),
            k,
            iterations,
            seed,
            ..References::from_centroids(clusters.centroids, descriptor, centres)
        }
    }

    /// References made elsewhere: `centroids` as given (the source side's K-means, say), no
    /// slice count, iterations or seed of delinea's.
    pub fn from_centroids(centroids: Vec<Vec<f32>>, descriptor: DescriptorConfig, centres: Vec<String>) -> References {
        References {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            centres,
            slices: 0,
            k: centroids.len(),
            iterations: 0,
            seed: 0,
            descriptor,
            centroids,
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
        if let Some(pool) = r.descriptor.pool {
            return Err(bad(format!(
                "written by an older delinea, whose descriptor was a max-pooling kernel (pool {pool}) \
                 rather than a grid: compute the references again with `delinea reference`"
            )));
        }
        if r.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format_version {} (this delinea reads {FORMAT_VERSION})",
                r.format_version
            )));
        }
        let len = r.centroids.first().map_or(0, Vec::len);
        if len == 0
            || r.centroids
                .iter()
                .any(|c| c.len() != len || c.iter().any(|v| !v.is_finite()))
        {
            return Err(bad("centroids must be non-empty, equally long and finite".into()));
        }
        if len != r.descriptor.len() {
            return Err(bad(format!(
                "its centroids have {len} values but its descriptor grid {g} × {g} has {}",
                r.descriptor.len(),
                g = r.descriptor.grid
            )));
        }
        Ok(r)
    }

    /// Writes the file atomically (pretty JSON).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::fsutil::write_json_atomic(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_record_their_grid_and_old_or_inconsistent_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refs.json");
        let refs = References {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            centres: vec!["C1".into()],
            slices: 2,
            k: 1,
            iterations: 20,
            seed: 0,
            descriptor: DescriptorConfig::default(),
            centroids: vec![vec![0.5; 256]],
        };
        refs.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"grid\": 16"), "{text}");
        assert_eq!(References::load(&path).unwrap(), refs);
        // Written before the grid: a kernel and 16 values (64 x 64 slices, kernel 16).
        let old = text
            .replace("\"grid\": 16", "\"pool\": 16")
            .replace("\"format_version\": 2", "\"format_version\": 1");
        std::fs::write(&path, old).unwrap();
        let e = References::load(&path).unwrap_err().to_string();
        assert!(e.contains("older delinea") && e.contains("delinea reference"), "{e}");
        let short = References {
            centroids: vec![vec![0.5; 16]],
            ..refs
        };
        short.write(&path).unwrap();
        let e = References::load(&path).unwrap_err().to_string();
        assert!(e.contains("16 values but its descriptor grid 16 × 16 has 256"), "{e}");
    }
}
