//! When something dropped into a folder counts as arrived. Events are hints; a scan of the
//! folder is the truth (FRONT-DOORS.md "Drop folders"). An arrival is a file or a folder (a
//! DICOM series becomes one folder); it is complete, in order of trust, when
//!
//! 1. it was renamed in (Maildir's rule: written elsewhere, renamed into the folder; a series
//!    folder too);
//! 2. it was closed after writing and has not changed for the quiet period;
//! 3. no event was seen for it (found by a scan: at start, after an overflow, or with
//!    `--poll` on a share that sends none) and its size and mtime have not changed for the
//!    quiet period (a folder: the count, sizes and latest mtime of every file below it, for
//!    the series quiet period).
//!
//! A file seen being written but never closed waits for its close; only if nothing about it
//! changes for ten quiet periods does rule 3 take over. Temporary names (`.part`, `.tmp`,
//! `.crdownload`, `~`, dot-files) are never arrivals.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// What identifies a version of an arrival: changed means not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Bytes (a folder: of every file below it).
    pub len: u64,
    /// Latest modification time, ns since the epoch.
    pub mtime_ns: u128,
    /// Files (1 for a file).
    pub files: u64,
}

/// One entry of a folder scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The name as dropped.
    pub name: String,
    /// A folder (a DICOM series) rather than a file.
    pub folder: bool,
    /// Its current signature.
    pub signature: Signature,
}

/// Whether a name is a temporary one that never counts as an arrival.
pub fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".part", ".tmp", ".crdownload", ".partial", ".swp"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The arrivals in `dir`, by name (entries that vanish while listed are skipped).
pub fn scan(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if ignored(&name) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        let folder = meta.is_dir();
        let signature = if folder {
            folder_signature(&e.path())
        } else {
            Signature {
                len: meta.len(),
                mtime_ns: mtime_ns(&meta),
                files: 1,
            }
        };
        out.push(Entry {
            name,
            folder,
            signature,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

fn folder_signature(dir: &Path) -> Signature {
    let mut sig = Signature {
        len: 0,
        mtime_ns: std::fs::metadata(dir).map_or(0, |m| mtime_ns(&m)),
        files: 0,
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                sig.len += meta.len();
                sig.files += 1;
            }
            sig.mtime_ns = sig.mtime_ns.max(mtime_ns(&meta));
        }
    }
    sig
}

/// What the events said about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// Created or written to, not closed since.
    Writing,
    /// Closed after writing.
    Closed,
    /// Renamed into the folder.
    RenamedIn,
}

#[derive(Debug, Clone)]
struct Track {
    entry: Entry,
    /// When its signature last changed (or it was first listed).
    stable_since: Instant,
    hint: Option<(Hint, Instant)>,
    /// A content check failed on this signature: retry once after the quiet period.
    suspect_since: Option<Instant>,
}

/// The arrivals of one folder and how complete each is.
#[derive(Debug)]
pub struct Tracker {
    quiet: Duration,
    series_quiet: Duration,
    tracks: BTreeMap<String, Track>,
}

impl Tracker {
    /// A tracker with the quiet periods of files and of folders.
    pub fn new(quiet: Duration, series_quiet: Duration) -> Tracker {
        Tracker {
            quiet,
            series_quiet,
            tracks: BTreeMap::new(),
        }
    }

    /// Takes in a scan of the folder: new names are tracked, changed signatures restart their
    /// quiet period, vanished names are forgotten.
    pub fn observe(&mut self, entries: Vec<Entry>, now: Instant) {
        let mut next = BTreeMap::new();
        for entry in entries {
            let track = match self.tracks.remove(&entry.name) {
                Some(mut t) if t.entry.signature == entry.signature => {
                    t.entry = entry;
                    t
                }
                Some(t) => Track {
                    entry,
                    stable_since: now,
                    hint: t.hint,
                    suspect_since: None,
                },
                None => Track {
                    entry,
                    stable_since: now,
                    hint: None,
                    suspect_since: None,
                },
            };
            next.insert(track.entry.name.clone(), track);
        }
        self.tracks = next;
    }

    /// Records what an event said about `name` (listed at the next scan if new).
    pub fn hint(&mut self, name: &str, hint: Hint, now: Instant) {
        if let Some(t) = self.tracks.get_mut(name) {
            t.hint = Some((hint, now));
            t.stable_since = now;
            t.suspect_since = None;
        } else {
            let entry = Entry {
                name: name.to_string(),
                folder: false,
                signature: Signature {
                    len: u64::MAX,
                    mtime_ns: 0,
                    files: 0,
                },
            };
            let track = Track {
                entry,
                stable_since: now,
                hint: Some((hint, now)),
                suspect_since: None,
            };
            self.tracks.insert(name.to_string(), track);
        }
    }

    /// Events were lost (an overflow, a rescan flag): trust only signatures from now on.
    pub fn forget_hints(&mut self) {
        for t in self.tracks.values_mut() {
            t.hint = None;
        }
    }

    /// Names complete at `now`, oldest stable first.
    pub fn ready(&self, now: Instant) -> Vec<Entry> {
        let mut out: Vec<&Track> = self.tracks.values().filter(|t| self.is_ready(t, now)).collect();
        out.sort_by_key(|t| t.stable_since);
        out.into_iter().map(|t| t.entry.clone()).collect()
    }

    fn is_ready(&self, t: &Track, now: Instant) -> bool {
        if t.entry.signature.len == u64::MAX {
            return false; // hinted but not listed yet
        }
        let quiet = if t.entry.folder { self.series_quiet } else { self.quiet };
        let stable = now.saturating_duration_since(t.stable_since);
        if let Some(since) = t.suspect_since {
            return now.saturating_duration_since(since) >= quiet;
        }
        match t.hint {
            Some((Hint::RenamedIn, _)) => true, // a folder renamed in is whole too
            _ if t.entry.folder => stable >= quiet,
            Some((Hint::Closed, _)) => stable >= quiet,
            Some((Hint::Writing, _)) => stable >= quiet * 10,
            None => stable >= quiet,
        }
    }

    /// Whether a content check may still be premature for `name`: it was not renamed in and
    /// has not failed a check before on this signature. The caller retries it once later.
    pub fn may_be_incomplete(&mut self, name: &str, now: Instant) -> bool {
        let Some(t) = self.tracks.get_mut(name) else {
            return false;
        };
        if t.suspect_since.is_some() || matches!(t.hint, Some((Hint::RenamedIn, _))) {
            return false;
        }
        t.suspect_since = Some(now);
        true
    }

    /// Whether a name that failed its content check waits for its second look (it is ready
    /// once the quiet period after the failure has passed, and fails for good then).
    pub fn awaits_second_look(&self) -> bool {
        self.tracks.values().any(|t| t.suspect_since.is_some())
    }

    /// Stops tracking `name` (claimed, or taken by another watcher).
    pub fn remove(&mut self, name: &str) {
        self.tracks.remove(name);
    }

    /// Whether anything is tracked.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, len: u64) -> Entry {
        Entry {
            name: name.into(),
            folder: false,
            signature: Signature {
                len,
                mtime_ns: 1,
                files: 1,
            },
        }
    }

    fn names(t: &Tracker, now: Instant) -> Vec<String> {
        t.ready(now).into_iter().map(|e| e.name).collect()
    }

    #[test]
    fn each_rule_of_completeness() {
        let q = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut t = Tracker::new(q, Duration::from_secs(60));
        t.observe(
            vec![
                entry("found", 10),
                entry("renamed", 10),
                entry("closed", 10),
                entry("open", 10),
            ],
            t0,
        );
        t.hint("renamed", Hint::RenamedIn, t0);
        t.hint("closed", Hint::Closed, t0);
        t.hint("open", Hint::Writing, t0);
        assert_eq!(names(&t, t0), ["renamed"]);
        let later = t0 + q;
        // Oldest stable first, ties by name.
        assert_eq!(names(&t, later), ["closed", "found", "renamed"]);
        // A file being written waits for its close, not for the quiet period …
        t.observe(vec![entry("open", 20)], later);
        assert!(names(&t, later + q * 2).is_empty());
        // … unless nothing changes for ten quiet periods.
        assert_eq!(names(&t, later + q * 10), ["open"]);
    }

    #[test]
    fn a_changed_signature_restarts_the_quiet_period_and_vanished_names_are_forgotten() {
        let q = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut t = Tracker::new(q, q * 60);
        t.observe(vec![entry("a", 1), entry("b", 1)], t0);
        t.observe(vec![entry("a", 2)], t0 + q);
        assert!(names(&t, t0 + q).is_empty());
        assert_eq!(names(&t, t0 + q * 2), ["a"]);
    }

    #[test]
    fn a_rescan_forgets_hints_so_only_stability_counts() {
        let q = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut t = Tracker::new(q, q);
        t.observe(vec![entry("a", 1)], t0);
        t.hint("a", Hint::Writing, t0);
        t.forget_hints();
        assert_eq!(names(&t, t0 + q), ["a"]);
    }

    #[test]
    fn a_failed_check_on_a_file_not_renamed_in_is_retried_once_after_the_quiet_period() {
        let q = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut t = Tracker::new(q, q);
        t.observe(vec![entry("a", 1), entry("r", 1)], t0);
        t.hint("r", Hint::RenamedIn, t0);
        assert!(!t.may_be_incomplete("r", t0));
        assert!(t.may_be_incomplete("a", t0 + q));
        assert!(names(&t, t0 + q).iter().all(|n| n != "a"));
        assert!(names(&t, t0 + q * 2).iter().any(|n| n == "a"));
        assert!(!t.may_be_incomplete("a", t0 + q * 2));
        assert!(t.awaits_second_look(), "`a` failed once and waits for its second look");
        t.remove("a");
        assert!(!t.awaits_second_look());
    }

    #[test]
    fn temporary_names_are_ignored() {
        for n in [".a.nii.gz", "a.nii.gz.part", "a.tmp", "a.nii~", "a.crdownload"] {
            assert!(ignored(n), "{n}");
        }
        assert!(!ignored("a.nii.gz"));
    }
}
