//! Reading NIfTI-1 files (`.nii`, `.nii.gz`, `.hdr`/`.img` pairs).
//!
//! The header is parsed by the `nifti` crate; everything it could panic on (RGB, complex)
//! or silently accept (NIfTI-2, true 4D, negative dims, short data) is checked here first,
//! and the voxels are decoded here, straight from the decompressed bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use nifti::{NiftiHeader, NiftiType};
use serde::Serialize;

use super::decode;
use super::quaternion::{self, Qform};
use crate::volume::{Affine, Error, Geometry};

/// What the header of a NIfTI file says, besides the [`Geometry`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NiftiInfo {
    /// `nifti1` (single `.nii` file) or `nifti1-pair` (`.hdr` + `.img`).
    pub format: String,
    /// Whether the file was gzip-compressed.
    pub compressed: bool,
    /// NIfTI datatype name as nibabel spells it (`int16`, `float32`, …).
    pub datatype: String,
    /// NIfTI datatype code.
    pub datatype_code: i16,
    /// Bits per voxel.
    pub bitpix: i16,
    /// `little` or `big`.
    pub endianness: String,
    /// `dim[1..=dim[0]]` as stored.
    pub dim: Vec<usize>,
    /// `scl_slope` as applied (1 when the header says 0 or NaN: no scaling).
    pub scl_slope: f64,
    /// `scl_inter` as applied.
    pub scl_inter: f64,
    /// `qform_code`.
    pub qform_code: i16,
    /// `sform_code`.
    pub sform_code: i16,
    /// Where the affine came from: `sform`, `qform`, or `fallback` (nibabel's base affine).
    pub affine_source: String,
    /// Byte offset of the voxel data.
    pub vox_offset: usize,
    /// The header's `descrip`.
    pub description: String,
}

/// How to turn a file's voxel bytes into f32 values.
pub(crate) struct Decoding {
    pub datatype: NiftiType,
    pub big_endian: bool,
    pub slope: f64,
    pub inter: f64,
    pub count: usize,
}

/// Reads the header of `path`, checks everything the decoder relies on, and decodes the
/// voxels (after scaling) while decompressing, without holding the decompressed bytes.
pub(crate) fn read_decoded(path: &Path) -> Result<(Geometry, NiftiInfo, Vec<f32>), Error> {
    let mut file = Opened::new(path)?;
    let compressed = file.compressed;
    let head = read_head(path, &mut file.stream)?;
    let header = parse_header(path, &head)?;
    let pair = &header.magic == nifti::header::MAGIC_CODE_NI1;
    let datatype = check_datatype(path, &header)?;
    let (dims, raw_dims) = grid_dims(path, &header)?;
    let spacing = spacing(path, &header)?;
    let (affine, source) = affine(path, &header, dims, spacing)?;
    let geometry = Geometry { dims, spacing, affine };
    let (slope, inter) = scaling(&header);
    let big_endian = is_big(&header);
    let decoding = Decoding {
        datatype,
        big_endian,
        slope,
        inter,
        count: geometry.len(),
    };
    let (offset, values) = if pair {
        let img = pair_image_path(path)?;
        let mut img_file = Opened::new(&img)?;
        let offset = header.vox_offset.max(0.0) as usize;
        let layout = (offset, offset, img_file.len_hint);
        (offset, decode::stream(&img, &mut img_file.stream, layout, &decoding)?)
    } else {
        let offset = vox_offset(path, &header)?;
        let layout = (offset - head.len(), offset, file.len_hint - head.len());
        (offset, decode::stream(path, &mut file.stream, layout, &decoding)?)
    };
    let info = NiftiInfo {
        format: if pair { "nifti1-pair" } else { "nifti1" }.into(),
        compressed,
        datatype: datatype_name(datatype).into(),
        datatype_code: header.datatype,
        bitpix: header.bitpix,
        endianness: if big_endian { "big" } else { "little" }.into(),
        dim: raw_dims,
        scl_slope: slope,
        scl_inter: inter,
        qform_code: header.qform_code,
        sform_code: header.sform_code,
        affine_source: source.into(),
        vox_offset: offset,
        description: text(&header.descrip),
    };
    Ok((geometry, info, values))
}

/// A file opened for streaming its bytes (gunzipped when they start with the gzip magic,
/// whatever the file's name): only a buffer's worth is in memory at a time.
struct Opened {
    stream: Box<dyn Read>,
    compressed: bool,
    /// About how many bytes the stream holds: the file's length, or for gzip the size its
    /// trailer records (mod 2^32; deflate cannot expand more than ~1032 times).
    len_hint: usize,
}

impl Opened {
    fn new(path: &Path) -> Result<Opened, Error> {
        use std::io::{Seek, SeekFrom};
        let io = |e| Error::io(path, e);
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len() as usize;
        let mut magic = [0u8; 2];
        let got = decode::fill(&mut file, &mut magic).map_err(io)?;
        let compressed = got == 2 && magic == [0x1f, 0x8b];
        let mut len_hint = len;
        if compressed && len >= 4 {
            let mut trailer = [0u8; 4];
            file.seek(SeekFrom::End(-4)).map_err(io)?;
            decode::fill(&mut file, &mut trailer).map_err(io)?;
            let isize = u32::from_le_bytes(trailer) as usize;
            len_hint = isize.min(len.saturating_mul(1032)).max(348);
        }
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        let stream: Box<dyn Read> = match compressed {
            true => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            false => Box::new(reader),
        };
        Ok(Opened {
            stream,
            compressed,
            len_hint,
        })
    }
}

/// The first 348 bytes (or fewer, if the file is shorter; `parse_header` says so).
fn read_head(path: &Path, stream: &mut dyn Read) -> Result<Vec<u8>, Error> {
    let mut head = vec![0u8; 348];
    let n = decode::fill(stream, &mut head).map_err(|e| decode::stream_error(path, e))?;
    head.truncate(n);
    Ok(head)
}

fn parse_header(path: &Path, bytes: &[u8]) -> Result<NiftiHeader, Error> {
    let not = |reason: String| Error::NotNifti {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 348 {
        return Err(not(format!(
            "{} bytes, shorter than a NIfTI-1 header (348)",
            bytes.len()
        )));
    }
    let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let sizes = [i32::from_le_bytes(first), i32::from_be_bytes(first)];
    if sizes.contains(&540) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "NIfTI-2 (540-byte header); convert it to NIfTI-1 (e.g. nibabel.Nifti1Image)".into(),
        });
    }
    if !sizes.contains(&348) {
        return Err(not(format!(
            "sizeof_hdr is {} (expected 348){}",
            sizes[0],
            format_hint(bytes)
        )));
    }
    let dim0 = if sizes[0] == 348 {
        i16::from_le_bytes([bytes[40], bytes[41]])
    } else {
        i16::from_be_bytes([bytes[40], bytes[41]])
    };
    if !(1..=7).contains(&dim0) {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
            field: "dim[0]",
            found: dim0.to_string(),
            expected: "1 to 7".into(),
        });
    }
    match NiftiHeader::from_reader(bytes) {
        Ok(h) => Ok(h),
        Err(nifti::NiftiError::InvalidFormat) => Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "ANALYZE 7.5 header (no NIfTI magic): orientation is ambiguous; convert it to NIfTI-1".into(),
        }),
        Err(e) => Err(not(e.to_string())),
    }
}

fn format_hint(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89HDF") {
        ": looks like HDF5 (MINC2?)"
    } else if bytes.starts_with(b"DICM") || bytes.get(128..132) == Some(b"DICM") {
        ": looks like DICOM"
    } else if bytes.starts_with(&[0, 0, 0, 1]) {
        ": looks like FreeSurfer MGH/MGZ"
    } else if bytes[..64]
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        ": looks like a text file (Philips PAR?)"
    } else {
        ""
    }
}

fn check_datatype(path: &Path, h: &NiftiHeader) -> Result<NiftiType, Error> {
    use NiftiType::*;
    let unsupported = |what: String| Error::Unsupported {
        path: path.to_path_buf(),
        what,
    };
    match h.data_type() {
        Ok(t @ (Uint8 | Int8 | Int16 | Uint16 | Int32 | Uint32 | Int64 | Uint64 | Float32 | Float64)) => Ok(t),
        Ok(t) => Err(unsupported(format!(
            "datatype {} ({:?}): only integer and real scalar voxels",
            h.datatype, t
        ))),
        Err(_) => Err(Error::BadHeader {
            path: path.to_path_buf(),
            field: "datatype",
            found: h.datatype.to_string(),
            expected: "a NIfTI-1 datatype code".into(),
        }),
    }
}

/// The 3D grid size, and the raw `dim[1..=dim[0]]`. A trailing singleton 4th (or higher)
/// dimension is accepted; a 2D image is one slice.
#[allow(clippy::needless_range_loop)] // dim[d] and its field name share the index
fn grid_dims(path: &Path, h: &NiftiHeader) -> Result<([usize; 3], Vec<usize>), Error> {
    let bad = |field, found: String, expected: &str| Error::BadHeader {
        path: path.to_path_buf(),
        field,
        found,
        expected: expected.into(),
    };
    let nd = h.dim[0] as i16;
    if !(2..=7).contains(&nd) {
        return Err(bad("dim[0]", nd.to_string(), "2 to 7"));
    }
    let mut raw = Vec::with_capacity(nd as usize);
    for d in 1..=nd as usize {
        let v = h.dim[d] as i16;
        if v <= 0 {
            return Err(bad(DIM_FIELDS[d], v.to_string(), ">= 1"));
        }
        raw.push(v as usize);
    }
    if let Some(extra) = raw.iter().skip(3).position(|v| *v > 1) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: format!(
                "{}D image with {} entries along dim[{}]: delinea reads 3D volumes; split it first",
                nd,
                raw[3 + extra],
                4 + extra
            ),
        });
    }
    crate::volume::limits::check_voxels(path, "dim", &raw)?;
    Ok(([raw[0], raw[1], raw.get(2).copied().unwrap_or(1)], raw))
}

const DIM_FIELDS: [&str; 8] = [
    "dim[0]", "dim[1]", "dim[2]", "dim[3]", "dim[4]", "dim[5]", "dim[6]", "dim[7]",
];
const PIXDIM_FIELDS: [&str; 4] = ["pixdim[0]", "pixdim[1]", "pixdim[2]", "pixdim[3]"];

fn spacing(path: &Path, h: &NiftiHeader) -> Result<[f64; 3], Error> {
    let nd = (h.dim[0] as usize).min(3);
    let mut s = [1.0; 3];
    for a in 0..nd {
        let v = h.pixdim[a + 1] as f64;
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::BadHeader {
                path: path.to_path_buf(),
                field: PIXDIM_FIELDS[a + 1],
                found: v.to_string(),
                expected: "a voxel size > 0 (mm)".into(),
            });
        }
        s[a] = v;
    }
    Ok(s)
}

/// The affine nibabel's `get_best_affine` returns: sform if `sform_code > 0`, else qform if
/// `qform_code > 0`, else nibabel's fallback (x flipped, origin at the grid centre). Entries
/// are rounded to f32, the precision of the header, so a write/read round trip is exact.
fn affine(path: &Path, h: &NiftiHeader, dims: [usize; 3], spacing: [f64; 3]) -> Result<(Affine, &'static str), Error> {
    let (a, source) = if h.sform_code > 0 {
        let rows = [h.srow_x, h.srow_y, h.srow_z];
        let mut a = [[0.0, 0.0, 0.0, 1.0]; 4];
        for r in 0..3 {
            a[r] = rows[r].map(|v| v as f64);
        }
        (a, "sform")
    } else if h.qform_code > 0 {
        let q = Qform {
            b: h.quatern_b as f64,
            c: h.quatern_c as f64,
            d: h.quatern_d as f64,
            offset: [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64],
            qfac: if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 },
        };
        (quaternion::to_affine(&q, spacing), "qform")
    } else {
        (fallback_affine(dims, spacing), "fallback")
    };
    let a = a.map(|row| row.map(|v| v as f32 as f64));
    let finite = a.iter().flatten().all(|v| v.is_finite());
    let det = det3(&a);
    if !finite || det == 0.0 {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
            field: if source == "sform" {
                "srow_x/y/z"
            } else {
                "quatern_b/c/d"
            },
            found: format!("{:?}", &a[..3]),
            expected: "a finite, invertible voxel-to-world transform".into(),
        });
    }
    Ok((a, source))
}

/// nibabel's `Nifti1Header.get_base_affine`: `diag(-sx, sy, sz)`, origin at the centre.
fn fallback_affine(dims: [usize; 3], spacing: [f64; 3]) -> Affine {
    let diag = [-spacing[0], spacing[1], spacing[2]];
    let mut a = [[0.0; 4]; 4];
    for i in 0..3 {
        a[i][i] = diag[i];
        a[i][3] = -((dims[i] as f64 - 1.0) / 2.0) * diag[i];
    }
    a[3][3] = 1.0;
    a
}

fn det3(a: &Affine) -> f64 {
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
}

fn vox_offset(path: &Path, h: &NiftiHeader) -> Result<usize, Error> {
    let v = h.vox_offset;
    if !(v.is_finite() && v >= 348.0) {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
            field: "vox_offset",
            found: v.to_string(),
            expected: ">= 348 for a single-file .nii".into(),
        });
    }
    Ok(v as usize)
}

/// `scl_slope`/`scl_inter` as nibabel applies them: a slope of 0 or NaN means no scaling.
fn scaling(h: &NiftiHeader) -> (f64, f64) {
    let slope = h.scl_slope as f64;
    if slope == 0.0 || !slope.is_finite() {
        return (1.0, 0.0);
    }
    let inter = h.scl_inter as f64;
    (slope, if inter.is_finite() { inter } else { 0.0 })
}

/// The `.img` (or `.img.gz`) beside a `.hdr`.
fn pair_image_path(hdr: &Path) -> Result<PathBuf, Error> {
    let name = hdr
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    let stem = stem
        .strip_suffix(".hdr")
        .or_else(|| stem.strip_suffix(".HDR"))
        .unwrap_or(stem);
    let candidates = [format!("{stem}.img"), format!("{stem}.img.gz"), format!("{stem}.IMG")];
    candidates
        .iter()
        .map(|c| hdr.with_file_name(c))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Io {
            path: hdr.with_file_name(&candidates[0]),
            cause: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the image file of this NIfTI pair is missing",
            ),
        })
}

fn is_big(h: &NiftiHeader) -> bool {
    h.endianness == nifti::Endianness::Big
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// The datatype as nibabel names it.
pub(crate) fn datatype_name(t: NiftiType) -> &'static str {
    use NiftiType::*;
    match t {
        Uint8 => "uint8",
        Int8 => "int8",
        Int16 => "int16",
        Uint16 => "uint16",
        Int32 => "int32",
        Uint32 => "uint32",
        Int64 => "int64",
        Uint64 => "uint64",
        Float32 => "float32",
        Float64 => "float64",
        Float128 => "float128",
        Complex64 => "complex64",
        Complex128 => "complex128",
        Complex256 => "complex256",
        Rgb24 => "RGB",
        Rgba32 => "RGBA",
    }
}
