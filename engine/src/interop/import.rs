//! `delinea model import`: a PyTorch or safetensors state_dict of the reference network becomes
//! a delinea model folder (weights + card). Every check runs before anything is written.

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::Flex;
use burn::tensor::TensorData;
use burn_store::{ModuleSnapshot, TensorSnapshot};
use serde::{Deserialize, Serialize};

use super::pymic::{self, Entry};
use super::read::{self, Raw, Read};
use super::{Error, ImportRecord};
use crate::model::checkpoint::{self, ModelCard};
use crate::model::UNet2d;
use crate::preprocess::Preprocessing;
use crate::train::Architecture;

/// Where trainers nest a state_dict inside a checkpoint (the paper's code: `state_dict`).
const NESTS: [&str; 5] = ["state_dict", "model", "net", "model_state_dict", "network"];
/// DataParallel's prefix.
const DATA_PARALLEL: &str = "module.";
/// safetensors metadata keys delinea's export writes (and import reads as defaults).
pub const META_ARCHITECTURE: &str = "delinea.architecture";
/// The preprocessing recorded by delinea's export.
pub const META_PREPROCESSING: &str = "delinea.preprocessing";

/// A safetensors file's `__metadata__`.
type Meta = std::collections::HashMap<String, String>;

/// What a state_dict cannot say, given by `--card`: every field optional; the paper's values
/// (or what a delinea export recorded) stand for the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportCard {
    /// Preprocessing the model expects (default: the paper's, slice 256, 0.99 clip, z-score).
    pub preprocessing: Option<Preprocessing>,
    /// Encoder dropout per level (five values; default the paper's [0.05, 0.1, 0.2, 0.3, 0.5]).
    pub dropout: Option<Vec<f64>>,
    /// Decoder dropout (default 0).
    pub decoder_dropout: Option<f64>,
    /// LeakyReLU negative slope (default 0.01, `nn.LeakyReLU()`).
    pub negative_slope: Option<f64>,
    /// Batch-norm epsilon (default 1e-5).
    pub bn_epsilon: Option<f64>,
    /// Batch-norm momentum for further training (default 0.1).
    pub bn_momentum: Option<f64>,
}

/// `delinea model import` options.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `--slice-size`: overrides the preprocessing's slice size.
    pub slice_size: Option<usize>,
    /// `--card`: what the file cannot say.
    pub card: ImportCard,
}

/// The state_dict found inside a file, its keys relative to the network.
struct StateDict {
    tensors: BTreeMap<String, Raw>,
    nested_under: Option<String>,
    prefix: Option<String>,
    /// Tensors of the file outside the state_dict (an optimiser's, say), counted.
    outside: usize,
}

/// Reads `file`, checks it against the reference network, and writes the model folder `out`
/// (which must not exist or be empty). Returns the card written.
pub fn import_model(file: &Path, out: &Path, options: &ImportOptions) -> Result<ModelCard, Error> {
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::OutExists {
            path: out.to_path_buf(),
        });
    }
    let bytes_sha = sha256_file(file)?;
    let Read {
        format,
        tensors,
        metadata,
    } = read::read(file)?;
    let dict = state_dict(tensors);
    let arch = architecture(&dict, &metadata, file, options)?;
    let preprocessing = preprocessing(&metadata, file, options, arch.features.len())?;
    let entries = pymic::entries(&arch);
    check(&dict.tensors, &entries, file)?;
    let model = build(&arch, &dict.tensors, &entries, file)?;
    let mut card = ModelCard::new(arch, preprocessing, 0);
    card.imported = Some(ImportRecord {
        file: file_name(file),
        sha256: bytes_sha,
        format: format.into(),
        nested_under: dict.nested_under,
        prefix_removed: dict.prefix,
        mapping: pymic::MAPPING.into(),
        tensors: entries.len(),
        ignored: ignored(&dict.tensors, dict.outside),
    });
    checkpoint::save(out, &model, &card)?;
    Ok(card)
}

fn file_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

/// The hex sha256 of a file's bytes.
pub fn sha256_file(file: &Path) -> Result<String, Error> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(file).map_err(|e| Error::File {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut f, &mut hasher).map_err(|e| Error::File {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The state_dict inside the file: bare, or under one of [`NESTS`]; `module.` removed.
fn state_dict(all: BTreeMap<String, Raw>) -> StateDict {
    let has = |prefix: &str| all.contains_key(&format!("{prefix}{}", pymic::FIRST_CONV));
    let nests = std::iter::once(String::new()).chain(NESTS.iter().map(|n| format!("{n}.")));
    let candidates: Vec<(String, &str)> = nests.flat_map(|n| [(n.clone(), ""), (n, DATA_PARALLEL)]).collect();
    let found = candidates.iter().find(|(n, m)| has(&format!("{n}{m}")));
    // Not found: the whole file is compared (and refused key by key), unless it nests
    // something under a known key, which is then what is compared.
    let (nest, module) = match found {
        Some((n, m)) => (n.clone(), *m),
        None => {
            let nest = NESTS
                .iter()
                .map(|n| format!("{n}."))
                .find(|n| all.keys().any(|k| k.starts_with(n.as_str())))
                .unwrap_or_default();
            (nest, "")
        }
    };
    let prefix = format!("{nest}{module}");
    let total = all.len();
    let tensors: BTreeMap<String, Raw> = all
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v)))
        .collect();
    StateDict {
        outside: total - tensors.len(),
        nested_under: (!nest.is_empty()).then(|| nest.trim_end_matches('.').to_string()),
        prefix: (!module.is_empty()).then(|| module.to_string()),
        tensors,
    }
}

/// The architecture of the state_dict's shapes, with the card's (or the export's, or the
/// paper's) dropout and batch-norm settings.
fn architecture(dict: &StateDict, meta: &Meta, file: &Path, options: &ImportOptions) -> Result<Architecture, Error> {
    let exported: Option<Architecture> = metadata(meta, META_ARCHITECTURE, file)?;
    let base = exported.unwrap_or_default();
    let shape_of = |k: &str| dict.tensors.get(k).map(|r| r.shape.clone());
    let (in_channels, features, classes) = match pymic::infer(shape_of) {
        Some(found) => found,
        None => {
            // Not the reference network: report every key against the paper's architecture.
            check(&dict.tensors, &pymic::entries(&Architecture::default()), file)?;
            unreachable_mismatch(file)?
        }
    };
    let c = &options.card;
    let arch = Architecture {
        in_channels,
        classes,
        features,
        dropout: c.dropout.clone().unwrap_or(base.dropout),
        decoder_dropout: c.decoder_dropout.unwrap_or(base.decoder_dropout),
        negative_slope: c.negative_slope.unwrap_or(base.negative_slope),
        bn_epsilon: c.bn_epsilon.unwrap_or(base.bn_epsilon),
        bn_momentum: c.bn_momentum.unwrap_or(base.bn_momentum),
    };
    arch.to_config().validate().map_err(|e| Error::Card {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(arch)
}

/// `check` found nothing wrong although the shapes did not give an architecture: cannot
/// happen (a missing or malformed key is reported), but is an error rather than a panic.
fn unreachable_mismatch<T>(file: &Path) -> Result<T, Error> {
    Err(Error::Mismatch {
        path: file.to_path_buf(),
        problems: vec!["the first convolution or the head is not a 4-d weight".into()],
    })
}

/// The preprocessing: `--slice-size` over `--card` over the export's over the paper's.
fn preprocessing(meta: &Meta, file: &Path, options: &ImportOptions, levels: usize) -> Result<Preprocessing, Error> {
    let exported: Option<Preprocessing> = metadata(meta, META_PREPROCESSING, file)?;
    let mut p = options.card.preprocessing.clone().or(exported).unwrap_or_default();
    if let Some(size) = options.slice_size {
        p.slice_size = size;
    }
    let multiple = 1usize << (levels - 1);
    if p.slice_size == 0 || !p.slice_size.is_multiple_of(multiple) {
        return Err(Error::Card {
            path: file.to_path_buf(),
            reason: format!(
                "slice size {} does not pass through {levels} levels: it must be a non-zero multiple of {multiple}",
                p.slice_size
            ),
        });
    }
    Ok(p)
}

/// A JSON value delinea's export recorded in a safetensors file's metadata.
fn metadata<T: serde::de::DeserializeOwned>(meta: &Meta, key: &str, file: &Path) -> Result<Option<T>, Error> {
    let Some(text) = meta.get(key) else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| Error::File {
        path: file.to_path_buf(),
        reason: format!("metadata `{key}` is not what delinea writes there: {e}"),
    })
}

/// Every expected tensor present with its shape and finite values, nothing unexpected; all
/// problems at once.
fn check(tensors: &BTreeMap<String, Raw>, entries: &[Entry], file: &Path) -> Result<(), Error> {
    let mut problems = Vec::new();
    for e in entries {
        match tensors.get(&e.pymic) {
            None => problems.push(format!("missing `{}` (expected shape {:?})", e.pymic, e.shape)),
            Some(r) if r.shape != e.shape => problems.push(format!(
                "`{}` has shape {:?}, the network wants {:?}",
                e.pymic, r.shape, e.shape
            )),
            Some(r) if !read::is_float(&r.dtype) => {
                problems.push(format!("`{}` holds {}, not floating-point numbers", e.pymic, r.dtype))
            }
            Some(r) if r.values.iter().any(|v| !v.is_finite()) => {
                problems.push(format!("`{}` holds NaN or infinite values", e.pymic))
            }
            Some(r) if e.pymic.ends_with("running_var") && r.values.iter().any(|v| *v < 0.0) => {
                problems.push(format!("`{}` holds a negative variance", e.pymic))
            }
            Some(_) => {}
        }
    }
    if !entries.iter().any(|e| tensors.contains_key(&e.pymic)) {
        // Another network altogether: one line for what is missing, then what is there.
        let first = &entries[0];
        problems = vec![format!(
            "none of its {} keys is there (the first is `{}`, shape {:?})",
            entries.len(),
            first.pymic,
            first.shape
        )];
    }
    let known: std::collections::HashSet<&str> = entries.iter().map(|e| e.pymic.as_str()).collect();
    let counters = pymic::batch_norm_counters(entries);
    for (k, r) in tensors {
        if !known.contains(k.as_str()) && !counters.contains(k) {
            problems.push(format!("unexpected `{k}` (shape {:?})", r.shape));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Mismatch {
            path: file.to_path_buf(),
            problems,
        })
    }
}

/// The network with the file's tensors, applied by burn-store under delinea's paths.
fn build(
    arch: &Architecture,
    tensors: &BTreeMap<String, Raw>,
    entries: &[Entry],
    file: &Path,
) -> Result<UNet2d<Flex>, Error> {
    let device = Default::default();
    let invalid = |reason: String| Error::Mismatch {
        path: file.to_path_buf(),
        problems: vec![reason],
    };
    let mut model = arch
        .to_config()
        .init::<Flex>(&device)
        .map_err(|e| invalid(e.to_string()))?;
    let snapshots: Vec<TensorSnapshot> = entries
        .iter()
        .filter_map(|e| {
            let raw = tensors.get(&e.pymic)?;
            let data = TensorData::new(raw.values.clone(), e.shape.clone());
            let path = e.burn.split('.').map(String::from).collect();
            Some(TensorSnapshot::from_data(data, path, Vec::new(), Default::default()))
        })
        .collect();
    let result = model.apply(snapshots, None, None, false);
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(
        result
            .missing
            .iter()
            .map(|(p, _)| format!("delinea's `{p}` got no tensor")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .map(|p| format!("`{p}` has no place in delinea's network")),
    );
    match problems.is_empty() {
        true => Ok(model),
        false => Err(Error::Mismatch {
            path: file.to_path_buf(),
            problems,
        }),
    }
}

/// What the import left out: the batch-norm counters and anything outside the state_dict.
fn ignored(tensors: &BTreeMap<String, Raw>, outside: usize) -> Vec<String> {
    let counters = tensors.keys().filter(|k| k.ends_with("num_batches_tracked")).count();
    let mut out = vec![format!("{counters} num_batches_tracked counters")];
    if outside > 0 {
        out.push(format!(
            "{outside} tensors outside the state_dict (an optimiser's state)"
        ));
    }
    out
}
