//! The tables and their statistics on hand-made per-case results: three methods, five cases,
//! one failure. Exact two-sided Wilcoxon P values for n = 5 without ties are k/32 with k = 2
//! (every difference of one sign), 4 (R+ = 1) or 6 (R+ = 2).

use std::path::PathBuf;

use super::stats::{comparison_pairs, domain_result, DomainResult};
use super::table::{markdown_table, table_csv};
use super::{Domain, Method};
use crate::metrics::{fmt_value, results_csv, ResultsTable};

const INF: f64 = f64::INFINITY;

/// A per-case table with `(outcome, [dsc, hd95, assd, nsd])` per case (other metrics empty).
fn table(cases: &[(&str, [f64; 4])]) -> ResultsTable {
    let header = results_csv(&[]);
    let columns: Vec<String> = header.trim_end().split(',').map(String::from).collect();
    let col = |name: &str| columns.iter().position(|c| c == name).unwrap();
    let rows = cases
        .iter()
        .enumerate()
        .map(|(i, (outcome, v))| {
            let mut row = vec![String::new(); columns.len()];
            let set = [
                ("case", format!("c{i}")),
                ("centre", "D".into()),
                ("rater", "R".into()),
                ("outcome", outcome.to_string()),
            ];
            for (name, value) in set {
                row[col(name)] = value;
            }
            for (name, value) in ["dsc", "hd95", "assd", "nsd"].iter().zip(v) {
                row[col(name)] = fmt_value(Some(*value));
            }
            row
        })
        .collect();
    ResultsTable {
        path: PathBuf::from("hand-made.csv"),
        columns,
        rows,
    }
}

fn method(query: Option<&str>, adapt: &str) -> Method {
    Method {
        query: query.map(String::from),
        adapt: adapt.into(),
    }
}

fn result() -> DomainResult {
    let ok = "ok";
    let source = table(&[
        (ok, [0.72, 5.1, 2.55, 0.72]),
        (ok, [0.6, 6.2, 3.1, 0.6]),
        ("pred_empty", [0.0, INF, INF, 0.0]),
        (ok, [0.55, 8.4, 4.2, 0.55]),
        (ok, [0.65, 9.8, 4.9, 0.65]),
    ]);
    let stdr = table(&[
        (ok, [0.7, 4.0, 2.0, 0.7]),
        (ok, [0.75, 5.5, 2.75, 0.75]),
        (ok, [0.8, 6.2, 3.1, 0.8]),
        (ok, [0.85, 7.1, 3.55, 0.85]),
        (ok, [0.9, 8.3, 4.15, 0.9]),
    ]);
    let supervised = table(&[
        (ok, [0.8, 3.0, 1.5, 0.8]),
        (ok, [0.82, 4.0, 2.0, 0.82]),
        (ok, [0.84, 5.0, 2.5, 0.84]),
        (ok, [0.86, 6.0, 3.0, 0.86]),
        (ok, [0.88, 7.0, 3.5, 0.88]),
    ]);
    let runs = vec![
        (Method::source_only(), source),
        (method(Some("stdr"), "finetune+pseudo"), stdr),
        (Method::supervised(), supervised),
    ];
    let methods: Vec<Method> = runs.iter().map(|r| r.0.clone()).collect();
    let stdr = method(Some("stdr"), "finetune+pseudo");
    let pairs = comparison_pairs(&methods, |m| {
        (m.query.is_none() && m.adapt == "none").then(|| stdr.clone())
    });
    assert_eq!(pairs, [(0, 2), (0, 1), (1, 2)], "each pair once");
    let domain = Domain {
        id: "D".into(),
        centre: "D".into(),
        rater: None,
    };
    domain_result(&domain, &runs, &pairs).unwrap()
}

#[test]
fn markdown_table_of_hand_made_results() {
    // DSC: raw P 2/32 (source vs supervised), 4/32 (source vs STDR), 6/32 (STDR vs
    // supervised); Holm over the three: 0.1875, 0.25, 0.25.
    let want = "\
| domain | method | cases | failures | DSC | HD95 (mm) | ASSD (mm) | NSD 2 mm | P vs supervised | P vs STDR |
|---|---|--:|--:|---|---|---|---|--:|--:|
| D | source-only | 5 | 1 | 0.600 [0.550, 0.650] | 8.40 [6.20, 9.80] | 4.20 [3.10, 4.90] | 0.600 [0.550, 0.650] | 0.188 | 0.250 |
| D | stdr+finetune+pseudo | 5 | 0 | 0.800 [0.750, 0.850] | 6.20 [5.50, 7.10] | 3.10 [2.75, 3.55] | 0.800 [0.750, 0.850] | 0.250 | - |
| D | supervised | 5 | 0 | 0.840 [0.820, 0.860] | 5.00 [4.00, 6.00] | 2.50 [2.00, 3.00] | 0.840 [0.820, 0.860] | - | - |
";
    let got = markdown_table(&[result()]);
    assert_eq!(got, want, "\ngot:\n{got}\nwant:\n{want}");
}

#[test]
fn csv_table_of_hand_made_results() {
    let got = table_csv(&[result()]);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        "domain,method,query,adapt,cases,failures,dsc_median,dsc_q1,dsc_q3,hd95_median,hd95_q1,hd95_q3,\
         assd_median,assd_q1,assd_q3,nsd_median,nsd_q1,nsd_q3,p_dsc_vs_supervised,p_dsc_vs_stdr,\
         p_hd95_vs_supervised,p_hd95_vs_stdr,p_assd_vs_supervised,p_assd_vs_stdr,p_nsd_vs_supervised,p_nsd_vs_stdr"
    );
    // HD95 and ASSD: every difference of one sign in all three pairs, so 2/32 each, Holm 0.1875.
    assert_eq!(
        lines[1],
        "D,source-only,,none,5,1,0.6,0.55,0.65,8.4,6.2,9.8,4.2,3.1,4.9,0.6,0.55,0.65,\
         0.1875,0.25,0.1875,0.1875,0.1875,0.1875,0.1875,0.25"
    );
    assert_eq!(
        lines[3],
        "D,supervised,,supervised,5,0,0.84,0.82,0.86,5,4,6,2.5,2,3,0.84,0.82,0.86,,,,,,,,"
    );
}

#[test]
fn undefined_metrics_are_counted_and_a_pair_without_values_has_no_p() {
    let both_empty = table(&[("both_empty", [1.0, f64::NAN, f64::NAN, f64::NAN])]);
    let a = super::stats::method_result(&Method::source_only(), &both_empty).unwrap();
    assert_eq!((a.cases, a.failures, a.errors), (1, 0, 0));
    assert_eq!(a.metrics[0].summary.map(|s| s.median), Some(1.0));
    assert_eq!((a.metrics[1].summary, a.metrics[1].undefined), (None, 1));
    let runs = vec![
        (Method::source_only(), both_empty.clone()),
        (Method::supervised(), both_empty),
    ];
    let d = Domain {
        id: "D".into(),
        centre: "D".into(),
        rater: None,
    };
    let r = domain_result(&d, &runs, &[(0, 1)]).unwrap();
    let hd95 = r.tests.iter().find(|t| t.metric == "hd95").unwrap();
    assert_eq!((hd95.n, hd95.excluded, hd95.test, hd95.p_holm), (0, 1, None, None));
    assert!(markdown_table(&[r]).contains("| D | source-only | 1 | 0 | 1.000 [1.000, 1.000] | - | - | - |"));
}
