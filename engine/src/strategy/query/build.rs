//! Building a [`CandidatePool`] with a model: one forward pass per slice (plus `T`
//! MC-dropout passes when a strategy needs uncertainty), computing only what [`Needs`] asks.

use burn::tensor::backend::Backend;

use super::{Candidate, CandidatePool, Needs, Scores, Unit};
use crate::dataset::CaseEntry;
use crate::infer::{
    predict_prepared, slice_descriptors, slice_probabilities, DescriptorConfig, PredictOptions, Prediction, Reduction,
};
use crate::model::checkpoint::ModelCard;
use crate::model::UNet2d;
use crate::preprocess::{prepare, Prepared};
use crate::rng::Rng;
use crate::train::Augmentation;
use crate::volume::{self, Volume};

/// How the pool is computed.
#[derive(Debug, Clone)]
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
    /// The augmentation of the descriptor's slices when `descriptor.augment` is set (the source
    /// training's, as the reference code). METHOD.md step 3's.
    pub augmentation: Augmentation,
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
            augmentation: Augmentation::default(),
        }
    }
}

/// One row per axial slice of every case in `cases`, in order ([`score_volume`] for each).
pub fn build_pool<B: Backend>(
    model: &UNet2d<B>,
    card: &ModelCard,
    cases: &[&CaseEntry],
    options: &PoolOptions,
) -> Result<CandidatePool, volume::Error> {
    let mut rows = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let image = volume::read_volume(&case.image)?;
        let (_, case_rows) = score_volume(model, card, &image, (&case.id, &case.centre), index as u64, options);
        rows.extend(case_rows);
    }
    Ok(CandidatePool {
        unit: Unit::Slice,
        rows,
    })
}

/// The prediction of `image` and its pool rows, one per axial slice, computing only what
/// `options.needs` asks. Descriptors double as the feature vectors of the clustering strategies
/// (UGTST, coreset). With `descriptor.augment` they come from a second pass over the slices
/// augmented with `options.augmentation` (each slice's draws from the seed, `stream` and the
/// slice index); every other score from the slices as they are.
pub fn score_volume<B: Backend>(
    model: &UNet2d<B>,
    card: &ModelCard,
    image: &Volume,
    (case, centre): (&str, &str),
    stream: u64,
    options: &PoolOptions,
) -> (Prediction, Vec<Candidate>) {
    let n = options.needs;
    let uncertain = n.entropy || n.bald || n.margin;
    let describe = n.stdr || n.features;
    let augmented = describe && options.descriptor.augment;
    let predict = PredictOptions {
        batch: options.batch.max(1),
        mc_samples: if uncertain { options.mc_samples.max(1) } else { 0 },
        reduction: options.reduction,
        descriptor: (describe && !augmented).then_some(options.descriptor),
        seed: options.seed,
        parts: crate::device::inference_parts::<B>(),
    };
    let prepared = prepare(image, &card.preprocessing);
    let mut p = predict_prepared(model, &prepared, card.architecture.classes, &predict);
    if augmented {
        p.descriptors = Some(augmented_descriptors(model, card, &prepared, options, stream));
    }
    let rows = (0..image.geometry.dims[2])
        .map(|k| {
            let u = p.uncertainty.as_ref();
            let descriptor = p
                .descriptors
                .as_ref()
                .and_then(|d| d.get(k).cloned())
                .unwrap_or_default();
            Candidate {
                case: case.to_string(),
                centre: centre.to_string(),
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
            }
        })
        .collect();
    (p, rows)
}

/// The descriptors of `prepared`'s slices, each augmented first with `options.augmentation`
/// (no label: the geometric transforms move the image alone) from its own stream of the seed.
fn augmented_descriptors<B: Backend>(
    model: &UNet2d<B>,
    card: &ModelCard,
    prepared: &Prepared,
    options: &PoolOptions,
    stream: u64,
) -> Vec<Vec<f32>> {
    let size = prepared.size;
    let mut slices = prepared.slices.clone();
    let mut label = vec![0u8; size * size];
    for (k, slice) in slices.chunks_exact_mut(size * size).enumerate() {
        let mut rng = Rng::derive(options.seed, &[0x6465_7363, stream, k as u64]);
        options.augmentation.apply(slice, &mut label, size, &mut rng);
    }
    let (probs, features) = slice_probabilities(
        model,
        &slices,
        size,
        (options.batch.max(1), crate::device::inference_parts::<B>()),
        false,
        true,
    );
    let classes = card.architecture.classes;
    slice_descriptors(
        &probs,
        &features.unwrap_or_default(),
        size,
        classes,
        &options.descriptor,
    )
}
