//! Volumes on a grid, their NIfTI input/output, DICOM series input ([`dicom`]), and label maps
//! as NRRD, the format 3D Slicer trades segmentations in ([`nrrd`]).
//!
//! Guarantees: a [`Geometry`] read from a file is written back bit-exactly (dims, spacing,
//! affine); voxel order is NIfTI's (`i` fastest). Does not: resample, reorient or normalise
//! intensities — that is `preprocess`.
//!
//! ```
//! use delinea::volume::{self, Geometry, LabelMap};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("mask.nii.gz");
//! let mut mask = LabelMap::zeros(Geometry::axis_aligned([4, 4, 2], [0.5, 0.5, 3.0]));
//! mask.data[5] = 1;
//! volume::write_label_map(&path, &mask).unwrap();
//! assert_eq!(volume::read_label_map(&path).unwrap(), mask);
//! ```

pub mod dicom;
mod error;
mod geometry;
mod image;
pub mod limits;
pub mod nifti;
pub mod nrrd;

pub use error::Error;
pub use geometry::{Affine, Geometry, GRID_TOLERANCE};
pub use image::{selects, Image, LabelMap, Volume};
pub use nifti::{
    check_same_grid, inspect, read_label_map, read_volume_with_info, write_label_map, write_volume, Inspection,
    NiftiInfo, ReadVolume, Stats,
};
pub use nrrd::{NrrdLabels, Segment};

/// Reads the labels of `image` (on its grid `image_geometry`): a NIfTI label map, or, for a
/// DICOM series, an RT Structure Set drawn on it (its only ROI, filled by the even-odd rule).
pub fn read_label_map_for(
    labels: &std::path::Path,
    image: &std::path::Path,
    image_geometry: &Geometry,
) -> Result<LabelMap, Error> {
    if !dicom::is_dicom(labels) {
        return nifti::read_label_map_for(labels, image, image_geometry);
    }
    let series = dicom::read_one_series(image)?;
    let map = dicom::read_rtstruct(labels, &series, None)?;
    check_same_grid(image, image_geometry, labels, &map.geometry)?;
    Ok(map)
}

/// Reads an image: a DICOM series (a folder, or a DICOM file) or a NIfTI file.
pub fn read_volume(path: &std::path::Path) -> Result<Volume, Error> {
    if dicom::is_dicom(path) {
        dicom::read_dicom_volume(path)
    } else {
        nifti::read_volume(path)
    }
}
