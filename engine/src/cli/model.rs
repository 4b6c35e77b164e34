//! `delinea model import FILE --out DIR` and `delinea model export DIR --format F --out FILE`.

use std::path::PathBuf;

use anyhow::Context;
use delinea::interop::{self, ImportCard, ImportOptions};

use super::{print_json, ExitStatus, Global};

/// Bring a model in from PyTorch or safetensors, or take one out to safetensors or ONNX.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// A PyTorch checkpoint (.pth/.pt) or .safetensors of the PyMIC/SSL4MIS UNet (the paper's
    /// network) to a delinea model folder.
    Import(ImportArgs),
    /// A delinea model folder to safetensors (the reference network's keys) or ONNX.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// The PyTorch checkpoint or safetensors file.
    file: PathBuf,
    /// The model folder to write (must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Slice side the model expects (default: the card's, else the paper's 256).
    #[arg(long)]
    slice_size: Option<usize>,
    /// JSON with what a state_dict cannot say: `preprocessing`, `dropout`, `decoder_dropout`,
    /// `negative_slope`, `bn_epsilon`, `bn_momentum` (each optional; the paper's by default).
    #[arg(long, value_name = "CARD.json")]
    card: Option<PathBuf>,
    /// Print the card written as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Safetensors,
    Onnx,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// The delinea model folder.
    model: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    format: Format,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    match args.command {
        Command::Import(a) => import(a, global),
        Command::Export(a) => export(a, global),
    }
}

fn import(args: ImportArgs, global: Global) -> anyhow::Result<ExitStatus> {
    let card: ImportCard = match &args.card {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let mut de = serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(&mut de)
                .with_context(|| format!("{} is not a valid import card", path.display()))?
        }
        None => ImportCard::default(),
    };
    let options = ImportOptions {
        slice_size: args.slice_size,
        card,
    };
    let card = interop::import_model(&args.file, &args.out, &options)?;
    if args.json {
        print_json(&card)?;
    } else if !global.quiet {
        let a = &card.architecture;
        let imported = card.imported.as_ref();
        println!(
            "{} imported into {}: features {:?}, {} input channel(s), {} classes, {} tensors, slice {} × {}",
            args.file.display(),
            args.out.display(),
            a.features,
            a.in_channels,
            a.classes,
            imported.map_or(0, |i| i.tensors),
            card.slice_size,
            card.slice_size
        );
        if let Some(i) = imported {
            let nested = i
                .nested_under
                .as_deref()
                .map_or(String::new(), |k| format!(", under `{k}`"));
            let prefix = i
                .prefix_removed
                .as_deref()
                .map_or(String::new(), |p| format!(", `{p}` removed"));
            println!(
                "  {} sha256 {}{nested}{prefix}; ignored: {}",
                i.format,
                i.sha256,
                i.ignored.join(", ")
            );
        }
    }
    Ok(ExitStatus::Success)
}

fn export(args: ExportArgs, global: Global) -> anyhow::Result<ExitStatus> {
    let what = match args.format {
        Format::Safetensors => format!("{} tensors", interop::export_safetensors(&args.model, &args.out)?),
        Format::Onnx => format!("{} ONNX nodes", interop::export_onnx(&args.model, &args.out)?),
    };
    if !global.quiet {
        println!("{} exported to {} ({what})", args.model.display(), args.out.display());
    }
    Ok(ExitStatus::Success)
}
