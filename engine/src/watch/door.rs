//! A second door onto the job state (`delinea serve`): questions ([`Ask`]) come over the
//! watcher's channel and are answered by the watcher's own thread between arrivals, with the
//! same functions the drop folder uses (ranking, label registration, adaptation); what a door
//! may read without asking (images, labels, the model, training) is on the [`Board`],
//! refreshed after every change.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::journal::{Event, History, Kind};
use super::model::generation_name;
use super::revision::Revision;
use super::worker::Progress;
use super::{Layout, WatchError, Watcher};
use crate::infer::{predict_volume, PredictOptions};
use crate::strategy::query::{self, QueryStrategy};
use crate::strategy::Resolver;
use crate::volume::{self, LabelMap};

/// The one class delinea delineates, as label names travel (Slicer segment names).
pub const LABEL_NAME: &str = "GTV";

/// Why a question was refused, in HTTP's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such image or label (404).
    NotFound(String),
    /// The request cannot be done as asked (400).
    Invalid(String),
    /// Busy: an adaptation runs (429).
    Busy(String),
    /// The server's own trouble (500).
    Failed(String),
}

/// A reply channel.
pub type Reply<T> = oneshot::Sender<Result<T, Refusal>>;

/// A question for the job state.
#[derive(Debug)]
pub enum Ask {
    /// The next scan to label by `strategy` for `client` (none when all are labelled or leased).
    Next {
        /// A strategy name the board lists.
        strategy: String,
        /// Who asks.
        client: String,
        /// The answer.
        reply: Reply<Option<Sample>>,
    },
    /// The current model's mask of `image` (a NIfTI file under the state folder).
    Infer {
        /// The image id (case id).
        image: String,
        /// The answer.
        reply: Reply<Inferred>,
    },
    /// A label uploaded for `image` by `rater`, waiting in `upload`.
    Label(Box<Upload>, Reply<Revision>),
    /// Adapt now.
    Train {
        /// Who asks.
        client: String,
        /// The answer: the adaptation started.
        reply: Reply<Progress>,
    },
    /// Stop the adaptation under way.
    Stop {
        /// Who asks.
        client: String,
        /// The answer: whether one was running.
        reply: Reply<bool>,
    },
}

/// A label file a door received.
#[derive(Debug)]
pub struct Upload {
    /// The image id.
    pub image: String,
    /// Whose label (`[A-Za-z0-9._-]`).
    pub rater: String,
    /// The uploaded bytes, on disk under the state folder (removed once answered).
    pub file: PathBuf,
    /// `.nii.gz`, `.nii`, `.nrrd` or `.seg.nrrd`: how to read it.
    pub suffix: String,
    /// Label value → name (Slicer's `label_info`), when given.
    pub names: Option<Vec<(String, i64)>>,
}

/// An image to label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The image id.
    pub id: String,
    /// A file name unique to the image, keeping its extension.
    pub name: String,
    /// Where the server holds it.
    pub path: PathBuf,
    /// `SHA256:<hex>` of the file served for it.
    pub checksum: String,
}

/// A mask predicted for an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Inferred {
    /// The NIfTI mask.
    pub mask: PathBuf,
    /// The generation that predicted it.
    pub generation: u32,
    /// Whether it was predicted for this request (false: served from an earlier prediction).
    pub fresh: bool,
}

/// What the doors read without asking.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Board {
    /// The job's name.
    pub name: String,
    /// The generation predicting now.
    pub generation: u32,
    /// Its folder.
    pub model: PathBuf,
    /// The job's query strategy, then every builtin the pool rows serve.
    pub strategies: Vec<String>,
    /// The adaptation strategy a Train request runs.
    pub adaptation: String,
    /// Processed scans by image id.
    pub images: BTreeMap<String, BoardImage>,
    /// The adaptation under way.
    pub training: Option<Progress>,
    /// How the last adaptation ended (from the journal).
    pub last_training: Option<Ended>,
}

/// A processed scan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BoardImage {
    /// The scan as processed (a file, or a DICOM series folder).
    pub file: PathBuf,
    /// The name a door gives it (`<case>.nii.gz` for a DICOM series).
    pub name: String,
    /// When it was done.
    pub time: String,
    /// The latest registered label of each rater (stored file).
    pub labels: BTreeMap<String, PathBuf>,
    /// The latest registered label of any rater.
    pub latest: Option<PathBuf>,
}

/// How an adaptation ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ended {
    /// The generation it made or would have made.
    pub generation: u32,
    /// `adapted`, `failed` or `adapt-started` (interrupted by a stop of the server).
    pub event: Event,
    /// When.
    pub time: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Labels it learnt from.
    pub labels: usize,
    /// Seconds it took.
    pub seconds: Option<f64>,
}

/// The door's state inside the watcher.
pub(crate) struct Door {
    board: Arc<RwLock<Board>>,
    lease: Duration,
    leases: HashMap<String, (String, Instant)>,
    checksums: HashMap<String, String>,
    parts: usize,
}

impl Door {
    /// A door publishing on `board`; a sample is leased to its client for `lease`; predictions
    /// cut batches into `parts` concurrent parts.
    pub fn new(board: Arc<RwLock<Board>>, lease: Duration, parts: usize) -> Door {
        Door {
            board,
            lease,
            leases: HashMap::new(),
            checksums: HashMap::new(),
            parts: parts.max(1),
        }
    }
}

/// Whether `id` is a safe id: `[A-Za-z0-9._-]`, not empty, not `.` or `..`.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl<B: AutodiffBackend> Watcher<'_, B> {
    /// Answers `ask` (a refusal is an answer; only the journal's trouble is an error).
    pub(super) fn answer(&mut self, ask: Ask) -> Result<(), WatchError> {
        match ask {
            Ask::Next {
                strategy,
                client,
                reply,
            } => {
                let _ = reply.send(self.next_sample(&strategy, &client));
            }
            Ask::Infer { image, reply } => {
                let _ = reply.send(self.infer(&image));
            }
            Ask::Label(upload, reply) => {
                let answer = self.take_upload(&upload);
                let _ = std::fs::remove_file(&upload.file);
                let _ = reply.send(answer?);
            }
            Ask::Train { client, reply } => {
                let _ = reply.send(self.train_now(&client)?);
            }
            Ask::Stop { client, reply } => {
                let stopped = self.stop_training(&format!("{client} (DELETE /train/)"))?;
                let _ = reply.send(Ok(stopped));
            }
        }
        self.publish();
        Ok(())
    }

    fn next_sample(&mut self, strategy: &str, client: &str) -> Result<Option<Sample>, Refusal> {
        let Some(door) = &self.door else {
            return Err(Refusal::Failed("no door".into()));
        };
        if !door
            .board
            .read()
            .map(|b| b.strategies.iter().any(|s| s == strategy))
            .unwrap_or(false)
        {
            return Err(Refusal::NotFound(format!(
                "no strategy {strategy:?} here; /info/ lists them"
            )));
        }
        let own = strategy == self.options.job.query.strategy;
        let resolved: Option<Box<dyn QueryStrategy>> = match own {
            true => None,
            false => Some(
                Resolver::new()
                    .resolve_query(strategy)
                    .map_err(|e| Refusal::Invalid(e.to_string()))?,
            ),
        };
        let order = self
            .ranker
            .order(&self.history, resolved.as_deref())
            .map_err(Refusal::Invalid)?;
        let now = Instant::now();
        let lease = door.lease;
        let taken = |case: &String| {
            door.leases
                .get(case)
                .is_some_and(|(who, at)| who != client && now.duration_since(*at) < lease)
        };
        let Some(case) = order.into_iter().find(|c| !taken(c)) else {
            return Ok(None);
        };
        let sample = self.sample(&case)?;
        if let Some(door) = &mut self.door {
            door.leases.retain(|_, (who, _)| who != client);
            door.leases.insert(case, (client.to_string(), now));
        }
        Ok(Some(sample))
    }

    /// The sample of a processed case, its checksum computed once.
    fn sample(&mut self, case: &str) -> Result<Sample, Refusal> {
        let board = self.board_image(case)?;
        let path = served_image(&self.layout.state, case, &board.file).map_err(Refusal::Failed)?;
        let door = self.door.as_mut().ok_or_else(|| Refusal::Failed("no door".into()))?;
        let checksum = match door.checksums.get(case) {
            Some(c) => c.clone(),
            None => {
                let c = sha256_file(&path).map_err(|e| Refusal::Failed(format!("{}: {e}", path.display())))?;
                door.checksums.insert(case.to_string(), c.clone());
                c
            }
        };
        Ok(Sample {
            id: case.to_string(),
            name: board.name,
            path,
            checksum,
        })
    }

    fn board_image(&self, case: &str) -> Result<BoardImage, Refusal> {
        let door = self.door.as_ref().ok_or_else(|| Refusal::Failed("no door".into()))?;
        let board = door
            .board
            .read()
            .map_err(|_| Refusal::Failed("the board is poisoned".into()))?;
        board
            .images
            .get(case)
            .cloned()
            .ok_or_else(|| Refusal::NotFound(format!("no image {case:?} in this datastore")))
    }

    /// The current generation's mask of `case`: the one predicted on arrival or for an earlier
    /// request when the model has not changed since, else predicted now (and kept).
    fn infer(&mut self, case: &str) -> Result<Inferred, Refusal> {
        let image = self.board_image(case)?;
        let generation = self.current.generation;
        let arrival = self.history.done_cases().get(case).map(|(_, g)| *g);
        let at_arrival = self.layout.case(case).join("mask.nii.gz");
        if arrival == Some(generation) && at_arrival.is_file() {
            return Ok(Inferred {
                mask: at_arrival,
                generation,
                fresh: false,
            });
        }
        let kept = served_mask(&self.layout, case, generation);
        if kept.is_file() {
            return Ok(Inferred {
                mask: kept,
                generation,
                fresh: false,
            });
        }
        let scan = volume::read_volume(&image.file).map_err(|e| Refusal::Failed(e.to_string()))?;
        let options = PredictOptions {
            batch: self.options.job.prediction.batch,
            parts: self.door.as_ref().map_or(1, |d| d.parts),
            ..PredictOptions::default()
        };
        let card = &self.current.card;
        let p = predict_volume(
            &self.current.model,
            &scan,
            &card.preprocessing,
            card.architecture.classes,
            &options,
        );
        let dir = kept.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Refusal::Failed(format!("{}: {e}", dir.display())))?;
        volume::write_label_map(&kept, &p.mask).map_err(|e| Refusal::Failed(e.to_string()))?;
        Ok(Inferred {
            mask: kept,
            generation,
            fresh: true,
        })
    }

    /// Reads, maps and checks an uploaded label, then stores and registers it as the drop
    /// folder does a dropped one; nothing is written when it is refused.
    fn take_upload(&mut self, u: &Upload) -> Result<Result<Revision, Refusal>, WatchError> {
        let image = match self.board_image(&u.image) {
            Ok(i) => i,
            Err(r) => return Ok(Err(r)),
        };
        let label = match self.checked_upload(u, &image) {
            Ok(l) => l,
            Err(reason) => return Ok(Err(Refusal::Invalid(reason))),
        };
        let name = format!("{}@{}.nii.gz", u.image, u.rater);
        let written = |dest: &Path| {
            volume::write_label_map(dest, &label).map_err(|e| WatchError::Job {
                job: dest.to_path_buf(),
                reason: e.to_string(),
            })?;
            Ok(true)
        };
        self.take_label(&name, written)?;
        let last = self
            .history
            .labels
            .values()
            .filter(|l| l.input == name)
            .max_by(|a, b| a.stored.cmp(&b.stored));
        Ok(match last.map(|l| (l.event, l.revision.clone(), l.reason.clone())) {
            Some((Event::Done, Some(r), _)) => Ok(r),
            Some((_, _, reason)) => Err(Refusal::Invalid(reason.unwrap_or_else(|| "refused".into()))),
            None => Err(Refusal::Failed("the label was not journaled".into())),
        })
    }

    /// The upload as a binary label map on the image's grid, or why it cannot be one.
    fn checked_upload(&self, u: &Upload, image: &BoardImage) -> Result<LabelMap, String> {
        let shown = format!("the label uploaded for {} ({})", u.image, u.suffix);
        let named = |e: volume::Error| e.to_string().replace(&u.file.display().to_string(), &shown);
        let (mut label, segments) = match u.suffix.as_str() {
            ".nrrd" | ".seg.nrrd" => {
                let n = volume::nrrd::read_label_map(&u.file).map_err(named)?;
                let names = n
                    .segments
                    .iter()
                    .map(|s| (s.name.clone(), i64::from(s.value)))
                    .collect();
                (n.labels, names)
            }
            ".nii.gz" | ".nii" => (volume::read_label_map(&u.file).map_err(named)?, Vec::new()),
            ".dcm" => {
                let series = volume::dicom::read_one_series(&image.file).map_err(named)?;
                (
                    volume::dicom::read_rtstruct(&u.file, &series, None).map_err(named)?,
                    Vec::new(),
                )
            }
            other => {
                return Err(format!(
                    "{other}: labels are .nii.gz, .nii, .nrrd, .seg.nrrd or an RTSTRUCT .dcm"
                ))
            }
        };
        let names = match (&u.names, segments.is_empty()) {
            (_, false) => Some(segments),
            (Some(n), true) => Some(n.clone()),
            (None, true) => None,
        };
        map_classes(&mut label, names.as_deref()).map_err(|e| format!("{shown}: {e}"))?;
        let mask_path = self.layout.case(&u.image).join("mask.nii.gz");
        let mask = volume::read_label_map(&mask_path).map_err(|e| e.to_string())?;
        volume::check_same_grid(&image.file, &mask.geometry, Path::new(&shown), &label.geometry)
            .map_err(|e| e.to_string())?;
        Ok(label)
    }

    /// Starts an adaptation now with the job's settings (or the defaults).
    fn train_now(&mut self, client: &str) -> Result<Result<Progress, Refusal>, WatchError> {
        if self.trainer.is_running() {
            return Ok(Err(Refusal::Busy(
                "an adaptation is already running; DELETE /train/ stops it".into(),
            )));
        }
        if self.history.registered_labels().is_empty() {
            return Ok(Err(Refusal::Invalid(
                "no label is registered yet: submit a label first".into(),
            )));
        }
        let a = self.options.job.requested_adaptation();
        self.start_adaptation(&a, &format!("requested by {client} (POST /train/)"))?;
        Ok(self
            .trainer
            .progress()
            .ok_or_else(|| Refusal::Failed(self.last_failure().unwrap_or_else(|| "it did not start".into()))))
    }

    fn last_failure(&self) -> Option<String> {
        ended(&self.history).and_then(|e| e.reason)
    }

    /// Refreshes the board (a no-op without a door).
    pub(super) fn publish(&mut self) {
        let Some(door) = &self.door else { return };
        let board = Board {
            name: self.options.job.name.clone(),
            generation: self.current.generation,
            model: self.current.dir.clone(),
            strategies: self.strategies(),
            adaptation: self.options.job.requested_adaptation().strategy,
            images: board_images(&self.layout, &self.history),
            training: self.trainer.progress(),
            last_training: ended(&self.history),
        };
        if let Ok(mut b) = door.board.write() {
            *b = board;
        }
    }

    /// The job's query strategy, then each builtin the pool rows serve (through the one
    /// resolver; a client may name only these, never a script or plugin path of its own).
    fn strategies(&self) -> Vec<String> {
        let mut names = vec![self.options.job.query.strategy.clone()];
        let resolver = Resolver::new();
        for name in query::BUILTIN_NAMES {
            let serves = resolver
                .resolve_query(name)
                .is_ok_and(|s| self.ranker.serves(s.as_ref()));
            if serves && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    }
}

/// Maps label values to delinea's classes by name: a value named [`LABEL_NAME`] (any case)
/// becomes 1, every other named value 0; without names the values must already be 0 and 1.
fn map_classes(label: &mut LabelMap, names: Option<&[(String, i64)]>) -> Result<(), String> {
    let Some(names) = names else {
        return match label.data.iter().find(|v| **v > 1) {
            Some(v) => Err(format!(
                "holds value {v} but no label_info names the values; send label_info with the name {LABEL_NAME}"
            )),
            None => Ok(()),
        };
    };
    let ours: Vec<u8> = names
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(LABEL_NAME))
        .filter_map(|(_, v)| u8::try_from(*v).ok())
        .collect();
    if ours.is_empty() {
        let found: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        return Err(format!("names segments {found:?}; this server's label is {LABEL_NAME}"));
    }
    for v in &mut label.data {
        *v = u8::from(ours.contains(v));
    }
    Ok(())
}

/// The file a door serves for an image: a NIfTI scan as processed, a DICOM series converted
/// once to `STATE/served/<case>/image.nii.gz`.
pub fn served_image(state: &Path, case: &str, file: &Path) -> Result<PathBuf, String> {
    let nifti = file.is_file() && !volume::dicom::is_dicom(file);
    if nifti {
        return Ok(file.to_path_buf());
    }
    let out = state.join("served").join(case).join("image.nii.gz");
    if !out.is_file() {
        let v = volume::read_volume(file).map_err(|e| e.to_string())?;
        let dir = out.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        volume::write_volume(&out, &v).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// `STATE/served/<case>/gen-NNNN.nii.gz`: the mask generation `g` predicted for a request.
pub(super) fn served_mask(layout: &Layout, case: &str, generation: u32) -> PathBuf {
    let name = format!("{}.nii.gz", generation_name(generation));
    layout.state.join("served").join(case).join(name)
}

fn board_images(layout: &Layout, history: &History) -> BTreeMap<String, BoardImage> {
    let mut images: BTreeMap<String, BoardImage> = BTreeMap::new();
    for line in history.scans.values().filter(|l| l.event == Event::Done) {
        let Some(case) = &line.case else { continue };
        let file = layout.processed.join(&line.input);
        let file = std::path::absolute(&file).unwrap_or(file);
        let dicom = !line.input.ends_with(".nii.gz") && !line.input.ends_with(".nii");
        let name = if dicom {
            format!("{case}.nii.gz")
        } else {
            line.input.clone()
        };
        let entry = BoardImage {
            file,
            name,
            time: line.time.clone(),
            ..BoardImage::default()
        };
        images.insert(case.clone(), entry);
    }
    for line in history.registered_labels() {
        let (Some(case), Some(stored), Some(r)) = (&line.case, &line.stored, &line.revision) else {
            continue;
        };
        if let Some(image) = images.get_mut(case) {
            let path = layout.stored_labels().join(stored);
            let path = std::path::absolute(&path).unwrap_or(path);
            image.labels.insert(r.rater.clone(), path.clone());
            image.latest = Some(path);
        }
    }
    images
}

/// How the journal's last adaptation ended (an `adapt-started` last: interrupted).
fn ended(history: &History) -> Option<Ended> {
    let line = history.last_model.as_ref()?;
    (line.kind == Kind::Model).then(|| Ended {
        generation: line.model.unwrap_or(0),
        event: line.event,
        time: line.time.clone(),
        reason: line.reason.clone(),
        labels: line.labels.as_ref().map_or(0, Vec::len),
        seconds: line.latency_s,
    })
}

/// `SHA256:<hex>` of a file.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("SHA256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    #[test]
    fn ids_are_refused_unless_plain() {
        for ok in ["p7", "C2-007", "a.b_c"] {
            assert!(is_safe_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a b", "a/b", "a\\b", "é"] {
            assert!(!is_safe_id(bad), "{bad}");
        }
    }

    #[test]
    fn classes_are_mapped_by_name() {
        let g = Geometry::axis_aligned([4, 1, 1], [1.0; 3]);
        let mut l = LabelMap::from_vec(g.clone(), vec![0, 1, 2, 3]).unwrap();
        let names = [("edema".to_string(), 1), ("gtv".to_string(), 2)];
        map_classes(&mut l, Some(&names)).unwrap();
        assert_eq!(l.data, [0, 0, 1, 0]);
        let mut l = LabelMap::from_vec(g.clone(), vec![0, 2, 0, 1]).unwrap();
        assert!(map_classes(&mut l, None).unwrap_err().contains("value 2"));
        let mut l = LabelMap::from_vec(g, vec![0, 1, 0, 1]).unwrap();
        let e = map_classes(&mut l, Some(&[("liver".to_string(), 1)])).unwrap_err();
        assert!(e.contains("liver") && e.contains(LABEL_NAME), "{e}");
    }
}
