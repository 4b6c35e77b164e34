//! Writing NIfTI-1 single files: f32 images and u8 label maps, `.nii` or `.nii.gz`.
//!
//! The 348-byte header is laid out here rather than through `nifti::WriterOptions`, which
//! needs an ndarray copy of the voxels; the bytes follow the NIfTI-1 standard field by field.

use std::io::Write;
use std::path::Path;

use super::quaternion;
use crate::fsutil::write_atomic;
use crate::volume::{Error, Geometry};

/// Gzip level for `.nii.gz` output. nibabel writes zlib level 1; zlib-rs's level 1 is a
/// faster, looser algorithm (files ~40 % larger), while its level 2 makes files smaller than
/// zlib's level 1 in about 40 % of its time (bench/io/README.md).
pub const GZIP_LEVEL: u32 = 2;

const HEADER_LEN: usize = 352; // 348-byte header + 4 extension bytes (none)

/// Voxels to write, in a NIfTI datatype delinea writes.
pub(crate) enum Payload<'a> {
    /// `float32` images.
    F32(&'a [f32]),
    /// `uint8` label maps.
    U8(&'a [u8]),
}

impl Payload<'_> {
    fn datatype_bitpix(&self) -> (i16, i16) {
        match self {
            Payload::F32(_) => (16, 32),
            Payload::U8(_) => (2, 8),
        }
    }

    /// Bytes per voxel.
    fn width(&self) -> usize {
        match self {
            Payload::F32(_) => 4,
            Payload::U8(_) => 1,
        }
    }

    fn voxels(&self) -> usize {
        match self {
            Payload::F32(v) => v.len(),
            Payload::U8(v) => v.len(),
        }
    }

    /// Voxels `range`, little-endian.
    fn bytes(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        match self {
            Payload::U8(v) => v[range].to_vec(),
            Payload::F32(v) => v[range].iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Writes `header` then the voxels, as `.nii` bytes (plain) or one gzip stream deflated
    /// in parallel blocks (see [`super::gzip`]).
    fn write_to(&self, w: &mut dyn Write, header: &[u8], gz: bool) -> std::io::Result<()> {
        let per_block = super::gzip::BLOCK / self.width();
        let n_blocks = self.voxels().div_ceil(per_block).max(1);
        let block = |i: usize| {
            let range = i * per_block..((i + 1) * per_block).min(self.voxels());
            let mut bytes = if i == 0 { header.to_vec() } else { Vec::new() };
            bytes.extend_from_slice(&self.bytes(range));
            bytes
        };
        if gz {
            return super::gzip::write_gzip(w, n_blocks, block, GZIP_LEVEL);
        }
        (0..n_blocks).try_for_each(|i| w.write_all(&block(i)))
    }
}

/// Writes `payload` on `geometry` to `path` atomically, gzipped when the name ends in `.gz`.
pub(crate) fn write_nifti(path: &Path, geometry: &Geometry, payload: Payload) -> Result<(), Error> {
    let (datatype, bitpix) = payload.datatype_bitpix();
    let header = encode_header(geometry, datatype, bitpix);
    let gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    write_atomic(path, |w| payload.write_to(w, &header, gz)).map_err(|e| Error::io(path, e))
}

/// The little-endian NIfTI-1 header (+ empty extension flag) for a 3D grid. The sform holds
/// the affine exactly (f32); the qform holds it too when it is a rotation times a scaling.
fn encode_header(g: &Geometry, datatype: i16, bitpix: i16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let mut put = |off: usize, bytes: &[u8]| h[off..off + bytes.len()].copy_from_slice(bytes);
    put(0, &348i32.to_le_bytes());
    put(38, b"r");
    let dim = [3, g.dims[0] as i16, g.dims[1] as i16, g.dims[2] as i16, 1, 1, 1, 1];
    for (n, d) in dim.iter().enumerate() {
        put(40 + 2 * n, &d.to_le_bytes());
    }
    put(70, &datatype.to_le_bytes());
    put(72, &bitpix.to_le_bytes());
    let qform = quaternion::from_affine(&g.affine);
    let qfac = qform.map_or(1.0, |q| q.qfac) as f32;
    let pixdim = [
        qfac,
        g.spacing[0] as f32,
        g.spacing[1] as f32,
        g.spacing[2] as f32,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    for (n, p) in pixdim.iter().enumerate() {
        put(76 + 4 * n, &p.to_le_bytes());
    }
    put(108, &(HEADER_LEN as f32).to_le_bytes());
    put(112, &1f32.to_le_bytes()); // scl_slope 1, scl_inter 0: values are stored as they are
    put(123, &[2 | 8]); // xyzt_units: mm and s
    put(148, b"delinea");
    if let Some(q) = qform {
        put(252, &2i16.to_le_bytes()); // qform_code: aligned anatomy, as the sform
        for (n, v) in [q.b, q.c, q.d, q.offset[0], q.offset[1], q.offset[2]]
            .iter()
            .enumerate()
        {
            put(256 + 4 * n, &(*v as f32).to_le_bytes());
        }
    }
    put(254, &2i16.to_le_bytes()); // sform_code
    for r in 0..3 {
        for c in 0..4 {
            put(280 + 16 * r + 4 * c, &(g.affine[r][c] as f32).to_le_bytes());
        }
    }
    put(344, b"n+1\0");
    h
}

/// Why `geometry` cannot be written as NIfTI-1, if it cannot (dims over i16).
pub(crate) fn check_writable(path: &Path, g: &Geometry) -> Result<(), Error> {
    match g.dims.iter().position(|d| *d == 0 || *d > i16::MAX as usize) {
        None => Ok(()),
        Some(a) => Err(Error::BadHeader {
            path: path.to_path_buf(),
            field: ["dim[1]", "dim[2]", "dim[3]"][a],
            found: g.dims[a].to_string(),
            expected: format!("1 to {}", i16::MAX),
        }),
    }
}
