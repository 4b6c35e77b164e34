//! A patient: tissue classes as a function of position in the patient frame (millimetres,
//! RAS axes, origin at the centre of the nasopharyngeal airway), and a tumour attached to the
//! nasopharyngeal wall.
//!
//! Shapes are painted in order (later ones win): head (skin, subcutaneous fat, soft tissue),
//! skull and posterior fossa, temporal lobes, parotid glands, mandibular rami, pterygoid
//! muscles, parapharyngeal fat, prevertebral muscles, clivus and upper cervical vertebrae,
//! brainstem and cord with their CSF, carotid arteries and jugular veins (flow voids), hard
//! palate, maxillary sinuses, nasal cavities, the nasopharyngeal mucosa and airway, and last
//! the tumour, which replaces whatever it grows into (air included).

use std::f64::consts::{FRAC_PI_2, PI};

use super::rng::{Rng, WaveField};

/// Tissue classes, each with its own T1-weighted signal (see [`Tissue::t1`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tissue {
    /// Outside the head (air around the patient).
    Background = 0,
    /// Skin and scalp.
    Skin,
    /// Subcutaneous, parapharyngeal and orbital fat (bright on T1).
    Fat,
    /// Generic soft tissue and muscle (masticator space, neck, tongue).
    Muscle,
    /// Pterygoid muscles.
    Pterygoid,
    /// Longus capitis / colli (prevertebral muscles).
    Prevertebral,
    /// Mucosa lining the airway and sinuses.
    Mucosa,
    /// Air inside the head: airway, nasal cavity, sinuses.
    Air,
    /// Cortical bone (dark).
    Cortical,
    /// Fatty bone marrow (clivus, vertebrae, diploe, mandible).
    Marrow,
    /// Brain, brainstem, spinal cord.
    Brain,
    /// Cerebrospinal fluid (dark on T1).
    Csf,
    /// Parotid gland.
    Gland,
    /// Arteries and veins (flow void).
    Vessel,
    /// Gross tumour.
    Tumour,
}

/// Number of tissue classes.
pub const N_TISSUES: usize = 15;

impl Tissue {
    /// Signal on a plain (pre-contrast) T1-weighted spin-echo image, fat = 1, before a
    /// centre's contrast curve and gadolinium (see [`Tissue::enhancement`]). Before contrast
    /// the tumour sits between muscle and mucosa, close to muscle.
    pub fn t1(self) -> f64 {
        match self {
            Tissue::Background | Tissue::Air => 0.0,
            Tissue::Skin => 0.50,
            Tissue::Fat => 1.00,
            Tissue::Muscle => 0.36,
            Tissue::Pterygoid => 0.33,
            Tissue::Prevertebral => 0.39,
            Tissue::Mucosa => 0.50,
            Tissue::Cortical => 0.04,
            Tissue::Marrow => 0.72,
            Tissue::Brain => 0.52,
            Tissue::Csf => 0.14,
            Tissue::Gland => 0.66,
            Tissue::Vessel => 0.06,
            Tissue::Tumour => 0.42,
        }
    }

    /// Relative signal gain from gadolinium at a standard dose and timing: the post-contrast
    /// signal is `t1 × (1 + dose × enhancement)`. Tumour and mucosa enhance strongly, glands
    /// and muscle mildly; brain (blood-brain barrier), CSF, air and bone do not. Flow voids
    /// stay dark on spin echo (see the gradient-echo protocol for bright vessels).
    pub fn enhancement(self) -> f64 {
        match self {
            Tissue::Tumour => 0.75,
            Tissue::Mucosa => 0.9,
            Tissue::Gland => 0.3,
            Tissue::Skin | Tissue::Prevertebral | Tissue::Marrow => 0.2,
            Tissue::Muscle | Tissue::Pterygoid => 0.15,
            Tissue::Fat => 0.05,
            _ => 0.0,
        }
    }

    /// Every class, in discriminant order.
    pub const ALL: [Tissue; N_TISSUES] = [
        Tissue::Background,
        Tissue::Skin,
        Tissue::Fat,
        Tissue::Muscle,
        Tissue::Pterygoid,
        Tissue::Prevertebral,
        Tissue::Mucosa,
        Tissue::Air,
        Tissue::Cortical,
        Tissue::Marrow,
        Tissue::Brain,
        Tissue::Csf,
        Tissue::Gland,
        Tissue::Vessel,
        Tissue::Tumour,
    ];
}

/// An ellipsoid turned about the z axis, with optional concentric layers (e.g. a cortical
/// rim around marrow).
#[derive(Debug, Clone)]
struct Blob {
    c: [f64; 3],
    semi: [f64; 3],
    cos: f64,
    sin: f64,
    reach: [f64; 3],
    /// (thickness mm, tissue) from the outside in; the rest is `inner`.
    layers: Vec<(f64, Tissue)>,
    inner: Tissue,
    /// Normalised radius below which each layer ends (derived from thicknesses).
    bounds: Vec<f64>,
}

impl Blob {
    fn new(c: [f64; 3], semi: [f64; 3], yaw: f64, layers: Vec<(f64, Tissue)>, inner: Tissue) -> Blob {
        let r = semi[0].max(semi[1]);
        let min_xy = semi[0].min(semi[1]);
        let mut depth = 0.0;
        let bounds = layers
            .iter()
            .map(|(mm, _)| {
                depth += mm;
                (1.0 - depth / min_xy).max(0.0)
            })
            .collect();
        Blob {
            c,
            semi,
            cos: yaw.cos(),
            sin: yaw.sin(),
            reach: [r, r, semi[2]],
            layers,
            inner,
            bounds,
        }
    }

    fn solid(c: [f64; 3], semi: [f64; 3], yaw: f64, t: Tissue) -> Blob {
        Blob::new(c, semi, yaw, Vec::new(), t)
    }

    /// The mirror image across the mid-sagittal plane.
    fn mirrored(&self) -> Blob {
        let mut b = Blob::new(
            [-self.c[0], self.c[1], self.c[2]],
            self.semi,
            0.0,
            self.layers.clone(),
            self.inner,
        );
        b.cos = self.cos;
        b.sin = -self.sin;
        b
    }

    #[inline]
    fn tissue(&self, p: [f64; 3]) -> Option<Tissue> {
        let d = [p[0] - self.c[0], p[1] - self.c[1], p[2] - self.c[2]];
        if d[0].abs() > self.reach[0] || d[1].abs() > self.reach[1] || d[2].abs() > self.reach[2] {
            return None;
        }
        let u = (self.cos * d[0] + self.sin * d[1]) / self.semi[0];
        let v = (-self.sin * d[0] + self.cos * d[1]) / self.semi[1];
        let w = d[2] / self.semi[2];
        let r2 = u * u + v * v + w * w;
        if r2 > 1.0 {
            return None;
        }
        let r = r2.sqrt();
        for ((_, t), b) in self.layers.iter().zip(&self.bounds) {
            if r > *b {
                return Some(*t);
            }
        }
        Some(self.inner)
    }
}

/// One ellipsoidal lobe of the tumour with a low-frequency radial perturbation.
#[derive(Debug, Clone)]
pub struct Lobe {
    c: [f64; 3],
    /// Rows: the lobe's local axes in the patient frame.
    axes: [[f64; 3]; 3],
    semi: [f64; 3],
    /// (direction, frequency, phase, amplitude): radius × (1 + Σ a sin(f u·d + φ)).
    waves: Vec<([f64; 3], f64, f64, f64)>,
    reach: f64,
    /// A thin extension (e.g. into the parapharyngeal space) that a rater may leave out.
    pub extension: bool,
}

impl Lobe {
    fn new(rng: &mut Rng, c: [f64; 3], axes: [[f64; 3]; 3], semi: [f64; 3], max_amp: f64, extension: bool) -> Lobe {
        let waves: Vec<_> = (0..4)
            .map(|_| {
                (
                    rng.unit_vector(),
                    rng.range(1.5, 3.5),
                    rng.range(0.0, 2.0 * PI),
                    rng.range(0.3, 1.0) * max_amp,
                )
            })
            .collect();
        let amp: f64 = waves.iter().map(|w| w.3).sum();
        let reach = semi.iter().fold(0.0f64, |a, b| a.max(*b)) * (1.0 + amp) + 0.5;
        Lobe {
            c,
            axes,
            semi,
            waves,
            reach,
            extension,
        }
    }

    /// Whether `p` is inside the lobe.
    #[inline]
    pub fn contains(&self, p: [f64; 3]) -> bool {
        let d = [p[0] - self.c[0], p[1] - self.c[1], p[2] - self.c[2]];
        if d[0].abs() > self.reach || d[1].abs() > self.reach || d[2].abs() > self.reach {
            return false;
        }
        let q = [
            dot(self.axes[0], d) / self.semi[0],
            dot(self.axes[1], d) / self.semi[1],
            dot(self.axes[2], d) / self.semi[2],
        ];
        let r = dot(q, q).sqrt();
        if r < 0.6 {
            return true;
        }
        let u = [q[0] / r, q[1] / r, q[2] / r];
        let limit: f64 = 1.0
            + self
                .waves
                .iter()
                .map(|(dir, f, ph, a)| a * (f * dot(u, *dir) + ph).sin())
                .sum::<f64>();
        r <= limit
    }

    /// Approximate volume in ml (ignoring the perturbation, which averages out).
    pub fn nominal_ml(&self) -> f64 {
        4.0 / 3.0 * PI * self.semi[0] * self.semi[1] * self.semi[2] / 1000.0
    }
}

/// Where on the nasopharyngeal wall the tumour arises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Site {
    /// Lateral recess (fossa of Rosenmüller), the commonest origin.
    Posterolateral,
    /// Posterior wall.
    Posterior,
    /// Lateral wall (torus tubarius, Eustachian tube opening).
    Lateral,
}

/// The tumour: a union of lobes, plus texture.
#[derive(Debug, Clone)]
pub struct Tumour {
    /// Main lobe first, then satellites, then the optional thin extension.
    pub lobes: Vec<Lobe>,
    /// Relative intensity texture (multiplier − 1).
    pub texture: WaveField,
    /// +1: patient's right (RAS +x), −1: left.
    pub side: f64,
    /// Origin on the wall.
    pub site: Site,
    /// The wall point (mm) the tumour grows from.
    pub origin: [f64; 3],
    /// Whether a thin extension lobe exists.
    pub has_extension: bool,
}

impl Tumour {
    /// `(in any lobe, in a non-extension lobe)` at `p`.
    #[inline]
    pub fn contains(&self, p: [f64; 3]) -> (bool, bool) {
        let mut any = false;
        for l in &self.lobes {
            if l.contains(p) {
                if !l.extension {
                    return (true, true);
                }
                any = true;
            }
        }
        (any, false)
    }
}

/// The nasopharyngeal airway: an elliptic tube with two posterolateral recesses (fossae of
/// Rosenmüller) and a domed roof, lined by mucosa.
#[derive(Debug, Clone)]
pub struct Airway {
    /// Lateral and antero-posterior semi-axes (mm).
    pub rx: f64,
    /// Antero-posterior semi-axis (mm).
    pub ry: f64,
    /// Height of the roof above the origin (mm).
    pub roof: f64,
    /// Height of the dome (mm).
    pub dome: f64,
    /// Mucosa thickness (mm).
    pub mucosa: f64,
    recess: [f64; 4],
}

impl Airway {
    /// Whether `p` is inside the airway grown by `grow` mm.
    #[inline]
    pub fn contains(&self, p: [f64; 3], grow: f64) -> bool {
        let roof = self.roof + grow;
        if p[2] > roof {
            return false;
        }
        let z0 = roof - self.dome - grow;
        let f = if p[2] > z0 {
            let t = (p[2] - z0) / (self.dome + grow);
            (1.0 - t * t).max(0.0).sqrt()
        } else {
            1.0
        };
        let (ax, ay) = (self.rx * f + grow, self.ry * f + grow);
        if p[0].abs() > ax + self.recess[2] + grow || p[1].abs() > ay + grow + self.recess[3] {
            return false;
        }
        let u = p[0] / ax;
        let v = p[1] / ay;
        if u * u + v * v <= 1.0 {
            return true;
        }
        // Recess: a small ellipse pointing posterolaterally, on each side.
        let [cx, cy, a, b] = self.recess;
        let (cx, cy) = (cx * f, cy * f);
        let dx = p[0].abs() - cx;
        let dy = p[1] - cy;
        // Long axis rotated 35° towards posterolateral.
        let (s, c) = (-0.61f64, 0.79f64);
        let u = (c * dx + s * dy) / (a * f + grow);
        let v = (-s * dx + c * dy) / (b * f + grow);
        u * u + v * v <= 1.0
    }

    /// The wall point at parametric angle `theta` (−π/2: posterior) at height `z`, and the
    /// outward normal there.
    pub fn wall(&self, theta: f64, z: f64) -> ([f64; 3], [f64; 3]) {
        let z0 = self.roof - self.dome;
        let f = if z > z0 {
            let t = ((z - z0) / self.dome).min(1.0);
            (1.0 - t * t).max(0.0).sqrt()
        } else {
            1.0
        };
        let p = [self.rx * f * theta.cos(), self.ry * f * theta.sin(), z];
        let n = normalise([theta.cos() / self.rx, theta.sin() / self.ry, 0.0]);
        (p, n)
    }
}

/// Head outline: an elliptic cylinder, narrowing in the neck.
#[derive(Debug, Clone)]
struct Head {
    cx: f64,
    cy: f64,
    ax: f64,
    ay: f64,
    skin: f64,
    fat: f64,
}

impl Head {
    /// Depth below the skin surface (mm), or `None` outside.
    #[inline]
    fn depth(&self, p: [f64; 3]) -> Option<f64> {
        let s = 1.0 - 0.004 * (-p[2] - 20.0).max(0.0) - 0.002 * (p[2] - 40.0).max(0.0);
        let dx = p[0] - self.cx;
        let dy = p[1] - self.cy;
        let u = dx / (self.ax * s);
        let v = dy / (self.ay * s);
        let r = (u * u + v * v).sqrt();
        if r > 1.0 {
            return None;
        }
        if r < 1e-9 {
            return Some(f64::INFINITY);
        }
        Some((dx * dx + dy * dy).sqrt() * (1.0 / r - 1.0))
    }
}

/// One synthetic patient.
#[derive(Debug, Clone)]
pub struct Anatomy {
    head: Head,
    structures: Vec<Blob>,
    /// The nasopharyngeal airway.
    pub airway: Airway,
    /// The gross tumour.
    pub tumour: Tumour,
}

/// What is at one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The tissue (tumour wins).
    pub tissue: Tissue,
    /// In any tumour lobe.
    pub tumour: bool,
    /// In a tumour lobe other than the thin extension.
    pub core: bool,
}

impl Anatomy {
    /// A random patient. `tumour_scale` multiplies the tumour volume distribution (a centre's
    /// stage mix).
    pub fn sample(rng: &mut Rng, tumour_scale: f64) -> Anatomy {
        let s = rng.range(0.9, 1.1);
        let head = Head {
            cx: rng.normal() * 1.5,
            cy: -20.0 * s + rng.normal() * 3.0,
            ax: 71.0 * s * rng.range(0.94, 1.06),
            ay: 96.0 * s * rng.range(0.94, 1.06),
            skin: rng.range(1.5, 2.5),
            fat: rng.range(3.0, 11.0),
        };
        let rx = rng.range(9.0, 15.0) * s;
        let ry = rng.range(5.0, 9.0) * s;
        let mucosa = rng.range(1.5, 3.5);
        let airway = Airway {
            rx,
            ry,
            roof: rng.range(10.0, 16.0),
            dome: rng.range(5.0, 9.0),
            mucosa,
            recess: [0.8 * rx, -0.55 * ry, rng.range(3.0, 5.5), rng.range(1.8, 3.0)],
        };
        let j = |rng: &mut Rng, sd: f64| rng.normal() * sd;
        let post = -ry - mucosa; // posterior wall outer surface
        let mut st: Vec<Blob> = Vec::new();
        let bilateral = |st: &mut Vec<Blob>, b: Blob| {
            let m = b.mirrored();
            st.push(b);
            st.push(m);
        };
        // Intermuscular fat: small fat pads scattered in the deep soft tissue (painted first,
        // so the named structures cover them).
        for _ in 0..(8 + rng.below(8)) {
            let c = [
                rng.sign() * rng.range(12.0, 60.0) * s,
                rng.range(-45.0, 45.0) * s,
                rng.range(-40.0, 40.0),
            ];
            let semi = [rng.range(1.5, 4.5), rng.range(2.0, 7.0), rng.range(3.0, 12.0)];
            st.push(Blob::solid(c, semi, rng.range(0.0, PI), Tissue::Fat));
        }
        let skull = vec![(2.5, Tissue::Cortical), (1.5, Tissue::Marrow), (1.0, Tissue::Csf)];
        // Posterior fossa (cerebellum) and temporal lobes in their skull.
        st.push(Blob::new(
            [0.0, head.cy - 48.0 * s + j(rng, 3.0), 38.0 + j(rng, 4.0)],
            [head.ax * 0.74, 42.0 * s, 52.0],
            j(rng, 0.03),
            skull.clone(),
            Tissue::Brain,
        ));
        bilateral(
            &mut st,
            Blob::new(
                [42.0 * s, head.cy + 8.0 + j(rng, 3.0), 50.0 + j(rng, 4.0)],
                [20.0 * s, 30.0 * s, 28.0],
                0.15,
                skull.clone(),
                Tissue::Brain,
            ),
        );
        // Parotid glands, mandibular rami.
        bilateral(
            &mut st,
            Blob::solid(
                [head.ax * 0.70 + j(rng, 2.0), head.cy + 4.0 + j(rng, 3.0), -12.0],
                [rng.range(9.0, 13.0), rng.range(14.0, 19.0), 26.0],
                0.1,
                Tissue::Gland,
            ),
        );
        bilateral(
            &mut st,
            Blob::new(
                [head.ax * 0.60 + j(rng, 2.0), 12.0 * s + j(rng, 2.0), -16.0],
                [4.5, 13.0 * s, 29.0],
                -0.15,
                vec![(1.5, Tissue::Cortical)],
                Tissue::Marrow,
            ),
        );
        // Pterygoid muscles, parapharyngeal fat, prevertebral muscles.
        bilateral(
            &mut st,
            Blob::solid(
                [rx + 22.0 * s + j(rng, 1.5), 6.0 * s + j(rng, 2.0), -2.0 + j(rng, 3.0)],
                [rng.range(8.0, 11.0), rng.range(13.0, 17.0), 24.0],
                0.45,
                Tissue::Pterygoid,
            ),
        );
        bilateral(
            &mut st,
            Blob::solid(
                [rx + mucosa + rng.range(4.5, 7.0), -2.0 + j(rng, 1.5), 0.0],
                [rng.range(3.5, 6.0), rng.range(7.0, 10.0), 20.0],
                0.2,
                Tissue::Fat,
            ),
        );
        bilateral(
            &mut st,
            Blob::solid(
                [8.5 * s, post - rng.range(5.0, 7.0), -10.0],
                [rng.range(5.5, 7.5), rng.range(4.0, 5.5), 42.0],
                0.1,
                Tissue::Prevertebral,
            ),
        );
        // Clivus above, C1/C2 below; brainstem and cord behind, with CSF.
        let bone = vec![(1.5, Tissue::Cortical)];
        st.push(Blob::new(
            [0.0, post - 17.0 * s, 16.0],
            [11.0, 8.0, 15.0],
            0.0,
            bone.clone(),
            Tissue::Marrow,
        ));
        st.push(Blob::new(
            [0.0, post - 20.0 * s, -28.0],
            [15.0, 11.0, 23.0],
            0.0,
            bone,
            Tissue::Marrow,
        ));
        let csf = vec![(2.0, Tissue::Csf)];
        st.push(Blob::new(
            [0.0, post - 42.0 * s, 28.0],
            [13.0, 12.0, 40.0],
            0.0,
            csf.clone(),
            Tissue::Brain,
        ));
        st.push(Blob::new(
            [0.0, post - 44.0 * s, -30.0],
            [7.5, 7.5, 32.0],
            0.0,
            csf,
            Tissue::Brain,
        ));
        // Internal carotid arteries and jugular veins.
        bilateral(
            &mut st,
            Blob::solid([rx + 12.0 * s, -ry - 7.0, 0.0], [2.8, 2.8, 90.0], 0.0, Tissue::Vessel),
        );
        bilateral(
            &mut st,
            Blob::solid([rx + 21.0 * s, -ry - 12.0, 0.0], [4.5, 3.8, 90.0], 0.0, Tissue::Vessel),
        );
        // Hard palate, maxillary sinuses, nasal cavities.
        st.push(Blob::new(
            [0.0, 36.0 * s, -13.0 + j(rng, 2.0)],
            [26.0 * s, 26.0 * s, 3.5],
            0.0,
            vec![(1.0, Tissue::Cortical)],
            Tissue::Marrow,
        ));
        let sinus_mucosa = rng.range(1.0, 4.0);
        bilateral(
            &mut st,
            Blob::new(
                [29.0 * s, 42.0 * s, 2.0],
                [13.0 * s, 16.0 * s, 19.0],
                -0.2,
                vec![(1.5, Tissue::Cortical), (sinus_mucosa, Tissue::Mucosa)],
                Tissue::Air,
            ),
        );
        bilateral(
            &mut st,
            Blob::new(
                [6.5, 28.0 * s + ry, 4.0],
                [4.0, 24.0 * s, 15.0],
                0.0,
                vec![(1.5, Tissue::Mucosa)],
                Tissue::Air,
            ),
        );

        let tumour = sample_tumour(rng, &airway, tumour_scale);
        Anatomy {
            head,
            structures: st,
            airway,
            tumour,
        }
    }

    /// What is at `p` (patient frame, mm).
    #[inline]
    pub fn sample_at(&self, p: [f64; 3]) -> Sample {
        let Some(depth) = self.head.depth(p) else {
            return Sample {
                tissue: Tissue::Background,
                tumour: false,
                core: false,
            };
        };
        let (tumour, core) = self.tumour.contains(p);
        if tumour {
            return Sample {
                tissue: Tissue::Tumour,
                tumour,
                core,
            };
        }
        let mut t = if depth < self.head.skin {
            Tissue::Skin
        } else if depth < self.head.skin + self.head.fat {
            Tissue::Fat
        } else {
            Tissue::Muscle
        };
        if depth > self.head.skin + self.head.fat {
            for b in &self.structures {
                if let Some(x) = b.tissue(p) {
                    t = x;
                }
            }
            if self.airway.contains(p, self.airway.mucosa) {
                t = if self.airway.contains(p, 0.0) {
                    Tissue::Air
                } else {
                    Tissue::Mucosa
                };
            }
        }
        Sample {
            tissue: t,
            tumour: false,
            core: false,
        }
    }
}

fn sample_tumour(rng: &mut Rng, airway: &Airway, scale: f64) -> Tumour {
    let side = rng.sign();
    let u = rng.f64();
    let (site, delta) = if u < 0.6 {
        (Site::Posterolateral, rng.range(0.55, 1.15))
    } else if u < 0.8 {
        (Site::Posterior, rng.range(0.0, 0.4))
    } else {
        (Site::Lateral, rng.range(1.2, 1.6))
    };
    // Parametric angle: −π/2 is the posterior wall; +x is the patient's right (RAS).
    let theta = -FRAC_PI_2 + side * delta;
    let z0 = airway.roof - rng.range(4.0, 14.0);
    let (w, n) = airway.wall(theta, z0);
    let zax = [0.0, 0.0, 1.0];
    let t = [-n[1], n[0], 0.0];
    let volume_ml = rng.log_range(4.0, 70.0) * scale;
    let v_main = 0.6 * volume_ml * 1000.0;
    let r = (3.0 * v_main / (4.0 * PI)).cbrt();
    let (et, ez) = (rng.range(0.9, 1.35), rng.range(0.9, 1.5));
    let semi = [r / (et * ez), r * et, r * ez];
    // Small random yaw of the lobe frame.
    let yaw = rng.normal() * 0.2;
    let (sy, cy) = yaw.sin_cos();
    let n2 = [cy * n[0] - sy * n[1], sy * n[0] + cy * n[1], 0.0];
    let t2 = [-n2[1], n2[0], 0.0];
    let c = add(w, scale3(n, semi[0] * rng.range(-0.1, 0.45)));
    let mut lobes = vec![Lobe::new(rng, c, [n2, t2, zax], semi, 0.09, false)];
    let satellites = 1 + rng.below(3);
    let mut fractions: Vec<f64> = (0..satellites).map(|_| rng.range(0.5, 1.5)).collect();
    let total: f64 = fractions.iter().sum();
    for f in fractions.iter_mut() {
        *f *= 0.4 * volume_ml * 1000.0 / total;
    }
    for v in fractions {
        let rs = (3.0 * v / (4.0 * PI)).cbrt();
        let cs = add(
            add(c, scale3(t, semi[1] * rng.range(-0.75, 0.75))),
            add(
                scale3(zax, semi[2] * rng.range(-0.8, 0.8)),
                scale3(n, semi[0] * rng.range(-0.2, 0.5)),
            ),
        );
        let a = rng.range(0.8, 1.25);
        let b = rng.range(0.8, 1.25);
        let frame = random_frame(rng);
        lobes.push(Lobe::new(rng, cs, frame, [rs * a, rs * b, rs / (a * b)], 0.1, false));
    }
    let has_extension = rng.chance(0.45);
    if has_extension {
        let u = rng.f64();
        let dir = if u < 0.6 {
            // Lateral, into the parapharyngeal space.
            normalise([side, rng.range(-0.4, 0.1), rng.range(-0.2, 0.3)])
        } else if u < 0.8 {
            // Posterior, towards the prevertebral muscles.
            normalise([side * rng.range(0.0, 0.5), -1.0, rng.range(-0.3, 0.3)])
        } else {
            // Superior, towards the skull base.
            normalise([side * rng.range(0.0, 0.5), rng.range(-0.5, 0.0), 1.0])
        };
        let main = &lobes[0];
        let local = [
            dot(main.axes[0], dir) / main.semi[0],
            dot(main.axes[1], dir) / main.semi[1],
            dir[2] / main.semi[2],
        ];
        let r_dir = 1.0 / dot(local, local).sqrt();
        let len = rng.range(8.0, 14.0);
        let thin = rng.range(2.0, 3.5);
        let centre = add(c, scale3(dir, 0.85 * r_dir + 0.75 * len));
        let (e1, e2) = orthonormal_pair(dir);
        let thin2 = thin * rng.range(0.8, 1.2);
        lobes.push(Lobe::new(rng, centre, [dir, e1, e2], [len, thin, thin2], 0.05, true));
    }
    let texture_amp = rng.range(0.03, 0.08);
    let texture = WaveField::new(rng, 6, 6.0, 16.0, texture_amp);
    Tumour {
        lobes,
        texture,
        side,
        site,
        origin: w,
        has_extension,
    }
}

fn random_frame(rng: &mut Rng) -> [[f64; 3]; 3] {
    let a = rng.unit_vector();
    let (b, c) = orthonormal_pair(a);
    [a, b, c]
}

/// Two unit vectors orthogonal to unit `a` and to each other.
fn orthonormal_pair(a: [f64; 3]) -> ([f64; 3], [f64; 3]) {
    let h = if a[0].abs() < 0.9 {
        [1.0, 0.0, 0.0]
    } else {
        [0.0, 1.0, 0.0]
    };
    let b = normalise(cross(a, h));
    (b, cross(a, b))
}

#[inline]
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn scale3(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn normalise(a: [f64; 3]) -> [f64; 3] {
    let n = dot(a, a).sqrt();
    if n > 0.0 {
        scale3(a, 1.0 / n)
    } else {
        [1.0, 0.0, 0.0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumour_starts_on_the_airway_wall_and_the_airway_is_air() {
        for seed in 0..50 {
            let a = Anatomy::sample(&mut Rng::new(seed), 1.0);
            let centre = [0.0, 0.0, a.airway.roof - a.airway.dome - 2.0];
            assert!(
                a.sample_at(centre).tissue == Tissue::Air || a.tumour.contains(centre).0,
                "seed {seed}"
            );
            let o = a.tumour.origin;
            // The wall point is on the airway boundary: inside when grown by 0.5 mm, and the
            // main lobe reaches within 3 mm of it.
            assert!(a.airway.contains(o, 0.5), "seed {seed}");
            let near = (0..200).any(|i| {
                let d = i as f64 * 0.03;
                a.tumour.lobes[0].contains([o[0], o[1], o[2]])
                    || a.tumour.lobes[0].contains([o[0] * (1.0 + d / 10.0), o[1] * (1.0 + d / 10.0), o[2]])
                    || a.tumour.lobes[0].contains([o[0] * (1.0 - d / 10.0), o[1] * (1.0 - d / 10.0), o[2]])
            });
            assert!(near, "seed {seed}: main lobe far from its wall point");
            assert_eq!(a.sample_at([500.0, 0.0, 0.0]).tissue, Tissue::Background);
        }
    }

    #[test]
    fn tissue_table_is_ordered() {
        for (i, t) in Tissue::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        assert!(Tissue::Fat.t1() > Tissue::Tumour.t1() && Tissue::Tumour.t1() > Tissue::Muscle.t1());
        assert!(Tissue::Cortical.t1() < 0.1 && Tissue::Air.t1() == 0.0);
    }
}
