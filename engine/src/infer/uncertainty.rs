//! Uncertainty from Monte-Carlo dropout samples (METHOD.md "Baselines"): per-pixel predictive
//! entropy, BALD (mutual information) and margin, and their reduction to one score per slice
//! or volume. Entropies are in nats.

use serde::{Deserialize, Serialize};

/// Per-pixel uncertainty of `T` softmax samples.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelUncertainty {
    /// Mean probability of each class, `[classes, n]`.
    pub mean: Vec<f32>,
    /// Predictive entropy `H(mean p)` (MONAI Label's "epistemic" score), `[n]`.
    pub entropy: Vec<f32>,
    /// BALD `H(mean p) - mean H(p)`, `[n]`; 0 for a single sample.
    pub bald: Vec<f32>,
    /// Margin between the two largest mean class probabilities, `[n]` (small = uncertain).
    pub margin: Vec<f32>,
}

/// Uncertainty of `samples`: `T` softmax outputs, each `[classes, n]` (class-major).
pub fn from_samples(samples: &[Vec<f32>], classes: usize) -> PixelUncertainty {
    let n = samples.first().map_or(0, |s| s.len() / classes.max(1));
    let t = samples.len().max(1) as f32;
    let mut mean = vec![0f32; classes * n];
    let mut expected_entropy = vec![0f32; n];
    for s in samples {
        for (m, v) in mean.iter_mut().zip(s) {
            *m += v / t;
        }
        for (i, e) in expected_entropy.iter_mut().enumerate() {
            *e += entropy_of((0..classes).map(|c| s[c * n + i])) / t;
        }
    }
    let entropy: Vec<f32> = (0..n)
        .map(|i| entropy_of((0..classes).map(|c| mean[c * n + i])))
        .collect();
    let bald = entropy
        .iter()
        .zip(&expected_entropy)
        .map(|(h, e)| (h - e).max(0.0))
        .collect();
    let margin = (0..n)
        .map(|i| top_two_gap((0..classes).map(|c| mean[c * n + i])))
        .collect();
    PixelUncertainty {
        mean,
        entropy,
        bald,
        margin,
    }
}

fn entropy_of(p: impl Iterator<Item = f32>) -> f32 {
    -p.filter(|v| *v > 0.0).map(|v| v * v.ln()).sum::<f32>()
}

fn top_two_gap(p: impl Iterator<Item = f32>) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for v in p {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    if b.is_finite() {
        a - b
    } else {
        1.0
    }
}

/// How a map of pixel scores becomes one score (METHOD.md: mean, sum, max, or mean above an
/// entropy threshold).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "threshold")]
pub enum Reduction {
    /// Mean over all pixels.
    Mean,
    /// Sum over all pixels.
    Sum,
    /// Largest pixel score.
    Max,
    /// Mean over the pixels whose score exceeds the threshold (0 when none does).
    MeanAbove(f32),
}

impl Reduction {
    /// Reduces `values` (0 for an empty map).
    pub fn apply(self, values: &[f32]) -> f32 {
        if values.is_empty() {
            return 0.0;
        }
        match self {
            Reduction::Mean => values.iter().sum::<f32>() / values.len() as f32,
            Reduction::Sum => values.iter().sum(),
            Reduction::Max => values.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            Reduction::MeanAbove(t) => {
                let (s, k) = values
                    .iter()
                    .filter(|v| **v > t)
                    .fold((0f32, 0usize), |(s, k), v| (s + v, k + 1));
                if k == 0 {
                    0.0
                } else {
                    s / k as f32
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_bald_margin_by_hand() {
        // Two pixels, two classes, two samples. Pixel 0: samples agree (0.9 / 0.1) -> BALD 0.
        // Pixel 1: samples disagree (1.0 / 0.0 and 0.0 / 1.0) -> mean 0.5 / 0.5,
        // H(mean) = ln 2, mean H = 0, BALD = ln 2, margin 0.
        let s1 = vec![0.9, 1.0, 0.1, 0.0];
        let s2 = vec![0.9, 0.0, 0.1, 1.0];
        let u = from_samples(&[s1, s2], 2);
        let h0 = -(0.9f32 * 0.9f32.ln() + 0.1 * 0.1f32.ln());
        assert!((u.entropy[0] - h0).abs() < 1e-6);
        assert!(u.bald[0].abs() < 1e-6);
        assert!((u.entropy[1] - 2f32.ln()).abs() < 1e-6);
        assert!((u.bald[1] - 2f32.ln()).abs() < 1e-6);
        assert!((u.margin[0] - 0.8).abs() < 1e-6 && u.margin[1].abs() < 1e-6);
        assert_eq!(u.mean, vec![0.9, 0.5, 0.1, 0.5]);
    }

    #[test]
    fn reductions() {
        let v = [0.1, 0.5, 0.9, 0.3];
        assert!((Reduction::Mean.apply(&v) - 0.45).abs() < 1e-6);
        assert!((Reduction::Sum.apply(&v) - 1.8).abs() < 1e-6);
        assert_eq!(Reduction::Max.apply(&v), 0.9);
        assert!((Reduction::MeanAbove(0.4).apply(&v) - 0.7).abs() < 1e-6);
        assert_eq!(Reduction::MeanAbove(1.0).apply(&v), 0.0);
        assert_eq!(Reduction::Mean.apply(&[]), 0.0);
    }
}
