//! Labels that come back: `LABELS/<case>.nii.gz` or `LABELS/<case>@<rater>.nii.gz` (or an
//! RTSTRUCT drawn on a DICOM scan, `<case>.dcm` / `<case>@<rater>.dcm`), claimed
//! into `STATE/labels/NNNN-<name>` (kept there, byte for byte; a later file for the same case
//! is a new version and the latest counts), checked against the scan's grid, measured against
//! the mask the watcher predicted (`revisions.csv`), and taken out of the ranked pool.

use std::io::ErrorKind;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;

use super::arrival::{Entry, Tracker};
use super::door::served_mask;
use super::journal::{Event, Kind, Line};
use super::revision::{self, Revision};
use super::scan::file_name;
use super::{case_id, WatchError, Watcher};
use crate::fsutil;
use crate::volume;

/// `(case, rater)` of a label file name (`-`: no rater named).
pub fn parse_name(name: &str) -> (String, String) {
    let stem = case_id(name);
    match stem.rsplit_once('@') {
        Some((case, rater)) if !case.is_empty() && !rater.is_empty() => (case.into(), rater.into()),
        _ => (stem.into(), "-".into()),
    }
}

impl<B: AutodiffBackend> Watcher<'_, B> {
    /// A complete label in the labels folder; false when it was not taken.
    pub(super) fn arrive_label(&mut self, entry: &Entry, tracker: &mut Tracker) -> Result<bool, WatchError> {
        let Some(labels) = self.layout.labels.clone() else {
            return Ok(false);
        };
        let name = entry.name.clone();
        let src = labels.join(&name);
        let check = match volume::dicom::is_dicom(&src) {
            true => volume::dicom::open_object(&src).map(|_| ()),
            false => volume::read_label_map(&src).map(|_| ()),
        };
        match check {
            Err(volume::Error::Io { ref cause, .. }) if cause.kind() == ErrorKind::NotFound => {
                tracker.remove(&name);
                return Ok(false);
            }
            Err(_) if tracker.may_be_incomplete(&name, Instant::now()) => return Ok(false),
            _ => {}
        }
        let put = |dest: &std::path::Path| match std::fs::rename(&src, dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(WatchError::io(&src)(e)),
        };
        let taken = self.take_label(&name, put)?;
        tracker.remove(&name);
        Ok(taken)
    }

    /// Journals the label `name` seen, puts it at its stored place with `put` (false: it
    /// vanished), journals it claimed, and registers it.
    pub(super) fn take_label(
        &mut self,
        name: &str,
        put: impl FnOnce(&std::path::Path) -> Result<bool, WatchError>,
    ) -> Result<bool, WatchError> {
        let stored = format!("{:04}-{name}", self.next_label_number());
        let mut line = Line::new(Event::Seen, Kind::Label, name);
        line.stored = Some(stored.clone());
        self.append(line.clone())?;
        if !put(&self.layout.stored_labels().join(&stored))? {
            return Ok(false);
        }
        fsutil::sync_dir(&self.layout.stored_labels()).map_err(WatchError::io(&self.layout.stored_labels()))?;
        line.event = Event::Claimed;
        line.time = fsutil::utc_now();
        self.append(line)?;
        self.register(&stored, name)?;
        Ok(true)
    }

    /// A stored label at start: registered again unless the journal says it was.
    pub(super) fn resume_label(&mut self, stored: &str) -> Result<(), WatchError> {
        let last = self.history.labels.get(stored).cloned();
        match last.map(|l| (l.event, l.input, l.reason)) {
            Some((Event::Done, ..)) => Ok(()),
            Some((Event::Failed, input, reason)) => {
                // Refused, but the move to failed/ did not happen before the crash.
                let dest = self.failed_destination(&input, Kind::Label, &reason.unwrap_or_default())?;
                let from = self.layout.stored_labels().join(stored);
                fsutil::move_file(&from, &dest).map_err(WatchError::io(&dest))
            }
            Some((_, input, _)) => self.register(stored, &input),
            None => {
                let input = stored.split_once('-').map_or(stored, |(_, rest)| rest).to_string();
                self.register(stored, &input)
            }
        }
    }

    fn next_label_number(&self) -> usize {
        let numbered = self
            .history
            .labels
            .keys()
            .filter_map(|k| k.split_once('-')?.0.parse::<usize>().ok());
        numbered.max().unwrap_or(0) + 1
    }

    /// Measures the stored label against the prediction and journals it, or refuses it.
    fn register(&mut self, stored: &str, input: &str) -> Result<(), WatchError> {
        let (case, rater) = parse_name(input);
        let revision = match self.measure(stored, &case, &rater) {
            Ok(r) => r,
            Err(reason) => {
                // Named as dropped: the file is in failed/ by the time anyone reads the reason.
                let path = self.layout.stored_labels().join(stored);
                let reason = reason.replace(&path.display().to_string(), input);
                return self.fail_label(stored, input, reason);
            }
        };
        let mut line = Line::new(Event::Done, Kind::Label, input);
        (line.case, line.stored, line.model) = (Some(case.clone()), Some(stored.into()), Some(revision.model));
        line.revision = Some(revision.clone());
        self.append(line)?;
        let rows: Vec<(&str, &Revision)> = self
            .history
            .registered_labels()
            .into_iter()
            .filter_map(|l| Some((l.time.as_str(), l.revision.as_ref()?)))
            .collect();
        let csv = self.layout.outbox.join("revisions.csv");
        revision::write_csv(&csv, &rows).map_err(WatchError::io(&csv))?;
        self.ranker
            .write(&self.layout, &self.history, self.current.generation)?;
        self.summary.labels += 1;
        (self.log)(&serde_json::json!({
            "label": input, "case": case, "rater": rater, "outcome": "registered",
            "revision_ratio": revision.revision_ratio, "dsc": revision.dsc, "model": revision.model,
        }));
        Ok(())
    }

    fn measure(&self, stored: &str, case: &str, rater: &str) -> Result<Revision, String> {
        let done = self.history.done_cases();
        let Some((input, model)) = done.get(case) else {
            return Err(format!(
                "no scan with case id {case} was processed by this watcher: drop the scan first, then its label"
            ));
        };
        let (mask_path, model) = self.shown_prediction(case, *model);
        let mask = volume::read_label_map(&mask_path).map_err(|e| e.to_string())?;
        let path = self.layout.stored_labels().join(stored);
        let scan = self.layout.processed.join(input);
        // A NIfTI label map on the scan's grid, or an RTSTRUCT drawn on the scan's series.
        let label = volume::read_label_map_for(&path, &scan, &mask.geometry).map_err(|e| e.to_string())?;
        Ok(Revision::measure(case, rater, model, &mask, &label))
    }

    /// The last prediction of `case` a door served (`delinea serve`, after an adaptation), else
    /// the one made on arrival by generation `arrival`: the delineation the rater revised.
    fn shown_prediction(&self, case: &str, arrival: u32) -> (std::path::PathBuf, u32) {
        (arrival + 1..=self.current.generation)
            .rev()
            .map(|g| (served_mask(&self.layout, case, g), g))
            .find(|(p, _)| p.is_file())
            .unwrap_or_else(|| (self.layout.case(case).join("mask.nii.gz"), arrival))
    }

    fn fail_label(&mut self, stored: &str, input: &str, reason: String) -> Result<(), WatchError> {
        let dest = self.failed_destination(input, Kind::Label, &reason)?;
        let mut line = Line::new(Event::Failed, Kind::Label, input);
        (line.reason, line.stored) = (Some(reason.clone()), Some(stored.into()));
        self.append(line)?;
        let from = self.layout.stored_labels().join(stored);
        if from.exists() {
            fsutil::move_file(&from, &dest).map_err(WatchError::io(&dest))?;
        }
        self.summary.failed += 1;
        (self.log)(&serde_json::json!({
            "label": input, "outcome": "failed", "reason": reason, "kept_as": file_name(&dest),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn label_names_give_case_and_rater() {
        assert_eq!(parse_name("p7.nii.gz"), ("p7".into(), "-".into()));
        assert_eq!(parse_name("p7@dr-lee.nii.gz"), ("p7".into(), "dr-lee".into()));
        assert_eq!(parse_name("p7@.nii"), ("p7@".into(), "-".into()));
    }
}
