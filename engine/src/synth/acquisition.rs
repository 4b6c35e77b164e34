//! A centre's scanner and protocol, a patient's pose in it, and the rendering of a patient
//! into a T1-weighted-like volume: partial volume through the slice (and 2 × 2 in-plane
//! sub-samples), contrast curve, in-plane blur, smooth multiplicative bias field, Rician
//! noise, linear intensity scale and offset, integer storage.

use rayon::prelude::*;

use super::anatomy::{Anatomy, Tissue, N_TISSUES};
use super::rng::{Rng, WaveField};
use crate::volume::{Geometry, Volume};

/// Voxel-axis orientation of the stored grid (nibabel's axis codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub enum Orientation {
    /// `i` towards the patient's left (dcm2niix's usual axial output).
    #[serde(rename = "LAS")]
    Las,
    /// `i` towards the patient's right.
    #[serde(rename = "RAS")]
    Ras,
}

/// The family of a centre's contrast-enhanced T1 sequence: what changes tissue contrast in a
/// way per-volume intensity normalisation cannot undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub enum Sequence {
    /// Contrast-enhanced T1 spin echo without fat suppression (the source's family).
    #[serde(rename = "ce-t1-se")]
    SpinEcho,
    /// Contrast-enhanced T1 spin echo with fat suppression: fat and marrow go dark, so the
    /// enhancing tumour is among the brightest tissues.
    #[serde(rename = "ce-t1-se-fs")]
    FatSat,
    /// Fat-suppressed 3D T1 gradient echo (VIBE/LAVA-like): bright vessels, flatter contrast.
    #[serde(rename = "ce-t1-gre-fs")]
    GradientEcho,
    /// Spin echo with a low dose or a late acquisition: weak enhancement.
    #[serde(rename = "ce-t1-se-low-dose")]
    LowDose,
}

impl Sequence {
    /// The family of target centre `k` (1-based among targets): they cycle through fat
    /// suppression, gradient echo, low dose and the source's own family, so every cohort with
    /// four or more targets holds strong, moderate and no protocol shift.
    pub fn of_target(k: usize) -> Sequence {
        const CYCLE: [Sequence; 4] = [
            Sequence::FatSat,
            Sequence::GradientEcho,
            Sequence::LowDose,
            Sequence::SpinEcho,
        ];
        CYCLE[(k.max(1) - 1) % CYCLE.len()]
    }

    fn fat_suppressed(self) -> bool {
        matches!(self, Sequence::FatSat | Sequence::GradientEcho)
    }
}

/// One centre's acquisition protocol: every case of the centre shares it.
#[derive(Debug, Clone)]
pub struct Acquisition {
    /// Sequence family.
    pub sequence: Sequence,
    /// Gadolinium dose × timing factor (1 = standard).
    pub dose: f64,
    /// Voxel size (mm): in-plane, in-plane, slice thickness.
    pub spacing: [f64; 3],
    /// Grid size for the cohort's field of view.
    pub dims: [usize; 3],
    /// Storage orientation.
    pub orientation: Orientation,
    /// Mean tilt of the slice plane about the left-right axis (degrees).
    pub oblique_deg: f64,
    /// Stored intensity = `scale` × signal + `offset`, rounded.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Contrast curve: signal = gain × (T1 × (1 + dose × enhancement))^gamma.
    pub gamma: f64,
    /// Per-tissue signal multipliers (T1 weighting differs between protocols).
    pub gain: [f64; N_TISSUES],
    /// Strength of the smooth bias field (log-amplitude).
    pub bias: f64,
    bias_coef: [f64; 7],
    /// Noise standard deviation relative to fat (Rician magnitude noise).
    pub noise: f64,
    /// In-plane point-spread function: Gaussian sigma in voxels.
    pub psf_sigma: f64,
    /// Multiplier of the tumour-volume distribution (the centre's stage mix).
    pub tumour_scale: f64,
}

impl Acquisition {
    /// A random protocol of the given family. The source's voxel size is `fov / size`; a
    /// target's differs by a factor 0.8-1.25 in-plane and 0.75-1.45 through-plane, with its
    /// grid covering the same field of view.
    pub fn sample(rng: &mut Rng, sequence: Sequence, source: bool, fov: [f64; 3], size: [usize; 3]) -> Acquisition {
        let base: Vec<f64> = (0..3).map(|a| fov[a] / size[a] as f64).collect();
        let (fi, fz) = if source {
            (1.0, 1.0)
        } else {
            (rng.range(0.8, 1.25), rng.range(0.75, 1.45))
        };
        let round = |v: f64| (v * 100.0).round() / 100.0;
        let spacing = [round(base[0] * fi), round(base[1] * fi), round(base[2] * fz)];
        let dims = if source {
            size
        } else {
            [0, 1, 2].map(|a| ((fov[a] / spacing[a]).round() as usize).max(4))
        };
        let orientation = if source || rng.chance(0.6) {
            Orientation::Las
        } else {
            Orientation::Ras
        };
        let mut gain = [1.0; N_TISSUES];
        for g in gain.iter_mut() {
            *g = (rng.normal() * 0.06).exp();
        }
        // Tumour-to-muscle contrast is what varies most between T1 protocols in practice.
        gain[Tissue::Tumour as usize] *= (rng.normal() * 0.05).exp();
        let bias = rng.range(0.05, 0.35);
        let mut bias_coef = [0.0; 7];
        for c in bias_coef.iter_mut() {
            *c = rng.normal() * bias / 7f64.sqrt();
        }
        let (dose, gamma) = match sequence {
            Sequence::SpinEcho | Sequence::FatSat => (rng.range(0.85, 1.15), rng.range(0.8, 1.25)),
            Sequence::GradientEcho => (rng.range(0.9, 1.2), rng.range(0.6, 0.8)),
            Sequence::LowDose => (rng.range(0.3, 0.5), rng.range(0.8, 1.25)),
        };
        Acquisition {
            sequence,
            dose,
            spacing,
            dims,
            orientation,
            oblique_deg: rng.range(-10.0, 10.0),
            scale: rng.log_range(150.0, 3000.0),
            offset: if rng.chance(0.5) { 0.0 } else { rng.range(0.0, 40.0) },
            gamma,
            gain,
            bias,
            bias_coef,
            noise: rng.range(0.015, 0.055),
            psf_sigma: rng.range(0.3, 0.8),
            tumour_scale: if source { 1.0 } else { rng.log_range(0.7, 1.4) },
        }
    }

    /// Noise-free signal of each tissue class under this protocol.
    pub fn tissue_signal(&self) -> [f64; N_TISSUES] {
        let mut s = [0.0; N_TISSUES];
        for t in Tissue::ALL {
            let mut v = t.t1() * (1.0 + self.dose * t.enhancement());
            if self.sequence.fat_suppressed() {
                v *= match t {
                    Tissue::Fat => 0.15,
                    Tissue::Marrow => 0.4,
                    _ => 1.0,
                };
            }
            if self.sequence == Sequence::GradientEcho && t == Tissue::Vessel {
                v = 0.9; // inflow and intravascular gadolinium
            }
            s[t as usize] = self.gain[t as usize] * v.powf(self.gamma);
        }
        s
    }

    /// A short human description.
    pub fn describe(&self) -> String {
        format!(
            "{:?} dose {:.2}, {:.2} x {:.2} x {:.2} mm, {:?}, oblique {:+.1} deg, scale {:.0}, gamma {:.2}, bias {:.2}, noise {:.3}",
            self.sequence,
            self.dose,
            self.spacing[0],
            self.spacing[1],
            self.spacing[2],
            self.orientation,
            self.oblique_deg,
            self.scale,
            self.gamma,
            self.bias,
            self.noise
        )
    }
}

/// Where a patient lies in the scanner for one scan.
#[derive(Debug, Clone)]
pub struct Pose {
    /// Head rotation (radians) about z (yaw), x (pitch), y (roll).
    pub angles: [f64; 3],
    /// Centre of the field of view, in the patient frame (mm).
    pub fov_centre: [f64; 3],
    /// Scanner-world position of the field-of-view centre (mm).
    pub origin: [f64; 3],
    /// Extra obliquity of this scan (degrees).
    pub oblique_deg: f64,
}

impl Pose {
    /// A random pose.
    pub fn sample(rng: &mut Rng) -> Pose {
        let deg = std::f64::consts::PI / 180.0;
        Pose {
            angles: [
                rng.normal() * 3.0 * deg,
                rng.normal() * 5.0 * deg,
                rng.normal() * 2.5 * deg,
            ],
            fov_centre: [rng.normal() * 4.0, -18.0 + rng.normal() * 5.0, 4.0 + rng.normal() * 4.0],
            origin: [
                rng.normal() * 3.0,
                20.0 + rng.normal() * 10.0,
                -30.0 + rng.normal() * 15.0,
            ],
            oblique_deg: rng.normal() * 2.0,
        }
    }
}

/// Voxel → patient-frame mapping of one scan.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The stored grid.
    pub geometry: Geometry,
    lin: [[f64; 3]; 3],
    off: [f64; 3],
}

impl Grid {
    /// The grid of `acq` for a patient in `pose`.
    pub fn new(acq: &Acquisition, pose: &Pose) -> Grid {
        let s = acq.spacing;
        let fx = if acq.orientation == Orientation::Las { -1.0 } else { 1.0 };
        let t = (acq.oblique_deg + pose.oblique_deg).to_radians();
        let (st, ct) = t.sin_cos();
        let o = [[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]];
        let d = [[fx * s[0], 0.0, 0.0], [0.0, s[1], 0.0], [0.0, 0.0, s[2]]];
        let a = matmul(o, d); // voxel offsets → scanner mm
        let c = [0, 1, 2].map(|ax| (acq.dims[ax] as f64 - 1.0) / 2.0);
        let ac = matvec(a, c);
        let mut affine = [[0.0; 4]; 4];
        for r in 0..3 {
            affine[r][..3].copy_from_slice(&a[r]);
            affine[r][3] = pose.origin[r] - ac[r];
        }
        affine[3][3] = 1.0;
        let [yaw, pitch, roll] = pose.angles;
        let rz = [
            [yaw.cos(), -yaw.sin(), 0.0],
            [yaw.sin(), yaw.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, pitch.cos(), -pitch.sin()],
            [0.0, pitch.sin(), pitch.cos()],
        ];
        let ry = [
            [roll.cos(), 0.0, roll.sin()],
            [0.0, 1.0, 0.0],
            [-roll.sin(), 0.0, roll.cos()],
        ];
        let lin = matmul(matmul(matmul(rz, rx), ry), a);
        let lc = matvec(lin, c);
        let off = [0, 1, 2].map(|r| pose.fov_centre[r] - lc[r]);
        Grid {
            geometry: Geometry {
                dims: acq.dims,
                spacing: s,
                affine,
            },
            lin,
            off,
        }
    }

    /// Patient-frame position (mm) of fractional voxel coordinates.
    #[inline]
    pub fn patient(&self, ijk: [f64; 3]) -> [f64; 3] {
        let m = &self.lin;
        [0, 1, 2].map(|r| m[r][0] * ijk[0] + m[r][1] * ijk[1] + m[r][2] * ijk[2] + self.off[r])
    }
}

fn matmul(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

fn matvec(a: [[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2])
}

/// A rendered scan: the image and the per-voxel masks the raters work from.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The stored image.
    pub image: Volume,
    /// Tumour covers at least half the voxel (the truth no rater sees exactly).
    pub truth: Vec<bool>,
    /// Same, without the thin extension lobe.
    pub core: Vec<bool>,
    /// Air (airway, sinuses) covers more than half the voxel.
    pub air: Vec<bool>,
    /// Inside the head (skin inwards) for at least half the voxel.
    pub head: Vec<bool>,
    /// Voxel → patient mapping.
    pub grid: Grid,
}

/// Renders `anatomy` as scanned by `acq` in `pose`. `rng` draws the case's physiological
/// intensity variation and bias-field variation; noise comes from `noise_seed` (per slice).
pub fn render(anatomy: &Anatomy, acq: &Acquisition, pose: &Pose, rng: &mut Rng, noise_seed: u64) -> Rendered {
    let grid = Grid::new(acq, pose);
    let [nx, ny, nz] = acq.dims;
    let mut signal = acq.tissue_signal();
    for (t, s) in signal.iter_mut().enumerate() {
        let sd = if t == Tissue::Tumour as usize { 0.06 } else { 0.03 };
        *s *= (rng.normal() * sd).exp();
    }
    let mut bias = acq.bias_coef;
    for b in bias.iter_mut() {
        *b += rng.normal() * 0.3 * acq.bias / 7f64.sqrt();
    }
    // Tissue texture: ±3-5 % smooth multiplicative variation inside the head.
    let texture_amp = rng.range(0.03, 0.05);
    let texture = WaveField::new(rng, 12, 4.0, 14.0, texture_amp);
    let nzs = ((acq.spacing[2] / 1.25).round() as usize).clamp(2, 4);
    let mut offsets = Vec::with_capacity(4 * nzs);
    for t in 0..nzs {
        let dz = (t as f64 + 0.5) / nzs as f64 - 0.5;
        for dj in [-0.25, 0.25] {
            for di in [-0.25, 0.25] {
                offsets.push([di, dj, dz]);
            }
        }
    }
    let n_sub = offsets.len() as u32;
    let kernel = gaussian_kernel(acq.psf_sigma);
    let tumour = &anatomy.tumour;

    struct Slice {
        image: Vec<f32>,
        truth: Vec<bool>,
        core: Vec<bool>,
        air: Vec<bool>,
        head: Vec<bool>,
    }
    let slices: Vec<Slice> = (0..nz)
        .into_par_iter()
        .map(|k| {
            let n = nx * ny;
            let mut sig = vec![0.0f64; n];
            let mut out = Slice {
                image: vec![0.0; n],
                truth: vec![false; n],
                core: vec![false; n],
                air: vec![false; n],
                head: vec![false; n],
            };
            for j in 0..ny {
                for i in 0..nx {
                    let (mut sum, mut tum, mut core, mut air, mut head) = (0.0, 0u32, 0u32, 0u32, 0u32);
                    for o in &offsets {
                        let p = grid.patient([i as f64 + o[0], j as f64 + o[1], k as f64 + o[2]]);
                        let s = anatomy.sample_at(p);
                        let mut v = signal[s.tissue as usize];
                        if s.tumour {
                            v *= 1.0 + tumour.texture.at(p);
                            tum += 1;
                            core += s.core as u32;
                        }
                        air += (s.tissue == Tissue::Air) as u32;
                        head += (s.tissue != Tissue::Background) as u32;
                        sum += v;
                    }
                    let idx = i + nx * j;
                    sig[idx] = sum / n_sub as f64;
                    if head > 0 {
                        sig[idx] *= 1.0 + texture.at(grid.patient([i as f64, j as f64, k as f64]));
                    }
                    out.truth[idx] = 2 * tum >= n_sub;
                    out.core[idx] = 2 * core >= n_sub;
                    out.air[idx] = 2 * air > n_sub;
                    out.head[idx] = 2 * head >= n_sub;
                }
            }
            let sig = blur2d(&sig, nx, ny, &kernel);
            let mut noise = Rng::derive(noise_seed, &[k as u64]);
            for j in 0..ny {
                for i in 0..nx {
                    let idx = i + nx * j;
                    let p = grid.patient([i as f64, j as f64, k as f64]);
                    let q = [0, 1, 2].map(|a| (p[a] - pose.fov_centre[a]) / 100.0);
                    let terms = [q[0], q[1], q[2], q[0] * q[0], q[1] * q[1], q[2] * q[2], q[0] * q[1]];
                    let b: f64 = terms.iter().zip(&bias).map(|(t, c)| t * c).sum::<f64>().exp();
                    let (n1, n2) = noise.normal_pair();
                    let re = sig[idx] * b + acq.noise * n1;
                    let im = acq.noise * n2;
                    let m = (re * re + im * im).sqrt();
                    out.image[idx] = (acq.scale * m + acq.offset).round() as f32;
                }
            }
            out
        })
        .collect();

    let total = nx * ny * nz;
    let mut r = Rendered {
        image: Volume {
            geometry: grid.geometry.clone(),
            data: Vec::with_capacity(total),
        },
        truth: Vec::with_capacity(total),
        core: Vec::with_capacity(total),
        air: Vec::with_capacity(total),
        head: Vec::with_capacity(total),
        grid,
    };
    for s in slices {
        r.image.data.extend(s.image);
        r.truth.extend(s.truth);
        r.core.extend(s.core);
        r.air.extend(s.air);
        r.head.extend(s.head);
    }
    r
}

fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    let radius = (2.5 * sigma).ceil().max(1.0) as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|v| v / total).collect()
}

/// Separable in-plane blur with clamped edges.
fn blur2d(src: &[f64], nx: usize, ny: usize, kernel: &[f64]) -> Vec<f64> {
    let r = (kernel.len() / 2) as i64;
    let mut tmp = vec![0.0; src.len()];
    for j in 0..ny {
        for i in 0..nx {
            tmp[i + nx * j] = kernel
                .iter()
                .enumerate()
                .map(|(t, w)| w * src[(i as i64 + t as i64 - r).clamp(0, nx as i64 - 1) as usize + nx * j])
                .sum();
        }
    }
    let mut out = vec![0.0; src.len()];
    for j in 0..ny {
        for i in 0..nx {
            out[i + nx * j] = kernel
                .iter()
                .enumerate()
                .map(|(t, w)| w * tmp[i + nx * (j as i64 + t as i64 - r).clamp(0, ny as i64 - 1) as usize])
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_and_patient_mapping_agree_on_rigid_motion() {
        let mut rng = Rng::new(3);
        let acq = Acquisition::sample(&mut rng, Sequence::FatSat, false, [210.0, 210.0, 84.0], [64, 64, 16]);
        let pose = Pose::sample(&mut rng);
        let g = Grid::new(&acq, &pose);
        // Distances between voxels are the same in the world (affine) and patient frames.
        let a = [3.0, 7.0, 2.0];
        let b = [40.0, 21.0, 9.0];
        let (wa, wb) = (g.geometry.to_world(a), g.geometry.to_world(b));
        let (pa, pb) = (g.patient(a), g.patient(b));
        let d =
            |x: [f64; 3], y: [f64; 3]| ((x[0] - y[0]).powi(2) + (x[1] - y[1]).powi(2) + (x[2] - y[2]).powi(2)).sqrt();
        assert!((d(wa, wb) - d(pa, pb)).abs() < 1e-9);
        let expect = if acq.orientation == Orientation::Las {
            "LAS"
        } else {
            "RAS"
        };
        assert_eq!(g.geometry.orientation(), expect);
    }

    #[test]
    fn sequence_families_change_contrast_not_just_scale() {
        let signal = |seq: Sequence| {
            let mut acq = Acquisition::sample(&mut Rng::new(5), seq, false, [210.0, 210.0, 84.0], [64, 64, 16]);
            (acq.gain, acq.gamma) = ([1.0; N_TISSUES], 1.0);
            acq.tissue_signal()
        };
        let (t, f, m, v) = (
            Tissue::Tumour as usize,
            Tissue::Fat as usize,
            Tissue::Muscle as usize,
            Tissue::Vessel as usize,
        );
        let se = signal(Sequence::SpinEcho);
        let fs = signal(Sequence::FatSat);
        let low = signal(Sequence::LowDose);
        let gre = signal(Sequence::GradientEcho);
        // Without fat suppression fat is the brightest tissue; with it the tumour outshines fat.
        assert!(se[f] > se[t] && fs[t] > 3.0 * fs[f] && gre[t] > 3.0 * gre[f]);
        // Enhancement: the tumour-to-muscle ratio falls with the dose.
        assert!(se[t] / se[m] > 1.6 && low[t] / low[m] < 1.5);
        // Vessels are flow voids on spin echo, bright on gradient echo.
        assert!(se[v] < 0.1 && gre[v] > 0.8);
        let cycle: Vec<Sequence> = (1..=5).map(Sequence::of_target).collect();
        assert_eq!(cycle[0], Sequence::FatSat);
        assert_eq!(cycle[4], Sequence::FatSat);
        assert_eq!(cycle[3], Sequence::SpinEcho);
    }

    #[test]
    fn blur_keeps_constants() {
        let k = gaussian_kernel(0.6);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let out = blur2d(&[2.0; 20], 5, 4, &k);
        assert!(out.iter().all(|v| (v - 2.0).abs() < 1e-12));
    }
}
