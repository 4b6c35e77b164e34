//! The paper's protocol end to end (`delinea experiment`, `delinea demo`): train the source
//! model once, compute its reference points once, then for every target domain run
//! source-only, every query × adaptation pair and the supervised bound, score each on the
//! domain's test cases, and tabulate median [IQR] and paired Wilcoxon tests (METHOD.md steps
//! 3-8).
//!
//! # Brief overview
//! An [`Experiment`] (manifest, source, targets, [`ExperimentConfig`], output folder) is
//! resolved into a [`Plan`] — [`Domain`]s (a centre, or a rater of the multi-rater centre)
//! and [`Method`]s — before anything is computed, so that bad input fails at once. [`run`]
//! then works through the plan on the chosen device, recording each finished (domain,
//! method) run on disk ([`store`]) so that an interrupted experiment picks up where it
//! stopped, and writes the tables ([`table`]) from the recorded per-case results
//! ([`stats`]). [`demo`] does the same on a freshly synthesised cohort.
//!
//! The work itself is the other stages': [`crate::train`] trains and executes adaptation
//! plans, [`crate::strategy::query`] builds the pool and selects, [`crate::infer`] predicts,
//! [`crate::metrics`] scores and tests. This module only sequences them, and never prints:
//! progress goes to a callback as [`Event`]s.

mod config;
pub mod demo;
mod evaluate;
pub mod labelled;
mod plan;
pub mod replicates;
mod runner;
pub mod stats;
pub mod store;
pub mod table;
#[cfg(test)]
mod tests;
mod workers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use config::{replicate_seed, AdaptationConfig, ExperimentConfig, ReferenceConfig, MAX_REPLICATES};
pub use evaluate::Scorer;
pub use plan::{deal, Domain, Method, Plan};
pub use store::Store;
pub use table::Results;
pub use workers::{serve as serve_worker, WorkerSpec, Workers};

pub use crate::cluster::Shard;
use crate::dataset::{Manifest, Split};
use crate::device::{self, Device};
use crate::metrics::ResultsTable;

/// Why an experiment could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] crate::dataset::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] crate::report::Error),
    /// The experiment config file is not valid JSON of its schema.
    #[error("invalid experiment config {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// A config field has an unusable value.
    #[error("invalid experiment config: `{field}` {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The source training config is unusable.
    #[error("invalid experiment config: source: {0}")]
    SourceConfig(crate::train::ConfigError),
    /// The source centre is not in the manifest.
    #[error("{manifest}: no source centre {source_centre:?}")]
    UnknownSource {
        /// The manifest.
        manifest: PathBuf,
        /// The centre asked for.
        source_centre: String,
    },
    /// No target domain was given.
    #[error("no target domain: give --targets, e.g. C2,C3,R1")]
    NoTargets,
    /// A target is neither a centre nor a rater of the manifest.
    #[error("unknown target {target:?}: {manifest} has centres {centres:?} and raters {raters:?}")]
    UnknownTarget {
        /// The target asked for.
        target: String,
        /// The manifest.
        manifest: PathBuf,
        /// Its centres.
        centres: Vec<String>,
        /// Its raters (with at least one label).
        raters: Vec<String>,
    },
    /// A rater delineated cases of several target centres.
    #[error("target rater {rater:?} delineated cases of several centres ({centres:?}): give a centre instead")]
    AmbiguousRater {
        /// The rater.
        rater: String,
        /// The centres.
        centres: Vec<String>,
    },
    /// A target is the source centre (or a rater of only source cases).
    #[error("target {target:?} lies in the source centre {source_centre:?}: a target must be another domain")]
    SourceInTargets {
        /// The target as given.
        target: String,
        /// The source centre.
        source_centre: String,
    },
    /// A domain has no labelled case in a split it needs.
    #[error("target {domain:?} has no labelled case in its {split} split")]
    NoCases {
        /// The domain.
        domain: String,
        /// The split.
        split: Split,
    },
    /// A name listed twice.
    #[error("{what} {name:?} is listed twice")]
    Duplicate {
        /// target, query or adaptation.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// `none` or `supervised` among the adaptations crossed with queries.
    #[error("adaptation {adapt:?} always runs on its own (source-only / supervised bound): leave it out of --adapts")]
    AlwaysRun {
        /// The name.
        adapt: String,
    },
    /// Finished results in the output folder come from other settings.
    #[error(
        "{path} was produced with other settings:\n  {}\nuse another --out, or delete the runs (and experiment.json) to recompute them with these settings",
        differences.join("\n  ")
    )]
    Changed {
        /// The marker or record that differs.
        path: PathBuf,
        /// `field: old then, new now`, one per difference.
        differences: Vec<String>,
    },
    /// A per-case table that cannot be pooled.
    #[error("{path}: {reason}")]
    Table {
        /// The table.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A query strategy failed or is unknown.
    #[error(transparent)]
    Query(#[from] crate::strategy::query::Error),
    /// An adaptation strategy is unknown.
    #[error(transparent)]
    Adapt(#[from] crate::strategy::adapt::Error),
    /// Source training failed.
    #[error("source model: {0}")]
    Train(#[from] crate::train::TrainError),
    /// An adaptation failed.
    #[error(transparent)]
    Adaptation(#[from] crate::train::AdaptError),
    /// A checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] crate::model::checkpoint::CheckpointError),
    /// A volume could not be read.
    #[error(transparent)]
    Volume(#[from] crate::volume::Error),
    /// A per-case table could not be read or compared.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::Error),
    /// The device cannot run the experiment.
    #[error(transparent)]
    Device(#[from] crate::device::Error),
    /// The demo cohort could not be synthesised.
    #[error(transparent)]
    Synth(#[from] crate::synth::Error),
    /// A value could not be turned into JSON.
    #[error("JSON: {0}")]
    Json(serde_json::Error),
    /// A run failed in (or could not be handed to) a worker.
    #[error("run {domain} {method}: {reason}")]
    Worker {
        /// The run's domain id (empty when no run was in hand).
        domain: String,
        /// The run's method id.
        method: String,
        /// What went wrong.
        reason: String,
    },
    /// A worker process failed, or was given something it cannot read.
    #[error("worker: {reason}")]
    WorkerFailed {
        /// What went wrong, as the worker said it.
        reason: String,
    },
    /// A worker's thread pool could not be built.
    #[error("{0}")]
    Threads(String),
    /// A unit this shard depends on is not finished (by another shard) yet, or this process was
    /// stopped: exit 75, retry later.
    #[error("{reason}")]
    NotReady {
        /// What is missing, and what to do.
        reason: String,
    },
    /// A unit names a domain or method that is not in the plan.
    #[error("no run {domain} {method} in this experiment")]
    UnknownUnit {
        /// The domain id.
        domain: String,
        /// The method id.
        method: String,
    },
}

/// What to run: the data, the domains, the config and where results go.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The dataset manifest.
    pub manifest: PathBuf,
    /// The source centre.
    pub source: String,
    /// Target domains: centre ids, or rater ids of a multi-rater centre.
    pub targets: Vec<String>,
    /// The config.
    pub config: ExperimentConfig,
    /// The output folder (resumable).
    pub out: PathBuf,
    /// How the runs are computed: one at a time in this process, or side by side in worker
    /// processes.
    pub workers: Workers,
    /// The share of the units this process runs ([`Shard::WHOLE`]: all of them).
    pub shard: Shard,
    /// How long a shard waits for the source unit another shard computes before it gives up
    /// with [`Error::NotReady`].
    pub wait: Duration,
}

impl Error {
    /// Whether running again later may succeed (exit 75): a unit of another shard not ready,
    /// a GPU that did not answer. Bad input and failed computations are not.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::NotReady { .. } | Error::Device(crate::device::Error::CudaUnavailable { .. })
        )
    }
}

/// Progress of an experiment, sent to the callback of [`run`] (and, as JSON lines, from a
/// worker process to the experiment that started it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The demo's cohort was written, or found from an earlier run.
    Cohort {
        /// Its folder.
        path: PathBuf,
        /// Found rather than written.
        reused: bool,
        /// Seconds spent.
        seconds: f64,
    },
    /// The source model starts training.
    SourceStarted {
        /// Training slices.
        slices: usize,
    },
    /// The source model was taken from the config's `source_model` (not trained).
    SourceTaken {
        /// The folder it came from.
        from: PathBuf,
    },
    /// The source model was trained, or found from an earlier run.
    Source {
        /// Found rather than trained.
        reused: bool,
        /// Best validation median DSC, when trained now.
        best_val_dsc: Option<f64>,
        /// Seconds spent.
        seconds: f64,
    },
    /// A training step or validation, of the source model (`run` is `None`) or of an
    /// adaptation.
    Training {
        /// `(domain, method)` of an adaptation.
        run: Option<(String, String)>,
        /// The trainer's event.
        step: crate::train::Event,
    },
    /// The source reference points were computed, or found.
    References {
        /// Found rather than computed.
        reused: bool,
        /// Reference points.
        points: usize,
        /// Seconds spent.
        seconds: f64,
    },
    /// A run starts.
    RunStarted {
        /// Domain id.
        domain: String,
        /// Method id.
        method: String,
        /// 1-based position among all runs of the plan.
        index: usize,
        /// Runs in the plan.
        total: usize,
    },
    /// A step of a run finished: `query` (pool included), `adapt` or `evaluate`.
    Step {
        /// Domain id.
        domain: String,
        /// Method id.
        method: String,
        /// The step.
        step: String,
        /// Seconds spent.
        seconds: f64,
    },
    /// A run finished now.
    RunFinished {
        /// Domain id.
        domain: String,
        /// Method id.
        method: String,
        /// Its marker (cases, failures, median DSC, seconds per step).
        marker: store::RunMarker,
    },
    /// This shard waits for a unit another shard computes.
    Waiting {
        /// The unit (`source`).
        unit: String,
        /// The shard that owns it, `K/N`.
        owner: String,
        /// How long it waits at most, seconds.
        seconds: f64,
    },
    /// The runs of replicate `index` (of `count`) start: the events that follow are its own.
    Replicate {
        /// 0-based replicate.
        index: usize,
        /// Replicates of the experiment.
        count: usize,
        /// Its folder.
        out: PathBuf,
    },
    /// A run was finished by an earlier invocation and is skipped.
    RunSkipped {
        /// Domain id.
        domain: String,
        /// Method id.
        method: String,
        /// 1-based position among all runs of the plan.
        index: usize,
        /// Runs in the plan.
        total: usize,
    },
}

/// What [`run`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The output folder.
    pub out: PathBuf,
    /// The share of the units this process ran.
    pub shard: Shard,
    /// Runs computed now.
    pub ran: usize,
    /// Runs finished earlier and skipped.
    pub skipped: usize,
    /// Runs of other shards.
    pub others: usize,
    /// Whether the source model came from an earlier invocation (or another shard).
    pub source_reused: bool,
    /// The config's `source_model`, when the source model was taken rather than trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_taken: Option<PathBuf>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Runs of the experiment not finished yet (by other shards), `domain/method`: the pooled
    /// outputs wait for them ([`gather`]).
    pub pending: Vec<String>,
    /// The results (also in `results.json`), once every run is finished.
    pub results: Option<Results>,
    /// `table.md`.
    #[serde(skip)]
    pub markdown: String,
    /// `summary.md`.
    #[serde(skip)]
    pub summary: String,
}

/// Runs `experiment` on `device`: checks everything first (bad names, a source among the
/// targets, results in the folder from other settings are errors before any computation),
/// then trains or reuses the source model, runs every unfinished (domain, method) pair of its
/// shard and, once every run of the experiment is finished, writes `cases.csv`,
/// `results.json`, the tables and the report into the output folder.
pub fn run(experiment: &Experiment, device: Device, progress: &mut dyn FnMut(&Event)) -> Result<Report, Error> {
    let start = Instant::now();
    let manifest = Manifest::load(&experiment.manifest)?;
    let plan = Plan::new(
        manifest,
        &experiment.source,
        &experiment.targets,
        experiment.config.clone(),
        &resolver(&experiment.manifest, &experiment.out, device),
    )?;
    let replicates = replicates(&plan, &experiment.out, Store::open)?;
    let task = runner::Task {
        replicates: &replicates,
        owners: plan.deal(experiment.shard.count),
        workers: &experiment.workers,
        shard: experiment.shard,
        wait: experiment.wait,
        spec: WorkerSpec {
            manifest: experiment.manifest.clone(),
            source: experiment.source.clone(),
            targets: experiment.targets.clone(),
            config: experiment.config.clone(),
            out: experiment.out.clone(),
            device: device.to_string(),
            replicate: 0,
        },
        progress,
    };
    let counts = device::run_on(device, task)??;
    let pending = pending(&replicates);
    let results = match pending.is_empty() {
        true => Some(write_outputs(&replicates)?),
        false => None,
    };
    Ok(Report {
        out: experiment.out.clone(),
        shard: experiment.shard,
        ran: counts.ran,
        skipped: counts.skipped,
        others: counts.others,
        source_reused: counts.source_reused,
        source_taken: plan.config.source_model.clone(),
        seconds: start.elapsed().as_secs_f64(),
        pending,
        markdown: results.as_ref().map(table::markdown).unwrap_or_default(),
        summary: results.as_ref().map(table::summary).unwrap_or_default(),
        results,
    })
}

/// Every replicate of `plan` (its `replicates`), each with its seeds and its folder in `out`
/// ([`store::replicate_root`]), opened with `open` ([`Store::open`] or [`Store::attach`]).
fn replicates(
    plan: &Plan,
    out: &Path,
    open: fn(&Path, &Plan) -> Result<Store, Error>,
) -> Result<Vec<runner::Replicate>, Error> {
    (0..plan.config.replicates)
        .map(|index| {
            let replicate = plan.replicate(index);
            // The top folder records the whole plan, replicates included (`delinea gather`).
            let recorded = if index == 0 { plan } else { &replicate };
            let store = open(&store::replicate_root(out, index), recorded)?;
            Ok(runner::Replicate {
                index,
                plan: replicate,
                store,
            })
        })
        .collect()
}

/// `delinea gather`: the pooled outputs of the experiment folder `out` (every shard's runs),
/// from the plan its `experiment.json` records. Runs not finished yet are [`Error::NotReady`].
pub fn gather(out: &Path) -> Result<Report, Error> {
    let start = Instant::now();
    let plan = store::recorded_plan(out)?;
    let replicates = replicates(&plan, out, Store::attach)?;
    let pending = pending(&replicates);
    let total = replicates.len() * plan.domains.len() * plan.methods.len();
    if !pending.is_empty() {
        return Err(Error::NotReady {
            reason: format!(
                "{}: {} of {total} runs are not finished: {}; run their shards (again) first",
                out.display(),
                pending.len(),
                pending.join(", ")
            ),
        });
    }
    let results = write_outputs(&replicates)?;
    Ok(Report {
        out: out.to_path_buf(),
        shard: Shard::WHOLE,
        ran: 0,
        skipped: total,
        others: 0,
        source_reused: true,
        source_taken: plan.config.source_model.clone(),
        seconds: start.elapsed().as_secs_f64(),
        pending,
        markdown: table::markdown(&results),
        summary: table::summary(&results),
        results: Some(results),
    })
}

/// The runs of every replicate without a valid `done.json` in its folder, as their unit ids
/// (`domain/method`, `r<k>/domain/method` for replicate k ≥ 1).
fn pending(replicates: &[runner::Replicate]) -> Vec<String> {
    let mut out = Vec::new();
    for r in replicates {
        for d in &r.plan.domains {
            for m in &r.plan.methods {
                if r.store.finished_run(d, m).is_none() {
                    out.push(plan::replicate_unit(r.index, &plan::unit_id(d, m)));
                }
            }
        }
    }
    out
}

/// The strategy resolver of an experiment: plugins may read the manifest's folder and run the
/// source model (`out/source/model`) on `device`.
pub(crate) fn resolver(manifest: &Path, out: &Path, device: Device) -> crate::strategy::Resolver {
    let folder = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let services = crate::plugin::PluginServices {
        sandbox: crate::script::Sandbox::new(&[folder.to_path_buf()], &base)
            .unwrap_or_else(|_| crate::script::Sandbox::none()),
        model: Some(out.join("source").join("model")),
        device,
    };
    crate::strategy::Resolver::new().with_plugin_services(services)
}

/// Reads every run's per-case table (and each query's selection) and writes the experiment's
/// five output files; with several replicates, each replicate's into its own folder, and at
/// the top replicate 0's with the spread across them all.
fn write_outputs(replicates: &[runner::Replicate]) -> Result<Results, Error> {
    let mut read = Vec::new();
    for r in replicates {
        read.push(read_replicate(&r.plan, &r.store)?);
    }
    if replicates.len() > 1 {
        for (r, (results, runs)) in replicates.iter().zip(&read).skip(1) {
            write_files(r.store.root(), results, runs)?;
        }
    }
    let (mut results, runs) = read.first().cloned().ok_or_else(|| Error::Config {
        field: "replicates",
        reason: "must be at least 1".into(),
    })?;
    if replicates.len() > 1 {
        results.replicates = Some(spread(replicates, &read)?);
    }
    write_files(replicates[0].store.root(), &results, &runs)?;
    Ok(results)
}

/// Each domain's runs of one replicate: its id, and each method's per-case table in plan order.
type Runs = Vec<(String, replicates::DomainRuns)>;

/// One replicate's results (without spread) and its per-case tables.
fn read_replicate(plan: &Plan, store: &Store) -> Result<(Results, Runs), Error> {
    let mut domains = Vec::new();
    let mut pooled = Vec::new();
    for d in &plan.domains {
        let runs = plan
            .methods
            .iter()
            .map(|m| Ok((m.clone(), crate::metrics::read_results(&store.run_cases(d, m))?)))
            .collect::<Result<Vec<(Method, ResultsTable)>, Error>>()?;
        let pairs = stats::comparison_pairs(&plan.methods, |m| plan.stdr_partner(m));
        let mut result = stats::domain_result(d, &runs, &pairs)?;
        labelled_slices(plan, store, d, &mut result)?;
        domains.push(result);
        pooled.push((d.id.clone(), runs));
    }
    let results = Results {
        format: "delinea-experiment-results",
        format_version: 1,
        delinea: crate::VERSION,
        commit: crate::COMMIT,
        cpu: crate::device::cpu_description(),
        source: plan.source.clone(),
        budget: plan.config.budget.clone(),
        unit: plan.config.unit,
        hd95: "pooled",
        nsd_tolerance_mm: crate::metrics::Options::default().tolerance_mm,
        domains,
        replicates: None,
    };
    Ok((results, pooled))
}

/// The spread of every domain over the replicates `read` holds (in replicate order).
fn spread(replicates: &[runner::Replicate], read: &[(Results, Runs)]) -> Result<replicates::Replicates, Error> {
    let runs = (replicates.iter())
        .map(|r| replicates::ReplicateRun {
            replicate: r.index,
            seed: r.plan.config.seed,
            source_seed: r.plan.config.source.seed,
            folder: match r.store.root().strip_prefix(replicates[0].store.root()) {
                Ok(p) if !p.as_os_str().is_empty() => p.display().to_string(),
                _ => ".".into(),
            },
        })
        .collect();
    let mut domains = Vec::new();
    for (i, d) in replicates[0].plan.domains.iter().enumerate() {
        let each: Vec<_> = read.iter().map(|(res, runs)| (&res.domains[i], &runs[i].1)).collect();
        domains.push(replicates::domain_spread(d, &each)?);
    }
    Ok(replicates::Replicates { runs, domains })
}

/// Writes `cases.csv`, `results.json`, the tables and the report into `root`.
fn write_files(root: &Path, results: &Results, runs: &Runs) -> Result<(), Error> {
    let rows: Vec<(String, &Method, &ResultsTable)> = runs
        .iter()
        .flat_map(|(d, runs)| runs.iter().map(move |(m, t)| (d.clone(), m, t)))
        .collect();
    write_text(&root.join("cases.csv"), &table::cases_csv(&rows)?)?;
    store::write_json(&root.join("results.json"), results)?;
    write_text(&root.join("table.md"), &table::markdown(results))?;
    write_text(&root.join("table.csv"), &table::table_csv(&results.domains))?;
    write_text(&root.join(SUMMARY_FILE), &table::summary(results))?;
    crate::report::write_report(root, &root.join(REPORT_FILE))?;
    Ok(())
}

/// The experiment's HTML report (`delinea report`), its pictures in `report/` beside it.
pub const REPORT_FILE: &str = "report.html";

/// The experiment's short summary (`summary.md`), in the form the README shows the demo's.
pub const SUMMARY_FILE: &str = "summary.md";

/// Fills in what each query run of `domain` labelled, the tumour share of its pool and, when
/// checkpoints were picked on the validation split, how many labelled volumes that took.
fn labelled_slices(plan: &Plan, store: &Store, domain: &Domain, result: &mut stats::DomainResult) -> Result<(), Error> {
    let train = labelled::TumourSlices::load(&plan.manifest, domain, Split::Train)?;
    result.pool = Some(train.pool());
    for (method, r) in plan.methods.iter().zip(&mut result.methods) {
        if method.query.is_none() {
            continue;
        }
        let path = store.run_dir(domain, method).join("selection.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let selection: crate::strategy::query::Selection = serde_json::from_str(&text).map_err(|e| Error::Table {
            path,
            reason: format!("not a selection: {e}"),
        })?;
        r.labelled = Some(train.labelled(&selection));
    }
    if plan.config.adaptation.select == crate::strategy::adapt::SelectCheckpoint::BestTargetVal {
        let val = labelled::TumourSlices::load(&plan.manifest, domain, Split::Val)?;
        result.validation = Some(stats::ValidationLabels {
            volumes: val.volumes(),
            slices: val.pool(),
        });
    }
    Ok(())
}

fn write_text(path: &Path, text: &str) -> Result<(), Error> {
    crate::fsutil::write_bytes_atomic(path, text.as_bytes()).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
