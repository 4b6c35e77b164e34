//! Metrics over a manifest's cases (`delinea evaluate`), per-centre summaries, result tables
//! as CSV, and paired comparisons of two tables (`delinea compare`).
//!
//! Result table (CSV, one row per case): `case,centre,rater,outcome,<METRIC_NAMES...>,
//! nsd_tolerance_mm,prediction,message`. `outcome` is a metric [`Outcome`](super::Outcome)
//! or `missing_prediction`, `no_label`, `error`; undefined values are empty fields, infinite
//! ones `inf`. Summaries never drop a case: failures (one mask empty, distances `inf`) stay
//! in the medians, undefined values (both empty) and cases without a prediction are counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::{Manifest, Split};

use super::stats::{self, Summary};
use super::wilcoxon::{self, Wilcoxon};
use super::{compute_files, Error, Metrics, Options, METRIC_NAMES};

/// Which split's cases to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitFilter {
    /// Every case.
    All,
    /// One split; by default `test`.
    Only(Split),
}

impl Default for SplitFilter {
    fn default() -> SplitFilter {
        SplitFilter::Only(Split::Test)
    }
}

impl SplitFilter {
    fn keeps(self, s: Split) -> bool {
        match self {
            SplitFilter::All => true,
            SplitFilter::Only(x) => x == s,
        }
    }
}

/// Options of [`evaluate`].
#[derive(Debug, Clone, Default)]
pub struct EvaluateOptions {
    /// Metric options (tolerance, label).
    pub metrics: Options,
    /// Ground truth from this rater; by default the manifest's reference label of each case.
    pub rater: Option<String>,
    /// Cases evaluated.
    pub split: SplitFilter,
}

/// What happened to one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Metrics computed.
    Evaluated(Box<Metrics>),
    /// No `<case>.nii.gz` or `<case>.nii` in the prediction folder.
    MissingPrediction,
    /// The case has no ground truth for the rater asked (or no reference label).
    NoLabel,
    /// A file could not be read, or the grids differ.
    Error(String),
}

/// One row of a result table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// Case id.
    pub case: String,
    /// Centre id.
    pub centre: String,
    /// Rater whose label is the ground truth (empty when none).
    pub rater: String,
    /// The prediction file, when found.
    pub prediction: Option<PathBuf>,
    /// What happened.
    pub status: CaseStatus,
}

impl CaseResult {
    /// `outcome` column.
    pub fn outcome(&self) -> &'static str {
        match &self.status {
            CaseStatus::Evaluated(m) => m.outcome.as_str(),
            CaseStatus::MissingPrediction => "missing_prediction",
            CaseStatus::NoLabel => "no_label",
            CaseStatus::Error(_) => "error",
        }
    }
}

/// `dir/<case>.nii.gz`, else `dir/<case>.nii`, if either exists.
pub fn find_prediction(dir: &Path, case: &str) -> Option<PathBuf> {
    [format!("{case}.nii.gz"), format!("{case}.nii")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Metrics of every selected case of `manifest` against `pred_dir/<case>.nii[.gz]`, in manifest
/// order, computed in parallel. Per-case problems become rows, not errors.
pub fn evaluate(manifest: &Manifest, pred_dir: &Path, options: &EvaluateOptions) -> Vec<CaseResult> {
    let cases: Vec<_> = manifest
        .cases()
        .iter()
        .filter(|c| options.split.keeps(c.split))
        .collect();
    cases
        .par_iter()
        .map(|case| {
            let label = manifest.label(case, options.rater.as_deref());
            let mut row = CaseResult {
                case: case.id.clone(),
                centre: case.centre.clone(),
                rater: label
                    .map(|l| l.0.to_string())
                    .or_else(|| options.rater.clone())
                    .unwrap_or_default(),
                prediction: find_prediction(pred_dir, &case.id),
                status: CaseStatus::NoLabel,
            };
            let Some((_, gt)) = label else { return row };
            row.status = match &row.prediction {
                None => CaseStatus::MissingPrediction,
                Some(p) => match compute_files(p, gt, &options.metrics) {
                    Ok(m) => CaseStatus::Evaluated(Box::new(m)),
                    Err(e) => CaseStatus::Error(e.to_string()),
                },
            };
            row
        })
        .collect()
}

/// A metric value as a result table writes it: empty when undefined, `inf`/`-inf`, else the
/// shortest decimal that reads back to the same `f64`.
pub fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(x) if x == f64::INFINITY => "inf".into(),
        Some(x) if x == f64::NEG_INFINITY => "-inf".into(),
        Some(x) => format!("{x}"),
    }
}

/// A value written by [`fmt_value`] read back (`""`, `null`, `nan`: undefined); the error says
/// what is not a number.
pub fn parse_value(s: &str) -> Result<Option<f64>, String> {
    match s.trim() {
        "" | "null" | "nan" | "NaN" => Ok(None),
        "inf" | "+inf" | "Infinity" => Ok(Some(f64::INFINITY)),
        "-inf" | "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
        t => t.parse::<f64>().map(Some).map_err(|_| format!("not a number: {t:?}")),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV record (RFC 4180 quoting where needed) with its newline.
pub fn csv_line(fields: &[String]) -> String {
    let mut l = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    l.push('\n');
    l
}

/// The result table as CSV text.
pub fn results_csv(rows: &[CaseResult]) -> String {
    let mut header: Vec<String> = ["case", "centre", "rater", "outcome"].map(String::from).to_vec();
    header.extend(METRIC_NAMES.iter().map(|s| s.to_string()));
    header.extend(["nsd_tolerance_mm", "prediction", "message"].map(String::from));
    let mut out = csv_line(&header);
    for r in rows {
        let mut f = vec![
            r.case.clone(),
            r.centre.clone(),
            r.rater.clone(),
            r.outcome().to_string(),
        ];
        match &r.status {
            CaseStatus::Evaluated(m) => {
                f.extend(METRIC_NAMES.iter().map(|n| fmt_value(m.get(n).flatten())));
                f.push(fmt_value(Some(m.tolerance_mm)));
            }
            _ => f.extend(std::iter::repeat_n(String::new(), METRIC_NAMES.len() + 1)),
        }
        f.push(
            r.prediction
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        f.push(match &r.status {
            CaseStatus::Error(e) => e.clone(),
            _ => String::new(),
        });
        out.push_str(&csv_line(&f));
    }
    out
}

/// The centre name of the all-centres summary rows.
pub const ALL_CENTRES: &str = "all";

/// Summary of one metric at one centre.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSummary {
    /// Centre id, or [`ALL_CENTRES`].
    pub centre: String,
    /// Metric name.
    pub metric: String,
    /// Median [IQR], mean ± SD over the defined values (failures' `inf` included);
    /// `None` without any.
    pub summary: Option<Summary>,
    /// Cases evaluated.
    pub cases: usize,
    /// Evaluated cases with one mask empty (always included in `summary`).
    pub failures: usize,
    /// Evaluated cases where the metric is undefined (e.g. distances when both are empty).
    pub undefined: usize,
    /// Cases without a prediction file.
    pub missing: usize,
    /// Cases whose files could not be read.
    pub errors: usize,
}

/// Per-centre summaries (centres sorted, then [`ALL_CENTRES`]) of every metric in `metrics`.
pub fn summarize_by_centre(rows: &[CaseResult], metrics: &[&str]) -> Vec<MetricSummary> {
    let mut centres: Vec<&str> = rows
        .iter()
        .map(|r| r.centre.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    centres.push(ALL_CENTRES);
    let mut out = Vec::new();
    for centre in centres {
        let sel: Vec<&CaseResult> = rows
            .iter()
            .filter(|r| centre == ALL_CENTRES || r.centre == centre)
            .collect();
        let count = |f: &dyn Fn(&CaseStatus) -> bool| sel.iter().filter(|r| f(&r.status)).count();
        let missing = count(&|s| matches!(s, CaseStatus::MissingPrediction));
        let errors = count(&|s| matches!(s, CaseStatus::Error(_)));
        let failures = count(&|s| matches!(s, CaseStatus::Evaluated(m) if m.outcome.is_failure()));
        for metric in metrics {
            let mut values = Vec::new();
            let (mut cases, mut undefined) = (0, 0);
            for r in &sel {
                if let CaseStatus::Evaluated(m) = &r.status {
                    cases += 1;
                    match m.get(metric).flatten() {
                        Some(v) => values.push(v),
                        None => undefined += 1,
                    }
                }
            }
            out.push(MetricSummary {
                centre: centre.to_string(),
                metric: metric.to_string(),
                summary: stats::summarize(&values),
                cases,
                failures,
                undefined,
                missing,
                errors,
            });
        }
    }
    out
}

/// Summaries as CSV text.
pub fn summary_csv(summaries: &[MetricSummary]) -> String {
    let header = "centre,metric,n,median,q1,q3,mean,sd,cases,failures,undefined,missing,errors"
        .split(',')
        .map(String::from)
        .collect::<Vec<_>>();
    let mut out = csv_line(&header);
    for s in summaries {
        let x = s.summary;
        out.push_str(&csv_line(&[
            s.centre.clone(),
            s.metric.clone(),
            x.map_or(0, |x| x.n).to_string(),
            fmt_value(x.map(|x| x.median)),
            fmt_value(x.map(|x| x.q1)),
            fmt_value(x.map(|x| x.q3)),
            fmt_value(x.map(|x| x.mean)),
            fmt_value(x.and_then(|x| x.sd)),
            s.cases.to_string(),
            s.failures.to_string(),
            s.undefined.to_string(),
            s.missing.to_string(),
            s.errors.to_string(),
        ]));
    }
    out
}

/// A result table read back from CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsTable {
    /// The file.
    pub path: PathBuf,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each as many fields as columns.
    pub rows: Vec<Vec<String>>,
}

impl ResultsTable {
    /// The metric value in row `row` (0-based, header excluded), column `col`; the error names
    /// the file and line.
    pub fn value(&self, row: usize, col: usize) -> Result<Option<f64>, Error> {
        parse_value(&self.rows[row][col]).map_err(|reason| Error::Table {
            path: self.path.clone(),
            line: row + 2,
            reason,
        })
    }

    /// The index of column `name`; the error lists the columns there are.
    pub fn column(&self, name: &str) -> Result<usize, Error> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| Error::Table {
            path: self.path.clone(),
            line: 1,
            reason: format!("no column {name:?} (columns: {})", self.columns.join(", ")),
        })
    }
}

/// Splits CSV text into records (RFC 4180 quoting).
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, (usize, String)> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut line, mut at_start) = (false, 1usize, true);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                line += 1;
                at_start = true;
                continue;
            }
            _ => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err((line, "unterminated quoted field".into()));
    }
    if !at_start || !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// Reads a result table written by [`results_csv`] (or any CSV with `case` and the metric
/// columns asked for).
pub fn read_results(path: &Path) -> Result<ResultsTable, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let mut records = parse_csv(&text)
        .map_err(|(line, reason)| Error::Table {
            path: path.into(),
            line,
            reason,
        })?
        .into_iter();
    let columns = records.next().ok_or_else(|| Error::Table {
        path: path.into(),
        line: 1,
        reason: "empty file".into(),
    })?;
    let mut rows = Vec::new();
    for (n, r) in records.enumerate() {
        if r.len() == 1 && r[0].is_empty() {
            continue;
        }
        if r.len() != columns.len() {
            return Err(Error::Table {
                path: path.into(),
                line: n + 2,
                reason: format!("{} fields, the header has {}", r.len(), columns.len()),
            });
        }
        rows.push(r);
    }
    let table = ResultsTable {
        path: path.into(),
        columns,
        rows,
    };
    table.column("case")?;
    Ok(table)
}

/// One paired comparison: metric `metric` at `centre`, table A minus table B.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Metric name.
    pub metric: String,
    /// Centre id, or [`ALL_CENTRES`].
    pub centre: String,
    /// Pairs with the metric defined in both tables.
    pub n: usize,
    /// Pairs left out because the metric is undefined in either table.
    pub excluded: usize,
    /// Median of A.
    #[serde(serialize_with = "super::ser_value")]
    pub median_a: Option<f64>,
    /// Median of B.
    #[serde(serialize_with = "super::ser_value")]
    pub median_b: Option<f64>,
    /// Median of the differences A - B (both infinite: difference 0).
    #[serde(serialize_with = "super::ser_value")]
    pub median_difference: Option<f64>,
    /// The test; `None` when it cannot be computed (no pairs, or all differences zero).
    pub test: Option<Wilcoxon>,
    /// Holm-adjusted P value across every comparison made.
    #[serde(serialize_with = "super::ser_value")]
    pub p_holm: Option<f64>,
}

/// Paired Wilcoxon tests of `a` against `b` for each metric, per centre (centre taken from A)
/// and over all centres, pairing rows by case id and rater. Holm's correction runs across every
/// comparison returned. Also returns how many rows of A and of B found no partner.
pub fn compare(
    a: &ResultsTable,
    b: &ResultsTable,
    metrics: &[String],
    options: wilcoxon::Options,
) -> Result<(Vec<Comparison>, [usize; 2]), Error> {
    let key = |t: &ResultsTable| -> Result<BTreeMap<(String, String), usize>, Error> {
        let (c, r) = (t.column("case")?, t.column("rater").ok());
        let mut m = BTreeMap::new();
        for (n, row) in t.rows.iter().enumerate() {
            let k = (row[c].clone(), r.map(|r| row[r].clone()).unwrap_or_default());
            if m.insert(k.clone(), n).is_some() {
                return Err(Error::Table {
                    path: t.path.clone(),
                    line: n + 2,
                    reason: format!("case {:?} rater {:?} appears twice", k.0, k.1),
                });
            }
        }
        Ok(m)
    };
    let (ka, kb) = (key(a)?, key(b)?);
    let pairs: Vec<(usize, usize)> = ka.iter().filter_map(|(k, &ia)| kb.get(k).map(|&ib| (ia, ib))).collect();
    let unpaired = [ka.len() - pairs.len(), kb.len() - pairs.len()];
    let centre_col = a.column("centre").ok();
    let centre_of = |ia: usize| centre_col.map(|c| a.rows[ia][c].clone()).unwrap_or_default();
    let mut centres: Vec<String> = pairs
        .iter()
        .map(|&(ia, _)| centre_of(ia))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if centres.len() != 1 || centres[0] != ALL_CENTRES {
        centres.push(ALL_CENTRES.to_string());
    }
    let mut out = Vec::new();
    for metric in metrics {
        let (ca, cb) = (a.column(metric)?, b.column(metric)?);
        for centre in &centres {
            let (mut va, mut vb, mut d) = (Vec::new(), Vec::new(), Vec::new());
            let mut excluded = 0;
            for &(ia, ib) in pairs
                .iter()
                .filter(|&&(ia, _)| centre == ALL_CENTRES || centre_of(ia) == *centre)
            {
                match (a.value(ia, ca)?, b.value(ib, cb)?) {
                    (Some(x), Some(y)) => {
                        va.push(x);
                        vb.push(y);
                        d.push(if x == y { 0.0 } else { x - y });
                    }
                    _ => excluded += 1,
                }
            }
            out.push(Comparison {
                metric: metric.clone(),
                centre: centre.clone(),
                n: d.len(),
                excluded,
                median_a: stats::median(&va),
                median_b: stats::median(&vb),
                median_difference: stats::median(&d),
                test: wilcoxon::wilcoxon_differences(&d, options),
                p_holm: None,
            });
        }
    }
    let tested: Vec<usize> = (0..out.len()).filter(|&i| out[i].test.is_some()).collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| out[i].test.map(|t| t.p_value)).collect();
    for (&i, adj) in tested.iter().zip(wilcoxon::holm(&p)) {
        out[i].p_holm = Some(adj);
    }
    Ok((out, unpaired))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_with_quotes() {
        let text = "case,centre,x\n\"a,1\",c,\"say \"\"hi\"\"\"\nb,c,\n";
        let r = parse_csv(text).unwrap();
        assert_eq!(
            r,
            vec![
                vec!["case", "centre", "x"],
                vec!["a,1", "c", "say \"hi\""],
                vec!["b", "c", ""]
            ]
        );
        assert_eq!(csv_field("a,1"), "\"a,1\"");
    }

    #[test]
    fn values_parse_back() {
        for v in [None, Some(f64::INFINITY), Some(0.1 + 0.2), Some(-3.5e-9)] {
            assert_eq!(parse_value(&fmt_value(v)).unwrap(), v);
        }
        assert!(parse_value("x").is_err());
    }
}
