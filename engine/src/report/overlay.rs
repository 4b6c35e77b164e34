//! An axial slice with contours: the image in grey (1st-99th percentile window), enlarged by
//! whole pixels, and each mask's outline drawn on the pixel edges between its inside and its
//! outside, so a contour is exactly where the mask's edge is.

use super::canvas::{Canvas, Rgb};
use crate::metrics::stats::percentile;

/// One outlined mask: a slice of `width × height` booleans.
pub struct Outline<'a> {
    pub mask: &'a [bool],
    pub colour: Rgb,
}

/// The enlargement that makes a slice about 720 pixels across (at least 1): shown at half
/// that on the page, printable at full size.
pub fn zoom(width: usize, height: usize) -> usize {
    (720 / width.max(height).max(1)).max(1)
}

/// Draws `image` (a `width × height` slice, `i` fastest) with `outlines` over it, in order
/// (later ones on top), each pixel `zoom(..)` × that on screen.
pub fn overlay(image: &[f32], width: usize, height: usize, outlines: &[Outline<'_>]) -> Canvas {
    let z = zoom(width, height);
    let mut c = Canvas::new(width * z, height * z);
    let finite: Vec<f64> = image.iter().filter(|v| v.is_finite()).map(|v| *v as f64).collect();
    let (lo, hi) = (
        percentile(&finite, 1.0).unwrap_or(0.0),
        percentile(&finite, 99.0).unwrap_or(1.0),
    );
    for j in 0..height {
        for i in 0..width {
            let v = ((image[j * width + i] as f64 - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0);
            let g = (v * 255.0).round() as u8;
            c.rect((i * z) as i64, (j * z) as i64, z as i64, z as i64, [g, g, g]);
        }
    }
    let t = (z as i64 / 5).clamp(1, 4);
    for o in outlines {
        let inside = |i: i64, j: i64| {
            i >= 0 && j >= 0 && (i as usize) < width && (j as usize) < height && o.mask[j as usize * width + i as usize]
        };
        for j in 0..height as i64 {
            for i in 0..width as i64 {
                if !inside(i, j) {
                    continue;
                }
                let (x, y, zz) = (i * z as i64, j * z as i64, z as i64);
                // The edge with each outside neighbour, drawn on the inside of the edge.
                if !inside(i - 1, j) {
                    c.rect(x, y, t, zz, o.colour);
                }
                if !inside(i + 1, j) {
                    c.rect(x + zz - t, y, t, zz, o.colour);
                }
                if !inside(i, j - 1) {
                    c.rect(x, y, zz, t, o.colour);
                }
                if !inside(i, j + 1) {
                    c.rect(x, y + zz - t, zz, t, o.colour);
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contours_lie_on_the_masks_edges_and_nowhere_else() {
        // A 3 × 2 block in a 6 × 5 slice.
        let (w, h) = (6, 5);
        let mask: Vec<bool> = (0..w * h)
            .map(|n| (1..4).contains(&(n % w)) && (1..3).contains(&(n / w)))
            .collect();
        let image: Vec<f32> = (0..w * h).map(|n| n as f32).collect();
        let red = [255, 0, 0];
        let c = overlay(
            &image,
            w,
            h,
            &[Outline {
                mask: &mask,
                colour: red,
            }],
        );
        let z = zoom(w, h);
        assert_eq!((c.width, c.height), (w * z, h * z));
        for y in 0..c.height {
            for x in 0..c.width {
                let (i, j) = (x / z, y / z);
                let inside = mask[j * w + i];
                let (dx, dy) = (x % z, y % z);
                let t = (z / 5).clamp(1, 4);
                let near_edge = |at_low: bool, at_high: bool, d: usize| (at_low && d < t) || (at_high && d >= z - t);
                let on_edge = inside && (near_edge(i == 1, i == 3, dx) || near_edge(j == 1, j == 2, dy));
                assert_eq!(c.get(x, y) == red, on_edge, "pixel ({x}, {y}) of voxel ({i}, {j})");
            }
        }
    }
}
