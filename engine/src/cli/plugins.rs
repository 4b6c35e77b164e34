//! `delinea plugins list` and `delinea plugins inspect PATH`.

use std::path::PathBuf;

use delinea::plugin;

use super::{print_json, ExitStatus, Global};

/// List or inspect native strategy plugins (plugins/README.md).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The plugins in the plugin folders (--plugin-dir, DELINEA_PLUGIN_PATH), read from their
    /// files without loading them, and the files refused with why.
    List {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check one plugin file: its descriptor, then loading it and its function table, in a
    /// child process (a plugin that crashes while loading is reported, not fatal).
    Inspect {
        /// The library.
        path: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Load a plugin and print its descriptor as JSON (what `inspect` runs in its child).
    #[command(hide = true)]
    Probe {
        /// The library.
        path: PathBuf,
    },
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    match args.command {
        Command::List { json } => list(json, global),
        Command::Inspect { path, json } => inspect(&path, json, global),
        Command::Probe { path } => {
            let loaded = plugin::load::load(&path)?;
            print_json(&loaded.info)?;
            Ok(ExitStatus::Success)
        }
    }
}

fn list(json: bool, global: Global) -> anyhow::Result<ExitStatus> {
    let dirs = plugin::plugin_dirs(&[]);
    let (found, refused) = plugin::list(&dirs);
    if json {
        let refused: Vec<String> = refused.iter().map(|e| e.to_string()).collect();
        print_json(&serde_json::json!({"folders": dirs, "plugins": found, "refused": refused}))?;
    } else if !global.quiet {
        if dirs.is_empty() {
            println!("no plugin folder: give --plugin-dir DIR or DELINEA_PLUGIN_PATH");
        }
        for p in &found {
            println!(
                "{:<24} {:<10} {:<6} ABI {:<5} {}",
                p.name,
                p.version,
                p.kind,
                p.abi,
                p.path.display()
            );
        }
        for e in &refused {
            println!("refused: {e}");
        }
    }
    Ok(ExitStatus::Success)
}

fn inspect(path: &std::path::Path, json: bool, global: Global) -> anyhow::Result<ExitStatus> {
    // The file first, in this process: nothing of it runs.
    let info = plugin::descriptor::read(path)?;
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["plugins", "probe"])
        .arg(path)
        .output()?;
    let loaded = if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(match signal(&out.status) {
            Some(sig) => format!(
                "loading it killed the probe process with signal {sig}{}",
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            ),
            None => stderr.strip_prefix("delinea: error: ").unwrap_or(&stderr).to_string(),
        })
    };
    if json {
        print_json(&serde_json::json!({"plugin": info, "loads": loaded.is_ok(), "error": loaded.as_ref().err()}))?;
    } else if !global.quiet {
        println!(
            "{} {} ({} plugin, ABI {}, SDK {}, {}, panic = unwind)",
            info.name, info.version, info.kind, info.abi, info.sdk, info.target
        );
        if !info.needs.is_empty() {
            println!("reads: {}", info.needs.join(", "));
        }
        println!("parameters: {}", info.params_schema);
        match &loaded {
            Ok(()) => println!("loads: yes, its function table matches its descriptor"),
            Err(e) => println!("loads: no: {e}"),
        }
    }
    Ok(if loaded.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

#[cfg(unix)]
fn signal(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn signal(_status: &std::process::ExitStatus) -> Option<i32> {
    None
}
