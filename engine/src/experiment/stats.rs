//! Statistics of an experiment's runs, from their per-case tables: per domain and method,
//! median [IQR] of each reported metric over the test cases, and paired Wilcoxon
//! signed-rank tests (scipy's defaults) against supervised and against STDR.
//!
//! Failures stay in: a case with one mask empty has DSC 0 and infinite distances, which sort
//! last (a median may be `inf`). Cases where a metric is undefined (both masks empty: no
//! distance) are counted, not summarised, and left out of that metric's pairs. Holm's
//! correction runs over the tests of one domain and one metric (the "family").

use serde::Serialize;

use super::labelled::{Labelled, TumourCount};
use super::{Domain, Error, Method};
use crate::metrics::stats::{self, Summary};
use crate::metrics::wilcoxon::{self, Wilcoxon};
use crate::metrics::{self, ser_value, Outcome, ResultsTable, ALL_CENTRES};

/// The metrics of the tables: DSC, HD95 (pooled convention), ASSD, NSD at 2 mm.
pub const REPORTED: [&str; 4] = ["dsc", "hd95", "assd", "nsd"];

/// One metric of one method.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MetricResult {
    /// Metric name (a column of the per-case tables).
    pub metric: String,
    /// Median [IQR], mean ± SD over the cases where the metric is defined (failures' `inf`
    /// included); `None` when there is none.
    pub summary: Option<Summary>,
    /// Evaluated cases where the metric is undefined (both masks empty).
    pub undefined: usize,
}

/// One method on one domain.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MethodResult {
    /// The method id.
    pub method: String,
    /// The method's query and adaptation.
    #[serde(flatten)]
    pub strategies: Method,
    /// Test cases evaluated.
    pub cases: usize,
    /// Evaluated cases with one mask empty (kept in every summary).
    pub failures: usize,
    /// Test cases that could not be evaluated (unreadable files).
    pub errors: usize,
    /// DSC, HD95, ASSD and NSD, in that order ([`REPORTED`]).
    pub metrics: Vec<MetricResult>,
    /// What the method's query labelled (`None` without a query).
    pub labelled: Option<Labelled>,
}

/// A paired comparison of two methods on one metric of one domain.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TestResult {
    /// Metric.
    pub metric: String,
    /// The method tested (A).
    pub method: String,
    /// What it is compared with (B): `supervised` or an STDR method.
    pub versus: String,
    /// Pairs with the metric defined for both.
    pub n: usize,
    /// Pairs left out because the metric is undefined for either.
    pub excluded: usize,
    /// Median of the differences A - B.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "crate::metrics::metric_value_schema")]
    pub median_difference: Option<f64>,
    /// The test; `None` without pairs (or, above 50 pairs, when every difference is zero).
    pub test: Option<Wilcoxon>,
    /// Holm-adjusted P value within the domain's tests of this metric.
    #[serde(serialize_with = "ser_value")]
    #[schemars(schema_with = "crate::metrics::metric_value_schema")]
    pub p_holm: Option<f64>,
}

/// Everything reported for one domain.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DomainResult {
    /// The domain.
    pub domain: Domain,
    /// One entry per method, in plan order.
    pub methods: Vec<MethodResult>,
    /// Every test, grouped by metric.
    pub tests: Vec<TestResult>,
    /// The slices the domain's queries chose from (its training split) and how many hold tumour.
    pub pool: Option<TumourCount>,
    /// The labelled validation volumes that picked each label-using adaptation's checkpoint
    /// (`None` when the last weights were kept): labels the hospital draws beyond the budget.
    pub validation: Option<ValidationLabels>,
}

/// The validation labels an experiment used to pick checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ValidationLabels {
    /// Validation volumes.
    pub volumes: usize,
    /// Their axial slices.
    #[serde(flatten)]
    pub slices: TumourCount,
}

impl DomainResult {
    /// The Holm-adjusted P value of `method` against `versus` on `metric`, when tested.
    pub fn p(&self, metric: &str, method: &str, versus: &str) -> Option<f64> {
        let t = self
            .tests
            .iter()
            .find(|t| t.metric == metric && t.method == method && t.versus == versus)?;
        t.p_holm
    }
}

/// Summaries of one run's per-case table.
pub fn method_result(method: &Method, table: &ResultsTable) -> Result<MethodResult, Error> {
    let outcome = table.column("outcome")?;
    let evaluated = [Outcome::Ok, Outcome::BothEmpty, Outcome::PredEmpty, Outcome::GtEmpty];
    let is = |row: &[String], set: &[Outcome]| set.iter().any(|o| o.as_str() == row[outcome]);
    let rows: Vec<usize> = (0..table.rows.len())
        .filter(|&r| is(&table.rows[r], &evaluated))
        .collect();
    let failures = rows
        .iter()
        .filter(|&&r| is(&table.rows[r], &[Outcome::PredEmpty, Outcome::GtEmpty]))
        .count();
    let mut metrics = Vec::new();
    for name in REPORTED {
        let col = table.column(name)?;
        let mut values = Vec::new();
        for &r in &rows {
            values.extend(table.value(r, col)?);
        }
        metrics.push(MetricResult {
            metric: name.into(),
            summary: stats::summarize(&values),
            undefined: rows.len() - values.len(),
        });
    }
    Ok(MethodResult {
        method: method.id(),
        strategies: method.clone(),
        cases: rows.len(),
        failures,
        errors: table.rows.len() - rows.len(),
        metrics,
        labelled: None,
    })
}

/// The pairs `(method, versus)` to test, as indices into `methods`: every method against
/// supervised, and against `partner(method)` when that is in `methods`; a pair is tested once
/// whichever way round it comes.
pub fn comparison_pairs(methods: &[Method], partner: impl Fn(&Method) -> Option<Method>) -> Vec<(usize, usize)> {
    let index = |m: &Method| methods.iter().position(|x| x == m);
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        for j in [index(&Method::supervised()), partner(m).and_then(|p| index(&p))]
            .into_iter()
            .flatten()
        {
            if i != j && !pairs.contains(&(i, j)) && !pairs.contains(&(j, i)) {
                pairs.push((i, j));
            }
        }
    }
    pairs
}

/// The domain's summaries and tests; `runs` holds each method's per-case table, in plan
/// order, and `pairs` indexes into it ([`comparison_pairs`]).
pub fn domain_result(
    domain: &Domain,
    runs: &[(Method, ResultsTable)],
    pairs: &[(usize, usize)],
) -> Result<DomainResult, Error> {
    let methods = runs
        .iter()
        .map(|(m, t)| method_result(m, t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tests = Vec::new();
    for metric in REPORTED {
        let first = tests.len();
        for &(a, b) in pairs {
            tests.push(test(metric, &runs[a], &runs[b])?);
        }
        holm(&mut tests[first..]);
    }
    Ok(DomainResult {
        domain: domain.clone(),
        methods,
        tests,
        pool: None,
        validation: None,
    })
}

/// The paired test of `a` against `b` on `metric`, cases paired by id.
fn test(metric: &str, a: &(Method, ResultsTable), b: &(Method, ResultsTable)) -> Result<TestResult, Error> {
    let (rows, _) = metrics::compare(&a.1, &b.1, &[metric.to_string()], wilcoxon::Options::default())?;
    let row = rows.into_iter().find(|r| r.centre == ALL_CENTRES);
    Ok(TestResult {
        metric: metric.into(),
        method: a.0.id(),
        versus: b.0.id(),
        n: row.as_ref().map_or(0, |r| r.n),
        excluded: row.as_ref().map_or(0, |r| r.excluded),
        median_difference: row.as_ref().and_then(|r| r.median_difference),
        test: row.and_then(|r| r.test),
        p_holm: None,
    })
}

/// Holm's step-down adjustment over the tests that have a P value.
fn holm(tests: &mut [TestResult]) {
    let tested: Vec<usize> = (0..tests.len()).filter(|&i| tests[i].test.is_some()).collect();
    let p: Vec<f64> = tested
        .iter()
        .filter_map(|&i| tests[i].test.map(|t| t.p_value))
        .collect();
    for (&i, adjusted) in tested.iter().zip(wilcoxon::holm(&p)) {
        tests[i].p_holm = Some(adjusted);
    }
}
