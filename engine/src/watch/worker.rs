//! Adaptation in a worker process, for a door that must keep answering while a model trains
//! (`delinea serve`): a `delinea adapt` child trains into the generation's temporary folder
//! from the manifest and selection the watcher wrote there; the watcher follows it between
//! requests, renames the result into place when it succeeds and journals the outcome exactly
//! as an adaptation run in-process. The child exits when its stdin closes, so a server killed
//! with -9 leaves no orphan training behind.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

use super::model::{adaptation_config, json, Adapting};
use super::{WatchError, Watcher};
use crate::job::Adaptation;
use crate::model::checkpoint::LabelsRecord;

/// How adaptations run.
pub(crate) enum Trainer {
    /// In the watcher's thread, to the end (`delinea watch`).
    InProcess,
    /// In `exe adapt`, followed between requests.
    Worker {
        /// The delinea executable.
        exe: PathBuf,
        /// The adaptation under way.
        running: Option<Box<Running>>,
    },
}

/// A training worker and what its success will need.
pub(crate) struct Running {
    child: Child,
    /// Held open: the child exits when it closes.
    _stdin: Option<ChildStdin>,
    adapting: Adapting,
    record: LabelsRecord,
    tmp: PathBuf,
    started_at: String,
}

/// What a worker spawned, before the trainer takes it.
pub(crate) struct Spawned {
    child: Child,
    record: LabelsRecord,
    tmp: PathBuf,
}

/// The progress of the adaptation under way, for the doors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The generation it makes.
    pub generation: u32,
    /// The adaptation strategy.
    pub strategy: String,
    /// Labels it learns from.
    pub labels: usize,
    /// When it started (UTC).
    pub started: String,
    /// Steps done and of how many, from the worker's last progress line.
    pub iteration: Option<(usize, usize)>,
    /// The last batch loss.
    pub loss: Option<f64>,
}

impl Trainer {
    /// Whether an adaptation runs now.
    pub fn is_running(&self) -> bool {
        matches!(self, Trainer::Worker { running: Some(_), .. })
    }

    /// The executable to run adaptations in, when they run in a worker.
    pub fn worker_exe(&self) -> Option<PathBuf> {
        match self {
            Trainer::Worker { exe, .. } => Some(exe.clone()),
            Trainer::InProcess => None,
        }
    }

    /// Takes a spawned worker for `adapting`.
    pub fn run(&mut self, spawned: Spawned, adapting: Adapting) {
        if let Trainer::Worker { running, .. } = self {
            *running = Some(Box::new(Running {
                child: spawned.child,
                _stdin: None,
                adapting,
                record: spawned.record,
                tmp: spawned.tmp,
                started_at: crate::fsutil::utc_now(),
            }));
            if let Some(r) = running.as_mut() {
                r._stdin = r.child.stdin.take();
            }
        }
    }

    /// Where the running adaptation stands.
    pub fn progress(&self) -> Option<Progress> {
        let Trainer::Worker { running: Some(r), .. } = self else {
            return None;
        };
        let last = last_progress_line(&r.tmp.join("adapt.log"));
        let field = |k: &str| last.as_ref().and_then(|v| v.get(k)).and_then(serde_json::Value::as_f64);
        let iteration = match (field("iteration"), field("iterations")) {
            (Some(i), Some(n)) => Some((i as usize, n as usize)),
            _ => None,
        };
        Some(Progress {
            generation: r.adapting.generation,
            strategy: r.adapting.strategy.clone(),
            labels: r.adapting.labels.len(),
            started: r.started_at.clone(),
            iteration,
            loss: field("loss"),
        })
    }

    fn take(&mut self) -> Option<Box<Running>> {
        match self {
            Trainer::Worker { running, .. } => running.take(),
            Trainer::InProcess => None,
        }
    }
}

impl<B: AutodiffBackend> Watcher<'_, B> {
    /// Writes the adaptation's inputs into a fresh generation folder and starts `exe adapt`.
    pub(super) fn spawn_adaptation(&self, a: &Adaptation, adapting: &Adapting, exe: &Path) -> Result<Spawned, String> {
        let job = &self.options.job;
        adaptation_config(a)?;
        let tmp = self.fresh_generation_folder(adapting.generation)?;
        let (_, selection, record) = self.adaptation_inputs(a, &tmp)?;
        json(&tmp.join("selection.json"), &selection)?;
        let log = tmp.join("adapt.log");
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let path = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut cmd = Command::new(exe);
        cmd.arg("adapt")
            .arg("--model")
            .arg(path(&job.model))
            .arg("--selection")
            .arg(path(&tmp.join("selection.json")))
            .arg("--manifest")
            .arg(path(&tmp.join("manifest.json")))
            .args([
                "--centre",
                &job.centre,
                "--strategy",
                &a.strategy,
                "--device",
                &job.device,
            ])
            .args(["--progress-json", "--until-stdin-closes", "--out"])
            .arg(path(&tmp));
        if let Some(c) = &a.config {
            cmd.arg("--config").arg(path(c));
        }
        for (flag, value) in [("--iterations", a.iterations), ("--batch", a.batch)] {
            if let Some(v) = value {
                cmd.args([flag, &v.to_string()]);
            }
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start the training worker {}: {e}", exe.display()))?;
        Ok(Spawned { child, record, tmp })
    }

    /// Finishes the adaptation under way if its worker has exited.
    pub(super) fn poll_training(&mut self) -> Result<(), WatchError> {
        let exited = match &mut self.trainer {
            Trainer::Worker { running: Some(r), .. } => r.child.try_wait().map(|s| s.is_some()).unwrap_or(true),
            _ => false,
        };
        if !exited {
            return Ok(());
        }
        let Some(mut r) = self.trainer.take() else {
            return Ok(());
        };
        let status = r.child.wait();
        let result = match status {
            Ok(s) if s.success() => self.finish_generation(r.adapting.generation, &r.tmp, r.record),
            Ok(s) => Err(format!(
                "the training worker exited with {s}: {}",
                last_error_line(&r.tmp.join("adapt.log"))
            )),
            Err(e) => Err(format!("the training worker: {e}")),
        };
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&r.tmp);
        }
        self.end_adaptation(r.adapting, result)
    }

    /// Stops the adaptation under way (the model predicting stays); false when none runs.
    pub(super) fn stop_training(&mut self, who: &str) -> Result<bool, WatchError> {
        let Some(mut r) = self.trainer.take() else {
            return Ok(false);
        };
        let _ = r.child.kill();
        let _ = r.child.wait();
        let _ = std::fs::remove_dir_all(&r.tmp);
        self.end_adaptation(r.adapting, Err(format!("stopped by {who}")))?;
        Ok(true)
    }
}

/// The last JSON line the worker printed (`--progress-json`), read from the log's tail.
fn last_progress_line(log: &Path) -> Option<serde_json::Value> {
    tail(log)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
}

/// The last line of the log that is not a progress line: the worker's error.
fn last_error_line(log: &Path) -> String {
    let text = tail(log);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && serde_json::from_str::<serde_json::Value>(l).is_err());
    line.unwrap_or("no message").trim().to_string()
}

/// The last 8 KiB of `path` (empty when unreadable).
fn tail(path: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
