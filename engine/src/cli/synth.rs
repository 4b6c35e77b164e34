//! `delinea synth --out DIR --seed N …`.

use std::path::PathBuf;
use std::time::Instant;

use delinea::synth::{self, Config, Summary};

use super::progress::{Items, Mode};
use super::{print_json, ExitStatus, Global};

/// Write a synthetic multi-centre, multi-rater NPC cohort: NIfTI images and labels,
/// manifest.json and synth-summary.json.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (created; files of the same names are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Seed of every random draw: the same seed gives the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of centres C1..Cn (C1 is the source, the others targets).
    #[arg(long, default_value_t = Config::default().centres)]
    centres: usize,
    /// Cases per centre.
    #[arg(long, default_value_t = Config::default().cases_per_centre)]
    cases_per_centre: usize,
    /// Experts R1..Rn who all delineate the multi-rater centre MR.
    #[arg(long, default_value_t = Config::default().raters)]
    raters: usize,
    /// Cases of the multi-rater centre MR (0: none).
    #[arg(long, default_value_t = Config::default().multi_rater_cases)]
    multi_rater_cases: usize,
    /// Source-centre grid NX,NY,NZ (or NXxNYxNZ) over the fixed field of view; target
    /// centres' grids follow from their own voxel sizes.
    #[arg(long, default_value = "96,96,24", value_parser = parse_triple::<usize>)]
    size: [usize; 3],
    /// Field of view X,Y,Z in mm.
    #[arg(long, default_value = "211.2,211.2,84", value_parser = parse_triple::<f64>)]
    fov: [f64; 3],
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_triple<T: std::str::FromStr + Copy + Default>(s: &str) -> Result<[T; 3], String> {
    let parts: Vec<&str> = s.split([',', 'x', 'X']).map(str::trim).collect();
    if parts.len() != 3 {
        return Err(format!("expected three values like 96,96,24, got {s:?}"));
    }
    let mut out = [T::default(); 3];
    for (o, p) in out.iter_mut().zip(&parts) {
        *o = p.parse().map_err(|_| format!("{p:?} is not a valid number"))?;
    }
    Ok(out)
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let config = Config {
        seed: args.seed,
        centres: args.centres,
        cases_per_centre: args.cases_per_centre,
        raters: args.raters,
        multi_rater_cases: args.multi_rater_cases,
        size: args.size,
        fov_mm: args.fov,
        ..Config::default()
    };
    config.check()?;
    let total = args.centres * args.cases_per_centre + args.multi_rater_cases;
    let progress = Items::new(Mode::detect(global.quiet || args.json), total, "cases written");
    let start = Instant::now();
    let summary = synth::generate(&args.out, &config, &|| progress.tick(""))?;
    let secs = start.elapsed().as_secs_f64();
    progress.finish();
    if args.json {
        print_json(&summary)?;
    } else if !global.quiet {
        print_summary(&summary);
        println!(
            "wrote {} cases to {} in {secs:.1} s ({:.2} s per case); check it with: delinea validate {}",
            summary.cases,
            args.out.display(),
            secs / summary.cases.max(1) as f64,
            args.out.join("manifest.json").display()
        );
    }
    Ok(ExitStatus::Success)
}

fn print_summary(s: &Summary) {
    println!("{} (seed {}): {} cases", s.name, s.seed, s.cases);
    println!(
        "  {:<6} {:<6} {:<8} {:>5} {:>9} {:>13} {:>17} {:>4} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "centre", "role", "ref", "cases", "tr/va/te", "dims", "spacing mm", "ori", "mean", "std", "p1", "p99", "GTV ml"
    );
    for c in &s.centres {
        let role = match c.role {
            delinea::dataset::Role::Source => "source",
            delinea::dataset::Role::Target => "target",
        };
        println!(
            "  {:<6} {:<6} {:<8} {:>5} {:>9} {:>13} {:>17} {:>4} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
            c.id,
            role,
            c.reference_rater,
            c.cases,
            format!("{}/{}/{}", c.splits[0], c.splits[1], c.splits[2]),
            format!("{}x{}x{}", c.dims[0], c.dims[1], c.dims[2]),
            format!("{:.2}x{:.2}x{:.2}", c.spacing[0], c.spacing[1], c.spacing[2]),
            serde_json::to_value(c.orientation)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            c.intensity.mean,
            c.intensity.std,
            c.intensity.p1,
            c.intensity.p99,
            c.tumour_ml.median
        );
    }
    println!(
        "  {:<8} {:>5} {:>10} {:>9} {:>9} {:>8} {:>10} {:>11} {:>9}",
        "rater", "cases", "margin mm", "jitter", "slice", "omit p", "GTV ml", "vol/truth", "DSC/truth"
    );
    for r in &s.raters {
        let h = &r.habit;
        println!(
            "  {:<8} {:>5} {:>+10.2} {:>9.2} {:>9.2} {:>8.2} {:>10.1} {:>11.2} {:>9.3}",
            h.id,
            r.cases,
            h.margin_mm,
            h.jitter_mm,
            h.slice_jitter_mm,
            h.omit_extension,
            r.tumour_ml.median,
            r.volume_ratio_to_truth,
            r.dsc_to_truth
        );
    }
}
