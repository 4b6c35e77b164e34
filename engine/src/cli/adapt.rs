//! `delinea adapt`: adapt the source model to a target with the labels of a selection.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use delinea::dataset::Manifest;
use delinea::device::{self, BackendTask, DeviceRequest};
use delinea::strategy::adapt::{AdaptPlan, AdaptState, OptimizerKind, SelectCheckpoint};
use delinea::strategy::query::Selection;
use delinea::strategy::Resolver;
use delinea::train::{self, TrainConfig, TrainingLog};

use super::progress::{self, Mode};
use super::{print_json, ExitStatus, Global};

/// Adapt a source model to a target centre with a labelled selection.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source model (a model folder: `delinea train`'s or `delinea model import`'s).
    #[arg(long)]
    model: PathBuf,
    /// The selection whose labels arrived (`delinea query --out`).
    #[arg(long)]
    selection: PathBuf,
    /// The dataset manifest holding the target's labels.
    #[arg(long)]
    manifest: PathBuf,
    /// The target centre.
    #[arg(long)]
    centre: String,
    /// none, finetune, finetune+pseudo, finetune+pseudo-2stage, supervised, adabn, tent, or a
    /// Rhai policy `script:PATH.rhai` (its `fn plan(state)`).
    #[arg(long, default_value = "finetune+pseudo")]
    strategy: String,
    /// Training config (augmentation, seed, batch sizes; schema data-schema/train-config.schema.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Gradient steps (default: the config's).
    #[arg(long)]
    iterations: Option<usize>,
    /// Slices per batch (default: the config's).
    #[arg(long)]
    batch: Option<usize>,
    /// Optimiser (default: the config's, sgd).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    /// Base learning rate (default: the config's, 0.03; the paper's code names Adam at 1e-4 as
    /// the alternative).
    #[arg(long)]
    lr: Option<f64>,
    /// Fraction of each batch drawn from slices whose labels hold tumour (default: the
    /// config's, 0: uniform as the paper's code).
    #[arg(long, value_name = "F")]
    tumour_fraction: Option<f64>,
    /// Which weights to keep: `last` (only the selection's labels are read) or
    /// `best-target-val` (the best median DSC on the centre's validation split, as the paper's
    /// protocol; those labels count as labels the hospital drew). Label-free strategies (tent,
    /// adabn) always keep the last.
    #[arg(long, value_enum, default_value = "last")]
    select: SelectArg,
    /// Steps between validations with --select best-target-val (default: the config's).
    #[arg(long, value_name = "N")]
    validate_every: Option<usize>,
    /// Where stderr is not a terminal (logs, pipes), print a progress line every N iterations;
    /// on a terminal a progress bar shows every iteration.
    #[arg(long, default_value_t = 50)]
    log_every: usize,
    /// Compute device.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
    /// Print every training event as one JSON line on stderr (for a supervising program).
    #[arg(long)]
    progress_json: bool,
    /// Exit (75) as soon as stdin closes: a worker whose supervisor died stops training.
    #[arg(long, hide = true)]
    until_stdin_closes: bool,
    /// The adapted model's folder.
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

/// `--optimizer`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OptimizerArg {
    Sgd,
    Adam,
}

impl From<OptimizerArg> for OptimizerKind {
    fn from(o: OptimizerArg) -> OptimizerKind {
        match o {
            OptimizerArg::Sgd => OptimizerKind::Sgd,
            OptimizerArg::Adam => OptimizerKind::Adam,
        }
    }
}

/// `--select`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SelectArg {
    Last,
    BestTargetVal,
}

impl From<SelectArg> for SelectCheckpoint {
    fn from(s: SelectArg) -> SelectCheckpoint {
        match s {
            SelectArg::Last => SelectCheckpoint::Last,
            SelectArg::BestTargetVal => SelectCheckpoint::BestTargetVal,
        }
    }
}

struct Task {
    plan: AdaptPlan,
    selection: Selection,
    manifest: Manifest,
    source: PathBuf,
    config: TrainConfig,
    out: PathBuf,
    progress: progress::Training,
}

impl BackendTask for Task {
    type Output = Result<TrainingLog, train::AdaptError>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let mut progress = self.progress;
        let inputs = train::AdaptInputs {
            plan: &self.plan,
            selection: &self.selection,
            manifest: &self.manifest,
            source: &self.source,
            rater: None,
        };
        let log = train::execute_adapt_plan::<B>(inputs, self.config, &self.out, device, |e| progress.on_event(e));
        progress.finish();
        log
    }
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    if args.until_stdin_closes {
        exit_when_stdin_closes();
    }
    let services = super::query::plugin_services(&args.manifest, &args.model, args.device)?;
    let strategy = Resolver::new()
        .with_plugin_services(services)
        .resolve_adapt(&args.strategy)?;
    let mut config = match &args.config {
        Some(p) => TrainConfig::load(p)?,
        None => TrainConfig::default(),
    };
    config.iterations = args.iterations.unwrap_or(config.iterations);
    config.batch = args.batch.unwrap_or(config.batch);
    config.optimizer = args.optimizer.map_or(config.optimizer, Into::into);
    config.lr = args.lr.unwrap_or(config.lr);
    config.tumour_fraction = args.tumour_fraction.unwrap_or(config.tumour_fraction);
    config.validate_every = args.validate_every.unwrap_or(config.validate_every);
    config.validate()?;
    let text =
        std::fs::read_to_string(&args.selection).with_context(|| format!("reading {}", args.selection.display()))?;
    let selection: Selection =
        serde_json::from_str(&text).with_context(|| format!("{}: not a selection file", args.selection.display()))?;
    let manifest = Manifest::load(&args.manifest)?;
    if manifest.centre(&args.centre).is_none() {
        anyhow::bail!("{}: no centre {:?}", args.manifest.display(), args.centre);
    }
    let state = AdaptState {
        selection: selection.clone(),
        target: args.centre.clone(),
        schedule: config.schedule(args.select.into()),
    };
    let plan = strategy.plan(&state)?;
    train::check_supported(&plan)?;
    let device = device::resolve(args.device)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let task = Task {
        plan: plan.clone(),
        selection,
        manifest,
        source: args.model.clone(),
        config,
        out: args.out.clone(),
        progress: progress::Training::new(
            if args.progress_json {
                Mode::Json
            } else {
                Mode::detect(global.quiet)
            },
            args.log_every,
        ),
    };
    let log = device::run_on(device, task)??;
    for (name, text) in [
        ("adapt-plan.json", serde_json::to_string_pretty(&plan)?),
        ("training-log.json", serde_json::to_string_pretty(&log)?),
    ] {
        let path = args.out.join(name);
        delinea::fsutil::write_bytes_atomic(&path, format!("{text}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        print_json(
            &serde_json::json!({"strategy": plan.strategy, "target": plan.target, "out": args.out, "log": log}),
        )?;
    } else if !global.quiet {
        println!(
            "adapted with {} to {}: {}",
            plan.strategy,
            plan.target,
            args.out.display()
        );
    }
    Ok(ExitStatus::Success)
}

/// Watches stdin on a thread and exits 75 (EX_TEMPFAIL) when it closes: the supervisor is gone.
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut sink);
        #[allow(clippy::exit)]
        std::process::exit(75);
    });
}
