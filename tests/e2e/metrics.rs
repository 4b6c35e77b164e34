//! `delinea metrics`, `evaluate` and `compare` on small masks written here.

use std::path::{Path, PathBuf};

use delinea::volume::{self, Geometry, LabelMap, Volume};
use serde_json::{json, Value};

use crate::util::{delinea, describe};

fn geometry() -> Geometry {
    Geometry::axis_aligned([12, 10, 6], [0.5, 0.5, 3.0])
}

/// A box `lo <= (i, j, k) < hi` of label `v`, written to `path`.
fn write_box(path: &Path, lo: [usize; 3], hi: [usize; 3], v: u8) -> PathBuf {
    let g = geometry();
    let mut m = LabelMap::zeros(g.clone());
    for k in lo[2]..hi[2] {
        for j in lo[1]..hi[1] {
            for i in lo[0]..hi[0] {
                m.data[g.index(i, j, k)] = v;
            }
        }
    }
    volume::write_label_map(path, &m).unwrap();
    path.to_path_buf()
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(out)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn metrics_json_has_every_key_and_explicit_empties() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gt = write_box(&d.join("gt.nii.gz"), [2, 2, 1], [6, 6, 4], 1);
    // The same box one voxel (0.5 mm) along i: DSC 3/4, HD 0.5 mm.
    let pred = write_box(&d.join("pred.nii"), [3, 2, 1], [7, 6, 4], 1);
    let out = delinea(&["metrics", "--pred", s(&pred), "--gt", s(&gt), "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let v = json_of(&out);
    for key in [
        "dsc",
        "iou",
        "sensitivity",
        "precision",
        "rvd",
        "hd",
        "hd95",
        "hd95_max",
        "assd",
        "asd_pred_to_gt",
        "asd_gt_to_pred",
        "nsd",
        "outcome",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["dsc"], 0.75);
    assert_eq!(v["hd"], 0.5);
    assert_eq!(v["nsd"], 1.0);

    // Empty prediction: DSC 0, distances "inf"; both empty: distances null.
    let empty = write_box(&d.join("empty.nii.gz"), [0; 3], [0; 3], 1);
    let v = json_of(&delinea(&["metrics", "--pred", s(&empty), "--gt", s(&gt), "--json"]));
    assert_eq!(
        (v["outcome"].clone(), v["dsc"].clone(), v["hd95"].clone()),
        (json!("pred_empty"), json!(0.0), json!("inf"))
    );
    let v = json_of(&delinea(&["metrics", "--pred", s(&empty), "--gt", s(&empty), "--json"]));
    assert_eq!(
        (v["outcome"].clone(), v["dsc"].clone(), v["hd95"].clone()),
        (json!("both_empty"), json!(1.0), Value::Null)
    );

    // --label picks one label of a multi-label map.
    let multi = write_box(&d.join("multi.nii.gz"), [3, 2, 1], [7, 6, 4], 2);
    let v = json_of(&delinea(&[
        "metrics",
        "--pred",
        s(&multi),
        "--gt",
        s(&gt),
        "--json",
        "--label",
        "2",
    ]));
    assert_eq!(v["outcome"], "gt_empty");

    // Text output runs too.
    let out = delinea(&[
        "metrics",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--hd95",
        "max",
        "--timing",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HD95 (hd95_max)"),
        "{}",
        describe(&out)
    );
}

#[test]
fn metrics_on_different_grids_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let gt = write_box(&dir.path().join("gt.nii.gz"), [2, 2, 1], [6, 6, 4], 1);
    let other = dir.path().join("other.nii.gz");
    volume::write_label_map(
        &other,
        &LabelMap::zeros(Geometry::axis_aligned([12, 10, 7], [0.5, 0.5, 3.0])),
    )
    .unwrap();
    let out = delinea(&["metrics", "--pred", s(&other), "--gt", s(&gt)]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("other.nii.gz") && err.contains("gt.nii.gz"), "{err}");
}

/// A manifest of 4 test cases at two centres plus one training case; labels from rater r1.
fn cohort(d: &Path) -> PathBuf {
    let mut cases = Vec::new();
    for (n, (id, centre, split)) in [
        ("a1", "A", "test"),
        ("a2", "A", "test"),
        ("b1", "B", "test"),
        ("b2", "B", "test"),
        ("t1", "A", "train"),
    ]
    .into_iter()
    .enumerate()
    {
        volume::write_volume(&d.join(format!("{id}_img.nii.gz")), &Volume::zeros(geometry())).unwrap();
        write_box(&d.join(format!("{id}_r1.nii.gz")), [2, 2, 1], [6 + n % 3, 6, 4], 1);
        cases.push(json!({"id": id, "centre": centre, "image": format!("{id}_img.nii.gz"),
                          "labels": {"r1": format!("{id}_r1.nii.gz")}, "split": split}));
    }
    let m = json!({"name": "t", "centres": [{"id": "A", "role": "source"}, {"id": "B", "role": "target"}],
                   "raters": [{"id": "r1"}], "cases": cases});
    let path = d.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    path
}

#[test]
fn evaluate_then_compare() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = cohort(d);
    let (p1, p2) = (d.join("preds1"), d.join("preds2"));
    std::fs::create_dir_all(&p1).unwrap();
    std::fs::create_dir_all(&p2).unwrap();
    for (id, hi) in [("a1", 6), ("a2", 7), ("b1", 8)] {
        write_box(&p1.join(format!("{id}.nii.gz")), [2, 2, 1], [hi, 6, 4], 1);
        write_box(&p2.join(format!("{id}.nii")), [3, 3, 1], [hi, 6, 3], 1);
    }
    // b2 has no prediction in preds1, and an empty one in preds2.
    write_box(&p2.join("b2.nii.gz"), [0; 3], [0; 3], 1);

    let out1 = d.join("r1.csv");
    let out = delinea(&[
        "evaluate",
        "--pred",
        s(&p1),
        "--manifest",
        s(&manifest),
        "--out",
        s(&out1),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing prediction is a failure: {}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("case b2"),
        "{}",
        describe(&out)
    );
    let csv = std::fs::read_to_string(&out1).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "header + 4 test cases (the training case is not evaluated):\n{csv}"
    );
    assert!(lines[0].starts_with("case,centre,rater,outcome,dsc,"), "{csv}");
    assert!(lines[1].starts_with("a1,A,r1,ok,1,"), "{csv}");
    assert!(lines[4].starts_with("b2,B,r1,missing_prediction,,"), "{csv}");
    let summary = std::fs::read_to_string(d.join("r1.summary.csv")).unwrap();
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("B,dsc,1,") && l.ends_with(",1,0,0,1,0")),
        "{summary}"
    );
    assert!(summary.lines().any(|l| l.starts_with("all,dsc,3,")), "{summary}");
    // The report beside them: the summary table, a DSC box plot per centre (a point per
    // evaluated case), the cases.
    let page = std::fs::read_to_string(d.join("r1.report.html")).unwrap();
    assert!(
        page.contains("<section id=\"results\">") && page.contains("<td>all</td>"),
        "{page}"
    );
    for (centre, points) in [("A", 2), ("B", 1)] {
        let fig = page
            .split("<figure id=\"")
            .find(|f| f.starts_with(&format!("box-dsc-{centre}\"")))
            .unwrap();
        assert!(
            fig.contains(&format!("data-points=\"{points}\"")),
            "{centre}: {fig:.300}"
        );
    }
    assert!(d.join("r1.report/box-dsc-A.png").is_file());

    let out2 = d.join("r2.csv");
    let out = delinea(&[
        "evaluate",
        "--pred",
        s(&p2),
        "--manifest",
        s(&manifest),
        "--out",
        s(&out2),
        "--json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let summaries = json_of(&out);
    let b_hd95 = summaries
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["centre"] == "B" && x["metric"] == "hd95")
        .unwrap();
    assert_eq!(
        (b_hd95["failures"].clone(), b_hd95["summary"]["median"].clone()),
        (json!(1), json!("inf")),
        "{b_hd95}"
    );

    let out = delinea(&[
        "compare",
        s(&out1),
        s(&out2),
        "--metric",
        "dsc",
        "--metric",
        "hd95",
        "--json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let v = json_of(&out);
    let rows = v["comparisons"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "2 metrics x (A, B, all): {v}");
    let all_dsc = rows
        .iter()
        .find(|r| r["metric"] == "dsc" && r["centre"] == "all")
        .unwrap();
    assert_eq!(
        all_dsc["n"], 3,
        "b2 is missing in A, so unpaired for the metric: {all_dsc}"
    );
    assert_eq!(all_dsc["excluded"], 1);
    assert_eq!(all_dsc["test"]["method"], "exact");
    assert!(all_dsc["p_holm"].as_f64().unwrap() >= all_dsc["test"]["p_value"].as_f64().unwrap());
    let text = delinea(&["compare", s(&out1), s(&out2), "--metric", "dsc"]);
    assert!(text.status.success(), "{}", describe(&text));
    let bad = delinea(&["compare", s(&out1), s(&out2), "--metric", "nope"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
}
