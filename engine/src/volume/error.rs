//! Errors of the volume stage: every variant names the file and what is wrong with it.

use std::path::PathBuf;

/// Why a volume or label map could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// The gzip stream is truncated or corrupt.
    #[error("{path}: corrupt or truncated gzip data ({reason})")]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor said.
        reason: String,
    },
    /// The file is not a NIfTI-1 file at all.
    #[error("{path}: not a NIfTI-1 file: {reason}")]
    NotNifti {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The file is not a NRRD file, or one whose header delinea cannot parse.
    #[error("{path}: not a NRRD file delinea reads: {reason}")]
    NotNrrd {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A valid file of a kind delinea does not read (NIfTI-2, RGB, complex, true 4D …).
    #[error("{path}: unsupported: {what}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported, and what to do about it.
        what: String,
    },
    /// A header field holds a value that makes no sense.
    #[error("{path}: bad header field {field}: found {found}, expected {expected}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// The header field (NIfTI, or NRRD such as `sizes`).
        field: &'static str,
        /// The value found.
        found: String,
        /// What a valid value looks like.
        expected: String,
    },
    /// Fewer data bytes than the header promises.
    #[error(
        "{path}: data shorter than the header says: {expected} bytes expected after offset {offset}, {found} found"
    )]
    Truncated {
        /// The file holding the voxel data.
        path: PathBuf,
        /// Where the data starts.
        offset: usize,
        /// Bytes the header's dims and datatype need.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// A header asks for more voxels than the cap ([`super::limits`]).
    #[error(
        "{path}: header field {field} ({}) asks for more voxels than the cap of {limit} ({}): refused before reading the data; raise the cap with {}=N if the volume is real",
        sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" × "),
        super::limits::MAX_VOXELS_VAR,
        super::limits::MAX_VOXELS_VAR
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The header field (`dim`, NRRD's `sizes`, DICOM's rows × columns × frames).
        field: &'static str,
        /// The sizes it gives.
        sizes: Vec<usize>,
        /// The cap in force.
        limit: usize,
    },
    /// The voxel cap's environment variable is not a positive integer.
    #[error("{variable}={value:?}: the voxel cap must be a positive integer")]
    BadLimit {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// Voxel values that cannot be a label map (NaN, Inf, fractions, out of 0..=255).
    #[error("{path}: not a label map: {reason}")]
    BadLabels {
        /// The file.
        path: PathBuf,
        /// The first offending value and where it is.
        reason: String,
    },
    /// An image with no finite voxel at all.
    #[error("{path}: no finite voxel value in the image")]
    AllNonFinite {
        /// The file.
        path: PathBuf,
    },
    /// A label map that does not lie on its image's grid.
    #[error("label map {labels} does not match image {image}: {detail}")]
    GeometryMismatch {
        /// The image file.
        image: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// What differs.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, cause: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}
