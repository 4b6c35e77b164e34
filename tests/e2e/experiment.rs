//! `delinea experiment` on a tiny synthetic cohort: every output there and consistent, a rerun
//! that skips everything, a rerun of exactly the run whose marker was removed, a changed
//! config refused, and clear errors (exit 2) for bad targets, strategies and files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use crate::util::{delinea, describe};

const METHODS: [&str; 5] = [
    "source-only",
    "random+finetune+pseudo",
    "entropy+finetune+pseudo",
    "stdr+finetune+pseudo",
    "supervised",
];

/// A cohort of 3 centres × 5 cases and a multi-rater centre of 5 cases by R1 and R2, at
/// 32 × 32 × 8, and a config that trains for a few steps only.
pub(crate) fn cohort(dir: &Path) -> (String, String) {
    let cohort = dir.join("cohort");
    let out = delinea(&[
        "synth",
        "--out",
        cohort.to_str().unwrap(),
        "--seed",
        "3",
        "--centres",
        "3",
        "--cases-per-centre",
        "5",
        "--multi-rater-cases",
        "5",
        "--raters",
        "2",
        "--size",
        "32,32,8",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let config = dir.join("experiment.json");
    std::fs::write(
        &config,
        r#"{"source": {"iterations": 10, "batch": 4, "validate_every": 5, "tumour_fraction": 0.5,
              "preprocessing": {"slice_size": 32}, "model": {"features": [4, 8, 16], "dropout": [0.05, 0.1, 0.2]}},
            "adaptation": {"iterations": 3, "batch": 4}, "mc_samples": 2, "references": {"k": 5}, "seed": 1}"#,
    )
    .unwrap();
    let manifest = cohort.join("manifest.json");
    (
        manifest.to_str().unwrap().to_string(),
        config.to_str().unwrap().to_string(),
    )
}

/// `delinea experiment` on the tiny cohort (C1 to C2 and R2, the three queries with
/// fine-tuning + pseudo-labels, on the CPU), with `extra` flags after the others.
pub(crate) fn experiment_command(manifest: &str, config: &str, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_delinea"));
    command
        .args([
            "experiment",
            "--manifest",
            manifest,
            "--source",
            "C1",
            "--targets",
            "C2,R2",
            "--queries",
            "random,entropy,stdr",
            "--adapts",
            "finetune+pseudo",
            "--budget",
            "20%",
            "--config",
            config,
            "--device",
            "cpu",
            "--log-every",
            "0",
            "--out",
        ])
        .arg(out)
        .args(extra);
    command
}

pub(crate) fn experiment(manifest: &str, config: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    experiment_command(manifest, config, out, extra)
        .output()
        .expect("the delinea binary runs")
}

/// Test cases per domain, from the manifest: C2's, and the multi-rater centre's labelled by R2.
fn test_cases(manifest: &str) -> BTreeMap<&'static str, usize> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let cases = m["cases"].as_array().unwrap();
    let count = |centre: &str, rater: &str| {
        cases
            .iter()
            .filter(|c| c["centre"] == centre && c["split"] == "test" && !c["labels"][rater].is_null())
            .count()
    };
    BTreeMap::from([("C2", count("C2", "C2-onc")), ("R2", count("MR", "R2"))])
}

/// Modification time and contents of every file a finished run leaves, and of the source model.
fn snapshot(out: &Path) -> BTreeMap<PathBuf, (SystemTime, Vec<u8>)> {
    let mut files = vec![out.join("source/model/model.mpk"), out.join("source/done.json")];
    for d in ["C2", "R2"] {
        for m in METHODS {
            let run = out.join("runs").join(d).join(m);
            files.extend([
                run.join("done.json"),
                run.join("cases.csv"),
                run.join("model/model.mpk"),
            ]);
        }
    }
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let bytes = std::fs::read(&f).unwrap();
            (f, (meta.modified().unwrap(), bytes))
        })
        .collect()
}

pub(crate) fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn check_outputs(out: &Path, manifest: &str) {
    let n = test_cases(manifest);
    assert!(n.values().all(|&k| k > 0), "{n:?}");
    let cases = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    let rows: Vec<&str> = cases.lines().skip(1).collect();
    assert_eq!(rows.len(), METHODS.len() * n.values().sum::<usize>(), "{cases}");
    for (domain, k) in &n {
        for m in METHODS {
            let prefix = format!("{domain},{m},");
            assert_eq!(rows.iter().filter(|r| r.starts_with(&prefix)).count(), *k, "{prefix}");
        }
    }
    let rater_col = cases
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "rater")
        .unwrap();
    let rater = |r: &&str| r.split(',').nth(rater_col).unwrap().to_string();
    assert!(rows.iter().filter(|r| r.starts_with("R2,")).all(|r| rater(r) == "R2"));
    assert!(rows
        .iter()
        .filter(|r| r.starts_with("C2,"))
        .all(|r| rater(r) == "C2-onc"));
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    for d in n.keys() {
        for m in METHODS {
            assert!(
                table.contains(&format!("\n| {d} | {m} | ")),
                "{d} {m} missing:\n{table}"
            );
        }
    }
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + METHODS.len() * n.len(), "{csv}");
    let results: Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["hd95"], "pooled");
    let domains = results["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 2);
    assert_eq!(domains[1]["domain"]["rater"], "R2");
    assert_eq!(domains[1]["domain"]["centre"], "MR");
    for d in domains {
        assert_eq!(d["methods"].as_array().unwrap().len(), METHODS.len());
        for t in d["tests"].as_array().unwrap() {
            for p in [&t["test"]["p_value"], &t["p_holm"]] {
                assert!(
                    p.is_null() || (0.0..=1.0).contains(&p.as_f64().unwrap()),
                    "P {p} in {t}"
                );
            }
        }
    }
}

/// The experiment's report: every section, every embedded picture a PNG that decodes (and is
/// the file beside the page), a box plot point per evaluated case, failures marked, nothing
/// fetched from anywhere.
fn check_report(out: &Path, page: &Path) {
    use base64::Engine;
    let html = std::fs::read_to_string(page).unwrap();
    for id in ["results", "box-plots", "cases", "queries", "curves", "settings"] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "section {id} missing");
    }
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
    assert!(
        html.contains("class=\"fail\""),
        "the tiny experiment's failures are marked"
    );
    let figures: Vec<&str> = html.split("<figure id=\"").skip(1).collect();
    let beside = page.parent().unwrap().join("report");
    assert_eq!(
        figures.len(),
        std::fs::read_dir(&beside).unwrap().count(),
        "a PNG file per picture"
    );
    for f in &figures {
        let name = &f[..f.find('"').unwrap()];
        let data = f.split("base64,").nth(1).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&data[..data.find('"').unwrap()])
            .unwrap();
        let picture = delinea::report::decode_png(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(picture.width > 100 && picture.height > 50, "{name}");
        assert_eq!(
            std::fs::read(beside.join(format!("{name}.png"))).unwrap(),
            bytes,
            "{name}"
        );
    }
    let cases = std::fs::read_to_string(out.join("cases.csv")).unwrap();
    for d in ["C2", "R2"] {
        let rows = cases.lines().filter(|l| l.starts_with(&format!("{d},"))).count();
        let fig = figures
            .iter()
            .find(|f| f.starts_with(&format!("box-dsc-{d}\"")))
            .unwrap();
        assert!(fig.contains(&format!("data-points=\"{rows}\"")), "{d}: {rows} cases");
        for kind in ["box-hd95", "picks", "stdr-distances", "curve-adaptation"] {
            assert!(
                figures.iter().any(|f| f.starts_with(&format!("{kind}-{d}"))),
                "{kind}-{d}"
            );
        }
        assert!(
            figures.iter().any(|f| f.starts_with(&format!("case-{d}-best-"))),
            "case-{d}"
        );
    }
    assert!(figures.iter().any(|f| f.starts_with("curve-source")));
}

#[test]
fn the_report_is_written_again_on_its_own_and_bad_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let out = dir.path().join("exp");
    let o = experiment(&manifest, &config, &out, &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let page = dir.path().join("elsewhere/page.html");
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    let o = delinea(&["report", out.to_str().unwrap(), "--out", page.to_str().unwrap()]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(page.is_file() && page.parent().unwrap().join("page/box-dsc-C2.png").is_file());
    let o = delinea(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(stderr(&o).contains("experiment.json"), "{}", describe(&o));
}

#[test]
fn experiment_writes_consistent_tables_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let out = dir.path().join("exp");
    let first = experiment(&manifest, &config, &out, &[]);
    assert!(first.status.success(), "{}", describe(&first));
    assert!(stderr(&first).contains("10 runs (10 now, 0 finished earlier), source model trained"));
    assert!(String::from_utf8_lossy(&first.stdout).contains("| domain | method |"));
    check_outputs(&out, &manifest);
    check_report(&out, &out.join("report.html"));
    let before = snapshot(&out);
    let table = std::fs::read(out.join("table.md")).unwrap();

    // Same settings: nothing is computed again.
    let again = experiment(&manifest, &config, &out, &[]);
    assert!(again.status.success(), "{}", describe(&again));
    let err = stderr(&again);
    assert!(err.contains("source model: trained earlier, reused"), "{err}");
    assert_eq!(err.matches("finished earlier, skipped").count(), 10, "{err}");
    assert!(!err.contains("running"), "{err}");
    assert_eq!(snapshot(&out), before, "a finished run's files changed");
    assert_eq!(std::fs::read(out.join("table.md")).unwrap(), table);

    // One marker removed: that run alone runs again, with the same results (same seed).
    let run = out.join("runs/R2/entropy+finetune+pseudo");
    std::fs::remove_file(run.join("done.json")).unwrap();
    let third = experiment(&manifest, &config, &out, &[]);
    assert!(third.status.success(), "{}", describe(&third));
    let err = stderr(&third);
    assert_eq!(err.matches(": running").count(), 1, "{err}");
    assert!(err.contains("R2 entropy+finetune+pseudo: running"), "{err}");
    assert_eq!(err.matches("finished earlier, skipped").count(), 9, "{err}");
    let after = snapshot(&out);
    for (file, (time, bytes)) in &before {
        if file.starts_with(&run) {
            assert_ne!(after[file].0, *time, "{} was not rewritten", file.display());
        } else {
            assert_eq!(after[file], (*time, bytes.clone()), "{} changed", file.display());
        }
    }
    assert_eq!(after[&run.join("cases.csv")].1, before[&run.join("cases.csv")].1);
    check_outputs(&out, &manifest);

    // Other settings: refused before any work, naming what changed.
    let changed = experiment(&manifest, &config, &out, &["--adapt-iterations", "4"]);
    assert_eq!(changed.status.code(), Some(2), "{}", describe(&changed));
    let err = stderr(&changed);
    assert!(
        err.contains("produced with other settings") && err.contains("config.adaptation.iterations: 3 then, 4 now"),
        "{err}"
    );
    assert_eq!(snapshot(&out), after);

    // A label-free adaptation added: it runs once per domain, without a query; the rest is reused.
    let tent = experiment(&manifest, &config, &out, &["--adapts", "tent"]);
    assert!(tent.status.success(), "{}", describe(&tent));
    let err = stderr(&tent);
    assert_eq!(err.matches(": running").count(), 2, "{err}");
    assert!(
        err.contains("C2 tent: running") && err.contains("R2 tent: running"),
        "{err}"
    );
    assert_eq!(err.matches("finished earlier, skipped").count(), 10, "{err}");
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(table.contains("| C2 | tent |") && !table.contains("+tent"), "{table}");
}

#[test]
fn bad_experiments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let out = dir.path().join("exp");
    let bad = |extra: &[&str], text: &str| {
        let mut args = vec![
            "experiment",
            "--manifest",
            &manifest,
            "--config",
            &config,
            "--device",
            "cpu",
        ];
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        if !extra.contains(&"--source") {
            args.extend_from_slice(&["--source", "C1"]);
        }
        args.extend_from_slice(extra);
        let o = delinea(&args);
        assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
        let err = stderr(&o);
        assert!(err.contains(text), "expected {text:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    bad(&["--targets", "C2,C9"], "unknown target \"C9\"");
    bad(
        &["--targets", "R7"],
        "raters [\"C1-onc\", \"C2-onc\", \"C3-onc\", \"R1\", \"R2\"]",
    );
    bad(
        &["--targets", "C2,C1"],
        "target \"C1\" lies in the source centre \"C1\"",
    );
    bad(&["--targets", "C2,C2"], "target \"C2\" is listed twice");
    bad(
        &["--targets", "C2", "--queries", "best"],
        "unknown query strategy \"best\"",
    );
    bad(
        &["--targets", "C2", "--adapts", "none"],
        "adaptation \"none\" always runs on its own",
    );
    bad(&["--targets", "C2", "--adapts", "magic"], "magic");
    bad(&["--targets", "C2", "--budget", "150%"], "bad budget");
    bad(&["--targets", "C2", "--source", "C7"], "no source centre \"C7\"");
    let missing = dir.path().join("nothing.json");
    let o = delinea(&[
        "experiment",
        "--manifest",
        missing.to_str().unwrap(),
        "--source",
        "C1",
        "--targets",
        "C2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(stderr(&o).contains("nothing.json"), "{}", describe(&o));
    assert!(!out.exists(), "a refused experiment wrote {}", out.display());
}

/// Every file of `dir` by its path below it (the predictions' paths in `cases.csv` made
/// relative to `dir`).
pub(crate) fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap();
            // Wall times and the folder's own path differ by nature (the report: its date).
            if [
                "done.json",
                "training-log.json",
                "experiment.json",
                "model-card.json",
                "report.html",
            ]
            .contains(&name)
            {
                continue;
            }
            let text = std::fs::read(&path).unwrap();
            let text = String::from_utf8(text.clone())
                .map(|t| t.replace(dir.to_str().unwrap(), "OUT").into_bytes())
                .unwrap_or(text);
            out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), text);
        }
    }
    out
}

/// Runs side by side in worker processes give the same bytes as one at a time in the
/// experiment's own process, with the same threads per run: selections, adapted models
/// (the two-stage adaptation's first stage too), masks, tables.
#[test]
fn results_do_not_depend_on_the_number_of_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let run = |jobs: &str, out: &Path| {
        let o = experiment(
            &manifest,
            &config,
            out,
            &[
                "--adapts",
                "finetune,finetune+pseudo-2stage",
                "--jobs",
                jobs,
                "--threads",
                "1",
            ],
        );
        assert!(o.status.success(), "{}", describe(&o));
        stderr(&o)
    };
    let (serial, parallel) = (dir.path().join("serial"), dir.path().join("parallel"));
    run("1", &serial);
    let err = run("2", &parallel);
    // 3 queries x 3 adaptations (finetune+pseudo too), source-only, supervised; 2 domains.
    assert_eq!(err.matches(": running").count(), 22, "{err}");
    let (a, b) = (tree(&serial), tree(&parallel));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a
        .keys()
        .any(|k| k.ends_with("runs/C2/stdr+finetune+pseudo-2stage/model/stage-1/model.mpk")));
    for (path, bytes) in &a {
        assert!(
            b[path] == *bytes,
            "{} differs between --jobs 1 and --jobs 2",
            path.display()
        );
    }
}

#[test]
fn a_worker_given_no_experiment_says_so() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_delinea"))
        .arg("experiment-worker")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"not\": \"a spec\"}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(stderr(&o).contains("worker: not an experiment"), "{}", describe(&o));
}
