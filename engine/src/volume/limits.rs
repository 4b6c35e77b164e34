//! How large a volume a header may ask for. Every reader (NIfTI, NRRD, DICOM) checks the
//! voxel count its header gives against one cap before it allocates or decompresses anything,
//! so a 1 MB gzip file that unpacks to a gigavoxel, or a header claiming 65535 × 65535 pixels,
//! is refused at once with the file and field named.
//!
//! The cap is [`DEFAULT_MAX_VOXELS`] (2^29 voxels: 2 GiB as f32, 812³, or 512 × 512 × 2048);
//! the environment variable [`MAX_VOXELS_VAR`] changes it for a process (a department with
//! whole-body CT, say).

use std::path::Path;

use super::Error;

/// The default cap on a volume's voxels: 2^29 (536 870 912).
pub const DEFAULT_MAX_VOXELS: usize = 1 << 29;

/// The environment variable that sets the cap (a positive integer).
pub const MAX_VOXELS_VAR: &str = "DELINEA_MAX_VOXELS";

/// The cap in force: [`MAX_VOXELS_VAR`] when set, else [`DEFAULT_MAX_VOXELS`]. A value that
/// is not a positive integer is an error naming the variable.
pub fn max_voxels() -> Result<usize, Error> {
    match std::env::var(MAX_VOXELS_VAR) {
        Err(_) => Ok(DEFAULT_MAX_VOXELS),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::BadLimit {
                variable: MAX_VOXELS_VAR,
                value: text,
            }),
        },
    }
}

/// The number of voxels `sizes` (a header's `field`) make, when it is within the cap; the
/// error names `path`, the field, the count and the cap.
pub fn check_voxels(path: &Path, field: &'static str, sizes: &[usize]) -> Result<usize, Error> {
    let limit = max_voxels()?;
    let voxels = sizes.iter().try_fold(1usize, |acc, s| acc.checked_mul(*s));
    match voxels {
        Some(n) if n <= limit => Ok(n),
        _ => Err(Error::TooLarge {
            path: path.to_path_buf(),
            field,
            sizes: sizes.to_vec(),
            limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_refuses_naming_the_field_and_overflow_is_refused_too() {
        let p = Path::new("big.nii.gz");
        assert_eq!(check_voxels(p, "dim", &[512, 512, 2048]).unwrap(), 1 << 29);
        let e = check_voxels(p, "dim", &[1024, 1024, 1024]).unwrap_err().to_string();
        assert!(
            e.contains("big.nii.gz") && e.contains("dim (1024 × 1024 × 1024)") && e.contains("536870912"),
            "{e}"
        );
        let e = check_voxels(p, "dim", &[usize::MAX, 2]).unwrap_err().to_string();
        assert!(e.contains("more voxels than the cap"), "{e}");
    }
}
