//! `delinea model export --format safetensors`: a model folder's weights under the reference
//! network's names, which `UNet(...).load_state_dict(..., strict=True)` takes as they are.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::backend::Flex;
use burn_store::ModuleSnapshot;
use safetensors::{Dtype, View};

use super::import::{META_ARCHITECTURE, META_PREPROCESSING};
use super::pymic::{self, Entry};
use super::Error;
use crate::model::checkpoint::{self, ModelCard};
use crate::model::UNet2d;

/// A tensor of the network: shape and values.
pub type Named = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Every tensor of `model` by delinea's path (`encoder.0.conv1.weight`, running statistics
/// included), as burn-store collects them.
pub fn named_tensors(model: &UNet2d<Flex>) -> Result<Named, Error> {
    let mut out = BTreeMap::new();
    for snapshot in model.collect(None, None, false) {
        let path = snapshot.full_path();
        let data = snapshot
            .to_data()
            .map_err(|e| Error::Internal(format!("{path}: {e:?}")))?;
        let shape = data.shape.to_vec();
        let values = data
            .into_vec::<f32>()
            .map_err(|e| Error::Internal(format!("{path}: {e:?}")))?;
        out.insert(path, (shape, values));
    }
    Ok(out)
}

/// A model folder's network and card, on the CPU.
pub fn load(dir: &Path) -> Result<(UNet2d<Flex>, ModelCard), Error> {
    Ok(checkpoint::load::<Flex>(dir, &Default::default())?)
}

/// The network's tensors paired with the reference names, each checked against the card's
/// architecture.
pub fn pymic_tensors<'a>(named: &'a Named, card: &ModelCard) -> Result<Vec<(Entry, &'a [f32])>, Error> {
    pymic::entries(&card.architecture)
        .into_iter()
        .map(|e| match named.get(&e.burn) {
            Some((shape, values)) if *shape == e.shape => Ok((e, values.as_slice())),
            other => Err(Error::Internal(format!(
                "delinea's `{}` is {:?}, the architecture wants {:?}",
                e.burn,
                other.map(|(s, _)| s),
                e.shape
            ))),
        })
        .collect()
}

/// One tensor to write: owned little-endian bytes.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.data[..]).into()
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes the model folder `dir` as safetensors at `out`: the reference network's keys, each
/// batch norm's `num_batches_tracked` (an int64 scalar, 0: delinea does not count batches; it
/// matters only to a BatchNorm built with `momentum=None`), and in the metadata the
/// architecture and preprocessing, which `delinea model import` reads back. Returns the number
/// of tensors written.
pub fn export_safetensors(dir: &Path, out: &Path) -> Result<usize, Error> {
    let (model, card) = load(dir)?;
    let named = named_tensors(&model)?;
    let pairs = pymic_tensors(&named, &card)?;
    let mut tensors: BTreeMap<String, Bytes> = BTreeMap::new();
    for (e, values) in &pairs {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = Bytes {
            dtype: Dtype::F32,
            shape: e.shape.clone(),
            data,
        };
        tensors.insert(e.pymic.clone(), bytes);
    }
    let entries: Vec<Entry> = pairs.into_iter().map(|(e, _)| e).collect();
    for key in pymic::batch_norm_counters(&entries) {
        let counter = Bytes {
            dtype: Dtype::I64,
            shape: Vec::new(),
            data: 0i64.to_le_bytes().to_vec(),
        };
        tensors.insert(key, counter);
    }
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (META_ARCHITECTURE.to_string(), to_json(&card.architecture)?),
        (META_PREPROCESSING.to_string(), to_json(&card.preprocessing)?),
        ("delinea.version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]);
    let count = tensors.len();
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), Some(metadata))
        .map_err(|e| Error::Internal(format!("safetensors: {e:?}")))?;
    crate::fsutil::write_bytes_atomic(out, &bytes).map_err(|e| Error::File {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(count)
}

/// A card's part as JSON text.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}
