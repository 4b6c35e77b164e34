//! Voxel data on a [`Geometry`]: [`Volume`] (f32 intensities) and [`LabelMap`] (u8 labels).

use super::Geometry;

/// Voxels of type `T` on a grid, stored in NIfTI order (see [`Geometry::index`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Image<T> {
    /// Where the voxels are.
    pub geometry: Geometry,
    /// `geometry.len()` values, `i` fastest.
    pub data: Vec<T>,
}

/// An MRI intensity volume. Intensities are the file's values after `scl_slope`/`scl_inter`.
pub type Volume = Image<f32>;

/// A segmentation: 0 is background, any other value a label (tumour is `> 0` by default).
pub type LabelMap = Image<u8>;

impl<T: Copy + Default> Image<T> {
    /// An image of `T::default()` on `geometry`.
    pub fn zeros(geometry: Geometry) -> Self {
        let data = vec![T::default(); geometry.len()];
        Image { geometry, data }
    }

    /// Wraps `data`, or returns `None` when its length is not `geometry.len()`.
    pub fn from_vec(geometry: Geometry, data: Vec<T>) -> Option<Self> {
        (data.len() == geometry.len()).then_some(Image { geometry, data })
    }

    /// Value at voxel `(i, j, k)`.
    #[inline]
    pub fn at(&self, i: usize, j: usize, k: usize) -> T {
        self.data[self.geometry.index(i, j, k)]
    }

    /// The contiguous voxels of axial slice `k` (`nx * ny` values, `i` fastest).
    pub fn axial(&self, k: usize) -> &[T] {
        let n = self.geometry.slice_len();
        &self.data[k * n..(k + 1) * n]
    }
}

impl LabelMap {
    /// Number of voxels whose label is selected by `label` (`None`: any value > 0).
    pub fn count(&self, label: Option<u8>) -> usize {
        self.data.iter().filter(|v| selects(**v, label)).count()
    }

    /// A binary copy: 1 where `label` is selected, else 0.
    pub fn binary(&self, label: Option<u8>) -> LabelMap {
        let data = self.data.iter().map(|v| selects(*v, label) as u8).collect();
        Image {
            geometry: self.geometry.clone(),
            data,
        }
    }
}

/// Whether voxel value `v` belongs to `label` (`None`: any value > 0, METHOD.md "Labels: > 0
/// is tumour").
#[inline]
pub fn selects(v: u8, label: Option<u8>) -> bool {
    match label {
        None => v > 0,
        Some(l) => v == l,
    }
}
