//! Tensors out of a PyTorch checkpoint (`torch.save`'s zip, or the legacy pickle) or a
//! safetensors file, as `f32` values by name, in pure Rust: burn-store's reader for PyTorch
//! (no libtorch, no Python), the safetensors crate for safetensors. The format is told by the
//! bytes, not the file name.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::DType;
use safetensors::{Dtype, SafeTensors};

use super::Error;

/// Files larger than this are refused before reading (the paper's network is 7.8 MB).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// A tensor as read: its shape, its stored type, and its values as `f32` (empty for integer
/// tensors such as `num_batches_tracked`, which are never used).
#[derive(Debug, Clone, PartialEq)]
pub struct Raw {
    /// The shape.
    pub shape: Vec<usize>,
    /// The stored element type, as the format names it (`F32`, `I64`, …).
    pub dtype: String,
    /// The values, converted to `f32` (floating-point tensors only).
    pub values: Vec<f32>,
}

/// What a file held.
#[derive(Debug, Clone)]
pub struct Read {
    /// `pytorch` or `safetensors`.
    pub format: &'static str,
    /// Every tensor, nested dictionaries' keys joined with `.` (`state_dict.encoder…`).
    pub tensors: BTreeMap<String, Raw>,
    /// A safetensors file's `__metadata__` (empty for PyTorch files).
    pub metadata: HashMap<String, String>,
}

/// Reads every tensor of `path`. A file that is neither format, is truncated or corrupt, or
/// holds a tensor type that is not a number, is refused naming the file and the reason.
pub fn read(path: &Path) -> Result<Read, Error> {
    let bad = |reason: String| Error::File {
        path: path.to_path_buf(),
        reason,
    };
    let size = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?.len();
    if size > MAX_FILE_BYTES {
        return Err(bad(format!(
            "{size} bytes, more than the {MAX_FILE_BYTES} a model file may have"
        )));
    }
    let head = first_bytes(path).map_err(|e| bad(e.to_string()))?;
    // torch.save: a zip ("PK\x03\x04"), or before PyTorch 1.6 a pickle (protocol 2: 0x80 0x02).
    if head.starts_with(b"PK\x03\x04") || head.starts_with(&[0x80, 0x02]) {
        return read_pytorch(path).map_err(bad);
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    read_safetensors(&bytes).map_err(|reason| {
        bad(format!(
            "neither a PyTorch checkpoint (torch.save's zip) nor safetensors: {reason}"
        ))
    })
}

fn first_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(8);
    std::fs::File::open(path)?.take(8).read_to_end(&mut head)?;
    Ok(head)
}

/// burn-store's reader, its panics on malformed pickles turned into errors.
fn read_pytorch(path: &Path) -> Result<Read, String> {
    super::pickle::check_file(path)?;
    let result = crate::panics::catch_silently(|| -> Result<Read, String> {
        let reader = burn_store::pytorch::PytorchReader::new(path).map_err(|e| e.to_string())?;
        let mut tensors = BTreeMap::new();
        for (name, snapshot) in reader.into_tensors() {
            let shape = snapshot.shape.to_vec();
            let dtype = format!("{:?}", snapshot.dtype).to_uppercase();
            let values = match snapshot.dtype {
                DType::F64 | DType::F32 | DType::F16 | DType::BF16 => {
                    snapshot_values(&snapshot).map_err(|e| format!("tensor `{name}`: {e}"))?
                }
                _ => Vec::new(),
            };
            tensors.insert(name, Raw { shape, dtype, values });
        }
        Ok(Read {
            format: "pytorch",
            tensors,
            metadata: HashMap::new(),
        })
    });
    result.unwrap_or_else(|| Err("a malformed PyTorch checkpoint (its pickle could not be read)".into()))
}

/// A floating-point tensor's values as `f32`, its bytes read now (lazily stored). burn's
/// `TensorData` panics when they disagree with the shape: call it under
/// [`crate::panics::catch_silently`].
pub fn snapshot_values(snapshot: &burn_store::TensorSnapshot) -> Result<Vec<f32>, String> {
    let data = snapshot.to_data().map_err(|e| format!("{e:?}"))?;
    data.convert::<f32>().into_vec::<f32>().map_err(|e| format!("{e:?}"))
}

/// Every tensor of a safetensors file; floating-point ones converted to `f32`.
pub fn read_safetensors(bytes: &[u8]) -> Result<Read, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("{e:?}"))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes).map_err(|e| format!("{e:?}"))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let values = to_f32(view.dtype(), view.data()).unwrap_or_default();
        let raw = Raw {
            shape: view.shape().to_vec(),
            dtype: format!("{:?}", view.dtype()),
            values,
        };
        tensors.insert(name, raw);
    }
    Ok(Read {
        format: "safetensors",
        tensors,
        metadata,
    })
}

/// Little-endian floating-point bytes as `f32`; `None` for other types.
fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let values = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    };
    Some(values)
}

/// Whether a stored type is a floating-point one (its values were read).
pub fn is_float(dtype: &str) -> bool {
    matches!(dtype, "F32" | "F64" | "F16" | "BF16")
}
