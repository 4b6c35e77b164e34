//! Voxel bytes → f32, with endianness and `scl_slope`/`scl_inter`, decoded chunk by chunk
//! as the (possibly gzip) stream is read.

use std::io::{self, Read};
use std::path::Path;

use nifti::NiftiType;

use super::read::Decoding;
use crate::volume::Error;

/// Voxels decoded per chunk: small enough to stay in cache, large enough to amortise calls.
const CHUNK: usize = 1 << 16;

/// Skips `skip` bytes of `stream`, then decodes `d.count` voxels. `offset` (where the data
/// starts in the file) is only for error messages. `stream_len` is about how many bytes the
/// stream holds: memory is reserved for what it can hold, not for what the header claims, so
/// a corrupt header with huge dims fails as truncated data instead of exhausting memory.
pub(crate) fn stream(
    path: &Path,
    stream: &mut dyn Read,
    (skip, offset, stream_len): (usize, usize, usize),
    d: &Decoding,
) -> Result<Vec<f32>, Error> {
    let size = d.datatype.size_of();
    let mut buf = vec![0u8; CHUNK * size];
    let mut left = skip;
    while left > 0 {
        let n = left.min(buf.len());
        let got = fill(stream, &mut buf[..n]).map_err(|e| stream_error(path, e))?;
        if got < n {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                offset,
                expected: d.count.saturating_mul(size),
                found: 0,
            });
        }
        left -= n;
    }
    let reserve = d.count.min(stream_len.saturating_sub(skip) / size + 1);
    let mut out = crate::mem::vec_with_capacity(reserve);
    let mut done = 0;
    while done < d.count {
        let n = (d.count - done).min(CHUNK);
        let got = fill(stream, &mut buf[..n * size]).map_err(|e| stream_error(path, e))?;
        if got < n * size {
            let found = done * size + got;
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                offset,
                expected: d.count.saturating_mul(size),
                found,
            });
        }
        out.resize(done + n, 0f32);
        let dst = &mut out[done..done + n];
        decode_chunk(&buf[..n * size], dst, d.datatype, d.big_endian);
        if d.slope != 1.0 || d.inter != 0.0 {
            dst.iter_mut().for_each(|v| *v = (*v as f64 * d.slope + d.inter) as f32);
        }
        done += n;
    }
    Ok(out)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn fill(stream: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match stream.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A read error of a data stream. Reading bytes in memory cannot fail, so a data error comes
/// from the gzip decoder.
pub(crate) fn stream_error(path: &Path, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Error::Gzip {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
        _ => Error::io(path, e),
    }
}

macro_rules! decode_as {
    ($src:expr, $dst:expr, $big:expr, $t:ty, $n:literal) => {{
        for (d, c) in $dst.iter_mut().zip($src.chunks_exact($n)) {
            let mut a = [0u8; $n];
            a.copy_from_slice(c);
            *d = if $big {
                <$t>::from_be_bytes(a)
            } else {
                <$t>::from_le_bytes(a)
            } as f32;
        }
    }};
}

fn decode_chunk(src: &[u8], dst: &mut [f32], t: NiftiType, big: bool) {
    use NiftiType::*;
    match t {
        Uint8 => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s as f32),
        Int8 => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s as i8 as f32),
        Int16 => decode_as!(src, dst, big, i16, 2),
        Uint16 => decode_as!(src, dst, big, u16, 2),
        Int32 => decode_as!(src, dst, big, i32, 4),
        Uint32 => decode_as!(src, dst, big, u32, 4),
        Int64 => decode_as!(src, dst, big, i64, 8),
        Uint64 => decode_as!(src, dst, big, u64, 8),
        Float32 => decode_as!(src, dst, big, f32, 4),
        Float64 => decode_as!(src, dst, big, f64, 8),
        // read_decoded refuses every other datatype before decoding.
        _ => dst.iter_mut().for_each(|d| *d = f32::NAN),
    }
}
