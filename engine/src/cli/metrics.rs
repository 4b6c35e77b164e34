//! `delinea metrics`, `delinea evaluate`, `delinea compare`: argument parsing and printing
//! around [`delinea::metrics`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use delinea::dataset::{Manifest, Split};
use delinea::metrics::{
    self, wilcoxon, CaseStatus, EvaluateOptions, Metrics, Options, SplitFilter, ALL_CENTRES, METRIC_NAMES,
};
use delinea::{fsutil, volume};

use super::{print_json, ExitStatus, Global};

/// Which HD95 the text output and summaries headline (both are always computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Hd95Convention {
    /// 95th percentile of both directions pooled (medpy, the paper's code).
    Pooled,
    /// Larger of the two directed 95th percentiles (MONAI).
    Max,
}

impl Hd95Convention {
    fn column(self) -> &'static str {
        match self {
            Hd95Convention::Pooled => "hd95",
            Hd95Convention::Max => "hd95_max",
        }
    }
}

/// Segmentation metrics of one prediction against one ground truth (distances in mm).
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// The predicted label map (NIfTI).
    #[arg(long)]
    pred: PathBuf,
    /// The ground-truth label map, on the same grid.
    #[arg(long)]
    gt: PathBuf,
    /// Print one JSON object (infinite values as "inf", undefined as null).
    #[arg(long)]
    json: bool,
    /// NSD tolerance in mm.
    #[arg(long, default_value_t = 2.0, value_name = "MM")]
    tolerance: f64,
    /// Evaluate label N only (default: every label > 0).
    #[arg(long, value_name = "N")]
    label: Option<u8>,
    /// HD95 headlined in text output (JSON always has both `hd95` and `hd95_max`).
    #[arg(long, value_enum, default_value_t = Hd95Convention::Pooled)]
    hd95: Hd95Convention,
    /// Compute N times and report the fastest compute time (file reading excluded).
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: usize,
    /// Report reading and compute times (ms).
    #[arg(long)]
    timing: bool,
}

#[derive(serde::Serialize)]
struct MetricsJson<'a> {
    #[serde(flatten)]
    metrics: &'a Metrics,
    hd95_convention: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compute_ms: Option<f64>,
}

fn show(v: Option<f64>) -> String {
    match v {
        None => "undefined".into(),
        Some(x) if x.is_infinite() => "inf".into(),
        Some(x) => format!("{x:.4}"),
    }
}

pub fn run_metrics(args: MetricsArgs, _global: Global) -> anyhow::Result<ExitStatus> {
    let options = Options {
        tolerance_mm: args.tolerance,
        label: args.label,
    };
    let t0 = Instant::now();
    let (p, g) = rayon::join(
        || volume::read_label_map(&args.pred),
        || volume::read_label_map(&args.gt),
    );
    let (p, g) = (p?, g?);
    volume::check_same_grid(&args.gt, &g.geometry, &args.pred, &p.geometry)?;
    let read_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut best = f64::INFINITY;
    let mut m = None;
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        let r = metrics::compute(&p, &g, &options)?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        m = Some(r);
    }
    let m = m.ok_or_else(|| anyhow::anyhow!("no computation ran"))?;
    let conv = args.hd95.column();
    if args.json {
        let timing = args.timing || args.repeat > 1;
        print_json(&MetricsJson {
            metrics: &m,
            hd95_convention: if args.hd95 == Hd95Convention::Pooled {
                "pooled"
            } else {
                "max"
            },
            read_ms: timing.then_some(read_ms),
            compute_ms: timing.then_some(best),
        })?;
        return Ok(ExitStatus::Success);
    }
    println!("prediction   {}", args.pred.display());
    println!("ground truth {}", args.gt.display());
    println!("outcome      {}", m.outcome.as_str());
    println!("volumes      pred {:.3} ml, gt {:.3} ml", m.pred_ml, m.gt_ml);
    println!(
        "DSC {}  IoU {}  sensitivity {}  precision {}  RVD {}",
        show(m.dsc),
        show(m.iou),
        show(m.sensitivity),
        show(m.precision),
        show(m.rvd)
    );
    let (h, other, oname) = match args.hd95 {
        Hd95Convention::Pooled => (m.hd95, m.hd95_max, "max-directed"),
        Hd95Convention::Max => (m.hd95_max, m.hd95, "pooled"),
    };
    println!(
        "HD95 ({conv}) {} mm  [{oname}: {} mm]  HD {} mm",
        show(h),
        show(other),
        show(m.hd)
    );
    println!(
        "ASSD {} mm  (pred->gt {} mm, gt->pred {} mm)  NSD@{}mm {}",
        show(m.assd),
        show(m.asd_pred_to_gt),
        show(m.asd_gt_to_pred),
        m.tolerance_mm,
        show(m.nsd)
    );
    if args.timing || args.repeat > 1 {
        println!(
            "time         read {read_ms:.1} ms, compute {best:.2} ms (best of {})",
            args.repeat.max(1)
        );
    }
    Ok(ExitStatus::Success)
}

/// Which split `evaluate` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    Train,
    Val,
    Test,
    All,
}

/// Metrics of a folder of predictions (`<case>.nii.gz` or `<case>.nii`) against a manifest.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Folder of predictions, one `<case id>.nii.gz` (or `.nii`) per case.
    #[arg(long, value_name = "DIR")]
    pred: PathBuf,
    /// The dataset manifest.
    #[arg(long, value_name = "M")]
    manifest: PathBuf,
    /// Ground truth from this rater (default: each centre's reference rater).
    #[arg(long, value_name = "R")]
    rater: Option<String>,
    /// Cases evaluated.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// Per-case CSV; the per-centre summary goes beside it as `<stem>.summary.csv`, the HTML
    /// report as `<stem>.report.html` (pictures in `<stem>.report/`).
    #[arg(long, value_name = "CSV")]
    out: PathBuf,
    /// NSD tolerance in mm.
    #[arg(long, default_value_t = 2.0, value_name = "MM")]
    tolerance: f64,
    /// Evaluate label N only (default: every label > 0).
    #[arg(long, value_name = "N")]
    label: Option<u8>,
    /// HD95 shown in the printed summary (both are in the files).
    #[arg(long, value_enum, default_value_t = Hd95Convention::Pooled)]
    hd95: Hd95Convention,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn summary_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    out.with_file_name(format!("{stem}.summary.csv"))
}

/// The report beside the per-case CSV: `<stem>.report.html`.
fn report_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{stem}.report.html"))
}

pub fn run_evaluate(args: EvaluateArgs, global: Global) -> anyhow::Result<ExitStatus> {
    let manifest = Manifest::load(&args.manifest)?;
    let options = EvaluateOptions {
        metrics: Options {
            tolerance_mm: args.tolerance,
            label: args.label,
        },
        rater: args.rater.clone(),
        split: match args.split {
            SplitArg::Train => SplitFilter::Only(Split::Train),
            SplitArg::Val => SplitFilter::Only(Split::Val),
            SplitArg::Test => SplitFilter::Only(Split::Test),
            SplitArg::All => SplitFilter::All,
        },
    };
    if !args.pred.is_dir() {
        anyhow::bail!("{}: not a folder of predictions", args.pred.display());
    }
    let rows = metrics::evaluate(&manifest, &args.pred, &options);
    if rows.is_empty() {
        anyhow::bail!("{}: no case in split {:?}", args.manifest.display(), args.split);
    }
    let names: Vec<&str> = METRIC_NAMES.to_vec();
    let summaries = metrics::summarize_by_centre(&rows, &names);
    let sum_path = summary_path(&args.out);
    fsutil::write_bytes_atomic(&args.out, metrics::results_csv(&rows).as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    fsutil::write_bytes_atomic(&sum_path, metrics::summary_csv(&summaries).as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", sum_path.display()))?;

    let page = report_path(&args.out);
    let inputs =
        delinea::report::Inputs::evaluation(&args.out, &sum_path, &args.manifest, &args.pred, args.rater.as_deref())?;
    delinea::report::render(&inputs, &page)?;

    let mut problems = 0;
    for r in &rows {
        match &r.status {
            CaseStatus::MissingPrediction => {
                problems += 1;
                eprintln!(
                    "case {} ({}): no prediction {}/{}.nii[.gz]",
                    r.case,
                    r.centre,
                    args.pred.display(),
                    r.case
                )
            }
            CaseStatus::Error(e) => {
                problems += 1;
                eprintln!("case {} ({}): {e}", r.case, r.centre)
            }
            CaseStatus::NoLabel => {
                problems += 1;
                eprintln!(
                    "case {} ({}): no ground truth{}",
                    r.case,
                    r.centre,
                    args.rater
                        .as_deref()
                        .map(|r| format!(" from rater {r}"))
                        .unwrap_or_default()
                )
            }
            CaseStatus::Evaluated(_) => {}
        }
    }
    if args.json {
        print_json(&summaries)?;
    } else if !global.quiet {
        let headline = ["dsc", args.hd95.column(), "assd", "nsd"];
        println!(
            "{:<10} {:>5} {:>5} {:>5}  {:<22} {:<22} {:<22} {:<22}",
            "centre",
            "cases",
            "fail",
            "miss",
            "DSC",
            headline[1].to_uppercase(),
            "ASSD",
            format!("NSD@{}mm", args.tolerance)
        );
        let centres: Vec<&str> = {
            let mut c: Vec<&str> = summaries.iter().map(|s| s.centre.as_str()).collect();
            c.dedup();
            c
        };
        for centre in centres {
            let get = |m: &str| summaries.iter().find(|s| s.centre == centre && s.metric == m);
            let Some(first) = get("dsc") else { continue };
            let cell = |m: &str| match get(m).and_then(|s| s.summary) {
                Some(s) => format!("{} [{}-{}]", fmt3(s.median), fmt3(s.q1), fmt3(s.q3)),
                None => "-".into(),
            };
            println!(
                "{:<10} {:>5} {:>5} {:>5}  {:<22} {:<22} {:<22} {:<22}",
                centre,
                first.cases,
                first.failures,
                first.missing + first.errors,
                cell("dsc"),
                cell(headline[1]),
                cell("assd"),
                cell("nsd")
            );
        }
        println!(
            "median [IQR]; distances in mm; failures (one mask empty) kept as inf; wrote {}, {} and {}",
            args.out.display(),
            sum_path.display(),
            page.display()
        );
    }
    Ok(if problems > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn fmt3(x: f64) -> String {
    if x.is_infinite() {
        "inf".into()
    } else {
        format!("{x:.3}")
    }
}

/// Paired Wilcoxon signed-rank tests between two result tables, per centre.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Result table A (from `delinea evaluate`).
    a: PathBuf,
    /// Result table B; differences are A - B.
    b: PathBuf,
    /// Metric column(s) to compare (repeatable).
    #[arg(long = "metric", value_name = "NAME", default_values_t = vec!["dsc".to_string()])]
    metrics: Vec<String>,
    /// Treatment of zero differences (scipy's zero_method).
    #[arg(long, value_enum, default_value_t = wilcoxon::ZeroMethod::Wilcox)]
    zero_method: wilcoxon::ZeroMethod,
    /// Continuity correction of the normal approximation.
    #[arg(long)]
    correction: bool,
    /// P value method (scipy's method).
    #[arg(long, value_enum, default_value_t = wilcoxon::Method::Auto)]
    method: wilcoxon::Method,
    /// Also write the comparisons as CSV here.
    #[arg(long, value_name = "CSV")]
    out: Option<PathBuf>,
    /// Print the comparisons as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_compare(args: CompareArgs, global: Global) -> anyhow::Result<ExitStatus> {
    let a = metrics::read_results(&args.a)?;
    let b = metrics::read_results(&args.b)?;
    let options = wilcoxon::Options {
        zero_method: args.zero_method,
        correction: args.correction,
        method: args.method,
    };
    let (rows, unpaired) = metrics::compare(&a, &b, &args.metrics, options)?;
    if let Some(out) = &args.out {
        let mut csv = String::from(
            "metric,centre,n,excluded,median_a,median_b,median_difference,statistic,p_value,p_holm,method\n",
        );
        for r in &rows {
            let f = |v: Option<f64>| {
                v.map(|x| {
                    if x.is_infinite() {
                        "inf".to_string()
                    } else {
                        format!("{x}")
                    }
                })
                .unwrap_or_default()
            };
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                r.metric,
                r.centre,
                r.n,
                r.excluded,
                f(r.median_a),
                f(r.median_b),
                f(r.median_difference),
                f(r.test.map(|t| t.statistic)),
                f(r.test.map(|t| t.p_value)),
                f(r.p_holm),
                r.test.map(|t| t.method).unwrap_or("")
            ));
        }
        fsutil::write_bytes_atomic(out, csv.as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    }
    if args.json {
        print_json(&serde_json::json!({ "comparisons": rows, "unpaired_a": unpaired[0], "unpaired_b": unpaired[1] }))?;
        return Ok(ExitStatus::Success);
    }
    if !global.quiet {
        println!("A = {}, B = {}; differences A - B", args.a.display(), args.b.display());
        println!(
            "{:<10} {:<10} {:>4} {:>4} {:>10} {:>10} {:>11} {:>10} {:>10} {:>10} method",
            "metric", "centre", "n", "excl", "median A", "median B", "median diff", "statistic", "p", "p (Holm)",
        );
        for r in &rows {
            let p = r
                .test
                .map(|t| format!("{:.4}", t.p_value))
                .unwrap_or_else(|| "-".into());
            let st = r.test.map(|t| format!("{}", t.statistic)).unwrap_or_else(|| "-".into());
            let o = |v: Option<f64>| v.map(fmt3).unwrap_or_else(|| "-".into());
            println!(
                "{:<10} {:<10} {:>4} {:>4} {:>10} {:>10} {:>11} {:>10} {:>10} {:>10} {}",
                r.metric,
                r.centre,
                r.n,
                r.excluded,
                o(r.median_a),
                o(r.median_b),
                o(r.median_difference),
                st,
                p,
                r.p_holm.map(|p| format!("{p:.4}")).unwrap_or_else(|| "-".into()),
                r.test.map(|t| t.method).unwrap_or("-")
            );
        }
        if unpaired != [0, 0] {
            println!("unpaired rows: {} in A, {} in B (left out)", unpaired[0], unpaired[1]);
        }
        println!("Wilcoxon signed-rank, two-sided, zero_method {:?}; Holm across the {} comparisons made; centre '{ALL_CENTRES}' pools every centre", args.zero_method, rows.iter().filter(|r| r.test.is_some()).count());
    }
    Ok(ExitStatus::Success)
}
