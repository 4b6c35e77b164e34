//! One scan, from complete in the inbox to done: check its content, claim it (an atomic
//! rename into the work folder), predict, write the outputs atomically, journal `done`, move it
//! to the processed folder, re-rank the pool. A bad scan goes to `OUTBOX/failed/` with the
//! reason beside it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

use super::arrival::{Entry, Tracker};
use super::journal::{Event, Kind, Line};
use super::{case_id, WatchError, Watcher};
use crate::fsutil;
use crate::infer::Prediction;
use crate::strategy::query::{score_volume, Candidate, CandidatePool, Needs, PoolOptions, Unit};
use crate::volume::dicom::{self, DerivedFormat, Series};
use crate::volume::{self, Volume};

/// Why an arrival's content cannot be used yet or at all.
pub(super) enum Unreadable {
    /// It vanished (another watcher claimed it).
    Gone,
    /// It is not a scan delinea can read; the reason.
    Bad(String),
}

/// A scan's content: a NIfTI volume, or a DICOM series (its volume and what an RTSTRUCT or SEG
/// output references).
pub(super) enum Scan {
    Nifti(Volume),
    Dicom(Series),
}

impl Scan {
    fn volume(&self) -> &Volume {
        match self {
            Scan::Nifti(v) => v,
            Scan::Dicom(s) => &s.volume,
        }
    }
}

/// Reads a scan arrival completely: a NIfTI file (a `.nii.gz` must decode to its end and hold
/// as many voxels as its header says), a DICOM series folder or a DICOM file.
pub(super) fn read_scan(path: &Path, folder: bool) -> Result<Scan, Unreadable> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !path.exists() {
        return Err(Unreadable::Gone);
    }
    let nifti = name.ends_with(".nii") || name.ends_with(".nii.gz");
    let dicom = !nifti && dicom::is_dicom(path);
    if !folder && !nifti && !dicom {
        return Err(Unreadable::Bad(format!(
            "{name} is neither a NIfTI scan (.nii, .nii.gz) nor DICOM (a series folder or a DICOM file)"
        )));
    }
    let read = match dicom {
        true => dicom::read_one_series(path).map(Scan::Dicom),
        false => volume::read_volume(path).map(Scan::Nifti),
    };
    read.map_err(|e| match e {
        volume::Error::Io { ref cause, .. } if cause.kind() == ErrorKind::NotFound => Unreadable::Gone,
        // Named as dropped: the file is in failed/ by the time anyone reads the reason.
        e => Unreadable::Bad(e.to_string().replace(&path.display().to_string(), &name)),
    })
}

/// The per-scan summary written as `cases/<case>/scores.json`.
#[derive(Debug, Serialize)]
struct Scores<'a> {
    case: &'a str,
    input: &'a str,
    /// The model generation that predicted (0: the job's model) and its folder.
    model: u32,
    model_dir: &'a Path,
    tumour_voxels: usize,
    /// One row per axial slice: entropy, BALD, margin, tumour area, STDR distance.
    slices: &'a [Candidate],
}

impl<B: AutodiffBackend> Watcher<'_, B> {
    /// A complete scan in the inbox; false when it was not taken (gone, or checked too early).
    pub(super) fn arrive_scan(&mut self, entry: &Entry, tracker: &mut Tracker) -> Result<bool, WatchError> {
        let name = entry.name.clone();
        let since = Instant::now();
        let Some(inbox) = &self.layout.inbox else {
            return Ok(false);
        };
        let inbox_path = inbox.join(&name);
        let content = read_scan(&inbox_path, entry.folder);
        match &content {
            Err(Unreadable::Gone) => {
                tracker.remove(&name);
                return Ok(false);
            }
            Err(Unreadable::Bad(_)) if tracker.may_be_incomplete(&name, since) => return Ok(false),
            _ => {}
        }
        self.append(Line::new(Event::Seen, Kind::Scan, &name))?;
        let work = self.layout.work().join(&name);
        match std::fs::rename(&inbox_path, &work) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracker.remove(&name); // another watcher claimed it first
                return Ok(false);
            }
            Err(e) => return Err(WatchError::io(&inbox_path)(e)),
        }
        tracker.remove(&name);
        fsutil::sync_dir(&self.layout.work()).map_err(WatchError::io(&self.layout.work()))?;
        self.append(Line::new(Event::Claimed, Kind::Scan, &name))?;
        let volume = content.map_err(|e| match e {
            Unreadable::Bad(reason) => reason,
            Unreadable::Gone => "it vanished".into(),
        });
        self.process_claimed(&name, Some(volume), since)?;
        Ok(true)
    }

    /// A scan found in the work folder at start: finished if the journal says so, else redone.
    pub(super) fn resume_scan(&mut self, name: &str) -> Result<(), WatchError> {
        let last = self.history.scans.get(name).cloned();
        match last.as_ref().map(|l| l.event) {
            Some(Event::Done) => self.move_processed(name),
            Some(Event::Failed) => {
                let dest = last.and_then(|l| l.stored).unwrap_or_else(|| name.to_string());
                self.move_to(name, &self.layout.failed().join(dest))
            }
            _ => self.process_claimed(name, None, Instant::now()),
        }
    }

    /// Predicts a claimed scan (`volume`: its content if already read) and records the outcome.
    fn process_claimed(
        &mut self,
        name: &str,
        volume: Option<Result<Scan, String>>,
        since: Instant,
    ) -> Result<(), WatchError> {
        let case = case_id(name).to_string();
        if let Some(reason) = self.refusal(name, &case) {
            return self.fail_scan(name, reason, since);
        }
        let work = self.layout.work().join(name);
        let volume = match volume {
            Some(v) => v,
            None => read_scan(&work, work.is_dir()).map_err(|e| match e {
                Unreadable::Bad(reason) => reason,
                Unreadable::Gone => "it vanished from the work folder".into(),
            }),
        };
        let volume = match volume {
            Ok(v) => v,
            Err(reason) => return self.fail_scan(name, reason, since),
        };
        let mut line = Line::new(Event::Started, Kind::Scan, name);
        (line.case, line.model) = (Some(case.clone()), Some(self.current.generation));
        self.append(line)?;
        let infer = Instant::now();
        let (prediction, rows) = self.predict(&case, volume.volume());
        let infer_s = infer.elapsed().as_secs_f64();
        let rows = match rows {
            Ok(rows) => rows,
            Err(reason) => return self.fail_scan(name, reason, since),
        };
        let series = match self.reference_series(&volume) {
            Ok(s) => s,
            Err(reason) => return self.fail_scan(name, reason, since),
        };
        self.write_outputs(name, &case, &prediction, &rows, series)?;
        self.journal.step("outputs");
        let mut line = Line::new(Event::Done, Kind::Scan, name);
        (line.case, line.model) = (Some(case.clone()), Some(self.current.generation));
        (line.latency_s, line.infer_s) = (Some(since.elapsed().as_secs_f64()), Some(infer_s));
        self.append(line)?;
        self.move_processed(name)?;
        self.ranker.insert(&case, rows);
        self.ranker
            .write(&self.layout, &self.history, self.current.generation)?;
        self.summary.processed += 1;
        (self.log)(&serde_json::json!({
            "scan": name, "case": case, "outcome": "done", "latency_s": since.elapsed().as_secs_f64(),
            "infer_s": infer_s, "model": self.current.generation,
            "tumour_voxels": prediction.mask.data.iter().filter(|v| **v > 0).count(),
        }));
        Ok(())
    }

    /// Why a claimed scan is refused before it is read, if it is.
    fn refusal(&self, name: &str, case: &str) -> Option<String> {
        if case.is_empty() || case.contains('@') {
            return Some(format!(
                "{name}: a case id (the name without .nii.gz) must be non-empty and without '@'"
            ));
        }
        let done = self.history.done_cases();
        let (input, _) = done.get(case)?;
        Some(format!(
            "case {case} was already processed from {input}; a case is never processed twice \
             (its outputs and labels stay as they are): drop this scan under another name to process it"
        ))
    }

    /// The prediction and pool rows of `volume` with the current model; after an adaptation the
    /// descriptors (STDR, clustering features) from the job's model, the one the references
    /// describe.
    fn predict(&self, case: &str, volume: &Volume) -> (Prediction, Result<Vec<Candidate>, String>) {
        let mut options = self.ranker.pool_options();
        let (stream, who) = (crate::rng::stream_of(case), (case, self.options.job.centre.as_str()));
        let described = options.needs.stdr || options.needs.features;
        let source = self.current.source.as_ref().filter(|_| described);
        let descriptors = source.map(|(model, card)| {
            let only = Needs {
                stdr: options.needs.stdr,
                features: options.needs.features,
                ..Needs::default()
            };
            let o = PoolOptions {
                needs: only,
                ..options.clone()
            };
            score_volume(model, card, volume, who, stream, &o).1
        });
        if descriptors.is_some() {
            (options.needs.stdr, options.needs.features) = (false, false);
        }
        let current = &self.current;
        let (p, mut rows) = score_volume(&current.model, &current.card, volume, who, stream, &options);
        for (row, from) in rows.iter_mut().zip(descriptors.into_iter().flatten()) {
            (row.descriptor, row.features) = (from.descriptor, from.features);
        }
        let pool = CandidatePool {
            unit: Unit::Slice,
            rows,
        };
        let rows = match self.ranker.references() {
            Some(r) => pool.with_reference(r).map(|p| p.rows).map_err(|e| e.to_string()),
            None => Ok(pool.rows),
        };
        (p, rows)
    }

    /// The DICOM series an RTSTRUCT / SEG output references: `None` when the job wants neither
    /// or the scan is NIfTI (nothing to reference); an error (the scan fails) when it cannot be
    /// referenced.
    fn reference_series<'s>(&self, scan: &'s Scan) -> Result<Option<&'s Series>, String> {
        let o = self.options.job.outputs;
        match scan {
            Scan::Dicom(series) if o.rtstruct || o.seg => {
                series.referenceable().map_err(|e| e.to_string())?;
                Ok(Some(series))
            }
            _ => Ok(None),
        }
    }

    /// Writes the job's outputs into `cases/<case>/` (the RTSTRUCT / SEG referencing `series`)
    /// and the pool rows into the state folder, each atomically, and syncs the folders.
    fn write_outputs(
        &self,
        name: &str,
        case: &str,
        p: &Prediction,
        rows: &[Candidate],
        series: Option<&Series>,
    ) -> Result<(), WatchError> {
        let dir = self.layout.case(case);
        std::fs::create_dir_all(&dir).map_err(WatchError::io(&dir))?;
        let outputs = self.options.job.outputs;
        let vol = |file: &str, v: &Volume| -> Result<(), WatchError> {
            volume::write_volume(&dir.join(file), v).map_err(|e| WatchError::Job {
                job: dir.join(file),
                reason: e.to_string(),
            })
        };
        if outputs.mask {
            volume::write_label_map(&dir.join("mask.nii.gz"), &p.mask).map_err(|e| WatchError::Job {
                job: dir.join("mask.nii.gz"),
                reason: e.to_string(),
            })?;
        }
        if outputs.probability {
            vol("probability.nii.gz", &p.tumour_probability)?;
        }
        let derived = [
            (outputs.rtstruct, DerivedFormat::Rtstruct),
            (outputs.seg, DerivedFormat::Seg),
        ];
        for format in derived.iter().filter(|(on, _)| *on).map(|(_, f)| f) {
            let Some(series) = series else { break };
            let path = dir.join(format.extension());
            let options = dicom::Options {
                holes: outputs.rtstruct_holes,
                ..dicom::Options::default()
            };
            format
                .write(&p.mask, &dir.join("mask.nii.gz"), series, &path, &options)
                .map_err(|e| WatchError::Job {
                    job: path.clone(),
                    reason: e.to_string(),
                })?;
        }
        if let (true, Some(u)) = (outputs.uncertainty, &p.uncertainty) {
            vol("entropy.nii.gz", &u.entropy)?;
            vol("bald.nii.gz", &u.bald)?;
        }
        let scores = Scores {
            case,
            input: name,
            model: self.current.generation,
            model_dir: &self.current.dir,
            tumour_voxels: p.mask.data.iter().filter(|v| **v > 0).count(),
            slices: &rows
                .iter()
                .cloned()
                .map(|mut r| {
                    r.descriptor.clear();
                    r.features.clear();
                    if !outputs.stdr_distance {
                        r.scores.stdr_distance = None;
                    }
                    r
                })
                .collect::<Vec<_>>(),
        };
        let path = dir.join("scores.json");
        fsutil::write_json_atomic(&path, &scores).map_err(WatchError::io(&path))?;
        let pool = self.layout.pool().join(format!("{case}.json"));
        fsutil::write_json_atomic(&pool, rows).map_err(WatchError::io(&pool))?;
        for d in [dir.as_path(), &self.layout.outbox.join("cases"), &self.layout.pool()] {
            fsutil::sync_dir(d).map_err(WatchError::io(d))?;
        }
        Ok(())
    }

    /// Refuses a claimed scan: its reason beside it in `failed/`, the journal line, the move.
    fn fail_scan(&mut self, name: &str, reason: String, since: Instant) -> Result<(), WatchError> {
        let dest = self.failed_destination(name, Kind::Scan, &reason)?;
        let mut line = Line::new(Event::Failed, Kind::Scan, name);
        (line.reason, line.stored) = (Some(reason.clone()), Some(file_name(&dest)));
        line.latency_s = Some(since.elapsed().as_secs_f64());
        self.append(line)?;
        self.move_to(name, &dest)?;
        self.summary.failed += 1;
        (self.log)(&serde_json::json!({"scan": name, "outcome": "failed", "reason": reason}));
        Ok(())
    }

    /// A free name for `name` in `failed/`, with `<that>.error.json` written beside it.
    pub(super) fn failed_destination(&self, name: &str, kind: Kind, reason: &str) -> Result<PathBuf, WatchError> {
        let failed = self.layout.failed();
        let dest = (1..)
            .map(|n| match n {
                1 => failed.join(name),
                n => failed.join(format!("{n}-{name}")),
            })
            .find(|p| !p.exists() && !error_file(p).exists())
            .unwrap_or_else(|| failed.join(name));
        let error = serde_json::json!({
            "input": name, "kind": kind, "reason": reason, "time": fsutil::utc_now(),
        });
        let path = error_file(&dest);
        fsutil::write_json_atomic(&path, &error).map_err(WatchError::io(&path))?;
        Ok(dest)
    }

    fn move_processed(&mut self, name: &str) -> Result<(), WatchError> {
        let dest = self.layout.processed.join(name);
        self.move_to(name, &dest)
    }

    /// Moves a claimed scan out of the work folder, byte for byte.
    fn move_to(&mut self, name: &str, dest: &Path) -> Result<(), WatchError> {
        let from = self.layout.work().join(name);
        if !from.exists() {
            return Ok(()); // moved before a crash that came after
        }
        fsutil::move_file(&from, dest).map_err(WatchError::io(dest))?;
        self.journal.step("moved");
        Ok(())
    }
}

/// `<dest>.error.json`.
pub(super) fn error_file(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".error.json");
    PathBuf::from(s)
}

pub(super) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
