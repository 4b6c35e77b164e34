//! `delinea convert IN OUT`: a DICOM series (folder or file) to NIfTI with the same geometry and
//! voxel values.

use std::path::{Path, PathBuf};

use delinea::volume::{self, dicom};
use serde::Serialize;

use super::{print_json, ExitStatus, Global};

/// Convert a DICOM series to NIfTI (what physicists otherwise do with dcm2niix).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A DICOM series folder, a folder of several series, or one DICOM file.
    input: PathBuf,
    /// A `.nii` / `.nii.gz` file (the input must hold one series), or a folder that receives
    /// `<SeriesInstanceUID>.nii.gz` per series.
    output: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

/// One converted series.
#[derive(Debug, Serialize)]
struct Converted {
    series: String,
    description: String,
    files: usize,
    dims: [usize; 3],
    spacing: [f64; 3],
    orientation: String,
    out: PathBuf,
}

fn is_nifti_name(p: &Path) -> bool {
    let n = p.to_string_lossy();
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let series = dicom::read_series(&args.input)?;
    if is_nifti_name(&args.output) && series.len() > 1 {
        anyhow::bail!(
            "{} holds {} series; give a folder as OUT to write one NIfTI per series",
            args.input.display(),
            series.len()
        );
    }
    let mut done = Vec::new();
    for s in &series {
        let out = if is_nifti_name(&args.output) {
            args.output.clone()
        } else {
            std::fs::create_dir_all(&args.output)?;
            args.output.join(format!("{}.nii.gz", s.uid))
        };
        volume::write_volume(&out, &s.volume)?;
        let g = &s.volume.geometry;
        done.push(Converted {
            series: s.uid.clone(),
            description: s.description.clone(),
            files: s.files.len(),
            dims: g.dims,
            spacing: g.spacing,
            orientation: g.orientation(),
            out,
        });
    }
    if args.json {
        print_json(&done)?;
    } else if !global.quiet {
        for c in &done {
            println!(
                "{} ({} files, {:?}): {} x {} x {} at {:.4} x {:.4} x {:.4} mm, {} -> {}",
                c.series,
                c.files,
                c.description,
                c.dims[0],
                c.dims[1],
                c.dims[2],
                c.spacing[0],
                c.spacing[1],
                c.spacing[2],
                c.orientation,
                c.out.display()
            );
        }
    }
    Ok(ExitStatus::Success)
}
