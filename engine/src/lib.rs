//! delinea: source-free active domain adaptation for nasopharyngeal-carcinoma GTV
//! delineation on MRI.
//!
//! The modules follow the data's path (see ARCHITECTURE.md):
//! [`volume`] (NIfTI in and out) → [`preprocess`] (clip, z-score, slices) → [`dataset`]
//! (manifests of centres, cases and raters) → [`model`] (the U-Net and its loss, on the
//! backend [`device`] picks) → [`metrics`] (DSC, surface distances,
//! statistics). [`synth`] makes a synthetic multi-centre, multi-rater cohort to try it all.

pub mod dataset;
pub mod device;
pub mod fsutil;
pub mod metrics;
pub mod model;
pub mod preprocess;
pub mod schema;
pub mod synth;
pub mod volume;
