//! The training loop (METHOD.md step 3): [`Trainer::fit`] trains a [`UNet2d`] on a
//! [`SliceSet`] with SGD + momentum + weight decay (or Adam) under the poly schedule, minimising
//! the segmentation loss (or, for Tent, the prediction entropy: [`Objective`]), validates
//! on whole validation volumes every `validate_every` iterations, and keeps the best weights
//! as a checkpoint folder ([`crate::model::checkpoint`]).
//!
//! The library prints nothing: progress goes to a callback ([`Event`]); the run's history is
//! returned (and written by the caller) as a [`TrainingLog`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{CaseFilter, OptimizerKind, SliceSet, TrainConfig};
use crate::dataset::{Manifest, Split};
use crate::infer::{predict_prepared, PredictOptions};
use crate::metrics;
use crate::model::checkpoint::{self, CheckpointError, ModelCard, TrainingRecord};
use crate::model::{normalised_entropy, SegLoss, SegLossConfig, UNet2d};
use crate::preprocess::{prepare, Prepared};
use crate::rng::Rng;
use crate::volume::{self, LabelMap};

/// Why training failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] super::ConfigError),
    /// Training or validation data could not be loaded.
    #[error(transparent)]
    Data(#[from] super::Error),
    /// A validation case could not be read.
    #[error("validation case {case}: {source}")]
    Volume {
        /// The case id.
        case: String,
        /// The error, naming the file.
        source: volume::Error,
    },
    /// The checkpoint could not be written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The model could not be built.
    #[error(transparent)]
    Model(#[from] crate::model::Error),
}

/// One validation volume, prepared once.
#[derive(Debug, Clone)]
pub struct ValCase {
    /// Case id.
    pub id: String,
    /// Preprocessed slices and the way back to the original grid.
    pub prepared: Prepared,
    /// The reference label, binary, on the original grid.
    pub label: LabelMap,
}

/// Training slices and validation volumes of some centres of a manifest.
#[derive(Debug, Clone)]
pub struct TrainingData {
    /// The manifest.
    pub manifest: PathBuf,
    /// Centres trained on.
    pub centres: Vec<String>,
    /// Rater whose labels are used (`None`: the reference rater of each centre).
    pub rater: Option<String>,
    /// Training slices (`[n, N, N]`).
    pub train: SliceSet,
    /// Validation volumes (may be empty: then the last weights are kept).
    pub val: Vec<ValCase>,
}

impl TrainingData {
    /// Loads the train split of `centres` as slices and their val split as whole volumes,
    /// preprocessed with `config.preprocessing`.
    pub fn load(
        manifest: &Manifest,
        centres: &[String],
        rater: Option<String>,
        config: &TrainConfig,
    ) -> Result<TrainingData, TrainError> {
        let filter = CaseFilter {
            centres: centres.to_vec(),
            split: Split::Train,
            rater: rater.clone(),
        };
        let train = SliceSet::load(manifest, &filter, &config.preprocessing)?;
        let val = ValCase::load(manifest, centres, rater.as_deref(), &config.preprocessing)?;
        Ok(TrainingData {
            manifest: manifest.path.clone(),
            centres: centres.to_vec(),
            rater,
            train,
            val,
        })
    }
}

impl ValCase {
    /// The val split of `centres` (every centre when empty) as whole volumes with `rater`'s
    /// labels (`None`: each centre's reference rater), preprocessed with `prep`; cases without
    /// that label are left out.
    pub fn load(
        manifest: &Manifest,
        centres: &[String],
        rater: Option<&str>,
        prep: &crate::preprocess::Preprocessing,
    ) -> Result<Vec<ValCase>, TrainError> {
        let mut val = Vec::new();
        for case in manifest
            .cases()
            .iter()
            .filter(|c| c.split == Split::Val && (centres.is_empty() || centres.contains(&c.centre)))
        {
            let Some((_, label_path)) = manifest.label(case, rater) else {
                continue;
            };
            let with_case = |source| TrainError::Volume {
                case: case.id.clone(),
                source,
            };
            let image = volume::read_volume(&case.image).map_err(with_case)?;
            let label = volume::read_label_map_for(label_path, &case.image, &image.geometry).map_err(with_case)?;
            val.push(ValCase {
                id: case.id.clone(),
                prepared: prepare(&image, prep),
                label: label.binary(None),
            });
        }
        Ok(val)
    }
}

/// Progress of a run, sent to the callback of [`Trainer::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// One optimiser step done.
    Step {
        /// Steps done (1-based).
        iteration: usize,
        /// Of this many.
        iterations: usize,
        /// Total loss of the batch.
        loss: f64,
        /// Cross-entropy term (segmentation objective only).
        #[serde(skip_serializing_if = "Option::is_none")]
        ce: Option<f64>,
        /// Soft Dice term (segmentation objective only).
        #[serde(skip_serializing_if = "Option::is_none")]
        dice: Option<f64>,
        /// Normalised prediction entropy (entropy objective only).
        #[serde(skip_serializing_if = "Option::is_none")]
        entropy: Option<f64>,
        /// Learning rate used.
        lr: f64,
        /// Seconds since the start.
        seconds: f64,
    },
    /// A validation finished.
    Validation {
        /// Steps done.
        iteration: usize,
        /// Median DSC over the validation volumes.
        median_dsc: f64,
        /// DSC of each validation volume, in case order.
        dsc: Vec<f64>,
        /// Whether this became the kept checkpoint.
        best: bool,
        /// Seconds since the start.
        seconds: f64,
    },
}

/// What a run carries from step to step besides the model and the optimiser.
struct RunState<B: AutodiffBackend> {
    events: Vec<Event>,
    /// Best median validation DSC and its step.
    best: Option<(f64, usize)>,
    /// The weights kept so far and their card.
    kept: UNet2d<B::InnerBackend>,
    card: ModelCard,
    start: Instant,
}

/// The history of a run (written as `training-log.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingLog {
    /// The config used.
    pub config: TrainConfig,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Best median validation DSC (`None` without validation volumes).
    pub best_val_dsc: Option<f64>,
    /// Steps done at the kept checkpoint.
    pub best_iteration: usize,
    /// Wall time, seconds.
    pub wall_seconds: f64,
}

/// What the gradient steps minimise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Objective {
    /// `0.5 (CE + soft Dice)` against each batch's labels (METHOD.md step 3).
    #[default]
    Segmentation,
    /// Tent: the normalised prediction entropy ([`crate::model::normalised_entropy`]); labels
    /// are not read.
    Entropy,
}

/// Trains [`UNet2d`] on an autodiff backend `B`.
#[derive(Debug, Clone)]
pub struct Trainer<B: AutodiffBackend> {
    config: TrainConfig,
    device: B::Device,
    objective: Objective,
}

/// One batch's loss: the total to differentiate and the terms to report.
struct StepLoss<B: AutodiffBackend> {
    total: Tensor<B, 1>,
    ce: Option<Tensor<B, 1>>,
    dice: Option<Tensor<B, 1>>,
    entropy: Option<Tensor<B, 1>>,
}

/// The value of a one-element tensor (NaN if it cannot be read).
fn scalar<B: burn::tensor::backend::Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A trainer with a validated `config`, computing on `device`.
    pub fn new(config: TrainConfig, device: B::Device) -> Result<Self, TrainError> {
        config.validate()?;
        Ok(Trainer {
            config,
            device,
            objective: Objective::default(),
        })
    }

    /// The same trainer minimising `objective` instead. By default, [`Objective::Segmentation`].
    pub fn with_objective(self, objective: Objective) -> Self {
        Trainer { objective, ..self }
    }

    /// The config.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Median DSC of `model` (evaluation mode) over `val` volumes, and each volume's DSC.
    /// An empty prediction of an empty label counts 1, one empty side 0.
    pub fn validate(&self, model: &UNet2d<B::InnerBackend>, val: &[ValCase]) -> (f64, Vec<f64>) {
        let options = PredictOptions {
            batch: self.config.inference_batch,
            ..PredictOptions::default()
        };
        let dsc: Vec<f64> = val
            .iter()
            .map(|case| {
                let p = predict_prepared(model, &case.prepared, self.config.model.classes, &options);
                metrics::compute(&p.mask.binary(None), &case.label, &metrics::Options::default())
                    .ok()
                    .and_then(|m| m.dsc)
                    .unwrap_or(0.0)
            })
            .collect();
        (metrics::stats::median(&dsc).unwrap_or(0.0), dsc)
    }

    /// Trains on `data` and writes the best checkpoint into `out` (rewritten at every
    /// improvement, so an interrupted run leaves a usable checkpoint). Same seed, same data,
    /// same backend: same weights.
    pub fn fit(
        &self,
        data: &TrainingData,
        out: &Path,
        progress: impl FnMut(&Event),
    ) -> Result<(UNet2d<B::InnerBackend>, TrainingLog), TrainError> {
        self.fit_from(None, data, out, progress)
    }

    /// As [`Trainer::fit`], starting from `initial` weights (fine-tuning a source model)
    /// instead of a fresh initialisation when given.
    pub fn fit_from(
        &self,
        initial: Option<UNet2d<B>>,
        data: &TrainingData,
        out: &Path,
        mut progress: impl FnMut(&Event),
    ) -> Result<(UNet2d<B::InnerBackend>, TrainingLog), TrainError> {
        let c = &self.config;
        B::seed(&self.device, c.seed);
        let model = match initial {
            Some(m) => m,
            None => c.model.to_config().init::<B>(&self.device)?,
        };
        match c.optimizer {
            OptimizerKind::Sgd => {
                let optim = SgdConfig::new()
                    .with_momentum(Some(
                        MomentumConfig::new().with_momentum(c.momentum).with_dampening(0.0),
                    ))
                    .with_weight_decay(Some(WeightDecayConfig::new(c.weight_decay as f32)))
                    .init();
                self.run(model, optim, data, out, &mut progress)
            }
            OptimizerKind::Adam => {
                let optim = AdamConfig::new()
                    .with_weight_decay(Some(WeightDecayConfig::new(c.weight_decay as f32)))
                    .init();
                self.run(model, optim, data, out, &mut progress)
            }
        }
    }

    fn run<O: Optimizer<UNet2d<B>, B>>(
        &self,
        mut model: UNet2d<B>,
        mut optim: O,
        data: &TrainingData,
        out: &Path,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(UNet2d<B::InnerBackend>, TrainingLog), TrainError> {
        let c = &self.config;
        let start = Instant::now();
        let loss_fn = SegLossConfig::new().init(c.model.classes)?;
        let mut rng = Rng::derive(c.seed, &[0x7261_696e]);
        let mut run = RunState {
            events: Vec::new(),
            best: None,
            kept: model.valid(),
            card: self.card(data, 0, None, 0.0),
            start,
        };
        for it in 0..c.iterations {
            let lr = c.lr_at(it);
            let indices = data.train.sample(c.batch, c.tumour_fraction, &mut rng);
            let (images, labels) = data.train.batch(&indices, &c.augmentation, &mut rng);
            let loss = self.batch_loss(&loss_fn, &model, images, labels, indices.len(), data.train.size);
            let grads = GradientsParams::from_grads(loss.total.clone().backward(), &model);
            model = optim.step(lr, model, grads);
            let event = Event::Step {
                iteration: it + 1,
                iterations: c.iterations,
                loss: scalar(loss.total.detach()),
                ce: loss.ce.map(scalar),
                dice: loss.dice.map(scalar),
                entropy: loss.entropy.map(scalar),
                lr,
                seconds: start.elapsed().as_secs_f64(),
            };
            progress(&event);
            run.events.push(event);
            self.after_step(&model, it + 1, data, out, &mut run, progress)?;
        }
        let wall = start.elapsed().as_secs_f64();
        // Final card: the whole run's wall time and iteration count.
        if let Some(t) = run.card.training.as_mut() {
            t.iterations = c.iterations;
            t.wall_seconds = wall;
        }
        checkpoint::save(out, &run.kept, &run.card)?;
        let log = TrainingLog {
            config: c.clone(),
            events: run.events,
            best_val_dsc: run.best.map(|b| b.0),
            best_iteration: run.best.map_or(c.iterations, |b| b.1),
            wall_seconds: wall,
        };
        Ok((run.kept, log))
    }

    /// The objective's loss on one batch (`images` and `labels` are `[b, n, n]`), forward pass
    /// in training mode (batch statistics, dropout).
    fn batch_loss(
        &self,
        loss_fn: &SegLoss,
        model: &UNet2d<B>,
        images: Vec<f32>,
        labels: Vec<u8>,
        b: usize,
        n: usize,
    ) -> StepLoss<B> {
        let x = Tensor::<B, 4>::from_data(TensorData::new(images, [b, 1, n, n]), &self.device);
        let logits = model.forward(x); // [b, classes, n, n]
        match self.objective {
            Objective::Segmentation => {
                let labels: Vec<i32> = labels.into_iter().map(i32::from).collect();
                let y = Tensor::<B, 3, Int>::from_data(TensorData::new(labels, [b, n, n]), &self.device);
                let terms = loss_fn.forward(logits, y);
                StepLoss {
                    total: terms.total,
                    ce: Some(terms.ce.detach()),
                    dice: Some(terms.dice.detach()),
                    entropy: None,
                }
            }
            Objective::Entropy => {
                let total = normalised_entropy(logits);
                StepLoss {
                    entropy: Some(total.clone().detach()),
                    total,
                    ce: None,
                    dice: None,
                }
            }
        }
    }

    /// After step `done`: validate and keep the best checkpoint every `validate_every` steps
    /// and after the last; without validation volumes, keep the last weights.
    fn after_step(
        &self,
        model: &UNet2d<B>,
        done: usize,
        data: &TrainingData,
        out: &Path,
        run: &mut RunState<B>,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(), TrainError> {
        let c = &self.config;
        let last = done == c.iterations;
        let seconds = || run.start.elapsed().as_secs_f64();
        if data.val.is_empty() {
            if last {
                run.kept = model.valid();
                run.card = self.card(data, done, None, seconds());
                checkpoint::save(out, &run.kept, &run.card)?;
            }
            return Ok(());
        }
        if !done.is_multiple_of(c.validate_every) && !last {
            return Ok(());
        }
        let eval = model.valid();
        let (median, dsc) = self.validate(&eval, &data.val);
        let improved = run.best.is_none_or(|(b, _)| median > b);
        if improved {
            run.best = Some((median, done));
            run.card = self.card(data, done, Some(median), seconds());
            checkpoint::save(out, &eval, &run.card)?;
            run.kept = eval;
        }
        let event = Event::Validation {
            iteration: done,
            median_dsc: median,
            dsc,
            best: improved,
            seconds: seconds(),
        };
        progress(&event);
        run.events.push(event);
        Ok(())
    }

    fn card(&self, data: &TrainingData, iteration: usize, dsc: Option<f64>, wall: f64) -> ModelCard {
        let c = &self.config;
        let mut card = ModelCard::new(c.model.clone(), c.preprocessing.clone(), c.seed);
        card.training = Some(TrainingRecord {
            manifest: data.manifest.clone(),
            centres: data.centres.clone(),
            rater: data.rater.clone(),
            train_cases: data.train.cases.clone(),
            val_cases: data.val.iter().map(|v| v.id.clone()).collect(),
            train_slices: data.train.len(),
            iterations: iteration,
            best_val_dsc: dsc,
            best_iteration: iteration,
            wall_seconds: wall,
            config: c.clone(),
        });
        card
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::OnceLock;

    use super::*;
    use crate::device::{CpuAutodiff, CpuBackend};
    use crate::infer::predict_volume;
    use crate::model::checkpoint::{load, CARD_FILE, WEIGHTS_FILE};

    /// A tiny cohort (2 centres x 6 cases of 32x32x8) and a model trained on C1 for 40 steps,
    /// shared by the tests of this module.
    struct Fixture {
        _dir: tempfile::TempDir,
        manifest: Manifest,
        model_dir: PathBuf,
        kept: UNet2d<CpuBackend>,
        log: TrainingLog,
    }

    fn tiny_config() -> TrainConfig {
        let mut c = TrainConfig {
            iterations: 40,
            batch: 4,
            tumour_fraction: 0.5,
            validate_every: 20,
            seed: 3,
            ..TrainConfig::default()
        };
        c.preprocessing.slice_size = 32;
        c.model.features = vec![4, 8, 16];
        c.model.dropout = vec![0.05, 0.1, 0.2];
        c
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let config = crate::synth::Config {
                seed: 1,
                centres: 2,
                cases_per_centre: 6,
                multi_rater_cases: 0,
                size: [32, 32, 8],
                ..crate::synth::Config::default()
            };
            crate::synth::generate(&dir.path().join("cohort"), &config, &|| {}).unwrap();
            let manifest = Manifest::load(&dir.path().join("cohort/manifest.json")).unwrap();
            let config = tiny_config();
            let data = TrainingData::load(&manifest, &["C1".into()], None, &config).unwrap();
            assert!(!data.val.is_empty());
            let trainer = Trainer::<CpuAutodiff>::new(config, Default::default()).unwrap();
            let model_dir = dir.path().join("model");
            let mut events = 0;
            let (kept, log) = trainer.fit(&data, &model_dir, |_| events += 1).unwrap();
            assert_eq!(events, log.events.len());
            Fixture {
                _dir: dir,
                manifest,
                model_dir,
                kept,
                log,
            }
        })
    }

    fn first_test_image(f: &Fixture, centre: &str) -> PathBuf {
        f.manifest
            .cases()
            .iter()
            .find(|c| c.centre == centre && c.split == Split::Test)
            .unwrap()
            .image
            .clone()
    }

    #[test]
    fn training_lowers_the_loss_and_the_checkpoint_round_trips() {
        let f = fixture();
        let losses: Vec<f64> = f
            .log
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Step { loss, .. } => Some(*loss),
                _ => None,
            })
            .collect();
        assert_eq!(losses.len(), 40);
        let head = losses[..8].iter().sum::<f64>() / 8.0;
        let tail = losses[32..].iter().sum::<f64>() / 8.0;
        assert!(
            tail < head,
            "loss did not fall: first 8 mean {head}, last 8 mean {tail}"
        );
        assert!(f.log.best_val_dsc.is_some());
        // Load the checkpoint: same predictions as the kept weights.
        let (loaded, card) = load::<CpuBackend>(&f.model_dir, &Default::default()).unwrap();
        assert_eq!(card.preprocessing, tiny_config().preprocessing);
        assert_eq!(card.training.as_ref().unwrap().best_iteration, f.log.best_iteration);
        let image = volume::read_volume(&first_test_image(f, "C1")).unwrap();
        let opts = PredictOptions::default();
        let a = predict_volume(&f.kept, &image, &card.preprocessing, 2, &opts);
        let b = predict_volume(&loaded, &image, &card.preprocessing, 2, &opts);
        assert_eq!(a.mask.data, b.mask.data);
        let diff = a
            .tumour_probability
            .data
            .iter()
            .zip(&b.tumour_probability.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-6, "probabilities differ by {diff}");
    }

    #[test]
    fn masks_keep_the_input_geometry_and_mc_maps_its_dims() {
        let f = fixture();
        let (model, card) = load::<CpuBackend>(&f.model_dir, &Default::default()).unwrap();
        let out = tempfile::tempdir().unwrap();
        // C2 has another grid and orientation than the training centre.
        for centre in ["C1", "C2"] {
            let path = first_test_image(f, centre);
            let image = volume::read_volume(&path).unwrap();
            let opts = PredictOptions {
                mc_samples: 3,
                descriptor: Some(crate::infer::DescriptorConfig::default()),
                ..PredictOptions::default()
            };
            let p = predict_volume(&model, &image, &card.preprocessing, 2, &opts);
            let mask_path = out.path().join(format!("{centre}.nii.gz"));
            volume::write_label_map(&mask_path, &p.mask).unwrap();
            let back = volume::read_label_map(&mask_path).unwrap();
            assert_eq!(back.geometry.dims, image.geometry.dims);
            assert_eq!(back.geometry.affine, image.geometry.affine, "{centre}: affine changed");
            assert!(back.geometry.mismatch(&image.geometry).is_none());
            let u = p.uncertainty.unwrap();
            assert_eq!(u.entropy.geometry, image.geometry);
            assert_eq!(u.bald.geometry.dims, image.geometry.dims);
            assert_eq!(u.entropy.data.len(), image.data.len());
            assert_eq!(u.slice_entropy.len(), image.geometry.dims[2]);
            assert!(u.entropy.data.iter().all(|v| v.is_finite() && *v >= 0.0));
            let d = p.descriptors.unwrap();
            assert_eq!(d.len(), image.geometry.dims[2]);
            assert!(d.iter().all(|v| v.len() == 256)); // the 16 x 16 grid, 2 px cells at 32 x 32
        }
    }

    fn copy_checkpoint(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for f in [CARD_FILE, WEIGHTS_FILE] {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }

    #[test]
    fn corrupt_or_mismatched_checkpoints_are_clear_errors() {
        let f = fixture();
        let tmp = tempfile::tempdir().unwrap();
        let device = Default::default();
        // Missing folder / card.
        let missing = tmp.path().join("nothing");
        let e = load::<CpuBackend>(&missing, &device).unwrap_err();
        assert!(matches!(e, CheckpointError::Io { .. }), "{e}");
        assert!(
            e.to_string().contains("nothing") && e.to_string().contains(CARD_FILE),
            "{e}"
        );
        // Garbage weights.
        let dir = tmp.path().join("garbage");
        copy_checkpoint(&f.model_dir, &dir);
        std::fs::write(dir.join(WEIGHTS_FILE), b"not msgpack at all").unwrap();
        let e = load::<CpuBackend>(&dir, &device).unwrap_err();
        assert!(matches!(e, CheckpointError::Weights { .. }), "{e}");
        assert!(e.to_string().contains("garbage"), "{e}");
        // A card whose architecture differs from the weights (wider levels).
        let dir = tmp.path().join("wider");
        copy_checkpoint(&f.model_dir, &dir);
        let mut card = checkpoint::load_card(&dir).unwrap();
        card.architecture.features = vec![4, 8, 32];
        card.trainable_params = card.architecture.to_config().trainable_params();
        std::fs::write(dir.join(CARD_FILE), serde_json::to_string(&card).unwrap()).unwrap();
        let e = load::<CpuBackend>(&dir, &device).unwrap_err();
        assert!(matches!(e, CheckpointError::Mismatch { .. }), "{e}");
        // A card with one level more than the weights.
        card.architecture.features = vec![4, 8, 16, 32];
        card.architecture.dropout = vec![0.0; 4];
        card.trainable_params = card.architecture.to_config().trainable_params();
        std::fs::write(dir.join(CARD_FILE), serde_json::to_string(&card).unwrap()).unwrap();
        let e = load::<CpuBackend>(&dir, &device).unwrap_err();
        assert!(matches!(e, CheckpointError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("wider"), "{e}");
        // A card that contradicts itself, and one that is not a card.
        card.trainable_params += 1;
        std::fs::write(dir.join(CARD_FILE), serde_json::to_string(&card).unwrap()).unwrap();
        let e = load::<CpuBackend>(&dir, &device).unwrap_err();
        assert!(matches!(e, CheckpointError::BadCard { .. }), "{e}");
        std::fs::write(dir.join(CARD_FILE), "{\"format\": 3}").unwrap();
        let e = load::<CpuBackend>(&dir, &device).unwrap_err();
        assert!(matches!(e, CheckpointError::Card { .. }), "{e}");
    }

    #[test]
    fn validation_of_the_kept_model_matches_the_log() {
        let f = fixture();
        let config = tiny_config();
        let data = TrainingData::load(&f.manifest, &["C1".into()], None, &config).unwrap();
        let trainer = Trainer::<CpuAutodiff>::new(config, Default::default()).unwrap();
        let (median, _) = trainer.validate(&f.kept, &data.val);
        assert_eq!(Some(median), f.log.best_val_dsc);
    }
}
