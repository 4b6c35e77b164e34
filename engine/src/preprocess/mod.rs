//! Preprocessing (METHOD.md step 1): intensity clip and z-score, optional resampling to a
//! target spacing, axial slices resized to N × N, and the way back to the original grid.
//!
//! Slices are `[n_slices, N, N]` row-major, rows along `j` and columns along `i` (a network
//! sees `[batch, 1, H = j, W = i]`). Images are resized bilinearly (or nearest, as the
//! reference code), labels by nearest neighbour; [`Prepared::restore`] undoes the resize
//! and any resampling, so predictions land on the input's exact grid.
//!
//! ```
//! use delinea::preprocess::{Preprocessing, prepare};
//! use delinea::volume::{Geometry, Volume};
//! let g = Geometry::axis_aligned([20, 16, 3], [1.0, 1.0, 4.0]);
//! let v = Volume::from_vec(g.clone(), (0..g.len()).map(|x| x as f32).collect()).unwrap();
//! let p = prepare(&v, &Preprocessing { slice_size: 32, ..Preprocessing::default() });
//! assert_eq!((p.slices.len(), p.size), (3 * 32 * 32, 32));
//! let back = p.restore(&p.slices, delinea::preprocess::Interp::Linear);
//! assert_eq!(back.geometry, g);
//! ```

mod intensity;
mod resample;
mod resize;

pub use intensity::{clip_upper, quantile_upper, zscore};
pub use resample::{resample, resampled_geometry, restore};
pub use resize::{resize3, resize_axis, Interp, Sample};

use serde::{Deserialize, Serialize};

use crate::volume::{Geometry, Image, LabelMap, Volume};

/// Preprocessing parameters; saved in a model card so inference reproduces them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Preprocessing {
    /// Upper clip at this cumulative-histogram quantile. Default 0.99.
    pub clip_quantile: f64,
    /// Slices are resized to `slice_size` × `slice_size`. Default 256.
    pub slice_size: usize,
    /// Image interpolation for the slice resize. Default linear.
    pub image_interp: Interp,
    /// Resample to this spacing (mm, i/j/k) first; `None` (default, as the reference) keeps
    /// the file's grid.
    pub target_spacing: Option<[f64; 3]>,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing {
            clip_quantile: 0.99,
            slice_size: 256,
            image_interp: Interp::Linear,
            target_spacing: None,
        }
    }
}

/// A volume ready for a 2D network, and what is needed to map results back.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `[n_slices, size, size]` normalised intensities.
    pub slices: Vec<f32>,
    /// `N`.
    pub size: usize,
    /// Number of axial slices.
    pub n_slices: usize,
    /// The input's grid.
    pub original: Geometry,
    /// The grid the slices were cut from (differs from `original` only when resampling).
    pub working: Geometry,
    /// The clip value, mean and standard deviation applied.
    pub clip: f32,
    /// Mean before z-scoring.
    pub mean: f64,
    /// Standard deviation before z-scoring.
    pub std: f64,
}

/// Clip, z-score, (resample,) and cut `volume` into resized axial slices.
pub fn prepare(volume: &Volume, p: &Preprocessing) -> Prepared {
    let mut working = match p.target_spacing {
        Some(t) => resample(volume, t, Interp::Linear),
        None => volume.clone(),
    };
    let clip = clip_upper(&mut working.data, p.clip_quantile);
    let (mean, std) = zscore(&mut working.data);
    let slices = to_slices(&working, p.slice_size, p.image_interp);
    let n_slices = working.geometry.dims[2];
    Prepared {
        slices,
        size: p.slice_size,
        n_slices,
        original: volume.geometry.clone(),
        working: working.geometry,
        clip,
        mean,
        std,
    }
}

/// A label map cut into `[n_slices, size, size]` slices on the grid of `prepared`.
pub fn prepare_labels(labels: &LabelMap, prepared: &Prepared) -> Vec<u8> {
    let working = if labels.geometry.dims == prepared.working.dims {
        labels.clone()
    } else {
        Image {
            geometry: prepared.working.clone(),
            data: resize3(
                &labels.data,
                labels.geometry.dims,
                prepared.working.dims,
                Interp::Nearest,
            ),
        }
    };
    to_slices(&working, prepared.size, Interp::Nearest)
}

impl Prepared {
    /// Per-slice values (`[n_slices, size, size]`, e.g. a probability channel or a mask)
    /// brought back to the original grid.
    pub fn restore<T: Sample + Default>(&self, slices: &[T], interp: Interp) -> Image<T> {
        let d = self.working.dims;
        let data = resize3(
            slices,
            [self.size, self.size, self.n_slices],
            [d[0], d[1], d[2]],
            interp,
        );
        let on_working = Image {
            geometry: self.working.clone(),
            data,
        };
        if self.working == self.original {
            on_working
        } else {
            restore(&on_working, &self.original, interp)
        }
    }
}

/// Axial slices of `image` resized to `size` × `size`: `[nz, size, size]`.
pub fn to_slices<T: Sample>(image: &Image<T>, size: usize, interp: Interp) -> Vec<T> {
    resize3(
        &image.data,
        image.geometry.dims,
        [size, size, image.geometry.dims[2]],
        interp,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_through_slices() {
        let g = Geometry::axis_aligned([30, 20, 4], [0.8, 0.8, 3.0]);
        let labels = LabelMap::from_vec(g.clone(), (0..g.len()).map(|v| ((v / 7) % 2) as u8).collect()).unwrap();
        let vol = Volume::from_vec(g.clone(), vec![1.0; g.len()]).unwrap();
        let p = prepare(
            &vol,
            &Preprocessing {
                slice_size: 64,
                ..Default::default()
            },
        );
        let s = prepare_labels(&labels, &p);
        assert_eq!(s.len(), 4 * 64 * 64);
        assert_eq!(p.restore(&s, Interp::Nearest), labels);
    }

    #[test]
    fn resampling_round_trip_lands_on_the_original_grid() {
        let g = Geometry::axis_aligned([12, 10, 5], [1.0, 1.0, 3.0]);
        let vol = Volume::from_vec(g.clone(), (0..g.len()).map(|v| v as f32).collect()).unwrap();
        let p = prepare(
            &vol,
            &Preprocessing {
                slice_size: 16,
                target_spacing: Some([1.0, 1.0, 1.0]),
                ..Default::default()
            },
        );
        assert_eq!(p.working.dims, [12, 10, 15]);
        let back = p.restore(&p.slices, Interp::Linear);
        assert_eq!(back.geometry, g);
    }
}
