//! `delinea experiment --shard K/N` and `delinea gather`: the same bytes as one process, whether
//! the shards run one after another or at once; the scheduler's variables as defaults; exit 75
//! for a dependency not ready and for SIGTERM, with a rerun that completes; exit 2 for bad
//! input. (`tests/cluster/slurm.sh` runs the same under a real Slurm.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::experiment::{cohort, experiment, experiment_command, stderr, tree};
use crate::util::{delinea, describe};

const RETRY: Option<i32> = Some(75);

fn shard(manifest: &str, config: &str, out: &Path, k: usize, extra: &[&str]) -> std::process::Output {
    let shard = format!("{k}/3");
    let mut args = vec!["--shard", shard.as_str(), "--threads", "1", "--jobs", "1"];
    args.extend_from_slice(extra);
    experiment(manifest, config, out, &args)
}

fn same_trees(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for file in ["cases.csv", "table.md", "table.csv", "summary.md", "results.json"] {
        assert!(ta.keys().any(|k| k.as_os_str() == file), "{file} missing");
    }
    for (path, bytes) in &ta {
        assert!(
            tb[path] == *bytes,
            "{} differs between {} and {}",
            path.display(),
            a.display(),
            b.display()
        );
    }
}

/// Three shards give the bytes of one process (models, selections, masks, `cases.csv`,
/// tables), run one after another — the first waits for nothing and exits 75 while the source
/// is not there, the last one to finish writes the tables — and with two of them at once (one
/// waiting for the other's source model).
#[test]
fn three_shards_give_the_results_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let whole = dir.path().join("whole");
    let o = experiment(&manifest, &config, &whole, &["--threads", "1", "--jobs", "1"]);
    assert!(o.status.success(), "{}", describe(&o));

    // One after another. Shard 1 first: shard 0 owns the source model, so shard 1 gives up.
    let seq = dir.path().join("sequential");
    let early = shard(&manifest, &config, &seq, 1, &["--wait", "0"]);
    assert_eq!(early.status.code(), RETRY, "{}", describe(&early));
    assert!(stderr(&early).contains("shard 0/3's unit"), "{}", describe(&early));
    let mut ran = 0;
    for k in [0, 1, 2] {
        assert!(!seq.join("cases.csv").exists(), "tables before every run was finished");
        let o = shard(&manifest, &config, &seq, k, &["--wait", "0"]);
        assert!(o.status.success(), "{}", describe(&o));
        let err = stderr(&o);
        ran += err.matches(": running (").count();
        if k < 2 {
            assert!(err.contains("not finished yet: `delinea gather"), "{err}");
        }
    }
    assert_eq!(ran, 10, "every run exactly once");
    same_trees(&whole, &seq);
    // gather writes the same tables again.
    let tables = std::fs::read(seq.join("table.md")).unwrap();
    std::fs::remove_file(seq.join("table.md")).unwrap();
    let g = delinea(&["gather", seq.to_str().unwrap()]);
    assert!(g.status.success(), "{}", describe(&g));
    assert_eq!(std::fs::read(seq.join("table.md")).unwrap(), tables);

    // Two at once (shard 1 waits for shard 0's source model), then the third.
    let together = dir.path().join("together");
    let spawn = |k: usize| {
        let shard = format!("{k}/3");
        experiment_command(
            &manifest,
            &config,
            &together,
            &["--threads", "1", "--jobs", "1", "--shard", &shard],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (a, b) = (spawn(1), spawn(0));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        describe(&a),
        describe(&b)
    );
    assert!(
        stderr(&a).contains("waiting for the source unit of shard 0/3"),
        "{}",
        describe(&a)
    );
    let last = shard(&manifest, &config, &together, 2, &[]);
    assert!(last.status.success(), "{}", describe(&last));
    assert!(stderr(&last).contains("experiment finished"), "{}", describe(&last));
    same_trees(&whole, &together);
}

/// SIGTERM mid-run (with worker processes): exit 75 at once, no worker left writing, nothing
/// half-written taken for finished; the rerun completes the experiment.
#[test]
fn a_stopped_experiment_exits_75_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let out = dir.path().join("exp");
    let extra = ["--adapt-iterations", "300", "--jobs", "2", "--threads", "1"];
    let mut child = experiment_command(&manifest, &config, &out, &extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("finetune+pseudo: running");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.contains("running")), "{seen:?}");
    std::thread::sleep(Duration::from_millis(500));
    let done = |out: &Path| walk(out).iter().filter(|p| p.ends_with("done.json")).count();
    let before = done(&out);
    let start = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(status.code(), RETRY, "{seen:?}\n{rest:?}");
    assert!(start.elapsed() < Duration::from_secs(25), "{:?}", start.elapsed());
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM: the experiment stopped")),
        "{rest:?}"
    );
    // The workers stopped too: a 300-iteration unit would finish (and be marked) within this.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        done(&out) <= before + 1,
        "workers went on after their experiment stopped"
    );
    assert!(!out.join("cases.csv").exists());

    let rerun = experiment(&manifest, &config, &out, &extra);
    assert!(rerun.status.success(), "{}", describe(&rerun));
    let err = stderr(&rerun);
    assert!(err.contains("source model: trained earlier, reused"), "{err}");
    assert!(out.join("cases.csv").is_file() && out.join("table.md").is_file());
    assert_eq!(done(&out), 11, "source and 10 runs");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The scheduler's variables give the shard; bad shards, a missing count and a folder that is
/// no experiment exit 2; gathering unfinished runs exits 75 and names them.
#[test]
fn shards_come_from_the_scheduler_and_bad_ones_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, config) = cohort(dir.path());
    let out = dir.path().join("exp");
    let run_with = |env: &[(&str, &str)], extra: &[&str]| {
        let mut c = experiment_command(
            &manifest,
            &config,
            &out,
            &["--threads", "1", "--jobs", "1", "--wait", "0"],
        );
        c.args(extra)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // Slurm's array task 11 of an array 10-12 is shard 1/3: it waits for shard 0's source.
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "11"),
        ("SLURM_ARRAY_TASK_MIN", "10"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    let o = run_with(&slurm, &[]);
    assert_eq!(o.status.code(), RETRY, "{}", describe(&o));
    assert!(
        stderr(&o).contains("shard 1/3 (from SLURM_ARRAY_TASK_ID)"),
        "{}",
        describe(&o)
    );
    // Kubernetes: the index, and the count from the flag.
    let o = run_with(&[("JOB_COMPLETION_INDEX", "2")], &["--shard-count", "3"]);
    assert_eq!(o.status.code(), RETRY, "{}", describe(&o));
    assert!(
        stderr(&o).contains("shard 2/3 (from JOB_COMPLETION_INDEX)"),
        "{}",
        describe(&o)
    );

    for (env, extra, text) in [
        (&[][..], &["--shard", "3/3"][..], "shard 3 of 3 does not exist"),
        (&[][..], &["--shard", "1-3"][..], "not a shard"),
        (&[("JOB_COMPLETION_INDEX", "1")][..], &[][..], "give --shard-count"),
        (&[][..], &["--shard-count", "3"][..], "--shard-count needs an index"),
        (&[][..], &["--shard", "0/3", "--targets", "C9"][..], "unknown target"),
    ] {
        let o = run_with(env, extra);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", describe(&o));
        assert!(stderr(&o).contains(text), "{extra:?}: {}", describe(&o));
    }

    // Nothing finished yet: gather names what is missing and says retry.
    let g = delinea(&["gather", out.to_str().unwrap()]);
    assert_eq!(g.status.code(), RETRY, "{}", describe(&g));
    assert!(
        stderr(&g).contains("10 of 10 runs are not finished: C2/source-only"),
        "{}",
        describe(&g)
    );
    let g = delinea(&["gather", dir.path().join("cohort").to_str().unwrap()]);
    assert_eq!(g.status.code(), Some(2), "{}", describe(&g));
    assert!(stderr(&g).contains("not an experiment folder"), "{}", describe(&g));
}
