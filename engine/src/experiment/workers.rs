//! Phase 2 of an experiment: the units (one run's adaptation and evaluation each) handed out
//! to workers, one unit at a time, the longest first.
//!
//! A worker is a thread of this process with a rayon pool of its own, or — to run several
//! units side by side — a worker process (`delinea experiment-worker`), because the backends
//! draw dropout masks from one generator per process: two units in one process would
//! interleave their draws and lose their reproducibility. Each worker computes with
//! [`Workers::threads`] threads, and that count is what a unit's numbers may depend on (the
//! CPU's matrix products split their work by thread); with the same threads per worker, one
//! worker and many give the same bytes.
//!
//! The protocol of a worker process, one JSON object per line: the experiment comes first on
//! its stdin ([`WorkerSpec`]), then one [`Unit`] per line, each answered on its stdout by the
//! unit's progress ([`Reply::Event`]) and one [`Reply::Done`] or [`Reply::Error`]; it exits
//! when its stdin closes.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::runner::{Context, Unit};
use super::{Error, Event, ExperimentConfig, Plan, Store};
use crate::dataset::Manifest;
use crate::device::{self, BackendTask, DeviceRequest};

/// How the units of an experiment are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workers {
    /// Units run side by side (1: in this process).
    pub jobs: usize,
    /// Threads each unit computes with.
    pub threads: usize,
    /// The `delinea` executable that serves `experiment-worker`; without it, one unit at a
    /// time whatever `jobs` says.
    pub program: Option<PathBuf>,
}

impl Workers {
    /// One unit at a time, in this process, with every thread of the global pool.
    pub fn serial() -> Workers {
        Workers {
            jobs: 1,
            threads: rayon::current_num_threads(),
            program: None,
        }
    }

    /// `jobs` units side by side (at least 1), each with `threads` threads (default: the
    /// machine's threads shared among the jobs, at least 1), served by `program`.
    pub fn new(jobs: usize, threads: Option<usize>, program: Option<PathBuf>) -> Workers {
        let jobs = jobs.max(1);
        let threads = threads.unwrap_or_else(|| rayon::current_num_threads() / jobs).max(1);
        Workers { jobs, threads, program }
    }
}

/// What a worker process is told first: the experiment (as the parent resolved it) and the
/// device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// The dataset manifest.
    pub manifest: PathBuf,
    /// The source centre.
    pub source: String,
    /// The target domains.
    pub targets: Vec<String>,
    /// The config.
    pub config: ExperimentConfig,
    /// The experiment folder.
    pub out: PathBuf,
    /// The device, as `--device` spells it.
    pub device: String,
    /// Which replicate of the experiment `config` and `out` are (0: the experiment itself).
    #[serde(default)]
    pub replicate: usize,
}

/// A worker's answer to a unit, one per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    /// Progress of the unit.
    Event(Event),
    /// The unit is finished and recorded.
    Done,
    /// The unit failed: the error, as it would be printed.
    Error(String),
}

/// What the workers report to the loop that hands out units.
enum Message {
    Event(Event),
    Done,
    Failed(Error),
    /// The worker will answer no more (its process ended, or its thread stopped).
    Closed,
}

/// A worker as the loop sees it: where its next unit goes.
enum Handle {
    Thread(Option<mpsc::Sender<Unit>>),
    Process { child: Child, stdin: Option<ChildStdin> },
}

impl Handle {
    fn send(&mut self, unit: &Unit) -> Result<(), String> {
        match self {
            Handle::Thread(Some(tx)) => tx.send(unit.clone()).map_err(|e| e.to_string()),
            Handle::Process { stdin: Some(stdin), .. } => {
                let line = serde_json::to_string(unit).map_err(|e| e.to_string())?;
                writeln!(stdin, "{line}")
                    .and_then(|_| stdin.flush())
                    .map_err(|e| e.to_string())
            }
            _ => Err("the worker was closed".into()),
        }
    }

    /// No more units: the worker finishes the one in hand and stops.
    fn close(&mut self) {
        match self {
            Handle::Thread(tx) => *tx = None,
            Handle::Process { stdin, .. } => *stdin = None,
        }
    }
}

/// Runs `units` with `workers`, forwarding their progress to `progress`. The first failure
/// stops the handing out; the units in hand finish (and are recorded) before it is returned.
pub(super) fn run<B: AutodiffBackend>(
    context: &Context<'_, B>,
    mut units: Vec<Unit>,
    workers: &Workers,
    progress: &mut dyn FnMut(&Event),
) -> Result<(), Error> {
    if units.is_empty() {
        return Ok(());
    }
    // Longest first (adaptations that train before those that do not), plan order within.
    let cost = |u: &Unit| {
        context
            .plan
            .unit(&u.domain, &u.method)
            .map_or(0, |(_, m)| usize::from(m.adapt != "none"))
    };
    units.sort_by_key(|u| std::cmp::Reverse(cost(u)));
    // Side by side only in processes of their own (see the module's documentation).
    let jobs = match workers.program {
        Some(_) => workers.jobs.min(units.len()).max(1),
        None => 1,
    };
    let (tx, rx) = mpsc::channel::<(usize, Message)>();
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(jobs);
        for w in 0..jobs {
            let handle = match (&workers.program, jobs) {
                (Some(program), 2..) => spawn_process(context, program, workers.threads, w, tx.clone(), scope),
                _ => Ok(spawn_thread(context, workers.threads, w, tx.clone(), scope)),
            };
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    handles.iter_mut().for_each(Handle::close);
                    reap(&mut handles);
                    return Err(e);
                }
            }
        }
        drop(tx);
        let result = hand_out(&mut handles, units.into(), &rx, progress);
        handles.iter_mut().for_each(Handle::close);
        // Wait for every worker to stop (their messages are no longer read).
        drop(rx);
        reap(&mut handles);
        result
    })
}

/// The loop: one unit per idle worker until none is left or one failed.
fn hand_out(
    handles: &mut [Handle],
    mut queue: VecDeque<Unit>,
    rx: &mpsc::Receiver<(usize, Message)>,
    progress: &mut dyn FnMut(&Event),
) -> Result<(), Error> {
    let mut busy: Vec<Option<Unit>> = vec![None; handles.len()];
    let mut failure: Option<Error> = None;
    for w in 0..handles.len() {
        give(w, handles, &mut busy, &mut queue, &mut failure, progress);
    }
    while busy.iter().any(Option::is_some) {
        let Ok((w, message)) = rx.recv() else {
            break; // every worker is gone
        };
        match message {
            Message::Event(e) => progress(&e),
            Message::Done => {
                busy[w] = None;
                give(w, handles, &mut busy, &mut queue, &mut failure, progress);
            }
            Message::Failed(e) => {
                busy[w] = None;
                failure.get_or_insert(e);
                handles[w].close();
            }
            Message::Closed => {
                if let Some(unit) = busy[w].take() {
                    failure.get_or_insert(worker_error(&unit, "the worker stopped before finishing it".into()));
                }
            }
        }
    }
    match (failure, busy.iter().flatten().next()) {
        (Some(e), _) => Err(e),
        (None, Some(unit)) => Err(worker_error(unit, "no worker is left to finish it".into())),
        (None, None) => Ok(()),
    }
}

/// Gives worker `w` the next unit (announcing it), or closes it when there is none or a unit
/// has failed.
fn give(
    w: usize,
    handles: &mut [Handle],
    busy: &mut [Option<Unit>],
    queue: &mut VecDeque<Unit>,
    failure: &mut Option<Error>,
    progress: &mut dyn FnMut(&Event),
) {
    let next = if failure.is_none() { queue.pop_front() } else { None };
    let Some(unit) = next else {
        handles[w].close();
        return;
    };
    progress(&Event::RunStarted {
        domain: unit.domain.clone(),
        method: unit.method.clone(),
        index: unit.index,
        total: unit.total,
    });
    match handles[w].send(&unit) {
        Ok(()) => busy[w] = Some(unit),
        Err(reason) => {
            failure.get_or_insert(worker_error(&unit, reason));
            handles[w].close();
        }
    }
}

fn worker_error(unit: &Unit, reason: String) -> Error {
    Error::Worker {
        domain: unit.domain.clone(),
        method: unit.method.clone(),
        reason,
    }
}

/// Waits for the worker processes to exit (threads are joined by their scope).
fn reap(handles: &mut [Handle]) {
    for h in handles {
        if let Handle::Process { child, .. } = h {
            let _ = child.wait();
            crate::cluster::signals::untrack_child(child.id());
        }
    }
}

/// A worker thread with a rayon pool of `threads` threads: the units it is sent run inside it.
fn spawn_thread<'scope, B: AutodiffBackend>(
    context: &'scope Context<'_, B>,
    threads: usize,
    w: usize,
    tx: mpsc::Sender<(usize, Message)>,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Handle {
    let (units_tx, units_rx) = mpsc::channel::<Unit>();
    scope.spawn(move || {
        let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => pool,
            Err(e) => {
                let reason = format!("cannot start a pool of {threads} threads: {e}");
                let _ = tx.send((w, Message::Failed(Error::Threads(reason))));
                let _ = tx.send((w, Message::Closed));
                return;
            }
        };
        pool.install(move || {
            while let Ok(unit) = units_rx.recv() {
                let mut emit = |e: &Event| {
                    let _ = tx.send((w, Message::Event(e.clone())));
                };
                let message = match context.run_unit(&unit, &mut emit) {
                    Ok(()) => Message::Done,
                    Err(e) => Message::Failed(e),
                };
                let _ = tx.send((w, message));
            }
            let _ = tx.send((w, Message::Closed));
        });
    });
    Handle::Thread(Some(units_tx))
}

/// A worker process (`program experiment-worker`) with `threads` threads, told the experiment
/// on its stdin; a thread of `scope` reads its replies.
fn spawn_process<'scope, B: AutodiffBackend>(
    context: &Context<'_, B>,
    program: &std::path::Path,
    threads: usize,
    w: usize,
    tx: mpsc::Sender<(usize, Message)>,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<Handle, Error> {
    let cannot = |reason: String| Error::Worker {
        domain: String::new(),
        method: String::new(),
        reason: format!("cannot start worker process {}: {reason}", program.display()),
    };
    let mut child = Command::new(program)
        .arg("experiment-worker")
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| cannot(e.to_string()))?;
    crate::cluster::signals::track_child(child.id());
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(cannot("no pipes".into()));
    };
    let spec = serde_json::to_string(&context.spec).map_err(Error::Json)?;
    if let Err(e) = writeln!(stdin, "{spec}").and_then(|_| stdin.flush()) {
        let _ = child.kill();
        return Err(cannot(e.to_string()));
    }
    scope.spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let message = match serde_json::from_str::<Reply>(&line) {
                Ok(Reply::Event(e)) => Message::Event(e),
                Ok(Reply::Done) => Message::Done,
                Ok(Reply::Error(reason)) => Message::Failed(Error::WorkerFailed { reason }),
                Err(e) => Message::Failed(Error::WorkerFailed {
                    reason: format!("unreadable reply {line:?}: {e}"),
                }),
            };
            if tx.send((w, message)).is_err() {
                break;
            }
        }
        let _ = tx.send((w, Message::Closed));
    });
    Ok(Handle::Process {
        child,
        stdin: Some(stdin),
    })
}

/// `delinea experiment-worker`: reads a [`WorkerSpec`] line from `input`, then runs each [`Unit`]
/// line it reads, answering on `output`, until `input` ends. A bad spec is an error; a failed
/// unit is a [`Reply::Error`] (the worker goes on reading).
pub fn serve(input: impl BufRead, output: impl Write) -> Result<(), Error> {
    let mut lines = input.lines();
    let bad = |reason: String| Error::WorkerFailed { reason };
    let first = lines
        .next()
        .ok_or_else(|| bad("no experiment on stdin".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let spec: WorkerSpec = serde_json::from_str(&first).map_err(|e| bad(format!("not an experiment: {e}")))?;
    let request: DeviceRequest = spec.device.parse()?;
    let device = device::resolve(request)?;
    let plan = Plan::new(
        Manifest::load(&spec.manifest)?,
        &spec.source,
        &spec.targets,
        spec.config.clone(),
        &super::resolver(&spec.manifest, &spec.out, device),
    )?;
    let store = Store::attach(&spec.out, &plan)?;
    let task = Serve {
        plan: &plan,
        store: &store,
        spec,
        lines: Box::new(lines),
        output: Box::new(output),
    };
    device::run_on(device, task)?
}

/// The units of a worker process, on one backend.
struct Serve<'a> {
    plan: &'a Plan,
    store: &'a Store,
    spec: WorkerSpec,
    lines: Box<dyn Iterator<Item = std::io::Result<String>> + 'a>,
    output: Box<dyn Write + 'a>,
}

impl BackendTask for Serve<'_> {
    type Output = Result<(), Error>;

    fn run<B: AutodiffBackend>(mut self, device: B::Device) -> Self::Output {
        let context = Context::<B> {
            plan: self.plan,
            store: self.store,
            device,
            spec: self.spec.clone(),
        };
        let mut write = |reply: &Reply| -> Result<(), Error> {
            let line = serde_json::to_string(reply).map_err(Error::Json)?;
            writeln!(self.output, "{line}")
                .and_then(|_| self.output.flush())
                .map_err(|e| Error::WorkerFailed { reason: e.to_string() })
        };
        for line in self.lines.by_ref() {
            let line = line.map_err(|e| Error::WorkerFailed { reason: e.to_string() })?;
            let reply = match serde_json::from_str::<Unit>(&line) {
                Err(e) => Reply::Error(format!("not a unit {line:?}: {e}")),
                Ok(unit) => {
                    let mut failed = None;
                    let result = context.run_unit(&unit, &mut |e| {
                        if failed.is_none() {
                            failed = write(&Reply::Event(e.clone())).err();
                        }
                    });
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    match result {
                        Ok(()) => Reply::Done,
                        Err(e) => Reply::Error(chain(&e)),
                    }
                }
            };
            write(&reply)?;
        }
        Ok(())
    }
}

/// An error with its causes, `: `-separated (as the command line prints it).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}
