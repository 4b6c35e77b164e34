//! `delinea convert IN OUT`: a DICOM series (folder or file) to NIfTI with the same geometry and
//! voxel values; with `--reference SERIES`, a mask to an RTSTRUCT or DICOM-SEG referencing it,
//! or an RTSTRUCT back to a mask on the series' grid.

use std::path::{Path, PathBuf};

use delinea::volume::{self, dicom};
use serde::Serialize;

use super::{print_json, ExitStatus, Global};

/// Convert a DICOM series to NIfTI (what physicists otherwise do with dcm2niix), or a mask on
/// a series' grid to an RTSTRUCT or DICOM-SEG referencing that series (`--reference`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A DICOM series folder, a folder of several series, or one DICOM file; with
    /// `--reference`, a mask (NIfTI label map) on that series' grid, or an RTSTRUCT drawn on it
    /// (read back to a `.nii.gz` mask: the ROI named --roi-name, else its only ROI or its only
    /// GTV).
    input: PathBuf,
    /// A `.nii` / `.nii.gz` file (the input must hold one series), or a folder that receives
    /// `<SeriesInstanceUID>.nii.gz` per series; with `--reference`, the `.dcm` file to write.
    output: PathBuf,
    /// The DICOM series the mask was predicted on: the RTSTRUCT / SEG references it.
    #[arg(long, value_name = "SERIES")]
    reference: Option<PathBuf>,
    /// With `--reference`: the object to write.
    #[arg(long, value_enum, default_value = "rtstruct")]
    format: dicom::DerivedFormat,
    /// With `--reference`: only this label of the mask (default: every non-zero voxel).
    #[arg(long)]
    label: Option<u8>,
    #[command(flatten)]
    dicom_out: DicomOutArgs,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

/// How an RTSTRUCT / SEG names its structure and makes its UIDs (convert and predict).
#[derive(Debug, Clone, clap::Args)]
pub struct DicomOutArgs {
    /// RTSTRUCT / SEG: the structure's name (ROIName, SegmentLabel).
    #[arg(long, default_value = "GTV")]
    roi_name: String,
    /// RTSTRUCT / SEG: the root of the new UIDs (your organisation's registered root;
    /// default 2.25, UUID-derived).
    #[arg(long)]
    uid_root: Option<String>,
    /// RTSTRUCT: `keyhole` joins each hole to its island by a zero-width cut (one polygon per
    /// island, read alike by every planning system); `rings` writes holes as separate contours
    /// (the even-odd convention).
    #[arg(long, default_value = "keyhole")]
    holes: dicom::Holes,
}

impl DicomOutArgs {
    /// The writer's options, checked.
    pub fn options(&self) -> anyhow::Result<dicom::Options> {
        let options = dicom::Options {
            roi_name: self.roi_name.clone(),
            uid_root: self.uid_root.clone(),
            holes: self.holes,
            ..dicom::Options::default()
        };
        options.check().map_err(anyhow::Error::msg)?;
        Ok(options)
    }
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
    if let Some(reference) = &args.reference {
        return derive(&args, reference, global);
    }
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

/// An RT Structure Set read back onto its series' grid as a NIfTI label map.
fn read_back(args: &Args, reference: &Path, global: Global) -> anyhow::Result<ExitStatus> {
    let series = dicom::read_one_series(reference)?;
    let name = args.dicom_out.roi_name.as_str();
    let mask = dicom::read_rtstruct(&args.input, &series, Some(name))
        .or_else(|_| dicom::read_rtstruct(&args.input, &series, None))?;
    volume::write_label_map(&args.output, &mask)?;
    let voxels = mask.data.iter().filter(|v| **v > 0).count();
    if args.json {
        print_json(&serde_json::json!({"voxels": voxels, "series": series.uid, "out": args.output}))?;
    } else if !global.quiet {
        println!(
            "RTSTRUCT {} read on series {}: {voxels} voxels -> {}",
            args.input.display(),
            series.uid,
            args.output.display()
        );
    }
    Ok(ExitStatus::Success)
}

/// A mask and its reference series to an RTSTRUCT or SEG.
fn derive(args: &Args, reference: &Path, global: Global) -> anyhow::Result<ExitStatus> {
    if is_nifti_name(&args.output) && dicom::is_dicom(&args.input) {
        return read_back(args, reference, global);
    }
    let options = dicom::Options {
        label: args.label,
        ..args.dicom_out.options()?
    };
    let series = dicom::read_one_series(reference)?;
    let mask = volume::read_label_map(&args.input)?;
    let written = args.format.write(&mask, &args.input, &series, &args.output, &options)?;
    if args.json {
        print_json(&written)?;
    } else if !global.quiet {
        println!(
            "{} {:?} ({} voxels on {} slices, {} {}) referencing series {} -> {}",
            match written.format {
                dicom::DerivedFormat::Rtstruct => "RTSTRUCT",
                dicom::DerivedFormat::Seg => "SEG",
            },
            options.roi_name,
            written.voxels,
            written.slices,
            written.items,
            match written.format {
                dicom::DerivedFormat::Rtstruct => "contours",
                dicom::DerivedFormat::Seg => "frames",
            },
            series.uid,
            written.path.display()
        );
    }
    Ok(ExitStatus::Success)
}
