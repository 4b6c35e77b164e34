//! The fuzz targets' committed inputs replayed on stable Rust: every file of
//! `fuzz/corpus/<target>` (seeds and the corpus fuzzing grew, minimised) and
//! `fuzz/regressions/<target>` (each input that once crashed, hung or over-allocated) goes
//! through the same `delinea::fuzz` function libFuzzer calls. A panic fails the test naming the
//! target and file; so does an input slower than [`SLOW`] (libFuzzer's limit is 1 s).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An input this slow is a hang (generous: CI's 2 cores run other tests beside this one).
const SLOW: Duration = Duration::from_secs(20);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(folder) {
        Ok(entries) => entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) -> (usize, Duration, PathBuf) {
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} holds no input: every target needs its committed corpus"
    );
    let files = corpus
        .into_iter()
        .chain(inputs(&fuzz_dir().join("regressions").join(target)));
    let (mut count, mut slowest, mut slowest_file) = (0, Duration::ZERO, PathBuf::new());
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let start = Instant::now();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("fuzz target {target} panicked on {}", file.display());
        }
        let took = start.elapsed();
        assert!(took < SLOW, "fuzz target {target} took {took:?} on {}", file.display());
        if took > slowest {
            (slowest, slowest_file) = (took, file);
        }
        count += 1;
    }
    (count, slowest, slowest_file)
}

#[test]
fn every_committed_fuzz_input_is_handled_without_panic_or_hang() {
    let sphere = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dicom/sphere");
    delinea::fuzz::set_rtstruct_series(&sphere).expect("the sphere fixture reads");
    let targets_on_disk: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".rs").map(String::from))
        .collect();
    for name in &targets_on_disk {
        assert!(
            delinea::fuzz::TARGETS.iter().any(|(t, _)| t == name),
            "fuzz/fuzz_targets/{name}.rs has no delinea::fuzz::TARGETS entry to replay"
        );
    }
    let mut total = 0;
    for (target, run) in delinea::fuzz::TARGETS {
        let (count, slowest, file) = replay(target, *run);
        println!(
            "{target}: {count} inputs, slowest {:.0} ms ({})",
            slowest.as_secs_f64() * 1e3,
            file.file_name().unwrap_or_default().to_string_lossy()
        );
        total += count;
    }
    assert_eq!(targets_on_disk.len(), delinea::fuzz::TARGETS.len());
    println!("{total} inputs replayed");
}
