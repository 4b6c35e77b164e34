//! `delinea train --manifest M --centre C [--config F] [overrides] --out MODEL_DIR`.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use delinea::dataset::Manifest;
use delinea::device::{self, BackendTask, DeviceRequest};
use delinea::train::{OptimizerKind, TrainConfig, TrainError, Trainer, TrainingData, TrainingLog};
use delinea::{fsutil, model};

use super::progress::{self, Mode};
use super::{print_json, ExitStatus, Global};

/// Train a 2D U-Net on the train split of one or more centres; the best weights on the val
/// split (median volume DSC) are kept as a checkpoint folder (weights + model-card.json,
/// training-log.json beside them).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The dataset manifest.
    #[arg(long)]
    manifest: PathBuf,
    /// Centre(s) to train on (repeat or comma-separate).
    #[arg(long = "centre", required = true, value_delimiter = ',')]
    centres: Vec<String>,
    /// Use this rater's labels (default: each centre's reference rater).
    #[arg(long)]
    rater: Option<String>,
    /// Training config (JSON, schema data-schema/train-config.schema.json); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Checkpoint folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Optimiser steps.
    #[arg(long)]
    iterations: Option<usize>,
    /// Slices per batch.
    #[arg(long)]
    batch: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// sgd or adam.
    #[arg(long, value_parser = parse_optimizer)]
    optimizer: Option<OptimizerKind>,
    /// Fraction of each batch drawn from tumour slices.
    #[arg(long)]
    tumour_fraction: Option<f64>,
    /// Validate every N iterations.
    #[arg(long)]
    validate_every: Option<usize>,
    /// Seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Slice side N (slices are resized to N x N).
    #[arg(long)]
    slice_size: Option<usize>,
    /// Feature channels per level, e.g. 16,32,64,128,256 (dropout rescaled to the paper's
    /// top levels unless the config gives one per level).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<usize>>,
    /// Compute device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
    /// Where stderr is not a terminal (logs, pipes), print a progress line every N iterations
    /// (0: only validations); on a terminal a progress bar shows every iteration.
    #[arg(long, default_value_t = 10, value_name = "N")]
    log_every: usize,
    /// Print the final summary as one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_optimizer(s: &str) -> Result<OptimizerKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "sgd" => Ok(OptimizerKind::Sgd),
        "adam" => Ok(OptimizerKind::Adam),
        _ => Err(format!("unknown optimizer {s:?}: expected sgd or adam")),
    }
}

/// The config file (or defaults) with the command line's overrides applied.
fn config(args: &Args) -> anyhow::Result<TrainConfig> {
    let mut c = match &args.config {
        Some(p) => TrainConfig::load(p)?,
        None => TrainConfig::default(),
    };
    let set = |dst: &mut usize, v: Option<usize>| {
        if let Some(v) = v {
            *dst = v;
        }
    };
    set(&mut c.iterations, args.iterations);
    set(&mut c.batch, args.batch);
    set(&mut c.validate_every, args.validate_every);
    set(&mut c.preprocessing.slice_size, args.slice_size);
    c.lr = args.lr.unwrap_or(c.lr);
    c.optimizer = args.optimizer.unwrap_or(c.optimizer);
    c.tumour_fraction = args.tumour_fraction.unwrap_or(c.tumour_fraction);
    c.seed = args.seed.unwrap_or(c.seed);
    if let Some(f) = &args.features {
        if f.len() != c.model.dropout.len() {
            // The paper's dropout profile, top levels first, padded with the last value.
            let paper = [0.05, 0.1, 0.2, 0.3, 0.5];
            c.model.dropout = (0..f.len()).map(|i| paper[i.min(paper.len() - 1)]).collect();
        }
        c.model.features = f.clone();
    }
    c.validate()?;
    Ok(c)
}

struct Task {
    config: TrainConfig,
    data: TrainingData,
    out: PathBuf,
    progress: progress::Training,
}

impl BackendTask for Task {
    type Output = Result<TrainingLog, TrainError>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let trainer = Trainer::<B>::new(self.config, device)?;
        let mut progress = self.progress;
        let (_, log) = trainer.fit(&self.data, &self.out, |e| progress.on_event(e))?;
        progress.finish();
        Ok(log)
    }
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let config = config(&args)?;
    let device = device::resolve(args.device)?;
    let manifest = Manifest::load(&args.manifest)?;
    for c in &args.centres {
        if manifest.centre(c).is_none() {
            anyhow::bail!("{}: no centre {c:?}", args.manifest.display());
        }
    }
    let data = TrainingData::load(&manifest, &args.centres, args.rater.clone(), &config)?;
    if !global.quiet {
        eprintln!(
            "training on {} ({} cases, {} slices of {n}x{n}; {} validation volumes) on {device}",
            args.centres.join(","),
            data.train.cases.len(),
            data.train.len(),
            data.val.len(),
            n = config.preprocessing.slice_size,
        );
    }
    let task = Task {
        config,
        data,
        out: args.out.clone(),
        progress: progress::Training::new(Mode::detect(global.quiet), args.log_every),
    };
    let log = device::run_on(device, task)??;
    let log_path = args.out.join("training-log.json");
    let text = serde_json::to_string_pretty(&log)?;
    fsutil::write_bytes_atomic(&log_path, format!("{text}\n").as_bytes())
        .with_context(|| format!("writing {}", log_path.display()))?;
    let summary = serde_json::json!({
        "model": args.out,
        "best_val_dsc": log.best_val_dsc,
        "best_iteration": log.best_iteration,
        "iterations": log.config.iterations,
        "wall_seconds": log.wall_seconds,
        "iterations_per_second": log.config.iterations as f64 / log.wall_seconds.max(1e-9),
    });
    if args.json {
        print_json(&summary)?;
    } else if !global.quiet {
        println!(
            "wrote {} (best validation median DSC {} at iteration {}; {} iterations in {:.1} s)",
            args.out.join(model::checkpoint::CARD_FILE).display(),
            log.best_val_dsc.map_or("n/a".into(), |d| format!("{d:.4}")),
            log.best_iteration,
            log.config.iterations,
            log.wall_seconds
        );
    }
    Ok(ExitStatus::Success)
}
