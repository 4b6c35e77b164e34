//! `delinea experiment --replicates N` on the tiny cohort: replicate 0 is the run without
//! replicates byte for byte; other replicates have other source weights; one process, two
//! worker processes and two shards give the same bytes; an interrupted run resumes without
//! redoing finished units; the tables and `results.json` carry every replicate's medians.

use std::path::Path;

use serde_json::Value;

use crate::experiment::{cohort, experiment, stderr, tree};
use crate::util::describe;

const SERIAL: [&str; 4] = ["--threads", "1", "--jobs", "1"];

fn run(manifest: &str, config: &str, out: &Path, extra: &[&str]) -> String {
    let o = experiment(manifest, config, out, extra);
    assert!(o.status.success(), "{}", describe(&o));
    stderr(&o)
}

/// The files every finished experiment folder holds at its top.
const TOP: [&str; 6] = [
    "cases.csv",
    "results.json",
    "table.md",
    "table.csv",
    "summary.md",
    "report",
];

#[test]
fn replicate_zero_is_the_run_without_replicates_and_the_others_differ() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    run(&manifest, &config, &one, &SERIAL);
    let err = run(
        &manifest,
        &config,
        &two,
        &[&SERIAL[..], &["--replicates", "2"]].concat(),
    );
    assert!(err.contains("replicate 1 of 2"), "{err}");

    // Replicate 0: every file of the run without replicates, the same bytes (the pooled
    // outputs at the top aside: they hold the spread).
    let (a, b) = (tree(&one), tree(&two));
    let runs = |t: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        t.iter()
            .filter(|(p, _)| !TOP.iter().any(|top| p.starts_with(top)) && !p.starts_with("replicates"))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    let (ra, rb) = (runs(&a), runs(&b));
    assert!(ra.iter().any(|(p, _)| p.ends_with("source/model/model.mpk")));
    assert_eq!(ra.len(), rb.len());
    for ((pa, va), (pb, vb)) in ra.iter().zip(&rb) {
        assert_eq!(pa, pb);
        assert!(va == vb, "{} differs in replicate 0", pa.display());
    }

    // Replicate 1: its own folder, seeds and source weights.
    let weights = |root: &Path| std::fs::read(root.join("source/model/model.mpk")).unwrap();
    let r1 = two.join("replicates/1");
    assert!(
        weights(&one) != weights(&r1),
        "replicate 1 trained the same source weights"
    );
    assert!(r1.join("summary.md").is_file() && r1.join("report.html").is_file());
    let results: Value = serde_json::from_str(&std::fs::read_to_string(two.join("results.json")).unwrap()).unwrap();
    let reps = &results["replicates"];
    assert_eq!(reps["runs"][0]["seed"], 1, "replicate 0 keeps the config's seed");
    assert_ne!(reps["runs"][1]["seed"], 1);
    assert_eq!(reps["runs"][1]["folder"], "replicates/1");
    let c2 = &reps["domains"][0];
    assert_eq!(c2["domain"], "C2");
    let source_only = &c2["methods"][0];
    assert_eq!(source_only["method"], "source-only");
    let medians = source_only["dsc"]["values"].as_array().unwrap();
    assert_eq!(medians.len(), 2);
    // Replicate 0's median is the one-replicate table's, replicate 1's its own folder's.
    let median = |root: &Path| {
        let r: Value = serde_json::from_str(&std::fs::read_to_string(root.join("results.json")).unwrap()).unwrap();
        r["domains"][0]["methods"][0]["metrics"][0]["summary"]["median"].clone()
    };
    assert_eq!(medians[0], median(&one));
    assert_eq!(medians[1], median(&r1));
    let tests = c2["tests"].as_array().unwrap();
    assert!(!tests.is_empty() && tests.iter().all(|t| t["p_replicates"].as_array().unwrap().len() == 2));
    let summary = std::fs::read_to_string(two.join("summary.md")).unwrap();
    assert!(summary.contains("2 replicates (seeds 1, "), "{summary}");
    let table = std::fs::read_to_string(two.join("table.md")).unwrap();
    assert!(table.contains("## Across 2 replicates"), "{table}");
    let report = std::fs::read_to_string(two.join("report.html")).unwrap();
    assert!(
        report.contains("replicates-dsc-C2.png"),
        "no replicate figure in the report"
    );
    check_schema(&two.join("results.json"));
}

/// `results` validates against the committed `experiment-results` schema (Python's
/// jsonschema, which `.ci/run` installs).
fn check_schema(results: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data-schema/experiment-results.schema.json");
    let mut probe = std::process::Command::new("python3");
    probe.args(["-c", "import jsonschema"]);
    if !crate::util::reference_tool("python3 with jsonschema (pip install jsonschema)", &mut probe) {
        return;
    }
    let code = "import json, sys, jsonschema; \
        jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1]))); print('valid')";
    let o = std::process::Command::new("python3")
        .args(["-c", code])
        .arg(&schema)
        .arg(results)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} against {}: {}",
        results.display(),
        schema.display(),
        describe(&o)
    );
}

/// Two replicates with one process, with two worker processes, and as two shards (one after
/// another, then gathered) give the same bytes.
#[test]
fn replicates_do_not_depend_on_jobs_or_shards() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let reps = ["--replicates", "2", "--threads", "1"];
    let (serial, jobs, sharded) = (
        dir.path().join("serial"),
        dir.path().join("jobs"),
        dir.path().join("sharded"),
    );
    run(&manifest, &config, &serial, &[&reps[..], &["--jobs", "1"]].concat());
    run(&manifest, &config, &jobs, &[&reps[..], &["--jobs", "2"]].concat());
    for k in ["1/2", "0/2", "1/2"] {
        // Shard 1 owns replicate 1's source model: it trains it, then waits for shard 0's.
        let o = experiment(
            &manifest,
            &config,
            &sharded,
            &[&reps[..], &["--jobs", "1", "--shard", k, "--wait", "0"]].concat(),
        );
        let code = o.status.code();
        assert!(code == Some(0) || code == Some(75), "{}", describe(&o));
    }
    let gathered = crate::util::delinea(&["gather", sharded.to_str().unwrap(), "--quiet"]);
    assert!(gathered.status.success(), "{}", describe(&gathered));
    let a = tree(&serial);
    assert!(a
        .keys()
        .any(|k| k.ends_with("replicates/1/runs/C2/stdr+finetune+pseudo/selection.json")));
    for other in [&jobs, &sharded] {
        let b = tree(other);
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (path, bytes) in &a {
            assert!(b[path] == *bytes, "{} differs in {}", path.display(), other.display());
        }
    }
}

/// A 3-replicate run stopped part way (runs of replicates 1 and 2 unfinished, replicate 2's
/// source model too) redoes only those.
#[test]
fn an_interrupted_replicated_run_resumes_without_redoing_finished_units() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let out = dir.path().join("exp");
    let args = [&SERIAL[..], &["--replicates", "3"]].concat();
    run(&manifest, &config, &out, &args);
    let r1_run = out.join("replicates/1/runs/R2/entropy+finetune+pseudo");
    let r2 = out.join("replicates/2");
    std::fs::remove_file(r1_run.join("done.json")).unwrap();
    std::fs::remove_file(r2.join("source/done.json")).unwrap();
    for f in ["results.json", "summary.md"] {
        std::fs::remove_file(out.join(f)).unwrap();
    }
    let kept = std::fs::metadata(out.join("runs/C2/stdr+finetune+pseudo/cases.csv"))
        .unwrap()
        .modified()
        .unwrap();
    let err = run(&manifest, &config, &out, &args);
    // Replicate 2's source unit is redone; it trains the same weights again, so its finished
    // runs stand. Of 30 runs only replicate 1's unmarked one runs.
    let ran: Vec<&str> = err.lines().filter(|l| l.contains(": running")).collect();
    assert_eq!(ran.len(), 1, "{err}");
    assert!(ran[0].contains("R2 entropy+finetune+pseudo"), "{err}");
    assert_eq!(err.matches("source model: trained earlier, reused").count(), 2, "{err}");
    assert_eq!(err.matches("source model: trained in").count(), 1, "{err}");
    assert_eq!(err.matches("finished earlier, skipped").count(), 3 * 10 - 1, "{err}");
    let after = std::fs::metadata(out.join("runs/C2/stdr+finetune+pseudo/cases.csv"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(kept, after, "a finished run of replicate 0 was redone");
    assert!(out.join("results.json").is_file() && out.join("summary.md").is_file());
}
