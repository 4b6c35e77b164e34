//! `delinea validate`: every problem of a manifest, each with its case id, and exit codes.

use std::path::Path;

use delinea::volume::{self, Geometry, LabelMap, Volume};
use serde_json::{json, Value};

use crate::util::{delinea, describe};

fn write_case(dir: &Path, name: &str, g: &Geometry) {
    volume::write_volume(&dir.join(format!("{name}.nii.gz")), &Volume::zeros(g.clone())).unwrap();
    volume::write_label_map(&dir.join(format!("{name}_gt.nii.gz")), &LabelMap::zeros(g.clone())).unwrap();
}

fn manifest(cases: Value) -> Value {
    json!({
        "name": "test",
        "centres": [{"id": "A", "role": "source"}, {"id": "B", "role": "target", "reference_rater": "r1"}],
        "raters": [{"id": "r1"}, {"id": "r2"}],
        "cases": cases
    })
}

#[test]
fn validate_reports_every_problem_with_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = Geometry::axis_aligned([6, 5, 4], [1.0, 1.0, 3.0]);
    write_case(d, "good", &g);
    write_case(d, "other", &Geometry::axis_aligned([6, 5, 5], [1.0, 1.0, 3.0]));
    std::fs::write(d.join("corrupt.nii.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();
    let m = manifest(json!([
        {"id": "ok-1", "centre": "A", "image": "good.nii.gz", "labels": {"r1": "good_gt.nii.gz"}, "split": "train"},
        {"id": "unlabelled", "centre": "B", "image": "good.nii.gz", "split": "test"},
        {"id": "no-image", "centre": "B", "image": "missing.nii.gz", "labels": {"r1": "good_gt.nii.gz"}, "split": "test"},
        {"id": "off-grid", "centre": "B", "image": "good.nii.gz", "labels": {"r1": "good_gt.nii.gz", "r2": "other_gt.nii.gz"}, "split": "val"},
        {"id": "bad-gz", "centre": "B", "image": "corrupt.nii.gz", "labels": {"r2": "missing_gt.nii.gz"}, "split": "train"}
    ]));
    let path = d.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();

    let out = delinea(&["validate", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["case"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |case: &str, text: &str| problems.iter().any(|(c, m)| c == case && m.contains(text));
    assert!(has("no-image", "missing.nii.gz"), "{problems:?}");
    assert!(
        has("off-grid", "other_gt.nii.gz") && has("off-grid", "dims"),
        "{problems:?}"
    );
    assert!(has("bad-gz", "corrupt or truncated gzip"), "{problems:?}");
    assert!(
        has("bad-gz", "missing_gt.nii.gz"),
        "the labels of a case with a bad image are checked too: {problems:?}"
    );
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert_eq!(report["cases"], 5);
    assert_eq!(report["counts"]["B"]["test"], 2);
}

#[test]
fn a_clean_manifest_validates_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    write_case(dir.path(), "good", &Geometry::axis_aligned([6, 5, 4], [1.0, 1.0, 3.0]));
    let m = manifest(json!([
        {"id": "ok-1", "centre": "A", "image": "good.nii.gz", "labels": {"r1": "good_gt.nii.gz"}, "split": "train"}
    ]));
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, m.to_string()).unwrap();
    let out = delinea(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 cases, 1 label maps, 0 problem(s)"));
}

#[test]
fn structural_errors_are_listed_together_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(json!([
        {"id": "x", "centre": "Z", "image": "a.nii.gz", "labels": {"r9": "b.nii.gz"}, "split": "train"},
        {"id": "x", "centre": "A", "image": "a.nii.gz", "split": "test"}
    ]));
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, m.to_string()).unwrap();
    let out = delinea(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for text in [
        "manifest.json",
        "unknown centre \"Z\"",
        "unknown rater \"r9\"",
        "case id \"x\" appears twice",
    ] {
        assert!(err.contains(text), "{text}: {err}");
    }
    // Unknown fields and bad JSON name the line.
    std::fs::write(&path, r#"{"centres": [], "cases": [], "colour": 1}"#).unwrap();
    let out = delinea(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"),
        "{}",
        describe(&out)
    );
}
