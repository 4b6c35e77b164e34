//! K-means with k-means++ seeding (L2), for the STDR source reference points (METHOD.md
//! step 5) and the UGTST query. Deterministic per seed.

use crate::rng::Rng;

/// The result of [`kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    /// `k` centroids (fewer when there are fewer distinct points).
    pub centroids: Vec<Vec<f32>>,
    /// The centroid index of each point.
    pub assignment: Vec<usize>,
}

/// Clusters `points` (all the same length) into at most `k` groups with `iterations` Lloyd
/// steps after k-means++ seeding.
pub fn kmeans(points: &[Vec<f32>], k: usize, iterations: usize, seed: u64) -> Clusters {
    let mut rng = Rng::new(seed);
    let mut centroids = seed_plus_plus(points, k, &mut rng);
    let mut assignment = vec![0; points.len()];
    for _ in 0..iterations {
        for (a, p) in assignment.iter_mut().zip(points) {
            *a = nearest(p, &centroids).0;
        }
        let mut moved = false;
        for (c, centroid) in centroids.iter_mut().enumerate() {
            let members: Vec<&Vec<f32>> = points
                .iter()
                .zip(&assignment)
                .filter(|(_, a)| **a == c)
                .map(|(p, _)| p)
                .collect();
            if members.is_empty() {
                continue; // an empty cluster keeps its centroid
            }
            let mean: Vec<f32> = (0..centroid.len())
                .map(|j| (members.iter().map(|m| m[j] as f64).sum::<f64>() / members.len() as f64) as f32)
                .collect();
            moved |= mean != *centroid;
            *centroid = mean;
        }
        if !moved {
            break;
        }
    }
    for (a, p) in assignment.iter_mut().zip(points) {
        *a = nearest(p, &centroids).0;
    }
    Clusters { centroids, assignment }
}

/// Squared L2 distance.
pub fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

/// Index of and squared distance to the nearest of `centres` (first on ties).
pub fn nearest(p: &[f32], centres: &[Vec<f32>]) -> (usize, f64) {
    centres.iter().map(|c| dist2(p, c)).enumerate().fold(
        (0, f64::INFINITY),
        |best, (i, d)| if d < best.1 { (i, d) } else { best },
    )
}

fn seed_plus_plus(points: &[Vec<f32>], k: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
    let mut centroids: Vec<Vec<f32>> = Vec::new();
    if points.is_empty() || k == 0 {
        return centroids;
    }
    centroids.push(points[rng.below(points.len())].clone());
    while centroids.len() < k {
        let d: Vec<f64> = points.iter().map(|p| nearest(p, &centroids).1).collect();
        let total: f64 = d.iter().sum();
        if total <= 0.0 {
            break; // every point coincides with a centroid: fewer distinct points than k
        }
        let mut target = rng.f64() * total;
        let mut pick = d.len() - 1;
        for (i, di) in d.iter().enumerate() {
            if target < *di {
                pick = i;
                break;
            }
            target -= di;
        }
        centroids.push(points[pick].clone());
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_well_separated_groups_deterministically() {
        let mut points = Vec::new();
        for c in [[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0]] {
            for d in [[0.1f32, 0.0], [-0.1, 0.0], [0.0, 0.1], [0.0, -0.1]] {
                points.push(vec![c[0] + d[0], c[1] + d[1]]);
            }
        }
        let a = kmeans(&points, 3, 20, 7);
        assert_eq!(a, kmeans(&points, 3, 20, 7));
        for g in 0..3 {
            let first = a.assignment[g * 4];
            assert!(a.assignment[g * 4..g * 4 + 4].iter().all(|x| *x == first));
        }
        let mut centroids = a.centroids.clone();
        centroids.sort_by(|x, y| x.partial_cmp(y).unwrap());
        let want = [[0.0, 0.0], [0.0, 10.0], [10.0, 0.0]];
        for (c, w) in centroids.iter().zip(want) {
            assert!(
                (c[0] - w[0]).abs() < 1e-5 && (c[1] - w[1]).abs() < 1e-5,
                "{centroids:?}"
            );
        }
    }

    #[test]
    fn fewer_distinct_points_than_k() {
        let points = vec![vec![1.0f32], vec![1.0], vec![1.0]];
        let c = kmeans(&points, 5, 10, 1);
        assert_eq!(c.centroids, vec![vec![1.0]]);
        assert!(kmeans(&[], 3, 10, 1).centroids.is_empty());
    }
}
