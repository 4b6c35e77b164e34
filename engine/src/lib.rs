//! delinea: source-free active domain adaptation for nasopharyngeal-carcinoma GTV
//! delineation on MRI.
//!
//! The modules follow the data's path (see ARCHITECTURE.md):
//! [`volume`] (NIfTI in and out) → [`preprocess`] (clip, z-score, slices) → [`dataset`]
//! (manifests of centres, cases and raters) → [`model`] (the U-Net and its loss, on the
//! backend [`device`] picks) → [`train`] (slices, batches, augmentation) → [`infer`]
//! (uncertainty, descriptors) → [`strategy`] (what to label, how to adapt) → [`metrics`]
//! (DSC, surface distances, statistics); [`experiment`] runs the paper's protocol through
//! all of them; [`interop`] brings models in from PyTorch and safetensors and takes them out
//! to safetensors and ONNX. [`synth`] makes a synthetic multi-centre,
//! multi-rater cohort to try it all; [`schema`] describes every file; [`rng`], [`fsutil`]
//! and [`mem`] serve them all.

pub mod cluster;
pub mod dataset;
pub mod device;
pub mod experiment;
pub mod fsutil;
pub mod fuzz;
pub mod infer;
pub mod interop;
pub mod job;
pub mod mem;
pub mod metrics;
pub mod model;
mod panics;
pub mod plugin;
pub mod preprocess;
pub mod report;
pub mod rng;
pub mod schema;
pub mod script;
pub mod serve;
pub mod strategy;
pub mod synth;
pub mod train;
pub mod volume;
pub mod watch;

/// The engine's version (Cargo's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this engine was built from: a short hash, `+changes` appended when the work
/// tree differed from it at build time, or `unknown` when built outside a git checkout.
pub const COMMIT: &str = env!("DELINEA_COMMIT");
