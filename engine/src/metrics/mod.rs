//! Segmentation metrics of a prediction against a ground truth, and the statistics that
//! compare them across cases (METHOD.md, "Metric conventions").
//!
//! # Brief overview
//! [`compute`] takes two [`LabelMap`]s on the same grid and returns [`Metrics`]: overlap (DSC,
//! IoU, sensitivity, precision, signed relative volume difference, volumes in ml) and surface
//! distances in mm from the grid's own spacing (HD, HD95 in two conventions, ASSD, both directed
//! mean distances, NSD). [`compute_files`] reads the files first and names both in errors.
//! [`evaluate()`] runs it on every case of a manifest (rayon across cases), [`stats`] holds
//! median/IQR/mean/SD, [`wilcoxon`] the paired signed-rank test and Holm's correction, and
//! [`compare()`] pairs two result tables case by case. This module never prints.
//!
//! # Conventions, and how they relate to medpy 0.5.2 and MONAI 1.6
//! - **Labels**: a voxel belongs to the mask when its value is `> 0`, or `== N` with a label.
//! - **Surface**: mask minus its erosion by the 6-neighbourhood cross (face connectivity),
//!   voxels outside the volume counted as background, as `scipy.ndimage.binary_erosion` with
//!   `border_value=0` does in both medpy and MONAI: a mask touching the edge has surface there.
//! - **Distances**: exact Euclidean distance transform in mm (Felzenszwalb-Huttenlocher,
//!   separable, anisotropic), on the bounding box of both masks only. Directed distances are,
//!   for each surface voxel of one mask, the distance to the nearest surface voxel of the other
//!   (medpy's `__surface_distances`, MONAI's `get_surface_distance`).
//! - **`hd`**: the largest distance of either direction (medpy `hd`, MONAI `percentile=None`).
//! - **`hd95`** ("pooled", medpy `hd95` and the paper's code): 95th percentile, numpy linear
//!   interpolation, of both directions' distances pooled.
//!   **`hd95_max`** (MONAI `compute_hausdorff_distance(percentile=95, directed=False)`): the
//!   larger of the two directed 95th percentiles. The two differ whenever one direction has
//!   many more surface voxels or a heavier tail.
//! - **`assd`**: mean of both directions' distances pooled (METHOD.md; medpy 0.5.2 `assd`,
//!   MONAI `compute_average_surface_distance(symmetric=True)`). medpy before 0.5 averaged the
//!   two directed means instead, `(asd_pred_to_gt + asd_gt_to_pred) / 2`, which differs
//!   whenever the two surfaces have different voxel counts; both directed means are reported.
//! - **`nsd`** at tolerance `tau` (default 2 mm): `(|S_p within tau of S_g| + |S_g within tau
//!   of S_p|) / (|S_p| + |S_g|)`, counted in surface voxels, "within" meaning `<= tau` (MONAI
//!   `compute_surface_dice` with `use_subvoxels=False`; DeepMind's surface-distance weights
//!   by surfel area instead, which this does not).
//! - **Empty masks** are an explicit [`Outcome`]: both empty: DSC = IoU = 1, distances and NSD
//!   undefined (`None`, JSON `null`; MONAI gives NaN, medpy raises); one empty: DSC = IoU = 0,
//!   distances `+inf` (JSON `"inf"`), NSD 0. Ratios whose denominator is empty (sensitivity
//!   without ground truth, precision without prediction, RVD without ground truth) are
//!   undefined or infinite the same way, never NaN.
//!
//! ```
//! use delinea::metrics::{self, Outcome};
//! use delinea::volume::{Geometry, LabelMap};
//! let g = Geometry::axis_aligned([8, 8, 4], [0.5, 0.5, 3.0]);
//! let (mut pred, mut gt) = (LabelMap::zeros(g.clone()), LabelMap::zeros(g.clone()));
//! for (i, j, k) in [(2, 2, 1), (3, 2, 1), (2, 3, 1), (3, 3, 1)] {
//!     gt.data[g.index(i, j, k)] = 1;
//!     pred.data[g.index(i + 1, j, k)] = 1;
//! }
//! let m = metrics::compute(&pred, &gt, &metrics::Options::default()).unwrap();
//! assert_eq!(m.outcome, Outcome::Ok);
//! assert_eq!(m.dsc, Some(0.5));
//! assert_eq!(m.hd, Some(0.5));
//! ```

mod distance;
mod evaluate;
pub mod stats;
mod surface;
pub mod wilcoxon;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

use crate::volume::{self, LabelMap};

pub use evaluate::{
    compare, csv_line, evaluate, find_prediction, fmt_value, parse_value, read_results, results_csv,
    summarize_by_centre, summary_csv, CaseResult, CaseStatus, Comparison, EvaluateOptions, MetricSummary, ResultsTable,
    SplitFilter, ALL_CENTRES,
};

/// Why metrics could not be computed, or a result table not read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A volume could not be read, or prediction and ground truth lie on different grids
    /// (the message names both files).
    #[error(transparent)]
    Volume(#[from] volume::Error),
    /// The manifest could not be read.
    #[error(transparent)]
    Dataset(#[from] crate::dataset::Error),
    /// Two in-memory label maps on different grids.
    #[error("prediction and ground truth are not on the same grid: {detail}")]
    GridMismatch {
        /// What differs.
        detail: String,
    },
    /// A tolerance that is not a finite, non-negative number of mm.
    #[error("NSD tolerance must be a finite number of mm >= 0, found {found}")]
    BadTolerance {
        /// The value given.
        found: f64,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A result table that is not what `delinea evaluate` writes.
    #[error("{path}, line {line}: {reason}")]
    Table {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// How the comparison of two masks turned out.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Both masks are non-empty.
    Ok,
    /// Neither has a voxel: DSC 1, distances undefined.
    BothEmpty,
    /// The prediction is empty, the ground truth is not: DSC 0, distances infinite (a failure).
    PredEmpty,
    /// The ground truth is empty, the prediction is not: DSC 0, distances infinite (a failure).
    GtEmpty,
}

impl Outcome {
    /// The name used in JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::BothEmpty => "both_empty",
            Outcome::PredEmpty => "pred_empty",
            Outcome::GtEmpty => "gt_empty",
        }
    }

    /// One mask empty and not the other: counted as a failure in every summary.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::PredEmpty | Outcome::GtEmpty)
    }
}

/// Options of [`compute`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// NSD tolerance in mm. By default, 2 mm (METHOD.md).
    pub tolerance_mm: f64,
    /// Which label is the mask: `None` (the default) for every value `> 0`.
    pub label: Option<u8>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tolerance_mm: 2.0,
            label: None,
        }
    }
}

/// Metrics of one prediction against one ground truth. `None` = undefined (JSON `null`,
/// CSV empty field); `Some(f64::INFINITY)` = infinite (JSON and CSV `"inf"`).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Metrics {
    /// Dice similarity coefficient `2|P n G| / (|P| + |G|)`.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub dsc: Option<f64>,
    /// Jaccard index `|P n G| / |P u G|`.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub iou: Option<f64>,
    /// `|P n G| / |G|` (undefined without ground truth).
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub sensitivity: Option<f64>,
    /// `|P n G| / |P|` (undefined without prediction).
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub precision: Option<f64>,
    /// Signed relative volume difference `(|P| - |G|) / |G|`.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub rvd: Option<f64>,
    /// Hausdorff distance, mm.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub hd: Option<f64>,
    /// 95th percentile of both directions pooled (medpy), mm.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub hd95: Option<f64>,
    /// Larger of the two directed 95th percentiles (MONAI), mm.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub hd95_max: Option<f64>,
    /// Mean of both directions' distances pooled (MONAI), mm.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub assd: Option<f64>,
    /// Mean distance from the prediction's surface to the ground truth's, mm.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub asd_pred_to_gt: Option<f64>,
    /// Mean distance from the ground truth's surface to the prediction's, mm.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub asd_gt_to_pred: Option<f64>,
    /// Normalised surface distance at [`Metrics::tolerance_mm`].
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "metric_value_schema")]
    pub nsd: Option<f64>,
    /// How the comparison turned out.
    pub outcome: Outcome,
    /// NSD tolerance used, mm.
    pub tolerance_mm: f64,
    /// Prediction volume, ml.
    pub pred_ml: f64,
    /// Ground-truth volume, ml.
    pub gt_ml: f64,
    /// Prediction voxels.
    pub pred_voxels: u64,
    /// Ground-truth voxels.
    pub gt_voxels: u64,
    /// Voxels in both.
    pub intersection_voxels: u64,
    /// Prediction surface voxels.
    pub pred_surface_voxels: u64,
    /// Ground-truth surface voxels.
    pub gt_surface_voxels: u64,
}

/// The metric columns of a result table, in order.
pub const METRIC_NAMES: [&str; 14] = [
    "dsc",
    "iou",
    "sensitivity",
    "precision",
    "rvd",
    "pred_ml",
    "gt_ml",
    "hd",
    "hd95",
    "hd95_max",
    "assd",
    "asd_pred_to_gt",
    "asd_gt_to_pred",
    "nsd",
];

impl Metrics {
    /// The value of a metric named as in [`METRIC_NAMES`]; `None` for an unknown name.
    pub fn get(&self, name: &str) -> Option<Option<f64>> {
        Some(match name {
            "dsc" => self.dsc,
            "iou" => self.iou,
            "sensitivity" => self.sensitivity,
            "precision" => self.precision,
            "rvd" => self.rvd,
            "pred_ml" => Some(self.pred_ml),
            "gt_ml" => Some(self.gt_ml),
            "hd" => self.hd,
            "hd95" => self.hd95,
            "hd95_max" => self.hd95_max,
            "assd" => self.assd,
            "asd_pred_to_gt" => self.asd_pred_to_gt,
            "asd_gt_to_pred" => self.asd_gt_to_pred,
            "nsd" => self.nsd,
            _ => return None,
        })
    }
}

/// The JSON Schema of a value written by [`ser_value`]: a number, `"inf"`/`"-inf"`, or null.
pub(crate) fn metric_value_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "number"}, {"enum": ["inf", "-inf"]}, {"type": "null"}],
        "description": "a number; \"inf\" when one mask is empty; null when undefined"
    })
}

/// The JSON Schema of a defined value written by [`ser_value`]: a number or `"inf"`/`"-inf"`.
pub(crate) fn defined_value_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "number"}, {"enum": ["inf", "-inf"]}],
        "description": "a number; \"inf\" when a failed case's infinite distance reaches it"
    })
}

/// Serialises `None` as `null`, infinities as `"inf"`/`"-inf"`, numbers as numbers.
pub fn ser_value<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if *x == f64::INFINITY => s.serialize_str("inf"),
        Some(x) if *x == f64::NEG_INFINITY => s.serialize_str("-inf"),
        Some(x) if x.is_finite() => s.serialize_f64(*x),
        _ => s.serialize_none(),
    }
}

/// Reads what [`ser_value`] writes: a number, `null`, `"inf"` or `"-inf"`.
pub fn de_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(f64),
        Text(String),
    }
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::Number(x)) => Ok(Some(x)),
        Some(Value::Text(t)) => parse_value(&t).map_err(serde::de::Error::custom),
    }
}

/// Metrics of `pred` against `gt`, which must lie on the same grid.
pub fn compute(pred: &LabelMap, gt: &LabelMap, options: &Options) -> Result<Metrics, Error> {
    if let Some(detail) = pred.geometry.mismatch(&gt.geometry) {
        return Err(Error::GridMismatch { detail });
    }
    if !(options.tolerance_mm.is_finite() && options.tolerance_mm >= 0.0) {
        return Err(Error::BadTolerance {
            found: options.tolerance_mm,
        });
    }
    let g = &gt.geometry;
    if pred.data.len() != g.len() || gt.data.len() != g.len() {
        return Err(Error::GridMismatch {
            detail: format!(
                "{} and {} voxels for a {:?} grid",
                pred.data.len(),
                gt.data.len(),
                g.dims
            ),
        });
    }
    Ok(compute_raw(
        &pred.data,
        &gt.data,
        g.dims,
        g.spacing,
        g.voxel_ml(),
        options,
    ))
}

/// Reads both files, checks they share a grid (the error names both), and computes.
pub fn compute_files(pred: &Path, gt: &Path, options: &Options) -> Result<Metrics, Error> {
    let (p, g) = rayon::join(|| volume::read_label_map(pred), || volume::read_label_map(gt));
    let (p, g) = (p?, g?);
    volume::check_same_grid(gt, &g.geometry, pred, &p.geometry)?;
    compute(&p, &g, options)
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn compute_raw(pred: &[u8], gt: &[u8], dims: [usize; 3], spacing: [f64; 3], voxel_ml: f64, o: &Options) -> Metrics {
    let s = surface::scan(pred, gt, dims, o.label);
    let outcome = match (s.pred > 0, s.gt > 0) {
        (true, true) => Outcome::Ok,
        (false, false) => Outcome::BothEmpty,
        (false, true) => Outcome::PredEmpty,
        (true, false) => Outcome::GtEmpty,
    };
    let union = s.pred + s.gt - s.both;
    let mut m = Metrics {
        dsc: Some(if s.pred + s.gt == 0 {
            1.0
        } else {
            2.0 * s.both as f64 / (s.pred + s.gt) as f64
        }),
        iou: Some(if union == 0 { 1.0 } else { s.both as f64 / union as f64 }),
        sensitivity: ratio(s.both, s.gt),
        precision: ratio(s.both, s.pred),
        rvd: match (s.pred, s.gt) {
            (0, 0) => None,
            (_, 0) => Some(f64::INFINITY),
            (p, g) => Some((p as f64 - g as f64) / g as f64),
        },
        hd: None,
        hd95: None,
        hd95_max: None,
        assd: None,
        asd_pred_to_gt: None,
        asd_gt_to_pred: None,
        nsd: None,
        outcome,
        tolerance_mm: o.tolerance_mm,
        pred_ml: s.pred as f64 * voxel_ml,
        gt_ml: s.gt as f64 * voxel_ml,
        pred_voxels: s.pred,
        gt_voxels: s.gt,
        intersection_voxels: s.both,
        pred_surface_voxels: 0,
        gt_surface_voxels: 0,
    };
    let bbox = match (outcome, s.bbox) {
        (Outcome::Ok, Some(b)) => b,
        (Outcome::BothEmpty, _) => return m,
        _ => {
            let inf = Some(f64::INFINITY);
            (m.hd, m.hd95, m.hd95_max, m.assd) = (inf, inf, inf, inf);
            (m.asd_pred_to_gt, m.asd_gt_to_pred) = (inf, inf);
            m.nsd = Some(0.0);
            return m;
        }
    };
    let surf = surface::surfaces(pred, gt, dims, o.label, bbox);
    let (mut dp, mut dg) = rayon::join(
        || surface::directed(&surf.pred, &surf.gt, surf.dims, spacing),
        || surface::directed(&surf.gt, &surf.pred, surf.dims, spacing),
    );
    m.pred_surface_voxels = dp.len() as u64;
    m.gt_surface_voxels = dg.len() as u64;
    let tau = o.tolerance_mm;
    let within = dp.iter().chain(&dg).filter(|&&d| d <= tau).count();
    m.nsd = Some(within as f64 / (dp.len() + dg.len()) as f64);
    let (sp, sg): (f64, f64) = (dp.iter().sum(), dg.iter().sum());
    m.asd_pred_to_gt = Some(sp / dp.len() as f64);
    m.asd_gt_to_pred = Some(sg / dg.len() as f64);
    m.assd = Some((sp + sg) / (dp.len() + dg.len()) as f64);
    let p95_p = percentile_select(&mut dp, 95.0);
    let p95_g = percentile_select(&mut dg, 95.0);
    m.hd95_max = Some(p95_p.max(p95_g));
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m.hd = Some(max(&dp).max(max(&dg)));
    dp.extend_from_slice(&dg);
    m.hd95 = Some(percentile_select(&mut dp, 95.0));
    m
}

/// numpy's linear percentile by selection, O(n); reorders `v` (non-empty, no NaN).
fn percentile_select(v: &mut [f64], q: f64) -> f64 {
    let n = v.len();
    let pos = (n - 1) as f64 * (q / 100.0);
    let lo = (pos.floor() as usize).min(n - 1);
    let t = pos - lo as f64;
    let (_, a, rest) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let a = *a;
    let b = if lo + 1 < n {
        rest.iter().copied().fold(f64::INFINITY, f64::min)
    } else {
        a
    };
    stats::lerp(a, b, t)
}

#[cfg(test)]
mod tests;
