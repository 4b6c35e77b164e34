//! `delinea report RESULTS_DIR [--out FILE]`: the HTML report of an experiment's results.

use std::path::PathBuf;

use delinea::report;

use super::{print_json, ExitStatus, Global};

/// Write the HTML report of an experiment's results (also written at the end of `experiment`
/// and `demo`): tables, box plots, overlays, query picks, curves and settings in one
/// self-contained page, and its pictures as PNG files in `report/` beside it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `--out` folder of `delinea experiment` or `delinea demo`.
    results: PathBuf,
    /// The page to write (default: RESULTS/report.html).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let out = args.out.clone().unwrap_or_else(|| args.results.join("report.html"));
    let written = report::write_report(&args.results, &out)?;
    if args.json {
        print_json(&written)?;
    } else if !global.quiet {
        println!(
            "wrote {} ({} sections, {} pictures in {})",
            written.html.display(),
            written.sections.len(),
            written.pictures.len(),
            out.parent().unwrap_or(&out).join("report").display()
        );
    }
    Ok(ExitStatus::Success)
}
