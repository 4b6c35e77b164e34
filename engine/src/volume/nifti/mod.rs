//! NIfTI-1 input and output for [`Volume`] and [`LabelMap`].
//!
//! Reading accepts every integer and real datatype, both byte orders, `.nii`, `.nii.gz` and
//! `.hdr`/`.img` pairs, applies `scl_slope`/`scl_inter`, and takes the affine as nibabel's
//! `get_best_affine` does. It refuses, with the file and the reason: NIfTI-2, ANALYZE 7.5,
//! RGB and complex data, true 4D, non-positive dims or voxel sizes, truncated gzip, data
//! shorter than the header says, and label maps with NaN, Inf or non-integer values.
//!
//! **Non-finite image voxels.** NaN and -Inf are replaced by the smallest finite voxel value
//! and +Inf by the largest (NaN usually marks voxels outside the field of view, i.e.
//! background), and [`NiftiInfo`]'s caller is told how many there were; an image with no
//! finite voxel is refused.

mod decode;
mod gzip;
mod inspect;
mod quaternion;
mod read;
mod write;

use std::path::Path;

pub use inspect::{inspect, Inspection, Stats};
pub use read::NiftiInfo;
pub use write::GZIP_LEVEL;

use crate::volume::{Error, Geometry, Image, LabelMap, Volume};

/// A volume as read, with what the header said and how many voxels were non-finite.
#[derive(Debug, Clone)]
pub struct ReadVolume {
    /// The voxels, non-finite values replaced (see the module docs).
    pub volume: Volume,
    /// What the header said.
    pub info: NiftiInfo,
    /// How many voxels were NaN or ±Inf in the file.
    pub non_finite: usize,
}

/// Reads an image (see the module docs for what is accepted and refused).
pub fn read_volume(path: &Path) -> Result<Volume, Error> {
    read_volume_with_info(path).map(|r| r.volume)
}

/// Reads an image and reports what its header said.
pub fn read_volume_with_info(path: &Path) -> Result<ReadVolume, Error> {
    let (geometry, info, mut data) = read::read_decoded(path)?;
    // Integers scaled by a finite slope below ~1e19 stay finite in f32: skip the scan.
    let may_be_non_finite =
        info.datatype.starts_with("float") || info.scl_slope.abs() > 1e19 || info.scl_inter.abs() > 1e30;
    let non_finite = if may_be_non_finite {
        replace_non_finite(&mut data).ok_or_else(|| Error::AllNonFinite {
            path: path.to_path_buf(),
        })?
    } else {
        0
    };
    Ok(ReadVolume {
        volume: Image { geometry, data },
        info,
        non_finite,
    })
}

/// Reads a label map: every voxel must be an integer in 0..=255 after scaling.
pub fn read_label_map(path: &Path) -> Result<LabelMap, Error> {
    let (geometry, _, values) = read::read_decoded(path)?;
    let mut data = Vec::with_capacity(values.len());
    for (n, v) in values.iter().enumerate() {
        if !(v.is_finite() && *v >= 0.0 && *v <= 255.0 && (v - v.round()).abs() < 1e-3) {
            let g = &geometry;
            let (i, j, k) = (n % g.dims[0], (n / g.dims[0]) % g.dims[1], n / g.slice_len());
            return Err(Error::BadLabels {
                path: path.to_path_buf(),
                reason: format!("voxel ({i}, {j}, {k}) is {v}; labels must be integers 0 to 255"),
            });
        }
        data.push(v.round() as u8);
    }
    Ok(Image { geometry, data })
}

/// Reads the label map `labels` and checks that it lies on the grid of `image`.
pub fn read_label_map_for(labels: &Path, image: &Path, image_geometry: &Geometry) -> Result<LabelMap, Error> {
    let map = read_label_map(labels)?;
    check_same_grid(image, image_geometry, labels, &map.geometry)?;
    Ok(map)
}

/// An error naming both files when `b` is not on the grid of `a`.
pub fn check_same_grid(a: &Path, ga: &Geometry, b: &Path, gb: &Geometry) -> Result<(), Error> {
    match ga.mismatch(gb) {
        None => Ok(()),
        Some(detail) => Err(Error::GeometryMismatch {
            image: a.to_path_buf(),
            labels: b.to_path_buf(),
            detail,
        }),
    }
}

/// Writes an image as float32 (`.nii` or, when the name ends in `.gz`, `.nii.gz`).
pub fn write_volume(path: &Path, volume: &Volume) -> Result<(), Error> {
    write::check_writable(path, &volume.geometry)?;
    write::write_nifti(path, &volume.geometry, write::Payload::F32(&volume.data))
}

/// Writes a label map as uint8.
pub fn write_label_map(path: &Path, labels: &LabelMap) -> Result<(), Error> {
    write::check_writable(path, &labels.geometry)?;
    write::write_nifti(path, &labels.geometry, write::Payload::U8(&labels.data))
}

/// Replaces NaN/-Inf by the minimum and +Inf by the maximum finite value; returns how many
/// were replaced, or `None` when no value is finite.
fn replace_non_finite(data: &mut [f32]) -> Option<usize> {
    let bad = data.iter().filter(|v| !v.is_finite()).count();
    if bad == 0 {
        return Some(0);
    }
    let finite = data.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return None;
    }
    for v in data.iter_mut() {
        if v.is_nan() || *v == f32::NEG_INFINITY {
            *v = lo;
        } else if *v == f32::INFINITY {
            *v = hi;
        }
    }
    Some(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    fn odd_geometry() -> Geometry {
        let mut g = Geometry::axis_aligned([7, 5, 3], [0.6, 0.7, 3.3]);
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        g.affine = [
            [-0.6 * c, 0.7 * s, 0.0, 91.25],
            [0.6 * s, 0.7 * c, 0.1, -120.5],
            [0.0, 0.0, 3.3, -33.125],
            [0.0, 0.0, 0.0, 1.0],
        ];
        // The header holds f32: keep the test's affine representable so equality is exact.
        g.affine = g.affine.map(|r| r.map(|v| v as f32 as f64));
        g.spacing = g.spacing.map(|v| v as f32 as f64);
        g
    }

    #[test]
    fn round_trip_is_exact_for_images_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let g = odd_geometry();
        let vol = Volume::from_vec(g.clone(), (0..g.len()).map(|v| v as f32 * 0.37 - 5.0).collect()).unwrap();
        let lab = LabelMap::from_vec(g.clone(), (0..g.len()).map(|v| (v % 3) as u8).collect()).unwrap();
        for name in ["v.nii", "v.nii.gz"] {
            let p = dir.path().join(name);
            write_volume(&p, &vol).unwrap();
            assert_eq!(read_volume(&p).unwrap(), vol, "{name}");
            let l = dir.path().join(format!("l{name}"));
            write_label_map(&l, &lab).unwrap();
            assert_eq!(read_label_map(&l).unwrap(), lab, "{name}");
        }
        if let Ok(out) = std::env::var("DELINEA_KEEP_ROUNDTRIP") {
            write_volume(Path::new(&out), &vol).unwrap();
        }
    }

    #[test]
    fn non_finite_image_voxels_are_replaced_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let g = Geometry::axis_aligned([4, 1, 1], [1.0, 1.0, 1.0]);
        let vol = Volume::from_vec(g, vec![f32::NAN, 2.0, f32::INFINITY, -1.0]).unwrap();
        let p = dir.path().join("nan.nii");
        write_volume(&p, &vol).unwrap();
        let r = read_volume_with_info(&p).unwrap();
        assert_eq!(r.non_finite, 2);
        assert_eq!(r.volume.data, vec![-1.0, 2.0, 2.0, -1.0]);
        let lab = read_label_map(&p).unwrap_err().to_string();
        assert!(
            lab.contains("nan.nii") && lab.contains("voxel (0, 0, 0) is NaN"),
            "{lab}"
        );
    }
}
