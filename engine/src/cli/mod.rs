//! The command line: clap definitions (the low level) and the glue that turns them into
//! library calls. Nothing here computes; everything here may print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod adapt;
mod convert;
mod device;
mod experiment;
mod inspect;
mod metrics;
mod model;
mod plugins;
mod predict;
mod progress;
mod query;
mod report;
mod run;
mod schema;
mod serve;
mod synth;
mod train;
mod validate;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// delinea: adapt a tumour segmentation model to your hospital's MRI by labelling the scans
/// that matter.
#[derive(Debug, Parser)]
#[command(name = "delinea", version, about, long_about = None)]
pub struct Cli {
    /// Print nothing but errors and requested output.
    #[arg(long, global = true)]
    quiet: bool,
    /// A folder of native strategy plugins, found by name as `plugin:NAME` (repeatable; added
    /// to DELINEA_PLUGIN_PATH).
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    plugin_dirs: Vec<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a NIfTI file holds: dims, spacing, datatype, affine, intensity statistics.
    Inspect(inspect::Args),
    /// Check that every file of a dataset manifest exists, reads and matches its image.
    Validate(validate::Args),
    /// Write a synthetic multi-centre, multi-rater NPC cohort (NIfTI + manifest).
    Synth(synth::Args),
    /// Segmentation metrics of one prediction against one ground truth.
    Metrics(metrics::MetricsArgs),
    /// Metrics of a folder of predictions against a manifest's labels, per case and centre.
    Evaluate(metrics::EvaluateArgs),
    /// Paired Wilcoxon tests between two per-case result tables.
    Compare(metrics::CompareArgs),
    /// Convert a DICOM series to NIfTI, or a mask and its series to an RTSTRUCT or DICOM-SEG.
    Convert(convert::Args),
    /// Write the HTML report of an experiment's results folder.
    Report(report::Args),
    /// Write (or check) the JSON Schemas of every file delinea reads or writes.
    Schema(schema::Args),
    /// Train a 2D U-Net on one or more centres and keep the best checkpoint.
    Train(train::Args),
    /// Segment volumes with a trained model (masks, probabilities, MC-dropout maps).
    Predict(predict::Args),
    /// Source side: K-means reference points of the source training slices' descriptors, or
    /// `reference import` of the source side's centroids (.npy / .pt).
    Reference(query::ReferenceArgs),
    /// Target side: rank a centre's unlabelled training scans with a query strategy.
    Query(query::QueryArgs),
    /// Adapt the source model to a target with a labelled selection (and pseudo-labels).
    Adapt(adapt::Args),
    /// The paper's protocol end to end: source model, every target domain × method, tables.
    Experiment(experiment::ExperimentArgs),
    /// Synthesise the default cohort and run a CPU-sized experiment on it.
    Demo(experiment::DemoArgs),
    /// Bring a model in from PyTorch or safetensors, or take one out to safetensors or ONNX
    /// (README "Models from elsewhere").
    Model(model::Args),
    /// Run a protocol written as a Rhai script (scripts/README.md).
    Run(run::Args),
    /// List or inspect native strategy plugins (plugins/README.md).
    Plugins(plugins::Args),
    /// Watch a drop folder: predict each scan that lands, rank the pool for labelling, adapt
    /// to the labels that come back (README "Drop folder").
    Watch(watch::Args),
    /// Serve 3D Slicer's MONAILabel module (the MONAI Label protocol) over a drop folder's job
    /// state: next sample by the job's strategy, auto-segment, submit label, train.
    Serve(serve::Args),
    /// Pool the runs of a sharded experiment's folder into its tables and report.
    Gather(experiment::GatherArgs),
    /// Show which compute device `--device auto|cpu|cuda[:N]` resolves to here.
    Device(device::Args),
    /// Serve an experiment's runs over stdin and stdout (started by `experiment --jobs N`).
    #[command(hide = true)]
    ExperimentWorker,
}

/// How a run ended (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Success,
    /// The command ran, but found problems (invalid cases, failed checks).
    Failure,
    /// delinea could not do what was asked (bad input, I/O error).
    Error,
    /// Not now, maybe later: a dependency not ready, a stop signal, a GPU that did not answer
    /// (75, `EX_TEMPFAIL`: what schedulers retry).
    Retry,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        ExitCode::from(match s {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
            ExitStatus::Retry => delinea::cluster::RETRY_EXIT_CODE,
        })
    }
}

/// Options every command sees.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    /// `--quiet`.
    pub quiet: bool,
}

/// Parses the command line, runs it, prints any error with its causes, and exits.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.plugin_dirs.is_empty() {
        // Before any thread starts: the plugin folders reach the resolver and the worker
        // processes an experiment starts through the environment.
        let mut dirs = cli.plugin_dirs.clone();
        dirs.extend(
            std::env::var_os("DELINEA_PLUGIN_PATH")
                .map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        if let Ok(joined) = std::env::join_paths(dirs) {
            std::env::set_var("DELINEA_PLUGIN_PATH", joined);
        }
    }
    size_thread_pool();
    let global = Global { quiet: cli.quiet };
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(a, global),
        Command::Validate(a) => validate::run(a, global),
        Command::Synth(a) => synth::run(a, global),
        Command::Metrics(a) => metrics::run_metrics(a, global),
        Command::Evaluate(a) => metrics::run_evaluate(a, global),
        Command::Compare(a) => metrics::run_compare(a, global),
        Command::Schema(a) => schema::run(a, global),
        Command::Convert(a) => convert::run(a, global),
        Command::Report(a) => report::run(a, global),
        Command::Device(a) => device::run(a, global),
        Command::Train(a) => train::run(a, global),
        Command::Predict(a) => predict::run(a, global),
        Command::Reference(a) => query::run_reference(a, global),
        Command::Model(a) => model::run(a, global),
        Command::Query(a) => query::run_query(a, global),
        Command::Adapt(a) => adapt::run(a, global),
        Command::Experiment(a) => experiment::run_experiment(a, global),
        Command::Demo(a) => experiment::run_demo(a, global),
        Command::Gather(a) => experiment::run_gather(a, global),
        Command::Run(a) => run::run(a, global),
        Command::Plugins(a) => plugins::run(a, global),
        Command::Watch(a) => watch::run(a, global),
        Command::Serve(a) => serve::run(a, global),
        Command::ExperimentWorker => experiment::run_worker(),
    };
    match result {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("delinea: error: {}", describe(&e));
            failure(&e).into()
        }
    }
}

/// The error and its causes joined with ": ", leaving out a cause whose text the message so far
/// already ends with (an error that quotes its source in its own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.ends_with(&text) {
            out = format!("{out}: {text}");
        }
    }
    out
}

/// Exit 75 for an error that may pass by itself (retry), else 2.
fn failure(e: &anyhow::Error) -> ExitStatus {
    let temporary = e.chain().any(|cause| {
        let experiment = cause
            .downcast_ref::<delinea::experiment::Error>()
            .is_some_and(|e| e.is_temporary());
        let device = matches!(
            cause.downcast_ref::<delinea::device::Error>(),
            Some(delinea::device::Error::CudaUnavailable { .. })
        );
        experiment || device
    });
    match temporary {
        true => ExitStatus::Retry,
        false => ExitStatus::Error,
    }
}

/// Sizes the global thread pool to the CPUs this task was given (`SLURM_CPUS_PER_TASK`, the
/// cgroup quota, the affinity mask), unless RAYON_NUM_THREADS says otherwise.
fn size_thread_pool() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let threads = delinea::cluster::cpu_budget(|name| std::env::var(name).ok());
    // Fails only when the pool already exists, which it cannot before the command runs.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

/// Prints `value` as one line of JSON.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
