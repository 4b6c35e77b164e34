//! Helpers shared by the end-to-end tests: the binary, sandboxes, the shared data folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `delinea` binary with `args`.
pub fn delinea(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_delinea"))
        .args(args)
        .output()
        .expect("the delinea binary runs")
}

/// The exit code and both streams of `out`, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The workspace's tests/fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// `../shared/data` beside the repository, or `None` (with the reason printed) where the
/// folder is absent: tests that use it skip only then.
pub fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: {} is absent; the real-file reader checks need ../shared/data",
            dir.display()
        );
        None
    }
}

/// Writes a tiny synthetic cohort (2 centres × 5 cases of 32 × 32 × 8, no multi-rater
/// centre) with `seed` into `dir` and returns its manifest's path.
pub fn tiny_cohort(dir: &Path, seed: u64) -> String {
    let seed = seed.to_string();
    let out = delinea(&[
        "synth",
        "--out",
        dir.to_str().unwrap(),
        "--seed",
        &seed,
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
    assert!(out.status.success(), "{}", describe(&out));
    dir.join("manifest.json").to_str().unwrap().to_string()
}

/// Trains a tiny U-Net (features 4-8-16 at 32 × 32) on C1 of `manifest` for `iterations`
/// steps into `dir` and returns its path.
pub fn tiny_model(manifest: &str, dir: &Path, iterations: usize) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.with_extension("config.json");
    std::fs::write(
        &config,
        r#"{"batch": 4, "validate_every": 5, "preprocessing": {"slice_size": 32}, "model": {"features": [4, 8, 16], "dropout": [0.05, 0.1, 0.2]}}"#,
    )
    .unwrap();
    let out = delinea(&[
        "train",
        "--manifest",
        manifest,
        "--centre",
        "C1",
        "--config",
        config.to_str().unwrap(),
        "--iterations",
        &iterations.to_string(),
        "--device",
        "cpu",
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    dir.to_str().unwrap().to_string()
}

/// Source reference points (`k` centroids) of `model` on C1 of `manifest`, written to `out`.
pub fn tiny_references(model: &str, manifest: &str, out: &Path, k: usize) -> PathBuf {
    let k = k.to_string();
    let args = [
        "reference",
        "--model",
        model,
        "--manifest",
        manifest,
        "--centre",
        "C1",
        "--k",
        &k,
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let result = delinea(&args);
    assert!(result.status.success(), "{}", describe(&result));
    out.to_path_buf()
}

/// Whether the reference tool `what` runs (`probe` succeeds). Absent, a test skips the checks
/// that need it with the reason printed, except under CI (`CI` set), where `.ci/run` installs
/// it and its absence is a failure.
pub fn reference_tool(what: &str, probe: &mut Command) -> bool {
    let ok = probe.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is missing under CI: .ci/run installs it"
        );
        println!("SKIPPED: {what} is not installed; the checks against it did not run");
    }
    ok
}

/// A gzip NIfTI of a few hundred bytes whose header claims 1024 × 1024 × 1024 uint8 voxels
/// (a gigavoxel, 4 GiB as f32) with only 24 bytes of data: what a hostile or broken sender may
/// deliver. Every reader must refuse it by the voxel cap before reading the data.
pub fn oversized_nifti_gz(path: &Path) {
    use std::io::Write;
    let g = delinea::volume::Geometry::axis_aligned([4, 3, 2], [1.0, 1.0, 1.0]);
    let v = delinea::volume::Volume::from_vec(g, vec![0.0; 24]).unwrap();
    let plain = path.with_extension("plain.nii");
    delinea::volume::write_volume(&plain, &v).unwrap();
    let mut bytes = std::fs::read(&plain).unwrap();
    std::fs::remove_file(&plain).unwrap();
    for (offset, value) in [(42, 1024i16), (44, 1024), (46, 1024), (70, 2), (72, 8)] {
        bytes[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}
