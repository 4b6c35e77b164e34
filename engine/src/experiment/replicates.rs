//! Replicates side by side: every replicate's median per domain and method, their mean,
//! standard deviation and range; the paired tests on each case's values averaged over the
//! replicates, with every replicate's own P value beside them; what each query labelled, per
//! replicate. One replicate measures one draw of the training noise; this is what a claim
//! about a method must survive.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::{self, DomainResult, TestResult, REPORTED};
use super::{Domain, Error, Method};
use crate::metrics::{fmt_value, ser_value, ResultsTable};

/// `results.json`'s `replicates`: present when the experiment ran more than one.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Replicates {
    /// Each replicate's seeds and folder, replicate 0 first.
    pub runs: Vec<ReplicateRun>,
    /// Per domain, in the order given.
    pub domains: Vec<DomainSpread>,
}

/// One replicate.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ReplicateRun {
    /// 0-based.
    pub replicate: usize,
    /// Its seed of the queries, MC dropout, k-means and adaptation.
    pub seed: u64,
    /// Its seed of the source model.
    pub source_seed: u64,
    /// Its experiment folder, relative to this one (`.` for replicate 0).
    pub folder: String,
}

/// One domain across replicates.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DomainSpread {
    /// The domain id.
    pub domain: String,
    /// One entry per method, in plan order.
    pub methods: Vec<MethodSpread>,
    /// Every test of a replicate's own table, on the per-case values averaged over the
    /// replicates (Holm within the domain and metric), each replicate's P beside it.
    pub tests: Vec<PooledTest>,
}

/// One method on one domain across replicates.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MethodSpread {
    /// The method id.
    pub method: String,
    /// Median test DSC of each replicate, and their spread.
    pub dsc: Spread,
    /// Median test HD95 (mm) of each replicate, and their spread.
    pub hd95: Spread,
    /// Failures (one mask empty) of each replicate.
    pub failures: Vec<usize>,
    /// Tumour slices its query labelled in each replicate (`None` without a query).
    pub tumour_slices: Option<Spread>,
}

/// One value per replicate, and their mean, sample SD and range.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Spread {
    /// Each replicate's value, replicate 0 first (`null`: none; `"inf"`: infinite).
    #[schemars(with = "Vec<serde_json::Value>")]
    #[serde(serialize_with = "ser_values")]
    pub values: Vec<Option<f64>>,
    /// Their mean (`"inf"` when one is infinite).
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "crate::metrics::metric_value_schema")]
    pub mean: Option<f64>,
    /// Their sample standard deviation (none when one is infinite or fewer than two).
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "crate::metrics::metric_value_schema")]
    pub sd: Option<f64>,
    /// The smallest.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "crate::metrics::metric_value_schema")]
    pub min: Option<f64>,
    /// The largest.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "crate::metrics::metric_value_schema")]
    pub max: Option<f64>,
}

fn ser_values<S: serde::Serializer>(v: &[Option<f64>], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for x in v {
        seq.serialize_element(&fmt_json(*x))?;
    }
    seq.end()
}

fn fmt_json(x: Option<f64>) -> serde_json::Value {
    match x {
        Some(x) if x.is_finite() => serde_json::json!(x),
        Some(x) => serde_json::json!(fmt_value(Some(x))),
        None => serde_json::Value::Null,
    }
}

impl Spread {
    /// The spread of `values` (replicates without a value are left out of the mean and range).
    pub fn of(values: Vec<Option<f64>>) -> Spread {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        let fold = |f: fn(f64, f64) -> f64| present.iter().copied().reduce(f);
        Spread {
            mean: crate::metrics::stats::mean(&present),
            sd: crate::metrics::stats::sample_sd(&present),
            min: fold(f64::min),
            max: fold(f64::max),
            values,
        }
    }

    /// The largest minus the smallest.
    pub fn range(&self) -> Option<f64> {
        Some(self.max? - self.min?)
    }
}

/// A paired test on per-case values averaged over the replicates.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PooledTest {
    /// The test on the averaged values.
    #[serde(flatten)]
    pub averaged: TestResult,
    /// Each replicate's own Holm-adjusted P value of the same test.
    #[schemars(with = "Vec<serde_json::Value>")]
    #[serde(serialize_with = "ser_values")]
    pub p_replicates: Vec<Option<f64>>,
}

/// One replicate's runs of one domain: each method's per-case table, in plan order.
pub type DomainRuns = Vec<(Method, ResultsTable)>;

/// The spread of `domain` over `replicates` (each replicate's summaries, with its per-case
/// tables), the tests those summaries hold redone on the cases' averaged values.
pub fn domain_spread(domain: &Domain, replicates: &[(&DomainResult, &DomainRuns)]) -> Result<DomainSpread, Error> {
    let Some((first, first_runs)) = replicates.first() else {
        return Err(Error::Config {
            field: "replicates",
            reason: "must be at least 1".into(),
        });
    };
    let median = |r: &DomainResult, i: usize, metric: usize| r.methods[i].metrics[metric].summary.map(|s| s.median);
    let methods = (first.methods.iter().enumerate())
        .map(|(i, m)| MethodSpread {
            method: m.method.clone(),
            dsc: Spread::of(replicates.iter().map(|(r, _)| median(r, i, 0)).collect()),
            hd95: Spread::of(replicates.iter().map(|(r, _)| median(r, i, 1)).collect()),
            failures: replicates.iter().map(|(r, _)| r.methods[i].failures).collect(),
            tumour_slices: m.labelled.as_ref().map(|_| {
                let count = |r: &DomainResult| r.methods[i].labelled.as_ref().map(|l| l.total.tumour_slices as f64);
                Spread::of(replicates.iter().map(|(r, _)| count(r)).collect())
            }),
        })
        .collect();
    let averaged: Vec<(Method, ResultsTable)> = (first_runs.iter().enumerate())
        .map(|(i, (m, _))| {
            let tables: Vec<&ResultsTable> = replicates.iter().map(|(_, runs)| &runs[i].1).collect();
            Ok((m.clone(), average(&tables)?))
        })
        .collect::<Result<_, Error>>()?;
    let index = |name: &str| first_runs.iter().position(|(m, _)| m.id() == name);
    let pairs: Vec<(usize, usize)> = (first.tests.iter())
        .filter(|t| t.metric == REPORTED[0])
        .filter_map(|t| index(&t.method).zip(index(&t.versus)))
        .collect();
    let pooled = stats::domain_result(domain, &averaged, &pairs)?;
    let tests = (pooled.tests.into_iter())
        .map(|t| PooledTest {
            p_replicates: replicates
                .iter()
                .map(|(r, _)| r.p(&t.metric, &t.method, &t.versus))
                .collect(),
            averaged: t,
        })
        .collect();
    Ok(DomainSpread {
        domain: domain.id.clone(),
        methods,
        tests,
    })
}

/// The first table with each reported metric replaced by its mean over `tables`, case by case
/// (matched by case and rater): undefined where any replicate leaves it undefined, infinite
/// where any is infinite.
fn average(tables: &[&ResultsTable]) -> Result<ResultsTable, Error> {
    let first = tables[0];
    let keys = |t: &ResultsTable| -> Result<BTreeMap<(String, String), usize>, Error> {
        let (c, r) = (t.column("case")?, t.column("rater").ok());
        Ok((t.rows.iter().enumerate())
            .map(|(n, row)| ((row[c].clone(), r.map(|r| row[r].clone()).unwrap_or_default()), n))
            .collect())
    };
    let all_keys = tables.iter().map(|t| keys(t)).collect::<Result<Vec<_>, Error>>()?;
    let mut out = first.clone();
    for metric in REPORTED {
        let col = first.column(metric)?;
        for (key, &row) in &all_keys[0] {
            let mut values = Vec::new();
            for (t, k) in tables.iter().zip(&all_keys) {
                let n = *k.get(key).ok_or_else(|| Error::Table {
                    path: t.path.clone(),
                    reason: format!(
                        "no case {:?} (rater {:?}), which {} has",
                        key.0,
                        key.1,
                        first.path.display()
                    ),
                })?;
                values.push(t.value(n, t.column(metric)?)?);
            }
            let mean = values
                .iter()
                .copied()
                .collect::<Option<Vec<f64>>>()
                .and_then(|v| crate::metrics::stats::mean(&v));
            out.rows[row][col] = fmt_value(mean);
        }
    }
    Ok(out)
}
