//! Working through a [`Plan`] (or a [`Shard`] of it) on one backend, in two phases:
//! 1. in this process, with every thread: the source unit — the source model and its
//!    reference points, trained or reused, or awaited when another shard owns it — then each
//!    domain's query pool (built once, with everything its queries need, and only when one of
//!    its query runs is still to do here) and the selection of every run still to do, written
//!    into its folder;
//! 2. the runs' adaptation and evaluation ([`Unit`]s), each recorded on disk when finished, by
//!    the [`super::workers`]: in this process, or in worker processes side by side.
//!
//! A unit depends only on the source model, its selection and the settings (every random
//! choice is seeded from the config), so its results do not depend on which worker or shard
//! ran it, in which order, or beside what. Every run uses the config's seed itself: the
//! methods of a domain share their random numbers (paired comparisons), and no seed depends on
//! the shard count.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::evaluate::Scorer;
use super::plan::{no_selection, replicate_unit, unit_id, SOURCE_UNIT};
use super::store::{create_dir, write_json, RunMarker, StepSeconds};
use super::{workers, Domain, Error, Event, Method, Plan, Shard, Store, WorkerSpec, Workers};
use crate::dataset::Split;
use crate::device::BackendTask;
use crate::metrics::{self, stats, CaseResult, CaseStatus};
use crate::model::checkpoint::{self, ModelCard};
use crate::model::UNet2d;
use crate::strategy::adapt::AdaptState;
use crate::strategy::query::{self, build_pool, CandidatePool, QueryOptions, References, Selection, Unit as RowUnit};
use crate::train::{self, AdaptInputs, Trainer, TrainingData};

/// One replicate of the experiment: its plan (with its seeds) and its folder.
pub(super) struct Replicate {
    pub index: usize,
    pub plan: Plan,
    pub store: Store,
}

/// The whole experiment, every replicate, as one [`BackendTask`].
pub(super) struct Task<'a> {
    pub replicates: &'a [Replicate],
    /// The shard of every unit of every replicate, by id ([`Plan::deal`]).
    pub owners: BTreeMap<String, usize>,
    pub workers: &'a Workers,
    pub shard: Shard,
    pub wait: Duration,
    /// What worker processes are told (replicate 0's; each replicate's config and folder
    /// replace it).
    pub spec: WorkerSpec,
    pub progress: &'a mut dyn FnMut(&Event),
}

/// How many runs were computed, skipped, and left to other shards.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    pub ran: usize,
    pub skipped: usize,
    pub others: usize,
    pub source_reused: bool,
}

/// One run's adaptation and evaluation, its selection already written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Unit {
    /// The domain id.
    pub domain: String,
    /// The method id.
    pub method: String,
    /// 1-based position among all runs of the plan.
    pub index: usize,
    /// Runs in the plan.
    pub total: usize,
    /// Seconds its selection took in phase 1.
    pub query_seconds: f64,
}

impl BackendTask for Task<'_> {
    type Output = Result<Counts, Error>;

    /// Replicate after replicate: the source unit, the selections, the runs. A shard first
    /// computes every source unit it owns, so that shards waiting for one start early.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let Task {
            replicates,
            owners,
            workers,
            shard,
            wait,
            spec,
            progress,
        } = self;
        let contexts: Vec<Context<B>> = (replicates.iter())
            .map(|r| Context {
                plan: &r.plan,
                store: &r.store,
                device: device.clone(),
                spec: WorkerSpec {
                    config: r.plan.config.clone(),
                    out: r.store.root().to_path_buf(),
                    replicate: r.index,
                    ..spec.clone()
                },
            })
            .collect();
        let trained_first = match shard.count {
            1 => vec![false; contexts.len()],
            _ => own_sources_first(&contexts, shard, &owners, wait, &mut *progress)?,
        };
        let mut counts = Counts::default();
        for (context, first) in contexts.iter().zip(trained_first) {
            if replicates.len() > 1 {
                progress(&Event::Replicate {
                    index: context.spec.replicate,
                    count: replicates.len(),
                    out: context.store.root().to_path_buf(),
                });
            }
            let mut runner = Runner::new(context, shard, &owners, &mut *progress);
            runner.source_unit(wait)?;
            let units = runner.selections()?;
            let c = runner.counts;
            counts.ran += units.len();
            counts.skipped += c.skipped;
            counts.others += c.others;
            counts.source_reused |= c.source_reused && !first;
            workers::run(context, units, workers, &mut *progress)?;
        }
        Ok(counts)
    }
}

/// The source units of `contexts` that `shard` owns, computed (or found) before anything
/// else, so that shards waiting for them start early; for each replicate, whether its source
/// model was trained now.
fn own_sources_first<B: AutodiffBackend>(
    contexts: &[Context<B>],
    shard: Shard,
    owners: &BTreeMap<String, usize>,
    wait: Duration,
    progress: &mut dyn FnMut(&Event),
) -> Result<Vec<bool>, Error> {
    let mut trained = vec![false; contexts.len()];
    for (context, now) in contexts.iter().zip(&mut trained) {
        let mut runner = Runner::new(context, shard, owners, &mut *progress);
        if runner.owns(SOURCE_UNIT) {
            runner.source_unit(wait)?;
            *now = !runner.counts.source_reused;
        }
    }
    Ok(trained)
}

/// What every unit reads: the plan, the folder, the device; and what a worker process is told.
pub(super) struct Context<'a, B: AutodiffBackend> {
    pub plan: &'a Plan,
    pub store: &'a Store,
    pub device: B::Device,
    /// What a worker process is told: the experiment of this replicate (`spec.replicate`).
    pub spec: WorkerSpec,
}

/// Phase 1.
struct Runner<'a, 'p, B: AutodiffBackend> {
    context: &'a Context<'a, B>,
    shard: Shard,
    /// The shard of every unit, by id.
    owners: &'a BTreeMap<String, usize>,
    progress: &'p mut dyn FnMut(&Event),
    /// The source reference points, when a query needs them.
    references: Option<References>,
    /// The last domain's query pool with its cases' ids: rater domains of one centre share it.
    last_pool: Option<(Vec<String>, CandidatePool)>,
    counts: Counts,
}

impl<'a, 'p, B: AutodiffBackend> Runner<'a, 'p, B> {
    fn new(
        context: &'a Context<'a, B>,
        shard: Shard,
        owners: &'a BTreeMap<String, usize>,
        progress: &'p mut dyn FnMut(&Event),
    ) -> Self {
        Runner {
            context,
            shard,
            owners,
            progress,
            references: None,
            last_pool: None,
            counts: Counts::default(),
        }
    }

    /// Whether the unit `id` (of replicate 0's ids, e.g. `source`) of this replicate is this
    /// shard's.
    fn owns(&self, id: &str) -> bool {
        let id = replicate_unit(self.context.spec.replicate, id);
        self.owners.get(&id).is_none_or(|&k| k == self.shard.index)
    }

    fn emit(&mut self, event: Event) {
        (self.progress)(&event);
    }

    /// The source unit: the source model, then its reference points when a query needs them,
    /// and only then its marker. A shard that does not own the unit waits for it.
    fn source_unit(&mut self, wait: Duration) -> Result<(), Error> {
        let store = self.context.store;
        let stdr = self.context.plan.needs()?.stdr;
        let ready = || store.source_finished() && (!stdr || store.references().is_file());
        if !self.owns(SOURCE_UNIT) && !ready() {
            self.wait_for(wait, ready)?;
        }
        let trained = self.source()?;
        if stdr {
            self.references()?;
        }
        match trained {
            Some(summary) => store.finish_source(summary),
            None => Ok(()),
        }
    }

    /// Waits up to `wait` for `ready` (the source unit of the shard that owns it).
    fn wait_for(&mut self, wait: Duration, ready: impl Fn() -> bool) -> Result<(), Error> {
        let owner = Shard {
            index: (self
                .owners
                .get(&replicate_unit(self.context.spec.replicate, SOURCE_UNIT)))
            .copied()
            .unwrap_or(0),
            count: self.shard.count,
        };
        self.emit(Event::Waiting {
            unit: replicate_unit(self.context.spec.replicate, SOURCE_UNIT),
            owner: owner.to_string(),
            seconds: wait.as_secs_f64(),
        });
        let start = Instant::now();
        while !ready() {
            if start.elapsed() >= wait {
                return Err(Error::NotReady {
                    reason: format!(
                        "shard {}: the source model of {} (shard {owner}'s unit) is not finished after {:.0} s: run this shard again once it is (exit 75: retry)",
                        self.shard,
                        self.context.store.root().display(),
                        wait.as_secs_f64()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(500).min(wait));
        }
        Ok(())
    }

    /// Reuses the source model when it was trained with today's settings, else trains it;
    /// the summary for its marker when trained now.
    fn source(&mut self) -> Result<Option<serde_json::Value>, Error> {
        let (plan, store) = (self.context.plan, self.context.store);
        let start = Instant::now();
        if store.source_finished() {
            checkpoint::load_card(&store.source_model())?;
            self.counts.source_reused = true;
            let seconds = start.elapsed().as_secs_f64();
            self.emit(Event::Source {
                reused: true,
                best_val_dsc: None,
                seconds,
            });
            return Ok(None);
        }
        if let Some(from) = &plan.config.source_model {
            store.take_source_model(from)?;
            self.emit(Event::SourceTaken { from: from.clone() });
            return Ok(Some(
                json!({"taken_from": from, "seconds": start.elapsed().as_secs_f64()}),
            ));
        }
        let config = &plan.config.source;
        let data = TrainingData::load(&plan.manifest, std::slice::from_ref(&plan.source), None, config)?;
        self.emit(Event::SourceStarted {
            slices: data.train.len(),
        });
        let trainer = Trainer::<B>::new(config.clone(), self.context.device.clone())?;
        let progress = &mut *self.progress;
        let (_, log) = trainer.fit(&data, &store.source_model(), |e| {
            progress(&Event::Training {
                run: None,
                step: e.clone(),
            })
        })?;
        write_json(&store.source_dir().join("training-log.json"), &log)?;
        self.emit(Event::Source {
            reused: false,
            best_val_dsc: log.best_val_dsc,
            seconds: start.elapsed().as_secs_f64(),
        });
        Ok(Some(
            json!({"best_val_dsc": log.best_val_dsc, "best_iteration": log.best_iteration,
            "wall_seconds": log.wall_seconds}),
        ))
    }

    /// Computes the reference points, or reads them when the source model was reused.
    fn references(&mut self) -> Result<(), Error> {
        let start = Instant::now();
        let path = self.context.store.references();
        let reused = self.counts.source_reused && path.is_file();
        let given = self.context.plan.config.source_references.as_ref();
        let refs = if reused {
            References::load(&path)?
        } else if let Some(given) = given {
            let refs = References::load(given)?;
            let want = self.context.plan.config.references.descriptor;
            if refs.descriptor != want {
                return Err(Error::Config {
                    field: "source_references",
                    reason: format!(
                        "{} describes slices as {:?}, the config's references.descriptor is {want:?}: \
                         make them agree",
                        given.display(),
                        refs.descriptor
                    ),
                });
            }
            write_json(&path, &refs)?;
            refs
        } else {
            let refs = self.compute_references()?;
            write_json(&path, &refs)?;
            refs
        };
        let points = refs.centroids.len();
        self.references = Some(refs);
        let seconds = start.elapsed().as_secs_f64();
        self.emit(Event::References {
            reused,
            points,
            seconds,
        });
        Ok(())
    }

    /// K-means over the descriptors of the source's training slices (METHOD.md step 5).
    fn compute_references(&self) -> Result<References, Error> {
        let (model, card) = self.context.load(&self.context.store.source_model())?;
        let plan = self.context.plan;
        let r = &plan.config.references;
        let cases: Vec<_> = (plan.manifest.cases().iter())
            .filter(|c| c.centre == plan.source && c.split == Split::Train)
            .collect();
        let needs = query::Needs {
            stdr: true,
            ..Default::default()
        };
        let pool = build_pool(&model, &card, &cases, &plan.config.pool_options(needs))?;
        let source = vec![plan.source.clone()];
        Ok(References::from_pool(
            &pool,
            r.descriptor,
            source,
            r.k,
            r.iterations,
            plan.config.seed,
        ))
    }

    /// This shard's units still to run, in plan order, each query run's selection written
    /// first. Finished runs (of today's settings and source model) are skipped.
    fn selections(&mut self) -> Result<Vec<Unit>, Error> {
        let plan = self.context.plan;
        let total = plan.domains.len() * plan.methods.len();
        let mut units = Vec::new();
        for domain in &plan.domains {
            let ids: Vec<String> = (domain.cases(&plan.manifest, Split::Train).iter())
                .map(|c| c.id.clone())
                .collect();
            let mut pool = match self.last_pool.take() {
                Some((cases, pool)) if cases == ids => Some(pool),
                _ => None,
            };
            for method in &plan.methods {
                let index = units.len() + self.counts.skipped + self.counts.others + 1;
                if !self.owns(&unit_id(domain, method)) {
                    self.counts.others += 1;
                    continue;
                }
                let (d, m) = (domain.id.clone(), method.id());
                if self.context.store.finished_run(domain, method).is_some() {
                    self.counts.skipped += 1;
                    self.emit(Event::RunSkipped {
                        domain: d,
                        method: m,
                        index,
                        total,
                    });
                    continue;
                }
                let dir = self.context.store.run_dir(domain, method);
                create_dir(&dir)?;
                let start = Instant::now();
                if let Some(q) = &method.query {
                    self.select(domain, q, &mut pool, &dir)?;
                    self.emit(Event::Step {
                        domain: d.clone(),
                        method: m.clone(),
                        step: "query".into(),
                        seconds: start.elapsed().as_secs_f64(),
                    });
                }
                units.push(Unit {
                    domain: d,
                    method: m,
                    index,
                    total,
                    query_seconds: start.elapsed().as_secs_f64(),
                });
            }
            self.last_pool = pool.map(|p| (ids, p));
        }
        Ok(units)
    }

    /// Writes the selection of query strategy `name` from the domain's pool (built on first
    /// use) into `dir/selection.json`.
    fn select(
        &mut self,
        domain: &Domain,
        name: &str,
        pool: &mut Option<CandidatePool>,
        dir: &Path,
    ) -> Result<(), Error> {
        let plan = self.context.plan;
        if pool.is_none() {
            let (model, card) = self.context.load(&self.context.store.source_model())?;
            let cases = domain.cases(&plan.manifest, Split::Train);
            let options = plan.config.pool_options(plan.needs()?);
            let built = build_pool(&model, &card, &cases, &options)?;
            write_pool_scores(&built, self.references.as_ref().map(|r| r.centroids.as_slice()), dir)?;
            *pool = Some(built);
        }
        let rows = pool.clone().unwrap_or_else(|| CandidatePool {
            unit: RowUnit::Slice,
            rows: vec![],
        });
        let c = &plan.config;
        let options = QueryOptions {
            budget: plan.budget,
            unit: c.unit,
            aggregate: c.aggregate,
            seed: c.seed,
        };
        let references = self.references.as_ref().map(|r| r.centroids.as_slice());
        let selection = query::rank(rows, references, plan.strategies.query(name)?, &options)?;
        write_json(&dir.join("selection.json"), &selection)
    }
}

impl<B: AutodiffBackend> Context<'_, B> {
    /// The checkpoint in `dir`, in evaluation mode (no autodiff), with its card.
    fn load(&self, dir: &Path) -> Result<(UNet2d<B::InnerBackend>, ModelCard), Error> {
        Ok(checkpoint::load::<B::InnerBackend>(dir, &self.device)?)
    }

    /// Phase 2 of one run: adapt (from its selection, when the method has a query), evaluate,
    /// record.
    pub(super) fn run_unit(&self, unit: &Unit, progress: &mut dyn FnMut(&Event)) -> Result<(), Error> {
        let (domain, method) = self.plan.unit(&unit.domain, &unit.method)?;
        let dir = self.store.run_dir(domain, method);
        let selection = match method.query {
            Some(_) => store_selection(&dir)?,
            None => no_selection(),
        };
        let mut seconds = StepSeconds {
            query: unit.query_seconds,
            ..StepSeconds::default()
        };
        let start = Instant::now();
        self.adapt(domain, method, &selection, &dir, progress)?;
        seconds.adapt = step(domain, method, "adapt", start, progress);
        let start = Instant::now();
        let rows = self.evaluate(domain, &dir)?;
        seconds.evaluate = step(domain, method, "evaluate", start, progress);
        let path = self.store.run_cases(domain, method);
        crate::fsutil::write_bytes_atomic(&path, metrics::results_csv(&rows).as_bytes())
            .map_err(|source| Error::Io { path, source })?;
        let source = self.store.source_fingerprint().unwrap_or_default().to_string();
        let marker = marker(
            [self.store.run_hash(domain, method), source],
            domain,
            method,
            &rows,
            seconds,
        );
        self.store.finish_run(domain, method, &marker)?;
        progress(&Event::RunFinished {
            domain: domain.id.clone(),
            method: method.id(),
            marker,
        });
        Ok(())
    }

    /// Adapts the source model with the method's adaptation; the checkpoint goes to
    /// `dir/model`, the plan and the training log beside it.
    fn adapt(
        &self,
        domain: &Domain,
        method: &Method,
        selection: &Selection,
        dir: &Path,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<(), Error> {
        let config = self.plan.config.adaptation_training();
        let state = AdaptState {
            selection: selection.clone(),
            target: domain.centre.clone(),
            schedule: self.plan.config.adaptation_schedule(),
        };
        let plan = self.plan.strategies.adapt(&method.adapt)?.plan(&state)?;
        write_json(&dir.join("adapt-plan.json"), &plan)?;
        let source = self.store.source_model();
        let inputs = AdaptInputs {
            plan: &plan,
            selection,
            manifest: &self.plan.manifest,
            source: &source,
            rater: domain.rater.as_deref(),
        };
        let run = Some((domain.id.clone(), method.id()));
        let log = train::execute_adapt_plan::<B>(inputs, config, &dir.join("model"), self.device.clone(), |e| {
            progress(&Event::Training {
                run: run.clone(),
                step: e.clone(),
            })
        })?;
        write_json(&dir.join("training-log.json"), &log)
    }

    /// Scores the adapted model on the domain's test cases; masks go to `dir/predictions`.
    fn evaluate(&self, domain: &Domain, dir: &Path) -> Result<Vec<CaseResult>, Error> {
        let (model, card) = self.load(&dir.join("model"))?;
        let predictions = dir.join("predictions");
        create_dir(&predictions)?;
        let scorer = Scorer {
            model: &model,
            card: &card,
            predictions: &predictions,
            batch: self.plan.config.source.inference_batch,
        };
        Ok(scorer.domain(&self.plan.manifest, domain))
    }
}

/// The domain's pool scores (STDR distances where there are references; no descriptors) in
/// `runs/<domain>/pool.json`, beside the runs of `dir`: what the report plots the picks against.
fn write_pool_scores(pool: &CandidatePool, references: Option<&[Vec<f32>]>, dir: &Path) -> Result<(), Error> {
    let mut scored = match references {
        Some(r) => pool.clone().with_reference(r)?,
        None => pool.clone(),
    };
    for row in &mut scored.rows {
        row.descriptor.clear();
        row.features.clear();
    }
    let domain_dir = dir.parent().unwrap_or(dir);
    write_json(&domain_dir.join("pool.json"), &scored)
}

/// The selection phase 1 wrote into a run's folder.
fn store_selection(dir: &Path) -> Result<Selection, Error> {
    let path = dir.join("selection.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Table {
        path,
        reason: format!("not a selection: {e}"),
    })
}

/// Emits an [`Event::Step`] and returns its seconds.
fn step(domain: &Domain, method: &Method, step: &str, start: Instant, progress: &mut dyn FnMut(&Event)) -> f64 {
    let seconds = start.elapsed().as_secs_f64();
    progress(&Event::Step {
        domain: domain.id.clone(),
        method: method.id(),
        step: step.into(),
        seconds,
    });
    seconds
}

/// The marker of a run; `hashes`: of its settings and of its source model.
fn marker(
    hashes: [String; 2],
    domain: &Domain,
    method: &Method,
    rows: &[CaseResult],
    seconds: StepSeconds,
) -> RunMarker {
    let [settings_hash, source_model] = hashes;
    let evaluated: Vec<&metrics::Metrics> = rows
        .iter()
        .filter_map(|r| match &r.status {
            CaseStatus::Evaluated(m) => Some(m.as_ref()),
            _ => None,
        })
        .collect();
    let dsc: Vec<f64> = evaluated.iter().filter_map(|m| m.dsc).collect();
    RunMarker {
        domain: domain.id.clone(),
        method: method.id(),
        settings_hash,
        source_model,
        cases: evaluated.len(),
        failures: evaluated.iter().filter(|m| m.outcome.is_failure()).count(),
        median_dsc: stats::median(&dsc),
        seconds,
    }
}
