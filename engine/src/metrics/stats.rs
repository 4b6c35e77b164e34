//! Descriptive statistics with numpy's conventions: percentiles by linear interpolation
//! (`numpy.percentile(method="linear")`), median and IQR from it, mean and sample SD.
//!
//! Infinite values (failed cases' distances) are kept, never dropped: they sort last, and a
//! percentile that interpolates towards `+inf` is `+inf` (numpy would give `nan` when the
//! interpolation weight is 0; here weight 0 returns the lower value, as the mathematics says).

use serde::{Serialize, Serializer};

/// The `q`-th percentile (`0 <= q <= 100`) of `sorted` (ascending, no NaN), with numpy's
/// linear interpolation; `None` when `sorted` is empty.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let pos = (n - 1) as f64 * (q / 100.0);
    let lo = (pos.floor() as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let t = pos - lo as f64;
    Some(lerp(sorted[lo], sorted[hi], t))
}

/// numpy's `_lerp`: `a + (b - a) t`, computed from the nearer end for `t >= 0.5`.
pub(crate) fn lerp(a: f64, b: f64, t: f64) -> f64 {
    if t == 0.0 || a == b {
        return a;
    }
    if b.is_infinite() || a.is_infinite() {
        return if t == 1.0 { b } else { a + b };
    }
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// The `q`-th percentile of unsorted values (copied and sorted; NaN are not expected).
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile_sorted(&v, q)
}

/// Median (numpy linear).
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

/// Arithmetic mean; `+inf` when a value is; `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

/// Sample standard deviation (`ddof = 1`); `None` with fewer than two values or any infinite.
pub fn sample_sd(values: &[f64]) -> Option<f64> {
    if values.len() < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let m = mean(values)?;
    let ss: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    Some((ss / (values.len() - 1) as f64).sqrt())
}

fn ser_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    super::ser_value(&Some(*v), s)
}

/// Median [IQR] and mean ± SD of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// Values summarised.
    pub n: usize,
    /// Median (numpy linear).
    #[serde(serialize_with = "ser_f64")]
    #[schemars(schema_with = "super::defined_value_schema")]
    pub median: f64,
    /// 25th percentile.
    #[serde(serialize_with = "ser_f64")]
    #[schemars(schema_with = "super::defined_value_schema")]
    pub q1: f64,
    /// 75th percentile.
    #[serde(serialize_with = "ser_f64")]
    #[schemars(schema_with = "super::defined_value_schema")]
    pub q3: f64,
    /// Mean (`+inf` if any value is).
    #[serde(serialize_with = "ser_f64")]
    #[schemars(schema_with = "super::defined_value_schema")]
    pub mean: f64,
    /// Sample SD; `None` with fewer than two values or any infinite value.
    #[serde(serialize_with = "super::ser_value")]
    #[schemars(schema_with = "super::metric_value_schema")]
    pub sd: Option<f64>,
}

/// Summary of `values`; `None` when empty.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(Summary {
        n: v.len(),
        median: percentile_sorted(&v, 50.0)?,
        q1: percentile_sorted(&v, 25.0)?,
        q3: percentile_sorted(&v, 75.0)?,
        mean: mean(&v)?,
        sd: sample_sd(&v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from numpy 2.4.6: `np.percentile([3, 1, 4, 1, 5, 9, 2, 6], [25, 50, 75, 95])`
    /// = [1.75, 3.5, 5.25, 7.949999999999998]; `np.std(..., ddof=1)` = 2.748376143938713.
    #[test]
    fn percentiles_match_numpy() {
        let v = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        for (q, want) in [(25.0, 1.75), (50.0, 3.5), (75.0, 5.25), (95.0, 7.949999999999998)] {
            let got = percentile(&v, q).unwrap();
            assert!(got == want, "q{q}: {got} vs {want}");
        }
        let sd = sample_sd(&v).unwrap();
        assert!((sd - 2.748376143938713).abs() < 1e-12);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[2.0], 95.0), Some(2.0));
    }

    #[test]
    fn infinite_values_are_kept() {
        let v = [1.0, 2.0, f64::INFINITY];
        assert_eq!(median(&v), Some(2.0));
        assert_eq!(percentile(&v, 75.0), Some(f64::INFINITY));
        assert_eq!(mean(&v), Some(f64::INFINITY));
        assert_eq!(sample_sd(&v), None);
    }
}
