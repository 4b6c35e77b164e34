//! `delinea serve --job JOB.json --datastore DIR [--inbox DIR] [--bind ADDR] [--token-file F]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use delinea::device::{self, BackendTask};
use delinea::job::Job;
use delinea::serve::{self, ServeError, ServeOptions};
use delinea::watch::{Summary, WatchOptions};

use super::watch::seconds;
use super::{ExitStatus, Global};

/// Serve 3D Slicer's MONAILabel module (README "Labelling in 3D Slicer").
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job file (the drop folder's: model, query strategy, adaptation).
    #[arg(long)]
    job: PathBuf,
    /// The datastore: the drop folder's outbox (cases, labels, journal, model generations).
    #[arg(long)]
    datastore: PathBuf,
    /// Also take scans dropped here, as `delinea watch` does.
    #[arg(long)]
    inbox: Option<PathBuf>,
    /// The state folder. Default: DATASTORE/state.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Where to listen; any address but loopback needs --token-file.
    #[arg(long, default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// A file holding the bearer token every request must carry (`Authorization: Bearer T`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The largest label upload taken, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    max_upload_mb: usize,
    /// Seconds a sample handed to one client is not handed to another.
    #[arg(long, value_name = "SECS", default_value_t = 1800.0)]
    lease: f64,
    /// With --inbox: seconds a dropped file must stay unchanged.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    stable: f64,
    /// With --inbox: poll every SECS instead of listening to file events.
    #[arg(long, value_name = "SECS")]
    poll: Option<f64>,
}

struct Task {
    serve: ServeOptions,
    watch: WatchOptions,
    stop: Arc<AtomicBool>,
}

impl BackendTask for Task {
    type Output = Result<Summary, ServeError>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let mut log = |line: &serde_json::Value| {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{line}");
            }
        };
        serve::run::<B>(self.serve, self.watch, device, self.stop, &mut log)
    }
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let job = Job::load(&args.job)?;
    let device = device::resolve(job.device_request().map_err(anyhow::Error::msg)?)
        .with_context(|| format!("{}: device", args.job.display()))?;
    let token = match &args.token_file {
        Some(p) => Some(read_token(p)?),
        None => None,
    };
    anyhow::ensure!(args.max_upload_mb > 0, "--max-upload-mb must be at least 1");
    let serve = ServeOptions {
        bind: args.bind,
        token,
        max_upload: args.max_upload_mb.saturating_mul(1 << 20),
        lease: seconds("lease", args.lease)?,
        parts: device.inference_parts(),
        worker: std::env::current_exe().context("cannot find the delinea executable for training workers")?,
    };
    let watch = WatchOptions {
        job,
        job_path: args.job.clone(),
        inbox: args.inbox.clone(),
        outbox: args.datastore.clone(),
        labels: None,
        state: args.state.clone().unwrap_or_else(|| args.datastore.join("state")),
        poll: args.poll.map(|s| seconds("poll", s)).transpose()?,
        quiet: seconds("stable", args.stable)?,
        series_quiet: Duration::from_secs(60),
        rescan: Duration::from_secs(30),
        once: false,
    };
    anyhow::ensure!(
        watch.job.outputs.mask,
        "{}: serve needs the job's outputs.mask (a label is measured against the predicted mask)",
        args.job.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot install the signal handlers")?;
    }
    let summary = device::run_on(device, Task { serve, watch, stop })??;
    if !global.quiet {
        println!(
            "serve: {} scans processed, {} labels registered, {} adaptations",
            summary.processed, summary.labels, summary.adaptations
        );
    }
    Ok(ExitStatus::Success)
}

/// The token in `path` (surrounding whitespace removed), refused when empty.
fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("--token-file {}", path.display()))?;
    let token = text.trim();
    anyhow::ensure!(!token.is_empty(), "--token-file {}: the file is empty", path.display());
    anyhow::ensure!(
        token.bytes().all(|b| b.is_ascii_graphic()),
        "--token-file {}: a token is printable ASCII without spaces",
        path.display()
    );
    Ok(token.to_string())
}
