//! The model that predicts, and adaptation when the job's trigger fires: a manifest of every
//! processed scan (the labelled ones with their latest label), the labelled scans as the
//! selection, the job's adaptation strategy from the job's model, the result renamed into
//! `STATE/models/gen-NNNN` and only then announced in the journal (so a crash mid-adaptation
//! redoes it; the old model is kept).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;

use super::journal::{Event, History, Kind, Line};
use super::{Layout, WatchError, WatchOptions, Watcher};
use crate::dataset::{CaseEntry, CentreEntry, Manifest, ManifestFile, RaterEntry, Role, Split};
use crate::job::Adaptation;
use crate::model::checkpoint::{self, LabelUse, LabelsRecord, CARD_FILE};
use crate::model::{ModelCard, UNet2d};
use crate::strategy::adapt::{AdaptState, SelectCheckpoint};
use crate::strategy::query::{Reason, Selected, Selection, Unit};
use crate::strategy::Resolver;
use crate::train::{self, AdaptInputs, TrainConfig};

/// The rater id of the watcher's labels in the manifests it writes.
const RATER: &str = "expert";

/// The model that predicts now.
pub(crate) struct Current<B: AutodiffBackend> {
    /// Its weights, for inference.
    pub model: UNet2d<B::InnerBackend>,
    /// Its card.
    pub card: ModelCard,
    /// 0: the job's model; n: the n-th adaptation.
    pub generation: u32,
    /// Its folder.
    pub dir: PathBuf,
    /// After an adaptation, the job's model: STDR descriptors must come from the model the
    /// source references were computed with.
    pub source: Option<(UNet2d<B::InnerBackend>, ModelCard)>,
}

/// `gen-0001`.
pub fn generation_name(generation: u32) -> String {
    format!("gen-{generation:04}")
}

impl<B: AutodiffBackend> Current<B> {
    /// The model of the journal's last adaptation, or the job's.
    pub fn load(o: &WatchOptions, layout: &Layout, history: &History, device: &B::Device) -> Result<Self, WatchError> {
        let generation = history.generation();
        let dir = match generation {
            0 => o.job.model.clone(),
            g => layout.models().join(generation_name(g)),
        };
        let load = |dir: &Path| {
            checkpoint::load::<B::InnerBackend>(dir, device).map_err(|e| WatchError::Job {
                job: o.job_path.clone(),
                reason: format!("model: {e}"),
            })
        };
        let (model, card) = load(&dir)?;
        let source = match generation {
            0 => None,
            _ => Some(load(&o.job.model)?),
        };
        if let Some(p) = &o.job.preprocessing {
            if *p != card.preprocessing {
                return Err(WatchError::Job {
                    job: o.job_path.clone(),
                    reason: format!(
                        "preprocessing: the job expects {} but {} was trained with {}; a model only \
                         works with its own preprocessing",
                        serde_json::to_string(p).unwrap_or_default(),
                        dir.display(),
                        serde_json::to_string(&card.preprocessing).unwrap_or_default()
                    ),
                });
            }
        }
        Ok(Current {
            model,
            card,
            generation,
            dir,
            source,
        })
    }
}

/// The latest registered label of each case: (stored path, label line).
fn latest_labels<'h>(layout: &Layout, history: &'h History) -> BTreeMap<String, (PathBuf, &'h Line)> {
    let mut out = BTreeMap::new();
    for line in history.registered_labels() {
        if let (Some(case), Some(stored)) = (&line.case, &line.stored) {
            out.insert(case.clone(), (absolute(&layout.stored_labels().join(stored)), line));
        }
    }
    out
}

impl<B: AutodiffBackend> Watcher<'_, B> {
    /// Adapts when `every_labels` labels have been registered since the model now predicting
    /// was made (and the last attempt did not fail on these same labels).
    pub(super) fn adapt_if_due(&mut self) -> Result<(), WatchError> {
        let Some(a) = self.options.job.adaptation.clone() else {
            return Ok(());
        };
        let registered = self.history.registered_labels().len();
        let used = self
            .history
            .models
            .last()
            .and_then(|m| m.labels.as_ref())
            .map_or(0, Vec::len);
        if registered < used + a.every_labels
            || self.history.adapt_failed_at == Some(registered)
            || self.trainer.is_running()
        {
            return Ok(());
        }
        self.start_adaptation(&a, "the job's trigger")
    }

    /// Journals the start of the next generation and runs its adaptation: here, to its end, or
    /// in a worker process that [`Watcher::poll_training`] follows (`delinea serve`).
    pub(super) fn start_adaptation(&mut self, a: &Adaptation, why: &str) -> Result<(), WatchError> {
        let generation = self.current.generation + 1;
        let labels: Vec<String> = self
            .history
            .registered_labels()
            .iter()
            .filter_map(|l| l.stored.clone())
            .collect();
        let mut line = Line::new(Event::AdaptStarted, Kind::Model, &generation_name(generation));
        (line.model, line.labels, line.reason) = (Some(generation), Some(labels.clone()), Some(why.into()));
        self.append(line)?;
        let started = Adapting {
            generation,
            labels,
            strategy: a.strategy.clone(),
            since: std::time::Instant::now(),
        };
        if let Some(exe) = self.trainer.worker_exe() {
            return match self.spawn_adaptation(a, &started, &exe) {
                Ok(worker) => {
                    self.trainer.run(worker, started);
                    self.publish();
                    Ok(())
                }
                Err(reason) => self.end_adaptation(started, Err(reason)),
            };
        }
        let result = self.adapt(a, generation);
        self.end_adaptation(started, result)
    }

    /// Journals how an adaptation ended; a new model predicts from now on.
    pub(super) fn end_adaptation(&mut self, a: Adapting, result: Result<PathBuf, String>) -> Result<(), WatchError> {
        let name = generation_name(a.generation);
        let seconds = a.since.elapsed().as_secs_f64();
        match result {
            Ok(dir) => {
                let mut line = Line::new(Event::Adapted, Kind::Model, &name);
                (line.model, line.labels) = (Some(a.generation), Some(a.labels.clone()));
                line.latency_s = Some(seconds);
                self.append(line)?;
                self.current = Current::load(&self.options, &self.layout, &self.history, &self.device)?;
                self.summary.adaptations += 1;
                let pointer = serde_json::json!({"generation": a.generation, "model": dir});
                let path = self.layout.state.join("model.json");
                crate::fsutil::write_json_atomic(&path, &pointer).map_err(WatchError::io(&path))?;
                (self.log)(&serde_json::json!({
                    "adapted": name, "labels": a.labels.len(), "seconds": seconds, "strategy": a.strategy,
                }));
            }
            Err(reason) => {
                let mut line = Line::new(Event::Failed, Kind::Model, &name);
                (line.model, line.labels, line.reason) = (Some(a.generation), Some(a.labels), Some(reason.clone()));
                self.append(line)?;
                (self.log)(&serde_json::json!({"adaptation": name, "outcome": "failed", "reason": reason}));
            }
        }
        self.publish();
        Ok(())
    }

    /// Runs the adaptation here into a temporary folder and renames it into place.
    fn adapt(&mut self, a: &Adaptation, generation: u32) -> Result<PathBuf, String> {
        let tmp = self.fresh_generation_folder(generation)?;
        let (manifest, selection, record) = self.adaptation_inputs(a, &tmp)?;
        let strategy = Resolver::new().resolve_adapt(&a.strategy).map_err(|e| e.to_string())?;
        let config = adaptation_config(a)?;
        let state = AdaptState {
            selection: selection.clone(),
            target: self.options.job.centre.clone(),
            schedule: config.schedule(SelectCheckpoint::Last),
        };
        let plan = strategy.plan(&state).map_err(|e| e.to_string())?;
        train::check_supported(&plan).map_err(|e| e.to_string())?;
        let inputs = AdaptInputs {
            plan: &plan,
            selection: &selection,
            manifest: &manifest,
            source: &self.options.job.model,
            rater: Some(RATER),
        };
        let log = train::execute_adapt_plan::<B>(inputs, config, &tmp, self.device.clone(), |_| {})
            .map_err(|e| e.to_string())?;
        json(&tmp.join("adapt-plan.json"), &plan)?;
        json(&tmp.join("training-log.json"), &log)?;
        self.finish_generation(generation, &tmp, record)
    }

    /// The empty temporary folder an adaptation writes into (`.gen-NNNN.tmp`); a generation
    /// folder the journal never announced is removed (the journal is the truth).
    pub(super) fn fresh_generation_folder(&self, generation: u32) -> Result<PathBuf, String> {
        let models = self.layout.models();
        let dir = models.join(generation_name(generation));
        let tmp = models.join(format!(".{}.tmp", generation_name(generation)));
        let _ = std::fs::remove_dir_all(&tmp);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        Ok(tmp)
    }

    /// Records on the card which labels made the model in `tmp`, and renames it into place.
    pub(super) fn finish_generation(
        &self,
        generation: u32,
        tmp: &Path,
        record: LabelsRecord,
    ) -> Result<PathBuf, String> {
        let models = self.layout.models();
        let dir = models.join(generation_name(generation));
        let mut card = checkpoint::load_card(tmp).map_err(|e| e.to_string())?;
        card.labels = Some(record);
        json(&tmp.join(CARD_FILE), &card)?;
        std::fs::rename(tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        crate::fsutil::sync_dir(&models).map_err(|e| format!("{}: {e}", models.display()))?;
        Ok(dir)
    }

    /// The manifest (written into `dir`), the selection of labelled cases and the card's record.
    pub(super) fn adaptation_inputs(
        &self,
        a: &Adaptation,
        dir: &Path,
    ) -> Result<(Manifest, Selection, LabelsRecord), String> {
        let job = &self.options.job;
        let latest = latest_labels(&self.layout, &self.history);
        let done = self.history.done_cases();
        let cases: Vec<CaseEntry> = done
            .iter()
            .map(|(case, (input, _))| CaseEntry {
                id: case.clone(),
                centre: job.centre.clone(),
                image: absolute(&self.layout.processed.join(input)),
                labels: latest
                    .get(case)
                    .map(|(p, _)| BTreeMap::from([(RATER.to_string(), p.clone())]))
                    .unwrap_or_default(),
                split: Split::Train,
            })
            .collect();
        let file = ManifestFile {
            name: format!("{}: the drop folder's scans and labels", job.name),
            centres: vec![CentreEntry {
                id: job.centre.clone(),
                role: Role::Target,
                reference_rater: Some(RATER.into()),
                description: "scans processed by delinea watch".into(),
            }],
            raters: vec![RaterEntry {
                id: RATER.into(),
                description: "labels dropped into the labels folder (the latest per case)".into(),
            }],
            cases,
        };
        let path = dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        crate::fsutil::write_bytes_atomic(&path, format!("{text}\n").as_bytes()).map_err(|e| e.to_string())?;
        let manifest = Manifest::load(&path).map_err(|e| e.to_string())?;
        let items: Vec<Selected> = latest
            .keys()
            .enumerate()
            .map(|(i, case)| Selected {
                rank: i + 1,
                index: i,
                case: case.clone(),
                centre: job.centre.clone(),
                slice: None,
                score: None,
                reason: Reason::Policy,
            })
            .collect();
        let selection = Selection {
            strategy: "labels returned to the drop folder".into(),
            unit: Unit::Volume,
            pool_size: done.len(),
            items,
        };
        let record = LabelsRecord {
            from_model: absolute(&job.model),
            strategy: a.strategy.clone(),
            job: self.options.job_path.display().to_string(),
            labels: latest
                .iter()
                .map(|(case, (stored, line))| LabelUse {
                    case: case.clone(),
                    rater: line.revision.as_ref().map_or("-".into(), |r| r.rater.clone()),
                    input: line.input.clone(),
                    stored: stored.clone(),
                })
                .collect(),
            unlabelled_cases: done.len() - latest.len(),
        };
        Ok((manifest, selection, record))
    }
}

/// An adaptation under way: what its journal lines and its log name.
pub(crate) struct Adapting {
    /// The generation it makes.
    pub generation: u32,
    /// The stored labels it learns from.
    pub labels: Vec<String>,
    /// The adaptation strategy.
    pub strategy: String,
    /// When it started.
    pub since: std::time::Instant,
}

/// The training config of an adaptation: its file (or the engine's), with the job's overrides.
pub(super) fn adaptation_config(a: &Adaptation) -> Result<TrainConfig, String> {
    let mut config = match &a.config {
        Some(p) => TrainConfig::load(p).map_err(|e| e.to_string())?,
        None => TrainConfig::default(),
    };
    config.iterations = a.iterations.unwrap_or(config.iterations);
    config.batch = a.batch.unwrap_or(config.batch);
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// `p` made absolute (the manifest adaptation writes resolves relative paths against its folder).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub(super) fn json(path: &Path, value: &impl serde::Serialize) -> Result<(), String> {
    crate::fsutil::write_json_atomic(path, value).map_err(|e| format!("{}: {e}", path.display()))
}
