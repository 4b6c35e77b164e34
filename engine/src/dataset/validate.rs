//! `delinea validate`: open every file a manifest names and report every problem.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::{CaseEntry, Manifest};
use crate::volume;

/// One problem with one file of one case.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// The case id.
    pub case: String,
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// What [`validate`] found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ValidationReport {
    /// Cases in the manifest.
    pub cases: usize,
    /// Label files in the manifest.
    pub labels: usize,
    /// Cases per centre and split, e.g. `{"C1": {"train": 8, "test": 4}}`.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    /// Every problem, in case order.
    pub problems: Vec<Problem>,
}

impl ValidationReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads every image and label of `manifest` (in parallel over cases) and checks that each
/// label lies on its image's grid.
pub fn validate(manifest: &Manifest) -> ValidationReport {
    let cases = manifest.cases();
    let problems: Vec<Problem> = cases.par_iter().flat_map_iter(check_case).collect();
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for c in cases {
        *counts
            .entry(c.centre.clone())
            .or_default()
            .entry(c.split.to_string())
            .or_default() += 1;
    }
    let labels = cases.iter().map(|c| c.labels.len()).sum();
    ValidationReport {
        cases: cases.len(),
        labels,
        counts,
        problems,
    }
}

fn check_case(case: &CaseEntry) -> Vec<Problem> {
    let image = match volume::read_volume(&case.image) {
        Ok(v) => v.geometry,
        Err(e) => {
            let first = Problem {
                case: case.id.clone(),
                file: case.image.clone(),
                message: e.to_string(),
            };
            return std::iter::once(first).chain(labels_only(case)).collect();
        }
    };
    case.labels
        .iter()
        .filter_map(|(rater, path)| {
            volume::read_label_map_for(path, &case.image, &image)
                .err()
                .map(|e| Problem {
                    case: case.id.clone(),
                    file: path.clone(),
                    message: format!("label by {rater}: {e}"),
                })
        })
        .collect()
}

/// Problems of the labels of a case whose image is unreadable (still worth reporting).
fn labels_only(case: &CaseEntry) -> Vec<Problem> {
    case.labels
        .iter()
        .filter_map(|(rater, path)| {
            volume::read_label_map(path).err().map(|e| Problem {
                case: case.id.clone(),
                file: path.clone(),
                message: format!("label by {rater}: {e}"),
            })
        })
        .collect()
}
