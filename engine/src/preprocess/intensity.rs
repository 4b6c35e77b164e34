//! Intensity normalisation (METHOD.md step 1): upper clip at a cumulative-histogram quantile,
//! then z-score over the whole volume.

/// The value where the cumulative histogram of `data` first reaches `q` (0 < q ≤ 1): the
/// smallest `v` such that at least `ceil(q * n)` values are ≤ `v`.
pub fn quantile_upper(data: &[f32], q: f64) -> f32 {
    if data.is_empty() {
        return 0.0;
    }
    let n = data.len();
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n) - 1;
    let mut copy = data.to_vec();
    let (_, v, _) = copy.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
    *v
}

/// Clips `data` above its `q` quantile (see [`quantile_upper`]); the lower bound is the
/// minimum, so nothing is clipped below. Returns the clip value.
pub fn clip_upper(data: &mut [f32], q: f64) -> f32 {
    let hi = quantile_upper(data, q);
    data.iter_mut().for_each(|v| *v = v.min(hi));
    hi
}

/// Z-scores `data` in place over all voxels (population standard deviation, computed in f64).
/// A constant volume becomes all zeros. Returns `(mean, std)` before normalisation.
pub fn zscore(data: &mut [f32]) -> (f64, f64) {
    let n = data.len().max(1) as f64;
    let mean = data.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = data.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt();
    let scale = if std > 0.0 { 1.0 / std } else { 0.0 };
    data.iter_mut().for_each(|v| *v = ((*v as f64 - mean) * scale) as f32);
    (mean, std)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_the_cumulative_histogram_crossing() {
        let data: Vec<f32> = (1..=100).map(|v| v as f32).collect();
        // 99 of 100 values are <= 99: the histogram reaches 0.99 at 99.
        assert_eq!(quantile_upper(&data, 0.99), 99.0);
        assert_eq!(quantile_upper(&data, 1.0), 100.0);
        assert_eq!(quantile_upper(&data, 0.5), 50.0);
        assert_eq!(quantile_upper(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn clip_then_zscore() {
        let mut data: Vec<f32> = (0..1000).map(|v| v as f32).collect();
        data[999] = 1e6; // an outlier
        let hi = clip_upper(&mut data, 0.99);
        assert_eq!(hi, 989.0);
        assert_eq!(data[999], 989.0);
        assert_eq!(data[0], 0.0, "no lower clipping");
        let (mean, std) = zscore(&mut data);
        assert!(mean > 0.0 && std > 0.0);
        let m: f64 = data.iter().map(|v| *v as f64).sum::<f64>() / 1000.0;
        let s: f64 = (data.iter().map(|v| (*v as f64 - m).powi(2)).sum::<f64>() / 1000.0).sqrt();
        assert!(m.abs() < 1e-6 && (s - 1.0).abs() < 1e-6);
    }

    #[test]
    fn constant_volume_becomes_zero() {
        let mut data = vec![5.0f32; 10];
        zscore(&mut data);
        assert!(data.iter().all(|v| *v == 0.0));
    }
}
