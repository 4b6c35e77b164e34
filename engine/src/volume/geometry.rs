//! Where a voxel grid sits in the world: dims, spacing and the voxel → world affine.

use serde::{Deserialize, Serialize};

/// A 4 × 4 homogeneous matrix, row-major, mapping voxel indices `(i, j, k, 1)` to world
/// millimetres `(x, y, z, 1)` in the NIfTI (RAS+) convention that nibabel reports.
pub type Affine = [[f64; 4]; 4];

/// The grid of a 3D volume.
///
/// Voxel `(i, j, k)` is stored at linear index `i + nx * (j + ny * k)` (NIfTI order: `i`
/// fastest), so an axial slice `k` is one contiguous block of `nx * ny` voxels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Geometry {
    /// Voxels along `i`, `j`, `k`.
    pub dims: [usize; 3],
    /// Voxel size along `i`, `j`, `k` in millimetres (always > 0).
    pub spacing: [f64; 3],
    /// Voxel → world (RAS+, mm), row-major.
    pub affine: Affine,
}

/// How far two grids may differ and still count as the same grid (millimetres for the
/// affine translation, unitless for its linear part relative to the spacing).
pub const GRID_TOLERANCE: f64 = 1e-3;

impl Geometry {
    /// A grid with an axis-aligned affine `diag(spacing)` and origin 0.
    pub fn axis_aligned(dims: [usize; 3], spacing: [f64; 3]) -> Geometry {
        let mut affine = [[0.0; 4]; 4];
        for (a, s) in spacing.iter().enumerate() {
            affine[a][a] = *s;
        }
        affine[3][3] = 1.0;
        Geometry { dims, spacing, affine }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// True when the grid has no voxel (never the case for a grid read from a file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Voxels in one axial slice (`nx * ny`).
    pub fn slice_len(&self) -> usize {
        self.dims[0] * self.dims[1]
    }

    /// Linear index of voxel `(i, j, k)`.
    #[inline]
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Volume of one voxel in millilitres.
    pub fn voxel_ml(&self) -> f64 {
        self.spacing.iter().product::<f64>() / 1000.0
    }

    /// World coordinates (mm) of voxel `(i, j, k)`.
    pub fn to_world(&self, ijk: [f64; 3]) -> [f64; 3] {
        let a = &self.affine;
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = a[r][0] * ijk[0] + a[r][1] * ijk[1] + a[r][2] * ijk[2] + a[r][3];
        }
        out
    }

    /// Orientation codes of the voxel axes, as nibabel's `aff2axcodes` (e.g. `"RAS"`,
    /// `"LPS"`): for each voxel axis, the world direction it mostly points to.
    pub fn orientation(&self) -> String {
        let mut used = [false; 3];
        let mut codes = String::with_capacity(3);
        for axis in 0..3 {
            let col: Vec<f64> = (0..3).map(|r| self.affine[r][axis]).collect();
            let world = (0..3)
                .filter(|w| !used[*w])
                .max_by(|a, b| col[*a].abs().total_cmp(&col[*b].abs()))
                .unwrap_or(axis);
            used[world] = true;
            let positive = col[world] >= 0.0;
            codes.push(match (world, positive) {
                (0, true) => 'R',
                (0, false) => 'L',
                (1, true) => 'A',
                (1, false) => 'P',
                (2, true) => 'S',
                _ => 'I',
            });
        }
        codes
    }

    /// Why `other` is not the same grid as `self`, or `None` when it is (dims equal, affine
    /// within [`GRID_TOLERANCE`]).
    pub fn mismatch(&self, other: &Geometry) -> Option<String> {
        if self.dims != other.dims {
            return Some(format!("dims {:?} vs {:?}", self.dims, other.dims));
        }
        for r in 0..3 {
            for c in 0..4 {
                let (a, b) = (self.affine[r][c], other.affine[r][c]);
                let scale = if c < 3 { self.spacing[c].max(1.0) } else { 1.0 };
                if (a - b).abs() > GRID_TOLERANCE * scale {
                    return Some(format!("affine[{r}][{c}] {a} vs {b} (tolerance {GRID_TOLERANCE})"));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_codes_follow_the_affine() {
        let g = Geometry::axis_aligned([2, 2, 2], [1.0, 1.0, 1.0]);
        assert_eq!(g.orientation(), "RAS");
        let mut lps = g.clone();
        lps.affine[0][0] = -1.0;
        lps.affine[1][1] = -1.0;
        assert_eq!(lps.orientation(), "LPS");
        // Axes permuted: i points along world y, j along world x.
        let mut perm = Geometry::axis_aligned([2, 2, 2], [1.0, 1.0, 1.0]);
        perm.affine[0] = [0.0, -2.0, 0.0, 0.0];
        perm.affine[1] = [3.0, 0.0, 0.0, 0.0];
        assert_eq!(perm.orientation(), "ALS");
    }

    #[test]
    fn mismatch_names_what_differs() {
        let a = Geometry::axis_aligned([4, 5, 6], [0.5, 0.5, 3.0]);
        let mut b = a.clone();
        assert_eq!(a.mismatch(&b), None);
        b.affine[2][3] = 0.0005;
        assert_eq!(a.mismatch(&b), None, "within tolerance");
        b.affine[2][3] = 0.5;
        assert!(a.mismatch(&b).unwrap().contains("affine[2][3]"));
        b.dims = [4, 5, 7];
        assert!(a.mismatch(&b).unwrap().contains("dims"));
    }
}
