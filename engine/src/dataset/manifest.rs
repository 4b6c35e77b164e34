//! The dataset manifest: one JSON file describing a cohort's centres, raters and cases.
//!
//! Users write a [`ManifestFile`] (paths relative to the manifest's folder); the engine works
//! on the resolved [`Manifest`] (absolute paths, cross-references checked).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Error;

/// The manifest as written on disk (`data-schema/manifest.schema.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// A name for the cohort.
    #[serde(default)]
    pub name: String,
    /// The hospitals (or scanners) the cases come from.
    pub centres: Vec<CentreEntry>,
    /// The experts who delineated; optional, but when present every label's rater must be one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raters: Vec<RaterEntry>,
    /// The cases (patients), one image each.
    pub cases: Vec<CaseEntry>,
}

/// A centre: where scans were acquired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CentreEntry {
    /// Unique id, e.g. `"C1"`.
    pub id: String,
    /// `source` (where the model was trained) or `target`.
    pub role: Role,
    /// The rater whose labels are this centre's ground truth; when omitted, a case's label
    /// is its only label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_rater: Option<String>,
    /// Free text: scanner, protocol …
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A rater (expert delineator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RaterEntry {
    /// Unique id, e.g. `"R1"`.
    pub id: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// One case: an image and its labels by rater.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseEntry {
    /// Unique id, e.g. `"C1-007"`.
    pub id: String,
    /// Id of the centre the case comes from.
    pub centre: String,
    /// The image, relative to the manifest's folder (or absolute).
    pub image: PathBuf,
    /// Label maps by rater id, paths relative to the manifest's folder. May be empty: an
    /// unlabelled target scan.
    #[serde(default)]
    pub labels: BTreeMap<String, PathBuf>,
    /// Which split the case belongs to.
    pub split: Split,
}

/// Whether a centre is where the model was trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The hospital where the source model was trained.
    Source,
    /// A hospital the model is adapted to.
    Target,
}

/// Data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training (and, at a target, the pool to query from).
    Train,
    /// Validation (checkpoint selection).
    Val,
    /// Held-out test.
    Test,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        })
    }
}

/// A loaded manifest: paths absolute, ids unique, references checked.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// What the file says, with absolute paths.
    pub file: ManifestFile,
}

impl Manifest {
    /// Reads and checks `path` (structure only: [`super::validate`] reads the volumes).
    pub fn load(path: &Path) -> Result<Manifest, Error> {
        let text = std::fs::read_to_string(path).map_err(|cause| Error::Io {
            path: path.into(),
            cause,
        })?;
        let mut file: ManifestFile = serde_json::from_str(&text).map_err(|cause| Error::Json {
            path: path.into(),
            cause,
        })?;
        let problems = file.problems();
        if !problems.is_empty() {
            return Err(Error::Invalid {
                path: path.into(),
                problems,
            });
        }
        let root = path.parent().unwrap_or(Path::new("."));
        file.resolve_paths(root);
        Ok(Manifest {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The cases, in file order.
    pub fn cases(&self) -> &[CaseEntry] {
        &self.file.cases
    }

    /// The centre of `id`, if any.
    pub fn centre(&self, id: &str) -> Option<&CentreEntry> {
        self.file.centres.iter().find(|c| c.id == id)
    }

    /// The label of `case` by `rater`, or its reference label ([`Manifest::reference_label`])
    /// when `rater` is `None`.
    pub fn label<'a>(&self, case: &'a CaseEntry, rater: Option<&str>) -> Option<(&'a str, &'a Path)> {
        match rater {
            Some(r) => case.labels.get_key_value(r).map(|(k, v)| (k.as_str(), v.as_path())),
            None => self.reference_label(case),
        }
    }

    /// The ground-truth label of `case`: its centre's reference rater's, or its only label.
    pub fn reference_label<'a>(&self, case: &'a CaseEntry) -> Option<(&'a str, &'a Path)> {
        let rater = self.centre(&case.centre).and_then(|c| c.reference_rater.as_deref());
        match rater {
            Some(r) => case.labels.get_key_value(r).map(|(k, v)| (k.as_str(), v.as_path())),
            None if case.labels.len() == 1 => case.labels.iter().next().map(|(k, v)| (k.as_str(), v.as_path())),
            None => None,
        }
    }
}

impl ManifestFile {
    /// Every structural problem: duplicate ids, unknown centres and raters, empty ids.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let centres = unique_ids(self.centres.iter().map(|c| c.id.as_str()), "centre", &mut out);
        let raters = unique_ids(self.raters.iter().map(|r| r.id.as_str()), "rater", &mut out);
        unique_ids(self.cases.iter().map(|c| c.id.as_str()), "case", &mut out);
        if self.centres.is_empty() {
            out.push("no centre".into());
        }
        for c in &self.centres {
            if let Some(r) = &c.reference_rater {
                if !raters.is_empty() && !raters.contains(r.as_str()) {
                    out.push(format!("centre {}: reference_rater {r:?} is not in raters", c.id));
                }
            }
        }
        for case in &self.cases {
            if !centres.contains(case.centre.as_str()) {
                out.push(format!("case {}: unknown centre {:?}", case.id, case.centre));
            }
            for r in case
                .labels
                .keys()
                .filter(|r| !raters.is_empty() && !raters.contains(r.as_str()))
            {
                out.push(format!("case {}: label by unknown rater {r:?}", case.id));
            }
        }
        out
    }

    fn resolve_paths(&mut self, root: &Path) {
        for case in &mut self.cases {
            case.image = root.join(&case.image);
            for p in case.labels.values_mut() {
                *p = root.join(&*p);
            }
        }
    }

    /// Writes the manifest as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let json = serde_json::to_string_pretty(self).map_err(|cause| Error::Json {
            path: path.into(),
            cause,
        })?;
        crate::fsutil::write_bytes_atomic(path, json.as_bytes()).map_err(|cause| Error::Io {
            path: path.into(),
            cause,
        })
    }
}

fn unique_ids<'a>(ids: impl Iterator<Item = &'a str>, what: &str, out: &mut Vec<String>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if id.trim().is_empty() {
            out.push(format!("a {what} has an empty id"));
        } else if !seen.insert(id) {
            out.push(format!("{what} id {id:?} appears twice"));
        }
    }
    seen
}
