//! Working through a [`Plan`] on one backend: the source model and its reference points
//! (trained or reused), then each domain's runs in plan order, each recorded on disk when
//! finished. A domain's query pool is built once, with everything its queries need, and only
//! when one of its query runs is still to do.

use std::path::Path;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;

use super::evaluate::Scorer;
use super::plan::no_selection;
use super::store::{create_dir, write_json, RunMarker, StepSeconds};
use super::{Domain, Error, Event, Method, Plan, Store};
use crate::dataset::Split;
use crate::device::BackendTask;
use crate::metrics::{self, stats, CaseResult, CaseStatus};
use crate::model::checkpoint::{self, ModelCard};
use crate::model::UNet2d;
use crate::strategy::adapt::{self, AdaptState};
use crate::strategy::query::{self, build_pool, CandidatePool, QueryOptions, References, Selection, Unit};
use crate::train::{self, AdaptInputs, Trainer, TrainingData};

/// The whole experiment as one [`BackendTask`].
pub(super) struct Task<'a> {
    pub plan: &'a Plan,
    pub store: &'a Store,
    pub progress: &'a mut dyn FnMut(&Event),
}

/// How many runs were computed and skipped.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    pub ran: usize,
    pub skipped: usize,
    pub source_reused: bool,
}

impl BackendTask for Task<'_> {
    type Output = Result<Counts, Error>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let mut runner = Runner::<B> {
            plan: self.plan,
            store: self.store,
            device,
            progress: self.progress,
            references: None,
            last_pool: None,
            index: 0,
            counts: Counts::default(),
        };
        runner.source()?;
        runner.references()?;
        for domain in &self.plan.domains {
            runner.domain(domain)?;
        }
        Ok(runner.counts)
    }
}

struct Runner<'a, B: AutodiffBackend> {
    plan: &'a Plan,
    store: &'a Store,
    device: B::Device,
    progress: &'a mut dyn FnMut(&Event),
    /// The source reference points, when a query needs them.
    references: Option<References>,
    /// The last domain's query pool with its cases' ids: rater domains of one centre share it.
    last_pool: Option<(Vec<String>, CandidatePool)>,
    /// Runs handled so far.
    index: usize,
    counts: Counts,
}

impl<B: AutodiffBackend> Runner<'_, B> {
    fn emit(&mut self, event: Event) {
        (self.progress)(&event);
    }

    /// Reuses the source model when it was trained with today's settings, else trains it.
    fn source(&mut self) -> Result<(), Error> {
        let start = Instant::now();
        if self.store.source_finished() {
            checkpoint::load_card(&self.store.source_model())?;
            self.counts.source_reused = true;
            let seconds = start.elapsed().as_secs_f64();
            self.emit(Event::Source {
                reused: true,
                best_val_dsc: None,
                seconds,
            });
            return Ok(());
        }
        let config = &self.plan.config.source;
        let data = TrainingData::load(
            &self.plan.manifest,
            std::slice::from_ref(&self.plan.source),
            None,
            config,
        )?;
        self.emit(Event::SourceStarted {
            slices: data.train.len(),
        });
        let trainer = Trainer::<B>::new(config.clone(), self.device.clone())?;
        let progress = &mut *self.progress;
        let (_, log) = trainer.fit(&data, &self.store.source_model(), |e| {
            progress(&Event::Training {
                run: None,
                step: e.clone(),
            })
        })?;
        write_json(&self.store.source_dir().join("training-log.json"), &log)?;
        let summary = json!({"best_val_dsc": log.best_val_dsc, "best_iteration": log.best_iteration,
            "wall_seconds": log.wall_seconds});
        self.store.finish_source(summary)?;
        self.emit(Event::Source {
            reused: false,
            best_val_dsc: log.best_val_dsc,
            seconds: start.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// The checkpoint in `dir`, in evaluation mode (no autodiff), with its card.
    fn load(&self, dir: &Path) -> Result<(UNet2d<B::InnerBackend>, ModelCard), Error> {
        Ok(checkpoint::load::<B::InnerBackend>(dir, &self.device)?)
    }

    /// Computes the reference points (or reads them when the source model was reused), when
    /// a query needs them.
    fn references(&mut self) -> Result<(), Error> {
        if !self.plan.needs()?.stdr {
            return Ok(());
        }
        let start = Instant::now();
        let path = self.store.references();
        let reused = self.counts.source_reused && path.is_file();
        let refs = if reused {
            References::load(&path)?
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
        let (model, card) = self.load(&self.store.source_model())?;
        let (plan, r) = (self.plan, &self.plan.config.references);
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

    /// Every run of `domain`; finished ones are skipped (unless the source model was trained
    /// now, which makes them stale).
    fn domain(&mut self, domain: &Domain) -> Result<(), Error> {
        let total = self.plan.domains.len() * self.plan.methods.len();
        let ids: Vec<String> = (domain.cases(&self.plan.manifest, Split::Train).iter())
            .map(|c| c.id.clone())
            .collect();
        let mut pool = match self.last_pool.take() {
            Some((cases, pool)) if cases == ids => Some(pool),
            _ => None,
        };
        for method in &self.plan.methods {
            self.index += 1;
            let (d, m, index) = (domain.id.clone(), method.id(), self.index);
            let finished = self.store.finished_run(domain, method);
            if finished.is_some() && self.counts.source_reused {
                self.counts.skipped += 1;
                self.emit(Event::RunSkipped {
                    domain: d,
                    method: m,
                    index,
                    total,
                });
                continue;
            }
            self.emit(Event::RunStarted {
                domain: d,
                method: m,
                index,
                total,
            });
            self.run(domain, method, &mut pool)?;
            self.counts.ran += 1;
        }
        self.last_pool = pool.map(|p| (ids, p));
        Ok(())
    }

    /// Query (when the method has one), adapt, evaluate, record.
    fn run(&mut self, domain: &Domain, method: &Method, pool: &mut Option<CandidatePool>) -> Result<(), Error> {
        let dir = self.store.run_dir(domain, method);
        create_dir(&dir)?;
        let mut seconds = StepSeconds::default();
        let start = Instant::now();
        let selection = match &method.query {
            Some(q) => self.select(domain, q, pool, &dir)?,
            None => no_selection(),
        };
        seconds.query = self.step(domain, method, "query", start);
        let start = Instant::now();
        self.adapt(domain, method, &selection, &dir)?;
        seconds.adapt = self.step(domain, method, "adapt", start);
        let start = Instant::now();
        let rows = self.evaluate(domain, &dir)?;
        seconds.evaluate = self.step(domain, method, "evaluate", start);
        let path = self.store.run_cases(domain, method);
        crate::fsutil::write_bytes_atomic(&path, metrics::results_csv(&rows).as_bytes())
            .map_err(|source| Error::Io { path, source })?;
        let marker = marker(self.store.run_hash(domain, method), domain, method, &rows, seconds);
        self.store.finish_run(domain, method, &marker)?;
        self.emit(Event::RunFinished {
            domain: domain.id.clone(),
            method: method.id(),
            marker,
        });
        Ok(())
    }

    /// Emits a [`Event::Step`] and returns its seconds.
    fn step(&mut self, domain: &Domain, method: &Method, step: &'static str, start: Instant) -> f64 {
        let seconds = start.elapsed().as_secs_f64();
        self.emit(Event::Step {
            domain: domain.id.clone(),
            method: method.id(),
            step,
            seconds,
        });
        seconds
    }

    /// The selection of query strategy `name` from the domain's pool (built on first use).
    fn select(
        &mut self,
        domain: &Domain,
        name: &str,
        pool: &mut Option<CandidatePool>,
        dir: &Path,
    ) -> Result<Selection, Error> {
        if pool.is_none() {
            let (model, card) = self.load(&self.store.source_model())?;
            let cases = domain.cases(&self.plan.manifest, Split::Train);
            let options = self.plan.config.pool_options(self.plan.needs()?);
            *pool = Some(build_pool(&model, &card, &cases, &options)?);
        }
        let rows = pool.clone().unwrap_or_else(|| CandidatePool {
            unit: Unit::Slice,
            rows: vec![],
        });
        let c = &self.plan.config;
        let options = QueryOptions {
            budget: self.plan.budget,
            unit: c.unit,
            aggregate: c.aggregate,
            seed: c.seed,
        };
        let references = self.references.as_ref().map(|r| r.centroids.as_slice());
        let selection = query::rank(rows, references, query::by_name(name)?.as_ref(), &options)?;
        write_json(&dir.join("selection.json"), &selection)?;
        Ok(selection)
    }

    /// Adapts the source model with the method's adaptation; the checkpoint goes to
    /// `dir/model`, the plan and the training log beside it.
    fn adapt(&mut self, domain: &Domain, method: &Method, selection: &Selection, dir: &Path) -> Result<(), Error> {
        let config = self.plan.config.adaptation_training();
        let state = AdaptState {
            selection: selection.clone(),
            target: domain.centre.clone(),
            schedule: config.schedule(),
        };
        let plan = adapt::by_name(&method.adapt)?.plan(&state);
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
        let progress = &mut *self.progress;
        let log = train::execute_adapt_plan::<B>(inputs, config, &dir.join("model"), self.device.clone(), |e| {
            progress(&Event::Training {
                run: run.clone(),
                step: e.clone(),
            })
        })?;
        write_json(&dir.join("training-log.json"), &log)
    }

    /// Scores the adapted model on the domain's test cases; masks go to `dir/predictions`.
    fn evaluate(&mut self, domain: &Domain, dir: &Path) -> Result<Vec<CaseResult>, Error> {
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

fn marker(hash: String, domain: &Domain, method: &Method, rows: &[CaseResult], seconds: StepSeconds) -> RunMarker {
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
        settings_hash: hash,
        cases: evaluated.len(),
        failures: evaluated.iter().filter(|m| m.outcome.is_failure()).count(),
        median_dsc: stats::median(&dsc),
        seconds,
    }
}
