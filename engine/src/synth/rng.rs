//! Random streams and smooth random fields of the synthetic cohort. Every draw comes from a
//! stream derived from the cohort seed and a path of labels (centre, case, rater …), so a
//! case's content does not depend on the order in which cases are generated.

use std::f64::consts::TAU;

pub use crate::rng::Rng;

/// Labels of the independent random streams (the first element of a derivation path).
pub mod stream {
    /// A centre's acquisition protocol.
    pub const CENTRE: u64 = 1;
    /// A rater's habits.
    pub const RATER: u64 = 2;
    /// A case's anatomy and pose.
    pub const CASE: u64 = 3;
    /// A case's image noise (per slice).
    pub const NOISE: u64 = 4;
    /// One rater's delineation of one case.
    pub const DELINEATION: u64 = 5;
    /// A centre's split assignment.
    pub const SPLIT: u64 = 6;
}

/// A smooth random scalar field: a sum of plane waves `amp_m cos(k_m · p + phase_m)` with
/// wavelengths in a given band (millimetres). Used for rater boundary jitter and tumour
/// texture. Its standard deviation is about `amplitude`.
#[derive(Debug, Clone)]
pub struct WaveField {
    waves: Vec<([f64; 3], f64, f64)>,
}

impl WaveField {
    /// `n` waves with wavelengths in `[lambda_min, lambda_max]` mm; standard deviation
    /// about `amplitude`.
    pub fn new(rng: &mut Rng, n: usize, lambda_min: f64, lambda_max: f64, amplitude: f64) -> WaveField {
        // Var(a cos(U)) = a^2 / 2 for a uniform phase: n waves of amplitude a·sqrt(2/n).
        let a = amplitude * (2.0 / n.max(1) as f64).sqrt();
        let waves = (0..n)
            .map(|_| {
                let d = rng.unit_vector();
                let k = TAU / rng.range(lambda_min, lambda_max);
                ([d[0] * k, d[1] * k, d[2] * k], rng.range(0.0, TAU), a)
            })
            .collect();
        WaveField { waves }
    }

    /// The field at `p` (mm).
    #[inline]
    pub fn at(&self, p: [f64; 3]) -> f64 {
        self.waves
            .iter()
            .map(|(k, phase, a)| a * (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + phase).cos())
            .sum()
    }
}
