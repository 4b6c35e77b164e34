//! `delinea inspect`: what a NIfTI file holds, as one serialisable record.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{read, NiftiInfo};
use crate::volume::{Affine, Error};

/// Everything `delinea inspect --json` prints (`data-schema/inspect.schema.json`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Inspection {
    /// The file.
    pub path: PathBuf,
    /// Voxels along i, j, k.
    pub dims: [usize; 3],
    /// Voxel size along i, j, k (mm), from `pixdim`.
    pub spacing: [f64; 3],
    /// Voxel → world (RAS+, mm), 4 rows of 4, as nibabel's `img.affine`.
    pub affine: Affine,
    /// Axis codes as nibabel's `aff2axcodes`, e.g. `"RAS"`.
    pub orientation: String,
    /// NIfTI datatype name (`int16`, `float32`, …).
    pub datatype: String,
    /// `little` or `big`.
    pub endianness: String,
    /// The rest of the header.
    pub header: NiftiInfo,
    /// Intensity statistics over the finite voxels, after scaling.
    pub stats: Stats,
}

/// Intensity statistics.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Stats {
    /// Smallest finite value.
    pub min: f64,
    /// Largest finite value.
    pub max: f64,
    /// Mean of finite values.
    pub mean: f64,
    /// Population standard deviation of finite values.
    pub std: f64,
    /// 1st percentile (numpy linear interpolation).
    pub p1: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Voxels that are not 0.
    pub nonzero: usize,
    /// NaN or ±Inf voxels.
    pub non_finite: usize,
    /// Distinct values, when there are at most 16 (a label map), else `None`.
    pub distinct: Option<Vec<f64>>,
}

/// Reads `path` and describes it. Memory: the f32 voxels once (the statistics sort them in
/// place), plus the reader's buffers.
pub fn inspect(path: &Path) -> Result<Inspection, Error> {
    let (g, info, values) = read::read_decoded(path)?;
    let stats = stats(values).ok_or_else(|| Error::AllNonFinite {
        path: path.to_path_buf(),
    })?;
    Ok(Inspection {
        path: path.to_path_buf(),
        dims: g.dims,
        spacing: g.spacing,
        affine: g.affine,
        orientation: g.orientation(),
        datatype: info.datatype.clone(),
        endianness: info.endianness.clone(),
        header: info,
        stats,
    })
}

/// The statistics of `values`' finite voxels, computed on `values` itself: the non-finite
/// ones are dropped in place and the rest sorted in place, so no copy is made.
fn stats(values: Vec<f32>) -> Option<Stats> {
    let total = values.len();
    let mut finite = values;
    finite.retain(|v| v.is_finite());
    if finite.is_empty() {
        return None;
    }
    let non_finite = total - finite.len();
    finite.sort_unstable_by(|a, b| a.total_cmp(b));
    let n = finite.len() as f64;
    let mean = finite.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = finite.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    let mut distinct: Vec<f64> = Vec::new();
    for v in &finite {
        if distinct.last() != Some(&(*v as f64)) {
            distinct.push(*v as f64);
            if distinct.len() > 16 {
                break;
            }
        }
    }
    Some(Stats {
        min: finite[0] as f64,
        max: finite[finite.len() - 1] as f64,
        mean,
        std: var.sqrt(),
        p1: percentile_sorted(&finite, 1.0),
        p50: percentile_sorted(&finite, 50.0),
        p99: percentile_sorted(&finite, 99.0),
        nonzero: finite.iter().filter(|v| **v != 0.0).count() + non_finite,
        non_finite,
        distinct: (distinct.len() <= 16).then_some(distinct),
    })
}

/// numpy's default (linear) percentile of sorted data.
fn percentile_sorted(sorted: &[f32], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let w = pos - lo as f64;
    sorted[lo] as f64 * (1.0 - w) + sorted[hi] as f64 * w
}
