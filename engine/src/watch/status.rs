//! `delinea watch --status`: what a drop folder holds and where its watcher stands, read from
//! the journal and the folders without taking the lock.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::arrival;
use super::journal::{self, Event, History};
use super::{ignored, WatchError};

/// Where a drop folder stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Whether a watcher holds the state folder now, and what its lock says.
    pub running: Option<String>,
    /// Arrivals waiting in the inbox (complete or not).
    pub queued: usize,
    /// Claimed and not done (being processed, or left by a crash: redone at the next start).
    pub in_flight: usize,
    /// Scans done.
    pub processed: usize,
    /// Scans and labels refused (in `failed/`).
    pub failed: usize,
    /// Labels registered.
    pub labels: usize,
    /// The model generation predicting (0: the job's model).
    pub model: u32,
    /// The oldest arrival waiting in the inbox and its age in seconds (by its mtime).
    pub oldest_waiting: Option<(String, f64)>,
}

/// The status of the drop folder with these folders.
pub fn status(inbox: &Path, outbox: &Path, state: &Path) -> Result<Status, WatchError> {
    let lines = journal::read(&outbox.join("journal.jsonl"))?;
    let h = History::of(&lines);
    let count = |kind_scans: bool, event: Event| -> usize {
        let map = if kind_scans { &h.scans } else { &h.labels };
        map.values().filter(|l| l.event == event).count()
    };
    let work = state.join("work");
    let in_flight = match std::fs::read_dir(&work) {
        Ok(d) => d
            .flatten()
            .filter(|e| !ignored(&e.file_name().to_string_lossy()))
            .count(),
        Err(_) => 0,
    };
    let entries = arrival::scan(inbox).map_err(WatchError::io(inbox))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let oldest = entries
        .iter()
        .min_by_key(|e| e.signature.mtime_ns)
        .map(|e| (e.name.clone(), now.saturating_sub(e.signature.mtime_ns) as f64 / 1e9));
    Ok(Status {
        running: holder(state),
        queued: entries.len(),
        in_flight,
        processed: count(true, Event::Done),
        failed: count(true, Event::Failed) + count(false, Event::Failed),
        labels: h.registered_labels().len(),
        model: h.generation(),
        oldest_waiting: oldest,
    })
}

/// What the lock says when a watcher holds it.
fn holder(state: &Path) -> Option<String> {
    let path = state.join("lock");
    let file = std::fs::File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => Some(std::fs::read_to_string(&path).unwrap_or_default().trim().to_string()),
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.running {
            Some(h) => writeln!(f, "watcher:        running ({h})")?,
            None => writeln!(f, "watcher:        not running")?,
        }
        writeln!(f, "queued:         {}", self.queued)?;
        writeln!(f, "in flight:      {}", self.in_flight)?;
        writeln!(f, "processed:      {}", self.processed)?;
        writeln!(f, "failed:         {}", self.failed)?;
        writeln!(f, "labels:         {}", self.labels)?;
        match self.model {
            0 => writeln!(f, "model:          the job's model")?,
            g => writeln!(f, "model:          adapted generation {g}")?,
        }
        match &self.oldest_waiting {
            Some((name, age)) => write!(f, "oldest waiting: {name} ({age:.0} s)"),
            None => write!(f, "oldest waiting: none"),
        }
    }
}
