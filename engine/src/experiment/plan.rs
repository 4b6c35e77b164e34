//! What an experiment runs: the target domains resolved from the manifest, and the methods
//! run on each (source-only, every query × adaptation pair, the supervised bound).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::{Error, ExperimentConfig};
use crate::dataset::{CaseEntry, Manifest, Split};
use crate::strategy::adapt::{AdaptState, AdaptStrategy, LabelSource};
use crate::strategy::query::{Budget, Needs, QueryStrategy, Selection, Unit};
use crate::strategy::Resolver;
use crate::train;

/// One target domain: a centre's cases judged by one rater's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Domain {
    /// The id given in the target list: a centre (`C2`) or a rater (`R2`).
    pub id: String,
    /// The centre whose cases make up the domain.
    pub centre: String,
    /// The rater whose labels are the truth; `None`: the centre's reference rater.
    pub rater: Option<String>,
}

impl Domain {
    /// The domain's cases of `split`, in manifest order: the centre's cases that have the
    /// domain's label (an unlabelled case can be neither adapted on nor evaluated).
    pub fn cases<'a>(&self, manifest: &'a Manifest, split: Split) -> Vec<&'a CaseEntry> {
        manifest
            .cases()
            .iter()
            .filter(|c| c.centre == self.centre && c.split == split)
            .filter(|c| manifest.label(c, self.rater.as_deref()).is_some())
            .collect()
    }
}

/// How a domain is handled: an optional query strategy and an adaptation strategy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Method {
    /// The query strategy (`None` for source-only and supervised, which need no selection).
    pub query: Option<String>,
    /// The adaptation strategy (`none` for source-only).
    pub adapt: String,
}

impl Method {
    /// The source model as it is.
    pub fn source_only() -> Method {
        Method {
            query: None,
            adapt: "none".into(),
        }
    }

    /// Fine-tuning on every target training label: the upper bound.
    pub fn supervised() -> Method {
        Method {
            query: None,
            adapt: "supervised".into(),
        }
    }

    /// The name used in tables and folders: `source-only`, `supervised`, or
    /// `<query>+<adapt>` (e.g. `stdr+finetune+pseudo`).
    pub fn id(&self) -> String {
        match &self.query {
            None if self.adapt == "none" => "source-only".into(),
            None => self.adapt.clone(),
            Some(q) => format!("{q}+{}", self.adapt),
        }
    }

    /// [`Method::id`] with every character other than letters, digits and `+._-` replaced by
    /// `_`, for a folder name.
    pub fn dir_name(&self) -> String {
        sanitize(&self.id())
    }
}

/// The id of a (domain, method) run as a unit of work, `domain/method` (e.g.
/// `C2/stdr+finetune+pseudo`): what assigns it to a shard.
pub fn unit_id(domain: &Domain, method: &Method) -> String {
    format!("{}/{}", domain.id, method.id())
}

/// The id of the unit every run depends on: the source model and its reference points.
pub const SOURCE_UNIT: &str = "source";

/// The id of unit `id` of replicate `r`: `id` itself for replicate 0 (so that a run without
/// replicates keeps its ids), `r<r>/<id>` after (e.g. `r2/source`, `r2/C2/stdr+finetune`).
pub fn replicate_unit(r: usize, id: &str) -> String {
    match r {
        0 => id.to_string(),
        r => format!("r{r}/{id}"),
    }
}

/// Which of `count` shards runs each unit, by id: the source units (one per replicate) go to
/// shards 0, 1, … in turn; the runs are dealt one per shard in turn after them, those that
/// train first, each group in the order of the stable hash of the ids. So every shard gets as
/// many runs as any other, give or take one, as many of those that train, and the deal depends
/// on the set of runs and `count` only (not on the order targets and strategies were listed
/// in). `runs`: each run's id and whether it trains.
pub fn deal(
    sources: &[String],
    runs: impl IntoIterator<Item = (String, bool)>,
    count: usize,
) -> BTreeMap<String, usize> {
    let mut order: Vec<(bool, u64, String)> = runs
        .into_iter()
        .map(|(id, trains)| (!trains, crate::cluster::fnv1a64(id.as_bytes()), id))
        .collect();
    order.sort();
    let count = count.max(1);
    let mut owners: BTreeMap<String, usize> = (sources.iter().enumerate())
        .map(|(r, id)| (id.clone(), r % count))
        .collect();
    for (i, (_, _, id)) in order.into_iter().enumerate() {
        owners.insert(id, (i + sources.len()) % count);
    }
    owners
}

/// `name` with every character other than ASCII letters, digits and `+._-` replaced by `_`.
pub(super) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The strategies a plan names, resolved once (builtins, scripts and plugins alike).
#[derive(Clone, Default)]
pub struct Strategies {
    queries: BTreeMap<String, Arc<dyn QueryStrategy>>,
    adapts: BTreeMap<String, Arc<dyn AdaptStrategy>>,
}

impl std::fmt::Debug for Strategies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strategies")
            .field("queries", &self.queries.keys().collect::<Vec<_>>())
            .field("adapts", &self.adapts.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Strategies {
    /// The query strategy named `name` in the plan.
    pub fn query(&self, name: &str) -> Result<&dyn QueryStrategy, Error> {
        self.queries
            .get(name)
            .map(|q| q.as_ref())
            .ok_or_else(|| unplanned("query", name))
    }

    /// The adaptation strategy named `name` in the plan.
    pub fn adapt(&self, name: &str) -> Result<&dyn AdaptStrategy, Error> {
        self.adapts
            .get(name)
            .map(|a| a.as_ref())
            .ok_or_else(|| unplanned("adaptation", name))
    }
}

fn unplanned(what: &'static str, name: &str) -> Error {
    Error::Config {
        field: "queries/adapts",
        reason: format!("{what} {name:?} is not in this experiment's plan"),
    }
}

/// A resolved experiment: the manifest, the source centre, the domains and the methods.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cohort.
    pub manifest: Manifest,
    /// The source centre.
    pub source: String,
    /// Target domains, in the order given.
    pub domains: Vec<Domain>,
    /// Methods run on every domain: source-only, queries × adaptations, supervised.
    pub methods: Vec<Method>,
    /// The config (validated).
    pub config: ExperimentConfig,
    /// The parsed budget.
    pub budget: Budget,
    /// Every strategy the methods name.
    pub strategies: Strategies,
}

impl Plan {
    /// Checks the config, the source, every target and every strategy name (resolved with
    /// `resolver`), before any computation.
    pub fn new(
        manifest: Manifest,
        source: &str,
        targets: &[String],
        config: ExperimentConfig,
        resolver: &Resolver,
    ) -> Result<Plan, Error> {
        config.validate()?;
        if manifest.centre(source).is_none() {
            return Err(Error::UnknownSource {
                manifest: manifest.path.clone(),
                source_centre: source.into(),
            });
        }
        if targets.is_empty() {
            return Err(Error::NoTargets);
        }
        let mut domains: Vec<Domain> = Vec::new();
        for t in targets {
            let d = resolve_domain(&manifest, t, source)?;
            if domains.iter().any(|x| x.id == d.id) {
                return Err(Error::Duplicate {
                    what: "target",
                    name: d.id,
                });
            }
            domains.push(d);
        }
        let (methods, strategies) = methods(&config, resolver)?;
        let budget = config.budget()?;
        Ok(Plan {
            manifest,
            source: source.into(),
            domains,
            methods,
            config,
            budget,
            strategies,
        })
    }

    /// The domain and method of a run, by their ids.
    pub fn unit(&self, domain: &str, method: &str) -> Result<(&Domain, &Method), Error> {
        let d = self.domains.iter().find(|d| d.id == domain);
        let m = self.methods.iter().find(|m| m.id() == method);
        d.zip(m).ok_or_else(|| Error::UnknownUnit {
            domain: domain.into(),
            method: method.into(),
        })
    }

    /// [`deal`] of the units of every replicate of this plan among `count` shards.
    pub fn deal(&self, count: usize) -> BTreeMap<String, usize> {
        let replicates = 0..self.config.replicates;
        let sources: Vec<String> = replicates.clone().map(|r| replicate_unit(r, SOURCE_UNIT)).collect();
        let runs = replicates.flat_map(|r| {
            (self.domains.iter())
                .flat_map(|d| self.methods.iter().map(move |m| (d, m)))
                .map(move |(d, m)| (replicate_unit(r, &unit_id(d, m)), m.adapt != "none"))
        });
        deal(&sources, runs, count)
    }

    /// Replicate `r` of this plan: its config with the replicate's seeds
    /// ([`ExperimentConfig::replicate`]), everything else the same.
    pub fn replicate(&self, r: usize) -> Plan {
        Plan {
            config: self.config.replicate(r),
            ..self.clone()
        }
    }

    /// What the query pool of a domain must hold for every query strategy of the plan.
    pub fn needs(&self) -> Result<Needs, Error> {
        let mut needs = Needs::default();
        for q in &self.config.queries {
            needs = needs.or(self.strategies.query(q)?.needs());
        }
        Ok(needs)
    }

    /// The method a Wilcoxon test compares `method` with besides supervised: STDR with the
    /// same adaptation; for the methods without a query (source-only, Tent, AdaBN), STDR with
    /// the first label-using adaptation listed. `None` for
    /// STDR itself, for supervised, and when the plan has no STDR query.
    pub fn stdr_partner(&self, method: &Method) -> Option<Method> {
        let has_stdr = self.config.queries.iter().any(|q| q == "stdr");
        if !has_stdr || method.query.as_deref() == Some("stdr") || *method == Method::supervised() {
            return None;
        }
        let adapt = match &method.query {
            Some(_) => method.adapt.clone(),
            // The first query's methods come first, in the order the adaptations were listed.
            None => self.methods.iter().find(|m| m.query.is_some())?.adapt.clone(),
        };
        Some(Method {
            query: Some("stdr".into()),
            adapt,
        })
    }
}

/// A centre id, or a rater id resolved to the one non-source centre whose cases that rater
/// delineated. A centre id wins over a rater of the same name.
fn resolve_domain(manifest: &Manifest, id: &str, source: &str) -> Result<Domain, Error> {
    let domain = if manifest.centre(id).is_some() {
        Domain {
            id: id.into(),
            centre: id.into(),
            rater: None,
        }
    } else {
        let centres: BTreeSet<&str> = manifest
            .cases()
            .iter()
            .filter(|c| c.labels.contains_key(id))
            .map(|c| c.centre.as_str())
            .collect();
        let targets: Vec<&str> = centres.iter().copied().filter(|c| *c != source).collect();
        let centre = match (targets.as_slice(), centres.is_empty()) {
            (_, true) => return Err(unknown_target(manifest, id)),
            ([], false) => source,
            ([one], false) => one,
            (many, false) => {
                return Err(Error::AmbiguousRater {
                    rater: id.into(),
                    centres: many.iter().map(|c| c.to_string()).collect(),
                })
            }
        };
        Domain {
            id: id.into(),
            centre: centre.into(),
            rater: Some(id.into()),
        }
    };
    if domain.centre == source {
        return Err(Error::SourceInTargets {
            target: id.into(),
            source_centre: source.into(),
        });
    }
    for split in [Split::Train, Split::Test] {
        if domain.cases(manifest, split).is_empty() {
            return Err(Error::NoCases {
                domain: id.into(),
                split,
            });
        }
    }
    Ok(domain)
}

fn unknown_target(manifest: &Manifest, id: &str) -> Error {
    let raters: BTreeSet<&str> = manifest
        .cases()
        .iter()
        .flat_map(|c| c.labels.keys().map(String::as_str))
        .collect();
    Error::UnknownTarget {
        target: id.into(),
        manifest: manifest.path.clone(),
        centres: manifest.file.centres.iter().map(|c| c.id.clone()).collect(),
        raters: raters.into_iter().map(String::from).collect(),
    }
}

/// Source-only, every query × adaptation pair, then supervised; every name resolved and
/// checked.
fn methods(config: &ExperimentConfig, resolver: &Resolver) -> Result<(Vec<Method>, Strategies), Error> {
    let mut strategies = Strategies::default();
    let mut out = vec![Method::source_only()];
    for (i, q) in config.queries.iter().enumerate() {
        if config.queries[..i].contains(q) {
            return Err(Error::Duplicate {
                what: "query",
                name: q.clone(),
            });
        }
        strategies
            .queries
            .insert(q.clone(), Arc::from(resolver.resolve_query(q)?));
    }
    for a in ["none", "supervised"] {
        strategies
            .adapts
            .insert(a.into(), Arc::from(resolver.resolve_adapt(a)?));
    }
    let mut labelled = Vec::new();
    for (i, a) in config.adapts.iter().enumerate() {
        if config.adapts[..i].contains(a) {
            return Err(Error::Duplicate {
                what: "adaptation",
                name: a.clone(),
            });
        }
        if a == "none" || a == "supervised" {
            return Err(Error::AlwaysRun { adapt: a.clone() });
        }
        let strategy: Arc<dyn AdaptStrategy> = Arc::from(resolver.resolve_adapt(a)?);
        match check_adaptation(strategy.as_ref(), config)? {
            true => labelled.push(a),
            // Tent and AdaBN use no labels: one run per domain, without a query.
            false => out.push(Method {
                query: None,
                adapt: a.clone(),
            }),
        }
        strategies.adapts.insert(a.clone(), strategy);
    }
    for q in &config.queries {
        out.extend(labelled.iter().map(|a| Method {
            query: Some(q.clone()),
            adapt: (*a).clone(),
        }));
    }
    out.push(Method::supervised());
    Ok((out, strategies))
}

/// Runnable by the trainer; `true` when it learns from a selection's labels.
fn check_adaptation(strategy: &dyn AdaptStrategy, config: &ExperimentConfig) -> Result<bool, Error> {
    let state = AdaptState {
        selection: no_selection(),
        target: String::new(),
        schedule: config.adaptation_schedule(),
    };
    let plan = strategy.plan(&state)?;
    train::check_supported(&plan)?;
    Ok(plan.data.iter().any(|d| d.labels == LabelSource::True))
}

/// The empty selection of the methods without a query (source-only, supervised).
pub(super) fn no_selection() -> Selection {
    Selection {
        strategy: String::new(),
        unit: Unit::Slice,
        pool_size: 0,
        items: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deal_balances_the_runs_and_ignores_their_order() {
        let runs: Vec<(String, bool)> = (0..23).map(|i| (format!("C{}/m{i}", i % 4), i % 5 != 0)).collect();
        let sources = [SOURCE_UNIT.to_string()];
        for count in 1..6 {
            let owners = deal(&sources, runs.clone(), count);
            assert_eq!(owners[SOURCE_UNIT], 0);
            assert_eq!(owners.len(), runs.len() + 1);
            let share = |trains: bool| -> Vec<usize> {
                let mut n = vec![0; count];
                for (id, t) in &runs {
                    if *t == trains {
                        n[owners[id]] += 1;
                    }
                }
                n
            };
            let (training, all) = (
                share(true),
                (0..count).map(|k| share(true)[k] + share(false)[k]).collect::<Vec<_>>(),
            );
            for n in [&training, &all] {
                let (lo, hi) = (n.iter().min().unwrap(), n.iter().max().unwrap());
                assert!(hi - lo <= 1, "{count} shards: {n:?}");
            }
            let mut reversed = runs.clone();
            reversed.reverse();
            assert_eq!(deal(&sources, reversed, count), owners);
        }
    }
}
