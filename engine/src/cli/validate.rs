//! `delinea validate MANIFEST`.

use std::path::PathBuf;

use delinea::dataset::{self, Manifest};

use super::{print_json, ExitStatus, Global};

/// Check that every file of a manifest exists, reads and matches its image's geometry.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifest (JSON, see data-schema/manifest.schema.json).
    manifest: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let manifest = Manifest::load(&args.manifest)?;
    let report = dataset::validate(&manifest);
    if args.json {
        print_json(&report)?;
    } else {
        for p in &report.problems {
            eprintln!("case {}: {}: {}", p.case, p.file.display(), p.message);
        }
        if !global.quiet || !report.is_ok() {
            println!(
                "{}: {} cases, {} label maps, {} problem(s)",
                args.manifest.display(),
                report.cases,
                report.labels,
                report.problems.len()
            );
            for (centre, splits) in &report.counts {
                let s: Vec<String> = splits.iter().map(|(k, v)| format!("{k} {v}")).collect();
                println!("  {centre}: {}", s.join(", "));
            }
        }
    }
    Ok(if report.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
