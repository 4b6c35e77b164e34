//! Raters: how each expert turns the (unseen) true tumour into a delineation.
//!
//! A rater's contour is `{ signed distance to the tumour <= margin + jitter(p) + slice
//! offset(k) }`, with the signed distance computed by an exact anisotropic Euclidean distance
//! transform in millimetres on the case's own voxel grid (so a 1.5 mm margin is 1.5 mm whatever
//! the spacing). Raters never draw into air or outside the head, and may leave out a thin
//! extension of the tumour.

use super::acquisition::Rendered;
use super::rng::{Rng, WaveField};
use crate::volume::LabelMap;

/// One rater's habits.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct RaterHabit {
    /// Rater id, e.g. `"C2-onc"` or `"R3"`.
    pub id: String,
    /// Systematic margin (mm): > 0 draws generously (dilation), < 0 tightly (erosion).
    pub margin_mm: f64,
    /// Standard deviation (mm) of the smooth boundary jitter (wavelengths 15-40 mm).
    pub jitter_mm: f64,
    /// Standard deviation (mm) of a per-slice offset (slice-by-slice contouring).
    pub slice_jitter_mm: f64,
    /// Probability of leaving out a thin extension when the tumour has one.
    pub omit_extension: f64,
}

impl RaterHabit {
    /// A centre's reference oncologist: margin in ±1 mm.
    pub fn oncologist(rng: &mut Rng, id: String) -> RaterHabit {
        RaterHabit {
            id,
            margin_mm: round2(rng.range(-1.0, 1.0)),
            jitter_mm: round2(rng.range(0.3, 0.9)),
            slice_jitter_mm: round2(rng.range(0.2, 0.6)),
            omit_extension: round2(rng.range(0.0, 0.35)),
        }
    }

    /// A multi-rater expert whose margin is near `margin_mm` (the experts' margins are spread
    /// over ±1.8 mm so that they differ systematically).
    pub fn expert(rng: &mut Rng, id: String, margin_mm: f64) -> RaterHabit {
        RaterHabit {
            id,
            margin_mm: round2(margin_mm + rng.range(-0.2, 0.2)),
            jitter_mm: round2(rng.range(0.4, 1.2)),
            slice_jitter_mm: round2(rng.range(0.2, 0.8)),
            omit_extension: round2(rng.range(0.05, 0.6)),
        }
    }

    /// One line for the manifest.
    pub fn describe(&self) -> String {
        format!(
            "synthetic rater: margin {:+.2} mm, boundary jitter {:.2} mm, slice jitter {:.2} mm, leaves out thin extensions with p = {:.2}",
            self.margin_mm, self.jitter_mm, self.slice_jitter_mm, self.omit_extension
        )
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The delineation of `case` by a rater with `habit`; `rng` is this (case, rater) pair's
/// stream, `has_extension` whether the tumour has a thin extension lobe.
pub fn delineate(case: &Rendered, habit: &RaterHabit, has_extension: bool, rng: &mut Rng) -> LabelMap {
    let omit = has_extension && rng.chance(habit.omit_extension);
    let jitter = WaveField::new(rng, 5, 15.0, 40.0, habit.jitter_mm);
    let g = &case.image.geometry;
    let slice_off: Vec<f64> = (0..g.dims[2]).map(|_| rng.normal() * habit.slice_jitter_mm).collect();
    let base = if omit { &case.core } else { &case.truth };
    let mut out = LabelMap::zeros(g.clone());
    let Some((lo, hi)) = bounding_box(base, g.dims) else {
        return out;
    };
    let reach_mm = habit.margin_mm.max(0.0) + 3.0 * habit.jitter_mm + 3.0 * habit.slice_jitter_mm + 1.0;
    let mut blo = [0usize; 3];
    let mut bhi = [0usize; 3];
    for a in 0..3 {
        let pad = (reach_mm / g.spacing[a]).ceil() as usize + 2;
        blo[a] = lo[a].saturating_sub(pad);
        bhi[a] = (hi[a] + pad).min(g.dims[a] - 1);
    }
    let bd = [0, 1, 2].map(|a| bhi[a] - blo[a] + 1);
    let mut inside = Vec::with_capacity(bd[0] * bd[1] * bd[2]);
    for k in blo[2]..=bhi[2] {
        for j in blo[1]..=bhi[1] {
            for i in blo[0]..=bhi[0] {
                inside.push(base[g.index(i, j, k)]);
            }
        }
    }
    let outside: Vec<bool> = inside.iter().map(|v| !v).collect();
    let d_in = edt_sq(&inside, bd, g.spacing); // distance to the tumour (0 inside)
    let d_out = edt_sq(&outside, bd, g.spacing); // distance to the background (0 outside)
    let h = 0.5 * g.spacing[0].min(g.spacing[1]);
    let mut n = 0usize;
    let mut b = 0usize;
    for (k, offset) in slice_off.iter().enumerate().take(bhi[2] + 1).skip(blo[2]) {
        for j in blo[1]..=bhi[1] {
            for i in blo[0]..=bhi[0] {
                let idx = g.index(i, j, k);
                let m = inside[b];
                let sd = if m { -(d_out[b].sqrt() - h) } else { d_in[b].sqrt() - h };
                b += 1;
                let threshold = habit.margin_mm + jitter.at(case.grid.patient([i as f64, j as f64, k as f64])) + offset;
                if sd <= threshold && (m || (!case.air[idx] && case.head[idx])) {
                    out.data[idx] = 1;
                    n += 1;
                }
            }
        }
    }
    if n == 0 {
        // An erosion larger than a tiny tumour: a rater still marks what they see.
        for (o, v) in out.data.iter_mut().zip(base) {
            *o = *v as u8;
        }
    }
    out
}

fn bounding_box(mask: &[bool], dims: [usize; 3]) -> Option<([usize; 3], [usize; 3])> {
    let mut lo = dims;
    let mut hi = [0usize; 3];
    let mut any = false;
    for (idx, _) in mask.iter().enumerate().filter(|(_, v)| **v) {
        let ijk = [idx % dims[0], (idx / dims[0]) % dims[1], idx / (dims[0] * dims[1])];
        for a in 0..3 {
            lo[a] = lo[a].min(ijk[a]);
            hi[a] = hi[a].max(ijk[a]);
        }
        any = true;
    }
    any.then_some((lo, hi))
}

const FAR: f64 = 1e20;

/// Squared Euclidean distance (mm²) from every voxel to the nearest `true` voxel
/// (Felzenszwalb & Huttenlocher's separable exact transform, anisotropic spacing). `FAR`
/// where there is no `true` voxel.
pub(crate) fn edt_sq(feature: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let mut d: Vec<f64> = feature.iter().map(|v| if *v { 0.0 } else { FAR }).collect();
    let n_max = dims.iter().copied().max().unwrap_or(0);
    let mut f = vec![0.0; n_max];
    let mut out = vec![0.0; n_max];
    let mut v = vec![0usize; n_max];
    let mut z = vec![0.0; n_max + 1];
    let stride = [1, dims[0], dims[0] * dims[1]];
    for axis in 0..3 {
        let n = dims[axis];
        let others: Vec<usize> = (0..3).filter(|a| *a != axis).collect();
        let (a, b) = (others[0], others[1]);
        for jb in 0..dims[b] {
            for ja in 0..dims[a] {
                let start = ja * stride[a] + jb * stride[b];
                for q in 0..n {
                    f[q] = d[start + q * stride[axis]];
                }
                dt1d(&f[..n], spacing[axis], &mut out[..n], &mut v, &mut z);
                for q in 0..n {
                    d[start + q * stride[axis]] = out[q];
                }
            }
        }
    }
    d
}

fn dt1d(f: &[f64], s: f64, d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let pos = |q: usize| q as f64 * s;
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in 1..n {
        let fq = f[q] + pos(q) * pos(q);
        let mut x;
        loop {
            let p = v[k];
            x = (fq - (f[p] + pos(p) * pos(p))) / (2.0 * (pos(q) - pos(p)));
            if x <= z[k] && k > 0 {
                k -= 1;
            } else {
                break;
            }
        }
        k += 1;
        v[k] = q;
        z[k] = x;
        z[k + 1] = f64::INFINITY;
    }
    k = 0;
    for (q, out) in d.iter_mut().enumerate() {
        while z[k + 1] < pos(q) {
            k += 1;
        }
        let p = v[k];
        *out = (pos(q) - pos(p)).powi(2) + f[p];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edt_matches_brute_force_with_anisotropic_spacing() {
        let dims = [7, 6, 5];
        let sp = [0.7, 1.3, 3.0];
        let mut rng = Rng::new(9);
        let feat: Vec<bool> = (0..dims[0] * dims[1] * dims[2]).map(|_| rng.chance(0.05)).collect();
        let d = edt_sq(&feat, dims, sp);
        let pts: Vec<[usize; 3]> = (0..feat.len())
            .filter(|i| feat[*i])
            .map(|i| [i % 7, (i / 7) % 6, i / 42])
            .collect();
        for (idx, got) in d.iter().enumerate() {
            let q = [idx % 7, (idx / 7) % 6, idx / 42];
            let want = pts
                .iter()
                .map(|p| {
                    (0..3)
                        .map(|a| ((p[a] as f64 - q[a] as f64) * sp[a]).powi(2))
                        .sum::<f64>()
                })
                .fold(FAR, f64::min);
            assert!((got - want).abs() < 1e-9, "{q:?}: {got} vs {want}");
        }
    }
}
