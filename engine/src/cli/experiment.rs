//! `delinea experiment` and `delinea demo`: flags into a library [`Experiment`], progress
//! lines on stderr, the Markdown table on stdout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use delinea::cluster::{signals, Shard, ShardOrigin};
use delinea::device::{self, DeviceRequest};
use delinea::experiment::{self, demo, Event, Experiment, ExperimentConfig, Report, Workers};

use super::query::{AggregateArg, UnitArg};
use super::{print_json, ExitStatus, Global};

/// Run the paper's protocol: source model, then every target domain with source-only, each
/// query × adaptation pair and the supervised bound; tables of median [IQR] and Wilcoxon tests.
#[derive(Debug, clap::Args)]
pub struct ExperimentArgs {
    /// The dataset manifest.
    #[arg(long)]
    manifest: PathBuf,
    /// The source centre (its train split trains the model, its val split picks the checkpoint).
    #[arg(long)]
    source: String,
    /// Target domains, comma-separated: centres (C2) or raters of a multi-rater centre (R2).
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<String>,
    /// Query strategies, comma-separated (default: the config's, random,entropy,stdr).
    #[arg(long, value_delimiter = ',')]
    queries: Option<Vec<String>>,
    /// Adaptations (default: the config's, finetune+pseudo): those that learn from labels are
    /// crossed with every query; label-free ones (tent, adabn) run once per domain.
    #[arg(long, value_delimiter = ',')]
    adapts: Option<Vec<String>>,
    /// Budget: a count (12), a fraction (0.2) or a percentage (20%).
    #[arg(long)]
    budget: Option<String>,
    /// What the budget counts.
    #[arg(long, value_enum)]
    unit: Option<UnitArg>,
    /// How a volume's score comes from its slices (volume unit).
    #[arg(long, value_enum)]
    aggregate: Option<AggregateArg>,
    /// MC-dropout samples for uncertainty strategies.
    #[arg(long, value_name = "T")]
    mc: Option<usize>,
    /// Source reference points K.
    #[arg(long)]
    k: Option<usize>,
    /// Source training iterations.
    #[arg(long, value_name = "N")]
    source_iterations: Option<usize>,
    /// An existing source model folder to adapt instead of training one (`delinea train`'s, or
    /// `delinea model import`'s from PyTorch); the config's `source_model`.
    #[arg(long, value_name = "DIR")]
    source_model: Option<PathBuf>,
    /// Existing source reference points for STDR (`delinea reference [import]`); the config's
    /// `source_references`. Default: computed from the source centre's training cases.
    #[arg(long, value_name = "FILE")]
    source_references: Option<PathBuf>,
    /// Adaptation iterations.
    #[arg(long, value_name = "N")]
    adapt_iterations: Option<usize>,
    /// Adaptation batch size.
    #[arg(long, value_name = "N")]
    adapt_batch: Option<usize>,
    /// Adaptation learning rate.
    #[arg(long, value_name = "LR")]
    adapt_lr: Option<f64>,
    /// Seed of everything (source training, queries, MC dropout, k-means, adaptation).
    #[arg(long)]
    seed: Option<u64>,
    /// Run the whole protocol N times, each replicate with its own seeds (replicate 0: --seed's);
    /// the tables give every replicate's medians and their spread. The config's `replicates`.
    #[arg(long, value_name = "N")]
    replicates: Option<usize>,
    /// Experiment config (JSON, data-schema/experiment-config.schema.json); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder; an interrupted experiment resumes from it.
    #[arg(long)]
    out: PathBuf,
    /// Run only shard K of N (K from 0 to N-1) of the runs; the shards may run one after
    /// another or at once, on machines sharing --out. Default: from SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX and --shard-count.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// The number of shards, for an index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's
    /// completions).
    #[arg(long, value_name = "N")]
    shard_count: Option<usize>,
    /// Seconds a shard waits for the source model another shard trains, before it exits 75
    /// (retry).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    wait: u64,
    #[command(flatten)]
    output: OutputArgs,
}

/// Pool the finished runs of a (sharded) experiment folder into its tables and report.
#[derive(Debug, clap::Args)]
pub struct GatherArgs {
    /// The experiment folder (--out of every shard).
    dir: PathBuf,
    /// Print the report as one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Synthesise the default cohort and run a CPU-sized experiment on it; prints the table.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder (cohort in DIR/cohort); a second call resumes.
    #[arg(long, default_value = "delinea-demo")]
    out: PathBuf,
    /// Seed of the cohort and of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run the protocol N times on the same cohort, each replicate with its own seeds (replicate
    /// 0 is the default demo); about 4.5 minutes more per replicate on 2 cores.
    #[arg(long, value_name = "N", default_value_t = 1)]
    replicates: usize,
    #[command(flatten)]
    output: OutputArgs,
}

/// Device and printing options of both commands.
#[derive(Debug, clap::Args)]
struct OutputArgs {
    /// Compute device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
    /// Runs adapted and evaluated side by side, each in a worker process of its own (default:
    /// on the CPU one per core, on a GPU 1). The source model and the queries use every thread.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Threads of each run (default: the cores shared among the jobs). A run's numbers depend
    /// on its thread count only, not on --jobs.
    #[arg(long, value_name = "T")]
    threads: Option<usize>,
    /// Print a training progress line every N iterations (0: none).
    #[arg(long, default_value_t = 100, value_name = "N")]
    log_every: usize,
    /// Print the report as one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The config file (or defaults) with the flags applied.
fn config(args: &ExperimentArgs) -> anyhow::Result<ExperimentConfig> {
    let mut c = match &args.config {
        Some(p) => ExperimentConfig::load(p)?,
        None => ExperimentConfig::default(),
    };
    c.queries = args.queries.clone().unwrap_or(c.queries);
    c.adapts = args.adapts.clone().unwrap_or(c.adapts);
    c.budget = args.budget.clone().unwrap_or(c.budget);
    c.unit = args.unit.map_or(c.unit, Into::into);
    c.aggregate = args.aggregate.map_or(c.aggregate, Into::into);
    c.mc_samples = args.mc.unwrap_or(c.mc_samples);
    c.references.k = args.k.unwrap_or(c.references.k);
    c.source.iterations = args.source_iterations.unwrap_or(c.source.iterations);
    c.source_model = args.source_model.clone().or(c.source_model);
    c.source_references = args.source_references.clone().or(c.source_references);
    c.adaptation.iterations = args.adapt_iterations.unwrap_or(c.adaptation.iterations);
    c.adaptation.batch = args.adapt_batch.unwrap_or(c.adaptation.batch);
    c.adaptation.lr = args.adapt_lr.unwrap_or(c.adaptation.lr);
    if let Some(seed) = args.seed {
        (c.seed, c.source.seed) = (seed, seed);
    }
    c.replicates = args.replicates.unwrap_or(c.replicates);
    Ok(c)
}

pub fn run_experiment(args: ExperimentArgs, global: Global) -> anyhow::Result<ExitStatus> {
    let env = |name: &str| std::env::var(name).ok();
    let (shard, origin) = Shard::resolve(args.shard, args.shard_count, env)?;
    signals::exit_on_stop("the experiment").context("cannot install the signal handlers")?;
    let device = device::resolve(args.output.device)?;
    let experiment = Experiment {
        manifest: args.manifest.clone(),
        source: args.source.clone(),
        targets: args.targets.clone(),
        config: config(&args)?,
        out: args.out.clone(),
        workers: workers(&args.output, device)?,
        shard,
        wait: Duration::from_secs(args.wait),
    };
    let mut printer = Printer::new(global.quiet, args.output.log_every);
    if !global.quiet && !shard.is_whole() {
        let from = match origin {
            ShardOrigin::Slurm => " (from SLURM_ARRAY_TASK_ID)",
            ShardOrigin::Kubernetes => " (from JOB_COMPLETION_INDEX)",
            ShardOrigin::Flag | ShardOrigin::Whole => "",
        };
        eprintln!("shard {shard}{from}: running its share of the runs");
    }
    let report = experiment::run(&experiment, device, &mut |e| printer.event(e))?;
    finish(&report, &report.markdown, &args.output, global, printer.start)
}

/// `delinea gather DIR`: the pooled outputs once every shard's runs are finished.
pub fn run_gather(args: GatherArgs, global: Global) -> anyhow::Result<ExitStatus> {
    let start = Instant::now();
    let report = experiment::gather(&args.dir)?;
    let output = OutputArgs {
        device: DeviceRequest::Cpu,
        jobs: None,
        threads: None,
        log_every: 0,
        json: args.json,
    };
    finish(&report, &report.markdown, &output, global, start)
}

pub fn run_demo(args: DemoArgs, global: Global) -> anyhow::Result<ExitStatus> {
    signals::exit_on_stop("the demo").context("cannot install the signal handlers")?;
    let device = device::resolve(args.output.device)?;
    let mut printer = Printer::new(global.quiet, args.output.log_every);
    let workers = workers(&args.output, device)?;
    let options = demo::Options {
        seed: args.seed,
        replicates: args.replicates,
    };
    let report = demo::run(&args.out, options, device, workers, &mut |e| printer.event(e))?;
    finish(&report, &report.summary, &args.output, global, printer.start)
}

/// `--jobs` and `--threads`, served by this executable.
fn workers(output: &OutputArgs, device: device::Device) -> anyhow::Result<Workers> {
    let jobs = output.jobs.unwrap_or(match device {
        device::Device::Cpu => rayon::current_num_threads(),
        device::Device::Cuda { .. } => 1,
    });
    anyhow::ensure!(jobs > 0, "--jobs must be at least 1");
    anyhow::ensure!(output.threads != Some(0), "--threads must be at least 1");
    let program = std::env::current_exe().ok();
    Ok(Workers::new(jobs, output.threads, program))
}

/// `delinea experiment-worker`: serves the runs an experiment hands it over stdin and stdout.
pub fn run_worker() -> anyhow::Result<ExitStatus> {
    signals::exit_on_stop("the experiment worker").context("cannot install the signal handlers")?;
    let stdout = std::io::stdout();
    experiment::serve_worker(std::io::stdin().lock(), stdout.lock())?;
    Ok(ExitStatus::Success)
}

/// The summary line, then `table` (`table.md` for an experiment, `summary.md` for the demo) or
/// the JSON report; exit 1 when a case could not be evaluated.
fn finish(
    report: &Report,
    table: &str,
    output: &OutputArgs,
    global: Global,
    start: Instant,
) -> anyhow::Result<ExitStatus> {
    let Some(results) = &report.results else {
        return shard_finished(report, output, global);
    };
    let errors: usize = results.domains.iter().flat_map(|d| &d.methods).map(|m| m.errors).sum();
    if !global.quiet {
        eprintln!(
            "experiment finished: {} runs ({} now, {} finished earlier), source model {}; total wall time {}; wrote {}",
            report.ran + report.skipped,
            report.ran,
            report.skipped,
            match (&report.source_taken, report.source_reused) {
                (Some(dir), _) => format!("taken from {}", dir.display()),
                (None, true) => "reused".into(),
                (None, false) => "trained".into(),
            },
            duration(start.elapsed().as_secs_f64()),
            report
                .out
                .join("{table.md,summary.md,table.csv,results.json,cases.csv,report.html}")
                .display()
        );
        if errors > 0 {
            eprintln!("{errors} test case(s) could not be evaluated: see the message column of cases.csv");
        }
    }
    if output.json {
        print_json(report)?;
    } else if !global.quiet {
        print!("{table}");
    }
    Ok(if errors > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// A shard that finished its share while other shards' runs are not finished yet: no tables.
fn shard_finished(report: &Report, output: &OutputArgs, global: Global) -> anyhow::Result<ExitStatus> {
    if !global.quiet {
        eprintln!(
            "shard {} finished: {} runs now, {} finished earlier; {} runs are other shards', {} of them not finished yet: `delinea gather {}` writes the tables once they are",
            report.shard,
            report.ran,
            report.skipped,
            report.others,
            report.pending.len(),
            report.out.display()
        );
    }
    if output.json {
        print_json(report)?;
    }
    Ok(ExitStatus::Success)
}

/// Turns [`Event`]s into progress lines on stderr, each run's lines labelled with its domain
/// and method (several may run side by side).
struct Printer {
    quiet: bool,
    log_every: usize,
    start: Instant,
}

impl Printer {
    fn new(quiet: bool, log_every: usize) -> Printer {
        Printer {
            quiet,
            log_every,
            start: Instant::now(),
        }
    }

    fn event(&mut self, e: &Event) {
        if self.quiet {
            return;
        }
        match e {
            Event::Cohort { path, reused: true, .. } => eprintln!("cohort: {} (written earlier)", path.display()),
            Event::Cohort { path, seconds, .. } => {
                eprintln!("cohort: wrote {} in {}", path.display(), duration(*seconds))
            }
            Event::SourceStarted { slices } => eprintln!("source model: training on {slices} slices"),
            Event::SourceTaken { from } => eprintln!("source model: taken from {} (not trained)", from.display()),
            Event::Source { reused: true, .. } => eprintln!("source model: trained earlier, reused"),
            Event::Source {
                best_val_dsc, seconds, ..
            } => eprintln!(
                "source model: trained in {} (best validation median DSC {})",
                duration(*seconds),
                best_val_dsc.map_or("n/a".into(), |d| format!("{d:.3}"))
            ),
            Event::Training { run, step } => {
                let label = run.as_ref().map_or(String::new(), |(d, m)| format!("{d} {m}: "));
                super::progress::print_labelled_event(&label, step, self.log_every)
            }
            Event::References {
                reused,
                points,
                seconds,
            } => eprintln!(
                "reference points: {points} {}",
                if *reused {
                    "(computed earlier)".to_string()
                } else {
                    format!("computed in {}", duration(*seconds))
                }
            ),
            _ => self.run_event(e),
        }
    }

    fn run_event(&mut self, e: &Event) {
        match e {
            Event::RunStarted {
                domain,
                method,
                index,
                total,
            } => eprintln!(
                "[{index}/{total}] {domain} {method}: running ({} elapsed)",
                duration(self.start.elapsed().as_secs_f64())
            ),
            Event::Step {
                domain,
                method,
                step,
                seconds,
            } => eprintln!("{domain} {method}: {step} took {}", duration(*seconds)),
            Event::RunFinished { domain, method, marker } => eprintln!(
                "{domain} {method}: done, median DSC {} over {} test cases, {} failures",
                marker.median_dsc.map_or("n/a".into(), |d| format!("{d:.3}")),
                marker.cases,
                marker.failures
            ),
            Event::Replicate { index, count, out } => {
                eprintln!("replicate {index} of {count} (0 to {}): {}", count - 1, out.display())
            }
            Event::Waiting { unit, owner, seconds } => eprintln!(
                "waiting for the {unit} unit of shard {owner} (at most {})",
                duration(*seconds)
            ),
            Event::RunSkipped {
                domain,
                method,
                index,
                total,
            } => eprintln!("[{index}/{total}] {domain} {method}: finished earlier, skipped"),
            _ => {}
        }
    }
}

/// `12.3 s`, or `4 min 05 s`.
fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let s = seconds.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    }
}
