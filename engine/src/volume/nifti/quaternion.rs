//! The NIfTI-1 qform: quaternion ⇄ affine, as `nifti_quatern_to_mat44` and
//! `nifti_mat44_to_quatern` in the NIfTI reference library (nifti1_io.c).

use crate::volume::Affine;

/// Quaternion parameters of a qform: `b, c, d`, the offsets, and `qfac` (±1, `pixdim[0]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Qform {
    pub b: f64,
    pub c: f64,
    pub d: f64,
    pub offset: [f64; 3],
    pub qfac: f64,
}

/// The affine of a qform with voxel sizes `spacing` (mm).
pub fn to_affine(q: &Qform, spacing: [f64; 3]) -> Affine {
    let (mut b, mut c, mut d) = (q.b, q.c, q.d);
    let mut a = 1.0 - (b * b + c * c + d * d);
    if a < 1e-7 {
        // Special case from nifti1_io.c: a 180° rotation, renormalise (b, c, d).
        let n = 1.0 / (b * b + c * c + d * d).sqrt();
        b *= n;
        c *= n;
        d *= n;
        a = 0.0;
    } else {
        a = a.sqrt();
    }
    let [xd, yd, zd] = spacing;
    let zd = zd * if q.qfac < 0.0 { -1.0 } else { 1.0 };
    [
        [
            (a * a + b * b - c * c - d * d) * xd,
            2.0 * (b * c - a * d) * yd,
            2.0 * (b * d + a * c) * zd,
            q.offset[0],
        ],
        [
            2.0 * (b * c + a * d) * xd,
            (a * a + c * c - b * b - d * d) * yd,
            2.0 * (c * d - a * b) * zd,
            q.offset[1],
        ],
        [
            2.0 * (b * d - a * c) * xd,
            2.0 * (c * d + a * b) * yd,
            (a * a + d * d - c * c - b * b) * zd,
            q.offset[2],
        ],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// The qform of `affine`, or `None` when its linear part is not a rotation (possibly with a
/// flip) times a diagonal scaling — a sheared affine can only live in the sform.
pub fn from_affine(affine: &Affine) -> Option<Qform> {
    let mut r = [[0.0f64; 3]; 3];
    for col in 0..3 {
        let norm = (0..3).map(|row| affine[row][col].powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        for row in 0..3 {
            r[row][col] = affine[row][col] / norm;
        }
    }
    if !is_orthonormal(&r) {
        return None;
    }
    let qfac = if det3(&r) > 0.0 { 1.0 } else { -1.0 };
    if qfac < 0.0 {
        (0..3).for_each(|row| r[row][2] = -r[row][2]);
    }
    let (b, c, d) = rotation_to_bcd(&r);
    let offset = [affine[0][3], affine[1][3], affine[2][3]];
    Some(Qform { b, c, d, offset, qfac })
}

fn rotation_to_bcd(r: &[[f64; 3]; 3]) -> (f64, f64, f64) {
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
    }
    if a < 0.0 {
        (-b, -c, -d)
    } else {
        (b, c, d)
    }
}

fn det3(r: &[[f64; 3]; 3]) -> f64 {
    r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0])
}

fn is_orthonormal(r: &[[f64; 3]; 3]) -> bool {
    (0..3).all(|i| {
        (0..3).all(|j| {
            let dot: f64 = (0..3).map(|k| r[k][i] * r[k][j]).sum();
            (dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-4
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rotations_and_flips() {
        // 30° about z, LPS-like flip on x, anisotropic spacing, and a negative qfac.
        let (s, c) = (30f64.to_radians().sin(), 30f64.to_radians().cos());
        let cases: Vec<Affine> = vec![
            [
                [0.5 * c, -0.5 * s, 0.0, 1.0],
                [0.5 * s, 0.5 * c, 0.0, 2.0],
                [0.0, 0.0, 3.0, 3.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
            [
                [-1.0, 0.0, 0.0, 90.0],
                [0.0, -1.0, 0.0, 126.0],
                [0.0, 0.0, 2.0, -72.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
            [
                [-2.0, 0.0, 0.0, 0.0],
                [0.0, 2.0, 0.0, 0.0],
                [0.0, 0.0, 2.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
            [
                [0.0, 0.0, 1.0, 0.0],
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
        ];
        for aff in cases {
            let spacing = [0, 1, 2].map(|j| (0..3).map(|i| aff[i][j] * aff[i][j]).sum::<f64>().sqrt());
            let q = from_affine(&aff).expect("orthogonal");
            let back = to_affine(&q, spacing);
            for i in 0..4 {
                for j in 0..4 {
                    assert!((back[i][j] - aff[i][j]).abs() < 1e-9, "{aff:?} -> {back:?}");
                }
            }
        }
    }

    #[test]
    fn sheared_affines_have_no_qform() {
        let aff = [
            [1.0, 0.3, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert!(from_affine(&aff).is_none());
    }
}
