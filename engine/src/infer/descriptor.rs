//! The STDR slice descriptor (METHOD.md step 4), from one forward pass's last decoder feature
//! map `F` and one softmax channel `P`.

use serde::{Deserialize, Serialize};

/// Descriptor parameters (defaults: METHOD.md step 4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DescriptorConfig {
    /// Softmax channel used as `P` (0 = background, as the reference code). 0.
    pub channel: usize,
    /// Max-pooling kernel and stride. 16.
    pub pool: usize,
    /// Fewer pixels with `P > 0` than this gives an all-zero descriptor. 10.
    pub min_pixels: usize,
}

impl Default for DescriptorConfig {
    fn default() -> Self {
        DescriptorConfig {
            channel: 0,
            pool: 16,
            min_pixels: 10,
        }
    }
}

/// The descriptor of one slice: `features` is `F`, `[channels, h, w]`; `prob` is `P`,
/// `[h, w]`. `S = mean_c(F_c * P)`, `v = maxpool(S, pool, pool)` flattened row-major
/// (`(h / pool) * (w / pool)` values) divided by `mean(P)`; all zeros when `mean(P) = 0` or
/// fewer than `min_pixels` pixels have `P > 0`.
pub fn descriptor(features: &[f32], prob: &[f32], h: usize, w: usize, cfg: &DescriptorConfig) -> Vec<f32> {
    let (ph, pw) = (h / cfg.pool.max(1), w / cfg.pool.max(1));
    let mut out = vec![0f32; ph * pw];
    let n = h * w;
    let mean_p = prob.iter().map(|v| *v as f64).sum::<f64>() / n.max(1) as f64;
    let positive = prob.iter().filter(|v| **v > 0.0).count();
    if mean_p == 0.0 || positive < cfg.min_pixels {
        return out;
    }
    let channels = features.len() / n.max(1);
    let mut s = vec![0f32; n];
    for c in 0..channels {
        for ((acc, f), p) in s.iter_mut().zip(&features[c * n..(c + 1) * n]).zip(prob) {
            *acc += f * p;
        }
    }
    s.iter_mut().for_each(|v| *v /= channels as f32);
    for (o, cell) in out.iter_mut().enumerate() {
        let (by, bx) = (o / pw * cfg.pool, o % pw * cfg.pool);
        let mut m = f32::NEG_INFINITY;
        for y in by..by + cfg.pool {
            for x in bx..bx + cfg.pool {
                m = m.max(s[y * w + x]);
            }
        }
        *cell = (m as f64 / mean_p) as f32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_by_hand() {
        // 2 channels, 4 x 4, pool 2: S = mean_c(F * P).
        let (h, w) = (4, 4);
        let f0: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let f1 = vec![1.0f32; 16];
        let features = [f0, f1].concat();
        let prob = vec![0.5f32; 16];
        let cfg = DescriptorConfig {
            channel: 0,
            pool: 2,
            min_pixels: 10,
        };
        let d = descriptor(&features, &prob, h, w, &cfg);
        // S[y][x] = (v * 0.5 + 0.5) / 2; max of each 2x2 block: v = 5, 7, 13, 15;
        // divided by mean(P) = 0.5: (v * 0.5 + 0.5) / 2 / 0.5 = (v + 1) / 2.
        assert_eq!(d, vec![3.0, 4.0, 7.0, 8.0]);
    }

    #[test]
    fn too_few_positive_pixels_give_zeros() {
        let mut prob = vec![0f32; 16];
        prob[..9].iter_mut().for_each(|p| *p = 1.0);
        let d = descriptor(
            &[1.0; 16],
            &prob,
            4,
            4,
            &DescriptorConfig {
                pool: 2,
                ..Default::default()
            },
        );
        assert_eq!(d, vec![0.0; 4]);
        let d = descriptor(
            &[1.0; 16],
            &[0.0; 16],
            4,
            4,
            &DescriptorConfig {
                pool: 2,
                min_pixels: 0,
                ..Default::default()
            },
        );
        assert_eq!(d, vec![0.0; 4], "mean(P) = 0");
    }
}
