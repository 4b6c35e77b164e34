//! `delinea inspect FILE`.

use std::path::PathBuf;

use delinea::volume;

use super::{print_json, ExitStatus, Global};

/// Show a NIfTI file's grid, header and intensity statistics.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A `.nii`, `.nii.gz` or `.hdr` file.
    file: PathBuf,
    /// Print one JSON object (data-schema/inspect.schema.json).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, _global: Global) -> anyhow::Result<ExitStatus> {
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
