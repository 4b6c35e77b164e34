//! The STDR slice descriptor (METHOD.md step 4), from one forward pass's last decoder feature
//! map `F` and one softmax channel `P`.
//!
//! The descriptor is a grid of cells over the slice: the reference code max-pools its
//! 256 × 256 map with kernel 16, a 16 × 16 grid of 256 values, each cell 1/16 of the field of
//! view. delinea keeps the grid, not the kernel, fixed: the kernel is the slice size divided by
//! the grid, so a 64 × 64 slice gets the same 16 × 16 grid (kernel 4) as the paper's.

use serde::{Deserialize, Serialize};

/// Descriptor parameters (defaults: METHOD.md step 4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DescriptorConfig {
    /// Softmax channel used as `P` (0 = background, as the reference code). 0.
    pub channel: usize,
    /// Cells per side of the max-pooling grid: `grid × grid` values, each cell
    /// `slice size / grid` pixels wide (the slice size must be a multiple). 16, the paper's
    /// 16 × 16 at any slice size.
    pub grid: usize,
    /// Fewer pixels with `P > 0` than this gives an all-zero descriptor. 10.
    pub min_pixels: usize,
    /// Compute the descriptors of augmented slices (the source training's augmentation, drawn
    /// per slice from the pool's seed), as the reference code does; false: the slices as they
    /// are (METHOD.md step 5). false.
    pub augment: bool,
    /// Read only to refuse it: the max-pooling kernel of delinea before the grid (kernel 16 at
    /// any slice size). A file that gives it is refused with the `grid` to write instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<usize>,
}

impl Default for DescriptorConfig {
    fn default() -> Self {
        DescriptorConfig {
            channel: 0,
            grid: 16,
            min_pixels: 10,
            augment: false,
            pool: None,
        }
    }
}

impl DescriptorConfig {
    /// Values per descriptor: `grid²`.
    pub fn len(&self) -> usize {
        self.grid * self.grid
    }

    /// Always false: a descriptor has at least one cell once [`DescriptorConfig::kernel`]
    /// accepted the config.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The max-pooling kernel (and stride) for `slice_size` × `slice_size` slices, or why this
    /// config cannot describe them: a grid of 0, a slice size that is not a multiple of the grid,
    /// or the old `pool` field (with the grid that gives its cells at this slice size).
    pub fn kernel(&self, slice_size: usize) -> Result<usize, String> {
        if let Some(pool) = self.pool {
            let instead = match pool {
                p if p > 0 && slice_size.is_multiple_of(p) => format!("\"grid\": {}", slice_size / p),
                _ => "\"grid\": 16 (the paper's)".into(),
            };
            return Err(format!(
                "`pool` ({pool}, a max-pooling kernel) is no longer read: the descriptor is a grid of \
                 cells, kernel = slice size / grid; for the cells pool {pool} gave at {slice_size} × \
                 {slice_size} slices write {instead} instead, or leave both out for the paper's 16 × 16"
            ));
        }
        match self.grid {
            0 => Err("`grid` must be at least 1".into()),
            g if !slice_size.is_multiple_of(g) || slice_size < g => Err(format!(
                "a {g} × {g} grid does not divide {slice_size} × {slice_size} slices: the slice size \
                 must be a multiple of `grid` (kernel = slice size / grid)"
            )),
            g => Ok(slice_size / g),
        }
    }
}

/// The descriptor of one slice: `features` is `F`, `[channels, h, w]`; `prob` is `P`,
/// `[h, w]`. `S = mean_c(F_c * P)`, `v = maxpool(S, kernel, kernel)` with kernel
/// `h / cfg.grid`, flattened row-major (`grid²` values), divided by `mean(P)`; all zeros when
/// `mean(P) = 0` or fewer than `min_pixels` pixels have `P > 0`. Cells beyond the slice (when
/// `h` is not a multiple of the grid, which [`DescriptorConfig::kernel`] refuses) stay 0.
pub fn descriptor(features: &[f32], prob: &[f32], h: usize, w: usize, cfg: &DescriptorConfig) -> Vec<f32> {
    let grid = cfg.grid.max(1);
    let (kh, kw) = ((h / grid).max(1), (w / grid).max(1));
    let mut out = vec![0f32; grid * grid];
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
        let (by, bx) = (o / grid * kh, o % grid * kw);
        if by >= h || bx >= w {
            continue;
        }
        let mut m = f32::NEG_INFINITY;
        for y in by..(by + kh).min(h) {
            for x in bx..(bx + kw).min(w) {
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

    fn grid(grid: usize) -> DescriptorConfig {
        DescriptorConfig {
            grid,
            ..Default::default()
        }
    }

    #[test]
    fn descriptor_by_hand() {
        // 2 channels, 4 x 4, a 2 x 2 grid (kernel 2): S = mean_c(F * P).
        let (h, w) = (4, 4);
        let f0: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let f1 = vec![1.0f32; 16];
        let features = [f0, f1].concat();
        let prob = vec![0.5f32; 16];
        let d = descriptor(&features, &prob, h, w, &grid(2));
        // S[y][x] = (v * 0.5 + 0.5) / 2; max of each 2x2 block: v = 5, 7, 13, 15;
        // divided by mean(P) = 0.5: (v * 0.5 + 0.5) / 2 / 0.5 = (v + 1) / 2.
        assert_eq!(d, vec![3.0, 4.0, 7.0, 8.0]);
    }

    #[test]
    fn the_default_grid_has_256_values_at_every_slice_size() {
        for size in [64, 96, 128, 256] {
            let cfg = DescriptorConfig::default();
            assert_eq!(cfg.kernel(size), Ok(size / 16), "{size}");
            let features: Vec<f32> = (0..2 * size * size).map(|v| (v % 7) as f32).collect();
            let prob = vec![0.5f32; size * size];
            let d = descriptor(&features, &prob, size, size, &cfg);
            assert_eq!(d.len(), 256, "{size} x {size}");
            assert!(d.iter().all(|v| *v > 0.0), "{size}: every cell covers pixels");
        }
    }

    #[test]
    fn slice_sizes_the_grid_does_not_divide_and_the_old_kernel_are_refused() {
        let e = grid(16).kernel(100).unwrap_err();
        assert!(e.contains("16 × 16 grid does not divide 100 × 100"), "{e}");
        assert!(grid(0).kernel(64).unwrap_err().contains("at least 1"));
        assert!(grid(16).kernel(8).is_err(), "slices smaller than the grid");
        let old: DescriptorConfig = serde_json::from_str(r#"{"channel": 0, "pool": 16}"#).unwrap();
        let e = old.kernel(64).unwrap_err();
        assert!(e.contains("\"grid\": 4"), "the grid pool 16 gave at 64: {e}");
        assert!(old.kernel(100).unwrap_err().contains("\"grid\": 16"));
        let written = serde_json::to_string(&DescriptorConfig::default()).unwrap();
        assert!(!written.contains("pool"), "{written}");
    }

    #[test]
    fn too_few_positive_pixels_give_zeros() {
        let mut prob = vec![0f32; 16];
        prob[..9].iter_mut().for_each(|p| *p = 1.0);
        let d = descriptor(&[1.0; 16], &prob, 4, 4, &grid(2));
        assert_eq!(d, vec![0.0; 4]);
        let d = descriptor(
            &[1.0; 16],
            &[0.0; 16],
            4,
            4,
            &DescriptorConfig {
                min_pixels: 0,
                ..grid(2)
            },
        );
        assert_eq!(d, vec![0.0; 4], "mean(P) = 0");
    }
}
