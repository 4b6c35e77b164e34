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
