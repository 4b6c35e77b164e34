//! The drop folder (`delinea watch`): scans that land in an inbox are predicted, their outputs
//! written atomically into an outbox, the pool of unlabelled arrivals re-ranked for labelling,
//! labels that come back measured against the prediction (the revision ratio) and, when the job
//! says so, the model adapted to them — unattended, crash-safe, nothing ever lost.
//!
//! `job/` says what runs; this module decides *when*, and keeps the journal. Its layout:
//!
//! ```text
//! OUTBOX/journal.jsonl         one fdatasync'd JSON line per transition (journal.rs)
//! OUTBOX/cases/<case>/         mask.nii.gz, probability.nii.gz, entropy.nii.gz, bald.nii.gz, scores.json
//! OUTBOX/label-next.{json,csv} the unlabelled arrivals ranked by the job's query strategy
//! OUTBOX/revisions.csv         one row per registered label
//! OUTBOX/failed/               refused inputs, byte for byte, each with <name>.error.json
//! OUTBOX/processed/            processed scans, byte for byte (the job's `processed`)
//! STATE/lock                   held while a watcher runs (default STATE: OUTBOX/state)
//! STATE/work/                  claimed scans (an atomic rename from the inbox)
//! STATE/labels/                registered labels, NNNN-<name as dropped>
//! STATE/pool/<case>.json       each arrival's pool rows, for re-ranking
//! STATE/models/gen-NNNN/       adapted models (the model card names the labels that made them)
//! ```

mod arrival;
mod door;
mod events;
pub(crate) mod journal;
mod label;
mod model;
mod rank;
mod revision;
mod scan;
mod status;
mod worker;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::tensor::backend::AutodiffBackend;

pub use arrival::{ignored, Signature};
pub use door::{
    is_safe_id, served_image, Ask, Board, BoardImage, Ended, Inferred, Refusal, Reply, Sample, Upload, LABEL_NAME,
};
pub use journal::{Event, Kind, Line};
pub use revision::Revision;
pub use status::{status, Status};
pub use worker::Progress;

use crate::job::Job;
use arrival::Tracker;
use events::{Folder, Message};
use journal::{History, Journal};

/// Where a watcher reads and writes, and how it decides that something arrived.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The job.
    pub job: Job,
    /// The job file (for messages).
    pub job_path: PathBuf,
    /// Where scans are dropped (none: only the doors' questions and labels come in).
    pub inbox: Option<PathBuf>,
    /// Where outputs go.
    pub outbox: PathBuf,
    /// Where labels are dropped, if anywhere.
    pub labels: Option<PathBuf>,
    /// The state folder (lock, work, pool, models). Default `OUTBOX/state`.
    pub state: PathBuf,
    /// Poll every this long instead of listening to events (network shares send none).
    pub poll: Option<Duration>,
    /// How long a file closed after writing (or, without events, unchanged) must stay unchanged.
    pub quiet: Duration,
    /// The same for a folder arrival (a DICOM series): 60 s by default, like Orthanc's.
    pub series_quiet: Duration,
    /// Scan the folders this often even without events (the safety net).
    pub rescan: Duration,
    /// Process what is there, then exit.
    pub once: bool,
}

/// Why the watcher could not run (a bad scan is not one: it goes to `failed/`).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A folder layout that cannot work.
    #[error("{0}")]
    Layout(String),
    /// Another watcher holds the state folder.
    #[error(
        "{path}: another watcher holds this state folder ({holder}); give each watcher its own --outbox or --state"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// File-system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The journal holds a line that is not one.
    #[error("{path}: line {line} is not a journal line ({reason}); the journal is append-only, do not edit it")]
    Journal {
        /// The journal.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// The parse error.
        reason: String,
    },
    /// The job's model, references or strategies cannot be used.
    #[error("{job}: {reason}")]
    Job {
        /// The job file.
        job: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An event watcher could not be started.
    #[error("cannot watch {path}: {source} (use --poll SECS where events are not available)")]
    Notify {
        /// The folder.
        path: PathBuf,
        /// The error.
        source: notify::Error,
    },
}

impl WatchError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WatchError + '_ {
        move |source| WatchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a run did, for the exit message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Scans predicted this run.
    pub processed: usize,
    /// Inputs refused this run.
    pub failed: usize,
    /// Labels registered this run.
    pub labels: usize,
    /// Adaptations this run.
    pub adaptations: usize,
}

/// The folders under the outbox and state folder.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    inbox: Option<PathBuf>,
    labels: Option<PathBuf>,
    outbox: PathBuf,
    state: PathBuf,
    processed: PathBuf,
}

impl Layout {
    fn of(o: &WatchOptions) -> Layout {
        Layout {
            inbox: o.inbox.clone(),
            labels: o.labels.clone(),
            outbox: o.outbox.clone(),
            state: o.state.clone(),
            processed: o.job.processed.clone().unwrap_or_else(|| o.outbox.join("processed")),
        }
    }
    fn journal(&self) -> PathBuf {
        self.outbox.join("journal.jsonl")
    }
    fn work(&self) -> PathBuf {
        self.state.join("work")
    }
    fn stored_labels(&self) -> PathBuf {
        self.state.join("labels")
    }
    fn pool(&self) -> PathBuf {
        self.state.join("pool")
    }
    fn models(&self) -> PathBuf {
        self.state.join("models")
    }
    fn failed(&self) -> PathBuf {
        self.outbox.join("failed")
    }
    fn case(&self, case: &str) -> PathBuf {
        self.outbox.join("cases").join(case)
    }

    /// Creates the folders and refuses layouts that lose data or loop.
    fn prepare(&self) -> Result<(), WatchError> {
        if let Some(inbox) = &self.inbox {
            self.prepare_inbox(inbox)?;
        }
        for dir in [
            self.outbox.clone(),
            self.labels.clone().unwrap_or_else(|| self.outbox.clone()),
            self.work(),
            self.stored_labels(),
            self.pool(),
            self.models(),
            self.failed(),
            self.processed.clone(),
            self.outbox.join("cases"),
        ] {
            std::fs::create_dir_all(&dir).map_err(WatchError::io(&dir))?;
        }
        if let Some(inbox) = &self.inbox {
            same_file_system(inbox, &self.work())?;
        }
        if let Some(labels) = &self.labels {
            same_file_system(labels, &self.stored_labels())?;
        }
        Ok(())
    }

    /// Creates the inbox and refuses folders that contain it or that it contains.
    fn prepare_inbox(&self, inbox_dir: &Path) -> Result<(), WatchError> {
        std::fs::create_dir_all(inbox_dir).map_err(WatchError::io(inbox_dir))?;
        let inbox = canonical(inbox_dir)?;
        for (what, dir) in [
            ("outbox", &self.outbox),
            ("state folder", &self.state),
            ("processed folder", &self.processed),
        ] {
            let d = canonical_or_parent(dir);
            if d.starts_with(&inbox) || inbox.starts_with(&d) {
                return Err(WatchError::Layout(format!(
                    "the {what} {} and the inbox {} must not contain each other: \
                     the watcher would take its own outputs for arrivals",
                    dir.display(),
                    inbox_dir.display()
                )));
            }
        }
        if let Some(labels) = &self.labels {
            let l = canonical_or_parent(labels);
            if l.starts_with(&inbox) || inbox.starts_with(&l) {
                return Err(WatchError::Layout(format!(
                    "the labels folder {} and the inbox {} must be separate folders",
                    labels.display(),
                    inbox_dir.display()
                )));
            }
        }
        Ok(())
    }
}

fn canonical(p: &Path) -> Result<PathBuf, WatchError> {
    p.canonicalize().map_err(WatchError::io(p))
}

/// The canonical form of `p`, or of its nearest existing ancestor joined with the rest.
fn canonical_or_parent(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => canonical_or_parent(parent).join(name),
        _ => std::env::current_dir().unwrap_or_default().join(p),
    }
}

/// A claim is a rename: the inbox and the work folder must share a file system.
fn same_file_system(from: &Path, to: &Path) -> Result<(), WatchError> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).map_err(WatchError::io(p));
    if dev(from)? != dev(to)? {
        return Err(WatchError::Layout(format!(
            "{} and {} are on different file systems: a scan is claimed by an atomic rename, \
             so put the state folder (--state) on the file system of {}",
            from.display(),
            to.display(),
            from.display()
        )));
    }
    Ok(())
}

/// The exclusive lock on the state folder, released when dropped (or when the process dies).
struct StateLock {
    _file: File,
}

fn lock(state: &Path) -> Result<StateLock, WatchError> {
    let path = state.join("lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(WatchError::io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(WatchError::Locked {
                path,
                holder: holder.trim().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(WatchError::io(&path)(e)),
    }
    let me = format!("pid {} since {}\n", std::process::id(), crate::fsutil::utc_now());
    file.set_len(0).map_err(WatchError::io(&path))?;
    std::io::Write::write_all(&mut &file, me.as_bytes()).map_err(WatchError::io(&path))?;
    Ok(StateLock { _file: file })
}

/// One structured line per outcome, for the operator (stderr in the CLI).
pub type Log<'a> = &'a mut dyn FnMut(&serde_json::Value);

/// The watcher's working state (generic over the backend the job's device resolved to).
pub(crate) struct Watcher<'a, B: AutodiffBackend> {
    options: WatchOptions,
    layout: Layout,
    journal: Journal,
    history: History,
    current: model::Current<B>,
    ranker: rank::Ranker,
    device: B::Device,
    summary: Summary,
    log: Log<'a>,
    trainer: worker::Trainer,
    door: Option<door::Door>,
}

/// The other door of a watcher (`delinea serve`): where its questions arrive, the board it
/// reads, and how samples, predictions and adaptations are served.
pub struct DoorSetup {
    /// From [`door_channel`].
    pub asks: AskInbox,
    /// Refreshed after every change.
    pub board: Arc<std::sync::RwLock<Board>>,
    /// How long a sample handed to one client is not handed to another.
    pub lease: Duration,
    /// Concurrent parts of a prediction batch (the CPU threads on the CPU, 1 on a GPU).
    pub parts: usize,
    /// The delinea executable adaptations run in (`EXE adapt`), so the door keeps answering.
    pub worker: PathBuf,
}

/// Sends a door's questions to its watcher.
#[derive(Debug, Clone)]
pub struct Asker(mpsc::Sender<Message>);

impl Asker {
    /// Sends `ask`; false when the watcher has stopped.
    pub fn ask(&self, ask: Ask) -> bool {
        self.0.send(Message::Ask(ask)).is_ok()
    }
}

/// Where a watcher receives a door's questions (with its own folder events).
pub struct AskInbox {
    tx: mpsc::Sender<Message>,
    rx: Receiver<Message>,
}

/// A door's sender and the watcher's receiving end.
pub fn door_channel() -> (Asker, AskInbox) {
    let (tx, rx) = mpsc::channel();
    (Asker(tx.clone()), AskInbox { tx, rx })
}

/// Runs the watcher until `stop` is set (SIGTERM, Ctrl-C) or, with `options.once`, until what
/// was there is processed. The scan in hand is always finished first.
pub fn run<B: AutodiffBackend>(
    options: WatchOptions,
    device: B::Device,
    stop: Arc<AtomicBool>,
    log: Log,
) -> Result<Summary, WatchError> {
    run_with_door::<B>(options, device, stop, log, None)
}

/// [`run`], also answering a door's questions (`delinea serve`).
pub fn run_with_door<B: AutodiffBackend>(
    options: WatchOptions,
    device: B::Device,
    stop: Arc<AtomicBool>,
    log: Log,
    setup: Option<DoorSetup>,
) -> Result<Summary, WatchError> {
    let layout = Layout::of(&options);
    layout.prepare()?;
    let _lock = lock(&layout.state)?;
    let (journal, lines) = Journal::open(&layout.journal())?;
    let history = History::of(&lines);
    let current = model::Current::<B>::load(&options, &layout, &history, &device)?;
    let ranker = rank::Ranker::new(&options, &layout, &history, &current)?;
    let (tx, rx) = match &setup {
        Some(s) => (s.asks.tx.clone(), None),
        None => {
            let (tx, rx) = mpsc::channel();
            (tx, Some(rx))
        }
    };
    let (trainer, door, rx) = match setup {
        Some(s) => (
            worker::Trainer::Worker {
                exe: s.worker,
                running: None,
            },
            Some(door::Door::new(s.board, s.lease, s.parts)),
            s.asks.rx,
        ),
        None => (
            worker::Trainer::InProcess,
            None,
            rx.unwrap_or_else(|| mpsc::channel().1),
        ),
    };
    let mut w = Watcher {
        options,
        layout,
        journal,
        history,
        current,
        ranker,
        device,
        summary: Summary::default(),
        log,
        trainer,
        door,
    };
    w.recover()?;
    w.ranker.write(&w.layout, &w.history, w.current.generation)?;
    w.publish();
    w.adapt_if_due()?;
    let _watching = match (w.options.poll, w.options.once, &w.layout.inbox) {
        (None, false, Some(_)) => Some(w.start_events(tx)?),
        _ => None,
    };
    w.main_loop(&rx, &stop)?;
    w.stop_training("the server stopping")?;
    Ok(w.summary)
}

impl<B: AutodiffBackend> Watcher<'_, B> {
    fn start_events(&self, tx: mpsc::Sender<Message>) -> Result<events::Watching, WatchError> {
        let inbox = self.layout.inbox.clone().unwrap_or_default();
        let mut folders = vec![(Folder::Inbox, canonical(&inbox)?)];
        if let Some(l) = &self.layout.labels {
            folders.push((Folder::Labels, canonical(l)?));
        }
        events::watch(&folders, tx).map_err(|source| WatchError::Notify { path: inbox, source })
    }

    /// Scans at start, on every hint, after a rescan flag and every `rescan` period; while
    /// something waits to become complete, often enough to time its quiet period.
    fn main_loop(&mut self, rx: &Receiver<Message>, stop: &AtomicBool) -> Result<(), WatchError> {
        let o = self.options.clone();
        let quiet = o.poll.unwrap_or(o.quiet);
        let mut inbox = Tracker::new(quiet, o.series_quiet.max(quiet));
        let mut labels = Tracker::new(quiet, o.series_quiet.max(quiet));
        let started = Instant::now();
        let (mut last_scan, mut dirty) = (None::<Instant>, true);
        let tick = (quiet / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        // Polling, the folder scan is the only source: one every period at least.
        let rescan = o.poll.map_or(o.rescan, |p| p.min(o.rescan));
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let waiting = !inbox.is_empty() || !labels.is_empty();
            let periodic = last_scan.is_none_or(|t| now - t >= rescan);
            let timing = waiting && last_scan.is_none_or(|t| now - t >= tick);
            if dirty || periodic || timing {
                self.scan_folders(&mut inbox, &mut labels, now)?;
                if last_scan.is_none() {
                    let how = match (o.poll, o.once) {
                        (_, true) => "once",
                        (Some(_), _) => "polling",
                        (None, _) => "events",
                    };
                    (self.log)(&serde_json::json!({"watching": self.layout.inbox, "mode": how}));
                    self.publish();
                }
                (last_scan, dirty) = (Some(now), false);
            }
            self.poll_training()?;
            let did = self.process_ready(&mut inbox, &mut labels, stop)?;
            let nothing_ready = inbox.ready(now).is_empty() && labels.ready(now).is_empty();
            // A stable file whose check failed gets its second look before `--once` ends, or a
            // truncated scan would be retried by every run and never refused.
            let second_looks = inbox.awaits_second_look() || labels.awaits_second_look();
            if self.options.once && !did && now - started >= quiet + tick && nothing_ready && !second_looks {
                break; // what was there and complete is processed; what still changes waits
            }
            if did {
                continue;
            }
            match rx.recv_timeout(if self.options.once {
                tick
            } else {
                tick.max(Duration::from_millis(250))
            }) {
                Ok(m) => dirty |= self.take(m, &mut inbox, &mut labels, rx)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(tick),
            }
        }
        Ok(())
    }

    /// Applies `first` and every message already queued (a door's question is answered);
    /// true when a folder scan is needed.
    fn take(
        &mut self,
        first: Message,
        inbox: &mut Tracker,
        labels: &mut Tracker,
        rx: &Receiver<Message>,
    ) -> Result<bool, WatchError> {
        let now = Instant::now();
        let mut dirty = false;
        for m in std::iter::once(first).chain(rx.try_iter()) {
            if let Message::Ask(ask) = m {
                self.answer(ask)?;
                continue;
            }
            dirty = true;
            match m {
                Message::Hint(Folder::Inbox, name, hint) if !ignored(&name) => inbox.hint(&name, hint, now),
                Message::Hint(Folder::Labels, name, hint) if !ignored(&name) => labels.hint(&name, hint, now),
                Message::Hint(..) | Message::Changed | Message::Ask(_) => {}
                Message::Rescan => {
                    inbox.forget_hints();
                    labels.forget_hints();
                }
            }
        }
        Ok(dirty)
    }

    fn scan_folders(&mut self, inbox: &mut Tracker, labels: &mut Tracker, now: Instant) -> Result<(), WatchError> {
        if let Some(dir) = &self.layout.inbox {
            let found = arrival::scan(dir).map_err(WatchError::io(dir))?;
            inbox.observe(found, now);
        }
        if let Some(dir) = &self.layout.labels {
            let found = arrival::scan(dir).map_err(WatchError::io(dir))?;
            labels.observe(found, now);
        }
        Ok(())
    }

    /// Processes every complete scan, then every complete label, then adapts when due.
    fn process_ready(
        &mut self,
        inbox: &mut Tracker,
        labels: &mut Tracker,
        stop: &AtomicBool,
    ) -> Result<bool, WatchError> {
        let mut did = false;
        for entry in inbox.ready(Instant::now()) {
            if stop.load(Ordering::Relaxed) {
                return Ok(did);
            }
            did |= self.arrive_scan(&entry, inbox)?;
        }
        for entry in labels.ready(Instant::now()) {
            if stop.load(Ordering::Relaxed) {
                return Ok(did);
            }
            did |= self.arrive_label(&entry, labels)?;
        }
        if did {
            self.adapt_if_due()?;
            self.publish();
        }
        Ok(did)
    }

    /// Finishes what a previous run left: claimed but not done is redone, done but not moved
    /// is moved, nothing done is redone.
    fn recover(&mut self) -> Result<(), WatchError> {
        let work = self.layout.work();
        for name in sorted_names(&work)? {
            self.resume_scan(&name)?;
        }
        let stored = self.layout.stored_labels();
        for name in sorted_names(&stored)? {
            self.resume_label(&name)?;
        }
        Ok(())
    }

    fn append(&mut self, line: Line) -> Result<(), WatchError> {
        self.journal.append(&line)?;
        self.history.record(&line);
        Ok(())
    }
}

/// The names in `dir`, sorted, temporary ones left out.
fn sorted_names(dir: &Path) -> Result<Vec<String>, WatchError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(WatchError::io(dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !ignored(n))
        .collect();
    names.sort();
    Ok(names)
}

/// `name` without `.nii.gz`, `.nii` or `.dcm` (a series folder keeps its name).
pub fn case_id(name: &str) -> &str {
    [".nii.gz", ".nii", ".dcm"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_drop_the_nifti_extension() {
        assert_eq!(case_id("p7.nii.gz"), "p7");
        assert_eq!(case_id("p7.nii"), "p7");
        assert_eq!(case_id("series-3"), "series-3");
        assert_eq!(case_id("enhanced.dcm"), "enhanced");
    }

    #[test]
    fn an_outbox_inside_the_inbox_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("in");
        std::fs::create_dir_all(&inbox).unwrap();
        let layout = Layout {
            inbox: Some(inbox.clone()),
            labels: None,
            outbox: inbox.join("out"),
            state: inbox.join("out/state"),
            processed: inbox.join("out/processed"),
        };
        let e = layout.prepare().unwrap_err().to_string();
        assert!(e.contains("must not contain each other"), "{e}");
        assert!(!inbox.join("out").exists(), "nothing was created inside the inbox");
    }
}
