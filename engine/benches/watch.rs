//! The drop folder under a burst (not a test): 200 scans renamed into a watched inbox at once.
//! Reports the time from landing to mask (median, max), the watcher's own time per scan beyond
//! inference (from its journal: `latency_s - infer_s`), and its wall time against `delinea
//! predict` on the same 200 scans with the same outputs (MC dropout, descriptors), measured in
//! the same run. One JSON line each.
//!
//! Run: `cargo bench -p delinea --bench watch -- [--scans N] [--size X,Y,Z]`
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn delinea(args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new(env!("CARGO_BIN_EXE_delinea")).args(args).output()?;
    if !out.status.success() {
        return Err(format!("delinea {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = arg("--scans", "200").parse()?;
    let size = arg("--size", "64,64,24");
    let dir = tempfile::tempdir()?;
    let d = |p: &str| dir.path().join(p).to_str().unwrap_or_default().to_string();
    delinea(&[
        "synth",
        "--out",
        &d("cohort"),
        "--centres",
        "2",
        "--cases-per-centre",
        "5",
        "--multi-rater-cases",
        "0",
        "--size",
        &size,
        "--quiet",
    ])?;
    let manifest = d("cohort/manifest.json");
    // The paper's U-Net at the cohort's slice size; a few steps (the weights' quality does not
    // change the time an inference takes).
    let side = size.split(',').next().unwrap_or("64");
    std::fs::write(
        d("config.json"),
        format!(r#"{{"batch": 4, "preprocessing": {{"slice_size": {side}}}}}"#),
    )?;
    delinea(&[
        "train",
        "--manifest",
        &manifest,
        "--centre",
        "C1",
        "--config",
        &d("config.json"),
        "--iterations",
        "5",
        "--device",
        "cpu",
        "--out",
        &d("model"),
        "--quiet",
    ])?;
    delinea(&[
        "reference",
        "--model",
        &d("model"),
        "--manifest",
        &manifest,
        "--centre",
        "C1",
        "--k",
        "8",
        "--device",
        "cpu",
        "--out",
        &d("refs.json"),
        "--quiet",
    ])?;
    std::fs::write(
        d("job.json"),
        r#"{"format": "delinea-job", "model": "model", "device": "cpu", "query": {"strategy": "stdr", "references": "refs.json"}}"#,
    )?;
    let scans: Vec<_> = std::fs::read_dir(dir.path().join("cohort/C2/images"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    let (staging, peer_in) = (dir.path().join("staging"), dir.path().join("peer-in"));
    for folder in [&staging, &peer_in, &dir.path().join("in")] {
        std::fs::create_dir_all(folder)?;
    }
    for i in 0..n {
        let name = format!("scan-{i:04}.nii.gz");
        std::fs::copy(&scans[i % scans.len()], staging.join(&name))?;
        std::fs::copy(&scans[i % scans.len()], peer_in.join(&name))?;
    }
    // The peer: the same inference and outputs in one `delinea predict` process.
    let t = Instant::now();
    delinea(&[
        "predict",
        "--model",
        &d("model"),
        "--input",
        &d("peer-in"),
        "--out",
        &d("peer-out"),
        "--mc",
        "8",
        "--descriptors",
        "--device",
        "cpu",
        "--quiet",
    ])?;
    let peer_s = t.elapsed().as_secs_f64();
    // The watcher.
    let mut child = Command::new(env!("CARGO_BIN_EXE_delinea"))
        .args([
            "watch",
            "--job",
            &d("job.json"),
            "--inbox",
            &d("in"),
            "--outbox",
            &d("out"),
        ])
        .stderr(Stdio::null())
        .spawn()?;
    let journal = dir.path().join("out/journal.jsonl");
    while !journal.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let landed = SystemTime::now();
    let t = Instant::now();
    for i in 0..n {
        let name = format!("scan-{i:04}.nii.gz");
        std::fs::rename(staging.join(&name), dir.path().join("in").join(&name))?;
    }
    let done = |text: &str| text.lines().filter(|l| l.contains(r#""event":"done""#)).count();
    while done(&std::fs::read_to_string(&journal)?) < n {
        std::thread::sleep(Duration::from_millis(50));
    }
    let watch_s = t.elapsed().as_secs_f64();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    child.wait()?;
    let mut to_mask = Vec::new();
    for i in 0..n {
        let mask = dir.path().join(format!("out/cases/scan-{i:04}/mask.nii.gz"));
        to_mask.push(
            std::fs::metadata(Path::new(&mask))?
                .modified()?
                .duration_since(landed)?
                .as_secs_f64(),
        );
    }
    let mut overhead = Vec::new();
    let mut infer = Vec::new();
    for line in std::fs::read_to_string(&journal)?
        .lines()
        .filter(|l| l.contains(r#""event":"done""#))
    {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let (l, i) = (
            v["latency_s"].as_f64().unwrap_or(0.0),
            v["infer_s"].as_f64().unwrap_or(0.0),
        );
        overhead.push(l - i);
        infer.push(i);
    }
    let max = to_mask.iter().copied().fold(0.0, f64::max);
    println!(
        "{{\"scans\": {n}, \"size\": \"{size}\", \"landing_to_mask_median_s\": {:.2}, \"landing_to_mask_max_s\": {max:.2}, \
         \"infer_per_scan_median_s\": {:.3}, \"watcher_overhead_per_scan_median_s\": {:.4}, \"watcher_overhead_per_scan_max_s\": {:.4}, \
         \"watch_wall_s\": {watch_s:.1}, \"predict_wall_s\": {peer_s:.1}, \"ratio\": {:.2}}}",
        median(&mut to_mask),
        median(&mut infer),
        median(&mut overhead.clone()),
        overhead.iter().copied().fold(0.0, f64::max),
        watch_s / peer_s
    );
    Ok(())
}
