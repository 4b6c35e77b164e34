//! The experiment's tables: `table.md` (for people), `table.csv` (one row per domain and
//! method, full precision), `results.json` ([`Results`]) and the pooled per-case
//! `cases.csv`.

use serde::Serialize;

use super::stats::{DomainResult, MethodResult, REPORTED};
use super::Error;
use crate::metrics::{csv_line, fmt_value, results_csv, ResultsTable};

/// `results.json` (`data-schema/experiment-results.schema.json`): every summary and test of an
/// experiment.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Results {
    /// Always `"delinea-experiment-results"`.
    pub format: &'static str,
    /// Layout version (1).
    pub format_version: u32,
    /// The engine's version.
    pub delinea: &'static str,
    /// The git commit the engine was built from (`+changes`: with uncommitted changes).
    pub commit: &'static str,
    /// The CPU that computed the results, with the instruction set of its matrix products,
    /// e.g. `Intel(R) Xeon(R) Platinum 8488C (AVX-512)`: tables from CPUs that differ here may
    /// differ in their floating-point detail.
    pub cpu: String,
    /// The source centre.
    pub source: String,
    /// The labelling budget, as configured.
    pub budget: String,
    /// `slice` or `volume`.
    pub unit: crate::strategy::query::Unit,
    /// Which HD95: `pooled` (95th percentile of both directions' distances pooled).
    pub hd95: &'static str,
    /// NSD tolerance, mm.
    pub nsd_tolerance_mm: f64,
    /// Per domain, in the order given.
    pub domains: Vec<DomainResult>,
}

/// What `table.md` says above the table.
pub const LEGEND: &str = "Median [IQR] over each domain's test cases. HD95: pooled convention \
(95th percentile, linear interpolation, of both directions' surface distances pooled, as medpy \
and the paper's code); distances in mm; NSD at 2 mm. A failure (one mask empty) counts with \
DSC 0 and infinite distances and stays in every median. P: paired two-sided Wilcoxon \
signed-rank test of DSC (scipy's defaults), Holm-corrected within each domain; \"vs STDR\" is \
against STDR with the same adaptation (methods without a query: with the first label-using adaptation listed); \"-\": \
not tested, or no P value (no case with the metric defined for both).";

/// `table.md`: a title, the legend, the table, and what each query labelled.
pub fn markdown(results: &Results) -> String {
    format!(
        "# delinea experiment\n\n{}; {} target domains.\n\n{LEGEND}\n\n{}\n{}",
        provenance(results),
        results.domains.len(),
        markdown_table(&results.domains),
        labelled_section(&results.domains)
    )
}

/// `Measured with delinea 0.1.0 at commit … on <CPU> (<SIMD>); source C1; budget 20% of each
/// target's training slices`.
fn provenance(results: &Results) -> String {
    let unit = match results.unit {
        crate::strategy::query::Unit::Slice => "slices",
        crate::strategy::query::Unit::Volume => "volumes",
    };
    format!(
        "Measured with delinea {} at commit {} on {}; source {}; budget {} of each target's training {unit}",
        results.delinea, results.commit, results.cpu, results.source, results.budget
    )
}

/// `summary.md`: median test DSC [IQR] per domain (rows) and method (columns), then what each
/// query labelled, then the validation labels — the form the README shows the demo's results
/// in, so that regenerating them is one copy.
pub fn summary(results: &Results) -> String {
    let Some(first) = results.domains.first() else {
        return format!("{}.\n", provenance(results));
    };
    let methods: Vec<&str> = first.methods.iter().map(|m| m.method.as_str()).collect();
    let mut out = format!(
        "{}.\n\nMedian test DSC [IQR] per domain ({} test cases each; a failure, one mask empty, counts DSC 0):\n\n",
        provenance(results),
        first.methods.first().map_or(0, |m| m.cases)
    );
    out.push_str(&format!(
        "| domain | {} |\n|---|{}\n",
        methods.join(" | "),
        "---|".repeat(methods.len())
    ));
    for d in &results.domains {
        let cells: Vec<String> = (d.methods.iter())
            .map(|m| {
                let dsc = m.metrics.first().and_then(|r| r.summary);
                let cell = median_iqr(dsc.map(|s| [s.median, s.q1, s.q3]), 3);
                match m.failures {
                    0 => cell,
                    1 => format!("{cell} (1 failure)"),
                    n => format!("{cell} ({n} failures)"),
                }
            })
            .collect();
        out.push_str(&format!("| {} | {} |\n", d.domain.id, cells.join(" | ")));
    }
    out.push('\n');
    out.push_str(&labelled_section(&results.domains));
    out
}

/// Tumour slices among those each query labelled, per domain, beside the pool's; and the
/// validation labels that picked the checkpoints, when they did.
fn labelled_section(domains: &[DomainResult]) -> String {
    let Some(first) = domains.first() else {
        return String::new();
    };
    // One column per query: its selection is the same for every adaptation.
    let mut queries: Vec<&str> = Vec::new();
    for m in &first.methods {
        if let Some(q) = m.strategies.query.as_deref().filter(|q| !queries.contains(q)) {
            queries.push(q);
        }
    }
    let mut out = String::new();
    if !queries.is_empty() {
        out.push_str("Tumour slices / slices each query labelled (per reason where it has several), and in the pool it chose from:\n\n");
        out.push_str(&format!(
            "| domain | pool | {} |\n|---|---|{}\n",
            queries.join(" | "),
            "---|".repeat(queries.len())
        ));
        for d in domains {
            let pool = d
                .pool
                .map_or("-".into(), |p| format!("{}/{}", p.tumour_slices, p.slices));
            let cells: Vec<String> = (queries.iter())
                .map(|q| {
                    let l = d.methods.iter().find(|m| m.strategies.query.as_deref() == Some(q));
                    l.and_then(|m| m.labelled.as_ref()).map_or("-".into(), labelled_cell)
                })
                .collect();
            out.push_str(&format!("| {} | {pool} | {} |\n", d.domain.id, cells.join(" | ")));
        }
        out.push('\n');
    }
    let validation: Vec<String> = (domains.iter())
        .filter_map(|d| {
            let v = d.validation?;
            Some(format!(
                "{} {} volumes ({} slices)",
                d.domain.id, v.volumes, v.slices.slices
            ))
        })
        .collect();
    if !validation.is_empty() {
        out.push_str(&format!(
            "Every label-using adaptation (and supervised) kept its best checkpoint on the domain's validation \
             split, labels the hospital draws beyond the budget: {}.\n",
            validation.join(", ")
        ));
    }
    out
}

/// `50/125 (far 41/63, near 9/62)`: tumour slices / slices labelled, per reason when several.
fn labelled_cell(l: &super::labelled::Labelled) -> String {
    let total = format!("{}/{}", l.total.tumour_slices, l.total.slices);
    if l.by_reason.len() < 2 {
        return total;
    }
    let parts: Vec<String> = (l.by_reason.iter())
        .map(|r| {
            let name = serde_json::to_value(r.reason)
                .ok()
                .and_then(|v| v.as_str().map(String::from));
            let name = name.unwrap_or_default();
            format!("{name} {}/{}", r.count.tumour_slices, r.count.slices)
        })
        .collect();
    format!("{total} ({})", parts.join(", "))
}

/// The Markdown table: one row per domain and method.
pub fn markdown_table(domains: &[DomainResult]) -> String {
    let mut out = String::from(
        "| domain | method | cases | failures | DSC | HD95 (mm) | ASSD (mm) | NSD 2 mm | P vs supervised | P vs STDR |\n\
         |---|---|--:|--:|---|---|---|---|--:|--:|\n",
    );
    for d in domains {
        for m in &d.methods {
            let cells: Vec<String> = [3, 2, 2, 3]
                .iter()
                .zip(&m.metrics)
                .map(|(digits, r)| median_iqr(r.summary.map(|s| [s.median, s.q1, s.q3]), *digits))
                .collect();
            let versus = |v: Option<String>| fmt_p(v.and_then(|v| d.p("dsc", &m.method, &v)));
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                d.domain.id,
                m.method,
                m.cases,
                m.failures,
                cells.join(" | "),
                versus(Some("supervised".into())),
                versus(stdr_partner(d, m)),
            ));
        }
    }
    out
}

/// The STDR method `m` was tested against, if any.
fn stdr_partner(d: &DomainResult, m: &MethodResult) -> Option<String> {
    d.tests
        .iter()
        .find(|t| t.method == m.method && t.versus != "supervised")
        .map(|t| t.versus.clone())
}

/// `median [q1, q3]` with `digits` decimals; `inf` for infinite values, `-` without values.
fn median_iqr(v: Option<[f64; 3]>, digits: usize) -> String {
    let f = |x: f64| {
        if x.is_infinite() {
            "inf".to_string()
        } else {
            format!("{x:.digits$}")
        }
    };
    match v {
        Some([m, a, b]) => format!("{} [{}, {}]", f(m), f(a), f(b)),
        None => "-".into(),
    }
}

/// A P value to three decimals, `<0.001` below that, `-` when not tested.
fn fmt_p(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.001 => "<0.001".into(),
        Some(p) => format!("{p:.3}"),
        None => "-".into(),
    }
}

/// `table.csv`: domain, method, query, adapt, cases, failures, then `<metric>_median`,
/// `_q1`, `_q3` per metric, then `p_<metric>_vs_supervised` and `p_<metric>_vs_stdr`
/// (Holm-adjusted) per metric; empty where undefined, `inf` where infinite.
pub fn table_csv(domains: &[DomainResult]) -> String {
    let mut header: Vec<String> = ["domain", "method", "query", "adapt", "cases", "failures"]
        .map(String::from)
        .to_vec();
    for m in REPORTED {
        header.extend(["median", "q1", "q3"].map(|s| format!("{m}_{s}")));
    }
    for m in REPORTED {
        header.extend(["supervised", "stdr"].map(|s| format!("p_{m}_vs_{s}")));
    }
    let mut out = csv_line(&header);
    for d in domains {
        for m in &d.methods {
            let mut f = vec![d.domain.id.clone(), m.method.clone()];
            f.push(m.strategies.query.clone().unwrap_or_default());
            f.push(m.strategies.adapt.clone());
            f.extend([m.cases.to_string(), m.failures.to_string()]);
            for r in &m.metrics {
                let s = r.summary;
                f.extend([s.map(|s| s.median), s.map(|s| s.q1), s.map(|s| s.q3)].map(fmt_value));
            }
            let stdr = stdr_partner(d, m);
            for metric in REPORTED {
                f.push(fmt_value(d.p(metric, &m.method, "supervised")));
                f.push(fmt_value(stdr.as_deref().and_then(|v| d.p(metric, &m.method, v))));
            }
            out.push_str(&csv_line(&f));
        }
    }
    out
}

/// The pooled `cases.csv`: `domain,method,query,adapt` then the columns of `delinea evaluate`,
/// one row per domain, method and test case. `runs` holds `(domain id, method, table)`.
pub fn cases_csv(runs: &[(String, &super::Method, &ResultsTable)]) -> Result<String, Error> {
    let columns = results_csv(&[]);
    let columns: Vec<String> = columns.trim_end().split(',').map(String::from).collect();
    let mut header: Vec<String> = ["domain", "method", "query", "adapt"].map(String::from).to_vec();
    header.extend(columns.iter().cloned());
    let mut out = csv_line(&header);
    for (domain, method, table) in runs {
        if table.columns != columns {
            return Err(Error::Table {
                path: table.path.clone(),
                reason: format!("columns {:?}, expected {:?}", table.columns, columns),
            });
        }
        for row in &table.rows {
            let mut f = vec![domain.clone(), method.id(), method.query.clone().unwrap_or_default()];
            f.push(method.adapt.clone());
            f.extend(row.iter().cloned());
            out.push_str(&csv_line(&f));
        }
    }
    Ok(out)
}
