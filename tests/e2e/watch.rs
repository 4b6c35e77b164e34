//! `delinea watch`: bursts, slow writers, renames, bad files, labels and adaptation, lost
//! events, two watchers on one inbox, and a kill -9 at every journal transition.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{delinea, describe, tiny_cohort, tiny_model, tiny_references};

/// A tiny model, its references, a job using both, and the cohort's target scans and labels.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    job: PathBuf,
    scans: Vec<PathBuf>,
    labels: Vec<PathBuf>,
}

fn setup(adaptation: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let manifest = tiny_cohort(&root.join("cohort"), 3);
    let model = tiny_model(&manifest, &root.join("model"), 20);
    tiny_references(&model, &manifest, &root.join("refs.json"), 6);
    let adapt = r#", "adaptation": {"every_labels": 1, "strategy": "finetune+pseudo", "iterations": 6, "batch": 4}"#;
    let job = root.join("job.json");
    std::fs::write(
        &job,
        format!(
            r#"{{"format": "delinea-job", "name": "e2e", "model": "model", "device": "cpu",
                "prediction": {{"mc_samples": 2}},
                "query": {{"strategy": "stdr", "references": "refs.json", "budget": "50%"}}{}}}"#,
            if adaptation { adapt } else { "" }
        ),
    )
    .unwrap();
    let c2 = root.join("cohort/C2");
    let list = |d: PathBuf| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v
    };
    Setup {
        scans: list(c2.join("images")),
        labels: list(c2.join("labels/C2-onc")),
        _dir: dir,
        root,
        job,
    }
}

impl Setup {
    fn folders(&self, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
        let (i, o, l) = (
            self.root.join(format!("{tag}-in")),
            self.root.join(format!("{tag}-out")),
            self.root.join(format!("{tag}-labels")),
        );
        for d in [&i, &l] {
            std::fs::create_dir_all(d).unwrap();
        }
        (i, o, l)
    }

    fn args<'a>(&'a self, inbox: &'a Path, outbox: &'a Path, labels: &'a Path) -> Vec<&'a str> {
        vec![
            "watch",
            "--job",
            self.job.to_str().unwrap(),
            "--inbox",
            inbox.to_str().unwrap(),
            "--outbox",
            outbox.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--stable",
            "0.3",
        ]
    }

    /// Starts a watcher (stderr to `<outbox>.log`).
    fn spawn(&self, inbox: &Path, outbox: &Path, labels: &Path, extra: &[&str], env: &[(&str, &str)]) -> Child {
        let log = File::create(outbox.with_extension("log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_delinea"));
        cmd.args(self.args(inbox, outbox, labels))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Runs `--once` to the end.
    fn once(&self, inbox: &Path, outbox: &Path, labels: &Path, env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_delinea"));
        cmd.args(self.args(inbox, outbox, labels)).arg("--once");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

/// The journal's lines as JSON objects.
fn journal(outbox: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(outbox.join("journal.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// How many times each input reached `event`.
fn count(lines: &[serde_json::Value], event: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in lines.iter().filter(|l| l["event"] == event && l["kind"] == "scan") {
        *m.entry(l["input"].as_str().unwrap().to_string()).or_default() += 1;
    }
    m
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ok()
}

/// Copies `src` beside the inbox under a temporary name, then renames it in as `name`.
fn rename_in(src: &Path, inbox: &Path, name: &str) {
    let tmp = inbox.join(format!(".{name}.part"));
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

/// Waits until the watcher logged that it watches: its first scan of the folders is done.
fn wait_ready(outbox: &Path) {
    let log = outbox.with_extension("log");
    let ready = wait_until(Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"watching\""))
    });
    assert!(
        ready,
        "the watcher did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The mask `delinea predict --model MODEL --input INPUT --out OUT` writes as `OUT/NAME`.
fn predicted_mask(model: &Path, input: &Path, out: &Path, name: &str) -> Vec<u8> {
    let (m, i, o) = (model.to_str().unwrap(), input.to_str().unwrap(), out.to_str().unwrap());
    let run = delinea(&[
        "predict", "--model", m, "--input", i, "--out", o, "--device", "cpu", "--quiet",
    ]);
    assert!(run.status.success(), "{}", describe(&run));
    std::fs::read(out.join(name)).unwrap()
}

/// SIGTERM, then the exit code.
fn terminate(mut child: Child) -> Option<i32> {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    child.wait().unwrap().code()
}

/// User + system CPU seconds of a process so far (/proc/PID/stat, in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

#[test]
fn a_burst_of_200_scans_is_processed_exactly_once_then_the_watcher_is_idle() {
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("burst");
    let child = s.spawn(&inbox, &outbox, &labels, &[], &[]);
    wait_ready(&outbox);
    let staging = s.root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let names: Vec<String> = (0..200).map(|i| format!("scan-{i:03}.nii.gz")).collect();
    for (i, n) in names.iter().enumerate() {
        std::fs::copy(&s.scans[i % s.scans.len()], staging.join(n)).unwrap();
    }
    let start = Instant::now();
    for n in &names {
        std::fs::rename(staging.join(n), inbox.join(n)).unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "the burst took {:?}",
        start.elapsed()
    );
    let all_done = wait_until(Duration::from_secs(240), || {
        count(&journal(&outbox), "done").len() == 200
    });
    assert!(all_done, "{} of 200 done", count(&journal(&outbox), "done").len());
    let done = count(&journal(&outbox), "done");
    assert!(done.values().all(|n| *n == 1), "a scan was done twice: {done:?}");
    for (i, n) in names.iter().enumerate() {
        let kept = std::fs::read(outbox.join("processed").join(n)).unwrap();
        assert_eq!(kept, std::fs::read(&s.scans[i % s.scans.len()]).unwrap(), "{n} changed");
        assert!(outbox
            .join("cases")
            .join(n.trim_end_matches(".nii.gz"))
            .join("mask.nii.gz")
            .is_file());
    }
    // Idle afterwards: no CPU, no journal line, for 10 s.
    let (cpu, lines) = (cpu_seconds(child.id()), journal(&outbox).len());
    std::thread::sleep(Duration::from_secs(10));
    let used = cpu_seconds(child.id()) - cpu;
    assert!(used < 0.2, "the idle watcher used {used} s of CPU in 10 s");
    assert_eq!(journal(&outbox).len(), lines, "the idle watcher wrote to the journal");
    let next = std::fs::read_to_string(outbox.join("label-next.csv")).unwrap();
    assert_eq!(
        next.lines().count(),
        1 + 100,
        "50% of 200 unlabelled scans ranked:\n{next}"
    );
    assert_eq!(terminate(child), Some(0));
}

#[test]
fn slow_writers_copies_and_bad_files() {
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("slow");
    let child = s.spawn(&inbox, &outbox, &labels, &[], &[]);
    wait_ready(&outbox);
    // A writer that keeps the file open and pauses longer than the quiet period between chunks.
    let bytes = std::fs::read(&s.scans[0]).unwrap();
    let mut f = File::create(inbox.join("slow.nii.gz")).unwrap();
    for chunk in bytes.chunks(bytes.len() / 4 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1000));
    }
    drop(f);
    // A plain copy (closed after writing), a corrupt file, a truncated one, not a NIfTI at all,
    // and a temporary name that must stay untouched.
    std::fs::copy(&s.scans[1], inbox.join("copied.nii.gz")).unwrap();
    let mut corrupt = bytes.clone();
    let n = corrupt.len();
    corrupt[n / 3..2 * n / 3]
        .iter_mut()
        .for_each(|b| *b = b.wrapping_mul(31).wrapping_add(7));
    std::fs::write(inbox.join(".corrupt.part"), corrupt).unwrap();
    std::fs::rename(inbox.join(".corrupt.part"), inbox.join("corrupt.nii.gz")).unwrap();
    std::fs::write(inbox.join(".t.part"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::rename(inbox.join(".t.part"), inbox.join("truncated.nii.gz")).unwrap();
    std::fs::write(inbox.join(".n.part"), b"patient notes").unwrap();
    std::fs::rename(inbox.join(".n.part"), inbox.join("notes.txt")).unwrap();
    std::fs::write(inbox.join("incoming.nii.gz.part"), &bytes[..100]).unwrap();
    let settled = wait_until(Duration::from_secs(30), || {
        let j = journal(&outbox);
        count(&j, "done").len() == 2 && count(&j, "failed").len() == 3
    });
    let j = journal(&outbox);
    assert!(settled, "{:#?}", j);
    assert_eq!(
        count(&j, "done").keys().collect::<Vec<_>>(),
        ["copied.nii.gz", "slow.nii.gz"]
    );
    assert!(count(&j, "failed").values().all(|n| *n == 1));
    assert_eq!(std::fs::read(outbox.join("processed/slow.nii.gz")).unwrap(), bytes);
    for (name, words) in [
        ("corrupt.nii.gz", "corrupt"),
        ("truncated.nii.gz", "truncated"),
        ("notes.txt", "neither a NIfTI"),
    ] {
        let error = std::fs::read_to_string(outbox.join("failed").join(format!("{name}.error.json"))).unwrap();
        assert!(error.contains(words), "{name}: {error}");
        assert!(outbox.join("failed").join(name).is_file(), "{name} kept in failed/");
    }
    assert_eq!(
        std::fs::read(outbox.join("failed/truncated.nii.gz")).unwrap(),
        &bytes[..bytes.len() / 2]
    );
    assert!(
        inbox.join("incoming.nii.gz.part").is_file(),
        "a temporary name was taken"
    );
    assert_eq!(terminate(child), Some(0));
}

#[test]
fn a_label_is_measured_and_triggers_adaptation_and_the_next_scan_uses_the_new_model() {
    let s = setup(true);
    let (inbox, outbox, labels) = s.folders("adapt");
    let child = s.spawn(&inbox, &outbox, &labels, &[], &[]);
    for (i, scan) in s.scans.iter().take(3).enumerate() {
        rename_in(scan, &inbox, &format!("p{i}.nii.gz"));
    }
    assert!(wait_until(Duration::from_secs(60), || count(&journal(&outbox), "done")
        .len()
        == 3));
    // A label for p0 by a named rater; one for a scan never seen; one on the wrong grid.
    rename_in(&s.labels[0], &labels, "p0@onc.nii.gz");
    rename_in(&s.labels[1], &labels, "nobody.nii.gz");
    let small = s.root.join("small");
    let out = delinea(&[
        "synth",
        "--out",
        small.to_str().unwrap(),
        "--centres",
        "1",
        "--cases-per-centre",
        "1",
        "--multi-rater-cases",
        "0",
        "--size",
        "16,16,8",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let wrong = std::fs::read_dir(small.join("C1/labels"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let wrong = std::fs::read_dir(wrong).unwrap().next().unwrap().unwrap().path();
    rename_in(&wrong, &labels, "p1.nii.gz");
    let adapted = wait_until(Duration::from_secs(120), || {
        journal(&outbox).iter().any(|l| l["event"] == "adapted")
    });
    assert!(adapted, "{:#?}", journal(&outbox));
    let gen1 = outbox.join("state/models/gen-0001");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gen1.join("model-card.json")).unwrap()).unwrap();
    assert_eq!(card["labels"]["labels"][0]["case"], "p0");
    assert_eq!(card["labels"]["labels"][0]["rater"], "onc");
    assert_eq!(card["labels"]["unlabelled_cases"], 2);
    // revisions.csv: one row, its DSC the one `delinea metrics` computes for the same files.
    let revisions = std::fs::read_to_string(outbox.join("revisions.csv")).unwrap();
    let rows: Vec<&str> = revisions.lines().collect();
    assert_eq!(rows.len(), 2, "{revisions}");
    let fields: Vec<&str> = rows[1].split(',').collect();
    assert_eq!(&fields[1..4], ["p0", "onc", "0"]);
    let m = delinea(&[
        "metrics",
        "--pred",
        outbox.join("cases/p0/mask.nii.gz").to_str().unwrap(),
        "--gt",
        s.labels[0].to_str().unwrap(),
        "--json",
    ]);
    assert!(m.status.success(), "{}", describe(&m));
    let metrics: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
    let dsc: f64 = fields[9].parse().unwrap();
    assert!(
        (dsc - metrics["dsc"].as_f64().unwrap()).abs() < 1e-9,
        "{} vs {}",
        fields[9],
        metrics["dsc"]
    );
    let (added, removed, fin): (f64, f64, f64) = (
        fields[6].parse().unwrap(),
        fields[7].parse().unwrap(),
        fields[5].parse().unwrap(),
    );
    assert!((fields[8].parse::<f64>().unwrap() - (added + removed) / fin).abs() < 1e-9);
    for (name, words) in [
        ("nobody.nii.gz", "no scan with case id nobody"),
        ("p1.nii.gz", "does not match image"),
    ] {
        let error = std::fs::read_to_string(outbox.join("failed").join(format!("{name}.error.json"))).unwrap();
        assert!(error.contains(words), "{name}: {error}");
    }
    // The next scan is predicted by generation 1, exactly as `delinea predict` with it does.
    rename_in(&s.scans[3], &inbox, "p3.nii.gz");
    assert!(wait_until(Duration::from_secs(60), || count(&journal(&outbox), "done")
        .len()
        == 4));
    let j = journal(&outbox);
    let p3 = j
        .iter()
        .find(|l| l["event"] == "done" && l["input"] == "p3.nii.gz")
        .unwrap();
    assert_eq!(p3["model"], 1);
    let case = s.scans[3].file_name().unwrap().to_str().unwrap();
    assert_eq!(
        std::fs::read(outbox.join("cases/p3/mask.nii.gz")).unwrap(),
        predicted_mask(&gen1, &s.scans[3], &s.root.join("direct"), case)
    );
    // STDR distances still come from the job's model (the one the references describe): the
    // same scan dropped again after the adaptation gets the same distances as before it.
    rename_in(&s.scans[0], &inbox, "again.nii.gz");
    assert!(wait_until(Duration::from_secs(60), || {
        count(&journal(&outbox), "done").len() == 5
    }));
    let distances = |case: &str| -> Vec<serde_json::Value> {
        let path = outbox.join(format!("cases/{case}/scores.json"));
        let scores: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let slices = scores["slices"].as_array().unwrap();
        slices.iter().map(|r| r["scores"]["stdr_distance"].clone()).collect()
    };
    assert!(distances("p0").iter().all(|d| d.is_f64()));
    assert_eq!(distances("again"), distances("p0"));
    // The ranking is rewritten right after each `done` line: wait for the fifth scan's.
    let ranked = || -> (Option<u64>, Option<u64>) {
        let text = std::fs::read_to_string(outbox.join("label-next.json")).unwrap_or_default();
        let next: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        (next["labelled_scans"].as_u64(), next["unlabelled_scans"].as_u64())
    };
    assert!(
        wait_until(Duration::from_secs(10), || ranked() == (Some(1), Some(4))),
        "{:?}",
        ranked()
    );
    assert_eq!(terminate(child), Some(0));
    let st = delinea(&[
        "watch",
        "--status",
        "--json",
        "--inbox",
        inbox.to_str().unwrap(),
        "--outbox",
        outbox.to_str().unwrap(),
    ]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        (
            st["processed"].as_u64(),
            st["failed"].as_u64(),
            st["labels"].as_u64(),
            st["model"].as_u64()
        ),
        (Some(5), Some(2), Some(1), Some(1))
    );
    assert!(st["running"].is_null());
}

#[test]
fn after_an_overflow_the_rescan_finds_what_events_missed() {
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("overflow");
    // Every batch of events replaced by the rescan flag a kernel overflow leaves; no periodic scan.
    let env = [("DELINEA_WATCH_FAULTS", "overflow")];
    let child = s.spawn(&inbox, &outbox, &labels, &["--rescan", "3600"], &env);
    wait_ready(&outbox);
    for i in 0..3 {
        rename_in(&s.scans[i], &inbox, &format!("o{i}.nii.gz"));
    }
    assert!(wait_until(Duration::from_secs(20), || count(&journal(&outbox), "done")
        .len()
        == 3));
    assert_eq!(terminate(child), Some(0));
    // The control: events lost without the flag are not found until the periodic scan.
    let (inbox, outbox, labels) = s.folders("lost");
    let child = s.spawn(
        &inbox,
        &outbox,
        &labels,
        &["--rescan", "3600"],
        &[("DELINEA_WATCH_FAULTS", "lose-events")],
    );
    wait_ready(&outbox);
    rename_in(&s.scans[0], &inbox, "l0.nii.gz");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        count(&journal(&outbox), "done").is_empty(),
        "found without any event or rescan"
    );
    assert_eq!(terminate(child), Some(0));
}

#[test]
fn a_dicom_series_folder_and_a_multiframe_file_are_arrivals() {
    use delinea::volume::{self, dicom};
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("dicom");
    let child = s.spawn(&inbox, &outbox, &labels, &["--series-stable", "0.5"], &[]);
    wait_ready(&outbox);
    let fixtures = super::util::fixtures().join("dicom");
    // A series folder renamed in whole, one copied in file by file, and a multi-frame file.
    let staged = s.root.join("staged-series");
    std::fs::create_dir_all(&staged).unwrap();
    for (dest, src) in [(&staged, "tilted"), (&inbox.join("copied-series"), "tilted")] {
        std::fs::create_dir_all(dest).unwrap();
        for f in std::fs::read_dir(fixtures.join(src)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dest.join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::rename(&staged, inbox.join("renamed-series")).unwrap();
    std::fs::copy(fixtures.join("multiframe.dcm"), inbox.join("enhanced.dcm")).unwrap();
    let done = wait_until(Duration::from_secs(30), || count(&journal(&outbox), "done").len() == 3);
    assert!(done, "{:#?}", journal(&outbox));
    let series = dicom::read_dicom_volume(&fixtures.join("tilted")).unwrap();
    for case in ["renamed-series", "copied-series"] {
        let mask = volume::read_label_map(&outbox.join(format!("cases/{case}/mask.nii.gz"))).unwrap();
        assert!(
            mask.geometry.mismatch(&series.geometry).is_none(),
            "{case}: the mask is on the series' grid"
        );
        for f in std::fs::read_dir(fixtures.join("tilted")).unwrap() {
            let f = f.unwrap().path();
            let kept = outbox.join("processed").join(case).join(f.file_name().unwrap());
            assert_eq!(std::fs::read(kept).unwrap(), std::fs::read(&f).unwrap());
        }
    }
    assert!(outbox.join("cases/enhanced/mask.nii.gz").is_file());
    // DICOM in, RTSTRUCT out (the job's default): each references the series it came from.
    let tilted_uid = dicom::read_one_series(&fixtures.join("tilted")).unwrap().uid;
    for case in ["renamed-series", "copied-series"] {
        let rs = outbox.join(format!("cases/{case}/rtstruct.dcm"));
        assert_eq!(super::dicom::referenced_series(&rs), tilted_uid, "{case}");
    }
    let enhanced = dicom::read_one_series(&fixtures.join("multiframe.dcm")).unwrap().uid;
    assert_eq!(
        super::dicom::referenced_series(&outbox.join("cases/enhanced/rtstruct.dcm")),
        enhanced
    );
    // An RTSTRUCT drawn on the series comes back as a label, measured as a NIfTI one is.
    let mean = series.data.iter().sum::<f32>() / series.data.len() as f32;
    let drawn = volume::LabelMap {
        data: series.data.iter().map(|v| u8::from(*v > mean)).collect(),
        geometry: series.geometry.clone(),
    };
    let staged = s.root.join("drawn");
    std::fs::create_dir_all(&staged).unwrap();
    volume::write_label_map(&staged.join("drawn.nii.gz"), &drawn).unwrap();
    let rs = staged.join("renamed-series@dr-rt.dcm");
    let (tilted, nifti) = (fixtures.join("tilted"), staged.join("drawn.nii.gz"));
    let args = [
        "convert",
        nifti.to_str().unwrap(),
        rs.to_str().unwrap(),
        "--reference",
        tilted.to_str().unwrap(),
    ];
    assert!(delinea(&args).status.success());
    std::fs::rename(&rs, labels.join("renamed-series@dr-rt.dcm")).unwrap();
    let csv = outbox.join("revisions.csv");
    let registered = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&csv).is_ok_and(|t| t.contains(",renamed-series,dr-rt,"))
    });
    assert!(registered, "{:#?}", journal(&outbox));
    let row = std::fs::read_to_string(&csv).unwrap();
    let voxels = drawn.data.iter().filter(|v| **v > 0).count();
    assert!(row.contains(&format!(",{voxels},")), "final voxels {voxels}: {row}");
    assert_eq!(terminate(child), Some(0));
    // `delinea predict --input SERIES_DIR` gives the same mask, named after the folder.
    let direct = s.root.join("direct-dicom");
    assert_eq!(
        predicted_mask(
            &s.root.join("model"),
            &fixtures.join("tilted"),
            &direct,
            "tilted.nii.gz"
        ),
        std::fs::read(outbox.join("cases/renamed-series/mask.nii.gz")).unwrap()
    );
    // `--format rtstruct,seg` adds both objects beside the NIfTI mask, listed in predictions.json.
    let (m, i) = (s.root.join("model"), fixtures.join("tilted"));
    let out = s.root.join("direct-rtstruct");
    let run = delinea(&[
        "predict",
        "--model",
        m.to_str().unwrap(),
        "--input",
        i.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--quiet",
        "--format",
        "rtstruct,seg",
    ]);
    assert!(run.status.success(), "{}", describe(&run));
    assert_eq!(
        super::dicom::referenced_series(&out.join("tilted.rtstruct.dcm")),
        tilted_uid
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap()).unwrap();
    let listed: Vec<&str> = rows[0]["dicom"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        listed[0].ends_with("tilted.rtstruct.dcm") && listed[1].ends_with("tilted.seg.dcm"),
        "{listed:?}"
    );
    assert!(out.join("tilted.seg.dcm").is_file() && out.join("tilted.nii.gz").is_file());
    // A NIfTI input has no series to reference: refused before anything runs.
    let nifti = out.join("tilted.nii.gz");
    let run = delinea(&[
        "predict",
        "--model",
        m.to_str().unwrap(),
        "--input",
        nifti.to_str().unwrap(),
        "--out",
        s.root.join("refused").to_str().unwrap(),
        "--format",
        "seg",
    ]);
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("is not DICOM"),
        "{}",
        describe(&run)
    );
}

#[test]
fn polling_finds_copies_without_any_event() {
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("poll");
    // With --poll no event watcher runs: scans every 0.5 s (not the hour --rescan says), and
    // stability over one period.
    let child = s.spawn(&inbox, &outbox, &labels, &["--poll", "0.5", "--rescan", "3600"], &[]);
    wait_ready(&outbox);
    for i in 0..2 {
        std::fs::copy(&s.scans[i], inbox.join(format!("n{i}.nii.gz"))).unwrap();
    }
    assert!(wait_until(Duration::from_secs(20), || count(&journal(&outbox), "done")
        .len()
        == 2));
    assert_eq!(terminate(child), Some(0));
}

#[test]
fn once_processes_what_landed_while_no_watcher_ran_and_leaves_what_is_still_written() {
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("once");
    for i in 0..3 {
        std::fs::copy(&s.scans[i], inbox.join(format!("d{i}.nii.gz"))).unwrap();
    }
    let writer_path = inbox.join("growing.nii.gz");
    let writer = std::thread::spawn(move || {
        let mut f = File::create(writer_path).unwrap();
        for _ in 0..40 {
            f.write_all(&[0u8; 64]).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let out = s.once(&inbox, &outbox, &labels, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    writer.join().unwrap();
    assert_eq!(count(&journal(&outbox), "done").len(), 3);
    assert!(
        inbox.join("growing.nii.gz").is_file(),
        "a file still being written was taken"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logged: Vec<serde_json::Value> = stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(
        logged.iter().filter(|l| l["outcome"] == "done").count(),
        3,
        "one log line per scan:\n{stderr}"
    );
    let scans: Vec<&serde_json::Value> = logged.iter().filter(|l| l.get("scan").is_some()).collect();
    assert!(
        scans.iter().all(|l| l["latency_s"].is_f64() && l["model"] == 0),
        "{stderr}"
    );
    assert_eq!(
        logged[0]["mode"], "once",
        "the first line says how it watches:\n{stderr}"
    );
}

/// Under `--once` (cron, systemd path units) a truncated gzip scan written in place gets its
/// second look in the same run and goes to `failed/` with the reason; before, every run
/// retried it later, ended first, and left it in the inbox for ever.
#[test]
fn once_refuses_a_truncated_scan_in_the_same_run() {
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("once-truncated");
    let bytes = std::fs::read(&s.scans[0]).unwrap();
    std::fs::write(inbox.join("truncated.nii.gz"), &bytes[..3000.min(bytes.len() / 2)]).unwrap();
    std::fs::copy(&s.scans[1], inbox.join("good.nii.gz")).unwrap();
    crate::util::oversized_nifti_gz(&inbox.join("gigavoxel.nii.gz"));
    let out = s.once(&inbox, &outbox, &labels, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let j = journal(&outbox);
    assert_eq!(count(&j, "done").keys().collect::<Vec<_>>(), ["good.nii.gz"], "{j:#?}");
    assert_eq!(
        count(&j, "failed").keys().collect::<Vec<_>>(),
        ["gigavoxel.nii.gz", "truncated.nii.gz"],
        "{j:#?}"
    );
    assert!(!inbox.join("truncated.nii.gz").exists(), "left in the inbox");
    let error = std::fs::read_to_string(outbox.join("failed/truncated.nii.gz.error.json")).unwrap();
    assert!(error.contains("truncated"), "{error}");
    // The gigavoxel header is refused by the voxel cap, before its data is read.
    let error = std::fs::read_to_string(outbox.join("failed/gigavoxel.nii.gz.error.json")).unwrap();
    assert!(
        error.contains("dim (1024 × 1024 × 1024)") && error.contains("DELINEA_MAX_VOXELS"),
        "{error}"
    );
}

#[test]
fn two_watchers_on_one_inbox_never_take_the_same_scan_and_one_outbox_has_one_watcher() {
    let s = setup(false);
    let (inbox, out_a, labels) = s.folders("two");
    let out_b = s.root.join("two-out-b");
    let a = s.spawn(&inbox, &out_a, &labels, &[], &[]);
    let b = s.spawn(&inbox, &out_b, &labels, &[], &[]);
    wait_ready(&out_a);
    wait_ready(&out_b);
    let refused = delinea(&[
        "watch",
        "--job",
        s.job.to_str().unwrap(),
        "--inbox",
        inbox.to_str().unwrap(),
        "--outbox",
        out_a.to_str().unwrap(),
        "--once",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("another watcher holds"),
        "{}",
        describe(&refused)
    );
    for i in 0..60 {
        rename_in(&s.scans[i % s.scans.len()], &inbox, &format!("t{i:02}.nii.gz"));
    }
    let total = || count(&journal(&out_a), "done").len() + count(&journal(&out_b), "done").len();
    assert!(
        wait_until(Duration::from_secs(120), || total() == 60),
        "{} of 60",
        total()
    );
    let (da, db) = (count(&journal(&out_a), "done"), count(&journal(&out_b), "done"));
    assert!(da.keys().all(|k| !db.contains_key(k)), "a scan processed by both");
    assert!(da.values().chain(db.values()).all(|n| *n == 1));
    println!("watcher A took {}, watcher B {}", da.len(), db.len());
    assert_eq!(terminate(a), Some(0));
    assert_eq!(terminate(b), Some(0));
}

#[test]
fn a_kill_at_every_journal_transition_loses_nothing_and_redoes_nothing_done() {
    let s = setup(false);
    // The outputs of an uninterrupted run, to compare the recovered ones with.
    let (inbox, reference, labels) = s.folders("reference");
    for i in 0..3 {
        std::fs::copy(&s.scans[i], inbox.join(format!("k{i}.nii.gz"))).unwrap();
    }
    assert!(s.once(&inbox, &reference, &labels, &[]).status.success());
    for step in ["seen", "claimed", "started", "outputs", "done", "moved"] {
        let (inbox, outbox, labels) = s.folders(step);
        for i in 0..3 {
            std::fs::copy(&s.scans[i], inbox.join(format!("k{i}.nii.gz"))).unwrap();
        }
        let crash = format!("{step}:2");
        let killed = s.once(&inbox, &outbox, &labels, &[("DELINEA_WATCH_CRASH", &crash)]);
        assert_eq!(
            killed.status.code(),
            None,
            "{step}: the hook did not kill it: {}",
            describe(&killed)
        );
        let rerun = s.once(&inbox, &outbox, &labels, &[]);
        assert!(rerun.status.success(), "{step}: {}", describe(&rerun));
        let j = journal(&outbox);
        let done = count(&j, "done");
        assert_eq!(done.len(), 3, "{step}: {j:#?}");
        assert!(
            done.values().all(|n| *n == 1),
            "{step}: a scan was done twice: {done:?}"
        );
        assert!(count(&j, "failed").is_empty(), "{step}");
        assert_eq!(
            std::fs::read_dir(&inbox).unwrap().count(),
            0,
            "{step}: left in the inbox"
        );
        assert_eq!(
            std::fs::read_dir(outbox.join("state/work")).unwrap().count(),
            0,
            "{step}: left in work/"
        );
        for i in 0..3 {
            let name = format!("k{i}.nii.gz");
            assert_eq!(
                std::fs::read(outbox.join("processed").join(&name)).unwrap(),
                std::fs::read(&s.scans[i]).unwrap()
            );
            for file in ["mask.nii.gz", "entropy.nii.gz", "scores.json"] {
                let case = format!("cases/k{i}/{file}");
                assert_eq!(
                    std::fs::read(outbox.join(&case)).unwrap(),
                    std::fs::read(reference.join(&case)).unwrap(),
                    "{step}: {case} differs from the uninterrupted run's"
                );
            }
        }
    }
}

#[test]
fn sigterm_finishes_the_scan_in_hand_and_a_restart_takes_the_rest() {
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("term");
    let child = s.spawn(&inbox, &outbox, &labels, &[], &[]);
    wait_ready(&outbox);
    for i in 0..200 {
        rename_in(&s.scans[i % s.scans.len()], &inbox, &format!("s{i:03}.nii.gz"));
    }
    assert!(wait_until(Duration::from_secs(60), || count(&journal(&outbox), "done")
        .len()
        >= 10));
    assert_eq!(terminate(child), Some(0));
    let j = journal(&outbox);
    assert_eq!(
        count(&j, "claimed").len(),
        count(&j, "done").len(),
        "a claimed scan was left unfinished"
    );
    assert!(
        count(&j, "done").len() < 200,
        "nothing was left to test the restart with"
    );
    assert!(s.once(&inbox, &outbox, &labels, &[]).status.success());
    let done = count(&journal(&outbox), "done");
    assert_eq!(done.len(), 200);
    assert!(done.values().all(|n| *n == 1));
}

/// Runs `delinea watch --once` with `job` and `extra`, expecting exit 2 naming `words`.
fn refused(job: &Path, inbox: &Path, outbox: &Path, extra: &[&str], words: &str) {
    let mut args = vec![
        "watch",
        "--job",
        job.to_str().unwrap(),
        "--inbox",
        inbox.to_str().unwrap(),
        "--outbox",
        outbox.to_str().unwrap(),
        "--once",
    ];
    args.extend_from_slice(extra);
    let out = delinea(&args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(words),
        "{words}: {}",
        describe(&out)
    );
}

#[test]
fn bad_jobs_and_layouts_are_refused_naming_what_is_wrong() {
    let s = setup(false);
    let (inbox, outbox, labels) = s.folders("bad");
    let inside = inbox.join("out");
    refused(&s.job, &inbox, &inside, &[], "must not contain each other");
    assert!(!inside.exists());
    let job = s.root.join("bad-job.json");
    std::fs::write(
        &job,
        r#"{"format": "delinea-job", "model": "model", "query": {"strategy": "stdr"}}"#,
    )
    .unwrap();
    refused(
        &job,
        &inbox,
        &outbox,
        &["--labels", labels.to_str().unwrap()],
        "query.references",
    );
    std::fs::write(
        &job,
        r#"{"format": "delinea-job", "model": "nowhere", "query": {"strategy": "entropy"}}"#,
    )
    .unwrap();
    refused(&job, &inbox, &outbox, &[], "nowhere");
    std::fs::write(
        &job,
        r#"{"format": "delinea-job", "model": "model", "query": {"strategy": "entropy", "budget": "most"}}"#,
    )
    .unwrap();
    refused(&job, &inbox, &outbox, &[], "query.budget");
}

#[test]
fn a_kill_while_registering_a_label_or_adapting_is_finished_by_the_restart() {
    let s = setup(true);
    for step in ["claimed", "adapt-started"] {
        let (inbox, outbox, labels) = s.folders(&format!("label-{step}"));
        for i in 0..2 {
            std::fs::copy(&s.scans[i], inbox.join(format!("c{i}.nii.gz"))).unwrap();
        }
        assert!(s.once(&inbox, &outbox, &labels, &[]).status.success());
        std::fs::copy(&s.labels[0], labels.join("c0.nii.gz")).unwrap();
        // The scans are done, so the first `claimed` of this run is the label's.
        let crash = format!("{step}:1");
        let killed = s.once(&inbox, &outbox, &labels, &[("DELINEA_WATCH_CRASH", &crash)]);
        assert_eq!(killed.status.code(), None, "{step}: {}", describe(&killed));
        let rerun = s.once(&inbox, &outbox, &labels, &[]);
        assert!(rerun.status.success(), "{step}: {}", describe(&rerun));
        let j = journal(&outbox);
        let registered = j
            .iter()
            .filter(|l| l["kind"] == "label" && l["event"] == "done")
            .count();
        let adapted = j.iter().filter(|l| l["event"] == "adapted").count();
        assert_eq!((registered, adapted), (1, 1), "{step}: {j:#?}");
        let revisions = std::fs::read_to_string(outbox.join("revisions.csv")).unwrap();
        assert_eq!(revisions.lines().count(), 2, "{step}: {revisions}");
        assert!(outbox.join("state/models/gen-0001/model-card.json").is_file());
        assert_eq!(std::fs::read_dir(&labels).unwrap().count(), 0);
        let stored = std::fs::read_dir(outbox.join("state/labels")).unwrap().count();
        assert_eq!(stored, 1, "{step}: the label is kept once");
    }
}

/// Every scan-like input of the fuzz corpora (`nifti`, single-file `dicom`), at most `most`
/// of each spread over the corpus, named by target and index.
fn fuzzed_scans(most: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for target in ["nifti", "dicom"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let step = files.len().div_ceil(most).max(1);
        for (i, f) in files.iter().enumerate().step_by(step) {
            if let Some((ext, bytes)) = delinea::fuzz::as_scan(target, &std::fs::read(f).unwrap()) {
                out.push((format!("fuzz-{target}-{i:04}.{ext}"), bytes));
            }
        }
    }
    out
}

/// Each input's events in the journal, in order.
fn events_by_input(outbox: &Path) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in journal(outbox).iter().filter(|l| l["kind"] == "scan") {
        let event = l["event"].as_str().unwrap().to_string();
        m.entry(l["input"].as_str().unwrap().to_string())
            .or_default()
            .push(event);
    }
    m
}

/// Every input ended once, done or failed (with its reason file); the good ones done.
fn check_fuzzed_burst(outbox: &Path, names: &[String], good: &[String]) -> (usize, usize) {
    let events = events_by_input(outbox);
    let (mut done, mut failed) = (0, 0);
    for n in names {
        let ends: Vec<&String> = events
            .get(n)
            .into_iter()
            .flatten()
            .filter(|e| *e == "done" || *e == "failed")
            .collect();
        assert_eq!(ends.len(), 1, "{n}: {:?}", events.get(n));
        if ends[0] == "done" {
            done += 1;
        } else {
            failed += 1;
            let reason = std::fs::read_to_string(outbox.join("failed").join(format!("{n}.error.json")))
                .unwrap_or_else(|e| panic!("{n} failed without its reason file: {e}"));
            assert!(reason.contains("reason"), "{n}: {reason}");
        }
        assert!(!good.contains(n) || ends[0] == "done", "good scan {n} failed");
    }
    (done, failed)
}

/// Hostile bytes through the drop folder: the fuzz corpora's NIfTI and DICOM inputs beside good
/// scans, to a long-running watcher and to repeated `--once` runs. Every good scan is done
/// once, every input ends once (done or failed with its reason), and the watcher stays up.
#[test]
fn a_burst_of_fuzzed_scans_beside_good_ones_ends_each_once_and_the_watcher_stays_up() {
    let s = setup(false);
    let mut arrivals = fuzzed_scans(300);
    let good: Vec<String> = (0..6).map(|i| format!("good-{i}.nii.gz")).collect();
    for (i, g) in good.iter().enumerate() {
        arrivals.push((g.clone(), std::fs::read(&s.scans[i % s.scans.len()]).unwrap()));
    }
    let names: Vec<String> = arrivals.iter().map(|(n, _)| n.clone()).collect();
    assert!(names.len() > 200, "{} arrivals", names.len());
    let drop_all = |inbox: &Path| {
        let staging = inbox.with_extension("staging");
        std::fs::create_dir_all(&staging).unwrap();
        for (n, bytes) in &arrivals {
            std::fs::write(staging.join(n), bytes).unwrap();
        }
        for n in &names {
            std::fs::rename(staging.join(n), inbox.join(n)).unwrap();
        }
    };
    let ended = |outbox: &Path| {
        let events = events_by_input(outbox);
        names.iter().all(|n| {
            events
                .get(n)
                .is_some_and(|e| e.iter().any(|e| e == "done" || e == "failed"))
        })
    };

    let (inbox, outbox, labels) = s.folders("fuzzed");
    let mut child = s.spawn(&inbox, &outbox, &labels, &[], &[]);
    wait_ready(&outbox);
    let start = Instant::now();
    drop_all(&inbox);
    let all = wait_until(Duration::from_secs(300), || ended(&outbox));
    assert!(
        all,
        "not every input ended in 300 s; the watcher's log: {}",
        std::fs::read_to_string(outbox.with_extension("log")).unwrap_or_default()
    );
    let took = start.elapsed();
    assert!(child.try_wait().unwrap().is_none(), "the watcher died");
    let (done, failed) = check_fuzzed_burst(&outbox, &names, &good);
    assert_eq!(terminate(child), Some(0));
    println!(
        "long-running: {} arrivals, {done} done, {failed} failed, in {took:?}",
        names.len()
    );

    let (inbox, outbox, labels) = s.folders("fuzzed-once");
    drop_all(&inbox);
    let mut runs = 0;
    while !ended(&outbox) && runs < 3 {
        let out = s.once(&inbox, &outbox, &labels, &[]);
        assert!(out.status.success(), "--once run {runs}: {}", describe(&out));
        runs += 1;
    }
    assert!(
        ended(&outbox),
        "after {runs} --once runs, inputs left: {:?}",
        std::fs::read_dir(&inbox).unwrap().count()
    );
    let (done_once, failed_once) = check_fuzzed_burst(&outbox, &names, &good);
    assert_eq!(
        (done_once, failed_once),
        (done, failed),
        "--once and the long-running watcher disagree"
    );
    println!("--once: {runs} run(s), {done_once} done, {failed_once} failed");
}
