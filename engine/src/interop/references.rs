//! `delinea reference import`: the source side's reference points as the paper's code leaves
//! them — a K × 256 array of K-means centroids — from a NumPy `.npy` file or a `.pt` tensor
//! (`torch.save(tensor)`), checked against the descriptor grid of the model they go with.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::DType;
use burn_store::pytorch::lazy_data::LazyDataSource;
use burn_store::pytorch::pickle_reader::{read_pickle_with_data, Object};

use super::Error;
use crate::infer::DescriptorConfig;
use crate::strategy::query::References;

/// A K × D matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Rows (K).
    pub rows: usize,
    /// Columns (D).
    pub cols: usize,
    /// `rows * cols` values.
    pub values: Vec<f32>,
}

/// Reads reference points from `path` (`.npy`, or a PyTorch zip holding one tensor, bare or as
/// the only tensor of a dict) and makes the references of a model with `slice_size` slices:
/// the row length must be a square `grid²` whose grid divides the slice size (256: the paper's
/// 16 × 16). `descriptor` gives the channel and augmentation (its grid is taken from the file).
pub fn import_references(path: &Path, slice_size: usize, descriptor: DescriptorConfig) -> Result<References, Error> {
    let bad = |reason: String| Error::References {
        path: path.to_path_buf(),
        reason,
    };
    let head = std::fs::File::open(path)
        .and_then(|f| {
            let mut h = Vec::new();
            f.take(6).read_to_end(&mut h).map(|_| h)
        })
        .map_err(|e| bad(e.to_string()))?;
    let m = if head.starts_with(b"\x93NUMPY") {
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        parse_npy(&bytes).map_err(bad)?
    } else if head.starts_with(b"PK\x03\x04") {
        read_pt(path).map_err(bad)?
    } else {
        return Err(bad(
            "neither a NumPy .npy file nor a PyTorch tensor file (torch.save's zip); a pickle of a \
             NumPy array (the paper's `.pkl`) can be re-saved with `numpy.save`"
                .into(),
        ));
    };
    if m.rows == 0 || m.values.iter().any(|v| !v.is_finite()) {
        return Err(bad(format!(
            "{} × {} values: needs at least one row, all finite",
            m.rows, m.cols
        )));
    }
    let grid = (m.cols as f64).sqrt().round() as usize;
    if grid * grid != m.cols {
        return Err(bad(format!(
            "rows of {} values: a descriptor is a grid × grid of cells (256 = 16 × 16, the paper's)",
            m.cols
        )));
    }
    let descriptor = DescriptorConfig { grid, ..descriptor };
    descriptor.kernel(slice_size).map_err(|reason| {
        bad(format!(
            "{} × {grid} descriptor for {slice_size} × {slice_size} slices: {reason}",
            grid
        ))
    })?;
    let centroids = m.values.chunks(m.cols).map(<[f32]>::to_vec).collect();
    Ok(References::from_centroids(
        centroids,
        descriptor,
        vec!["imported".into()],
    ))
}

/// A little-endian float32 or float64, C-ordered, 2-d `.npy` array (format 1, 2 or 3).
pub fn parse_npy(bytes: &[u8]) -> Result<Matrix, String> {
    let (header, data) = npy_header(bytes)?;
    let field = |name: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{name}'"))
            .ok_or_else(|| format!("the .npy header has no `{name}`"))?;
        let rest = header[at + name.len() + 2..].trim_start();
        rest.strip_prefix(':')
            .map(str::trim_start)
            .ok_or_else(|| format!("the .npy header's `{name}` is malformed"))
    };
    let descr = field("descr")?;
    let size = match descr {
        d if d.starts_with("'<f4'") => 4,
        d if d.starts_with("'<f8'") => 8,
        d => {
            let d = d.split(',').next().unwrap_or(d);
            return Err(format!(
                "element type {d}: reference points are little-endian float32 or float64 ('<f4', '<f8')"
            ));
        }
    };
    if field("fortran_order")?.starts_with("True") {
        return Err("a Fortran-ordered array: save it C-ordered (numpy.ascontiguousarray)".into());
    }
    let shape = field("shape")?;
    let inside = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| "the .npy header's shape is malformed".to_string())?;
    let dims: Vec<usize> = inside
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("shape ({inside}) is not a tuple of sizes"))
        })
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(format!("shape ({inside}): reference points are a K × 256 matrix"));
    };
    let count = rows
        .checked_mul(cols)
        .filter(|n| n.checked_mul(size).is_some_and(|b| b <= data.len()));
    let Some(count) = count else {
        return Err(format!(
            "shape ({inside}) of {size}-byte values but only {} data bytes",
            data.len()
        ));
    };
    let values = match size {
        4 => data[..count * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        _ => data[..count * 8]
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
    };
    Ok(Matrix { rows, cols, values })
}

/// The header text and the data of a `.npy` file.
fn npy_header(bytes: &[u8]) -> Result<(&str, &[u8]), String> {
    let short = || "shorter than a .npy header".to_string();
    let (len, start): (usize, usize) = match *bytes.get(6).ok_or_else(short)? {
        1 => {
            let b = bytes.get(8..10).ok_or_else(short)?;
            (u16::from_le_bytes([b[0], b[1]]) as usize, 10)
        }
        2 | 3 => {
            let b = bytes.get(8..12).ok_or_else(short)?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(format!(".npy format version {v} (1, 2 and 3 are read)")),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or("the .npy header is cut short")?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "the .npy header is not text")?;
    Ok((text, &bytes[end..]))
}

/// The one tensor of a `torch.save` zip: a bare tensor, or the only tensor of a dict.
fn read_pt(path: &Path) -> Result<Matrix, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| format!("not a readable zip: {e}"))?;
    let name = (0..archive.len())
        .filter_map(|i| archive.name_for_index(i).map(str::to_string))
        .find(|n| n.ends_with("data.pkl"))
        .ok_or("no data.pkl inside: not a torch.save file")?;
    let mut pickle = Vec::new();
    let entry = archive.by_name(&name).map_err(|e| e.to_string())?;
    entry
        .take(64 << 20)
        .read_to_end(&mut pickle)
        .map_err(|e| e.to_string())?;
    super::pickle::check(&pickle)?;
    let source = Arc::new(LazyDataSource::from_zip(path).map_err(|e| e.to_string())?);
    let obj = crate::panics::catch_silently(|| read_pickle_with_data(&mut pickle.as_slice(), source))
        .ok_or("a malformed pickle")?
        .map_err(|e| format!("its pickle: {e}"))?;
    let snapshot = match obj {
        Object::TorchParam(s) => s,
        Object::Dict(d) => {
            let mut tensors: Vec<_> = d
                .into_values()
                .filter_map(|v| match v {
                    Object::TorchParam(s) => Some(s),
                    _ => None,
                })
                .collect();
            match tensors.len() {
                1 => tensors.remove(0),
                n => {
                    return Err(format!(
                        "a dict of {n} tensors (a model's state_dict?), not one K × 256 tensor"
                    ))
                }
            }
        }
        _ => return Err("it holds no tensor (a NumPy array pickled by torch.save: save it with numpy.save)".into()),
    };
    let shape = snapshot.shape.to_vec();
    let [rows, cols] = shape[..] else {
        return Err(format!(
            "a tensor of shape {shape:?}: reference points are a K × 256 matrix"
        ));
    };
    if !matches!(snapshot.dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        return Err(format!(
            "a tensor of {:?}: reference points are floating-point",
            snapshot.dtype
        ));
    }
    let values = crate::panics::catch_silently(|| super::read::snapshot_values(&snapshot))
        .unwrap_or_else(|| Err("its stored bytes do not match its shape".into()))?;
    Ok(Matrix { rows, cols, values })
}
