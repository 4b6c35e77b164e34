//! Separable resizing of voxel grids along one axis at a time: linear for intensities and
//! probabilities, nearest for labels.
//!
//! Coordinates follow pixel centres without corner alignment (PyTorch `align_corners=False`,
//! scikit-image `resize`): output index `o` samples input coordinate
//! `(o + 0.5) * n_in / n_out - 0.5`. Nearest resizing to a grid at least as fine and back is
//! the identity.

/// How values are interpolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interp {
    /// Nearest neighbour (labels; the reference code for images too).
    Nearest,
    /// Linear along each axis (bilinear in-plane, trilinear in 3D).
    Linear,
}

/// Resizes `data` laid out on `dims` (axis 0 fastest) to `new_n` samples along `axis`.
pub fn resize_axis<T: Sample>(data: &[T], dims: [usize; 3], axis: usize, new_n: usize, interp: Interp) -> Vec<T> {
    let n = dims[axis];
    let stride: usize = dims[..axis].iter().product();
    let outer: usize = dims[axis + 1..].iter().product();
    let taps: Vec<(usize, usize, f32)> = (0..new_n).map(|o| tap(o, n, new_n, interp)).collect();
    let mut out = Vec::with_capacity(stride * new_n * outer);
    for block in 0..outer {
        let base = block * n * stride;
        for (lo, hi, w) in &taps {
            for s in 0..stride {
                let a = data[base + lo * stride + s];
                let b = data[base + hi * stride + s];
                out.push(T::mix(a, b, *w));
            }
        }
    }
    out
}

/// Resizes along every axis whose size changes (x, then y, then z).
pub fn resize3<T: Sample>(data: &[T], dims: [usize; 3], new_dims: [usize; 3], interp: Interp) -> Vec<T> {
    let mut cur = data.to_vec();
    let mut d = dims;
    for axis in 0..3 {
        if new_dims[axis] != d[axis] {
            cur = resize_axis(&cur, d, axis, new_dims[axis], interp);
            d[axis] = new_dims[axis];
        }
    }
    cur
}

/// Input samples `(lo, hi)` and weight of `hi` for output index `o`.
fn tap(o: usize, n: usize, new_n: usize, interp: Interp) -> (usize, usize, f32) {
    let x = (o as f64 + 0.5) * n as f64 / new_n as f64 - 0.5;
    match interp {
        Interp::Nearest => {
            let i = ((o as f64 + 0.5) * n as f64 / new_n as f64).floor() as usize;
            let i = i.min(n - 1);
            (i, i, 0.0)
        }
        Interp::Linear => {
            let x = x.clamp(0.0, (n - 1) as f64);
            let lo = x.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            (lo, hi, (x - lo as f64) as f32)
        }
    }
}

/// A voxel type that can be interpolated.
pub trait Sample: Copy {
    /// `a` and `b` mixed with weight `w` on `b`.
    fn mix(a: Self, b: Self, w: f32) -> Self;
}

impl Sample for f32 {
    #[inline]
    fn mix(a: f32, b: f32, w: f32) -> f32 {
        if w == 0.0 {
            a
        } else {
            a + (b - a) * w
        }
    }
}

impl Sample for u8 {
    /// Labels are never blended: the nearer of the two.
    #[inline]
    fn mix(a: u8, b: u8, w: f32) -> u8 {
        if w < 0.5 {
            a
        } else {
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_up_then_down_is_identity() {
        for (n, big) in [(5usize, 8usize), (7, 256), (100, 256), (9, 9), (3, 10)] {
            let src: Vec<u8> = (0..n).map(|v| (v * 37 % 251) as u8).collect();
            let up = resize_axis(&src, [n, 1, 1], 0, big, Interp::Nearest);
            let down = resize_axis(&up, [big, 1, 1], 0, n, Interp::Nearest);
            assert_eq!(down, src, "{n} -> {big} -> {n}");
        }
    }

    #[test]
    fn linear_matches_half_pixel_convention() {
        // PyTorch F.interpolate([0, 10], size=4, mode='linear', align_corners=False)
        // gives [0, 2.5, 7.5, 10].
        let up = resize_axis(&[0.0f32, 10.0], [2, 1, 1], 0, 4, Interp::Linear);
        assert_eq!(up, vec![0.0, 2.5, 7.5, 10.0]);
        // Downsampling by 2 averages neighbours: [0, 1, 2, 3] -> [0.5, 2.5].
        let down = resize_axis(&[0.0f32, 1.0, 2.0, 3.0], [4, 1, 1], 0, 2, Interp::Linear);
        assert_eq!(down, vec![0.5, 2.5]);
    }

    #[test]
    fn resizes_the_requested_axis_only() {
        // dims [2, 3, 1]: y resized 3 -> 6 keeps x rows intact.
        let data: Vec<f32> = vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0];
        let out = resize_axis(&data, [2, 3, 1], 1, 6, Interp::Nearest);
        assert_eq!(
            out,
            vec![0.0, 1.0, 0.0, 1.0, 10.0, 11.0, 10.0, 11.0, 20.0, 21.0, 20.0, 21.0]
        );
    }
}
