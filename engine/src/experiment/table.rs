//! The experiment's tables: `table.md` (for people), `table.csv` (one row per domain and
//! method, full precision), `results.json` ([`Results`]) and the pooled per-case
//! `cases.csv`.

use serde::Serialize;

use super::replicates::{DomainSpread, Replicates, Spread};
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
    /// Per domain, in the order given (replicate 0's when there are several).
    pub domains: Vec<DomainResult>,
    /// Every replicate's medians and their spread, when the experiment ran more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicates: Option<Replicates>,
}

/// What `table.md` says above the table.
pub const LEGEND: &str = "Median [IQR] over each domain's test cases. HD95: pooled convention \
(95th percentile, linear interpolation, of both directions' surface distances pooled, as medpy \
and the paper's code); distances in mm; NSD at 2 mm. A failure (one mask empty) counts with \
DSC 0 and infinite distances and stays in every median. P: paired two-sided Wilcoxon \
signed-rank test of DSC (scipy's defaults), Holm-corrected within each domain; \"vs STDR\" is \
against STDR with the same adaptation (methods without a query: with the first label-using adaptation listed); \"-\": \
not tested, or no P value (no case with the metric defined for both).";

/// `table.md`: a title, the legend, the table, and what each query labelled; with
/// replicates, replicate 0's, then the spread across them.
pub fn markdown(results: &Results) -> String {
    let mut out = format!(
        "# delinea experiment\n\n{}; {} target domains.\n\n{LEGEND}\n\n",
        provenance(results),
        results.domains.len()
    );
    if let Some(r) = &results.replicates {
        out.push_str(&format!("## Replicate 0 of {}\n\n", r.runs.len()));
    }
    out.push_str(&format!(
        "{}\n{}",
        markdown_table(&results.domains),
        labelled_section(&results.domains)
    ));
    if let Some(r) = &results.replicates {
        out.push_str(&spread_section(r));
    }
    out
}

/// What `table.md` says above the spread table.
pub const SPREAD_LEGEND: &str = "Each replicate's median over the domain's test cases, replicate 0 \
first, then their mean (smallest–largest). P: paired two-sided Wilcoxon signed-rank test of each \
case's DSC averaged over the replicates, Holm-corrected within each domain, then each replicate's \
own P value.";

/// `## Across N replicates`: the seeds, then one row per domain and method.
fn spread_section(r: &Replicates) -> String {
    let seeds: Vec<String> = (r.runs.iter())
        .map(|x| {
            format!(
                "{} (seed {}, source seed {}, `{}`)",
                x.replicate, x.seed, x.source_seed, x.folder
            )
        })
        .collect();
    let mut out = format!(
        "\n## Across {} replicates\n\nReplicates: {}.\n\n{SPREAD_LEGEND}\n\n",
        r.runs.len(),
        seeds.join("; ")
    );
    out.push_str(
        "| domain | method | DSC per replicate | DSC mean (range) | HD95 per replicate (mm) | HD95 mean (range) | \
         failures | P vs supervised | per replicate | P vs STDR | per replicate |\n\
         |---|---|---|---|---|---|---|--:|---|--:|---|\n",
    );
    for d in &r.domains {
        for m in &d.methods {
            let p = |versus: Option<&str>| -> [String; 2] {
                let t = versus.and_then(|v| (d.tests.iter()).find(|t| is_dsc_test(t, &m.method, v)));
                let each: Vec<String> = t.map_or(vec![], |t| t.p_replicates.iter().map(|p| fmt_p(*p)).collect());
                [fmt_p(t.and_then(|t| t.averaged.p_holm)), each.join(" · ")]
            };
            let [ps, ps_each] = p(Some("supervised"));
            let [pr, pr_each] = p(spread_partner(d, &m.method));
            let failures: Vec<String> = m.failures.iter().map(|f| f.to_string()).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {ps} | {ps_each} | {pr} | {pr_each} |\n",
                d.domain,
                m.method,
                each(&m.dsc, 3),
                mean_range(&m.dsc, 3),
                each(&m.hd95, 2),
                mean_range(&m.hd95, 2),
                failures.join(" · "),
            ));
        }
    }
    out
}

fn is_dsc_test(t: &super::replicates::PooledTest, method: &str, versus: &str) -> bool {
    t.averaged.metric == "dsc" && t.averaged.method == method && t.averaged.versus == versus
}

/// The method `method` was tested against besides supervised, if any.
fn spread_partner<'a>(d: &'a DomainSpread, method: &str) -> Option<&'a str> {
    (d.tests.iter())
        .find(|t| t.averaged.method == method && t.averaged.versus != "supervised")
        .map(|t| t.averaged.versus.as_str())
}

/// `0.712 · 0.655 · 0.774`: each replicate's value.
fn each(s: &Spread, digits: usize) -> String {
    let v: Vec<String> = s.values.iter().map(|v| number(*v, digits)).collect();
    v.join(" · ")
}

/// `0.712 (0.655–0.774)`: the mean and the range.
pub fn mean_range(s: &Spread, digits: usize) -> String {
    format!(
        "{} ({}–{})",
        number(s.mean, digits),
        number(s.min, digits),
        number(s.max, digits)
    )
}

/// A value with `digits` decimals, `inf`, or `-`.
fn number(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_infinite() => "inf".into(),
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
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
    if let Some(r) = &results.replicates {
        return spread_summary(results, r);
    }
    let methods: Vec<&str> = first.methods.iter().map(|m| m.method.as_str()).collect();
    let mut out = format!(
        "{}.\n\nMedian test DSC [IQR] per domain ({} test cases each; a failure, one mask empty, counts DSC 0):\n\n",
        provenance(results),
        first.methods.first().map_or(0, |m| m.cases)
    );
    out.push_str(&table_head(&["domain"], &methods));
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

/// [`summary`] of several replicates: the mean (range) of the replicates' median DSC per
/// domain and method, each replicate's failures where there are any; the tumour slices each
/// query labelled, likewise; the validation labels.
fn spread_summary(results: &Results, r: &Replicates) -> String {
    let first = &results.domains[0];
    let methods: Vec<&str> = first.methods.iter().map(|m| m.method.as_str()).collect();
    let seeds: Vec<String> = r.runs.iter().map(|x| x.seed.to_string()).collect();
    let mut out = format!(
        "{}; {} replicates (seeds {}).\n\nMedian test DSC per domain and method: the mean (smallest–largest) of the {} \
         replicates' medians ({} test cases each; a failure, one mask empty, counts DSC 0; failures per replicate \
         where there are any):\n\n",
        provenance(results),
        r.runs.len(),
        seeds.join(", "),
        r.runs.len(),
        first.methods.first().map_or(0, |m| m.cases)
    );
    out.push_str(&table_head(&["domain"], &methods));
    for d in &r.domains {
        let cells: Vec<String> = (d.methods.iter())
            .map(|m| {
                let cell = mean_range(&m.dsc, 3);
                match m.failures.iter().all(|&f| f == 0) {
                    true => cell,
                    false => {
                        let f: Vec<String> = m.failures.iter().map(|f| f.to_string()).collect();
                        format!("{cell}, failures {}", f.join("/"))
                    }
                }
            })
            .collect();
        out.push_str(&format!("| {} | {} |\n", d.domain, cells.join(" | ")));
    }
    out.push('\n');
    let queries: Vec<&MethodResult> = first_per_query(first);
    if !queries.is_empty() {
        out.push_str(
            "Tumour slices each query labelled, mean (smallest–largest) over the replicates, and tumour slices / \
             slices in the pool it chose from:\n\n",
        );
        let names: Vec<&str> = queries.iter().filter_map(|m| m.strategies.query.as_deref()).collect();
        out.push_str(&table_head(&["domain", "pool"], &names));
        for (d, spread) in results.domains.iter().zip(&r.domains) {
            let pool = d
                .pool
                .map_or("-".into(), |p| format!("{}/{}", p.tumour_slices, p.slices));
            let cells: Vec<String> = (queries.iter())
                .map(|q| {
                    let m = spread.methods.iter().find(|m| m.method == q.method);
                    m.and_then(|m| m.tumour_slices.as_ref())
                        .map_or("-".into(), |s| mean_range(s, 1))
                })
                .collect();
            out.push_str(&format!("| {} | {pool} | {} |\n", d.domain.id, cells.join(" | ")));
        }
        out.push('\n');
    }
    out.push_str(&validation_line(&results.domains));
    out
}

/// A Markdown table's header row and rule: `first` and `rest`'s columns, each left-aligned.
fn table_head(first: &[&str], rest: &[&str]) -> String {
    let columns: Vec<&str> = first.iter().chain(rest).copied().collect();
    format!("| {} |\n|{}\n", columns.join(" | "), "---|".repeat(columns.len()))
}

/// The first method of each query, in plan order (a selection is the same for every
/// adaptation).
fn first_per_query(d: &DomainResult) -> Vec<&MethodResult> {
    let mut out: Vec<&MethodResult> = Vec::new();
    for m in &d.methods {
        let q = m.strategies.query.as_deref();
        if q.is_some() && !out.iter().any(|x| x.strategies.query.as_deref() == q) {
            out.push(m);
        }
    }
    out
}

/// Tumour slices among those each query labelled, per domain, beside the pool's; and the
/// validation labels that picked the checkpoints, when they did.
fn labelled_section(domains: &[DomainResult]) -> String {
    let Some(first) = domains.first() else {
        return String::new();
    };
    // One column per query: its selection is the same for every adaptation.
    let queries: Vec<&str> = (first_per_query(first).iter())
        .filter_map(|m| m.strategies.query.as_deref())
        .collect();
    let mut out = String::new();
    if !queries.is_empty() {
        out.push_str("Tumour slices / slices each query labelled (per reason where it has several), and in the pool it chose from:\n\n");
        out.push_str(&table_head(&["domain", "pool"], &queries));
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
    out.push_str(&validation_line(domains));
    out
}

/// The validation labels that picked the checkpoints, when they did (empty otherwise).
fn validation_line(domains: &[DomainResult]) -> String {
    let mut out = String::new();
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
