//! The append-only journal, `OUTBOX/journal.jsonl`: one JSON object per line, each written and
//! fdatasync'd before the step it announces is taken. It is the watcher's memory: on restart the
//! state is the fold of its lines ([`History`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::revision::Revision;
use super::WatchError;

/// What a line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// A complete arrival was found.
    Seen,
    /// It was renamed into this watcher's work folder (no other watcher can take it now).
    Claimed,
    /// Its processing began.
    Started,
    /// Its outputs are on disk (and synced).
    Done,
    /// It was refused; the reason is in `OUTBOX/failed/<name>.error.json`.
    Failed,
    /// An adaptation began.
    AdaptStarted,
    /// An adapted model is in place and predicts from now on.
    Adapted,
}

/// Whether an arrival is a scan or a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A scan dropped into the inbox.
    Scan,
    /// A label dropped into the labels folder.
    Label,
    /// An adapted model.
    Model,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// What happened.
    pub event: Event,
    /// The file name as dropped (for a model: its folder name).
    pub input: String,
    /// When, UTC (RFC 3339).
    pub time: String,
    /// Scan, label or model.
    pub kind: Kind,
    /// The case id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// The model generation that predicted (0: the job's model), or that an adaptation made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<u32>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds from first seen to done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_s: Option<f64>,
    /// Seconds of it spent in the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infer_s: Option<f64>,
    /// For a label: where it is kept (under the state folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<String>,
    /// For a label: how much of the prediction the oncologist changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// For a model: the stored labels that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

impl Line {
    /// A line of `event` about `input`, stamped now.
    pub fn new(event: Event, kind: Kind, input: &str) -> Line {
        Line {
            event,
            input: input.to_string(),
            time: crate::fsutil::utc_now(),
            kind,
            case: None,
            model: None,
            reason: None,
            latency_s: None,
            infer_s: None,
            stored: None,
            revision: None,
            labels: None,
        }
    }
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// `DELINEA_WATCH_CRASH=<step>:<n>`: abort after the n-th `<step>` (tests only).
    crash: Option<(String, usize)>,
    counts: BTreeMap<String, usize>,
}

impl Journal {
    /// Opens (or creates) `path` and reads its lines. A last line without its newline was
    /// being written when the process died: its step was never taken, so it is cut off.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Line>), WatchError> {
        let io = |source| WatchError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            file.set_len(complete as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        let lines = parse(path, &text[..complete])?;
        let crash = std::env::var("DELINEA_WATCH_CRASH").ok().and_then(|v| {
            let (step, n) = v.rsplit_once(':')?;
            Some((step.to_string(), n.parse().ok()?))
        });
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            crash,
            counts: BTreeMap::new(),
        };
        Ok((journal, lines))
    }

    /// Appends `line` and waits until it is on disk.
    pub fn append(&mut self, line: &Line) -> Result<(), WatchError> {
        let mut text = serde_json::to_string(line).map_err(|e| WatchError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        text.push('\n');
        (|| {
            self.file.write_all(text.as_bytes())?;
            self.file.sync_data()
        })()
        .map_err(|source| WatchError::Io {
            path: self.path.clone(),
            source,
        })?;
        let step = serde_json::to_value(line.event).ok();
        self.step(step.as_ref().and_then(|v| v.as_str()).unwrap_or(""));
        Ok(())
    }

    /// Marks a step that writes no line (`outputs`, `moved`) for the crash hook.
    pub fn step(&mut self, step: &str) {
        let Some((at, n)) = &self.crash else { return };
        let count = self.counts.entry(step.to_string()).or_default();
        *count += 1;
        if at == step && *count == *n {
            // A kill -9 at this transition: no destructor, no flush, no cleanup.
            std::process::abort();
        }
    }
}

/// Reads the journal at `path` without opening it for writing (`--status`).
pub fn read(path: &Path) -> Result<Vec<Line>, WatchError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let complete = text.rfind('\n').map_or(0, |i| i + 1);
            parse(path, &text[..complete])
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(WatchError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<Line>, WatchError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| WatchError::Journal {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The last event of every scan and label, by input name, and the model lines in order.
#[derive(Debug, Default)]
pub struct History {
    /// Scans by input name: their last line.
    pub scans: BTreeMap<String, Line>,
    /// Labels by stored name: their last line.
    pub labels: BTreeMap<String, Line>,
    /// `adapted` lines, oldest first.
    pub models: Vec<Line>,
    /// The labels registered when the last adaptation failed (none since it succeeded).
    pub adapt_failed_at: Option<usize>,
    /// The last model line (started, adapted or failed).
    pub last_model: Option<Line>,
}

impl History {
    /// The fold of `lines`.
    pub fn of(lines: &[Line]) -> History {
        let mut h = History::default();
        for line in lines {
            h.record(line);
        }
        h
    }

    /// Takes one more line into account.
    pub fn record(&mut self, line: &Line) {
        match line.kind {
            Kind::Scan => {
                self.scans.insert(line.input.clone(), line.clone());
            }
            Kind::Label => {
                let key = line.stored.clone().unwrap_or_else(|| line.input.clone());
                self.labels.insert(key, line.clone());
            }
            Kind::Model => {
                match line.event {
                    Event::Adapted => {
                        self.models.push(line.clone());
                        self.adapt_failed_at = None;
                    }
                    Event::Failed => self.adapt_failed_at = line.labels.as_ref().map(Vec::len),
                    _ => {}
                }
                self.last_model = Some(line.clone());
            }
        }
    }

    /// The current model generation (0: the job's model).
    pub fn generation(&self) -> u32 {
        self.models.last().and_then(|l| l.model).unwrap_or(0)
    }

    /// Done scans by case id: (input, generation that predicted).
    pub fn done_cases(&self) -> BTreeMap<String, (String, u32)> {
        self.scans
            .values()
            .filter(|l| l.event == Event::Done)
            .filter_map(|l| Some((l.case.clone()?, (l.input.clone(), l.model.unwrap_or(0)))))
            .collect()
    }

    /// Registered labels, in the order they were registered.
    pub fn registered_labels(&self) -> Vec<&Line> {
        let mut v: Vec<&Line> = self
            .labels
            .values()
            .filter(|l| l.event == Event::Done && l.revision.is_some())
            .collect();
        v.sort_by(|a, b| a.stored.cmp(&b.stored));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_and_the_rest_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        {
            let (mut j, lines) = Journal::open(&p).unwrap();
            assert!(lines.is_empty());
            j.append(&Line::new(Event::Seen, Kind::Scan, "a.nii.gz")).unwrap();
            j.append(&Line::new(Event::Claimed, Kind::Scan, "a.nii.gz")).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"event":"done","inp"#).unwrap();
        drop(f);
        let (mut j, lines) = Journal::open(&p).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(History::of(&lines).scans["a.nii.gz"].event, Event::Claimed);
        j.append(&Line::new(Event::Started, Kind::Scan, "a.nii.gz")).unwrap();
        let lines = read(&p).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.event).collect::<Vec<_>>(),
            [Event::Seen, Event::Claimed, Event::Started]
        );
    }

    #[test]
    fn a_corrupt_line_in_the_middle_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        std::fs::write(&p, "not json\n{}\n").unwrap();
        let e = Journal::open(&p).unwrap_err().to_string();
        assert!(e.contains("journal.jsonl") && e.contains("line 1"), "{e}");
    }
}
