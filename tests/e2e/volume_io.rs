//! The NIfTI reader and writer: values nibabel reads from the same files, real files from
//! public packages (../shared/data/nifti), and corrupt files made here. Nothing may panic.

use std::path::{Path, PathBuf};

use delinea::volume::{self, Geometry, LabelMap, Volume};
use serde_json::Value;

use crate::util::{delinea, describe, fixtures, shared_data};

/// tests/fixtures/nifti/*.nii[.gz] were written, and nibabel.json recorded, by
/// `python bench/io/make_fixtures.py` (nibabel 5.4.2, numpy 2.4.6).
#[test]
fn fixtures_read_as_nibabel_reads_them() {
    let dir = fixtures().join("nifti");
    let reference: Value = serde_json::from_slice(&std::fs::read(dir.join("nibabel.json")).unwrap()).unwrap();
    let files = reference["files"].as_object().unwrap();
    assert!(files.len() >= 10);
    for (name, want) in files {
        let path = dir.join(name);
        let got = volume::inspect(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
        assert_eq!(got.dims.to_vec(), shape[..3].to_vec(), "{name}: dims");
        assert_close(
            &got.spacing,
            &as_f64s(&want["zooms"]),
            1e-7,
            &format!("{name}: spacing"),
        );
        let affine: Vec<f64> = got.affine.iter().flatten().copied().collect();
        let want_affine: Vec<f64> = want["affine"].as_array().unwrap().iter().flat_map(as_f64s).collect();
        assert_close(&affine, &want_affine, 1e-6, &format!("{name}: affine"));
        assert_eq!(
            got.orientation,
            want["axcodes"].as_str().unwrap(),
            "{name}: orientation"
        );
        assert_eq!(got.datatype, want["dtype"].as_str().unwrap(), "{name}: datatype");
        let n = (got.dims[0] * got.dims[1] * got.dims[2]) as f64;
        assert_close(
            &[got.stats.mean * n],
            &[want["sum"].as_f64().unwrap()],
            1e-6,
            &format!("{name}: sum"),
        );
        let v = volume::read_volume(&path).unwrap();
        assert_close(
            &[v.at(1, 2, 3) as f64],
            &[want["at_1_2_3"].as_f64().unwrap()],
            1e-6,
            &format!("{name}: voxel"),
        );
    }
}

/// Values printed by nibabel 5.4.2 for the readable files of ../shared/data/nifti:
/// `img.shape, img.header.get_zooms(), img.affine, nib.aff2axcodes(img.affine)` and the
/// mean of the finite voxels of `img.get_fdata()`.
#[test]
fn real_files_read_as_nibabel_reads_them() {
    let Some(data) = shared_data() else { return };
    let cases: [(&str, [usize; 3], [f64; 3], [f64; 4], &str, f64, usize); 6] = [
        (
            "anatomical.nii",
            [33, 41, 25],
            [2.0, 2.0, 2.0],
            [-2.0, 2.0, 2.0, 32.0],
            "LAS",
            8401.066725794532,
            0,
        ),
        (
            "reoriented_anat_moved.nii",
            [21, 26, 22],
            [4.0; 3],
            [4.0, 4.0, 4.0, -35.29789733886719],
            "RAS",
            2725.588532230912,
            0,
        ),
        (
            "resampled_anat_moved.nii",
            [17, 21, 3],
            [4.0, 4.0, 8.0],
            [-4.0, 4.0, 8.0, 32.0],
            "LAS",
            8442.21906172476,
            153,
        ),
        (
            "standard.nii.gz",
            [4, 5, 7],
            [1.0, 3.0, 2.0],
            [1.0, 3.0, 2.0, 0.0],
            "RAS",
            54.642857142857146,
            0,
        ),
        (
            "gm_mask_3mm.nii.gz",
            [61, 73, 61],
            [3.0; 3],
            [3.0, 3.0, 3.0, -90.0],
            "RAS",
            0.18786009063699918,
            0,
        ),
        (
            "MNI152_T1_3mm_brain_mask.nii.gz",
            [61, 73, 61],
            [3.0; 3],
            [3.0, 3.0, 3.0, -90.0],
            "RAS",
            0.261455714143716,
            0,
        ),
    ];
    for (name, dims, spacing, diag_and_x0, axcodes, mean, non_finite) in cases {
        let got = volume::inspect(&data.join("nifti").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.dims, dims, "{name}");
        assert_eq!(got.spacing, spacing, "{name}");
        let a = got.affine;
        assert_close(&[a[0][0], a[1][1], a[2][2], a[0][3]], &diag_and_x0, 1e-6, name);
        assert_eq!(got.orientation, axcodes, "{name}");
        assert_close(&[got.stats.mean], &[mean], 1e-9, name);
        assert_eq!(got.stats.non_finite, non_finite, "{name}");
    }
}

/// Every file of ../shared/data/nifti that delinea does not read is refused with its name
/// and the reason, by the library and by `delinea inspect` (exit 2), never by a panic.
#[test]
fn real_files_delinea_refuses_are_refused_clearly() {
    let Some(data) = shared_data() else { return };
    let cases = [
        ("example4d.nii.gz", "4D image with 2 entries along dim[4]"),
        ("functional.nii", "4D image with 20 entries"),
        ("example_nifti2.nii.gz", "NIfTI-2"),
        ("nifti2.hdr", "NIfTI-2"),
        ("nifti1.hdr", "nifti1.img: the image file of this NIfTI pair is missing"),
        ("analyze.hdr", "ANALYZE 7.5"),
        ("minc2_baddim.mnc", "HDF5"),
        ("test.mgz", "MGH"),
        ("phantom_truncated.PAR", "not a NIfTI-1 file"),
    ];
    for (name, reason) in cases {
        let path = data.join("nifti").join(name);
        let err = volume::read_volume(&path).unwrap_err().to_string();
        assert!(err.contains(reason), "{name}: {err}");
        let out = delinea(&["inspect", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(name.split('.').next().unwrap()) && stderr.contains(reason),
            "{name}: {stderr}"
        );
    }
}

/// A valid little-endian float32 file's bytes (352-byte header, then data), to corrupt.
fn valid_bytes(dir: &Path) -> Vec<u8> {
    let g = Geometry::axis_aligned([4, 3, 2], [1.0, 1.0, 2.0]);
    let v = Volume::from_vec(g.clone(), (0..g.len()).map(|x| x as f32).collect()).unwrap();
    let p = dir.join("valid.nii");
    volume::write_volume(&p, &v).unwrap();
    std::fs::read(&p).unwrap()
}

fn patched(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = valid_bytes(dir);
    edit(&mut bytes);
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn put_i16(b: &mut [u8], off: usize, v: i16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn corrupt_files_are_refused_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gz_truncated = {
        let g = Geometry::axis_aligned([40, 40, 10], [1.0, 1.0, 1.0]);
        let v = Volume::from_vec(g.clone(), (0..g.len()).map(|x| (x % 97) as f32).collect()).unwrap();
        let p = d.join("truncated.nii.gz");
        volume::write_volume(&p, &v).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        p
    };
    let garbage_gz = d.join("garbage.nii.gz");
    std::fs::write(&garbage_gz, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (gz_truncated, "corrupt or truncated gzip"),
        (garbage_gz, "corrupt or truncated gzip"),
        (patched(d, "zero_dim.nii", |b| put_i16(b, 42, 0)), "dim[1]: found 0"),
        (
            patched(d, "negative_dim.nii", |b| put_i16(b, 44, -3)),
            "dim[2]: found -3",
        ),
        (patched(d, "dim0.nii", |b| put_i16(b, 40, 9)), "dim[0]"),
        (patched(d, "rgb.nii", |b| put_i16(b, 70, 128)), "datatype 128"),
        (patched(d, "complex.nii", |b| put_i16(b, 70, 32)), "datatype 32"),
        (patched(d, "bad_datatype.nii", |b| put_i16(b, 70, 999)), "datatype"),
        (
            patched(d, "zero_spacing.nii", |b| {
                b[80..84].copy_from_slice(&0f32.to_le_bytes())
            }),
            "pixdim[1]",
        ),
        (
            patched(d, "negative_spacing.nii", |b| {
                b[88..92].copy_from_slice(&(-2f32).to_le_bytes())
            }),
            "pixdim[3]",
        ),
        (
            patched(d, "short_data.nii", |b| b.truncate(352 + 50)),
            "data shorter than the header says",
        ),
        (
            patched(d, "true_4d.nii", |b| {
                put_i16(b, 40, 4);
                put_i16(b, 48, 3)
            }),
            "4D image with 3 entries",
        ),
        (
            patched(d, "nifti2.nii", |b| b[0..4].copy_from_slice(&540i32.to_le_bytes())),
            "NIfTI-2",
        ),
        (
            patched(d, "not_nifti.nii", |b| b[0..4].copy_from_slice(b"abcd")),
            "not a NIfTI-1 file",
        ),
        (
            patched(d, "tiny.nii", |b| b.truncate(100)),
            "shorter than a NIfTI-1 header",
        ),
        (d.join("missing.nii"), "No such file"),
    ];
    for (path, reason) in cases {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let err = volume::read_volume(&path).unwrap_err().to_string();
        assert!(err.contains(&name) && err.contains(reason), "{name}: {err}");
        assert!(volume::read_label_map(&path).is_err(), "{name}");
        let out = delinea(&["inspect", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", describe(&out));
    }
}

/// The voxel cap (`volume::limits`): a header claiming a gigavoxel is refused at once by
/// `inspect` and `predict`, whatever data follows; the cap is an environment variable, a bad
/// value of which is refused naming it; DICOM series are capped alike.
#[test]
fn headers_asking_for_more_voxels_than_the_cap_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("gigavoxel.nii.gz");
    crate::util::oversized_nifti_gz(&big);
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_delinea"));
        cmd.args(args).env_remove("DELINEA_MAX_VOXELS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let start = std::time::Instant::now();
        let out = cmd.output().unwrap();
        (out, start.elapsed())
    };
    let big_arg = big.to_str().unwrap();
    let manifest = crate::util::tiny_cohort(&dir.path().join("cohort"), 5);
    let model = crate::util::tiny_model(&manifest, &dir.path().join("model"), 2);
    let predict_out = dir.path().join("pred");
    let predict_args = [
        "predict",
        "--model",
        &model,
        "--input",
        big_arg,
        "--out",
        predict_out.to_str().unwrap(),
    ];
    for args in [&["inspect", big_arg][..], &predict_args[..]] {
        let (out, took) = run(args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
        assert!(
            err.contains("gigavoxel.nii.gz") && err.contains("dim (1024 × 1024 × 1024)") && err.contains("536870912"),
            "{args:?}: {err}"
        );
        assert!(took < std::time::Duration::from_secs(5), "{args:?}: {took:?}");
    }
    // Raised, the cap lets the header through: its 24 bytes are then too few, and the memory
    // reserved is bounded by what the stream holds, not by the header.
    let (out, _) = run(&["inspect", big_arg], &[("DELINEA_MAX_VOXELS", "2000000000")]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("data shorter than the header says"),
        "{}",
        describe(&out)
    );
    let (out, _) = run(&["inspect", big_arg], &[("DELINEA_MAX_VOXELS", "lots")]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DELINEA_MAX_VOXELS=\"lots\""),
        "{}",
        describe(&out)
    );
    let sphere = crate::util::fixtures().join("dicom/sphere");
    let (out, _) = run(
        &["inspect", sphere.to_str().unwrap()],
        &[("DELINEA_MAX_VOXELS", "1000")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Rows × Columns × frames"),
        "{}",
        describe(&out)
    );
}

#[test]
fn label_maps_must_hold_small_integers() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::axis_aligned([3, 1, 1], [1.0, 1.0, 1.0]);
    for (values, reason) in [
        (vec![0.0, f32::NAN, 1.0], "voxel (1, 0, 0) is NaN"),
        (vec![0.0, 1.0, f32::INFINITY], "voxel (2, 0, 0) is inf"),
        (vec![0.5, 1.0, 0.0], "voxel (0, 0, 0) is 0.5"),
        (vec![0.0, 256.0, 0.0], "is 256"),
        (vec![-1.0, 0.0, 0.0], "is -1"),
    ] {
        let p = dir.path().join("bad_label.nii.gz");
        volume::write_volume(&p, &Volume::from_vec(g.clone(), values).unwrap()).unwrap();
        let err = volume::read_label_map(&p).unwrap_err().to_string();
        assert!(err.contains("bad_label.nii.gz") && err.contains(reason), "{err}");
    }
}

#[test]
fn a_label_map_off_its_image_grid_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let g = Geometry::axis_aligned([4, 4, 2], [1.0, 1.0, 3.0]);
    let image = dir.path().join("image.nii.gz");
    volume::write_volume(&image, &Volume::zeros(g.clone())).unwrap();
    let mut shifted = g.clone();
    shifted.affine[2][3] = 1.5;
    let mut bigger = g.clone();
    bigger.dims = [4, 4, 3];
    for (geometry, what) in [(shifted, "affine[2][3]"), (bigger, "dims")] {
        let labels = dir.path().join("labels.nii.gz");
        volume::write_label_map(&labels, &LabelMap::zeros(geometry)).unwrap();
        let err = volume::read_label_map_for(&labels, &image, &g).unwrap_err().to_string();
        assert!(
            err.contains("labels.nii.gz") && err.contains("image.nii.gz") && err.contains(what),
            "{err}"
        );
    }
    // Within tolerance (1e-3 mm) is the same grid.
    let mut nudged = g.clone();
    nudged.affine[0][3] = 0.0004;
    let labels = dir.path().join("nudged.nii.gz");
    volume::write_label_map(&labels, &LabelMap::zeros(nudged)).unwrap();
    volume::read_label_map_for(&labels, &image, &g).unwrap();
}

#[test]
fn inspect_json_has_the_documented_keys() {
    let path = fixtures().join("nifti/qform_only_rotated.nii");
    let out = delinea(&["inspect", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "dims",
        "spacing",
        "affine",
        "datatype",
        "orientation",
        "endianness",
        "stats",
        "header",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["affine"].as_array().unwrap().len(), 4);
    assert_eq!(v["header"]["affine_source"], "qform");
}

fn as_f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}: {got:?} vs {want:?}");
    }
}

#[test]
fn convert_writes_a_dicom_series_as_nifti_with_its_geometry_and_values() {
    use delinea::volume::dicom;
    let fixtures = fixtures().join("dicom");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tilted.nii.gz");
    let run = delinea(&[
        "convert",
        fixtures.join("tilted").to_str().unwrap(),
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(run.status.success(), "{}", describe(&run));
    let (series, nifti) = (
        dicom::read_dicom_volume(&fixtures.join("tilted")).unwrap(),
        volume::read_volume(&out).unwrap(),
    );
    assert_eq!(nifti.geometry.dims, series.geometry.dims);
    for r in 0..4 {
        for c in 0..4 {
            assert!((nifti.geometry.affine[r][c] - series.geometry.affine[r][c]).abs() < 1e-5);
        }
    }
    assert_eq!(nifti.data, series.data);
    // Several series: one file each into a folder, or a clear refusal for one file.
    let folder = dir.path().join("both");
    let run = delinea(&[
        "convert",
        fixtures.join("two-series").to_str().unwrap(),
        folder.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(run.status.success(), "{}", describe(&run));
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 2);
    let run = delinea(&[
        "convert",
        fixtures.join("two-series").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("holds 2 series"),
        "{}",
        describe(&run)
    );
    let run = delinea(&["inspect", fixtures.join("two-series").to_str().unwrap(), "--json"]);
    assert!(run.status.success(), "{}", describe(&run));
    let listed: Value = serde_json::from_slice(&run.stdout).unwrap();
    let dims: Vec<&Value> = listed.as_array().unwrap().iter().map(|s| &s["dims"]).collect();
    assert_eq!(dims.len(), 2, "{listed}");
    let run = delinea(&["convert", fixtures.join("gap").to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("non-uniform slice spacing"),
        "{}",
        describe(&run)
    );
}
