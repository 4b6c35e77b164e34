//! Cohorts: which cases, from which centre, labelled by which rater, in which split.
//!
//! [`Manifest::load`] checks the file's structure; [`validate`] opens every volume and
//! reports every problem with its case id. Reading voxels is left to `volume`.

mod error;
mod manifest;
mod validate;

pub use error::Error;
pub use manifest::{CaseEntry, CentreEntry, Manifest, ManifestFile, RaterEntry, Role, Split};
pub use validate::{validate, Problem, ValidationReport};
