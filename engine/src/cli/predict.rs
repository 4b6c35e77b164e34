//! `delinea predict --model MODEL_DIR --input FILE|DIR|MANIFEST --out DIR [--probs] [--mc T]`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use delinea::dataset::{Manifest, Split};
use delinea::device::{self, BackendTask, DeviceRequest};
use delinea::infer::{predict_volume, DescriptorConfig, PredictOptions, Reduction};
use delinea::model::checkpoint;
use delinea::volume::dicom;
use delinea::{fsutil, volume};
use serde::Serialize;

use super::convert::DicomOutArgs;
use super::progress::{self, Mode};
use super::{print_json, ExitStatus, Global};

/// Segment volumes with a trained model: one mask per input, `<out>/<case>.nii.gz`, in the
/// input's exact geometry; optionally the tumour probability (`<case>.prob.nii.gz`) and
/// MC-dropout entropy/BALD maps (`<case>.entropy.nii.gz`, `<case>.bald.nii.gz`); for a DICOM
/// series, also an RTSTRUCT and/or DICOM-SEG referencing it (`--format`). A summary with
/// per-slice scores (and descriptors) goes to `<out>/predictions.json`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A model folder (written by `delinea train`, `adapt` or `model import`).
    #[arg(long)]
    model: PathBuf,
    /// A NIfTI file, a folder of them, a DICOM series folder or file, or a dataset manifest (.json).
    #[arg(long)]
    input: PathBuf,
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// With a manifest: only this split (train, val, test).
    #[arg(long)]
    split: Option<String>,
    /// With a manifest: only these centres (repeat or comma-separate).
    #[arg(long = "centre", value_delimiter = ',')]
    centres: Vec<String>,
    /// Also write the tumour probability map.
    #[arg(long)]
    probs: bool,
    /// Monte-Carlo dropout samples (0: none): writes entropy and BALD maps.
    #[arg(long, default_value_t = 0, value_name = "T")]
    mc: usize,
    /// Reduction of pixel uncertainty per slice and volume: mean, sum, max.
    #[arg(long, default_value = "mean", value_parser = parse_reduction)]
    reduction: Reduction,
    /// Include the STDR slice descriptors in predictions.json.
    #[arg(long)]
    descriptors: bool,
    /// Cells per side of the descriptor's grid (with --descriptors; the slice size must be a
    /// multiple).
    #[arg(long, default_value_t = 16)]
    grid: usize,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Seed of the MC-dropout masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
    /// Mask formats: nifti (`<case>.nii.gz`, always written: delinea's own steps read it),
    /// rtstruct (`<case>.rtstruct.dcm`), seg (`<case>.seg.dcm`); the DICOM ones need DICOM
    /// series input and reference it. Repeat or comma-separate.
    #[arg(long = "format", value_enum, value_delimiter = ',', default_value = "nifti")]
    formats: Vec<MaskFormat>,
    #[command(flatten)]
    dicom_out: DicomOutArgs,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// A mask format of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MaskFormat {
    Nifti,
    Rtstruct,
    Seg,
}

impl MaskFormat {
    fn dicom(self) -> Option<dicom::DerivedFormat> {
        match self {
            MaskFormat::Nifti => None,
            MaskFormat::Rtstruct => Some(dicom::DerivedFormat::Rtstruct),
            MaskFormat::Seg => Some(dicom::DerivedFormat::Seg),
        }
    }
}

fn parse_reduction(s: &str) -> Result<Reduction, String> {
    match s {
        "mean" => Ok(Reduction::Mean),
        "sum" => Ok(Reduction::Sum),
        "max" => Ok(Reduction::Max),
        _ => match s.strip_prefix("mean_above:").map(str::parse::<f32>) {
            Some(Ok(t)) => Ok(Reduction::MeanAbove(t)),
            _ => Err(format!("{s:?}: expected mean, sum, max or mean_above:T")),
        },
    }
}

/// One volume to segment.
#[derive(Debug, Clone)]
struct Input {
    id: String,
    path: PathBuf,
}

fn case_id(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
        .or_else(|| name.strip_suffix(".dcm"))
        .unwrap_or(&name)
        .to_string()
}

fn inputs(args: &Args) -> anyhow::Result<Vec<Input>> {
    let p = &args.input;
    if p.is_dir() && volume::dicom::is_dicom(p) {
        // A DICOM series folder is one volume, named after the folder.
        let id = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "series".into());
        return Ok(vec![Input { id, path: p.clone() }]);
    }
    if p.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("cannot list {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                let n = f.to_string_lossy();
                f.is_file() && (n.ends_with(".nii") || n.ends_with(".nii.gz"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            anyhow::bail!("{}: no .nii or .nii.gz file in this folder", p.display());
        }
        return Ok(files
            .into_iter()
            .map(|path| Input {
                id: case_id(&path),
                path,
            })
            .collect());
    }
    if !p.exists() {
        anyhow::bail!("{}: no such file or folder", p.display());
    }
    if p.extension().is_some_and(|e| e == "json") {
        let manifest = Manifest::load(p)?;
        let split: Option<Split> = match &args.split {
            Some(s) => Some(
                serde_json::from_value(serde_json::Value::String(s.clone()))
                    .map_err(|_| anyhow::anyhow!("unknown split {s:?}: expected train, val or test"))?,
            ),
            None => None,
        };
        let chosen: Vec<Input> = manifest
            .cases()
            .iter()
            .filter(|c| split.is_none_or(|s| c.split == s))
            .filter(|c| args.centres.is_empty() || args.centres.contains(&c.centre))
            .map(|c| Input {
                id: c.id.clone(),
                path: c.image.clone(),
            })
            .collect();
        if chosen.is_empty() {
            anyhow::bail!("{}: no case matches the split and centres asked for", p.display());
        }
        return Ok(chosen);
    }
    Ok(vec![Input {
        id: case_id(p),
        path: p.clone(),
    }])
}

/// One row of predictions.json.
#[derive(Debug, Serialize)]
struct CaseSummary {
    case: String,
    image: PathBuf,
    mask: PathBuf,
    tumour_voxels: usize,
    /// The RTSTRUCT / SEG files written for a DICOM input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dicom: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mc: Option<McSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    descriptors: Option<Vec<Vec<f32>>>,
}

#[derive(Debug, Serialize)]
struct McSummary {
    samples: usize,
    reduction: Reduction,
    volume_entropy: f32,
    volume_bald: f32,
    slice_entropy: Vec<f32>,
    slice_bald: Vec<f32>,
}

struct Task {
    model: PathBuf,
    inputs: Vec<Input>,
    out: PathBuf,
    probs: bool,
    options: PredictOptions,
    derived: Vec<dicom::DerivedFormat>,
    dicom_options: dicom::Options,
    progress: progress::Items,
}

impl BackendTask for Task {
    type Output = anyhow::Result<Vec<CaseSummary>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let (model, card) = checkpoint::load::<B::InnerBackend>(&self.model, &device)?;
        let classes = card.architecture.classes;
        let mut rows = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            // A DICOM object references the series: keep what read_volume would drop.
            let series = match self.derived.is_empty() {
                true => None,
                false => Some(dicom::read_one_series(&input.path)?),
            };
            let read;
            let image = match &series {
                Some(s) => &s.volume,
                None => {
                    read = volume::read_volume(&input.path)?;
                    &read
                }
            };
            let p = predict_volume(&model, image, &card.preprocessing, classes, &self.options);
            let mask_path = self.out.join(format!("{}.nii.gz", input.id));
            volume::write_label_map(&mask_path, &p.mask)?;
            let mut derived = Vec::new();
            if let Some(series) = &series {
                for format in &self.derived {
                    let path = self.out.join(format!("{}.{}", input.id, format.extension()));
                    derived.push(
                        format
                            .write(&p.mask, &mask_path, series, &path, &self.dicom_options)?
                            .path,
                    );
                }
            }
            if self.probs {
                volume::write_volume(
                    &self.out.join(format!("{}.prob.nii.gz", input.id)),
                    &p.tumour_probability,
                )?;
            }
            let mc = match &p.uncertainty {
                Some(u) => {
                    volume::write_volume(&self.out.join(format!("{}.entropy.nii.gz", input.id)), &u.entropy)?;
                    volume::write_volume(&self.out.join(format!("{}.bald.nii.gz", input.id)), &u.bald)?;
                    Some(McSummary {
                        samples: u.samples,
                        reduction: self.options.reduction,
                        volume_entropy: u.volume_entropy,
                        volume_bald: u.volume_bald,
                        slice_entropy: u.slice_entropy.clone(),
                        slice_bald: u.slice_bald.clone(),
                    })
                }
                None => None,
            };
            rows.push(CaseSummary {
                case: input.id.clone(),
                image: input.path.clone(),
                tumour_voxels: p.mask.data.iter().filter(|v| **v > 0).count(),
                mask: mask_path,
                dicom: derived,
                mc,
                descriptors: p.descriptors,
            });
            self.progress.tick(&input.id);
        }
        self.progress.finish();
        Ok(rows)
    }
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let start = Instant::now();
    if args.batch == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    // Check the checkpoint before reading any input (a clear error naming the folder).
    let card = checkpoint::load_card(&args.model)?;
    let descriptor = DescriptorConfig {
        grid: args.grid,
        ..DescriptorConfig::default()
    };
    if args.descriptors {
        let size = card.preprocessing.slice_size;
        descriptor.kernel(size).map_err(|reason| {
            anyhow::anyhow!("--grid for {} ({size} × {size} slices): {reason}", args.model.display())
        })?;
    }
    let inputs = inputs(&args)?;
    let derived: Vec<dicom::DerivedFormat> = args.formats.iter().filter_map(|f| f.dicom()).collect();
    let dicom_options = args.dicom_out.options()?;
    if !derived.is_empty() {
        if let Some(i) = inputs.iter().find(|i| !dicom::is_dicom(&i.path)) {
            anyhow::bail!(
                "--format rtstruct / seg references a DICOM series, but {} ({}) is not DICOM",
                i.id,
                i.path.display()
            );
        }
    }
    let device = device::resolve(args.device)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mode = Mode::detect(global.quiet || args.json);
    let task = Task {
        model: args.model.clone(),
        progress: progress::Items::new(mode, inputs.len(), "volumes predicted"),
        inputs,
        out: args.out.clone(),
        probs: args.probs,
        derived,
        dicom_options,
        options: PredictOptions {
            batch: args.batch,
            mc_samples: args.mc,
            reduction: args.reduction,
            descriptor: args.descriptors.then_some(descriptor),
            seed: args.seed,
            parts: device.inference_parts(),
        },
    };
    let rows = device::run_on(device, task)??;
    let summary_path = args.out.join("predictions.json");
    let text = serde_json::to_string_pretty(&rows)?;
    fsutil::write_bytes_atomic(&summary_path, format!("{text}\n").as_bytes())
        .with_context(|| format!("writing {}", summary_path.display()))?;
    let secs = start.elapsed().as_secs_f64();
    if args.json {
        print_json(&serde_json::json!({"cases": rows.len(), "out": args.out, "seconds": secs}))?;
    } else if !global.quiet {
        println!("wrote {} masks to {} in {secs:.1} s", rows.len(), args.out.display());
    }
    Ok(ExitStatus::Success)
}
