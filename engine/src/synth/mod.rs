//! A synthetic multi-centre, multi-rater cohort of nasopharyngeal-carcinoma (NPC)
//! contrast-enhanced T1-weighted head MRI with gross-tumour-volume (GTV) labels, to exercise the whole pipeline without
//! patient data (`delinea synth`).
//!
//! # What it models
//! - **Anatomy** ([`anatomy`]): per patient, in a patient frame centred on the nasopharynx:
//!   head outline (narrowing in the neck), skin, subcutaneous fat (bright on T1), skull with
//!   cortical bone (dark) and diploe around the posterior fossa and temporal lobes, brain,
//!   brainstem and cord in CSF (dark), clivus and C1/C2 marrow, prevertebral muscles (longus
//!   capitis/colli), pterygoid muscles, parapharyngeal fat, parotid glands, mandibular rami,
//!   carotid and jugular flow voids, hard palate, maxillary sinuses and nasal cavities, and the
//!   nasopharyngeal airway (dark) with its mucosa, lateral recesses (fossae of Rosenmüller)
//!   and domed roof. Sizes, positions and fat thickness vary between patients.
//! - **Tumour**: grows from the nasopharyngeal wall (60 % posterolateral recess, 20 %
//!   posterior wall, 20 % lateral wall; either side) as a union of a main lobe and 1-3
//!   satellites, each an ellipsoid whose radius is perturbed by low-frequency waves; 45 % have
//!   a thin extension (4-7 mm across, 16-28 mm long) into the parapharyngeal space, towards
//!   the prevertebral muscles or towards the skull base. Volumes are log-uniform over
//!   2.5-45 ml times a centre's stage-mix factor (0.7-1.4; 1 at the source). It replaces the
//!   tissue it grows into, air included. Its plain T1 signal (0.42) lies between muscle
//!   (0.33-0.39) and mucosa (0.50); gadolinium raises it by 75 % at a standard dose (mucosa
//!   90 %, glands 30 %, muscle 15 %, brain 0: [`anatomy::Tissue::enhancement`]), which puts
//!   it between muscle and fat, close to mucosa and glands, with a ±3-8 % texture: it is not
//!   separable by intensity alone.
//! - **Acquisition** ([`acquisition`]), per centre: the sequence family, which changes
//!   tissue contrast in ways per-volume z-scoring cannot undo
//!   ([`acquisition::Sequence`]): the source and the multi-rater centre use contrast-enhanced
//!   T1 spin echo without fat suppression; targets `C2`, `C3`, `C4`, `C5`, … cycle through
//!   fat-suppressed spin echo (fat and marrow dark), fat-suppressed 3D gradient echo (bright
//!   vessels, flatter contrast curve γ 0.6-0.8), low-dose or late spin echo (dose 0.3-0.5) and
//!   the source's family again (dose 0.85-1.15 otherwise). Then voxel size (the source's is `fov / size`;
//!   targets differ by ×0.8-1.25 in-plane and ×0.75-1.45 in slice thickness, so their grids
//!   differ for the same field of view), storage orientation (LAS or RAS) and slice
//!   obliquity (±10°, plus ±2° per scan), contrast curve (signal = gain_t × (post-contrast T1_t)^γ, γ in
//!   0.8-1.25 unless stated above, per-tissue gains ±6 %), a smooth multiplicative bias field (quadratic
//!   log-polynomial, centre-specific plus per-scan variation), Rician noise (σ 1.5-5.5 % of
//!   fat), in-plane Gaussian blur (σ 0.3-0.8 voxel), partial volume (2 × 2 in-plane and 2-4
//!   through-plane sub-samples per voxel), intensity scale (150-3000) and offset, integer
//!   storage. Per scan: head pose (yaw ±3°, pitch ±5°, roll ±2.5°), position in the field of
//!   view, and ±3-6 % physiological variation of tissue signals.
//! - **Raters** ([`raters`]): a delineation is the tumour dilated or eroded by the rater's
//!   systematic margin (exact anisotropic distance transform, in mm), plus smooth boundary
//!   jitter (wavelength 15-40 mm) and a per-slice offset; raters never draw into air or
//!   outside the head; when the tumour has a thin extension, a rater leaves it out with
//!   their own probability.
//!
//! # Centres and raters (the manifest)
//! - Centres `C1` … `Cn` (`--centres`, default 5): `C1` is the source, the others are
//!   targets. Each has one reference oncologist, `C1-onc` … `Cn-onc` (margin within ±1 mm),
//!   who delineated all of that centre's cases; they are the centres' `reference_rater`.
//! - The multi-rater subset is a dedicated target centre `MR` (its own protocol, like a
//!   separate cohort of the paper's design) whose cases are all delineated by the experts `R1`
//!   … `Rn` (`--raters`, default 4), whose systematic margins are spread evenly over
//!   −1.8 … +1.8 mm (±0.2) in a seed-dependent order. `MR`'s `reference_rater` is `R1`; use
//!   each `Rk` as its own target domain.
//! - Splits per centre: 20 % validation, 20 % test (rounded), the rest training, in a
//!   seed-dependent order.
//! - Files: `C1/images/C1-001.nii.gz`, `C1/labels/C1-onc/C1-001.nii.gz`, …,
//!   `manifest.json`, `synth-summary.json` ([`Summary`]).
//!
//! # Determinism
//! Every random draw comes from a stream derived from the seed and the item's indices
//! ([`rng`]), so the same seed gives byte-identical files (on the same platform) whatever the
//! thread count, and adding centres or cases does not change existing ones.
//!
//! # What it does not model
//! Real anatomy in detail (no eyes, teeth, tongue, turbinates, lymph nodes; enhancement is a
//! fixed gain per tissue, with no kinetics, necrosis or heterogeneous uptake), tumour invasion that changes neighbouring
//! signal (bone-marrow replacement is only by overlap), motion, ghosting, wrap-around,
//! Gibbs ringing, slice gaps, k-space effects or coil-specific noise maps, inter-slice
//! intensity steps, DICOM quirks, or a rater's dependence on image quality. The true tumour
//! is not written (no real cohort has one); [`Summary`] reports how each rater compares to it.
//!
//! ```
//! use delinea::synth::{Cohort, Config};
//! // A tiny cohort: one source, one target, 2 multi-rater cases, 24 × 24 × 8 voxels.
//! let config = Config { centres: 2, cases_per_centre: 1, multi_rater_cases: 2, raters: 2,
//!                       size: [24, 24, 8], ..Config::default() };
//! let cohort = Cohort::plan(&config).unwrap();
//! assert_eq!(cohort.cases.len(), 4);
//! let case = cohort.render(0);
//! assert_eq!(case.image.geometry.dims, [24, 24, 8]);
//! assert!(case.truth.count(None) > 0);
//! assert!(case.labels["C1-onc"].count(None) > 0);
//! // The same seed gives the same case.
//! assert_eq!(cohort.render(0).image, case.image);
//! ```

pub mod acquisition;
pub mod anatomy;
mod cohort;
pub mod raters;
pub mod rng;

use std::path::PathBuf;

pub use cohort::{
    generate, AcquisitionSummary, CasePlan, CentrePlan, CentreSummary, Cohort, IntensityStats, RaterSummary, Spread,
    Summary, SynthCase, MULTI_RATER_CENTRE,
};

/// What to generate (a script's `synth_cohort` map gives any subset of the fields).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of `C` centres (the first is the source).
    pub centres: usize,
    /// Cases per `C` centre.
    pub cases_per_centre: usize,
    /// Experts of the multi-rater centre.
    pub raters: usize,
    /// Cases of the multi-rater centre `MR` (0: no such centre).
    pub multi_rater_cases: usize,
    /// Grid of the source centre (the other centres' grids follow from their voxel sizes).
    pub size: [usize; 3],
    /// Field of view (mm) of every scan.
    pub fov_mm: [f64; 3],
    /// Fractions of validation and test cases per centre.
    pub split: [f64; 2],
}

impl Default for Config {
    /// 5 centres × 40 cases, 40 multi-rater cases by 4 raters, 96 × 96 × 24 voxels over
    /// 211.2 × 211.2 × 84 mm (2.2 × 2.2 × 3.5 mm at the source), 60/20/20 splits.
    fn default() -> Config {
        Config {
            seed: 0,
            centres: 5,
            cases_per_centre: 40,
            raters: 4,
            multi_rater_cases: 40,
            size: [96, 96, 24],
            fov_mm: [211.2, 211.2, 84.0],
            split: [0.2, 0.2],
        }
    }
}

impl Config {
    /// Why this configuration cannot be generated, if it cannot.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if !(1..=99).contains(&self.centres) {
            return bad(format!("centres must be 1 to 99, not {}", self.centres));
        }
        if !(1..=9999).contains(&self.cases_per_centre) {
            return bad(format!(
                "cases per centre must be 1 to 9999, not {}",
                self.cases_per_centre
            ));
        }
        if self.multi_rater_cases > 9999 {
            return bad(format!(
                "multi-rater cases must be at most 9999, not {}",
                self.multi_rater_cases
            ));
        }
        if self.multi_rater_cases > 0 && !(1..=26).contains(&self.raters) {
            return bad(format!("raters must be 1 to 26, not {}", self.raters));
        }
        if self.size.iter().any(|n| !(8..=1024).contains(n)) {
            return bad(format!("size must be 8 to 1024 voxels per axis, not {:?}", self.size));
        }
        if self.fov_mm.iter().any(|f| !f.is_finite() || *f < 20.0 || *f > 1000.0) {
            return bad(format!(
                "field of view must be 20 to 1000 mm per axis, not {:?}",
                self.fov_mm
            ));
        }
        let [v, t] = self.split;
        if !(0.0..1.0).contains(&v) || !(0.0..1.0).contains(&t) || v + t >= 1.0 {
            return bad(format!(
                "validation and test fractions must be >= 0 with a sum < 1, not {v} and {t}"
            ));
        }
        Ok(())
    }
}

/// Why a cohort could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is out of range.
    #[error("synth: {0}")]
    Config(String),
    /// A folder or file could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The summary could not be serialised.
    #[error("{path}: {source}")]
    Json {
        /// The summary file.
        path: PathBuf,
        /// What serde said.
        source: serde_json::Error,
    },
    /// An image or label map could not be written (the error names the file).
    #[error(transparent)]
    Volume(#[from] crate::volume::Error),
    /// The manifest could not be written.
    #[error(transparent)]
    Dataset(#[from] crate::dataset::Error),
}

#[cfg(test)]
mod tests;
