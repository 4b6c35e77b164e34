//! Checkpoints: a folder holding burn's record of the weights (`model.mpk`, named MessagePack,
//! full precision) and a `model-card.json` ([`ModelCard`]: architecture, preprocessing,
//! training data and outcome). Loading checks that the two fit together; inference takes its
//! preprocessing from the card.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::UNet2d;
use crate::preprocess::Preprocessing;
use crate::train::{Architecture, TrainConfig};

/// File name of the model card inside a checkpoint folder.
pub const CARD_FILE: &str = "model-card.json";
/// File name of the weights inside a checkpoint folder.
pub const WEIGHTS_FILE: &str = "model.mpk";
/// The `format` value of every model card.
pub const CARD_FORMAT: &str = "delinea-model-card";
/// The card layout version this delinea writes and reads.
pub const CARD_VERSION: u32 = 1;

/// What a model was trained on and how it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecord {
    /// The manifest the data came from.
    pub manifest: PathBuf,
    /// Training centres.
    pub centres: Vec<String>,
    /// Rater whose labels were used (`None`: each centre's reference rater).
    pub rater: Option<String>,
    /// Training cases (ids).
    pub train_cases: Vec<String>,
    /// Validation cases (ids) used to pick the checkpoint.
    pub val_cases: Vec<String>,
    /// Training slices.
    pub train_slices: usize,
    /// Iterations run.
    pub iterations: usize,
    /// Best median validation DSC (`None` without validation cases).
    pub best_val_dsc: Option<f64>,
    /// Iteration (1-based count of steps done) of the saved weights.
    pub best_iteration: usize,
    /// Wall time of the training, seconds.
    pub wall_seconds: f64,
    /// The full training config (seed included).
    pub config: TrainConfig,
}

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// Always `"delinea-model-card"`.
    pub format: String,
    /// Card layout version (1).
    pub format_version: u32,
    /// The delinea version that wrote it.
    pub delinea_version: String,
    /// The network.
    pub architecture: Architecture,
    /// Preprocessing that inference must reproduce.
    pub preprocessing: Preprocessing,
    /// Slice side the network was trained on (= `preprocessing.slice_size`).
    pub slice_size: usize,
    /// Trainable parameters (a check against the weights).
    pub trainable_params: usize,
    /// The weights file, relative to the folder.
    pub weights: String,
    /// Seed of the run.
    pub seed: u64,
    /// Training data and outcome (absent for a card written by hand around foreign weights).
    pub training: Option<TrainingRecord>,
    /// For a model the drop folder adapted: the labels that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelsRecord>,
    /// For a model imported from PyTorch or safetensors (`delinea model import`): the file
    /// and how its keys were mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<crate::interop::ImportRecord>,
}

/// The expert labels an adapted model learnt from (written by `delinea watch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelsRecord {
    /// The model it was adapted from.
    pub from_model: PathBuf,
    /// The adaptation strategy.
    pub strategy: String,
    /// The job that ran it.
    pub job: String,
    /// One entry per labelled case.
    pub labels: Vec<LabelUse>,
    /// Cases without a label that the adaptation also saw (pseudo-labelled or unlabelled).
    pub unlabelled_cases: usize,
}

/// One label an adapted model learnt from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelUse {
    /// The case.
    pub case: String,
    /// Whose label (`-`: not named).
    pub rater: String,
    /// The label file as dropped.
    pub input: String,
    /// Where the watcher keeps it.
    pub stored: PathBuf,
}

impl ModelCard {
    /// A card for `architecture` and `preprocessing` (weights in [`WEIGHTS_FILE`]).
    pub fn new(architecture: Architecture, preprocessing: Preprocessing, seed: u64) -> ModelCard {
        let trainable_params = architecture.to_config().trainable_params();
        ModelCard {
            format: CARD_FORMAT.into(),
            format_version: CARD_VERSION,
            delinea_version: env!("CARGO_PKG_VERSION").into(),
            slice_size: preprocessing.slice_size,
            architecture,
            preprocessing,
            trainable_params,
            weights: WEIGHTS_FILE.into(),
            seed,
            training: None,
            labels: None,
            imported: None,
        }
    }
}

/// Why a checkpoint could not be written or loaded. Every variant names the folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file could not be read or written.
    #[error("checkpoint {dir}: {file}: {source}")]
    Io {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The model card is not valid JSON of the expected shape.
    #[error("checkpoint {dir}: {CARD_FILE} is not a valid model card: {source}")]
    Card {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The card is inconsistent (wrong format, version, slice size, architecture).
    #[error("checkpoint {dir}: {CARD_FILE}: {reason}")]
    BadCard {
        /// The checkpoint folder.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The weights file could not be decoded.
    #[error("checkpoint {dir}: {file} cannot be read as burn weights: {reason}")]
    Weights {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The weights file.
        file: String,
        /// The recorder's error.
        reason: String,
    },
    /// The weights do not belong to the card's architecture.
    #[error("checkpoint {dir}: {file} does not fit the card's architecture: {reason}")]
    Mismatch {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The weights file.
        file: String,
        /// The first difference found.
        reason: String,
    },
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// Writes `model`'s weights and `card` into `dir` (created if needed). Each file is written
/// under a temporary name and renamed, so a reader never sees half a file.
pub fn save<B: Backend>(dir: &Path, model: &UNet2d<B>, card: &ModelCard) -> Result<(), CheckpointError> {
    let io = |file: &str| {
        let (dir, file) = (dir.to_path_buf(), file.to_string());
        move |source| CheckpointError::Io { dir, file, source }
    };
    std::fs::create_dir_all(dir).map_err(io("."))?;
    // The recorder appends ".mpk" to the path it is given.
    let tmp = dir.join(".model-tmp");
    let mut params = NumberParams::default();
    let mut next = 1 << 32; // the running statistics, after every parameter
    let numbered = (model.clone().map(&mut params)).map_batch_norms(|bn| bn.with_numbered_statistics(&mut next));
    recorder()
        .record(numbered.into_record(), tmp.clone())
        .map_err(|e| CheckpointError::Weights {
            dir: dir.to_path_buf(),
            file: card.weights.clone(),
            reason: e.to_string(),
        })?;
    std::fs::rename(dir.join(".model-tmp.mpk"), dir.join(&card.weights)).map_err(io(&card.weights))?;
    let text = serde_json::to_string_pretty(card).map_err(|source| CheckpointError::Card {
        dir: dir.to_path_buf(),
        source,
    })?;
    crate::fsutil::write_bytes_atomic(&dir.join(CARD_FILE), format!("{text}\n").as_bytes()).map_err(io(CARD_FILE))
}

/// Gives every parameter the id of its position in the module (0, 1, …) instead of burn's
/// random ones, which the record stores: the same weights then save as the same bytes (the
/// running statistics are numbered by [`crate::model::BatchNorm2d::with_numbered_statistics`];
/// a mapper cannot change their ids).
#[derive(Default)]
struct NumberParams {
    next: u64,
}

impl<B: Backend> ModuleMapper<B> for NumberParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, tensor, mapper) = param.consume();
        self.next += 1;
        Param::from_mapped_value(ParamId::from(self.next - 1), tensor, mapper)
    }
}

/// Reads and checks the model card of checkpoint folder `dir`.
pub fn load_card(dir: &Path) -> Result<ModelCard, CheckpointError> {
    let path = dir.join(CARD_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| CheckpointError::Io {
        dir: dir.to_path_buf(),
        file: CARD_FILE.into(),
        source,
    })?;
    let card: ModelCard = serde_json::from_str(&text).map_err(|source| CheckpointError::Card {
        dir: dir.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| {
        Err(CheckpointError::BadCard {
            dir: dir.to_path_buf(),
            reason,
        })
    };
    if card.format != CARD_FORMAT || card.format_version != CARD_VERSION {
        return bad(format!(
            "format {:?} version {}, expected {CARD_FORMAT:?} version {CARD_VERSION}",
            card.format, card.format_version
        ));
    }
    if card.slice_size != card.preprocessing.slice_size {
        return bad(format!(
            "slice_size {} differs from preprocessing.slice_size {}",
            card.slice_size, card.preprocessing.slice_size
        ));
    }
    let config = card.architecture.to_config();
    if let Err(e) = config
        .validate()
        .and_then(|()| config.check_input_size(card.slice_size, card.slice_size))
    {
        return bad(e.to_string());
    }
    if config.trainable_params() != card.trainable_params {
        return bad(format!(
            "trainable_params {} but the architecture has {}",
            card.trainable_params,
            config.trainable_params()
        ));
    }
    if card.weights.contains(['/', '\\']) || !card.weights.ends_with(".mpk") || card.weights.len() < 5 {
        return bad(format!(
            "weights must be a `.mpk` file name inside the folder, found {:?}",
            card.weights
        ));
    }
    Ok(card)
}

/// Collects the shape of every float parameter, in visiting order.
struct Shapes(Vec<Vec<usize>>);

impl<B: Backend> ModuleVisitor<B> for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().dims().to_vec());
    }
}

fn shapes<B: Backend>(model: &UNet2d<B>) -> Vec<Vec<usize>> {
    let mut v = Shapes(Vec::new());
    model.visit(&mut v);
    v.0
}

/// Loads checkpoint folder `dir`: its card (checked by [`load_card`]) and the weights, checked
/// parameter by parameter against the card's architecture.
pub fn load<B: Backend>(dir: &Path, device: &B::Device) -> Result<(UNet2d<B>, ModelCard), CheckpointError> {
    let card = load_card(dir)?;
    let file = card.weights.clone();
    let path = dir.join(&file);
    if !path.is_file() {
        return Err(CheckpointError::Io {
            dir: dir.to_path_buf(),
            file,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let fresh = card
        .architecture
        .to_config()
        .init::<B>(device)
        .map_err(|e| CheckpointError::BadCard {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    let want = shapes(&fresh);
    let record = recorder()
        .load(path.clone(), device)
        .map_err(|e| CheckpointError::Weights {
            dir: dir.to_path_buf(),
            file: file.clone(),
            reason: e.to_string(),
        })?;
    // burn panics when a record's list of blocks is longer or shorter than the module's.
    let loaded = crate::panics::catch_silently(|| fresh.load_record(record));
    let mismatch = |reason: String| CheckpointError::Mismatch {
        dir: dir.to_path_buf(),
        file: file.clone(),
        reason,
    };
    let model = loaded.ok_or_else(|| mismatch("a different number of levels".into()))?;
    let got = shapes(&model);
    if got.len() != want.len() {
        return Err(mismatch(format!(
            "{} parameter tensors, the architecture has {}",
            got.len(),
            want.len()
        )));
    }
    if let Some((i, (g, w))) = got.iter().zip(&want).enumerate().find(|(_, (g, w))| g != w) {
        return Err(mismatch(format!(
            "parameter {i} has shape {g:?}, the architecture wants {w:?}"
        )));
    }
    Ok((model, card))
}
