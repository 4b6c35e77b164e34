//! Native plugins: the example plugins inside `delinea query`, `adapt` and `experiment` like
//! builtins; every misbehaving plugin refused with a clear error while the host keeps running;
//! files that are not plugins (another ABI major, `panic = "abort"`, the system's libz, a text
//! file, an ordinary library) refused before any of their code runs; `plugins inspect`
//! surviving a plugin that aborts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use delinea::strategy::query::{Budget, Candidate, CandidatePool, Scores, Unit};
use delinea::strategy::Resolver;
use serde_json::Value;

use crate::util::{delinea, describe, tiny_cohort, tiny_model};

/// The workspace's `target` folder (the test binary is in `target/release/deps`).
fn target() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Builds the plugin crates (once) into a target folder of their own and returns where the
/// libraries are: `cargo test` builds no `cdylib` that no test target links.
fn built(packages: &[&str], dir: &str, rustflags: Option<&str>) -> PathBuf {
    let target_dir = target().join(dir);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--quiet", "--target-dir"])
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    match rustflags {
        Some(flags) => cmd.env("RUSTFLAGS", flags),
        None => cmd.env_remove("RUSTFLAGS"),
    };
    let out = cmd.output().expect("cargo runs");
    assert!(out.status.success(), "building {packages:?}: {}", describe(&out));
    target_dir.join("release")
}

fn plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        built(
            &[
                "margin-diverse",
                "scaled-finetune",
                "first-plugin",
                "misbehave",
                "raw-plan",
                "not-a-plugin",
                "crash-on-load",
            ],
            "plugin-fixtures",
            None,
        )
    })
}

fn lib(name: &str) -> String {
    plugins()
        .join(format!("lib{}.so", name.replace('-', "_")))
        .to_str()
        .unwrap()
        .to_string()
}

fn pool(n: usize) -> CandidatePool {
    let rows = (0..n)
        .map(|i| Candidate {
            case: format!("case{}", i / 10),
            centre: "C2".into(),
            slice: Some(i % 10),
            scores: Scores {
                margin: Some(((i * 37) % 101) as f32 / 100.0),
                ..Scores::default()
            },
            descriptor: vec![],
            features: vec![],
        })
        .collect();
    CandidatePool {
        unit: Unit::Slice,
        rows,
    }
}

#[test]
fn a_misbehaving_plugin_is_a_clear_error_and_the_host_goes_on() {
    let r = Resolver::new();
    let p = pool(40);
    let run = |mode: &str| {
        let q = r
            .resolve_query(&format!("plugin:{}?mode={mode}", lib("misbehave")))
            .unwrap();
        q.select(&p, Budget::Count(5), 0).map_err(|e| e.to_string())
    };
    for (mode, expected) in [
        ("panic", "panicked at plugins/testing/misbehave/src/lib.rs"),
        ("error", "failed: misbehave was told to fail"),
        (
            "out_of_range",
            "returned row 45 at position 1, outside the pool's rows 0..40",
        ),
        ("duplicate", "returned row 1 twice"),
        ("too_many", "returned 6 rows for a budget of 5"),
        ("nan", "non-finite score NaN"),
    ] {
        let e = run(mode).unwrap_err();
        assert!(
            e.contains(expected) && e.contains("(plugin misbehave 0.1.0)"),
            "{mode}: {e}"
        );
    }
    // The same library, still loaded, answers the next call.
    let ok = run("ok").unwrap();
    assert_eq!(ok.items.len(), 5);
    // A plan that is not JSON.
    let plan = r.resolve_adapt(&format!("plugin:{}", lib("raw-plan"))).unwrap();
    let state = delinea::strategy::adapt::AdaptState {
        selection: ok,
        target: "C2".into(),
        schedule: Default::default(),
    };
    let e = plan.plan(&state).unwrap_err().to_string();
    assert!(e.contains("returned a plan that is not JSON"), "{e}");
    // A kind mismatch.
    let e = r
        .resolve_adapt(&format!("plugin:{}", lib("misbehave")))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not an adaptation plugin"), "{e}");
}

#[test]
fn a_plugin_is_loaded_once_even_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("libalias.so");
    std::os::unix::fs::symlink(lib("margin-diverse"), &link).unwrap();
    let a = delinea::plugin::load::load(Path::new(&lib("margin-diverse"))).unwrap();
    let b = delinea::plugin::load::load(&link).unwrap();
    assert!(std::ptr::eq(a, b), "one instance per real file");
    assert_eq!(a.info.name, "margin-diverse");
}

/// An image of the cohort of `query_with`.
static COHORT_IMAGE: OnceLock<String> = OnceLock::new();

/// The tiny cohort (manifest, model) the command-line tests share, made once.
fn cohort() -> &'static (tempfile::TempDir, String, String) {
    static COHORT: OnceLock<(tempfile::TempDir, String, String)> = OnceLock::new();
    COHORT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let manifest = tiny_cohort(&dir.path().join("cohort"), 8);
        let model = tiny_model(&manifest, &dir.path().join("model"), 5);
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        let image = m["cases"][0]["image"].as_str().unwrap();
        let image = Path::new(&manifest).parent().unwrap().join(image);
        let _ = COHORT_IMAGE.set(image.to_str().unwrap().to_string());
        (dir, manifest, model)
    })
}

/// Runs `delinea query` with `strategy` on the tiny cohort; the output.
fn query_with(strategy: &str, env: &[(&str, &str)]) -> std::process::Output {
    let (_, manifest, model) = cohort();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_delinea"));
    cmd.args([
        "query",
        "--model",
        model,
        "--manifest",
        manifest,
        "--centre",
        "C2",
        "--strategy",
        strategy,
        "--mc",
        "2",
        "--device",
        "cpu",
        "--out",
    ])
    .arg(out.path())
    .args(["--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn files_that_are_not_plugins_of_this_abi_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |strategy: &str, text: &str| {
        let marker = dir.path().join("marker");
        let o = query_with(strategy, &[("DELINEA_TEST_INIT_MARKER", marker.to_str().unwrap())]);
        assert_eq!(o.status.code(), Some(2), "{strategy}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(text) && !err.contains("panicked"), "{strategy}: {err}");
        assert!(!marker.exists(), "{strategy}: its initialiser ran");
    };
    // An ordinary library with an initialiser, the system's libz, a text file named .so.
    refused(
        &format!("plugin:{}", lib("not-a-plugin")),
        "no delinea plugin descriptor",
    );
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib64/libz.so.1",
        "/usr/lib/libz.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("the system's libz (zlib1g) is installed");
    refused(&format!("plugin:{libz}"), "no delinea plugin descriptor");
    let text = dir.path().join("notes.so");
    std::fs::write(&text, "this is not a library\n").unwrap();
    refused(
        &format!("plugin:{}", text.display()),
        "not a shared library for this machine",
    );
    // Another ABI major: a copy of a good plugin with its descriptor's major patched.
    let mut bytes = std::fs::read(lib("margin-diverse")).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == delinea_plugin_api::abi::MAGIC)
        .unwrap();
    bytes[at + 8..at + 12].copy_from_slice(&2u32.to_ne_bytes());
    let other = dir.path().join("libabi2.so");
    std::fs::write(&other, &bytes).unwrap();
    refused(
        &format!("plugin:{}", other.display()),
        "built against plugin ABI 2.0; this delinea speaks ABI 1",
    );
    // Built with panic = "abort" (for real, in a target folder of its own).
    let abort = built(&["misbehave"], "plugin-abort", Some("-C panic=abort"));
    refused(
        &format!("plugin:{}", abort.join("libmisbehave.so").display()),
        "built with panic = \"abort\"",
    );
    // The marker does appear when the ordinary library is loaded: the check above is real.
    let marker = dir.path().join("loaded");
    std::env::set_var("DELINEA_TEST_INIT_MARKER", &marker);
    #[allow(unsafe_code)]
    // SAFETY: loading a test fixture whose only code is an initialiser writing a file.
    let library = unsafe { libloading::Library::new(lib("not-a-plugin")) }.unwrap();
    assert!(marker.exists(), "the fixture's initialiser ran when loaded");
    drop(library);
}

#[test]
fn inspect_survives_a_plugin_that_aborts_while_loading() {
    let o = delinea(&["plugins", "inspect", &lib("crash-on-load")]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("crash-on-load 0.1.0")
            && out.contains("loads: no: loading it killed the probe process with signal 6"),
        "{out}"
    );
    let o = delinea(&["plugins", "inspect", &lib("margin-diverse"), "--json"]);
    assert!(o.status.success(), "{}", describe(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            v["loads"].as_bool(),
            v["plugin"]["kind"].as_str(),
            v["plugin"]["needs"][0].as_str()
        ),
        (Some(true), Some("query"), Some("margin"))
    );
    let o = delinea(&["plugins", "list", "--json", "--plugin-dir", plugins().to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for n in [
        "margin-diverse",
        "scaled-finetune",
        "misbehave",
        "raw-plan",
        "crash-on-load",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    assert!(v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("not_a_plugin")));
}

#[test]
fn example_plugins_run_inside_query_adapt_and_experiment_like_builtins() {
    let o = query_with(&format!("plugin:{}?per_case=1", lib("margin-diverse")), &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = s["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let cases: std::collections::BTreeSet<&str> = items.iter().map(|i| i["case"].as_str().unwrap()).collect();
    assert_eq!(cases.len(), items.len(), "one per case");
    // By name from a plugin folder.
    let o = query_with(
        "plugin:margin-diverse",
        &[("DELINEA_PLUGIN_PATH", plugins().to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", describe(&o));

    // An experiment with a query plugin and an adaptation plugin next to builtins.
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    tiny_cohort(&dir.path().join("cohort"), 9);
    let config = serde_json::json!({
        "source": {"iterations": 6, "batch": 4, "validate_every": 3, "preprocessing": {"slice_size": 32},
                   "model": {"features": [4, 8, 16], "dropout": [0.05, 0.1, 0.2]}},
        "adaptation": {"iterations": 4, "batch": 4},
        "queries": ["stdr", "plugin:margin-diverse"],
        "adapts": ["finetune", "plugin:scaled-finetune?min_iterations=2"],
        "mc_samples": 2, "references": {"k": 5}
    });
    std::fs::write(p("exp.json"), config.to_string()).unwrap();
    let o = delinea(&[
        "--plugin-dir",
        plugins().to_str().unwrap(),
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
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let table = std::fs::read_to_string(dir.path().join("exp/table.md")).unwrap();
    for m in [
        "plugin:margin-diverse+finetune",
        "plugin:margin-diverse+plugin:scaled-finetune?min_iterations=2",
        "stdr+plugin:scaled-finetune?min_iterations=2",
    ] {
        assert!(table.contains(&format!("| C2 | {m} |")), "{m}:\n{table}");
    }
    let plan: Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join("exp/runs/C2/stdr+plugin_scaled-finetune_min_iterations_2/adapt-plan.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        plan["schedule"]["iterations"], 4,
        "ceil(5 x selected / 4) capped at the schedule's 4"
    );
}

/// The plugin written from plugins/README.md alone (examples/plugins/first-plugin) loads and
/// ranks through `delinea query`, found by its name.
#[test]
fn the_plugin_written_from_the_readme_loads_and_ranks() {
    let o = delinea(&["plugins", "inspect", &lib("first-plugin")]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("most-uncertain 0.1.0 (query plugin"),
        "{}",
        describe(&o)
    );
    let o = query_with(
        "plugin:most-uncertain",
        &[("DELINEA_PLUGIN_PATH", plugins().to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let scores: Vec<f64> = s["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert!(
        !scores.is_empty() && scores.windows(2).all(|w| w[0] >= w[1]),
        "entropy falls: {scores:?}"
    );
}

/// A plugin reads a volume, computes metrics and runs the command's model through the host's
/// services, with no NIfTI or burn code of its own; a file outside the manifest's folder is
/// refused.
#[test]
fn a_plugin_uses_the_hosts_services() {
    let probe = query_with("random", &[]); // makes the cohort
    assert!(probe.status.success(), "{}", describe(&probe));
    let image = COHORT_IMAGE.get().expect("query_with set it").clone();
    let o = query_with(
        &format!("plugin:{}?mode=services&volume={image}", lib("misbehave")),
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("services: dims [") && err.contains("dice 0.8"), "{err}");
    // 2 slices of 2 classes of 32 x 32, then 3 MC samples of one.
    assert!(err.contains("probabilities 4096, mc 6144"), "{err}");
    let o = query_with(
        &format!("plugin:{}?mode=services&volume=/etc/hostname", lib("misbehave")),
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("outside the allowed folders"), "{err}");
}
