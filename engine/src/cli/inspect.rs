//! `delinea inspect FILE`.

use std::path::PathBuf;

use delinea::volume;

use super::{print_json, ExitStatus, Global};

/// Show a NIfTI file's grid, header and intensity statistics, or a DICOM folder's series.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A `.nii`, `.nii.gz` or `.hdr` file, or a DICOM series folder or file.
    file: PathBuf,
    /// Print one JSON object (data-schema/inspect.schema.json).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, _global: Global) -> anyhow::Result<ExitStatus> {
    if volume::dicom::is_dicom(&args.file) {
        return inspect_dicom(&args);
    }
    let i = volume::inspect(&args.file)?;
    if args.json {
        print_json(&i)?;
        return Ok(ExitStatus::Success);
    }
    let h = &i.header;
    println!("{}", i.path.display());
    println!(
        "  format       {}{}",
        h.format,
        if h.compressed { " (gzip)" } else { "" }
    );
    println!(
        "  dims         {} x {} x {}   (stored dim {:?})",
        i.dims[0], i.dims[1], i.dims[2], h.dim
    );
    println!(
        "  spacing      {} x {} x {} mm",
        i.spacing[0], i.spacing[1], i.spacing[2]
    );
    println!(
        "  datatype     {} ({} bits, {} endian)",
        i.datatype, h.bitpix, i.endianness
    );
    println!("  scaling      slope {} inter {}", h.scl_slope, h.scl_inter);
    println!(
        "  affine from  {} (qform_code {}, sform_code {})",
        h.affine_source, h.qform_code, h.sform_code
    );
    for row in &i.affine {
        println!(
            "               [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]",
            row[0], row[1], row[2], row[3]
        );
    }
    println!("  orientation  {}", i.orientation);
    let s = &i.stats;
    println!(
        "  intensity    min {:.4} max {:.4} mean {:.4} std {:.4}",
        s.min, s.max, s.mean, s.std
    );
    println!("               p1 {:.4} median {:.4} p99 {:.4}", s.p1, s.p50, s.p99);
    println!("  voxels       {} nonzero, {} NaN/Inf", s.nonzero, s.non_finite);
    if let Some(d) = &s.distinct {
        println!("  values       {d:?}");
    }
    if !h.description.is_empty() {
        println!("  description  {}", h.description);
    }
    Ok(ExitStatus::Success)
}

/// One series of a DICOM folder, as `inspect --json` prints it.
#[derive(Debug, serde::Serialize)]
struct SeriesInfo<'a> {
    series: &'a str,
    description: &'a str,
    files: usize,
    dims: [usize; 3],
    spacing: [f64; 3],
    affine: volume::Affine,
    orientation: String,
    min: f32,
    max: f32,
}

/// The series of a DICOM folder or file: grid (RAS affine), files and value range.
fn inspect_dicom(args: &Args) -> anyhow::Result<ExitStatus> {
    let series = volume::dicom::read_series(&args.file)?;
    let infos: Vec<SeriesInfo> = series
        .iter()
        .map(|s| {
            let g = &s.volume.geometry;
            let (min, max) = s
                .volume
                .data
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            SeriesInfo {
                series: &s.uid,
                description: &s.description,
                files: s.files.len(),
                dims: g.dims,
                spacing: g.spacing,
                affine: g.affine,
                orientation: g.orientation(),
                min,
                max,
            }
        })
        .collect();
    if args.json {
        print_json(&infos)?;
        return Ok(ExitStatus::Success);
    }
    println!("{}: {} DICOM series", args.file.display(), infos.len());
    for i in &infos {
        println!("  series       {} {:?} ({} files)", i.series, i.description, i.files);
        println!("  dims         {} x {} x {}", i.dims[0], i.dims[1], i.dims[2]);
        println!(
            "  spacing      {} x {} x {} mm (slices: from the positions)",
            i.spacing[0], i.spacing[1], i.spacing[2]
        );
        for row in &i.affine {
            println!(
                "               [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]",
                row[0], row[1], row[2], row[3]
            );
        }
        println!("  orientation  {} (RAS affine; DICOM's LPS converted)", i.orientation);
        println!("  values       min {} max {} (rescale applied)", i.min, i.max);
    }
    Ok(ExitStatus::Success)
}
