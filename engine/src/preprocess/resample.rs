//! Optional resampling to a target voxel spacing (nnU-Net style), with its exact way back.

use super::resize::{resize3, Interp, Sample};
use crate::volume::{Geometry, Image};

/// The grid `g` becomes when resampled to about `target` mm: dims rounded to the nearest
/// integer (at least 1), spacing adjusted so the field of view is unchanged, and the affine
/// moved so that voxel centres follow the half-pixel convention of [`super::resize`].
#[allow(clippy::needless_range_loop)] // matrix arithmetic reads best with indices
pub fn resampled_geometry(g: &Geometry, target: [f64; 3]) -> Geometry {
    let mut dims = [0usize; 3];
    let mut affine = g.affine;
    let mut spacing = [0.0; 3];
    let mut origin_shift = [0.0; 3];
    for a in 0..3 {
        dims[a] = ((g.dims[a] as f64 * g.spacing[a] / target[a]).round() as usize).max(1);
        let scale = g.dims[a] as f64 / dims[a] as f64;
        spacing[a] = g.spacing[a] * scale;
        origin_shift[a] = 0.5 * scale - 0.5; // old voxel coordinate of new voxel 0
        for r in 0..3 {
            affine[r][a] = g.affine[r][a] * scale;
        }
    }
    for r in 0..3 {
        affine[r][3] = (0..3).map(|a| g.affine[r][a] * origin_shift[a]).sum::<f64>() + g.affine[r][3];
    }
    Geometry { dims, spacing, affine }
}

/// `image` resampled onto [`resampled_geometry`]`(target)`.
pub fn resample<T: Sample>(image: &Image<T>, target: [f64; 3], interp: Interp) -> Image<T> {
    let geometry = resampled_geometry(&image.geometry, target);
    let data = resize3(&image.data, image.geometry.dims, geometry.dims, interp);
    Image { geometry, data }
}

/// `image` (on a resampled grid) brought back onto `original`.
pub fn restore<T: Sample>(image: &Image<T>, original: &Geometry, interp: Interp) -> Image<T> {
    let data = resize3(&image.data, image.geometry.dims, original.dims, interp);
    Image {
        geometry: original.clone(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampled_grid_keeps_the_field_of_view() {
        let g = Geometry::axis_aligned([10, 10, 4], [0.5, 0.5, 3.0]);
        let r = resampled_geometry(&g, [1.0, 1.0, 1.0]);
        assert_eq!(r.dims, [5, 5, 12]);
        assert_eq!(r.spacing, [1.0, 1.0, 1.0]);
        // The first voxel's corner stays where it was: centre at -0.25 + 0.5 mm = 0.25 mm in x.
        let corner_old = g.to_world([-0.5, -0.5, -0.5]);
        let corner_new = r.to_world([-0.5, -0.5, -0.5]);
        for a in 0..3 {
            assert!((corner_old[a] - corner_new[a]).abs() < 1e-9);
        }
    }

    #[test]
    fn labels_survive_a_round_trip_to_a_finer_grid() {
        let g = Geometry::axis_aligned([6, 5, 3], [1.0, 1.0, 4.0]);
        let data: Vec<u8> = (0..g.len()).map(|v| (v % 3) as u8).collect();
        let img = Image {
            geometry: g.clone(),
            data,
        };
        let fine = resample(&img, [0.5, 0.5, 1.0], Interp::Nearest);
        assert_eq!(fine.geometry.dims, [12, 10, 12]);
        assert_eq!(restore(&fine, &g, Interp::Nearest), img);
    }
}
