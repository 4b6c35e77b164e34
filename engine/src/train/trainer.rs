//! The training loop (METHOD.md step 3): [`Trainer::fit`] trains a [`UNet2d`] on a
//! [`SliceSet`] with SGD + momentum + weight decay (or Adam) under the poly schedule, validates
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
use serde::Serialize;

use super::{CaseFilter, OptimizerKind, SliceSet, TrainConfig};
use crate::dataset::{Manifest, Split};
use crate::infer::{predict_prepared, PredictOptions};
use crate::metrics;
use crate::model::checkpoint::{self, CheckpointError, ModelCard, TrainingRecord};
use crate::model::{SegLossConfig, UNet2d};
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
        let mut val = Vec::new();
        for case in manifest
            .cases()
            .iter()
            .filter(|c| c.split == Split::Val && (centres.is_empty() || centres.contains(&c.centre)))
        {
            let label_path = match &rater {
                Some(r) => case.labels.get(r).map(|p| p.as_path()),
                None => manifest.reference_label(case).map(|(_, p)| p),
            };
            let Some(label_path) = label_path else { continue };
            let with_case = |source| TrainError::Volume {
                case: case.id.clone(),
                source,
            };
            let image = volume::read_volume(&case.image).map_err(with_case)?;
            let label = volume::read_label_map_for(label_path, &case.image, &image.geometry).map_err(with_case)?;
            val.push(ValCase {
                id: case.id.clone(),
                prepared: prepare(&image, &config.preprocessing),
                label: label.binary(None),
            });
        }
        Ok(TrainingData {
            manifest: manifest.path.clone(),
            centres: centres.to_vec(),
            rater,
            train,
            val,
        })
    }
}

/// Progress of a run, sent to the callback of [`Trainer::fit`].
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        /// Cross-entropy term.
        ce: f64,
        /// Soft Dice term.
        dice: f64,
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

/// Trains [`UNet2d`] on an autodiff backend `B`.
#[derive(Debug, Clone)]
pub struct Trainer<B: AutodiffBackend> {
    config: TrainConfig,
    device: B::Device,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A trainer with a validated `config`, computing on `device`.
    pub fn new(config: TrainConfig, device: B::Device) -> Result<Self, TrainError> {
        config.validate()?;
        Ok(Trainer { config, device })
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
        mut progress: impl FnMut(&Event),
    ) -> Result<(UNet2d<B::InnerBackend>, TrainingLog), TrainError> {
        let c = &self.config;
        B::seed(&self.device, c.seed);
        let model = c.model.to_config().init::<B>(&self.device)?;
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
        let n = data.train.size;
        let mut events = Vec::new();
        let mut best: Option<(f64, usize)> = None;
        let mut kept = model.valid();
        let mut card = self.card(data, 0, None, 0.0);
        for it in 0..c.iterations {
            let lr = c.lr_at(it);
            let indices = data.train.sample(c.batch, c.tumour_fraction, &mut rng);
            let (images, labels) = data.train.batch(&indices, &c.augmentation, &mut rng);
            let b = indices.len();
            let x = Tensor::<B, 4>::from_data(TensorData::new(images, [b, 1, n, n]), &self.device);
            let labels: Vec<i32> = labels.into_iter().map(i32::from).collect();
            let y = Tensor::<B, 3, Int>::from_data(TensorData::new(labels, [b, n, n]), &self.device);
            let terms = loss_fn.forward(model.forward(x), y);
            let scalar = |t: Tensor<B, 1>| {
                t.into_data()
                    .convert::<f64>()
                    .to_vec::<f64>()
                    .ok()
                    .and_then(|v| v.first().copied())
                    .unwrap_or(f64::NAN)
            };
            let (ce, dice) = (scalar(terms.ce.clone().detach()), scalar(terms.dice.clone().detach()));
            let grads = GradientsParams::from_grads(terms.total.clone().backward(), &model);
            let loss = scalar(terms.total.detach());
            model = optim.step(lr, model, grads);
            let done = it + 1;
            let event = Event::Step {
                iteration: done,
                iterations: c.iterations,
                loss,
                ce,
                dice,
                lr,
                seconds: start.elapsed().as_secs_f64(),
            };
            progress(&event);
            events.push(event);
            let last = done == c.iterations;
            if data.val.is_empty() {
                if last {
                    kept = model.valid();
                    card = self.card(data, done, None, start.elapsed().as_secs_f64());
                    checkpoint::save(out, &kept, &card)?;
                }
                continue;
            }
            if done % c.validate_every == 0 || last {
                let eval = model.valid();
                let (median, dsc) = self.validate(&eval, &data.val);
                let improved = best.is_none_or(|(b, _)| median > b);
                if improved {
                    best = Some((median, done));
                    card = self.card(data, done, Some(median), start.elapsed().as_secs_f64());
                    checkpoint::save(out, &eval, &card)?;
                    kept = eval;
                }
                let event = Event::Validation {
                    iteration: done,
                    median_dsc: median,
                    dsc,
                    best: improved,
                    seconds: start.elapsed().as_secs_f64(),
                };
                progress(&event);
                events.push(event);
            }
        }
        let wall = start.elapsed().as_secs_f64();
        // Final card: the whole run's wall time and iteration count.
        if let Some(t) = card.training.as_mut() {
            t.iterations = c.iterations;
            t.wall_seconds = wall;
        }
        checkpoint::save(out, &kept, &card)?;
        let log = TrainingLog {
            config: c.clone(),
            events,
            best_val_dsc: best.map(|b| b.0),
            best_iteration: best.map_or(c.iterations, |b| b.1),
            wall_seconds: wall,
        };
        Ok((kept, log))
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
