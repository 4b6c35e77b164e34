//! Job files: what the drop folder does with each scan that lands (`data-schema/job.schema.json`,
//! examples in `examples/jobs/`).
//!
//! A job names the model, the device, the outputs wanted, the query strategy that ranks the
//! arrivals for labelling (any name the strategy resolver takes: builtin, `script:`, `plugin:`)
//! and an optional adaptation trigger. `watch/` decides *when* a job runs; this module only
//! describes it. Relative paths are relative to the job file's folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::DeviceRequest;
use crate::infer::Reduction;
use crate::preprocess::Preprocessing;
use crate::strategy::query::{Aggregate, Budget, Unit};

/// The `format` field of a job file.
pub const FORMAT: &str = "delinea-job";

/// A job that is not usable, naming the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The file cannot be read.
    #[error("{path}: cannot read the job file: {source}")]
    Read {
        /// The job file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The JSON does not match the schema.
    #[error("{path}: not a valid job file: {reason} (schema: data-schema/job.schema.json)")]
    Parse {
        /// The job file.
        path: PathBuf,
        /// The field and what is wrong.
        reason: String,
    },
    /// A field holds a value that cannot work.
    #[error("{path}: {field}: {reason}")]
    Field {
        /// The job file.
        path: PathBuf,
        /// The field (`query.budget`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A job file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Always `"delinea-job"`.
    pub format: String,
    /// A name for logs and the model cards of adapted models.
    #[serde(default)]
    pub name: String,
    /// The checkpoint folder that predicts until the first adaptation (`delinea train`).
    pub model: PathBuf,
    /// `auto`, `cpu`, `cuda` or `cuda:N`. Default `auto`.
    #[serde(default = "default_device")]
    pub device: String,
    /// The centre id the arrivals belong to (in the manifests adaptation writes). Default `target`.
    #[serde(default = "default_centre")]
    pub centre: String,
    /// The preprocessing this department expects. Always the model card's; when given, the
    /// watcher refuses to start unless the card's is the same (a model is only valid with the
    /// preprocessing it was trained with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Preprocessing>,
    /// What is written per scan.
    #[serde(default)]
    pub outputs: Outputs,
    /// How each scan is predicted.
    #[serde(default)]
    pub prediction: Prediction,
    /// How the arrivals are ranked for labelling (`label-next.json`).
    #[serde(default)]
    pub query: Query,
    /// When and how to adapt the model to the labels that came back; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptation: Option<Adaptation>,
    /// Where a processed scan is moved, byte for byte. Default: `OUTBOX/processed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<PathBuf>,
}

fn default_device() -> String {
    "auto".into()
}

fn default_centre() -> String {
    "target".into()
}

/// The outputs written per scan, into `OUTBOX/cases/<case>/`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Outputs {
    /// `mask.nii.gz`: the predicted GTV (uint8), on the scan's grid. Default true.
    pub mask: bool,
    /// `probability.nii.gz`: the tumour probability (float32). Default false.
    pub probability: bool,
    /// `entropy.nii.gz` and `bald.nii.gz`: MC-dropout uncertainty (needs `prediction.mc_samples`
    /// above 0). Default true.
    pub uncertainty: bool,
    /// Per-slice STDR distances to the source references in `scores.json` (needs
    /// `query.references`). Default true when references are given.
    pub stdr_distance: bool,
    /// `rtstruct.dcm`: the mask as an RT Structure Set (ROI "GTV") referencing the scan, for a
    /// DICOM scan (a NIfTI scan has no series to reference). Default true.
    pub rtstruct: bool,
    /// `seg.dcm`: the mask as a DICOM Segmentation referencing the scan, for a DICOM scan.
    /// Default false.
    pub seg: bool,
    /// How `rtstruct.dcm` writes holes: `keyhole` (joined to their island, the default) or
    /// `rings` (separate contours, the even-odd convention).
    pub rtstruct_holes: crate::volume::dicom::Holes,
}

impl Default for Outputs {
    fn default() -> Outputs {
        Outputs {
            mask: true,
            probability: false,
            uncertainty: true,
            stdr_distance: true,
            rtstruct: true,
            seg: false,
            rtstruct_holes: crate::volume::dicom::Holes::Keyhole,
        }
    }
}

/// How each scan is predicted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Prediction {
    /// Slices per forward pass. Default 16.
    pub batch: usize,
    /// MC-dropout samples for uncertainty. Default 8.
    pub mc_samples: usize,
    /// Pixel uncertainty reduced per slice: `{"kind": "mean"}` (the default), `sum`, `max`, or
    /// `{"kind": "mean_above", "threshold": T}`.
    pub reduction: Reduction,
    /// Seed of the dropout masks (the same for every scan: outputs do not depend on arrival order).
    pub seed: u64,
}

impl Default for Prediction {
    fn default() -> Prediction {
        Prediction {
            batch: 16,
            mc_samples: 8,
            reduction: Reduction::Mean,
            seed: 0,
        }
    }
}

/// How the pool of arrivals without labels is ranked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Query {
    /// A query strategy name: `stdr`, `entropy`, …, `script:PATH`, `plugin:PATH`. Default `stdr`.
    pub strategy: String,
    /// The source references file (`delinea reference`, or `delinea reference import` of the
    /// source side's centroids), needed by `stdr`.
    pub references: Option<PathBuf>,
    /// How many to list: a count (`10`), a fraction (`0.2`) or a percentage (`20%`) of the
    /// unlabelled pool. Default `20%`.
    pub budget: String,
    /// Rank whole scans (`volume`, what a department labels) or slices. Default volume.
    pub unit: Unit,
    /// How slice scores become a scan's score with `unit: volume`. Default mean.
    pub aggregate: Aggregate,
    /// Seed of random choices. Default 0.
    pub seed: u64,
}

impl Default for Query {
    fn default() -> Query {
        Query {
            strategy: "stdr".into(),
            references: None,
            budget: "20%".into(),
            unit: Unit::Volume,
            aggregate: Aggregate::Mean,
            seed: 0,
        }
    }
}

/// When adaptation runs and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Adaptation {
    /// Adapt each time this many new labels have been registered since the last adaptation.
    pub every_labels: usize,
    /// An adaptation strategy name (`finetune`, `finetune+pseudo`, `script:…`, `plugin:…`).
    /// Default `finetune+pseudo`.
    #[serde(default = "default_adapt")]
    pub strategy: String,
    /// A training config (`data-schema/train-config.schema.json`) for the details; default
    /// the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Gradient steps (default: the config's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// Slices per batch (default: the config's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
}

fn default_adapt() -> String {
    "finetune+pseudo".into()
}

impl Job {
    /// Reads and checks `path`, making its relative paths relative to the file's folder.
    pub fn load(path: &Path) -> Result<Job, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let mut job: Job = serde_path_to_error::deserialize(de).map_err(|e| JobError::Parse {
            path: path.to_path_buf(),
            reason: format!("{}: {}", e.path(), e.inner()),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut job.model);
        job.query.references.as_mut().map(resolve);
        job.processed.as_mut().map(resolve);
        if let Some(a) = job.adaptation.as_mut() {
            a.config.as_mut().map(resolve);
        }
        job.check(path)?;
        Ok(job)
    }

    /// The rules serde cannot state.
    fn check(&self, path: &Path) -> Result<(), JobError> {
        let field = |field: &'static str, reason: String| JobError::Field {
            path: path.to_path_buf(),
            field,
            reason,
        };
        if self.format != FORMAT {
            return Err(field(
                "format",
                format!("is {:?}; a job file says {FORMAT:?}", self.format),
            ));
        }
        self.device_request().map_err(|e| field("device", e))?;
        self.budget().map_err(|e| field("query.budget", e.to_string()))?;
        if self.prediction.batch == 0 {
            return Err(field("prediction.batch", "must be at least 1".into()));
        }
        if self.outputs.uncertainty && self.prediction.mc_samples == 0 {
            return Err(field(
                "outputs.uncertainty",
                "needs prediction.mc_samples above 0 (the maps come from MC dropout)".into(),
            ));
        }
        if self.centre.is_empty() {
            return Err(field("centre", "must not be empty".into()));
        }
        if let Some(a) = &self.adaptation {
            if a.every_labels == 0 {
                return Err(field("adaptation.every_labels", "must be at least 1".into()));
            }
        }
        Ok(())
    }

    /// The device asked for.
    pub fn device_request(&self) -> Result<DeviceRequest, String> {
        self.device.parse::<DeviceRequest>().map_err(|e| e.to_string())
    }

    /// The adaptation a Train request runs (`delinea serve`): the job's, or `finetune+pseudo`
    /// with the engine's training config when the job names none (then never by trigger).
    pub fn requested_adaptation(&self) -> Adaptation {
        self.adaptation.clone().unwrap_or_else(|| Adaptation {
            every_labels: usize::MAX,
            strategy: default_adapt(),
            config: None,
            iterations: None,
            batch: None,
        })
    }

    /// The query budget.
    pub fn budget(&self) -> Result<Budget, crate::strategy::query::Error> {
        Budget::parse(&self.query.budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Job, JobError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("job.json");
        std::fs::write(&p, text).unwrap();
        Job::load(&p)
    }

    #[test]
    fn a_minimal_job_takes_the_defaults_and_resolves_paths_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("job.json");
        std::fs::write(&p, r#"{"format": "delinea-job", "model": "models/source"}"#).unwrap();
        let job = Job::load(&p).unwrap();
        assert_eq!(job.model, dir.path().join("models/source"));
        assert_eq!(job.query.strategy, "stdr");
        assert_eq!(job.query.unit, Unit::Volume);
        assert!(job.outputs.mask && job.outputs.uncertainty && job.adaptation.is_none());
    }

    #[test]
    fn the_example_job_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/department.json");
        let job = Job::load(&p).unwrap();
        assert!(job.model.ends_with("delinea-demo/source/model"));
        assert_eq!(job.adaptation.map(|a| a.every_labels), Some(5));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = load(r#"{"format": "delinea-job", "model": "m", "outputs": {"masks": true}}"#).unwrap_err();
        assert!(
            e.to_string().contains("outputs") && e.to_string().contains("masks"),
            "{e}"
        );
        let e = load(r#"{"format": "delinea-job", "model": "m", "query": {"budget": "lots"}}"#).unwrap_err();
        assert!(e.to_string().contains("query.budget"), "{e}");
        let e = load(r#"{"format": "delinea-job", "model": "m", "prediction": {"mc_samples": 0}}"#).unwrap_err();
        assert!(e.to_string().contains("outputs.uncertainty"), "{e}");
        let e = load(r#"{"format": "job", "model": "m"}"#).unwrap_err();
        assert!(e.to_string().contains("format"), "{e}");
        let e = load(r#"{"format": "delinea-job", "model": "m", "adaptation": {"every_labels": 0}}"#).unwrap_err();
        assert!(e.to_string().contains("adaptation.every_labels"), "{e}");
        let e = load(r#"{"format": "delinea-job", "model": "m", "device": "tpu"}"#).unwrap_err();
        assert!(e.to_string().contains("device"), "{e}");
    }
}
