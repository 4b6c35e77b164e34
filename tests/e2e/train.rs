//! `delinea train` then `delinea predict` (and `delinea evaluate`) on a tiny synthetic cohort;
//! the same seed gives the same losses; bad inputs are clear errors with exit code 2.

use std::path::Path;

use crate::util::{delinea, describe};

fn losses(log: &Path) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(log).unwrap()).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn train_then_predict_on_a_tiny_cohort() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = dir.path().join("cohort");
    let c = cohort.to_str().unwrap();
    let out = delinea(&[
        "synth",
        "--out",
        c,
        "--seed",
        "2",
        "--centres",
        "2",
        "--cases-per-centre",
        "6",
        "--multi-rater-cases",
        "0",
        "--size",
        "32,32,8",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let manifest = cohort.join("manifest.json");
    let m = manifest.to_str().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"batch": 4, "tumour_fraction": 0.5, "validate_every": 10, "seed": 5,
            "preprocessing": {"slice_size": 32}, "model": {"features": [4, 8, 16], "dropout": [0.05, 0.1, 0.2]}}"#,
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let train = |name: &str| {
        let model = dir.path().join(name);
        let out = delinea(&[
            "train",
            "--manifest",
            m,
            "--centre",
            "C1",
            "--config",
            cfg,
            "--iterations",
            "20",
            "--device",
            "cpu",
            "--out",
            model.to_str().unwrap(),
            "--json",
            "--log-every",
            "5",
        ]);
        assert!(out.status.success(), "{}", describe(&out));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["iterations"], 20);
        // stderr is a pipe here: plain progress lines every 5 iterations, no bar redraws.
        let err = String::from_utf8_lossy(&out.stderr);
        let steps: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("iter") && l.contains("loss"))
            .collect();
        assert_eq!(steps.len(), 4, "{err}");
        assert!(
            steps[0].starts_with("iter      5/20") && err.contains("validation median DSC"),
            "{err}"
        );
        assert!(
            !err.contains('\r') && !err.contains('\u{1b}'),
            "terminal control codes in a log: {err:?}"
        );
        assert!(model.join("model-card.json").is_file() && model.join("model.mpk").is_file());
        losses(&model.join("training-log.json"))
    };
    let a = train("model-a");
    let b = train("model-b");
    assert_eq!(a.len(), 20);
    assert_eq!(a, b, "same seed, different losses");

    let model = dir.path().join("model-a");
    let preds = dir.path().join("preds");
    let out = delinea(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        m,
        "--split",
        "test",
        "--out",
        preds.to_str().unwrap(),
        "--probs",
        "--mc",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(preds.join("predictions.json")).unwrap()).unwrap();
    let rows = summary.as_array().unwrap();
    assert_eq!(rows.len(), 2, "one test case per centre");
    for row in rows {
        let case = row["case"].as_str().unwrap();
        for suffix in ["nii.gz", "prob.nii.gz", "entropy.nii.gz", "bald.nii.gz"] {
            assert!(preds.join(format!("{case}.{suffix}")).is_file(), "{case}.{suffix}");
        }
        assert_eq!(row["mc"]["samples"], 2);
    }
    // The masks are evaluable against the manifest (same grid as the labels).
    let results = dir.path().join("results.csv");
    let out = delinea(&[
        "evaluate",
        "--pred",
        preds.to_str().unwrap(),
        "--manifest",
        m,
        "--split",
        "test",
        "--out",
        results.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.code() != Some(2), "{}", describe(&out));
    assert!(results.is_file());

    // A single file as input, and a folder.
    let image = cohort.join("C2/images/C2-001.nii.gz");
    let single = dir.path().join("single");
    let out = delinea(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        image.to_str().unwrap(),
        "--out",
        single.to_str().unwrap(),
        "--device",
        "cpu",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(single.join("C2-001.nii.gz").is_file());

    // Bad inputs: exit 2 with the file named, never a panic.
    let junk = dir.path().join("junk.nii.gz");
    std::fs::write(&junk, b"definitely not a nifti").unwrap();
    let out = delinea(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--input",
        junk.to_str().unwrap(),
        "--out",
        single.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("junk.nii.gz"),
        "{}",
        describe(&out)
    );
    let out = delinea(&[
        "predict",
        "--model",
        dir.path().join("no-model").to_str().unwrap(),
        "--input",
        m,
        "--out",
        single.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-model"),
        "{}",
        describe(&out)
    );
    let out = delinea(&[
        "train",
        "--manifest",
        m,
        "--centre",
        "C9",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    std::fs::write(&config, r#"{"iteration": 3}"#).unwrap();
    let out = delinea(&[
        "train",
        "--manifest",
        m,
        "--centre",
        "C1",
        "--config",
        cfg,
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("config.json"),
        "{}",
        describe(&out)
    );
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
