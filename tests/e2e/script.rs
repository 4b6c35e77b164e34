//! Scripts through the command line: the shipped STDR policy selects exactly what the builtin
//! does, policies run inside `delinea query` and `delinea experiment` next to builtins, the
//! example written from scripts/README.md runs, the paper's protocol runs as a script, and a
//! broken script is `path:line:col: message` with exit 2.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{delinea, describe, tiny_cohort, tiny_model};

fn ok(args: &[&str]) -> String {
    let out = delinea(args);
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The repository's `scripts/` or `examples/` file `name`.
fn shipped(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// A tiny cohort, a source model trained for a few steps and its reference points.
fn fixture(dir: &Path) -> (String, String, String) {
    let manifest = tiny_cohort(&dir.join("cohort"), 5);
    let model = tiny_model(&manifest, &dir.join("model"), 10);
    let refs = dir.join("refs.json").to_str().unwrap().to_string();
    ok(&[
        "reference",
        "--model",
        &model,
        "--manifest",
        &manifest,
        "--centre",
        "C1",
        "--k",
        "5",
        "--device",
        "cpu",
        "--out",
        &refs,
    ]);
    (manifest, model, refs)
}

fn query(manifest: &str, model: &str, refs: &str, strategy: &str, out: &Path) -> Value {
    ok(&[
        "query",
        "--model",
        model,
        "--refs",
        refs,
        "--manifest",
        manifest,
        "--centre",
        "C2",
        "--strategy",
        strategy,
        "--budget",
        "30%",
        "--mc",
        "2",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

#[test]
fn the_stdr_script_selects_what_the_builtin_selects() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, model, refs) = fixture(dir.path());
    let builtin = query(&manifest, &model, &refs, "stdr", &dir.path().join("builtin.json"));
    let script = format!("script:{}", shipped("scripts/stdr.rhai"));
    let scripted = query(&manifest, &model, &refs, &script, &dir.path().join("script.json"));
    assert_eq!(scripted["strategy"], Value::from(script.clone()));
    assert_eq!(builtin["strategy"], "stdr");
    assert!(builtin["items"].as_array().unwrap().len() > 4);
    assert_eq!(
        builtin["items"], scripted["items"],
        "the ranked selection, far and near, scores and all"
    );
    assert_eq!(builtin["pool_size"], scripted["pool_size"]);

    // A policy that spreads uncertain picks over patients: at most 3 per case.
    let spread = query(
        &manifest,
        &model,
        &refs,
        &format!("script:{}", shipped("scripts/uncertainty_diversity.rhai")),
        &dir.path().join("spread.json"),
    );
    let items = spread["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        let case = &item["case"];
        assert!(
            items.iter().filter(|i| i["case"] == *case).count() <= 3,
            "{case} picked more than 3 times"
        );
        assert_eq!(item["reason"], "uncertain");
    }
    // The example a new user wrote from scripts/README.md alone.
    let mine = query(
        &manifest,
        &model,
        &refs,
        &format!("script:{}", shipped("examples/policies/uncertain_patients.rhai")),
        &dir.path().join("mine.json"),
    );
    assert_eq!(
        mine["items"].as_array().unwrap().len(),
        builtin["items"].as_array().unwrap().len()
    );
}

#[test]
fn scripts_run_in_an_experiment_next_to_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    tiny_cohort(&d.join("cohort"), 6);
    let script = format!("script:{}", shipped("scripts/stdr.rhai"));
    let config = serde_json::json!({
        "source": {"iterations": 10, "batch": 4, "validate_every": 5, "preprocessing": {"slice_size": 32},
                   "model": {"features": [4, 8, 16], "dropout": [0.05, 0.1, 0.2]}},
        "adaptation": {"iterations": 2, "batch": 4},
        "queries": ["stdr", script],
        "adapts": ["finetune"],
        "mc_samples": 2, "references": {"k": 5}
    });
    std::fs::write(p("exp.json"), config.to_string()).unwrap();
    ok(&[
        "experiment",
        "--manifest",
        &p("cohort/manifest.json"),
        "--source",
        "C1",
        "--targets",
        "C2",
        "--config",
        &p("exp.json"),
        "--device",
        "cpu",
        "--log-every",
        "0",
        "--out",
        &p("exp"),
        "--quiet",
    ]);
    let runs: Vec<PathBuf> = std::fs::read_dir(d.join("exp/runs/C2"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let scripted = runs
        .iter()
        .find(|r| r.to_str().unwrap().contains("script_"))
        .expect("the script's run folder");
    let read = |dir: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("selection.json")).unwrap()).unwrap()
    };
    assert_eq!(
        read(scripted)["items"],
        read(&d.join("exp/runs/C2/stdr+finetune"))["items"]
    );
    let table = std::fs::read_to_string(d.join("exp/table.md")).unwrap();
    assert!(table.contains(&format!("| C2 | {script}+finetune |")), "{table}");
}

#[test]
fn the_paper_protocol_runs_as_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("work")).unwrap();
    let cohort = d.join("work/cohort");
    tiny_cohort(&cohort, 7);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_delinea"))
        .current_dir(d)
        .args([
            "run",
            &shipped("scripts/paper_protocol.rhai"),
            "--allow",
            "work",
            "--device",
            "cpu",
            "--set",
            "manifest=work/cohort/manifest.json",
            "--set",
            "out=work/protocol",
            "--set",
            "targets=C2",
            "--set",
            "queries=random,stdr",
            "--set",
            "adapts=finetune",
            "--set",
            "source_iterations=10",
            "--set",
            "adapt_iterations=2",
            "--set",
            "slice_size=32",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for method in ["source-only", "random+finetune", "stdr+finetune", "supervised"] {
        assert!(table.contains(&format!("| C2 | {method} |")), "{method}:\n{table}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("work/protocol/table.md")).unwrap(),
        table.trim_end().to_string() + "\n"
    );
    assert!(d.join("work/protocol/source/model-card.json").is_file());
    assert!(d.join("work/protocol/C2/stdr+finetune/model/adapt-plan.json").is_file());
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("work/protocol/C2/results.json")).unwrap()).unwrap();
    assert!(results["supervised"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["dsc"].is_number() || r["dsc"].is_null()));
    // Without --allow, the same script may not touch the cohort.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_delinea"))
        .current_dir(d)
        .args([
            "run",
            &shipped("scripts/paper_protocol.rhai"),
            "--set",
            "manifest=work/cohort/manifest.json",
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no folder was allowed"),
        "{}",
        describe(&refused)
    );
}

#[test]
fn a_broken_script_is_its_path_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.rhai");
    std::fs::write(
        &script,
        "fn select(pool, budget) {\n    let x = pool.col(\"entropy\") * ;\n}\n",
    )
    .unwrap();
    let out = delinea(&["run", "--check", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:", script.display())), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let set = delinea(&["run", "--set", "novalue", script.to_str().unwrap()]);
    assert_eq!(set.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&set.stderr).contains("expected key=value"),
        "{}",
        describe(&set)
    );
}

#[test]
fn an_adaptation_policy_plans_through_delinea_adapt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (manifest, model, refs) = fixture(d);
    let selection = d.join("selection.json");
    query(&manifest, &model, &refs, "stdr", &selection);
    let plan = d.join("half_lr.rhai");
    // The README's example, as written there.
    std::fs::write(
        &plan,
        "fn plan(state) {\n    let schedule = state.schedule;\n    schedule.lr = schedule.lr / 2.0;\n    #{\n        data: [#{ rows: \"selected\", labels: \"true\" }],\n        trainable: \"all\", batch_norm: \"train\",\n        loss: [#{ term: \"segmentation\", weight: 1.0 }],\n        schedule: schedule,\n    }\n}\n",
    )
    .unwrap();
    let adapt = |strategy: &str, out: &str| {
        delinea(&[
            "adapt",
            "--model",
            &model,
            "--selection",
            selection.to_str().unwrap(),
            "--manifest",
            &manifest,
            "--centre",
            "C2",
            "--strategy",
            strategy,
            "--iterations",
            "2",
            "--batch",
            "4",
            "--device",
            "cpu",
            "--out",
            d.join(out).to_str().unwrap(),
            "--quiet",
        ])
    };
    let name = format!("script:{}", plan.display());
    let out = adapt(&name, "adapted");
    assert!(out.status.success(), "{}", describe(&out));
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("adapted/adapt-plan.json")).unwrap()).unwrap();
    assert_eq!(written["strategy"], Value::from(name));
    assert_eq!(written["target"], "C2");
    assert_eq!(written["schedule"]["lr"], 0.015, "the policy halved the default 0.03");
    assert_eq!(written["schedule"]["iterations"], 2);
    // A plan with a wrong field is refused, the field named.
    let bad = d.join("bad_plan.rhai");
    std::fs::write(&bad, "fn plan(state) {\n    #{ data: [], trainable: \"all\", batch_norm: \"train\", loss: [#{ term: \"dice\", weight: 1.0 }] }\n}\n").unwrap();
    let out = adapt(&format!("script:{}", bad.display()), "bad");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("loss[0]") && err.contains("unknown variant `dice`"),
        "{err}"
    );
}

/// A protocol that uses the model, volume and metrics functions directly, and adapts with a
/// plan map.
#[test]
fn a_protocol_reads_volumes_predicts_scores_and_adapts_with_a_plan_map() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (manifest, model, refs) = fixture(d);
    query(&manifest, &model, &refs, "stdr", &d.join("selection.json"));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let case = m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["centre"] == "C2")
        .unwrap()
        .clone();
    let rel = |p: &Value| -> String {
        let p = Path::new(p.as_str().unwrap());
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            Path::new(&manifest).parent().unwrap().join(p)
        };
        full.strip_prefix(d).unwrap().to_str().unwrap().to_string()
    };
    let image = rel(&case["image"]);
    let label = rel(case["labels"].as_object().unwrap().values().next().unwrap());
    let script = d.join("protocol.rhai");
    std::fs::write(
        &script,
        format!(
            r#"
let model = load_model("model");
let v = load_volume("{image}");
let truth = load_labels("{label}");
let p = model.predict(v);
let u = model.uncertainty(v, 2);
let d = model.descriptors(v);
let m = metrics(p.mask, truth);
let parts = truth.components();
let selection = read_json("selection.json");
let adapted = adapt_model(model, selection, #{{
    manifest: "cohort/manifest.json", centre: "C2", iterations: 2, batch: 4, select: "last", out: "adapted",
    plan: #{{ data: [#{{ rows: "selected", labels: "true" }}], trainable: "all", batch_norm: "train",
             loss: [#{{ term: "segmentation", weight: 1.0 }}] }},
}});
write_labels(p.mask, "mask.nii.gz");
#{{ dims: v.geometry().dims, slices: u.slice_entropy.len(), descriptor: d[0].len(),
    dice: m.dsc, same_dice: dice(p.mask, truth) == m.dsc, components: parts.max_label(),
    adapted: type_of(adapted) }}
"#
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_delinea"))
        .current_dir(d)
        .args(["run", script.to_str().unwrap(), "--allow", ".", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("\"slices\": 8") && printed.contains("\"descriptor\": 256"),
        "{printed}"
    );
    assert!(
        printed.contains("\"same_dice\": true") && printed.contains("\"adapted\": \"Model\""),
        "{printed}"
    );
    assert!(printed.contains("\"components\": 1"), "{printed}");
    assert!(d.join("mask.nii.gz").is_file() && d.join("adapted/model.mpk").is_file());
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("adapted/adapt-plan.json")).unwrap()).unwrap();
    assert_eq!(
        (plan["strategy"].as_str(), plan["data"].as_array().map(Vec::len)),
        (Some("plan map"), Some(1))
    );
}
