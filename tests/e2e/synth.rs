//! `delinea synth` writes a cohort that `delinea validate` accepts, and the same seed writes
//! the same bytes.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_delinea"))
        .args(args)
        .output()
        .expect("the delinea binary runs")
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn synth_then_validate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cohort");
    let out_s = out.to_str().unwrap();
    let tiny = [
        "--centres",
        "3",
        "--cases-per-centre",
        "2",
        "--raters",
        "2",
        "--multi-rater-cases",
        "2",
        "--size",
        "32,32,10",
    ];
    let mut args = vec!["synth", "--out", out_s, "--seed", "4", "--json"];
    args.extend(tiny);
    let synth = run(&args);
    assert_eq!(synth.status.code(), Some(0), "{}", show(&synth));
    let summary: serde_json::Value = serde_json::from_slice(&synth.stdout).expect("--json prints one JSON object");
    assert_eq!(summary["cases"], 8);
    assert_eq!(summary["centres"].as_array().map(Vec::len), Some(4));
    assert_eq!(summary["centres"][0]["role"], "source");
    assert!(out.join("synth-summary.json").is_file());

    let manifest = out.join("manifest.json");
    let validate = run(&["validate", manifest.to_str().unwrap()]);
    assert_eq!(validate.status.code(), Some(0), "{}", show(&validate));

    // Same seed, same bytes; a bad size is a clear error, not a panic.
    let again = dir.path().join("again");
    let mut args = vec!["synth", "--out", again.to_str().unwrap(), "--seed", "4", "--quiet"];
    args.extend(tiny);
    let second = run(&args);
    assert_eq!(second.status.code(), Some(0), "{}", show(&second));
    for rel in ["manifest.json", "C1/images/C1-001.nii.gz", "MR/labels/R2/MR-002.nii.gz"] {
        assert_eq!(
            std::fs::read(out.join(rel)).unwrap(),
            std::fs::read(again.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let bad = run(&["synth", "--out", out_s, "--size", "32,32"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    let bad = run(&["synth", "--out", out_s, "--size", "4,32,32"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("size"), "{}", show(&bad));
}
