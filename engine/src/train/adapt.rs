//! Executing an [`AdaptPlan`] that fine-tunes: the selection's slices with their true labels,
//! the other target slices with the source model's argmax as pseudo-labels (METHOD.md step
//! 7), or every target slice with true labels (the supervised bound).
//!
//! AdaBN re-estimates the batch-norm running statistics with forward passes over the target's
//! training slices (no gradient). Batch-norm-only training (Tent) is refused with
//! [`AdaptError::Unsupported`] until the trainer can run it.

use std::collections::BTreeSet;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use super::{CaseFilter, Event, SliceSet, TrainConfig, TrainError, Trainer, TrainingData, TrainingLog};
use crate::dataset::{Manifest, Split};
use crate::infer::slice_probabilities;
use crate::model::checkpoint::{self, ModelCard};
use crate::model::UNet2d;
use crate::strategy::adapt::{AdaptPlan, BatchNorm, LabelSource, LossTerm, Rows, Trainable};
use crate::strategy::query::Selection;
use burn::module::Module;

/// Why a plan could not be executed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdaptError {
    /// The plan asks for something the trainer cannot do yet.
    #[error("adaptation strategy {strategy}: {what} is not supported by the trainer yet")]
    Unsupported {
        /// The strategy.
        strategy: String,
        /// What is missing.
        what: String,
    },
    /// A selected row names a case that is not in the target's training split.
    #[error("selection row {rank}: case {case} is not a training case of {target}")]
    UnknownCase {
        /// The row's rank.
        rank: usize,
        /// The case id.
        case: String,
        /// The target centre.
        target: String,
    },
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] super::Error),
    /// The source checkpoint could not be read or the result written.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
}

/// Checks that the trainer can run `plan` (whole-network training with the segmentation
/// loss and ordinary batch norm, on true or pseudo labels).
pub fn check_supported(plan: &AdaptPlan) -> Result<(), AdaptError> {
    let unsupported = |what: &str| {
        Err(AdaptError::Unsupported {
            strategy: plan.strategy.clone(),
            what: what.into(),
        })
    };
    if plan.schedule.iterations > 0 && plan.trainable != Trainable::All {
        return unsupported("training only some parameters");
    }
    if plan.batch_norm == BatchNorm::BatchStatistics {
        return unsupported("normalising with batch statistics at test time");
    }
    if plan.batch_norm == BatchNorm::Reestimate {
        return Ok(()); // AdaBN: forward passes only, whatever the data's labels
    }
    if plan.loss.iter().any(|l| !matches!(l, LossTerm::Segmentation { .. })) {
        return unsupported("a loss other than the segmentation loss");
    }
    if plan.data.iter().any(|d| d.labels == LabelSource::Unlabelled) {
        return unsupported("unlabelled data");
    }
    Ok(())
}

/// What an adaptation starts from.
#[derive(Debug, Clone, Copy)]
pub struct AdaptInputs<'a> {
    /// The plan to run.
    pub plan: &'a AdaptPlan,
    /// The labelled selection.
    pub selection: &'a Selection,
    /// The manifest holding the target's images and labels.
    pub manifest: &'a Manifest,
    /// The source checkpoint folder.
    pub source: &'a Path,
    /// Whose labels are the truth (a rater domain); `None`: the target's reference rater.
    pub rater: Option<&'a str>,
}

/// Runs the plan from the source checkpoint on the target's training split and writes the
/// adapted checkpoint into `out`. `config` gives the details beyond the plan (augmentation,
/// seed, batch sizes); its model and preprocessing are the source card's.
pub fn execute<B: AutodiffBackend>(
    inputs: AdaptInputs,
    config: TrainConfig,
    out: &Path,
    device: B::Device,
    progress: impl FnMut(&Event),
) -> Result<TrainingLog, AdaptError> {
    let AdaptInputs {
        plan,
        selection,
        manifest,
        source,
        rater,
    } = inputs;
    check_supported(plan)?;
    let (model, card) = checkpoint::load::<B>(source, &device)?;
    let config = TrainConfig {
        iterations: plan.schedule.iterations,
        batch: plan.schedule.batch,
        lr: plan.schedule.lr,
        momentum: plan.schedule.momentum,
        weight_decay: plan.schedule.weight_decay,
        poly_power: plan.schedule.poly_power,
        model: card.architecture.clone(),
        preprocessing: card.preprocessing.clone(),
        ..config
    };
    if plan.batch_norm == BatchNorm::Reestimate || plan.schedule.iterations == 0 {
        // No gradient step: AdaBN moves only the batch-norm statistics; `none` keeps the
        // source model as it is.
        let model = if plan.batch_norm == BatchNorm::Reestimate {
            reestimate_batch_norm(model, manifest, &plan.target, &card, config.inference_batch)?
        } else {
            model
        };
        checkpoint::save(out, &model.valid(), &card)?;
        let log = TrainingLog {
            config,
            events: vec![],
            best_val_dsc: None,
            best_iteration: 0,
            wall_seconds: 0.0,
        };
        return Ok(log);
    }
    let filter = CaseFilter {
        centres: vec![plan.target.clone()],
        split: Split::Train,
        rater: rater.map(String::from),
    };
    let all = SliceSet::load(manifest, &filter, &card.preprocessing)?;
    let selected = selected_rows(&all, selection, &plan.target)?;
    let mut train: Option<SliceSet> = None;
    for source in &plan.data {
        let rows: Vec<usize> = (0..all.len())
            .filter(|i| match source.rows {
                Rows::Selected => selected.contains(i),
                Rows::Unselected => !selected.contains(i),
                Rows::All => true,
            })
            .collect();
        let mut part = all.subset(&rows);
        if source.labels == LabelSource::Pseudo {
            pseudo_label(&model.valid(), &card, &mut part, config.inference_batch);
        }
        match train.as_mut() {
            Some(t) => t.extend(part),
            None => train = Some(part),
        }
    }
    let train = train.unwrap_or_else(|| all.subset(&[]));
    let data = TrainingData {
        manifest: manifest.path.clone(),
        centres: vec![plan.target.clone()],
        rater: rater.map(String::from),
        train,
        val: Vec::new(), // a target hospital has no labelled validation set beyond its selection
    };
    let trainer = Trainer::<B>::new(config, device)?;
    let (_, log) = trainer.fit_from(Some(model), &data, out, progress)?;
    Ok(log)
}

/// AdaBN: one pass of training-mode forwards over every training slice of `target` (images
/// only: labels are not needed), so each batch-norm layer's running statistics move to the
/// target's, as an exponential average with the layer's momentum. Dropout is active during
/// the pass, as in training.
fn reestimate_batch_norm<B: AutodiffBackend>(
    model: UNet2d<B>,
    manifest: &Manifest,
    target: &str,
    card: &ModelCard,
    batch: usize,
) -> Result<UNet2d<B>, AdaptError> {
    let device = model.devices().into_iter().next().unwrap_or_default();
    let size = card.preprocessing.slice_size;
    let px = size * size;
    let cases = manifest
        .cases()
        .iter()
        .filter(|c| c.split == Split::Train && c.centre == target);
    for case in cases {
        let image = crate::volume::read_volume(&case.image).map_err(|source| super::Error::Volume {
            case: case.id.clone(),
            source,
        })?;
        let prepared = crate::preprocess::prepare(&image, &card.preprocessing);
        for chunk in prepared.slices.chunks(batch.max(1) * px) {
            let b = chunk.len() / px;
            let x = burn::tensor::Tensor::<B, 4>::from_data(
                burn::tensor::TensorData::new(chunk.to_vec(), [b, 1, size, size]),
                &device,
            ); // [b, 1, N, N]
            let _ = model.forward(x); // updates the running statistics; no backward
        }
    }
    Ok(model)
}

/// Indices into `all` of the selection's rows (a volume row selects all its slices).
fn selected_rows(all: &SliceSet, selection: &Selection, target: &str) -> Result<BTreeSet<usize>, AdaptError> {
    let mut out = BTreeSet::new();
    for item in &selection.items {
        let Some(case) = all.cases.iter().position(|c| *c == item.case) else {
            return Err(AdaptError::UnknownCase {
                rank: item.rank,
                case: item.case.clone(),
                target: target.into(),
            });
        };
        out.extend(
            (0..all.len()).filter(|i| all.slices[*i].case == case && item.slice.is_none_or(|k| all.slices[*i].k == k)),
        );
    }
    Ok(out)
}

/// Replaces every slice's labels by the model's argmax (computed once, before adaptation).
fn pseudo_label<B: burn::tensor::backend::Backend>(
    model: &UNet2d<B>,
    card: &ModelCard,
    set: &mut SliceSet,
    batch: usize,
) {
    let (size, classes) = (set.size, card.architecture.classes);
    let px = size * size;
    let (probs, _) = slice_probabilities(model, &set.images, size, batch, false, false);
    for i in 0..set.len() {
        let p = &probs[i * classes * px..(i + 1) * classes * px];
        let labels: Vec<u8> = (0..px)
            .map(|j| {
                (0..classes)
                    .max_by(|a, b| p[a * px + j].total_cmp(&p[b * px + j]))
                    .unwrap_or(0)
                    .min(255) as u8
            })
            .map(|c| u8::from(c > 0))
            .collect();
        set.set_labels(i, &labels);
    }
}
