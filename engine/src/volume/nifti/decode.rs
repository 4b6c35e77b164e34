//! Voxel bytes → f32, with endianness and `scl_slope`/`scl_inter`, in parallel chunks.

use nifti::NiftiType;
use rayon::prelude::*;

use super::read::RawVoxels;

/// Voxels per parallel chunk: large enough that rayon's overhead is noise.
const CHUNK: usize = 1 << 18;

/// Decodes every voxel to f32 (values after scaling; NaN and Inf pass through).
pub(crate) fn to_f32(raw: &RawVoxels) -> Vec<f32> {
    let size = raw.datatype.size_of();
    let bytes = &raw.bytes[raw.offset..raw.offset + raw.count * size];
    let mut out = vec![0f32; raw.count];
    out.par_chunks_mut(CHUNK).zip(bytes.par_chunks(CHUNK * size)).for_each(|(dst, src)| {
        decode_chunk(src, dst, raw.datatype, raw.big_endian);
        if raw.slope != 1.0 || raw.inter != 0.0 {
            dst.iter_mut().for_each(|v| *v = (*v as f64 * raw.slope + raw.inter) as f32);
        }
    });
    out
}

macro_rules! decode_as {
    ($src:expr, $dst:expr, $big:expr, $t:ty, $n:literal) => {{
        for (d, c) in $dst.iter_mut().zip($src.chunks_exact($n)) {
            let mut a = [0u8; $n];
            a.copy_from_slice(c);
            *d = if $big { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) } as f32;
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
        // read_raw refuses every other datatype before decoding.
        _ => dst.iter_mut().for_each(|d| *d = f32::NAN),
    }
}
