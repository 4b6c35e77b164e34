//! The sandbox and its limits: every kind of error with its path, line and column, runaway
//! scripts stopped, closures' work stopped by the deadline, comparators that fail loudly,
//! `eval`, `import` and paths outside the allowed folders refused; and the policy contract.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::strategy::ScriptQuery;
use super::{Limits, Sandbox, ScriptError, ScriptHost, Session};
use crate::device::Device;
use crate::strategy::query::{Budget, Candidate, CandidatePool, QueryStrategy, Scores, Unit};

/// A host with a short deadline and few operations, and the folder its scripts live in.
fn host(dir: &Path, limits: Limits) -> Arc<ScriptHost> {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let sandbox = Sandbox::new(&[PathBuf::from("data")], dir).unwrap();
    ScriptHost::new(Session::new(sandbox, Device::Cpu, |_| {}), limits)
}

fn quick() -> Limits {
    Limits {
        max_operations: 5_000_000,
        deadline: Duration::from_millis(800),
        ..Limits::default()
    }
}

/// Runs `text` as the top-level code of `dir/name`; the error it ends with.
fn fails(dir: &Path, name: &str, text: &str, limits: Limits) -> ScriptError {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let h = host(dir, limits);
    let script = match h.compile(&path) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut scope = rhai::Scope::new();
    h.run(&script, &mut scope, 0).expect_err("the script should fail")
}

#[test]
fn every_error_names_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = fails(d, "syntax.rhai", "let x = ;\n", quick());
    assert_eq!((e.line, e.column), (Some(1), Some(9)), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:1:9: ", d.join("syntax.rhai").display())),
        "{e}"
    );
    let e = fails(d, "typo.rhai", "let total = 1;\nlet y = totl + 1;\n", quick());
    assert_eq!(e.line, Some(2), "a typo is a compile error: {e}");
    assert!(e.message.contains("totl"), "{e}");
    let e = fails(
        d,
        "runtime.rhai",
        "fn inner(x) {\n  throw `bad ${x}`;\n}\nfn outer() { inner(3) }\nouter();\n",
        quick(),
    );
    assert_eq!(
        (e.line, e.column),
        (Some(2), Some(3)),
        "where it happened, not where it was called: {e}"
    );
    assert!(e.message.starts_with("bad 3 (in outer(), in inner())"), "{e}");
    let e = fails(d, "type.rhai", "let s = \"a\";\nlet t = s * [1];\n", quick());
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("Function not found"), "{e}");
    let e = fails(
        d,
        "native.rhai",
        "let v = vector([1, 2]);\nlet w = v + vector([1]);\n",
        quick(),
    );
    assert!(
        e.message.contains("lengths differ (2 and 1)") && e.line == Some(2),
        "{e}"
    );
}

#[test]
fn runaway_scripts_are_stopped_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The operation cap, with a deadline far enough away that a loaded machine (CI, a build
    // beside it) cannot reach it first.
    let counted = Limits {
        deadline: Duration::from_secs(30),
        ..quick()
    };
    let e = fails(d, "loop.rhai", "let i = 0;\nloop { i += 1; }\n", counted);
    assert!(e.message.contains("5000000 operations"), "{e}");
    let e = fails(d, "recurse.rhai", "fn f(x) { f(x + 1) }\nf(0);\n", quick());
    assert!(e.message.contains("nested function calls"), "{e}");
    // 10 000 closure calls, each a loop whose operations Rhai leaves out of the count: the
    // deadline stops them.
    let heavy = "let a = [];\na.pad(10000, 0);\nlet b = a.map(|x| { let s = 0; for i in 0..20000 { s += i; } s });\n";
    let limits = Limits {
        max_operations: 2_000_000_000,
        deadline: Duration::from_millis(500),
        ..Limits::default()
    };
    let start = Instant::now();
    let e = fails(d, "closures.rhai", heavy, limits);
    assert!(e.message.contains("deadline of 0.5 s"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "stopped late: {:?}",
        start.elapsed()
    );
}

#[test]
fn a_failing_comparator_fails_the_sort_and_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = fails(
        d,
        "sort.rhai",
        "let a = [3, 1, 2];\na.sort(|x, y| { if x == 2 { throw \"cannot compare 2\"; } x - y });\n",
        quick(),
    );
    assert!(e.message.contains("cannot compare 2"), "{e}");
    let e = fails(
        d,
        "argsort.rhai",
        "let a = [3, 1, 2];\nlet o = a.argsort(|x, y| x.missing - y);\n",
        quick(),
    );
    assert!(e.line == Some(2), "{e}");
    // A comparator that works: delinea's sort, stable, with numbers or booleans.
    let path = d.join("ok.rhai");
    std::fs::write(
        &path,
        "let a = [3, 1, 2, 1];\na.sort(|x, y| x - y);\nlet o = [30, 10, 20].argsort(|x, y| x < y);\n[a, o]",
    )
    .unwrap();
    let h = host(d, quick());
    let v = h.run(&h.compile(&path).unwrap(), &mut rhai::Scope::new(), 0).unwrap();
    assert_eq!(v.to_string(), "[[1, 1, 2, 3], [1, 2, 0]]");
}

#[test]
fn eval_import_and_paths_outside_the_allowed_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = fails(d, "eval.rhai", "let x = eval(\"1 + 1\");\n", quick());
    assert!(e.line == Some(1) && e.message.contains("eval"), "{e}");
    let e = fails(d, "import.rhai", "import \"other\" as o;\n", quick());
    assert!(e.line == Some(1), "{e}");
    std::fs::create_dir_all(d.join("secret")).unwrap();
    std::fs::write(d.join("secret/x.nii"), "not even nifti").unwrap();
    let e = fails(d, "escape.rhai", "let v = load_volume(\"secret/x.nii\");\n", quick());
    assert!(
        e.message.contains("outside the allowed folders") && e.line == Some(1),
        "{e}"
    );
    let e = fails(
        d,
        "dotdot.rhai",
        "let v = load_volume(\"data/../secret/x.nii\");\n",
        quick(),
    );
    assert!(e.message.contains("`..`"), "{e}");
    let e = fails(d, "write.rhai", "write_text(\"/tmp/out.txt\", \"x\");\n", quick());
    assert!(e.message.contains("absolute paths"), "{e}");
    let e = fails(d, "missing.rhai", "let v = load_volume(\"data/none.nii\");\n", quick());
    assert!(e.message.contains("data/none.nii"), "{e}");
}

fn pool(n: usize) -> CandidatePool {
    let rows = (0..n)
        .map(|i| Candidate {
            case: format!("case{}", i / 10),
            centre: "C2".into(),
            slice: Some(i % 10),
            scores: Scores {
                entropy: Some(((i * 37) % 101) as f32 / 100.0),
                stdr_distance: Some(((i * 53) % 97) as f32 / 10.0),
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

fn policy(dir: &Path, name: &str, text: &str) -> Result<ScriptQuery, ScriptError> {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    ScriptQuery::load(host(dir, quick()), &path, &format!("script:{name}"))
}

#[test]
fn what_a_policy_returns_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = pool(30);
    let broken = |name: &str, body: &str| -> String {
        let q = policy(d, name, &format!("fn select(pool, budget) {{ {body} }}")).unwrap();
        q.select(&p, Budget::Count(5), 0).unwrap_err().to_string()
    };
    assert!(broken("range.rhai", "[0, 30]").contains("row 30 at position 1, outside the pool's rows 0..30"));
    assert!(broken("twice.rhai", "[4, 4]").contains("row 4 twice"));
    assert!(broken("many.rhai", "[0, 1, 2, 3, 4, 5]").contains("6 rows for a budget of 5"));
    assert!(broken("kind.rhai", "42").contains("must return an array"));
    assert!(broken("reason.rhai", "[#{index: 1, reason: \"hunch\"}]").contains("reason \"hunch\""));
    assert!(broken("nan.rhai", "[#{index: 1, score: 0.0 / 0.0}]").contains("non-finite"));
    assert!(broken("col.rhai", "pool.col(\"bald\"); []").contains("fn needs() { [\"bald\"] }"));
    let e = policy(d, "noselect.rhai", "fn choose(pool) { [] }").unwrap_err();
    assert!(e.message.contains("fn select(pool, budget)"), "{e}");
    let e = policy(
        d,
        "needs.rhai",
        "fn needs() { [\"entropy\", \"vibes\"] }\nfn select(pool, budget) { [] }",
    )
    .unwrap_err();
    assert!(e.message.contains("unknown need \"vibes\""), "{e}");
    // A good one: seeded random picks, reasons and scores carried into the selection.
    let q = policy(
        d,
        "good.rhai",
        "fn needs() { [\"entropy\"] }\nfn select(pool, budget) {\n  let e = pool.col(\"entropy\");\n  let top = e.top_k(budget - 1);\n  top.map(|i| #{ index: i, reason: \"uncertain\", score: e[i] }) + [rand_int(0, 10) + 20]\n}",
    )
    .unwrap();
    assert!(q.needs().entropy && !q.needs().stdr);
    let a = q.select(&p, Budget::Count(5), 7).unwrap();
    assert_eq!(
        a,
        q.select(&p, Budget::Count(5), 7).unwrap(),
        "same seed, same selection"
    );
    assert_eq!(a.items.len(), 5);
    assert_eq!(a.items[0].reason, crate::strategy::query::Reason::Uncertain);
    assert_eq!(a.items[4].reason, crate::strategy::query::Reason::Policy);
    assert!((20..30).contains(&a.items[4].index));
}

#[test]
fn the_api_reference_lists_every_registered_function() {
    let listed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/README.md")).unwrap();
    let signatures = super::api::signatures();
    assert!(signatures.len() > 60, "{} functions", signatures.len());
    let missing: Vec<&str> = (signatures.iter())
        .filter(|(s, _)| !listed.contains(&format!("`{s}`")))
        .map(|(s, _)| s.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "scripts/README.md does not document:\n{}",
        missing.join("\n")
    );
    // Every signature the README documents still exists.
    let known: std::collections::BTreeSet<&str> = signatures.iter().map(|(s, _)| s.as_str()).collect();
    let stale: Vec<&str> = (listed.lines())
        .filter_map(|l| l.strip_prefix("| `")?.split("` |").next())
        .filter(|s| !known.contains(s))
        .collect();
    assert!(
        stale.is_empty(),
        "scripts/README.md documents functions that no longer exist:\n{}",
        stale.join("\n")
    );
    assert!(
        signatures.iter().all(|(_, doc)| !doc.is_empty()),
        "every function has a doc comment"
    );
}
