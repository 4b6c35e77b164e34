//! "Label these next": the unlabelled arrivals ranked by the job's query strategy (through the
//! one strategy resolver, so `script:` and `plugin:` strategies work here too), written to
//! `label-next.json` and `label-next.csv` after every arrival and every label. Each scan's pool
//! rows are kept in `STATE/pool/<case>.json` (computed once, with the model that predicted it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use serde::Serialize;

use super::journal::History;
use super::model::Current;
use super::{Layout, WatchError, WatchOptions};
use crate::metrics::csv_line;
use crate::strategy::query::{
    self, Budget, Candidate, CandidatePool, Needs, PoolOptions, QueryOptions, QueryStrategy, References, Selection,
    Unit,
};
use crate::strategy::Resolver;

/// The query strategy, its references, and every done scan's pool rows.
pub(crate) struct Ranker {
    strategy: Box<dyn QueryStrategy>,
    references: Option<References>,
    options: PoolOptions,
    query: QueryOptions,
    pool: BTreeMap<String, Vec<Candidate>>,
}

/// `label-next.json`.
#[derive(Debug, Serialize)]
struct LabelNext<'a> {
    format: &'static str,
    /// The model generation predicting now (pool rows come from the model that predicted each).
    model: u32,
    budget: &'a str,
    unlabelled_scans: usize,
    labelled_scans: usize,
    selection: &'a Selection,
}

impl Ranker {
    /// Resolves the job's strategy and references and reads the pool rows already computed.
    pub fn new<B: AutodiffBackend>(
        o: &WatchOptions,
        layout: &Layout,
        history: &History,
        current: &Current<B>,
    ) -> Result<Ranker, WatchError> {
        let job = &o.job;
        let bad = |field: &str, reason: String| WatchError::Job {
            job: o.job_path.clone(),
            reason: format!("{field}: {reason}"),
        };
        let strategy = Resolver::new()
            .resolve_query(&job.query.strategy)
            .map_err(|e| bad("query.strategy", e.to_string()))?;
        if let Some(a) = &job.adaptation {
            Resolver::new()
                .resolve_adapt(&a.strategy)
                .map_err(|e| bad("adaptation.strategy", e.to_string()))?;
        }
        let references = match &job.query.references {
            Some(p) => Some(References::load(p).map_err(|e| bad("query.references", e.to_string()))?),
            None => None,
        };
        let mut needs = strategy.needs();
        if needs.stdr && references.is_none() {
            return Err(bad(
                "query.references",
                format!(
                    "{} ranks by the distance to source references: name the references file (from \
                     `delinea reference`, or `delinea reference import` of the source side's centroids); \
                     every other strategy works without one",
                    strategy.name()
                ),
            ));
        }
        needs = needs.or(Needs {
            entropy: job.outputs.uncertainty,
            stdr: job.outputs.stdr_distance && references.is_some(),
            ..Needs::default()
        });
        let descriptor = references.as_ref().map(|r| r.descriptor).unwrap_or_default();
        let size = current.card.preprocessing.slice_size;
        if needs.stdr || needs.features {
            descriptor
                .kernel(size)
                .map_err(|r| bad("query.references", format!("at {size} × {size}: {r}")))?;
        }
        let options = PoolOptions {
            needs,
            mc_samples: job.prediction.mc_samples,
            reduction: job.prediction.reduction,
            batch: job.prediction.batch,
            seed: job.prediction.seed,
            descriptor,
            ..PoolOptions::default()
        };
        let query = QueryOptions {
            budget: job.budget().map_err(|e| bad("query.budget", e.to_string()))?,
            unit: job.query.unit,
            aggregate: job.query.aggregate,
            seed: job.query.seed,
        };
        let mut pool = BTreeMap::new();
        for case in history.done_cases().keys() {
            let path = layout.pool().join(format!("{case}.json"));
            let text = std::fs::read_to_string(&path).map_err(WatchError::io(&path))?;
            let rows: Vec<Candidate> = serde_json::from_str(&text)
                .map_err(|e| WatchError::io(&path)(std::io::Error::other(format!("not pool rows: {e}"))))?;
            pool.insert(case.clone(), rows);
        }
        Ok(Ranker {
            strategy,
            references,
            options,
            query,
            pool,
        })
    }

    /// How each arrival is scored.
    pub fn pool_options(&self) -> PoolOptions {
        self.options.clone()
    }

    /// The source reference points, if the job names them.
    pub fn references(&self) -> Option<&[Vec<f32>]> {
        self.references.as_ref().map(|r| r.centroids.as_slice())
    }

    /// Adds a done scan's rows.
    pub fn insert(&mut self, case: &str, rows: Vec<Candidate>) {
        self.pool.insert(case.to_string(), rows);
    }

    /// Ranks the scans without a registered label and writes `label-next.{json,csv}`.
    pub fn write(&self, layout: &Layout, history: &History, model: u32) -> Result<(), WatchError> {
        let (selection, unlabelled, labelled) =
            self.rank(history, self.strategy.as_ref(), &self.query)
                .map_err(|reason| WatchError::Job {
                    job: layout.outbox.join("label-next.json"),
                    reason,
                })?;
        let budget = match self.query.budget {
            Budget::Count(n) => n.to_string(),
            Budget::Fraction(f) => format!("{f}"),
        };
        let next = LabelNext {
            format: "delinea-label-next",
            model,
            budget: &budget,
            unlabelled_scans: unlabelled,
            labelled_scans: labelled,
            selection: &selection,
        };
        let json = layout.outbox.join("label-next.json");
        crate::fsutil::write_json_atomic(&json, &next).map_err(WatchError::io(&json))?;
        write_csv(&layout.outbox.join("label-next.csv"), &selection)
    }

    /// Every scan without a registered label, best first by `strategy` (the job's when `None`),
    /// whole scans ranked as the job aggregates them.
    pub fn order(&self, history: &History, strategy: Option<&dyn QueryStrategy>) -> Result<Vec<String>, String> {
        let strategy = strategy.unwrap_or(self.strategy.as_ref());
        if !self.serves(strategy) {
            return Err(format!(
                "{} needs scores this job does not compute (its outputs and query settings)",
                strategy.name()
            ));
        }
        let all = QueryOptions {
            budget: Budget::Fraction(1.0),
            unit: Unit::Volume,
            ..self.query
        };
        let (selection, ..) = self.rank(history, strategy, &all)?;
        let mut seen = BTreeSet::new();
        Ok(selection
            .items
            .into_iter()
            .filter(|s| seen.insert(s.case.clone()))
            .map(|s| s.case)
            .collect())
    }

    /// Whether the pool rows hold what `strategy` needs.
    pub fn serves(&self, strategy: &dyn QueryStrategy) -> bool {
        let (n, have) = (strategy.needs(), self.options.needs);
        let stdr_ready = have.stdr && self.references.is_some();
        let uncertain = have.entropy || have.bald || have.margin;
        (!(n.entropy || n.bald || n.margin) || uncertain) && (!n.stdr || stdr_ready) && (!n.features || have.features)
    }

    /// The selection of `strategy` over the unlabelled pool, with the unlabelled and labelled
    /// scan counts.
    fn rank(
        &self,
        history: &History,
        strategy: &dyn QueryStrategy,
        query: &QueryOptions,
    ) -> Result<(Selection, usize, usize), String> {
        let labelled: BTreeSet<String> = history
            .registered_labels()
            .iter()
            .filter_map(|l| l.case.clone())
            .collect();
        let rows: Vec<Candidate> = self
            .pool
            .iter()
            .filter(|(case, _)| !labelled.contains(*case))
            .flat_map(|(_, rows)| rows.iter().cloned())
            .collect();
        let unlabelled = self.pool.keys().filter(|c| !labelled.contains(*c)).count();
        let selection = if rows.is_empty() {
            let pool = CandidatePool { unit: query.unit, rows };
            query::selection(&strategy.name(), &pool, &[])
        } else {
            let pool = CandidatePool {
                unit: Unit::Slice,
                rows,
            };
            query::rank(pool, None, strategy, query).map_err(|e| format!("ranking the pool: {e}"))?
        };
        Ok((selection, unlabelled, labelled.len()))
    }
}

fn write_csv(path: &Path, selection: &Selection) -> Result<(), WatchError> {
    let mut text = String::from("rank,case,slice,score,reason\n");
    for s in &selection.items {
        let reason = serde_json::to_value(s.reason)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        let fields = [
            s.rank.to_string(),
            s.case.clone(),
            s.slice.map(|k| k.to_string()).unwrap_or_default(),
            s.score.map(|v| v.to_string()).unwrap_or_default(),
            reason.unwrap_or_default(),
        ];
        text.push_str(&csv_line(&fields));
    }
    crate::fsutil::write_bytes_atomic(path, text.as_bytes()).map_err(WatchError::io(path))
}
