//! Training data: axial slices of a manifest's cases, preprocessed once and kept in memory,
//! and a seeded sampler of batches (with optional oversampling of slices that hold tumour).

use std::path::PathBuf;

use rayon::prelude::*;

use super::Augmentation;
use crate::dataset::{CaseEntry, Manifest, Split};
use crate::preprocess::{prepare, prepare_labels, Preprocessing};
use crate::rng::Rng;
use crate::volume;

/// Why training data could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A case's image or label could not be read.
    #[error("case {case}: {source}")]
    Volume {
        /// The case id.
        case: String,
        /// What went wrong, with the file.
        source: volume::Error,
    },
    /// A case has no ground truth for the requested rater.
    #[error("case {case}: no label by {rater} in {manifest}")]
    NoLabel {
        /// The case id.
        case: String,
        /// The rater asked for (or "the reference rater").
        rater: String,
        /// The manifest.
        manifest: PathBuf,
    },
    /// The selection matched no case.
    #[error("{manifest}: no case of centre(s) {centres:?} in split {split}")]
    Empty {
        /// The manifest.
        manifest: PathBuf,
        /// The centres asked for.
        centres: Vec<String>,
        /// The split asked for.
        split: Split,
    },
}

/// Which cases, and whose labels.
#[derive(Debug, Clone)]
pub struct CaseFilter {
    /// Centre ids (empty: every centre).
    pub centres: Vec<String>,
    /// The split.
    pub split: Split,
    /// The rater whose labels to use; `None`: each centre's reference rater.
    pub rater: Option<String>,
}

/// Preprocessed slices of several cases: `images` and `labels` are `[n, size, size]`.
#[derive(Debug, Clone)]
pub struct SliceSet {
    /// Slice side `N`.
    pub size: usize,
    /// Normalised intensities, `[n, N, N]`.
    pub images: Vec<f32>,
    /// Labels (0 background, 1 tumour), `[n, N, N]`.
    pub labels: Vec<u8>,
    /// One entry per slice.
    pub slices: Vec<SliceRef>,
    /// Case ids, indexed by [`SliceRef::case`].
    pub cases: Vec<String>,
}

/// Where a slice comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceRef {
    /// Index into [`SliceSet::cases`].
    pub case: usize,
    /// Axial slice index `k` in the case's (working) grid.
    pub k: usize,
    /// Tumour pixels in the resized slice.
    pub tumour_pixels: usize,
}

impl SliceSet {
    /// Reads, preprocesses and slices every case of `manifest` that `filter` selects (in
    /// parallel over cases; slices keep the manifest's case order).
    pub fn load(manifest: &Manifest, filter: &CaseFilter, prep: &Preprocessing) -> Result<SliceSet, Error> {
        Self::load_with(manifest, filter, prep, &|_| true)
    }

    /// As [`SliceSet::load`], reading labels only for the cases in `labelled` (the others need
    /// none; their labels are 0). For adaptation where only the selection's labels are true.
    pub fn load_labelled(
        manifest: &Manifest,
        filter: &CaseFilter,
        prep: &Preprocessing,
        labelled: &std::collections::BTreeSet<String>,
    ) -> Result<SliceSet, Error> {
        Self::load_with(manifest, filter, prep, &|c| labelled.contains(&c.id))
    }

    /// As [`SliceSet::load`], images only: no label file is opened (cases need none), every
    /// label is 0 and `filter.rater` is ignored. For label-free adaptation (Tent, AdaBN).
    pub fn load_images(manifest: &Manifest, filter: &CaseFilter, prep: &Preprocessing) -> Result<SliceSet, Error> {
        Self::load_with(manifest, filter, prep, &|_| false)
    }

    fn load_with(
        manifest: &Manifest,
        filter: &CaseFilter,
        prep: &Preprocessing,
        labelled: &(dyn Fn(&CaseEntry) -> bool + Sync),
    ) -> Result<SliceSet, Error> {
        let cases: Vec<&CaseEntry> = manifest
            .cases()
            .iter()
            .filter(|c| c.split == filter.split && (filter.centres.is_empty() || filter.centres.contains(&c.centre)))
            .collect();
        if cases.is_empty() {
            let (centres, split) = (filter.centres.clone(), filter.split);
            return Err(Error::Empty {
                manifest: manifest.path.clone(),
                centres,
                split,
            });
        }
        let loaded: Vec<(Vec<f32>, Vec<u8>)> = cases
            .par_iter()
            .map(|c| load_case(manifest, c, filter, prep, labelled(c)))
            .collect::<Result<_, _>>()?;
        let size = prep.slice_size;
        let mut set = SliceSet::empty(size);
        for (case, (images, labels)) in cases.iter().zip(loaded) {
            let index = set.cases.len();
            set.cases.push(case.id.clone());
            for (k, lab) in labels.chunks_exact(size * size).enumerate() {
                let tumour_pixels = lab.iter().filter(|v| **v > 0).count();
                set.slices.push(SliceRef {
                    case: index,
                    k,
                    tumour_pixels,
                });
            }
            set.images.extend_from_slice(&images);
            set.labels.extend_from_slice(&labels);
        }
        Ok(set)
    }

    /// No slice, of side `size`.
    pub fn empty(size: usize) -> SliceSet {
        SliceSet {
            size,
            images: vec![],
            labels: vec![],
            slices: vec![],
            cases: vec![],
        }
    }

    /// Sets every label to 0 (background), so that nothing downstream can read one.
    pub fn clear_labels(&mut self) {
        self.labels.fill(0);
        for s in &mut self.slices {
            s.tumour_pixels = 0;
        }
    }

    /// The slices `indices` (in that order), with their case list kept whole.
    pub fn subset(&self, indices: &[usize]) -> SliceSet {
        let n = self.size * self.size;
        let mut out = SliceSet {
            cases: self.cases.clone(),
            ..SliceSet::empty(self.size)
        };
        for &i in indices {
            out.images.extend_from_slice(&self.images[i * n..(i + 1) * n]);
            out.labels.extend_from_slice(&self.labels[i * n..(i + 1) * n]);
            out.slices.push(self.slices[i]);
        }
        out
    }

    /// Appends every slice of `other` (same slice size), re-indexing its cases.
    pub fn extend(&mut self, other: SliceSet) {
        let offset = self.cases.len();
        self.cases.extend(other.cases);
        self.images.extend(other.images);
        self.labels.extend(other.labels);
        self.slices.extend(other.slices.into_iter().map(|s| SliceRef {
            case: s.case + offset,
            ..s
        }));
    }

    /// Replaces the labels of slice `i` (`size * size` values) and recounts its tumour.
    pub fn set_labels(&mut self, i: usize, labels: &[u8]) {
        let n = self.size * self.size;
        self.labels[i * n..(i + 1) * n].copy_from_slice(labels);
        self.slices[i].tumour_pixels = labels.iter().filter(|v| **v > 0).count();
    }

    /// Number of slices.
    pub fn len(&self) -> usize {
        self.slices.len()
    }

    /// True when there is no slice.
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Slices `indices` as one batch `([B, N, N] images, [B, N, N] labels)`, augmented with
    /// `aug` drawing from `rng`.
    pub fn batch(&self, indices: &[usize], aug: &Augmentation, rng: &mut Rng) -> (Vec<f32>, Vec<u8>) {
        let n = self.size * self.size;
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            let mut img = self.images[i * n..(i + 1) * n].to_vec();
            let mut lab = self.labels[i * n..(i + 1) * n].to_vec();
            aug.apply(&mut img, &mut lab, self.size, rng);
            images.extend_from_slice(&img);
            labels.extend_from_slice(&lab);
        }
        (images, labels)
    }

    /// `batch` slice indices drawn with replacement: with probability `tumour_fraction` from
    /// the slices that hold tumour (when there are any), otherwise from all slices.
    pub fn sample(&self, batch: usize, tumour_fraction: f64, rng: &mut Rng) -> Vec<usize> {
        let tumour: Vec<usize> = (0..self.len()).filter(|i| self.slices[*i].tumour_pixels > 0).collect();
        (0..batch)
            .map(|_| {
                if !tumour.is_empty() && rng.chance(tumour_fraction) {
                    tumour[rng.below(tumour.len())]
                } else {
                    rng.below(self.len())
                }
            })
            .collect()
    }
}

fn load_case(
    manifest: &Manifest,
    case: &CaseEntry,
    filter: &CaseFilter,
    prep: &Preprocessing,
    labelled: bool,
) -> Result<(Vec<f32>, Vec<u8>), Error> {
    let with_case = |source| Error::Volume {
        case: case.id.clone(),
        source,
    };
    if !labelled {
        let image = volume::read_volume(&case.image).map_err(with_case)?;
        let slices = prepare(&image, prep).slices;
        let labels = vec![0; slices.len()];
        return Ok((slices, labels));
    }
    let label_path = manifest.label(case, filter.rater.as_deref()).map(|(_, p)| p);
    let label_path = label_path.ok_or_else(|| Error::NoLabel {
        case: case.id.clone(),
        rater: filter.rater.clone().unwrap_or_else(|| "the reference rater".into()),
        manifest: manifest.path.clone(),
    })?;
    let image = volume::read_volume(&case.image).map_err(with_case)?;
    let labels = volume::read_label_map_for(label_path, &case.image, &image.geometry).map_err(with_case)?;
    let prepared = prepare(&image, prep);
    let binary = labels.binary(None);
    Ok((prepared.slices.clone(), prepare_labels(&binary, &prepared)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    #[test]
    fn loads_a_synthetic_centre_and_oversamples_tumour() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = synth::Config {
            centres: 2,
            cases_per_centre: 5,
            multi_rater_cases: 0,
            size: [32, 32, 8],
            ..Default::default()
        };
        synth::generate(dir.path(), &cfg, &|| {}).unwrap();
        let manifest = Manifest::load(&dir.path().join("manifest.json")).unwrap();
        let filter = CaseFilter {
            centres: vec!["C1".into()],
            split: Split::Train,
            rater: None,
        };
        let prep = Preprocessing {
            slice_size: 32,
            ..Default::default()
        };
        let set = SliceSet::load(&manifest, &filter, &prep).unwrap();
        assert_eq!(set.cases.len(), 3, "60 % of 5 cases are training cases");
        assert_eq!(set.len(), 3 * 8);
        assert_eq!(set.images.len(), set.len() * 32 * 32);
        assert!(set.labels.iter().all(|v| *v <= 1));
        let with_tumour = set.slices.iter().filter(|s| s.tumour_pixels > 0).count();
        assert!(with_tumour > 0 && with_tumour < set.len());
        let mut rng = Rng::new(1);
        let drawn = set.sample(400, 1.0, &mut rng);
        assert!(drawn.iter().all(|i| set.slices[*i].tumour_pixels > 0));
        // Fraction 0 (the adaptation default, as the reference code): uniform over every slice.
        let uniform = set.sample(24_000, 0.0, &mut rng);
        let mut hits = vec![0usize; set.len()];
        uniform.iter().for_each(|i| hits[*i] += 1);
        assert!(
            hits.iter().all(|h| (800..1200).contains(h)),
            "each of 24 slices drawn about 1000 times: {hits:?}"
        );
        let (imgs, labs) = set.batch(&drawn[..4], &Augmentation::default(), &mut rng);
        assert_eq!((imgs.len(), labs.len()), (4 * 32 * 32, 4 * 32 * 32));
        let missing = CaseFilter {
            centres: vec!["C9".into()],
            ..filter.clone()
        };
        assert!(SliceSet::load(&manifest, &missing, &prep)
            .unwrap_err()
            .to_string()
            .contains("C9"));
        let rater = CaseFilter {
            rater: Some("R7".into()),
            ..filter
        };
        assert!(SliceSet::load(&manifest, &rater, &prep)
            .unwrap_err()
            .to_string()
            .contains("no label by R7"));
        // Images only: the same images, no label read, none needed.
        let images = SliceSet::load_images(&manifest, &rater, &prep).unwrap();
        assert_eq!((&images.images, images.len()), (&set.images, set.len()));
        assert!(images.labels.iter().all(|v| *v == 0) && images.slices.iter().all(|s| s.tumour_pixels == 0));
    }
}
