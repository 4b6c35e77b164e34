//! Building a [`CandidatePool`] with a model: one forward pass per slice (plus `T`
//! MC-dropout passes when a strategy needs uncertainty), computing only what [`Needs`] asks.

use burn::tensor::backend::Backend;

use super::{Candidate, CandidatePool, Needs, Scores, Unit};
use crate::dataset::CaseEntry;
use crate::infer::{predict_volume, DescriptorConfig, PredictOptions, Reduction};
use crate::model::checkpoint::ModelCard;
use crate::model::UNet2d;
use crate::volume;

/// How the pool is computed.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// What the strategy reads.
    pub needs: Needs,
    /// MC-dropout samples when uncertainty is needed (METHOD.md does not fix it; 8).
    pub mc_samples: usize,
    /// How pixel uncertainty becomes a slice score. Mean.
    pub reduction: Reduction,
    /// Slices per forward pass.
    pub batch: usize,
    /// Seed of the dropout masks.
    pub seed: u64,
    /// How STDR descriptors (and the clustering strategies' features) are computed; a query
    /// against reference points must use the references' own ([`References::descriptor`]).
    pub descriptor: DescriptorConfig,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            needs: Needs::default(),
            mc_samples: 8,
            reduction: Reduction::Mean,
            batch: 16,
            seed: 0,
            descriptor: DescriptorConfig::default(),
        }
    }
}

/// One row per axial slice of every case in `cases`, in order. Descriptors double as the
/// feature vectors of the clustering strategies (UGTST, coreset).
pub fn build_pool<B: Backend>(
    model: &UNet2d<B>,
    card: &ModelCard,
    cases: &[&CaseEntry],
    options: &PoolOptions,
) -> Result<CandidatePool, volume::Error> {
    let n = options.needs;
    let uncertain = n.entropy || n.bald || n.margin;
    let predict = PredictOptions {
        batch: options.batch.max(1),
        mc_samples: if uncertain { options.mc_samples.max(1) } else { 0 },
        reduction: options.reduction,
        descriptor: (n.stdr || n.features).then_some(options.descriptor),
        seed: options.seed,
        ..PredictOptions::default()
    };
    let mut rows = Vec::new();
    for case in cases {
        let image = volume::read_volume(&case.image)?;
        let p = predict_volume(model, &image, &card.preprocessing, card.architecture.classes, &predict);
        let slices = image.geometry.dims[2];
        for k in 0..slices {
            let u = p.uncertainty.as_ref();
            let descriptor = p
                .descriptors
                .as_ref()
                .and_then(|d| d.get(k).cloned())
                .unwrap_or_default();
            rows.push(Candidate {
                case: case.id.clone(),
                centre: case.centre.clone(),
                slice: Some(k),
                scores: Scores {
                    entropy: u.and_then(|u| u.slice_entropy.get(k).copied()),
                    bald: u.and_then(|u| u.slice_bald.get(k).copied()),
                    margin: u.and_then(|u| u.slice_margin.get(k).copied()),
                    tumour_area: Some(p.mask.axial(k).iter().filter(|v| **v > 0).count() as f32),
                    stdr_distance: None,
                },
                features: if n.features { descriptor.clone() } else { Vec::new() },
                descriptor,
            });
        }
    }
    Ok(CandidatePool {
        unit: Unit::Slice,
        rows,
    })
}
