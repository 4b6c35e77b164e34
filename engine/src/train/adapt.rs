//! Executing an [`AdaptPlan`] (METHOD.md step 7 and "Baselines"):
//! - fine-tuning (every weight, segmentation loss): the selection's slices with their true
//!   labels, the other target slices with the source model's argmax as pseudo-labels, or every
//!   target slice with true labels (the supervised bound);
//! - Tent: only the batch-norm scale and shift train, to minimise the normalised prediction
//!   entropy of the target's unlabelled training slices, every forward pass normalising with
//!   its batch's statistics (no label is read: the slices are loaded as images only);
//! - AdaBN: no gradient step, the batch-norm running statistics re-estimated on the target;
//! - none: the source model as it is.
//!
//! What the saved model holds. Evaluation uses the running statistics, so whenever a plan
//! normalises with batch statistics (Tent's [`BatchNorm::BatchStatistics`]) or re-estimates
//! them (AdaBN), the running statistics are set, after the last step, to the average of the
//! batch statistics over one pass through the plan's data with the final weights (each batch
//! weighted by its size, the source statistics forgotten). A Tent model thus carries "AdaBN +
//! affine": its trained scale and shift and the target's statistics, a fixed approximation of
//! Tent's test-time batch statistics.

use std::collections::BTreeSet;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use super::{
    CaseFilter, Event, Objective, SliceSet, TrainConfig, TrainError, Trainer, TrainingData, TrainingLog, ValCase,
};
use crate::dataset::{Manifest, Split};
use crate::infer::slice_probabilities;
use crate::model::checkpoint::{self, ModelCard};
use crate::model::{train_only_batch_norm_affine, UNet2d};
use crate::strategy::adapt::{AdaptPlan, BatchNorm, LabelSource, LossTerm, Rows, SelectCheckpoint, Trainable};
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
    /// Checkpoint selection on the target's validation split, without labelled validation cases.
    #[error(
        "adaptation strategy {strategy}: keeping the best checkpoint on {target}'s validation split needs \
         labelled validation cases of {target}{}, and there are none (keep the last weights instead)",
        .rater.as_ref().map(|r| format!(" (rater {r})")).unwrap_or_default()
    )]
    NoValidation {
        /// The strategy.
        strategy: String,
        /// The target centre.
        target: String,
        /// Whose labels.
        rater: Option<String>,
    },
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
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

/// Checks that the trainer can run `plan`: gradient steps (unless the plan re-estimates
/// statistics only) that train every weight or only the batch-norm scale and shift, with one
/// loss term of weight 1: the segmentation loss on labelled data, or the prediction entropy.
pub fn check_supported(plan: &AdaptPlan) -> Result<(), AdaptError> {
    if !takes_steps(plan) {
        return Ok(()); // none or AdaBN: forward passes only, whatever the data's labels
    }
    if plan.trainable == Trainable::Nothing {
        return Err(unsupported(plan, "gradient steps that train no parameter"));
    }
    let two_stage = plan.data.iter().any(|d| d.labels == LabelSource::PseudoFromFinetuned);
    if two_stage && !plan.data.iter().any(|d| d.labels == LabelSource::True) {
        return Err(unsupported(
            plan,
            "pseudo-labels from a fine-tuned model without a true-labelled source to fine-tune it on first",
        ));
    }
    objective(plan).map(|_| ())
}

/// Whether the plan takes gradient steps (AdaBN's re-estimation takes none, whatever its
/// schedule says).
fn takes_steps(plan: &AdaptPlan) -> bool {
    plan.schedule.iterations > 0 && plan.batch_norm != BatchNorm::Reestimate
}

fn unsupported(plan: &AdaptPlan, what: &str) -> AdaptError {
    AdaptError::Unsupported {
        strategy: plan.strategy.clone(),
        what: what.into(),
    }
}

/// What the trainer minimises for `plan`'s loss terms.
fn objective(plan: &AdaptPlan) -> Result<Objective, AdaptError> {
    match plan.loss.as_slice() {
        [LossTerm::Segmentation { weight }] if *weight == 1.0 => {
            if plan.data.iter().any(|d| d.labels == LabelSource::Unlabelled) {
                return Err(unsupported(plan, "the segmentation loss on unlabelled data"));
            }
            Ok(Objective::Segmentation)
        }
        [LossTerm::Entropy { weight }] if *weight == 1.0 => Ok(Objective::Entropy),
        [] => Err(unsupported(plan, "gradient steps without a loss term")),
        [_] => Err(unsupported(
            plan,
            "a loss weight other than 1 (with one term it only rescales the learning rate)",
        )),
        _ => Err(unsupported(plan, "more than one loss term")),
    }
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
/// sampling, seed, inference batch); its model and preprocessing are the source card's, its
/// optimiser, schedule and checkpoint selection the plan's. With `best_target_val` the target's
/// validation split (the domain's rater's labels) picks the checkpoint. Tent's steps see the
/// slices without augmentation. A plan with pseudo-labels from the fine-tuned model runs in two
/// stages ([`LabelSource::PseudoFromFinetuned`]); the first stage's checkpoint and log are kept in
/// `out/stage-1`.
pub fn execute<B: AutodiffBackend>(
    inputs: AdaptInputs,
    config: TrainConfig,
    out: &Path,
    device: B::Device,
    mut progress: impl FnMut(&Event),
) -> Result<TrainingLog, AdaptError> {
    let plan = inputs.plan;
    check_supported(plan)?;
    if plan.data.iter().any(|d| d.labels == LabelSource::PseudoFromFinetuned) {
        return two_stages::<B>(inputs, config, out, device, &mut progress);
    }
    let (model, card) = checkpoint::load::<B>(inputs.source, &device)?;
    let config = plan_config(plan, config, &card)?;
    let train = plan_data(&inputs, &card, &model, config.inference_batch)?;
    let reestimate = matches!(plan.batch_norm, BatchNorm::Reestimate | BatchNorm::BatchStatistics);
    if !takes_steps(plan) {
        // `none` keeps the source model as it is; AdaBN moves only the statistics.
        let model = match reestimate {
            true => reestimate_batch_norm(model, &train, config.inference_batch, config.seed),
            false => model,
        };
        checkpoint::save(out, &model.valid(), &card)?;
        return Ok(empty_log(config));
    }
    let model = match plan.trainable {
        Trainable::BatchNormAffine => train_only_batch_norm_affine(model),
        _ => model,
    };
    let data = TrainingData {
        manifest: inputs.manifest.path.clone(),
        centres: vec![plan.target.clone()],
        rater: inputs.rater.map(String::from),
        train,
        val: target_validation(&inputs, &card)?,
    };
    let (batch, seed, objective) = (config.inference_batch, config.seed, objective(plan)?);
    let trainer = Trainer::<B>::new(config, device.clone())?.with_objective(objective);
    let (_, log) = trainer.fit_from(Some(model), &data, out, progress)?;
    if reestimate {
        // The trainer saved the kept weights; give them the target's statistics.
        let (model, card) = checkpoint::load::<B>(out, &device)?;
        let model = reestimate_batch_norm(model, &data.train, batch, seed);
        checkpoint::save(out, &model.valid(), &card)?;
    }
    Ok(log)
}

/// The validation volumes that pick the checkpoint: the target's val split with the domain's
/// labels when the plan keeps the best on it, none (the last weights are kept) otherwise.
fn target_validation(inputs: &AdaptInputs, card: &ModelCard) -> Result<Vec<ValCase>, AdaptError> {
    let plan = inputs.plan;
    if plan.schedule.select == SelectCheckpoint::Last {
        return Ok(Vec::new());
    }
    let val = ValCase::load(
        inputs.manifest,
        std::slice::from_ref(&plan.target),
        inputs.rater,
        &card.preprocessing,
    )?;
    if val.is_empty() {
        return Err(AdaptError::NoValidation {
            strategy: plan.strategy.clone(),
            target: plan.target.clone(),
            rater: inputs.rater.map(String::from),
        });
    }
    Ok(val)
}

/// Pseudo-labels from the fine-tuned model: stage 1 fine-tunes on the plan's true-labelled
/// sources alone into `out/stage-1`; stage 2 starts from that model, whose argmax labels the
/// pseudo-labelled rows, and trains on every source. The log is stage 2's, its wall time both.
fn two_stages<B: AutodiffBackend>(
    inputs: AdaptInputs,
    config: TrainConfig,
    out: &Path,
    device: B::Device,
    progress: &mut dyn FnMut(&Event),
) -> Result<TrainingLog, AdaptError> {
    let plan = inputs.plan;
    let first = AdaptPlan {
        strategy: format!("{} (stage 1)", plan.strategy),
        data: plan
            .data
            .iter()
            .filter(|d| d.labels == LabelSource::True)
            .cloned()
            .collect(),
        ..plan.clone()
    };
    let stage = out.join("stage-1");
    let inputs_1 = AdaptInputs { plan: &first, ..inputs };
    let log_1 = execute::<B>(inputs_1, config.clone(), &stage, device.clone(), &mut *progress)?;
    let path = stage.join("training-log.json");
    crate::fsutil::write_json_atomic(&path, &log_1).map_err(|source| AdaptError::Io { path, source })?;
    let mut second = plan.clone();
    for d in &mut second.data {
        if d.labels == LabelSource::PseudoFromFinetuned {
            d.labels = LabelSource::Pseudo; // the argmax of the model stage 2 starts from
        }
    }
    let inputs_2 = AdaptInputs {
        plan: &second,
        source: &stage,
        ..inputs
    };
    let mut log = execute::<B>(inputs_2, config, out, device, progress)?;
    log.wall_seconds += log_1.wall_seconds;
    Ok(log)
}

/// The log of a run without gradient steps.
fn empty_log(config: TrainConfig) -> TrainingLog {
    TrainingLog {
        config,
        events: vec![],
        best_val_dsc: None,
        best_iteration: 0,
        wall_seconds: 0.0,
    }
}

/// `config` with the source card's model and preprocessing and the plan's optimiser, schedule
/// and validation interval; no augmentation for the entropy objective (Tent adapts on the slices
/// as they are).
fn plan_config(plan: &AdaptPlan, config: TrainConfig, card: &ModelCard) -> Result<TrainConfig, AdaptError> {
    let s = &plan.schedule;
    let entropy = takes_steps(plan) && objective(plan)? == Objective::Entropy;
    Ok(TrainConfig {
        iterations: s.iterations,
        batch: s.batch,
        optimizer: s.optimizer,
        lr: s.lr,
        momentum: s.momentum,
        weight_decay: s.weight_decay,
        poly_power: s.poly_power,
        validate_every: s.validate_every.max(1),
        augmentation: if entropy {
            super::Augmentation::none()
        } else {
            config.augmentation.clone()
        },
        model: card.architecture.clone(),
        preprocessing: card.preprocessing.clone(),
        ..config
    })
}

/// The slices the plan trains (or re-estimates) on: its data sources' rows of the target's
/// training split, each with its labels (true, the source model's argmax, or none: all 0). Label
/// files are read only when a source asks for true labels.
fn plan_data<B: AutodiffBackend>(
    inputs: &AdaptInputs,
    card: &ModelCard,
    model: &UNet2d<B>,
    batch: usize,
) -> Result<SliceSet, AdaptError> {
    let plan = inputs.plan;
    let filter = CaseFilter {
        centres: vec![plan.target.clone()],
        split: Split::Train,
        rater: inputs.rater.map(String::from),
    };
    let prep = &card.preprocessing;
    let all = if plan.data.is_empty() {
        return Ok(SliceSet::empty(prep.slice_size));
    } else if !plan.data.iter().any(|d| d.labels == LabelSource::True) {
        SliceSet::load_images(inputs.manifest, &filter, prep)?
    } else if plan
        .data
        .iter()
        .all(|d| d.labels != LabelSource::True || d.rows == Rows::Selected)
    {
        // True labels of the selection alone: the other cases need no label file (the drop
        // folder's unlabelled arrivals have none).
        let cases: BTreeSet<String> = inputs.selection.items.iter().map(|i| i.case.clone()).collect();
        SliceSet::load_labelled(inputs.manifest, &filter, prep, &cases)?
    } else {
        SliceSet::load(inputs.manifest, &filter, prep)?
    };
    let selected = selected_rows(&all, inputs.selection, &plan.target)?;
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
        match source.labels {
            LabelSource::Pseudo | LabelSource::PseudoFromFinetuned => {
                pseudo_label(&model.valid(), card, &mut part, batch)
            }
            LabelSource::Unlabelled => part.clear_labels(),
            LabelSource::True => {}
        }
        match train.as_mut() {
            Some(t) => t.extend(part),
            None => train = Some(part),
        }
    }
    Ok(train.unwrap_or_else(|| all.subset(&[])))
}

/// Sets every batch-norm layer's running statistics to the average of its batch statistics over
/// one pass of training-mode forwards through `set`'s images, in batches of `batch` (each batch
/// weighted by its size: the momentum of the k-th batch is its share of the slices seen so far,
/// so the source statistics are forgotten at the first). Dropout is active during the pass, as
/// in training, with dropout masks drawn from `seed`; no gradient is taken. The layers' momentum
/// is restored afterwards.
fn reestimate_batch_norm<B: AutodiffBackend>(model: UNet2d<B>, set: &SliceSet, batch: usize, seed: u64) -> UNet2d<B> {
    let device = model.devices().into_iter().next().unwrap_or_default();
    B::seed(&device, seed);
    let (size, momentum) = (set.size, model.batch_norm_momentum());
    let px = size * size;
    // Untracked parameters: the autodiff backend would otherwise keep every batch's graph
    // (2.5 GB over 576 slices of 64 x 64), as no backward pass ever frees it. The model is
    // only saved afterwards, never trained.
    let mut model = model.no_grad();
    let mut seen = 0usize;
    for chunk in set.images.chunks(batch.max(1) * px) {
        let b = chunk.len() / px;
        seen += b;
        model = model.with_batch_norm_momentum(b as f64 / seen as f64);
        let x = burn::tensor::Tensor::<B, 4>::from_data(
            burn::tensor::TensorData::new(chunk.to_vec(), [b, 1, size, size]),
            &device,
        ); // [b, 1, N, N]
        let _ = model.forward(x); // updates the running statistics; no backward
    }
    model.with_batch_norm_momentum(momentum)
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
    let (probs, _) = slice_probabilities(model, &set.images, size, (batch, 1), false, false);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use burn::module::{ModuleVisitor, Param};
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn::tensor::backend::Backend;
    use burn::tensor::{Distribution, ElementConversion, Tensor};

    use super::*;
    use crate::device::{CpuAutodiff, CpuBackend};
    use crate::model::{normalised_entropy, UNet2dConfig};
    use crate::preprocess::Preprocessing;
    use crate::strategy::adapt::{by_name, AdaptState, Schedule};
    use crate::strategy::query::Unit;
    use crate::train::Architecture;

    type AB = CpuAutodiff;

    /// Every float tensor of a module (parameters and running statistics) by its field path,
    /// e.g. `encoder.0.bn1.gamma`.
    #[derive(Default)]
    struct Tensors {
        path: Vec<String>,
        out: BTreeMap<String, Vec<f32>>,
    }

    impl<B: Backend> ModuleVisitor<B> for Tensors {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.into());
        }

        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }

        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let values = param.val().into_data().convert::<f32>().to_vec::<f32>().unwrap();
            self.out.insert(self.path.join("."), values);
        }
    }

    fn tensors<B: Backend>(model: &UNet2d<B>) -> BTreeMap<String, Vec<f32>> {
        let mut t = Tensors::default();
        model.visit(&mut t);
        t.out
    }

    /// A two-centre cohort of 32x32x8 volumes and a freshly initialised (untrained) source
    /// checkpoint; returns the manifest and the checkpoint folder.
    fn cohort_and_source(dir: &Path) -> (Manifest, PathBuf) {
        let config = crate::synth::Config {
            seed: 2,
            centres: 2,
            cases_per_centre: 5,
            multi_rater_cases: 0,
            size: [32, 32, 8],
            ..crate::synth::Config::default()
        };
        crate::synth::generate(&dir.join("cohort"), &config, &|| {}).unwrap();
        let manifest = Manifest::load(&dir.join("cohort/manifest.json")).unwrap();
        let architecture = Architecture {
            features: vec![4, 8, 16],
            dropout: vec![0.05, 0.1, 0.2],
            ..Architecture::default()
        };
        let preprocessing = Preprocessing {
            slice_size: 32,
            ..Preprocessing::default()
        };
        let model = {
            let _rng = crate::model::rng_lock();
            CpuBackend::seed(&Default::default(), 5);
            architecture
                .to_config()
                .init::<CpuBackend>(&Default::default())
                .unwrap()
        };
        let source = dir.join("source");
        checkpoint::save(&source, &model, &ModelCard::new(architecture, preprocessing, 5)).unwrap();
        (manifest, source)
    }

    /// Tent on C2 for a few steps, with C2's label files deleted first (Tent must read none):
    /// the batch-norm scale and shift and running statistics move, every other tensor is
    /// bit-identical to the source's, and the log reports the entropy.
    #[test]
    fn tent_trains_only_the_batch_norm_affine_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, source) = cohort_and_source(dir.path());
        for case in manifest.cases().iter().filter(|c| c.centre == "C2") {
            for label in case.labels.values() {
                std::fs::remove_file(label).unwrap();
            }
        }
        let selection = Selection {
            strategy: "none".into(),
            unit: Unit::Slice,
            pool_size: 0,
            items: vec![],
        };
        let state = AdaptState {
            selection: selection.clone(),
            target: "C2".into(),
            schedule: Schedule {
                iterations: 4,
                batch: 4,
                ..Schedule::default()
            },
        };
        let plan = by_name("tent").unwrap().plan(&state).unwrap();
        let inputs = AdaptInputs {
            plan: &plan,
            selection: &selection,
            manifest: &manifest,
            source: &source,
            rater: None,
        };
        let config = TrainConfig {
            seed: 1,
            inference_batch: 8,
            ..TrainConfig::default()
        };
        let out = dir.path().join("tent");
        let log = execute::<AB>(inputs, config, &out, Default::default(), |_| {}).unwrap();
        assert_eq!(log.events.len(), 4);
        for e in &log.events {
            let Event::Step { entropy, ce, loss, .. } = e else {
                panic!("{e:?}")
            };
            assert!(
                ce.is_none() && *entropy == Some(*loss) && (0.0..=1.0).contains(loss),
                "{e:?}"
            );
        }
        let before = tensors(&checkpoint::load::<CpuBackend>(&source, &Default::default()).unwrap().0);
        let after = tensors(&checkpoint::load::<CpuBackend>(&out, &Default::default()).unwrap().0);
        assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut moved = 0;
        for (name, b) in &before {
            let a = &after[name];
            let field = name.rsplit('.').next().unwrap();
            if ["gamma", "beta", "running_mean", "running_var"].contains(&field) {
                assert_ne!(a, b, "{name} did not move");
                moved += 1;
            } else {
                assert_eq!(bits(a), bits(b), "{name} changed");
            }
        }
        assert_eq!(moved, 5 * 2 * 4, "5 blocks x 2 batch norms x 4 tensors");
    }

    /// Fine-tuning on C2's tumour-free slices alone teaches the model to predict no tumour, so
    /// its validation DSC ends lower than it started: with `best_target_val` the saved model is
    /// the best validation's (its DSC recomputed), with `last` the same run's last weights.
    #[test]
    fn target_validation_keeps_the_best_checkpoint_not_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, source) = cohort_and_source(dir.path());
        let prep = checkpoint::load_card(&source).unwrap().preprocessing;
        let filter = CaseFilter {
            centres: vec!["C2".into()],
            split: Split::Train,
            rater: None,
        };
        let all = SliceSet::load(&manifest, &filter, &prep).unwrap();
        let empty: Vec<_> = (0..all.len()).filter(|i| all.slices[*i].tumour_pixels == 0).collect();
        let pool = crate::strategy::query::CandidatePool {
            unit: Unit::Slice,
            rows: empty
                .iter()
                .map(|i| crate::strategy::query::Candidate {
                    case: all.cases[all.slices[*i].case].clone(),
                    centre: "C2".into(),
                    slice: Some(all.slices[*i].k),
                    scores: Default::default(),
                    descriptor: vec![],
                    features: vec![],
                })
                .collect(),
        };
        let picks: Vec<_> = (0..pool.rows.len())
            .map(|i| (i, None, crate::strategy::query::Reason::Random))
            .collect();
        let selection = crate::strategy::query::selection("tumour-free", &pool, &picks);
        let run = |select: SelectCheckpoint, out: &str| {
            let state = AdaptState {
                selection: selection.clone(),
                target: "C2".into(),
                schedule: Schedule {
                    iterations: 8,
                    batch: 4,
                    lr: 0.1,
                    select,
                    validate_every: 1,
                    ..Schedule::default()
                },
            };
            let plan = by_name("finetune").unwrap().plan(&state).unwrap();
            let inputs = AdaptInputs {
                plan: &plan,
                selection: &selection,
                manifest: &manifest,
                source: &source,
                rater: None,
            };
            let config = TrainConfig {
                seed: 3,
                inference_batch: 8,
                ..TrainConfig::default()
            };
            let out = dir.path().join(out);
            let log = execute::<AB>(inputs, config, &out, Default::default(), |_| {}).unwrap();
            (log, checkpoint::load::<CpuBackend>(&out, &Default::default()).unwrap())
        };
        let (log, (best, card)) = run(SelectCheckpoint::BestTargetVal, "best");
        let val: Vec<f64> = (log.events.iter())
            .filter_map(|e| match e {
                Event::Validation { median_dsc, .. } => Some(*median_dsc),
                _ => None,
            })
            .collect();
        assert_eq!(val.len(), 8, "validated after every step");
        let top = val.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let last = val[7];
        assert!(
            last < top,
            "the scenario needs a last checkpoint worse than the best: {val:?}"
        );
        let first_top = val.iter().position(|v| *v == top).unwrap() + 1;
        assert_eq!((log.best_val_dsc, log.best_iteration), (Some(top), first_top));
        assert_eq!(card.training.as_ref().unwrap().best_iteration, first_top);
        let cases = ValCase::load(&manifest, &["C2".into()], None, &prep).unwrap();
        let trainer = Trainer::<AB>::new(log.config.clone(), Default::default()).unwrap();
        assert_eq!(
            trainer.validate(&best, &cases).0,
            top,
            "the saved model is the best one"
        );
        let (last_log, (kept, _)) = run(SelectCheckpoint::Last, "last");
        assert_eq!(last_log.best_val_dsc, None, "no validation label read");
        assert_eq!(
            trainer.validate(&kept, &cases).0,
            last,
            "the saved model is the last one"
        );
    }

    /// Adam steps on the batch-norm scale and shift alone lower the normalised entropy of one
    /// fixed batch, and only those parameters get a gradient.
    #[test]
    fn tent_steps_lower_the_entropy_of_a_fixed_batch() {
        let _rng = crate::model::rng_lock();
        let device = Default::default();
        AB::seed(&device, 11);
        let config = UNet2dConfig::new()
            .with_features(vec![4, 8])
            .with_dropout(vec![0.0, 0.0]);
        let mut model = train_only_batch_norm_affine(config.init::<AB>(&device).unwrap());
        let x = Tensor::<AB, 4>::random([4, 1, 16, 16], Distribution::Normal(0.0, 1.0), &device);
        let mut optim = AdamConfig::new().init::<AB, UNet2d<AB>>();
        let mut losses = Vec::new();
        for _ in 0..8 {
            let loss = normalised_entropy(model.forward(x.clone()));
            losses.push(loss.clone().into_scalar().elem::<f64>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            assert_eq!(grads.len(), 3 * 2 * 2, "3 blocks x 2 batch norms x (gamma, beta)");
            model = optim.step(1e-2, model, grads);
        }
        let falls = losses.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(
            losses[7] < losses[0] - 1e-3 && falls >= 6,
            "entropy did not fall: {losses:?}"
        );
    }
}
