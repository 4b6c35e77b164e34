//! `Model`: a checkpoint folder, run on the command's device (`--device cpu|cuda|auto`):
//! prediction, MC-dropout uncertainty, STDR descriptors; and the protocol's steps — train,
//! reference points, candidate pools, selections, adaptation, evaluation, a synthetic cohort —
//! each the library function the CLI calls, with files only inside the allowed folders.
//! Settings arrive as maps whose fields are checked against the config schemas (an unknown
//! or mistyped field is an error naming it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext, INT};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::pool::Pool;
use super::vector::{count, Vector};
use super::volume::{Labels, Volume};
use crate::dataset::{Manifest, Split};
use crate::device::{self, BackendTask};
use crate::experiment::Domain;
use crate::infer::{predict_volume, DescriptorConfig, PredictOptions};
use crate::model::checkpoint::{self, ModelCard};
use crate::script::host::{session, Session};
use crate::strategy::adapt::{AdaptState, SelectCheckpoint};
use crate::strategy::query::{self, build_pool, Needs, PoolOptions, References, Selection};
use crate::train::{self, AdaptInputs, TrainConfig, Trainer, TrainingData};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A checkpoint folder and its card.
#[derive(Debug, Clone)]
pub struct Model {
    /// The folder.
    pub dir: PathBuf,
    /// Its card.
    pub card: Arc<ModelCard>,
}

impl Model {
    fn open(dir: PathBuf) -> Fallible<Model> {
        let card = checkpoint::load_card(&dir).map_err(|e| e.to_string())?;
        Ok(Model {
            dir,
            card: Arc::new(card),
        })
    }
}

/// `value` (a script map) as `T`, an error naming the field that does not fit.
pub fn from_map<T: DeserializeOwned>(value: &Dynamic, what: &str) -> Fallible<T> {
    let json: serde_json::Value = rhai::serde::from_dynamic(value).map_err(|e| format!("{what}: {e}"))?;
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            String::new()
        } else {
            format!(" field {path}")
        };
        format!("{what}{field}: {}", e.inner()).into()
    })
}

/// `value` as a script value (maps, arrays, numbers, strings).
pub fn to_value<T: Serialize>(value: &T) -> Fallible<Dynamic> {
    rhai::serde::to_dynamic(value)
}

/// A string field of a settings map.
fn text(map: &Map, key: &str, what: &str) -> Fallible<String> {
    let v = map.get(key).ok_or_else(|| format!("{what}: the map needs a `{key}`"))?;
    v.clone()
        .into_string()
        .map_err(|t| format!("{what}: `{key}` must be a string, found {t}").into())
}

/// An optional string field.
fn maybe_text(map: &Map, key: &str, what: &str) -> Fallible<Option<String>> {
    match map.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(_) => text(map, key, what).map(Some),
    }
}

/// A count field of a settings map (`default` when absent).
fn count_of(map: &Map, key: &str, default: usize, what: &str) -> Fallible<usize> {
    match map.get(key) {
        None => Ok(default),
        Some(v) => {
            let i = v
                .as_int()
                .map_err(|t| format!("{what}: `{key}` must be an integer, found {t}"))?;
            count(i, &format!("{what}: `{key}`"))
        }
    }
}

/// A manifest inside the allowed folders, every file it names inside them too.
fn manifest(session: &Session, path: &str) -> Fallible<Manifest> {
    let file = session.sandbox.read(path)?;
    let m = Manifest::load(&file).map_err(|e| e.to_string())?;
    for case in m.cases() {
        session.sandbox.check(&case.image)?;
        for label in case.labels.values() {
            session.sandbox.check(label)?;
        }
    }
    Ok(m)
}

/// The domain `centre` (with `rater`'s labels when given) of `m`.
fn domain(m: &Manifest, centre: &str, rater: Option<String>) -> Fallible<Domain> {
    if m.centre(centre).is_none() {
        return Err(format!("{}: no centre {centre:?}", m.path.display()).into());
    }
    Ok(Domain {
        id: rater.clone().unwrap_or_else(|| centre.to_string()),
        centre: centre.into(),
        rater,
    })
}

/// Runs `task` on the session's device.
fn on_device<T: BackendTask<Output = Fallible<R>>, R>(session: &Session, task: T) -> Fallible<R> {
    device::run_on(session.device, task).map_err(|e| e.to_string())?
}

/// Inference on one volume.
struct Predict<'a> {
    model: &'a Model,
    volume: &'a Volume,
    options: PredictOptions,
}

impl BackendTask for Predict<'_> {
    type Output = Fallible<crate::infer::Prediction>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let (net, card) = checkpoint::load::<B::InnerBackend>(&self.model.dir, &device).map_err(|e| e.to_string())?;
        let classes = card.architecture.classes;
        Ok(predict_volume(
            &net,
            &self.volume.0,
            &card.preprocessing,
            classes,
            &self.options,
        ))
    }
}

/// A pool of a domain's training split.
struct BuildPool<'a> {
    model: &'a Model,
    manifest: &'a Manifest,
    domain: &'a Domain,
    split: Split,
    options: PoolOptions,
}

impl BackendTask for BuildPool<'_> {
    type Output = Fallible<query::CandidatePool>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let (net, card) = checkpoint::load::<B::InnerBackend>(&self.model.dir, &device).map_err(|e| e.to_string())?;
        let cases = self.domain.cases(self.manifest, self.split);
        build_pool(&net, &card, &cases, &self.options).map_err(|e| e.to_string().into())
    }
}

/// Source training.
struct Train<'a> {
    manifest: &'a Manifest,
    centre: String,
    config: TrainConfig,
    out: PathBuf,
}

impl BackendTask for Train<'_> {
    type Output = Fallible<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let data = TrainingData::load(self.manifest, std::slice::from_ref(&self.centre), None, &self.config)
            .map_err(|e| e.to_string())?;
        let trainer = Trainer::<B>::new(self.config, device).map_err(|e| e.to_string())?;
        let (_, log) = trainer.fit(&data, &self.out, |_| {}).map_err(|e| e.to_string())?;
        save_json(&self.out.join("training-log.json"), &log)
    }
}

/// Adaptation.
struct Adapt<'a> {
    inputs: AdaptInputs<'a>,
    config: TrainConfig,
    out: PathBuf,
}

impl BackendTask for Adapt<'_> {
    type Output = Fallible<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let log = train::execute_adapt_plan::<B>(self.inputs, self.config, &self.out, device, |_| {})
            .map_err(|e| e.to_string())?;
        save_json(&self.out.join("adapt-plan.json"), self.inputs.plan)?;
        save_json(&self.out.join("training-log.json"), &log)
    }
}

/// Evaluation of a model on a domain's split.
struct Evaluate<'a> {
    model: &'a Model,
    manifest: &'a Manifest,
    domain: &'a Domain,
    split: Split,
    out: PathBuf,
}

impl BackendTask for Evaluate<'_> {
    type Output = Fallible<Vec<crate::metrics::CaseResult>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let (net, card) = checkpoint::load::<B::InnerBackend>(&self.model.dir, &device).map_err(|e| e.to_string())?;
        let scorer = crate::experiment::Scorer {
            model: &net,
            card: &card,
            predictions: &self.out,
            batch: 16,
        };
        Ok(scorer.split(self.manifest, self.domain, self.split))
    }
}

fn save_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Fallible<()> {
    crate::fsutil::write_json_atomic(path, value).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn split(map: &Map, what: &str) -> Fallible<Split> {
    match maybe_text(map, "split", what)?.as_deref() {
        None | Some("train") => Ok(Split::Train),
        Some("val") => Ok(Split::Val),
        Some("test") => Ok(Split::Test),
        Some(other) => Err(format!("{what}: split {other:?} is not train, val or test").into()),
    }
}

/// The `Needs` named by `names` (entropy, bald, margin, stdr, features).
pub fn needs(names: &[String], what: &str) -> Fallible<Needs> {
    let mut n = Needs::default();
    for name in names {
        match name.as_str() {
            "entropy" => n.entropy = true,
            "bald" => n.bald = true,
            "margin" => n.margin = true,
            "stdr" | "stdr_distance" => n.stdr = true,
            "features" => n.features = true,
            other => {
                return Err(format!(
                    "{what}: unknown need {other:?}; a policy may read entropy, bald, margin, stdr, features"
                )
                .into())
            }
        }
    }
    Ok(n)
}

#[export_module]
pub mod model_api {
    use super::*;

    /// A trained model: a checkpoint folder with its model card.
    pub type Model = super::Model;

    /// Opens a checkpoint folder inside the allowed folders: `load_model("out/source/model")`.
    #[rhai_fn(return_raw)]
    pub fn load_model(ctx: NativeCallContext, path: &str) -> Fallible<Model> {
        let dir = session(&ctx)?.sandbox.read(path)?;
        Model::open(dir)
    }

    /// The model card (architecture, preprocessing, training record) as a map:
    /// `model.card().preprocessing.slice_size`.
    #[rhai_fn(pure, return_raw)]
    pub fn card(model: &mut Model) -> Fallible<Dynamic> {
        to_value(&*model.card)
    }

    /// The mask and tumour probability of `volume` on its own grid: a map of `mask` (Labels)
    /// and `probability` (Volume): `model.predict(v).mask`.
    #[rhai_fn(pure, return_raw)]
    pub fn predict(ctx: NativeCallContext, model: &mut Model, volume: Volume) -> Fallible<Map> {
        let s = session(&ctx)?;
        let task = Predict {
            model,
            volume: &volume,
            options: PredictOptions::default(),
        };
        let p = on_device(&s, task)?;
        let mut out = Map::new();
        out.insert("mask".into(), Dynamic::from(Labels(Arc::new(p.mask))));
        out.insert(
            "probability".into(),
            Dynamic::from(Volume(Arc::new(p.tumour_probability))),
        );
        Ok(out)
    }

    /// MC-dropout uncertainty with `samples` passes (seeded from the call's seed): a map of
    /// voxel maps `entropy`, `bald` (Volumes) and per-slice `slice_entropy`, `slice_bald`,
    /// `slice_margin` (Vectors): `model.uncertainty(v, 8).slice_entropy`.
    #[rhai_fn(pure, return_raw)]
    pub fn uncertainty(ctx: NativeCallContext, model: &mut Model, volume: Volume, samples: INT) -> Fallible<Map> {
        let s = session(&ctx)?;
        let options = PredictOptions {
            mc_samples: count(samples, "uncertainty: samples")?.max(1),
            seed: s.with_rng(|r| r.next_u64()),
            ..PredictOptions::default()
        };
        let p = on_device(
            &s,
            Predict {
                model,
                volume: &volume,
                options,
            },
        )?;
        let u = p.uncertainty.ok_or("no uncertainty computed")?;
        let vector = |v: &[f32]| Dynamic::from(Vector::new(v.iter().map(|x| f64::from(*x)).collect()));
        let mut out = Map::new();
        out.insert("slice_entropy".into(), vector(&u.slice_entropy));
        out.insert("slice_bald".into(), vector(&u.slice_bald));
        out.insert("slice_margin".into(), vector(&u.slice_margin));
        out.insert("entropy".into(), Dynamic::from(Volume(Arc::new(u.entropy))));
        out.insert("bald".into(), Dynamic::from(Volume(Arc::new(u.bald))));
        Ok(out)
    }

    /// The STDR descriptor of every axial slice (the paper's 16 × 16 grid, background
    /// channel), an array of Vectors: `model.descriptors(v)[12]`.
    #[rhai_fn(pure, return_raw)]
    pub fn descriptors(ctx: NativeCallContext, model: &mut Model, volume: Volume) -> Fallible<Array> {
        let s = session(&ctx)?;
        let cfg = DescriptorConfig::default();
        cfg.kernel(model.card.preprocessing.slice_size)?;
        let options = PredictOptions {
            descriptor: Some(cfg),
            ..PredictOptions::default()
        };
        let p = on_device(
            &s,
            Predict {
                model,
                volume: &volume,
                options,
            },
        )?;
        let d = p.descriptors.unwrap_or_default();
        Ok(d.iter()
            .map(|v| Dynamic::from(Vector::new(v.iter().map(|x| f64::from(*x)).collect())))
            .collect())
    }

    /// Writes the default synthetic cohort (`seed`; `cases_per_centre`, `size` … as
    /// `delinea synth`) into `out` and returns its manifest's path:
    /// `synth_cohort(#{out: "work/cohort", seed: 0})`.
    #[rhai_fn(return_raw)]
    pub fn synth_cohort(ctx: NativeCallContext, settings: Map) -> Fallible<String> {
        let s = session(&ctx)?;
        let out = text(&settings, "out", "synth_cohort")?;
        let dir = s.sandbox.folder(&out)?;
        let mut fields = settings.clone();
        fields.remove("out");
        let config: crate::synth::Config = from_map(&Dynamic::from(fields), "synth_cohort")?;
        crate::synth::generate(&dir, &config, &|| {}).map_err(|e| e.to_string())?;
        Ok(format!("{out}/manifest.json"))
    }

    /// Trains a model on a centre's train split (its val split picks the checkpoint) into
    /// folder `out`: `train_model(#{manifest: m, centre: "C1", out: "work/source",
    /// config: #{iterations: 600, batch: 8}})` (config: the train-config schema).
    #[rhai_fn(return_raw)]
    pub fn train_model(ctx: NativeCallContext, settings: Map) -> Fallible<Model> {
        let s = session(&ctx)?;
        let what = "train_model";
        let m = manifest(&s, &text(&settings, "manifest", what)?)?;
        let out = s.sandbox.folder(&text(&settings, "out", what)?)?;
        let config: TrainConfig = match settings.get("config") {
            Some(c) => from_map(c, "train_model config")?,
            None => TrainConfig::default(),
        };
        config.validate().map_err(|e| e.to_string())?;
        let centre = text(&settings, "centre", what)?;
        on_device(
            &s,
            Train {
                manifest: &m,
                centre,
                config,
                out: out.clone(),
            },
        )?;
        Model::open(out)
    }

    /// The source reference points (K-means over the descriptors of a centre's training
    /// slices), written to `out` (a references file) whose path is returned:
    /// `make_references(model, #{manifest: m, centre: "C1", k: 40, out: "work/refs.json"})`.
    #[rhai_fn(return_raw)]
    pub fn make_references(ctx: NativeCallContext, model: Model, settings: Map) -> Fallible<String> {
        let s = session(&ctx)?;
        let what = "make_references";
        let m = manifest(&s, &text(&settings, "manifest", what)?)?;
        let out_name = text(&settings, "out", what)?;
        let out = s.sandbox.write(&out_name)?;
        let centre = text(&settings, "centre", what)?;
        let k = count_of(&settings, "k", 40, what)?;
        let iterations = count_of(&settings, "iterations", 20, what)?;
        let seed = count_of(&settings, "seed", 0, what)? as u64;
        let descriptor: DescriptorConfig = match settings.get("descriptor") {
            Some(d) => from_map(d, "make_references descriptor")?,
            None => DescriptorConfig::default(),
        };
        descriptor.kernel(model.card.preprocessing.slice_size)?;
        let d = domain(&m, &centre, None)?;
        let options = PoolOptions {
            needs: Needs {
                stdr: true,
                ..Needs::default()
            },
            descriptor,
            seed,
            ..PoolOptions::default()
        };
        let pool = on_device(
            &s,
            BuildPool {
                model: &model,
                manifest: &m,
                domain: &d,
                split: Split::Train,
                options,
            },
        )?;
        let refs = References::from_pool(&pool, descriptor, vec![centre], k, iterations, seed);
        save_json(&out, &refs)?;
        Ok(out_name)
    }

    /// The pool of a domain's training split as `model` sees it, with the scores `needs`
    /// names (entropy, bald, margin, stdr, features) and, given `references`, STDR distances:
    /// `candidate_pool(model, #{manifest: m, centre: "C2", needs: ["entropy", "stdr"],
    /// references: "work/refs.json", mc_samples: 4, seed: 0})`.
    #[rhai_fn(return_raw)]
    pub fn candidate_pool(ctx: NativeCallContext, model: Model, settings: Map) -> Fallible<Pool> {
        let s = session(&ctx)?;
        let what = "candidate_pool";
        let m = manifest(&s, &text(&settings, "manifest", what)?)?;
        let d = domain(
            &m,
            &text(&settings, "centre", what)?,
            maybe_text(&settings, "rater", what)?,
        )?;
        let names: Vec<String> = match settings.get("needs") {
            Some(n) => from_map(n, "candidate_pool needs")?,
            None => Vec::new(),
        };
        let refs = match maybe_text(&settings, "references", what)? {
            Some(path) => Some(References::load(&s.sandbox.read(&path)?).map_err(|e| e.to_string())?),
            None => None,
        };
        let defaults = PoolOptions::default();
        let options = PoolOptions {
            needs: needs(&names, what)?,
            descriptor: refs.as_ref().map(|r| r.descriptor).unwrap_or_default(),
            mc_samples: count_of(&settings, "mc_samples", defaults.mc_samples, what)?,
            seed: count_of(&settings, "seed", 0, what)? as u64,
            ..defaults
        };
        if options.needs.stdr && refs.is_none() {
            return Err(format!("{what}: the stdr need takes `references` (a references file)").into());
        }
        let pool = on_device(
            &s,
            BuildPool {
                model: &model,
                manifest: &m,
                domain: &d,
                split: split(&settings, what)?,
                options,
            },
        )?;
        let pool = match &refs {
            Some(r) => pool.with_reference(&r.centroids).map_err(|e| e.to_string())?,
            None => pool,
        };
        Ok(Pool::new(pool))
    }

    /// The selection of query strategy `strategy` (a builtin such as `"stdr"`, or
    /// `"script:PATH.rhai"`) of `budget` rows (a count; `budget_of(pool, "20%")` from a
    /// fraction), as a map with `items` (rank, index, case, slice, score, reason), seeded from
    /// the call's seed: `select(pool, "stdr", 120)`.
    #[rhai_fn(return_raw)]
    pub fn select(ctx: NativeCallContext, pool: Pool, strategy: &str, budget: INT) -> Fallible<Dynamic> {
        let s = session(&ctx)?;
        let budget = query::Budget::Count(count(budget, "select: budget")?);
        let q = s.resolver()?.resolve_query(strategy).map_err(|e| e.to_string())?;
        let seed = s.with_rng(|r| r.next_u64());
        let selection = q.select(&pool.rows, budget, seed).map_err(|e| e.to_string())?;
        to_value(&selection)
    }

    /// The rows a budget (`"20%"`, `"0.2"` or a count `"12"`) takes of `pool`:
    /// `budget_of(pool, "20%")`.
    #[rhai_fn(return_raw)]
    pub fn budget_of(pool: Pool, budget: &str) -> Fallible<INT> {
        let b = query::Budget::parse(budget).map_err(|e| e.to_string())?;
        Ok(b.resolve(pool.rows.rows.len()) as INT)
    }

    /// Adapts `model` to a target centre with a selection's labels into folder `out`, with an
    /// adaptation strategy (`"finetune"`, `"finetune+pseudo"`, … or `"script:PATH.rhai"`) or a
    /// `plan` map (the adapt-plan schema), and the adaptation settings (iterations, batch,
    /// optimizer, lr, tumour_fraction, select, validate_every, seed):
    /// `adapt_model(model, selection, #{manifest: m, centre: "C2", strategy: "finetune",
    /// iterations: 100, batch: 8, out: "work/c2-stdr"})`.
    #[rhai_fn(return_raw)]
    pub fn adapt_model(ctx: NativeCallContext, model: Model, selection: Dynamic, settings: Map) -> Fallible<Model> {
        let s = session(&ctx)?;
        let what = "adapt_model";
        let m = manifest(&s, &text(&settings, "manifest", what)?)?;
        let centre = text(&settings, "centre", what)?;
        domain(&m, &centre, None)?;
        let rater = maybe_text(&settings, "rater", what)?;
        let out = s.sandbox.folder(&text(&settings, "out", what)?)?;
        let selection: Selection = from_map(&selection, "adapt_model selection")?;
        let mut fields = settings.clone();
        for key in ["manifest", "centre", "rater", "out", "strategy", "seed", "plan"] {
            fields.remove(key);
        }
        let a: crate::experiment::AdaptationConfig = from_map(&Dynamic::from(fields), what)?;
        let seed = count_of(&settings, "seed", 0, what)? as u64;
        let base = model
            .card
            .training
            .as_ref()
            .map(|t| t.config.clone())
            .unwrap_or_default();
        let config = a.training(&base, seed);
        let state = AdaptState {
            selection: selection.clone(),
            target: centre,
            schedule: config.schedule(a.select),
        };
        let plan = match settings.get("plan") {
            Some(map) => {
                crate::script::strategy::plan_from_map(map, "plan map", &state).map_err(|e| format!("{what}: {e}"))?
            }
            None => {
                let name = maybe_text(&settings, "strategy", what)?.unwrap_or_else(|| "finetune+pseudo".into());
                let strategy = s.resolver()?.resolve_adapt(&name).map_err(|e| e.to_string())?;
                strategy.plan(&state).map_err(|e| e.to_string())?
            }
        };
        train::check_supported(&plan).map_err(|e| e.to_string())?;
        let inputs = AdaptInputs {
            plan: &plan,
            selection: &selection,
            manifest: &m,
            source: &model.dir,
            rater: rater.as_deref(),
        };
        on_device(
            &s,
            Adapt {
                inputs,
                config,
                out: out.clone(),
            },
        )?;
        Model::open(out)
    }

    /// Scores `model` on a domain's split (`"test"` by default), masks written into folder
    /// `out`: an array of maps (case, outcome, dsc, hd95, assd, nsd, …), one per case:
    /// `evaluate_model(model, #{manifest: m, centre: "C2", out: "work/c2-preds"})`.
    #[rhai_fn(return_raw)]
    pub fn evaluate_model(ctx: NativeCallContext, model: Model, settings: Map) -> Fallible<Array> {
        let s = session(&ctx)?;
        let what = "evaluate_model";
        let m = manifest(&s, &text(&settings, "manifest", what)?)?;
        let d = domain(
            &m,
            &text(&settings, "centre", what)?,
            maybe_text(&settings, "rater", what)?,
        )?;
        let out = s.sandbox.folder(&text(&settings, "out", what)?)?;
        let split = match maybe_text(&settings, "split", what)? {
            None => Split::Test,
            Some(_) => split(&settings, what)?,
        };
        let rows = on_device(
            &s,
            Evaluate {
                model: &model,
                manifest: &m,
                domain: &d,
                split,
                out,
            },
        )?;
        rows.iter()
            .map(|r| {
                let mut map = Map::new();
                map.insert("case".into(), Dynamic::from(r.case.clone()));
                map.insert("centre".into(), Dynamic::from(r.centre.clone()));
                match &r.status {
                    crate::metrics::CaseStatus::Evaluated(mm) => {
                        map.insert("outcome".into(), Dynamic::from(mm.outcome.as_str().to_string()));
                        for name in crate::metrics::METRIC_NAMES {
                            map.insert(name.into(), mm.get(name).flatten().map_or(Dynamic::UNIT, Dynamic::from));
                        }
                    }
                    other => {
                        map.insert("outcome".into(), Dynamic::from("error".to_string()));
                        map.insert("message".into(), Dynamic::from(format!("{other:?}")));
                    }
                }
                Ok(Dynamic::from(map))
            })
            .collect()
    }

    /// Keeps the last weights (`"last"`) or the best on the target's validation split
    /// (`"best_target_val"`): the `select` values `adapt_model` takes.
    pub fn checkpoint_choices() -> Array {
        [SelectCheckpoint::Last, SelectCheckpoint::BestTargetVal]
            .iter()
            .filter_map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| Dynamic::from(s.to_string())))
            })
            .collect()
    }

    /// Writes `text` to a file inside the allowed folders: `write_text("out/table.md", t)`.
    #[rhai_fn(return_raw)]
    pub fn write_text(ctx: NativeCallContext, path: &str, text: &str) -> Fallible<()> {
        let file = session(&ctx)?.sandbox.write(path)?;
        crate::fsutil::write_bytes_atomic(&file, text.as_bytes()).map_err(|e| format!("{path}: {e}").into())
    }

    /// Writes a value (maps, arrays, numbers, strings) as pretty JSON inside the allowed
    /// folders: `write_json("out/results.json", results)`.
    #[rhai_fn(return_raw)]
    pub fn write_json(ctx: NativeCallContext, path: &str, value: Dynamic) -> Fallible<()> {
        let file = session(&ctx)?.sandbox.write(path)?;
        let json: serde_json::Value = rhai::serde::from_dynamic(&value)?;
        super::save_json(&file, &json)
    }

    /// Reads a JSON file inside the allowed folders as maps and arrays:
    /// `read_json("out/source/model/model-card.json")`.
    #[rhai_fn(return_raw)]
    pub fn read_json(ctx: NativeCallContext, path: &str) -> Fallible<Dynamic> {
        let file = session(&ctx)?.sandbox.read(path)?;
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{path}: {e}"))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        to_value(&json)
    }
}
