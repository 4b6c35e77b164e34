//! `delinea schema`: write or check the JSON Schemas (data-schema/).

use std::path::PathBuf;

use delinea::schema::{render, schemas};

use super::{ExitStatus, Global};

/// Write the JSON Schemas of delinea's files to a folder, or check them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder (data-schema/ in the repository).
    #[arg(long, default_value = "data-schema")]
    out: PathBuf,
    /// Only check that the folder's schemas are current; exit 1 if not.
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let mut stale = 0;
    for (name, schema) in schemas() {
        let path = args.out.join(format!("{name}.schema.json"));
        let text = render(&schema);
        if args.check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                eprintln!("{}: out of date", path.display());
                stale += 1;
            }
        } else {
            std::fs::create_dir_all(&args.out)?;
            delinea::fsutil::write_bytes_atomic(&path, text.as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if !global.quiet {
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(if stale == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
