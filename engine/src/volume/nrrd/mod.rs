//! NRRD input and output for [`LabelMap`]s: the format 3D Slicer sends and receives
//! segmentations in (a MONAI Label–compatible server trades masks as `.nrrd`/`.seg.nrrd`).
//!
//! **Writing** ([`encode_label_map`], [`write_label_map`]): one attached-data `NRRD0004` file,
//! `uint8`, gzip, `space: left-posterior-superior`, the affine's columns as `space directions`
//! and its translation as `space origin`, both turned from RAS+ into LPS (x and y negated).
//! Numbers are printed shortest-round-trip, so reading the file back gives the affine bit for
//! bit. NRRD stores no spacing apart from the directions: the spacing read back is their
//! lengths, which can differ from a NIfTI file's `pixdim` in the last bits.
//!
//! **Reading** ([`decode_label_map`], [`read_label_map`]) accepts `NRRD0001` to `NRRD0005`
//! with attached data, `raw` or `gzip` encoding, any integer type of either byte order and
//! `float`/`double` holding integers, in `space` LPS, RAS or LAS (the directions and origin
//! turned into the RAS+ affine; the spacing is each direction's length). Slicer's `.seg.nrrd`
//! key/value pairs (`Segment0_Name:=tumor`, `Segment0_LabelValue:=1`) become [`Segment`]s.
//! A 4D file whose first axis is not spatial (its `space directions` entry `none`) is
//! Slicer's overlapping-segment layers: the layers are merged into one label map when no
//! voxel holds two different labels.
//!
//! It refuses, naming the file and the reason: detached data (`.nhdr`, `data file`), byte or
//! line skips, encodings other than raw/gzip, a missing `space` (no guess at where the voxels
//! lie), zero or non-finite directions, more voxels than the cap (`volume::limits`), data shorter than the header
//! promises (gzip data is never inflated past that plus one byte, so a bomb costs nothing),
//! values that are not integers 0 to 255, overlapping layers, and segments sharing a label
//! value. Raw data may be followed by extra bytes (ignored); gzip data may not.

mod header;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::Path;

use crate::fsutil::write_atomic;
use crate::volume::nifti::GZIP_LEVEL;
use crate::volume::{Affine, Error, Geometry, Image, LabelMap};
use header::{Header, Type};

/// A label map read from NRRD, with the segments its header names.
#[derive(Debug, Clone, PartialEq)]
pub struct NrrdLabels {
    /// The voxels and their grid (RAS+ affine, `i` fastest).
    pub labels: LabelMap,
    /// Slicer's segments (`SegmentN_Name`, `SegmentN_LabelValue`), in the order of `N`;
    /// empty for a plain labelmap.
    pub segments: Vec<Segment>,
    /// Every `key:=value` pair of the header, in file order (the segments' `_ID`, `_Color` …).
    pub key_values: Vec<(String, String)>,
}

/// One named segment of a Slicer `.seg.nrrd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `SegmentN_Name` (empty when absent).
    pub name: String,
    /// `SegmentN_LabelValue`: the voxel value of this segment in [`NrrdLabels::labels`].
    pub value: u8,
}

/// The NRRD file (header and gzip data) holding `labels`, as described in the module docs.
///
/// `labels.data` must hold `labels.geometry.len()` values ([`write_label_map`] checks).
pub fn encode_label_map(labels: &LabelMap) -> Vec<u8> {
    let mut out = Vec::new();
    write_nrrd(&mut out, labels).expect("a NRRD file into memory");
    out
}

/// Writes `labels` to `path` as NRRD, atomically (a reader never sees half a file).
pub fn write_label_map(path: &Path, labels: &LabelMap) -> Result<(), Error> {
    let g = &labels.geometry;
    if g.is_empty() || labels.data.len() != g.len() {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
            field: "sizes",
            found: format!("{:?} for {} voxels", g.dims, labels.data.len()),
            expected: "positive sizes whose product is the number of voxels".into(),
        });
    }
    write_atomic(path, |w| write_nrrd(w, labels)).map_err(|e| Error::io(path, e))
}

/// Reads the NRRD label map at `path` (see the module docs for what is accepted).
pub fn read_label_map(path: &Path) -> Result<NrrdLabels, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_label_map(path, &bytes)
}

/// Decodes the NRRD file `bytes`; `path` only names the file in errors.
pub fn decode_label_map(path: &Path, bytes: &[u8]) -> Result<NrrdLabels, Error> {
    let header = header::parse(path, bytes)?;
    let layers = layer_count(path, &header)?;
    let geometry = geometry(path, &header)?;
    let raw = data_bytes(path, bytes, &header)?;
    let values = to_labels(path, raw, &header, &geometry, layers)?;
    let data = merge_layers(path, values, &geometry, layers)?;
    let segments = segments(path, &header.key_values)?;
    Ok(NrrdLabels {
        labels: Image { geometry, data },
        segments,
        key_values: header.key_values,
    })
}

/// Writes the header, then the voxels as one gzip stream.
fn write_nrrd(w: &mut dyn Write, labels: &LabelMap) -> std::io::Result<()> {
    w.write_all(header_text(&labels.geometry).as_bytes())?;
    let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::new(GZIP_LEVEL));
    gz.write_all(&labels.data)?;
    gz.finish()?.flush()
}

/// The header of [`encode_label_map`], ending with its blank line.
fn header_text(g: &Geometry) -> String {
    // RAS+ → LPS: negate x and y (adding 0.0 turns -0 into 0, for a tidier header).
    let lps = |v: [f64; 3]| format!("({},{},{})", -v[0] + 0.0, -v[1] + 0.0, v[2] + 0.0);
    let a = &g.affine;
    let column = |c: usize| lps([a[0][c], a[1][c], a[2][c]]);
    let [nx, ny, nz] = g.dims;
    format!(
        "NRRD0004\n\
         # Complete NRRD file format specification at:\n\
         # http://teem.sourceforge.net/nrrd/format.html\n\
         type: uint8\n\
         dimension: 3\n\
         space: left-posterior-superior\n\
         sizes: {nx} {ny} {nz}\n\
         space directions: {} {} {}\n\
         kinds: domain domain domain\n\
         endian: little\n\
         encoding: gzip\n\
         space origin: {}\n\n",
        column(0),
        column(1),
        column(2),
        lps([a[0][3], a[1][3], a[2][3]]),
    )
}

/// How many layers the file holds: 1 for 3D; for 4D the first axis's size, which must be
/// Slicer's non-spatial layer axis.
fn layer_count(path: &Path, h: &Header) -> Result<usize, Error> {
    let spatial = h.directions.iter().filter(|d| d.is_some()).count();
    let first_is_layers = h.directions.first().is_some_and(Option::is_none)
        && !h
            .kinds
            .as_ref()
            .and_then(|k| k.first())
            .is_some_and(|k| matches!(k.as_str(), "domain" | "space" | "time"));
    match (h.sizes.len(), spatial) {
        (3, 3) => Ok(1),
        (4, 3) if first_is_layers => Ok(h.sizes.first().copied().unwrap_or(1)),
        _ => Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: format!(
                "{}D with {spatial} spatial axes: a label map has 3 spatial axes, plus at most a first \
                 non-spatial axis of segment layers (Slicer's .seg.nrrd)",
                h.sizes.len()
            ),
        }),
    }
}

/// The RAS+ grid of the spatial axes (the last three).
fn geometry(path: &Path, h: &Header) -> Result<Geometry, Error> {
    let spatial: Vec<[f64; 3]> = h.directions.iter().flatten().copied().collect();
    let mut affine: Affine = [[0.0; 4]; 4];
    let mut spacing = [0.0; 3];
    for (c, dir) in spatial.iter().enumerate().take(3) {
        let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return Err(Error::BadHeader {
                path: path.to_path_buf(),
                field: "space directions",
                found: format!("({},{},{})", dir[0], dir[1], dir[2]),
                expected: "a non-zero, finite vector for each spatial axis".into(),
            });
        }
        spacing[c] = norm;
        for r in 0..3 {
            affine[r][c] = h.to_ras[r] * dir[r] + 0.0;
        }
    }
    for (r, row) in affine.iter_mut().take(3).enumerate() {
        row[3] = h.to_ras[r] * h.origin[r] + 0.0;
    }
    affine[3][3] = 1.0;
    let n = h.sizes.len();
    let dims = [0, 1, 2].map(|a| h.sizes.get(n.saturating_sub(3) + a).copied().unwrap_or(1));
    Ok(Geometry { dims, spacing, affine })
}

/// The voxel bytes: exactly `voxels × width` of them, after the header, inflated when gzip.
fn data_bytes<'a>(path: &Path, bytes: &'a [u8], h: &Header) -> Result<Cow<'a, [u8]>, Error> {
    let voxels: usize = h.sizes.iter().product(); // checked in header::sizes
    let expected = voxels.saturating_mul(h.ty.width());
    let attached = bytes.get(h.data_offset..).unwrap_or_default();
    let truncated = |found: usize| Error::Truncated {
        path: path.to_path_buf(),
        offset: h.data_offset,
        expected,
        found,
    };
    if !h.gzip {
        return match attached.get(..expected) {
            Some(data) => Ok(data.into()),
            None => Err(truncated(attached.len())),
        };
    }
    // Never inflate more than promised + 1 byte: a zip bomb stops there.
    let mut out = Vec::with_capacity(expected.min(attached.len().saturating_mul(8)));
    flate2::read::MultiGzDecoder::new(attached)
        .take(expected as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Gzip {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    match out.len().cmp(&expected) {
        std::cmp::Ordering::Less => Err(truncated(out.len())),
        std::cmp::Ordering::Greater => Err(Error::NotNrrd {
            path: path.to_path_buf(),
            reason: format!("the gzip data holds more than the {expected} bytes `sizes` and `type` promise"),
        }),
        std::cmp::Ordering::Equal => Ok(out.into()),
    }
}

/// Every value of `raw` as a label, layer axis fastest; an error names the first value that
/// is not an integer 0 to 255 (within 1e-3 for float types, as the NIfTI reader).
fn to_labels(path: &Path, raw: Cow<[u8]>, h: &Header, g: &Geometry, layers: usize) -> Result<Vec<u8>, Error> {
    if h.ty == Type::U8 {
        return Ok(raw.into_owned());
    }
    let width = h.ty.width();
    let mut out = Vec::with_capacity(raw.len() / width);
    for (n, chunk) in raw.chunks_exact(width).enumerate() {
        let v = h.ty.value(chunk, h.big_endian);
        if !(v.is_finite() && (0.0..=255.0).contains(&v) && (v - v.round()).abs() < 1e-3) {
            return Err(Error::BadLabels {
                path: path.to_path_buf(),
                reason: format!("{} is {v}; labels must be integers 0 to 255", where_is(n, g, layers)),
            });
        }
        out.push(v.round() as u8);
    }
    Ok(out)
}

/// `voxel (i, j, k)` (with `layer l, ` in front for a layered file) of value number `n`.
fn where_is(n: usize, g: &Geometry, layers: usize) -> String {
    let (layer, v) = (n % layers.max(1), n / layers.max(1));
    let (nx, ny) = (g.dims[0].max(1), g.dims[1].max(1));
    let voxel = format!("voxel ({}, {}, {})", v % nx, (v / nx) % ny, v / (nx * ny));
    if layers > 1 {
        format!("layer {layer}, {voxel}")
    } else {
        voxel
    }
}

/// One label per voxel: each voxel's non-zero layer value, refused where two layers hold
/// different non-zero values (overlapping segments cannot share one label map).
fn merge_layers(path: &Path, values: Vec<u8>, g: &Geometry, layers: usize) -> Result<Vec<u8>, Error> {
    if layers <= 1 {
        return Ok(values);
    }
    let mut out = Vec::with_capacity(values.len() / layers);
    for (v, stack) in values.chunks_exact(layers).enumerate() {
        let (mut label, mut first) = (0u8, 0);
        for (l, x) in stack.iter().enumerate().filter(|(_, x)| **x != 0) {
            if label != 0 && label != *x {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    what: format!(
                        "overlapping segments: {} holds label {label} in layer {first} and label {x} in layer {l}; \
                         export the segmentation from Slicer as a labelmap",
                        where_is(v, g, 1)
                    ),
                });
            }
            (label, first) = (*x, l);
        }
        out.push(label);
    }
    Ok(out)
}

/// Slicer's segments from `SegmentN_Name` / `SegmentN_LabelValue` (1 when absent, as in
/// files written before Slicer 4.11), ordered by `N`; two segments may not share a value.
fn segments(path: &Path, key_values: &[(String, String)]) -> Result<Vec<Segment>, Error> {
    let mut found: std::collections::BTreeMap<u32, (String, Option<String>)> = Default::default();
    for (key, value) in key_values {
        let Some((n, what)) = key.strip_prefix("Segment").and_then(|k| k.split_once('_')) else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        match what {
            "Name" => found.entry(n).or_default().0 = value.clone(),
            "LabelValue" => found.entry(n).or_default().1 = Some(value.clone()),
            _ => {}
        }
    }
    let bad = |reason: String| Error::BadLabels {
        path: path.to_path_buf(),
        reason,
    };
    let mut out: Vec<Segment> = Vec::with_capacity(found.len());
    for (n, (name, value)) in found {
        let text = value.unwrap_or_else(|| "1".into());
        let value = text.trim().parse::<u8>().ok().filter(|v| *v > 0).ok_or_else(|| {
            bad(format!(
                "Segment{n}_LabelValue is {text:?}; a segment's label must be 1 to 255"
            ))
        })?;
        if let Some(other) = out.iter().find(|s| s.value == value) {
            return Err(bad(format!(
                "segments {:?} and {name:?} both have label value {value}; export the segmentation from Slicer as a labelmap",
                other.name
            )));
        }
        out.push(Segment { name, value });
    }
    Ok(out)
}
