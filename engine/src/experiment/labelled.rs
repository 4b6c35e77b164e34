//! What each query labelled: how many of the slices it selected hold tumour in the domain's
//! own labels (per reason: far and near for STDR), beside the share of tumour slices in the
//! pool it chose from. A query that labels few tumour slices teaches a model little about the
//! tumour; this is the first thing to look at when a query loses.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Domain, Error};
use crate::dataset::{Manifest, Split};
use crate::strategy::query::{Reason, Selection};
use crate::volume;

/// Slices, and how many of them hold tumour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TumourCount {
    /// Axial slices.
    pub slices: usize,
    /// Of which hold at least one tumour voxel in the domain's labels.
    pub tumour_slices: usize,
}

impl TumourCount {
    fn add(&mut self, tumour: bool) {
        self.slices += 1;
        self.tumour_slices += usize::from(tumour);
    }
}

/// One reason's share of a selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ReasonCount {
    /// Why those rows were picked.
    pub reason: Reason,
    /// Their slices.
    #[serde(flatten)]
    pub count: TumourCount,
}

/// What a query run labelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Labelled {
    /// Every labelled slice (a volume row counts all its slices).
    #[serde(flatten)]
    pub total: TumourCount,
    /// Per reason, in order of first appearance in the selection.
    pub by_reason: Vec<ReasonCount>,
}

impl Labelled {
    /// The count of one reason, when the selection has it.
    pub fn reason(&self, reason: Reason) -> Option<TumourCount> {
        self.by_reason.iter().find(|r| r.reason == reason).map(|r| r.count)
    }
}

/// Which axial slices of each of a domain's training cases hold tumour (its rater's labels).
#[derive(Debug, Clone)]
pub struct TumourSlices {
    cases: BTreeMap<String, Vec<bool>>,
}

impl TumourSlices {
    /// Reads the label of every case of `domain` in `split`.
    pub fn load(manifest: &Manifest, domain: &Domain, split: Split) -> Result<TumourSlices, Error> {
        let mut cases = BTreeMap::new();
        for case in domain.cases(manifest, split) {
            let Some((_, path)) = manifest.label(case, domain.rater.as_deref()) else {
                continue;
            };
            let label = volume::read_label_map(path)?;
            let slices = (0..label.geometry.dims[2])
                .map(|k| label.axial(k).iter().any(|v| *v > 0))
                .collect();
            cases.insert(case.id.clone(), slices);
        }
        Ok(TumourSlices { cases })
    }

    /// Cases read.
    pub fn volumes(&self) -> usize {
        self.cases.len()
    }

    /// Every slice read: for the training split, the pool a slice query chooses from.
    pub fn pool(&self) -> TumourCount {
        let mut count = TumourCount::default();
        self.cases.values().flatten().for_each(|t| count.add(*t));
        count
    }

    /// What `selection` labelled; rows of unknown cases or slices count as slices without
    /// tumour.
    pub fn labelled(&self, selection: &Selection) -> Labelled {
        let mut total = TumourCount::default();
        let mut by_reason: Vec<ReasonCount> = Vec::new();
        for item in &selection.items {
            let case = self.cases.get(&item.case).map(Vec::as_slice).unwrap_or_default();
            let slices: Vec<bool> = match item.slice {
                Some(k) => vec![case.get(k).copied().unwrap_or(false)],
                None => case.to_vec(),
            };
            let at = match by_reason.iter().position(|r| r.reason == item.reason) {
                Some(i) => i,
                None => {
                    by_reason.push(ReasonCount {
                        reason: item.reason,
                        count: TumourCount::default(),
                    });
                    by_reason.len() - 1
                }
            };
            for t in slices {
                total.add(t);
                by_reason[at].count.add(t);
            }
        }
        Labelled { total, by_reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::query::{selection, Candidate, CandidatePool, Scores, Unit};

    #[test]
    fn counts_tumour_slices_per_reason_and_whole_volumes() {
        let map = TumourSlices {
            cases: BTreeMap::from([("a".into(), vec![false, true, true]), ("b".into(), vec![true, false])]),
        };
        assert_eq!(
            map.pool(),
            TumourCount {
                slices: 5,
                tumour_slices: 3
            }
        );
        let row = |case: &str, slice: Option<usize>| Candidate {
            case: case.into(),
            centre: "C2".into(),
            slice,
            scores: Scores::default(),
            descriptor: vec![],
            features: vec![],
        };
        let pool = CandidatePool {
            unit: Unit::Slice,
            rows: vec![row("a", Some(0)), row("a", Some(1)), row("b", Some(0))],
        };
        let s = selection(
            "stdr",
            &pool,
            &[(1, None, Reason::Far), (0, None, Reason::Near), (2, None, Reason::Near)],
        );
        let l = map.labelled(&s);
        assert_eq!((l.total.slices, l.total.tumour_slices), (3, 2));
        assert_eq!(l.reason(Reason::Far).map(|c| c.tumour_slices), Some(1));
        assert_eq!(
            l.reason(Reason::Near),
            Some(TumourCount {
                slices: 2,
                tumour_slices: 1
            })
        );
        let volumes = CandidatePool {
            unit: Unit::Volume,
            rows: vec![row("a", None)],
        };
        let v = map.labelled(&selection("random", &volumes, &[(0, None, Reason::Random)]));
        assert_eq!(
            (v.total.slices, v.total.tumour_slices),
            (3, 2),
            "a volume row: all its slices"
        );
    }
}
