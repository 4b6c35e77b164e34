//! `delinea watch --job JOB.json --inbox DIR --outbox DIR [--labels DIR] [--once] [--status]`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use delinea::device::{self, BackendTask};
use delinea::job::Job;
use delinea::watch::{self, WatchError, WatchOptions};

use super::{print_json, ExitStatus, Global};

/// Watch a drop folder (README "Drop folder").
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job file (examples/jobs/, data-schema/job.schema.json); not needed with --status.
    #[arg(long, required_unless_present = "status")]
    job: Option<PathBuf>,
    /// Where scans are dropped (NIfTI files; write them elsewhere and rename them in, or copy
    /// them: a copy counts once closed and unchanged for --stable seconds).
    #[arg(long)]
    inbox: PathBuf,
    /// Where outputs, the journal, label-next, revisions and failed inputs go.
    #[arg(long)]
    outbox: PathBuf,
    /// Where expert labels are dropped: `<case>.nii.gz` or `<case>@<rater>.nii.gz`.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The state folder (lock, claimed scans, stored labels, adapted models); on the inbox's
    /// file system. Default: OUTBOX/state.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Poll every SECS instead of listening to file events (network shares send none): an
    /// arrival counts once its size and mtime are unchanged for one period.
    #[arg(long, value_name = "SECS")]
    poll: Option<f64>,
    /// Seconds a file closed after writing (or found without events) must stay unchanged.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    stable: f64,
    /// Seconds a folder arrival (a DICOM series) must stay unchanged (Orthanc's StableAge).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    series_stable: f64,
    /// Seconds between scans of the folders when no event comes (the safety net).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    rescan: f64,
    /// Process what is in the inbox and labels folder now, then exit (cron, systemd .path units,
    /// cluster schedulers).
    #[arg(long)]
    once: bool,
    /// Print the drop folder's status (queued, in flight, processed, failed, model) and exit.
    #[arg(long)]
    status: bool,
    /// With --status: as one JSON object.
    #[arg(long)]
    json: bool,
}

pub(super) fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        anyhow::bail!("--{name} must be a positive number of seconds, not {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

struct Task {
    options: WatchOptions,
    stop: Arc<AtomicBool>,
}

impl BackendTask for Task {
    type Output = Result<watch::Summary, WatchError>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let mut log = |line: &serde_json::Value| {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{line}");
            }
        };
        watch::run::<B>(self.options, device, self.stop, &mut log)
    }
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let state = args.state.clone().unwrap_or_else(|| args.outbox.join("state"));
    if args.status {
        let s = watch::status(&args.inbox, &args.outbox, &state)?;
        if args.json {
            print_json(&s)?;
        } else {
            println!("{s}");
        }
        return Ok(ExitStatus::Success);
    }
    let Some(job_path) = args.job.clone() else {
        anyhow::bail!("give the job file with --job");
    };
    let job = Job::load(&job_path)?;
    let device = device::resolve(job.device_request().map_err(anyhow::Error::msg)?)
        .with_context(|| format!("{}: device", job_path.display()))?;
    let options = WatchOptions {
        job,
        job_path,
        inbox: Some(args.inbox.clone()),
        outbox: args.outbox.clone(),
        labels: args.labels.clone(),
        state,
        poll: args.poll.map(|s| seconds("poll", s)).transpose()?,
        quiet: seconds("stable", args.stable)?,
        series_quiet: seconds("series-stable", args.series_stable)?,
        rescan: seconds("rescan", args.rescan)?,
        once: args.once,
    };
    if options.labels.is_some() && !options.job.outputs.mask {
        anyhow::bail!("--labels needs the job's outputs.mask: a label is measured against the predicted mask");
    }
    // SIGTERM and Ctrl-C stop claiming; the scan in hand is finished and the exit is 0.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot install the signal handlers")?;
    }
    let summary = device::run_on(device, Task { options, stop })??;
    if !global.quiet {
        println!(
            "watch: {} scans processed, {} refused, {} labels registered, {} adaptations",
            summary.processed, summary.failed, summary.labels, summary.adaptations
        );
    }
    Ok(ExitStatus::Success)
}
