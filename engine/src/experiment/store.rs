//! The experiment folder: where each step's output lies, the `done.json` marker a finished
//! step leaves (written last, atomically), and the check that finished steps were produced
//! by the settings asked for now.
//!
//! Resuming: a run whose marker is there, with the settings' hash of today and the fingerprint
//! of today's source model, is skipped; the source model is reused when `source/done.json`
//! holds today's source settings. A marker
//! with other settings is refused before any computation ([`Error::Changed`]): results of two
//! configurations never mix in one table. The settings are everything that shapes a number:
//! the manifest's bytes, the source centre and the whole config except the lists of queries
//! and adaptations and the replicate count (adding a query, a target or replicates to a
//! finished experiment reuses what is done).
//!
//! Replicate 0 is the folder itself; replicate `r` ≥ 1 is an experiment folder of its own,
//! `replicates/<r>/` inside it ([`replicate_root`]), with its own seeds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::plan::{sanitize, Domain, Method, Plan, Strategies};
use super::{Error, ExperimentConfig};
use crate::dataset::Manifest;
use crate::fsutil;

/// The file recording which settings produced the folder's results.
pub const EXPERIMENT_FILE: &str = "experiment.json";
/// The marker of a finished step.
pub const DONE_FILE: &str = "done.json";
/// A run's per-case results (the columns of `delinea evaluate`).
pub const RUN_CASES_FILE: &str = "cases.csv";

/// What a finished (domain, method) run leaves in its `done.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMarker {
    /// The domain id.
    pub domain: String,
    /// The method id.
    pub method: String,
    /// FNV-1a 64 of the settings, the domain and the method.
    pub settings_hash: String,
    /// FNV-1a 64 of the source model's weights it was adapted from (a run of a source model
    /// trained again since, with other weights, is stale).
    #[serde(default)]
    pub source_model: String,
    /// Test cases evaluated.
    pub cases: usize,
    /// Cases with one mask empty.
    pub failures: usize,
    /// Median DSC over the test cases.
    pub median_dsc: Option<f64>,
    /// Seconds spent querying, adapting, evaluating.
    pub seconds: StepSeconds,
}

/// Wall time of a run's steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepSeconds {
    /// Selecting; the first query run of a domain also builds the pool its queries share.
    pub query: f64,
    /// Adapting the source model.
    pub adapt: f64,
    /// Predicting and scoring the test cases.
    pub evaluate: f64,
}

/// The experiment folder of one plan.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    settings: Value,
    source_settings: Value,
    /// The source model's fingerprint, read once it is finished.
    source_fingerprint: OnceLock<String>,
}

/// What the source unit depends on: the manifest, the source centre, and the training config
/// or, for an existing source model, its folder and weights.
fn source_settings(plan: &Plan, manifest_hash: String) -> Result<Value, Error> {
    let Some(dir) = &plan.config.source_model else {
        let train = serde_json::to_value(&plan.config.source).map_err(Error::Json)?;
        return Ok(json!({"manifest_fnv1a64": manifest_hash, "source": plan.source, "train": train}));
    };
    let card = crate::model::checkpoint::load_card(dir)?;
    let path = dir.join(&card.weights);
    let weights = std::fs::read(&path).map_err(|source| Error::Io { path, source })?;
    Ok(json!({"manifest_fnv1a64": manifest_hash, "source": plan.source,
        "model": {"path": dir, "weights_fnv1a64": fnv1a64(&weights)}}))
}

/// What `experiment.json` records of the plan, for [`recorded_plan`] (`delinea gather`).
#[derive(Debug, Serialize, Deserialize)]
struct RecordedPlan {
    /// The manifest, as an absolute path where it could be made one.
    manifest: PathBuf,
    source: String,
    domains: Vec<Domain>,
    methods: Vec<Method>,
    config: ExperimentConfig,
}

impl Store {
    /// Opens (creates) `root` for `plan`: refuses when finished steps there came from other
    /// settings, then records today's settings in `experiment.json`.
    pub fn open(root: &Path, plan: &Plan) -> Result<Store, Error> {
        let store = Store::attach(root, plan)?;
        store.check(plan)?;
        create_dir(root)?;
        let recorded = RecordedPlan {
            manifest: std::path::absolute(&plan.manifest.path).unwrap_or_else(|_| plan.manifest.path.clone()),
            source: plan.source.clone(),
            domains: plan.domains.clone(),
            methods: plan.methods.clone(),
            config: plan.config.clone(),
        };
        let record = json!({
            "format": "delinea-experiment",
            "format_version": 1,
            "manifest": plan.manifest.path,
            "domains": plan.domains,
            "methods": plan.methods.iter().map(Method::id).collect::<Vec<_>>(),
            "settings": store.settings,
            "plan": recorded,
        });
        write_json(&root.join(EXPERIMENT_FILE), &record)?;
        Ok(store)
    }

    /// The folder `root` of `plan` as [`Store::open`] left it, without checking or writing
    /// anything (a worker process of the experiment that opened it).
    pub fn attach(root: &Path, plan: &Plan) -> Result<Store, Error> {
        let manifest = std::fs::read(&plan.manifest.path).map_err(|source| Error::Io {
            path: plan.manifest.path.clone(),
            source,
        })?;
        let manifest_hash = fnv1a64(&manifest);
        let mut config = serde_json::to_value(&plan.config).map_err(Error::Json)?;
        if let Value::Object(m) = &mut config {
            m.remove("queries");
            m.remove("adapts");
            m.remove("replicates");
        }
        let store = Store {
            root: root.to_path_buf(),
            settings: json!({"manifest_fnv1a64": manifest_hash, "source": plan.source, "config": config}),
            source_settings: source_settings(plan, manifest_hash)?,
            source_fingerprint: OnceLock::new(),
        };
        Ok(store)
    }

    /// Copies the existing source model `from` (the config's `source_model`) into
    /// `source/model/`, files renamed into place.
    pub fn take_source_model(&self, from: &Path) -> Result<(), Error> {
        let card = crate::model::checkpoint::load_card(from)?;
        let to = self.source_model();
        create_dir(&to)?;
        for file in [card.weights.as_str(), crate::model::checkpoint::CARD_FILE] {
            let (src, dst) = (from.join(file), to.join(file));
            let bytes = std::fs::read(&src).map_err(|source| Error::Io { path: src, source })?;
            crate::fsutil::write_bytes_atomic(&dst, &bytes).map_err(|source| Error::Io { path: dst, source })?;
        }
        Ok(())
    }

    /// Every difference between today's settings and those of finished steps.
    fn check(&self, plan: &Plan) -> Result<(), Error> {
        let recorded = |path: &Path, key: &str| -> Result<Option<Value>, Error> {
            let Ok(text) = std::fs::read_to_string(path) else {
                return Ok(None);
            };
            let value: Value = serde_json::from_str(&text).map_err(|e| changed(path, vec![e.to_string()]))?;
            Ok(Some(value.get(key).cloned().unwrap_or(Value::Null)))
        };
        let file = self.root.join(EXPERIMENT_FILE);
        for (path, now) in [(file, &self.settings), (self.source_done(), &self.source_settings)] {
            if let Some(then) = recorded(&path, "settings")? {
                let mut diff = Vec::new();
                differences(&then, now, "", &mut diff);
                if !diff.is_empty() {
                    return Err(changed(&path, diff));
                }
            }
        }
        for d in &plan.domains {
            for m in &plan.methods {
                let path = self.run_dir(d, m).join(DONE_FILE);
                let Some(then) = recorded(&path, "settings_hash")? else {
                    continue;
                };
                let now = self.run_hash(d, m);
                if then != Value::String(now.clone()) {
                    return Err(changed(
                        &path,
                        vec![format!("settings hash {then} then, \"{now}\" now")],
                    ));
                }
            }
        }
        Ok(())
    }

    /// The experiment folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `source/`: the source model, its training log, the references.
    pub fn source_dir(&self) -> PathBuf {
        self.root.join("source")
    }

    /// `source/model/`: the source checkpoint.
    pub fn source_model(&self) -> PathBuf {
        self.source_dir().join("model")
    }

    /// `source/references.json`.
    pub fn references(&self) -> PathBuf {
        self.source_dir().join("references.json")
    }

    fn source_done(&self) -> PathBuf {
        self.source_dir().join(DONE_FILE)
    }

    /// Whether the source model was trained with today's source settings.
    pub fn source_finished(&self) -> bool {
        self.source_done().is_file() && self.source_model().is_dir()
    }

    /// FNV-1a 64 of the finished source model's weights (read once; `None` while it is not
    /// finished).
    pub fn source_fingerprint(&self) -> Option<&str> {
        if let Some(f) = self.source_fingerprint.get() {
            return Some(f);
        }
        if !self.source_finished() {
            return None;
        }
        let weights = std::fs::read(self.source_model().join(crate::model::checkpoint::WEIGHTS_FILE)).ok()?;
        Some(self.source_fingerprint.get_or_init(|| fnv1a64(&weights)))
    }

    /// Records the source model as finished (its reference points, when needed, already
    /// written).
    pub fn finish_source(&self, summary: Value) -> Result<(), Error> {
        let marker = json!({"settings": self.source_settings, "summary": summary});
        write_json(&self.source_done(), &marker)
    }

    /// `runs/<domain>/<method>/`.
    pub fn run_dir(&self, domain: &Domain, method: &Method) -> PathBuf {
        self.root
            .join("runs")
            .join(sanitize(&domain.id))
            .join(method.dir_name())
    }

    /// `runs/<domain>/<method>/cases.csv`: the run's per-case results.
    pub fn run_cases(&self, domain: &Domain, method: &Method) -> PathBuf {
        self.run_dir(domain, method).join(RUN_CASES_FILE)
    }

    /// The FNV-1a 64 hash of the settings, the domain and the method of a run.
    pub fn run_hash(&self, domain: &Domain, method: &Method) -> String {
        let text = json!({"settings": self.settings, "domain": domain, "method": method}).to_string();
        fnv1a64(text.as_bytes())
    }

    /// The marker of a finished run, when there is one with its results beside it.
    pub fn finished_run(&self, domain: &Domain, method: &Method) -> Option<RunMarker> {
        let dir = self.run_dir(domain, method);
        let text = std::fs::read_to_string(dir.join(DONE_FILE)).ok()?;
        let marker: RunMarker = serde_json::from_str(&text).ok()?;
        let ok = marker.settings_hash == self.run_hash(domain, method)
            && Some(marker.source_model.as_str()) == self.source_fingerprint()
            && dir.join(RUN_CASES_FILE).is_file();
        ok.then_some(marker)
    }

    /// Records a run as finished (its results must already be written).
    pub fn finish_run(&self, domain: &Domain, method: &Method, marker: &RunMarker) -> Result<(), Error> {
        write_json(&self.run_dir(domain, method).join(DONE_FILE), marker)
    }
}

/// Replicate `r`'s experiment folder: `root` for replicate 0, `root/replicates/<r>` after.
pub fn replicate_root(root: &Path, r: usize) -> PathBuf {
    match r {
        0 => root.to_path_buf(),
        r => root.join("replicates").join(r.to_string()),
    }
}

/// The plan `experiment.json` in `root` records: its domains, methods and config, without
/// resolving the strategies again (the pooled outputs need only their names).
pub(super) fn recorded_plan(root: &Path) -> Result<Plan, Error> {
    let path = root.join(EXPERIMENT_FILE);
    let bad = |reason: String| Error::Table {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad(format!(
            "no such file: {} is not an experiment folder (the --out of `delinea experiment`)",
            root.display()
        )),
        _ => Error::Io {
            path: path.clone(),
            source: e,
        },
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let recorded = value.get("plan").ok_or_else(|| {
        bad("records no plan (written by an older delinea): run `delinea experiment` on the folder again".into())
    })?;
    let r: RecordedPlan = serde_json::from_value(recorded.clone()).map_err(|e| bad(format!("unreadable plan: {e}")))?;
    let budget = r.config.budget()?;
    Ok(Plan {
        manifest: Manifest::load(&r.manifest)?,
        source: r.source,
        domains: r.domains,
        methods: r.methods,
        config: r.config,
        budget,
        strategies: Strategies::default(),
    })
}

/// Creates `dir` and its parents.
pub(super) fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes pretty JSON atomically, naming the file in the error.
pub(super) fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), Error> {
    fsutil::write_json_atomic(path, value).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn changed(path: &Path, differences: Vec<String>) -> Error {
    Error::Changed {
        path: path.to_path_buf(),
        differences,
    }
}

/// `path: old then, new now` for every leaf where `old` and `new` differ.
fn differences(old: &Value, new: &Value, path: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let get = |m: &serde_json::Map<String, Value>| m.get(k).cloned().unwrap_or(Value::Null);
                differences(&get(a), &get(b), &p, out);
            }
        }
        _ if old != new => out.push(format!("{path}: {old} then, {new} now")),
        _ => {}
    }
}

/// FNV-1a, 64 bits, as 16 hex digits: a stable fingerprint (not a cryptographic hash).
pub(super) fn fnv1a64(bytes: &[u8]) -> String {
    format!("{:016x}", crate::cluster::fnv1a64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_and_differences() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a64(b""), "cbf29ce484222325");
        assert_eq!(fnv1a64(b"a"), "af63dc4c8601ec8c");
        let old = json!({"a": 1, "b": {"c": "x", "d": [1, 2]}});
        let new = json!({"a": 1, "b": {"c": "y", "d": [1, 2], "e": true}});
        let mut diff = Vec::new();
        differences(&old, &new, "", &mut diff);
        assert_eq!(diff, ["b.c: \"x\" then, \"y\" now", "b.e: null then, true now"]);
    }
}
