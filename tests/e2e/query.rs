//! `delinea reference` then `delinea query` on a tiny synthetic cohort: selections of the
//! asked size, no row twice, the dual reference's far and near halves, and clear errors.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::util::{delinea, describe};

fn ok(args: &[&str]) -> Vec<u8> {
    let out = delinea(args);
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
    out.stdout
}

#[test]
fn reference_then_query_ranks_the_target_pool() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (cohort, model, refs) = (p("cohort"), p("model"), p("refs.json"));
    let manifest = format!("{cohort}/manifest.json");
    ok(&[
        "synth",
        "--out",
        &cohort,
        "--seed",
        "4",
        "--centres",
        "2",
        "--cases-per-centre",
        "5",
        "--multi-rater-cases",
        "0",
        "--size",
        "32,32,8",
        "--quiet",
    ]);
    let config = p("config.json");
    std::fs::write(&config, r#"{"batch": 4, "validate_every": 10, "preprocessing": {"slice_size": 32}, "model": {"features": [4, 8, 16], "dropout": [0.05, 0.1, 0.2]}}"#).unwrap();
    ok(&[
        "train",
        "--manifest",
        &manifest,
        "--centre",
        "C1",
        "--config",
        &config,
        "--iterations",
        "10",
        "--device",
        "cpu",
        "--out",
        &model,
        "--quiet",
    ]);
    // Reference points with the descriptor's softmax channel given (0: METHOD.md's default).
    let reference = |channel: &str, out: &str| {
        let args = [
            "reference",
            "--model",
            &model,
            "--manifest",
            &manifest,
            "--centre",
            "C1",
        ];
        let rest = [
            "--k",
            "5",
            "--descriptor-channel",
            channel,
            "--device",
            "cpu",
            "--out",
            out,
            "--quiet",
        ];
        delinea(&[&args[..], &rest[..]].concat())
    };
    let first = reference("0", &refs);
    assert!(first.status.success(), "{}", describe(&first));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&refs).unwrap()).unwrap();
    assert_eq!(r["format"], "delinea-references");
    assert_eq!(r["slices"], 3 * 8, "3 training volumes of 8 slices");
    let centroids = r["centroids"].as_array().unwrap();
    assert!(!centroids.is_empty() && centroids.len() <= 5);
    assert_eq!(
        centroids[0].as_array().unwrap().len(),
        256,
        "the paper's 16 x 16 grid, 2 px cells at 32 x 32"
    );
    assert_eq!(r["descriptor"]["grid"], 16, "the file records its grid");
    assert_eq!(
        r["descriptor"]["channel"], 0,
        "METHOD.md's default: the background channel"
    );
    // The tumour channel instead: recorded in the file, other reference points; a channel the
    // model does not have is refused.
    let refs1 = p("refs-tumour.json");
    assert!(reference("1", &refs1).status.success());
    let r1: Value = serde_json::from_str(&std::fs::read_to_string(&refs1).unwrap()).unwrap();
    assert_eq!(r1["descriptor"]["channel"], 1);
    assert_ne!(r1["centroids"], r["centroids"]);
    let bad = reference("2", &p("refs-bad.json"));
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--descriptor-channel 2 is not one of"));

    // C2's training split: 3 volumes x 8 slices = 24 rows; 25 % of them = 6.
    let query = |strategy: &str, extra: &[&str]| -> Value {
        let out = p(&format!("{strategy}.json"));
        let mut args = vec![
            "query",
            "--model",
            &model,
            "--refs",
            &refs,
            "--manifest",
            &manifest,
            "--centre",
            "C2",
        ];
        args.extend_from_slice(&[
            "--strategy",
            strategy,
            "--budget",
            "25%",
            "--mc",
            "2",
            "--device",
            "cpu",
            "--out",
            &out,
            "--quiet",
        ]);
        args.extend_from_slice(extra);
        ok(&args);
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
    };
    for strategy in ["stdr", "entropy", "random", "coreset"] {
        let s = query(strategy, &[]);
        let items = s["items"].as_array().unwrap();
        assert_eq!((s["pool_size"].as_u64(), items.len()), (Some(24), 6), "{strategy}");
        let rows: BTreeSet<u64> = items.iter().map(|i| i["index"].as_u64().unwrap()).collect();
        assert_eq!(rows.len(), 6, "{strategy}: a row twice");
        assert!(items.iter().all(|i| i["centre"] == "C2"));
    }
    let stdr = query("stdr", &[]);
    let reasons: Vec<&str> = stdr["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["far", "far", "far", "near", "near", "near"]);
    let scores: Vec<f64> = stdr["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert!(scores[0] >= scores[1] && scores[1] >= scores[2] && scores[3] <= scores[4] && scores[4] <= scores[5]);
    assert!(scores[2] >= scores[5], "the far half is farther than the near half");
    // Volume rows: 25 % of 3 volumes rounds to 1.
    let volumes = query("stdr", &["--unit", "volume", "--aggregate", "max"]);
    assert_eq!(
        (volumes["unit"].as_str(), volumes["pool_size"].as_u64()),
        (Some("volume"), Some(3))
    );
    assert_eq!(volumes["items"].as_array().unwrap().len(), 1);
    assert!(volumes["items"][0]["slice"].is_null());

    // The labels of the STDR selection plus pseudo-labels for the rest adapt the model.
    let adapted = p("adapted");
    let stdr_path = p("stdr.json");
    let adapt = |strategy: &str, out: &str| {
        delinea(&[
            "adapt",
            "--model",
            &model,
            "--selection",
            &stdr_path,
            "--manifest",
            &manifest,
            "--centre",
            "C2",
            "--strategy",
            strategy,
            "--config",
            &config,
            "--iterations",
            "3",
            "--device",
            "cpu",
            "--out",
            out,
            "--quiet",
        ])
    };
    let out = adapt("finetune+pseudo", &adapted);
    assert!(out.status.success(), "{}", describe(&out));
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{adapted}/adapt-plan.json")).unwrap()).unwrap();
    assert_eq!(
        plan["data"][1],
        serde_json::json!({"rows": "unselected", "labels": "pseudo"})
    );
    assert_eq!(plan["schedule"]["iterations"], 3);
    let preds = p("adapted-preds");
    ok(&[
        "predict", "--model", &adapted, "--input", &manifest, "--split", "test", "--centre", "C2", "--device", "cpu",
        "--out", &preds, "--quiet",
    ]);
    assert!(std::path::Path::new(&format!("{preds}/predictions.json")).is_file());
    // AdaBN: only the batch-norm running statistics move.
    let adabn = p("adabn");
    let out = adapt("adabn", &adabn);
    assert!(out.status.success(), "{}", describe(&out));
    let weights = |dir: &str| std::fs::read(format!("{dir}/model.mpk")).unwrap();
    assert_ne!(weights(&adabn), weights(&model), "AdaBN changed nothing");
    // Its pass draws dropout masks from the config's seed: a second run saves the same bytes.
    let again = p("adabn-again");
    assert!(adapt("adabn", &again).status.success());
    assert_eq!(weights(&again), weights(&adabn), "AdaBN is not deterministic");
    // Tent: entropy minimisation on the unlabelled C2 slices, batch-norm scale and shift only;
    // the result is a model `predict` loads.
    let tent = p("tent");
    let out = adapt("tent", &tent);
    assert!(out.status.success(), "{}", describe(&out));
    assert_ne!(weights(&tent), weights(&model), "Tent changed nothing");
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{tent}/adapt-plan.json")).unwrap()).unwrap();
    assert_eq!(
        (
            &plan["trainable"],
            &plan["schedule"]["optimizer"],
            &plan["schedule"]["lr"]
        ),
        (
            &Value::from("batch_norm_affine"),
            &Value::from("adam"),
            &Value::from(1e-3)
        )
    );
    let log: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{tent}/training-log.json")).unwrap()).unwrap();
    let steps = log["events"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert!(
        steps.iter().all(|e| e["entropy"].is_number() && e["ce"].is_null()),
        "{steps:?}"
    );
    let tent_preds = p("tent-preds");
    ok(&[
        "predict",
        "--model",
        &tent,
        "--input",
        &manifest,
        "--split",
        "test",
        "--centre",
        "C2",
        "--device",
        "cpu",
        "--out",
        &tent_preds,
        "--quiet",
    ]);
    assert!(std::path::Path::new(&format!("{tent_preds}/predictions.json")).is_file());

    // Clear errors, exit 2.
    let bad = |args: &[&str], text: &str| {
        let out = delinea(args);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(text),
            "{text}: {}",
            describe(&out)
        );
    };
    let sel = p("x.json");
    let base = [
        "query",
        "--model",
        &model,
        "--manifest",
        &manifest,
        "--centre",
        "C2",
        "--device",
        "cpu",
        "--out",
        &sel,
    ];
    bad(
        &[&base[..], &["--strategy", "stdr"]].concat(),
        "needs source reference points",
    );
    bad(
        &[&base[..], &["--strategy", "best"]].concat(),
        "unknown query strategy \"best\"",
    );
    bad(
        &[&base[..], &["--strategy", "entropy", "--budget", "150%"]].concat(),
        "bad budget",
    );
    bad(
        &[&base[..], &["--strategy", "mada", "--refs", &config]].concat(),
        "not a usable references file",
    );
    bad(
        &[
            "query",
            "--model",
            &model,
            "--manifest",
            &manifest,
            "--centre",
            "C9",
            "--strategy",
            "random",
            "--out",
            &sel,
        ],
        "no centre \"C9\"",
    );
}
