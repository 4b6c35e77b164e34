//! Scoring a model on a domain's test cases (METHOD.md step 8): each volume is predicted on
//! its own grid, the mask written, and the metrics computed against the domain's label (the
//! rater's, or the centre's reference rater's), distances in mm from the file's spacing.
//! A case that cannot be read becomes an `error` row, never a missing one.

use std::path::Path;

use burn::tensor::backend::Backend;

use super::Domain;
use crate::dataset::{CaseEntry, Manifest, Split};
use crate::infer::{predict_volume, PredictOptions};
use crate::metrics::{self, CaseResult, CaseStatus, Metrics};
use crate::model::checkpoint::ModelCard;
use crate::model::UNet2d;
use crate::volume;

/// A model with its card, and where its masks go.
pub struct Scorer<'a, B: Backend> {
    /// The model, in evaluation mode (a backend without autodiff).
    pub model: &'a UNet2d<B>,
    /// Its card (preprocessing, classes).
    pub card: &'a ModelCard,
    /// Folder of the masks, `<case>.nii.gz`.
    pub predictions: &'a Path,
    /// Slices per forward pass.
    pub batch: usize,
}

impl<B: Backend> Scorer<'_, B> {
    /// One row per test case of `domain`, in manifest order.
    pub fn domain(&self, manifest: &Manifest, domain: &Domain) -> Vec<CaseResult> {
        self.split(manifest, domain, Split::Test)
    }

    /// One row per case of `domain` in `split`, in manifest order.
    pub fn split(&self, manifest: &Manifest, domain: &Domain, split: Split) -> Vec<CaseResult> {
        domain
            .cases(manifest, split)
            .into_iter()
            .map(|case| self.case(manifest, domain, case))
            .collect()
    }

    fn case(&self, manifest: &Manifest, domain: &Domain, case: &CaseEntry) -> CaseResult {
        let label = manifest.label(case, domain.rater.as_deref());
        let mut row = CaseResult {
            case: case.id.clone(),
            centre: case.centre.clone(),
            rater: label.map(|l| l.0.to_string()).unwrap_or_default(),
            prediction: None,
            status: CaseStatus::NoLabel,
        };
        let Some((_, truth)) = label else { return row };
        let mask = self.predictions.join(format!("{}.nii.gz", case.id));
        row.status = match self.score(case, truth, &mask) {
            Ok(m) => {
                row.prediction = Some(mask);
                CaseStatus::Evaluated(Box::new(m))
            }
            Err(e) => CaseStatus::Error(e.to_string()),
        };
        row
    }

    fn score(&self, case: &CaseEntry, truth: &Path, mask: &Path) -> Result<Metrics, metrics::Error> {
        let image = volume::read_volume(&case.image)?;
        let truth = volume::read_label_map_for(truth, &case.image, &image.geometry)?;
        let options = PredictOptions {
            batch: self.batch,
            ..PredictOptions::default()
        };
        let classes = self.card.architecture.classes;
        let p = predict_volume(self.model, &image, &self.card.preprocessing, classes, &options);
        volume::write_label_map(mask, &p.mask)?;
        metrics::compute(&p.mask.binary(None), &truth.binary(None), &metrics::Options::default())
    }
}
