//! Records the git commit the engine is built from (`DELINEA_COMMIT`: the short hash, with
//! `+changes` when the work tree differs from it; `unknown` outside a git checkout), so that
//! what an experiment writes can say which code produced it.

use std::process::Command;

fn main() {
    // Rerun when the code changes or HEAD moves (a commit, a checkout).
    println!("cargo:rerun-if-changed=src");
    // (Only paths that exist: Cargo reruns the script every build for a missing one.)
    for git in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(git).exists() {
            println!("cargo:rerun-if-changed={git}");
        }
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{hash}+changes")
            } else {
                hash
            }
        }
        _ => "unknown".into(),
    };
    println!("cargo:rustc-env=DELINEA_COMMIT={commit}");
}
