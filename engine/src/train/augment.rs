//! Training-time augmentation of one axial slice and its label (METHOD.md step 3): rot90 +
//! flip, rotation in [-20°, 20°), Gaussian noise σ 0.1 clipped to ±0.2, each with p = 0.5.
//!
//! Slices are square, `[size, size]` row-major (rows along `j`, columns along `i`; see
//! `preprocess`). Labels are always resampled by nearest neighbour. Where the reference code
//! (scipy `ndimage.rotate`, `cval=0`) fills the corners uncovered by a rotation with 0, delinea
//! fills images with the slice's minimum: after z-scoring, 0 is mid-grey tissue, not background.

use serde::{Deserialize, Serialize};

use crate::preprocess::Interp;
use crate::rng::Rng;

/// Augmentation parameters (defaults: METHOD.md step 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Augmentation {
    /// Probability of a random rot90 (k = 0..3) followed by a flip along a random axis. 0.5.
    pub p_rot_flip: f64,
    /// Probability of a rotation by a uniform angle in [-max_angle, max_angle). 0.5.
    pub p_rotate: f64,
    /// Largest rotation, degrees. 20.
    pub max_angle_deg: f64,
    /// Probability of additive Gaussian noise. 0.5.
    pub p_noise: f64,
    /// Noise standard deviation (z-scored intensity units). 0.1.
    pub noise_sigma: f64,
    /// Noise is clipped to ±this. 0.2.
    pub noise_clip: f64,
    /// Interpolation of the image under rotation (the reference uses nearest). Linear.
    pub image_interp: Interp,
}

impl Default for Augmentation {
    fn default() -> Self {
        Augmentation {
            p_rot_flip: 0.5,
            p_rotate: 0.5,
            max_angle_deg: 20.0,
            p_noise: 0.5,
            noise_sigma: 0.1,
            noise_clip: 0.2,
            image_interp: Interp::Linear,
        }
    }
}

impl Augmentation {
    /// No augmentation at all (for descriptors and validation).
    pub fn none() -> Self {
        Augmentation {
            p_rot_flip: 0.0,
            p_rotate: 0.0,
            p_noise: 0.0,
            ..Default::default()
        }
    }

    /// Augments one `size` × `size` slice and its label in place.
    pub fn apply(&self, image: &mut [f32], label: &mut [u8], size: usize, rng: &mut Rng) {
        if rng.chance(self.p_rot_flip) {
            let k = rng.below(4);
            let axis = rng.below(2);
            rot90_flip(image, size, k, axis);
            rot90_flip(label, size, k, axis);
        }
        if rng.chance(self.p_rotate) {
            let angle = rng.range(-self.max_angle_deg, self.max_angle_deg).to_radians();
            let fill = image.iter().copied().fold(f32::INFINITY, f32::min);
            rotate(image, size, angle, self.image_interp, fill);
            rotate(label, size, angle, Interp::Nearest, 0);
        }
        if rng.chance(self.p_noise) {
            let (s, c) = (self.noise_sigma, self.noise_clip);
            image
                .iter_mut()
                .for_each(|v| *v += (s * rng.normal()).clamp(-c, c) as f32);
        }
    }
}

/// numpy's `np.flip(np.rot90(x, k), axis)` on a square `[size, size]` array.
pub fn rot90_flip<T: Copy>(data: &mut [T], size: usize, k: usize, axis: usize) {
    let src = data.to_vec();
    let n = size - 1;
    for r in 0..size {
        for c in 0..size {
            // Output (r, c) after the flip comes from (r', c') of the rotated array.
            let (r1, c1) = if axis == 0 { (n - r, c) } else { (r, n - c) };
            // np.rot90 (counter-clockwise) k times: out[r][c] = in[c][n - r] for k = 1.
            let (sr, sc) = match k % 4 {
                0 => (r1, c1),
                1 => (c1, n - r1),
                2 => (n - r1, n - c1),
                _ => (n - c1, r1),
            };
            data[r * size + c] = src[sr * size + sc];
        }
    }
}

/// Rotates a square slice by `angle` radians about its centre (pixel-centre convention);
/// pixels whose source falls outside take `fill`.
pub fn rotate<T: crate::preprocess::Sample>(data: &mut [T], size: usize, angle: f64, interp: Interp, fill: T) {
    let src = data.to_vec();
    let centre = (size as f64 - 1.0) / 2.0;
    let (s, c) = angle.sin_cos();
    let at = |r: isize, col: isize| -> T {
        if r < 0 || col < 0 || r >= size as isize || col >= size as isize {
            fill
        } else {
            src[r as usize * size + col as usize]
        }
    };
    for r in 0..size {
        for col in 0..size {
            let (y, x) = (r as f64 - centre, col as f64 - centre);
            let (sy, sx) = (c * y + s * x + centre, -s * y + c * x + centre);
            data[r * size + col] = match interp {
                Interp::Nearest => at(sy.round() as isize, sx.round() as isize),
                Interp::Linear => {
                    let (y0, x0) = (sy.floor(), sx.floor());
                    let (wy, wx) = ((sy - y0) as f32, (sx - x0) as f32);
                    let (y0, x0) = (y0 as isize, x0 as isize);
                    let top = T::mix(at(y0, x0), at(y0, x0 + 1), wx);
                    let bottom = T::mix(at(y0 + 1, x0), at(y0 + 1, x0 + 1), wx);
                    T::mix(top, bottom, wy)
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rot90_flip_matches_numpy() {
        // x = np.arange(9).reshape(3, 3)
        let x: Vec<u8> = (0..9).collect();
        let run = |k, axis| {
            let mut v = x.clone();
            rot90_flip(&mut v, 3, k, axis);
            v
        };
        // np.flip(np.rot90(x, 0), 0) = [[6,7,8],[3,4,5],[0,1,2]]
        assert_eq!(run(0, 0), vec![6, 7, 8, 3, 4, 5, 0, 1, 2]);
        // np.flip(np.rot90(x, 1), 1): rot90 = [[2,5,8],[1,4,7],[0,3,6]] -> [[8,5,2],[7,4,1],[6,3,0]]
        assert_eq!(run(1, 1), vec![8, 5, 2, 7, 4, 1, 6, 3, 0]);
        // np.flip(np.rot90(x, 2), 0): rot180 = [[8,7,6],[5,4,3],[2,1,0]] -> [[2,1,0],[5,4,3],[8,7,6]]
        assert_eq!(run(2, 0), vec![2, 1, 0, 5, 4, 3, 8, 7, 6]);
        // np.flip(np.rot90(x, 3), 1): rot270 = [[6,3,0],[7,4,1],[8,5,2]] -> [[0,3,6],[1,4,7],[2,5,8]]
        assert_eq!(run(3, 1), vec![0, 3, 6, 1, 4, 7, 2, 5, 8]);
    }

    #[test]
    fn rotation_by_zero_is_identity_and_by_90_matches_rot90() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut y = x.clone();
        rotate(&mut y, 4, 0.0, Interp::Linear, -1.0);
        assert_eq!(y, x);
        let mut a = x.clone();
        rotate(&mut a, 4, std::f64::consts::FRAC_PI_2, Interp::Nearest, -1.0);
        // A positive angle turns like np.rot90(x, 1): out[r][c] = in[c][n - r].
        let mut b = x.clone();
        rot90_flip(&mut b, 4, 1, 0);
        rot90_flip(&mut b, 4, 0, 0); // flip along axis 0 twice: no flip
        assert_eq!(a, b);
    }

    #[test]
    fn labels_stay_labels_and_noise_is_clipped() {
        let size = 32;
        let mut rng = Rng::new(3);
        let aug = Augmentation {
            p_rot_flip: 1.0,
            p_rotate: 1.0,
            p_noise: 1.0,
            ..Default::default()
        };
        for _ in 0..20 {
            let mut img = vec![1.0f32; size * size];
            let mut lab: Vec<u8> = (0..size * size)
                .map(|i| ((i / size) > 10 && (i % size) > 10) as u8 * 2)
                .collect();
            aug.apply(&mut img, &mut lab, size, &mut rng);
            assert!(lab.iter().all(|v| *v == 0 || *v == 2));
            // Rotation fills corners with the minimum (1.0), then noise within ±0.2.
            assert!(
                img.iter().all(|v| (0.8 - 1e-6..=1.2 + 1e-6).contains(v)),
                "{:?}",
                &img[..4]
            );
        }
        let none = Augmentation::none();
        let mut img = vec![0.5f32; 16];
        let mut lab = vec![1u8; 16];
        none.apply(&mut img, &mut lab, 4, &mut rng);
        assert!(img.iter().all(|v| *v == 0.5) && lab.iter().all(|v| *v == 1));
    }
}
