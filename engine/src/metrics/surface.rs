//! One pass over both masks (counts and the bounding box), the crop to that box, the surfaces
//! and the surface-to-surface distances.
//!
//! Surface = mask minus its erosion by the 6-neighbourhood cross, with voxels outside the
//! volume counted as background (`scipy.ndimage.binary_erosion`'s `border_value=0`, which
//! medpy and MONAI both use): a mask touching the volume's edge has surface there. Everything
//! outside the union's bounding box is background too, so surfaces and distances computed on the
//! box are exactly those of the whole volume (no margin is needed: every feature voxel of the
//! distance transform lies in the box, and so does every query).

use rayon::prelude::*;

use crate::volume::selects;

use super::distance::distances_at;

/// Voxel counts and the bounding box of the union, from one pass over both masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Voxels selected in the prediction.
    pub pred: u64,
    /// Voxels selected in the ground truth.
    pub gt: u64,
    /// Voxels selected in both.
    pub both: u64,
    /// Inclusive bounding box of the union, `[lo, hi]` per axis; `None` when both are empty.
    pub bbox: Option<([usize; 3], [usize; 3])>,
}

impl Scan {
    fn empty() -> Scan {
        Scan {
            pred: 0,
            gt: 0,
            both: 0,
            bbox: None,
        }
    }

    fn merge(self, o: Scan) -> Scan {
        let bbox = match (self.bbox, o.bbox) {
            (Some((al, ah)), Some((bl, bh))) => Some((
                [al[0].min(bl[0]), al[1].min(bl[1]), al[2].min(bl[2])],
                [ah[0].max(bh[0]), ah[1].max(bh[1]), ah[2].max(bh[2])],
            )),
            (a, None) => a,
            (None, b) => b,
        };
        Scan {
            pred: self.pred + o.pred,
            gt: self.gt + o.gt,
            both: self.both + o.both,
            bbox,
        }
    }
}

/// Counts and bounding box; `pred` and `gt` hold `dims` voxels, `i` fastest.
pub(crate) fn scan(pred: &[u8], gt: &[u8], dims: [usize; 3], label: Option<u8>) -> Scan {
    let [nx, ny, _] = dims;
    let nxy = nx * ny;
    if nxy == 0 {
        return Scan::empty();
    }
    pred.par_chunks(nxy)
        .zip(gt.par_chunks(nxy))
        .enumerate()
        .map(|(k, (ps, gs))| {
            let mut s = Scan::empty();
            for (j, (prow, grow)) in ps.chunks(nx).zip(gs.chunks(nx)).enumerate() {
                // Cheap, vectorisable test first: most rows of a tumour mask are empty.
                if !row_has(prow, label) && !row_has(grow, label) {
                    continue;
                }
                let (mut lo, mut hi) = (usize::MAX, 0);
                let (mut np, mut ng, mut nb) = (0u64, 0u64, 0u64);
                for (i, (&p, &g)) in prow.iter().zip(grow).enumerate() {
                    let (p, g) = (selects(p, label), selects(g, label));
                    if p || g {
                        lo = lo.min(i);
                        hi = hi.max(i);
                        np += p as u64;
                        ng += g as u64;
                        nb += (p && g) as u64;
                    }
                }
                if np + ng > 0 {
                    s = s.merge(Scan {
                        pred: np,
                        gt: ng,
                        both: nb,
                        bbox: Some(([lo, j, k], [hi, j, k])),
                    });
                }
            }
            s
        })
        .reduce(Scan::empty, Scan::merge)
}

fn row_has(row: &[u8], label: Option<u8>) -> bool {
    match label {
        None => row.iter().fold(0u8, |a, &v| a | v) != 0,
        Some(l) => row.iter().fold(false, |a, &v| a | (v == l)),
    }
}

/// The two surfaces on the crop `[lo, hi]`, as flags on the crop's grid (`dims` returned).
pub(crate) struct Surfaces {
    /// Crop size.
    pub dims: [usize; 3],
    /// Surface flags of the prediction.
    pub pred: Vec<bool>,
    /// Surface flags of the ground truth.
    pub gt: Vec<bool>,
}

/// Crops both masks to `[lo, hi]` and extracts their surfaces.
pub(crate) fn surfaces(
    pred: &[u8],
    gt: &[u8],
    dims: [usize; 3],
    label: Option<u8>,
    (lo, hi): ([usize; 3], [usize; 3]),
) -> Surfaces {
    let c = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
    Surfaces {
        dims: c,
        pred: surface_of(&crop(pred, dims, label, lo, c), c),
        gt: surface_of(&crop(gt, dims, label, lo, c), c),
    }
}

fn crop(mask: &[u8], dims: [usize; 3], label: Option<u8>, lo: [usize; 3], c: [usize; 3]) -> Vec<bool> {
    let [nx, ny, _] = dims;
    let mut out = vec![false; c[0] * c[1] * c[2]];
    out.par_chunks_mut(c[0] * c[1]).enumerate().for_each(|(kk, slice)| {
        for (jj, row) in slice.chunks_mut(c[0]).enumerate() {
            let start = lo[0] + nx * (lo[1] + jj + ny * (lo[2] + kk));
            for (o, &v) in row.iter_mut().zip(&mask[start..start + c[0]]) {
                *o = selects(v, label);
            }
        }
    });
    out
}

/// `mask & !erode(mask)` with the 6-neighbourhood and background outside the box.
fn surface_of(mask: &[bool], c: [usize; 3]) -> Vec<bool> {
    let [cx, cy, cz] = c;
    let cxy = cx * cy;
    let mut out = vec![false; mask.len()];
    out.par_chunks_mut(cxy).enumerate().for_each(|(k, slice)| {
        for j in 0..cy {
            for i in 0..cx {
                let n = i + cx * (j + cy * k);
                if !mask[n] {
                    continue;
                }
                let interior = i > 0
                    && i + 1 < cx
                    && j > 0
                    && j + 1 < cy
                    && k > 0
                    && k + 1 < cz
                    && mask[n - 1]
                    && mask[n + 1]
                    && mask[n - cx]
                    && mask[n + cx]
                    && mask[n - cxy]
                    && mask[n + cxy];
                slice[i + cx * j] = !interior;
            }
        }
    });
    out
}

/// Directed distances (mm) from every surface voxel of `from` to the surface `to`.
pub(crate) fn directed(from: &[bool], to: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let queries: Vec<usize> = from.iter().enumerate().filter_map(|(n, &s)| s.then_some(n)).collect();
    distances_at(to, dims, spacing, &queries)
}
