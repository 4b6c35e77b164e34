//! Exact Euclidean distance transform (EDT) with anisotropic spacing, evaluated at query voxels.
//!
//! Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions" (Theory of Computing
//! 8, 2012): the squared EDT is separable, so it is three 1D lower-envelope-of-parabolas passes,
//! one per axis, each exact. Pass 1 (axis `i`, contiguous) is a two-sweep nearest-feature scan;
//! pass 2 (axis `j`) runs on every line of every slice; pass 3 (axis `k`) runs only on the
//! columns `(i, j)` that hold a query voxel and is evaluated only at the queries, because the
//! metrics need distances at the other mask's surface, not everywhere.
//!
//! The squared distance is accumulated axis by axis as `((di*si)^2 + (dj*sj)^2) + (dk*sk)^2`,
//! the same order of operations as `scipy.ndimage.distance_transform_edt(sampling=...)`, so
//! the values agree with scipy to the last bit or two.
//!
//! The grid here is a box (the caller's crop). The transform is exact for every voxel of the
//! box as long as every feature voxel lies in the box: features outside it would be missed.

use rayon::prelude::*;

/// Distances in mm from each query voxel to the nearest feature voxel (`+inf` without features).
///
/// `features`: one flag per voxel of a `dims = [nx, ny, nz]` box, index `i + nx*(j + ny*k)`;
/// `spacing`: mm per voxel along `i, j, k`; `queries`: box indices. The result is in an
/// unspecified order (the metrics only pool, count and average them).
pub(crate) fn distances_at(features: &[bool], dims: [usize; 3], spacing: [f64; 3], queries: &[usize]) -> Vec<f64> {
    let [nx, ny, nz] = dims;
    let nxy = nx * ny;
    debug_assert_eq!(features.len(), nxy * nz);
    if queries.is_empty() {
        return Vec::new();
    }
    if !features.iter().any(|&f| f) {
        return vec![f64::INFINITY; queries.len()];
    }

    // Passes 1 and 2, slice by slice: squared in-plane distance to the nearest feature.
    let mut g = vec![f64::INFINITY; nxy * nz];
    g.par_chunks_mut(nxy)
        .zip(features.par_chunks(nxy))
        .for_each(|(gs, fs)| {
            let mut any_row = false;
            for (grow, frow) in gs.chunks_mut(nx).zip(fs.chunks(nx)) {
                any_row |= scan_row(frow, spacing[0], grow);
            }
            if !any_row {
                return;
            }
            let mut line = vec![0.0; ny];
            let mut out = vec![0.0; ny];
            let mut env = Envelope::with_capacity(ny);
            for i in 0..nx {
                let mut finite = false;
                for (j, l) in line.iter_mut().enumerate() {
                    *l = gs[i + nx * j];
                    finite |= l.is_finite();
                }
                if !finite {
                    continue;
                }
                env.build(&line, spacing[1]);
                env.eval_all(&line, spacing[1], &mut out);
                for (j, o) in out.iter().enumerate() {
                    gs[i + nx * j] = *o;
                }
            }
        });

    // Pass 3 on the query columns only: group the queries by column (i, j).
    let mut by_column: Vec<(usize, usize)> = queries.iter().map(|&q| (q % nxy, q / nxy)).collect();
    by_column.sort_unstable();
    let g = &g;
    by_column
        .par_chunk_by(|a, b| a.0 == b.0)
        .flat_map_iter(|group| {
            let col = group[0].0;
            let line: Vec<f64> = (0..nz).map(|k| g[col + nxy * k]).collect();
            let mut env = Envelope::with_capacity(nz);
            env.build(&line, spacing[2]);
            let mut cursor = 0;
            group
                .iter()
                .map(|&(_, k)| env.eval_sorted(&line, spacing[2], k, &mut cursor).sqrt())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One row of pass 1: squared distance `(d*w)^2` to the nearest feature on the row; `false`
/// (and the row left at `+inf`) when the row has none.
fn scan_row(features: &[bool], w: f64, out: &mut [f64]) -> bool {
    let mut last: Option<usize> = None;
    for (i, (o, &f)) in out.iter_mut().zip(features).enumerate() {
        if f {
            last = Some(i);
        }
        *o = match last {
            Some(l) => (i - l) as f64,
            None => f64::INFINITY,
        };
    }
    if last.is_none() {
        return false;
    }
    let mut next: Option<usize> = None;
    for (i, (o, &f)) in out.iter_mut().zip(features).enumerate().rev() {
        if f {
            next = Some(i);
        }
        if let Some(n) = next {
            *o = o.min((n - i) as f64);
        }
        let d = *o * w;
        *o = d * d;
    }
    true
}

/// The lower envelope of the parabolas `f(q) + (w*(p - q))^2` over the finite samples of `f`.
struct Envelope {
    /// Sample index of each parabola of the envelope.
    v: Vec<usize>,
    /// Boundaries: parabola `n` is lowest on `[z[n], z[n+1]]`.
    z: Vec<f64>,
}

impl Envelope {
    fn with_capacity(n: usize) -> Envelope {
        Envelope {
            v: Vec::with_capacity(n),
            z: Vec::with_capacity(n + 1),
        }
    }

    /// Builds the envelope of `f` (at least one finite value expected).
    fn build(&mut self, f: &[f64], w: f64) {
        self.v.clear();
        self.z.clear();
        let w2 = w * w;
        for (q, &fq) in f.iter().enumerate() {
            if !fq.is_finite() {
                continue;
            }
            let qf = q as f64;
            let hq = fq + w2 * qf * qf;
            let mut s = f64::NEG_INFINITY;
            while let Some(&r) = self.v.last() {
                let rf = r as f64;
                s = (hq - (f[r] + w2 * rf * rf)) / (2.0 * w2 * (qf - rf));
                if s <= self.z[self.z.len() - 1] {
                    self.v.pop();
                    self.z.pop();
                    s = f64::NEG_INFINITY;
                } else {
                    break;
                }
            }
            self.v.push(q);
            self.z.push(s);
        }
        self.z.push(f64::INFINITY);
    }

    /// The envelope at every sample `p` of `out`.
    fn eval_all(&self, f: &[f64], w: f64, out: &mut [f64]) {
        let mut n = 0;
        for (p, o) in out.iter_mut().enumerate() {
            let pf = p as f64;
            while self.z[n + 1] < pf {
                n += 1;
            }
            let q = self.v[n];
            let d = (pf - q as f64) * w;
            *o = f[q] + d * d;
        }
    }

    /// The envelope at `p`, for increasing `p` across calls sharing `cursor`.
    fn eval_sorted(&self, f: &[f64], w: f64, p: usize, cursor: &mut usize) -> f64 {
        if self.v.is_empty() {
            return f64::INFINITY;
        }
        let pf = p as f64;
        while self.z[*cursor + 1] < pf {
            *cursor += 1;
        }
        let q = self.v[*cursor];
        let d = (pf - q as f64) * w;
        f[q] + d * d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: the minimum over features of the anisotropic Euclidean distance.
    fn brute(features: &[bool], dims: [usize; 3], s: [f64; 3], q: usize) -> f64 {
        let [nx, ny, _] = dims;
        let (qi, qj, qk) = (q % nx, (q / nx) % ny, q / (nx * ny));
        let mut best = f64::INFINITY;
        for (n, &f) in features.iter().enumerate() {
            if f {
                let (i, j, k) = (n % nx, (n / nx) % ny, n / (nx * ny));
                let di = (qi as f64 - i as f64) * s[0];
                let dj = (qj as f64 - j as f64) * s[1];
                let dk = (qk as f64 - k as f64) * s[2];
                best = best.min(((di * di + dj * dj) + dk * dk).sqrt());
            }
        }
        best
    }

    #[test]
    fn matches_brute_force_on_scattered_features() {
        let dims = [13, 9, 7];
        let s = [0.5, 0.7, 3.0];
        let n = dims[0] * dims[1] * dims[2];
        // A fixed pseudo-random pattern (LCG), about 3 % features.
        let mut state = 12345u64;
        let features: Vec<bool> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33).is_multiple_of(33)
            })
            .collect();
        assert!(features.iter().any(|&f| f));
        let queries: Vec<usize> = (0..n).collect();
        let mut got = distances_at(&features, dims, s, &queries);
        let mut want: Vec<f64> = queries.iter().map(|&q| brute(&features, dims, s, q)).collect();
        got.sort_by(f64::total_cmp);
        want.sort_by(f64::total_cmp);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-12 * w.max(1.0), "{g} vs {w}");
        }
    }

    #[test]
    fn no_features_is_infinite() {
        let d = distances_at(&[false; 8], [2, 2, 2], [1.0; 3], &[0, 7]);
        assert_eq!(d, vec![f64::INFINITY; 2]);
    }
}
