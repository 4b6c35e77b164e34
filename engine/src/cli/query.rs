//! `delinea reference` (source side) and `delinea query` (target side).

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use delinea::dataset::{CaseEntry, Manifest, Split};
use delinea::device::{self, BackendTask, DeviceRequest};
use delinea::infer::DescriptorConfig;
use delinea::model::checkpoint::{self, ModelCard};
use delinea::plugin::PluginServices;
use delinea::script::Sandbox;
use delinea::strategy::query::{
    self, build_pool, Aggregate, Budget, CandidatePool, PoolOptions, QueryOptions, References, Unit,
};
use delinea::strategy::Resolver;
use delinea::train::Augmentation;

use super::{print_json, ExitStatus, Global};

/// Compute the source reference points: K-means over the source training slices' descriptors
/// (`--model`, `--manifest`, `--centre`, `--out` needed); or `reference import` them.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReferenceArgs {
    #[command(subcommand)]
    command: Option<ReferenceCommand>,
    /// The source model (a model folder). Required.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The dataset manifest. Required.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Source centre(s), comma-separated; their train split is used. Required.
    #[arg(long = "centre", value_delimiter = ',')]
    centres: Vec<String>,
    /// Number of reference points (METHOD.md: 30-40).
    #[arg(long, default_value_t = 40)]
    k: usize,
    /// K-means iterations.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Seed of the k-means++ initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Softmax channel weighting the STDR descriptor (0: background, as the paper's code; 1:
    /// tumour). Queries against these references use the same.
    #[arg(long, default_value_t = 0)]
    descriptor_channel: usize,
    /// Cells per side of the descriptor's max-pooling grid (grid × grid values; the slice size
    /// must be a multiple). 16, the paper's 16 × 16 at any slice size.
    #[arg(long, default_value_t = 16)]
    grid: usize,
    /// Describe augmented slices (the model's training augmentation), as the paper's code does;
    /// default: the slices as they are. Queries against these references do the same.
    #[arg(long)]
    augment_descriptors: bool,
    /// Compute device.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
    /// Where to write the references (JSON, data-schema/references.schema.json). Required.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum ReferenceCommand {
    /// The source side's K-means centroids as the paper's code keeps them (a K × 256 NumPy
    /// `.npy` array, or a `.pt` tensor) to a references file for `--model`.
    Import(ReferenceImportArgs),
}

#[derive(Debug, clap::Args)]
struct ReferenceImportArgs {
    /// The `.npy` or `.pt` file.
    file: PathBuf,
    /// The source model the centroids were computed with (its slice size is checked against
    /// the descriptor grid).
    #[arg(long)]
    model: PathBuf,
    /// Softmax channel the descriptors were weighted by (0: background, the paper's code).
    #[arg(long, default_value_t = 0)]
    descriptor_channel: usize,
    /// The descriptors were computed on augmented slices (the paper's code does).
    #[arg(long)]
    augment_descriptors: bool,
    /// Where to write the references (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// Rank a target centre's unlabelled training scans: which to label next.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The source model.
    #[arg(long)]
    model: PathBuf,
    /// Source reference points (`delinea reference`); needed by stdr and mada.
    #[arg(long)]
    refs: Option<PathBuf>,
    /// The dataset manifest.
    #[arg(long)]
    manifest: PathBuf,
    /// Target centre(s), comma-separated; their train split is the pool.
    #[arg(long = "centre", value_delimiter = ',', required = true)]
    centres: Vec<String>,
    /// Strategy: random, random-case, entropy, bald, margin, stdr, mada, ugtst, coreset, or a
    /// Rhai policy `script:PATH.rhai` (scripts/README.md).
    #[arg(long)]
    strategy: String,
    /// Budget: a count (12), a fraction (0.2) or a percentage (20%).
    #[arg(long, default_value = "20%")]
    budget: String,
    /// Rank slices or whole volumes (a volume scores by its slices, see --aggregate).
    #[arg(long, value_enum, default_value = "slice")]
    unit: UnitArg,
    /// How a volume's score comes from its slices.
    #[arg(long, value_enum, default_value = "mean")]
    aggregate: AggregateArg,
    /// MC-dropout samples for uncertainty strategies.
    #[arg(long, default_value_t = 8)]
    mc: usize,
    /// Seed of random choices (random strategy, dropout masks, k-means).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute device.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
    /// Where to write the selection (JSON, data-schema/selection.schema.json).
    #[arg(long)]
    out: PathBuf,
    /// Print the selection as JSON.
    #[arg(long)]
    json: bool,
}

/// `--unit`: what a row of the pool is.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum UnitArg {
    Slice,
    Volume,
}

impl From<UnitArg> for Unit {
    fn from(u: UnitArg) -> Unit {
        match u {
            UnitArg::Slice => Unit::Slice,
            UnitArg::Volume => Unit::Volume,
        }
    }
}

/// `--aggregate`: how a volume's score comes from its slices.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum AggregateArg {
    Mean,
    Max,
}

impl From<AggregateArg> for Aggregate {
    fn from(a: AggregateArg) -> Aggregate {
        match a {
            AggregateArg::Mean => Aggregate::Mean,
            AggregateArg::Max => Aggregate::Max,
        }
    }
}

/// The pool of the train split of `centres` as the model sees it.
struct PoolTask {
    model: PathBuf,
    cases: Vec<CaseEntry>,
    options: PoolOptions,
}

impl BackendTask for PoolTask {
    type Output = anyhow::Result<CandidatePool>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let (model, card) = checkpoint::load::<B::InnerBackend>(&self.model, &device)?;
        let cases: Vec<&CaseEntry> = self.cases.iter().collect();
        Ok(build_pool(&model, &card, &cases, &self.options)?)
    }
}

fn train_cases(manifest: &Manifest, centres: &[String]) -> anyhow::Result<Vec<CaseEntry>> {
    for c in centres {
        if manifest.centre(c).is_none() {
            anyhow::bail!("{}: no centre {c:?}", manifest.path.display());
        }
    }
    let cases: Vec<CaseEntry> = manifest
        .cases()
        .iter()
        .filter(|c| c.split == Split::Train && centres.contains(&c.centre))
        .cloned()
        .collect();
    if cases.is_empty() {
        anyhow::bail!(
            "{}: centre(s) {centres:?} have no training case",
            manifest.path.display()
        );
    }
    Ok(cases)
}

fn pool(
    model: &Path,
    manifest: &Path,
    centres: &[String],
    device: DeviceRequest,
    options: PoolOptions,
) -> anyhow::Result<CandidatePool> {
    checkpoint::load_card(model)?;
    let manifest = Manifest::load(manifest)?;
    let cases = train_cases(&manifest, centres)?;
    let device = device::resolve(device)?;
    device::run_on(
        device,
        PoolTask {
            model: model.to_path_buf(),
            cases,
            options,
        },
    )?
}

/// What a plugin strategy may reach from these commands: the manifest's folder (its images
/// and labels) and the model, on the command's device.
pub(super) fn plugin_services(manifest: &Path, model: &Path, device: DeviceRequest) -> anyhow::Result<PluginServices> {
    let folder = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let sandbox = Sandbox::new(&[folder.to_path_buf()], &std::env::current_dir()?).map_err(anyhow::Error::msg)?;
    Ok(PluginServices {
        sandbox,
        model: Some(model.to_path_buf()),
        device: device::resolve(device)?,
    })
}

/// Refuses a descriptor grid that does not divide the model's slices.
fn check_grid(descriptor: &DescriptorConfig, card: &ModelCard, model: &Path) -> anyhow::Result<()> {
    let size = card.preprocessing.slice_size;
    descriptor
        .kernel(size)
        .map(|_| ())
        .map_err(|reason| anyhow::anyhow!("descriptor for {} ({size} × {size} slices): {reason}", model.display()))
}

/// The augmentation the model was trained with (the default when its card does not say).
fn training_augmentation(card: &ModelCard) -> Augmentation {
    card.training
        .as_ref()
        .map(|t| t.config.augmentation.clone())
        .unwrap_or_default()
}

/// A flag `reference` needs when it computes.
fn required<T>(value: Option<T>, flag: &str) -> anyhow::Result<T> {
    value.ok_or_else(|| {
        anyhow::anyhow!("{flag} is required to compute reference points (or: delinea reference import FILE)")
    })
}

pub fn run_reference(args: ReferenceArgs, global: Global) -> anyhow::Result<ExitStatus> {
    if let Some(ReferenceCommand::Import(a)) = args.command {
        return run_reference_import(a, global);
    }
    let (model, manifest, out) = (
        required(args.model, "--model")?,
        required(args.manifest, "--manifest")?,
        required(args.out, "--out")?,
    );
    anyhow::ensure!(
        !args.centres.is_empty(),
        "--centre is required to compute reference points"
    );
    let needs = query::Needs {
        stdr: true,
        ..Default::default()
    };
    let card = checkpoint::load_card(&model)?;
    check_channel(args.descriptor_channel, &card, &model)?;
    let descriptor = DescriptorConfig {
        channel: args.descriptor_channel,
        grid: args.grid,
        augment: args.augment_descriptors,
        ..Default::default()
    };
    check_grid(&descriptor, &card, &model)?;
    let options = PoolOptions {
        needs,
        descriptor,
        augmentation: training_augmentation(&card),
        ..Default::default()
    };
    let pool = pool(&model, &manifest, &args.centres, args.device, options)?;
    let (centres, seed) = (args.centres.clone(), args.seed);
    let refs = References::from_pool(&pool, descriptor, centres, args.k, args.iterations, seed);
    refs.write(&out).with_context(|| format!("writing {}", out.display()))?;
    if !global.quiet {
        println!(
            "{} reference points from {} source slices of {:?} written to {}",
            refs.centroids.len(),
            refs.slices,
            args.centres,
            out.display()
        );
    }
    Ok(ExitStatus::Success)
}

/// Refuses a descriptor channel the model does not have.
fn check_channel(channel: usize, card: &ModelCard, model: &Path) -> anyhow::Result<()> {
    let classes = card.architecture.classes;
    anyhow::ensure!(
        channel < classes,
        "--descriptor-channel {channel} is not one of {}'s {classes} classes",
        model.display()
    );
    Ok(())
}

fn run_reference_import(args: ReferenceImportArgs, global: Global) -> anyhow::Result<ExitStatus> {
    let card = checkpoint::load_card(&args.model)?;
    check_channel(args.descriptor_channel, &card, &args.model)?;
    let descriptor = DescriptorConfig {
        channel: args.descriptor_channel,
        augment: args.augment_descriptors,
        ..Default::default()
    };
    let refs = delinea::interop::import_references(&args.file, card.slice_size, descriptor)?;
    refs.write(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if !global.quiet {
        println!(
            "{} reference points of {} values ({g} × {g} grid) from {} written to {}",
            refs.centroids.len(),
            refs.descriptor.len(),
            args.file.display(),
            args.out.display(),
            g = refs.descriptor.grid
        );
    }
    Ok(ExitStatus::Success)
}

pub fn run_query(args: QueryArgs, global: Global) -> anyhow::Result<ExitStatus> {
    let services = plugin_services(&args.manifest, &args.model, args.device)?;
    let strategy = Resolver::new()
        .with_plugin_services(services)
        .resolve_query(&args.strategy)?;
    let budget = Budget::parse(&args.budget)?;
    let needs = strategy.needs();
    let refs = match (&args.refs, needs.stdr) {
        (Some(path), _) => Some(References::load(path)?),
        (None, true) => anyhow::bail!(
            "strategy {} needs source reference points: --refs FILE, from `delinea reference` (computed \
             from the source training data) or `delinea reference import` (the source side's centroids, \
             .npy or .pt); every other strategy works without them",
            args.strategy
        ),
        (None, false) => None,
    };
    let card = checkpoint::load_card(&args.model)?;
    let descriptor = refs.as_ref().map(|r| r.descriptor).unwrap_or_default();
    if needs.stdr || needs.features {
        check_grid(&descriptor, &card, &args.model)?;
    }
    let options = PoolOptions {
        needs,
        mc_samples: args.mc,
        seed: args.seed,
        descriptor,
        augmentation: training_augmentation(&card),
        ..Default::default()
    };
    let pool = pool(&args.model, &args.manifest, &args.centres, args.device, options)?;
    let query = QueryOptions {
        budget,
        unit: args.unit.into(),
        aggregate: args.aggregate.into(),
        seed: args.seed,
    };
    let references = refs.as_ref().map(|r| r.centroids.as_slice());
    let selection = query::rank(pool, references, strategy.as_ref(), &query)?;
    delinea::fsutil::write_json_atomic(&args.out, &selection)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if args.json {
        print_json(&selection)?;
    } else if !global.quiet {
        println!(
            "{} of {} rows selected by {}:",
            selection.items.len(),
            selection.pool_size,
            selection.strategy
        );
        for s in selection.items.iter().take(20) {
            let slice = s.slice.map_or(String::new(), |k| format!(" slice {k}"));
            let score = s.score.map_or(String::new(), |v| format!(" score {v:.4}"));
            println!("  {:>3}. {}{slice}  {:?}{score}", s.rank, s.case, s.reason);
        }
        if selection.items.len() > 20 {
            println!("  … {} more in {}", selection.items.len() - 20, args.out.display());
        }
    }
    Ok(ExitStatus::Success)
}
