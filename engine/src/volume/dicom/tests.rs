//! The reader against the real 20-slice MR series (values SimpleITK 2.5.7 gives for it) and the
//! small series `tests/fixtures/dicom/make.py` writes with pydicom (values in its expected.json).

use std::path::{Path, PathBuf};

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dicom")
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap()
}

fn assert_affine(got: &crate::volume::Affine, want: &serde_json::Value, tol: f64) {
    for r in 0..4 {
        for c in 0..4 {
            let w = want[r][c].as_f64().unwrap();
            assert!(
                (got[r][c] - w).abs() < tol,
                "affine[{r}][{c}] = {} vs {w}\n{got:?}",
                got[r][c]
            );
        }
    }
}

fn assert_voxels(v: &Volume, kji: &serde_json::Value) {
    let [nx, ny, nz] = v.geometry.dims;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let want = kji[k][j][i].as_f64().unwrap() as f32;
                assert_eq!(v.data[v.geometry.index(i, j, k)], want, "voxel ({i}, {j}, {k})");
            }
        }
    }
}

#[test]
#[allow(clippy::print_stdout)] // the skip notice
fn the_real_series_matches_simpleitk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/dicom-mr-series");
    if !dir.is_dir() {
        println!(
            "SKIPPED: {} is absent; the real-series check needs ../shared/data",
            dir.display()
        );
        return;
    }
    let v = read_dicom_volume(&dir).unwrap();
    // SimpleITK 2.5.7: ImageSeriesReader on GetGDCMSeriesFileNames(dir): size (256, 256, 20),
    // spacing (0.859375, 0.859375, 7.000524317522338), origin (-110.5, -78.3063, -72.7575), the
    // direction of the oblique IOP; written to NIfTI and read back with nibabel for the RAS
    // affine and the voxels below (its float32 sform: hence the 1e-4 tolerance).
    assert_eq!(v.geometry.dims, [256, 256, 20]);
    assert!(
        (v.geometry.spacing[2] - 7.000524317522338).abs() < 1e-6,
        "{:?}",
        v.geometry.spacing
    );
    let want = serde_json::json!([
        [-0.859375, 0.0, 0.0, 110.5],
        [0.0, -0.8516061902046204, 0.9391763806343079, 78.3062973022461],
        [0.0, 0.1152920350432396, 6.937239170074463, -72.75749969482422],
        [0.0, 0.0, 0.0, 1.0]
    ]);
    assert_affine(&v.geometry.affine, &want, 1e-4);
    let g = &v.geometry;
    let sum: f64 = v.data.iter().map(|x| *x as f64).sum();
    assert_eq!(sum, 219_593_921.0);
    for ((i, j, k), want) in [((128, 128, 10), 407.0), ((100, 150, 0), 366.0), ((200, 60, 19), 19.0)] {
        assert_eq!(v.data[g.index(i, j, k)], want, "voxel ({i}, {j}, {k})");
    }
}

#[test]
fn a_tilted_reversed_rescaled_series_matches_simpleitk() {
    let e = &expected()["tilted"];
    let v = read_dicom_volume(&fixtures().join("tilted")).unwrap();
    assert_eq!(
        v.geometry.dims.to_vec(),
        e["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect::<Vec<_>>()
    );
    assert_affine(&v.geometry.affine, &e["affine"], 1e-6);
    assert_voxels(&v, &e["voxels_kji"]);
    assert!(
        (v.geometry.spacing[2] - 2.5).abs() < 1e-6,
        "from the positions, not SliceThickness 9.9"
    );
}

#[test]
fn rle_deflated_and_jpeg_2000_compressed_series_read_as_the_uncompressed_ones() {
    let tilted = read_dicom_volume(&fixtures().join("tilted")).unwrap();
    assert_eq!(read_dicom_volume(&fixtures().join("rle")).unwrap(), tilted);
    // The data set deflated (pydicom's writer), inflated by delinea's reader under its cap.
    assert_eq!(read_dicom_volume(&fixtures().join("deflated")).unwrap(), tilted);
    // JPEG 2000 lossless (pylibjpeg-openjpeg's encoder; openjp2's decoder, pure Rust).
    let j2k = read_dicom_volume(&fixtures().join("j2k")).unwrap();
    let plain = read_dicom_volume(&fixtures().join("j2k-plain")).unwrap();
    assert_eq!(j2k.geometry.dims, [64, 64, 3]);
    assert!(plain.data.iter().any(|v| *v != plain.data[0]), "a varied image");
    assert_eq!(j2k, plain);
}

#[test]
fn an_enhanced_multiframe_file_is_one_volume_sorted_by_position() {
    let v = read_dicom_volume(&fixtures().join("multiframe.dcm")).unwrap();
    assert_eq!(v.geometry.dims, [3, 4, 3]);
    assert_eq!(v.geometry.spacing.map(|s| (s * 1e6).round() / 1e6), [0.6, 0.7, 2.5]);
    assert_voxels(&v, &expected()["multiframe"]["voxels_kji"]);
    // Voxel 0 is the lowest frame's first pixel: LPS (-10, 20, 30) → RAS (10, -20, 30).
    let o = v.geometry.to_world([0.0; 3]);
    assert!(
        (o[0] - 10.0).abs() < 1e-6 && (o[1] + 20.0).abs() < 1e-6 && (o[2] - 30.0).abs() < 1e-6,
        "{o:?}"
    );
}

#[test]
fn every_bad_series_is_refused_naming_the_file_and_the_reason() {
    let cases = [
        ("gap", "non-uniform slice spacing"),
        ("duplicate", "duplicate slices"),
        ("mixed-size", "size"),
        ("no-orientation", "ImageOrientationPatient"),
        ("not-an-image", "no image object"),
        ("truncated.dcm", "truncated"),
        ("two-series", "holds 2 series"),
        ("jpeg-ls.dcm", "transfer syntax 1.2.840.10008.1.2.4.80"),
    ];
    for (name, words) in cases {
        let e = read_dicom_volume(&fixtures().join(name)).unwrap_err().to_string();
        assert!(e.contains(words) && e.contains(name), "{name}: {e}");
    }
    assert_eq!(read_series(&fixtures().join("two-series")).unwrap().len(), 2);
    assert!(is_dicom(&fixtures().join("tilted")) && !is_dicom(&fixtures().join("make.py")));
}

/// The sphere series and a mask of its bright voxels, label 1, with one voxel relabelled 2.
fn sphere_and_mask() -> (Series, crate::volume::LabelMap) {
    let series = read_one_series(&fixtures().join("sphere")).unwrap();
    let mut mask = crate::volume::LabelMap {
        geometry: series.volume.geometry.clone(),
        data: series.volume.data.iter().map(|v| u8::from(*v > 500.0)).collect(),
    };
    let first = mask.data.iter().position(|v| *v == 1).unwrap();
    mask.data[first] = 2;
    (series, mask)
}

#[test]
fn the_sphere_series_references_its_images_in_slice_order() {
    let (series, _) = sphere_and_mask();
    let r = &series.reference;
    assert_eq!(r.slices.len(), 10);
    assert!(r.study_uid.is_some() && r.frame_of_reference.is_some());
    // Files are stored in reverse: slice 0 is the last file, IM0010.dcm.
    assert!(series.files[0].ends_with("IM0010.dcm"), "{:?}", series.files[0]);
    let normal = [0.0, -(15f64.to_radians().sin()), 15f64.to_radians().cos()];
    let along: Vec<f64> = r.slices.iter().map(|s| dot(s.position, normal)).collect();
    assert!(along.windows(2).all(|w| (w[1] - w[0] - 2.0).abs() < 1e-4), "{along:?}");
    assert!(r.slices.iter().all(|s| s.frame.is_none()));
}

#[test]
fn a_label_picks_its_voxels_and_an_unreferenceable_series_is_refused() {
    let (mut series, mask) = sphere_and_mask();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seg.dcm");
    let only_2 = Options {
        label: Some(2),
        ..Options::default()
    };
    let w = DerivedFormat::Seg
        .write(&mask, Path::new("mask"), &series, &out, &only_2)
        .unwrap();
    assert_eq!((w.voxels, w.slices, w.items), (1, 1, 10));
    let all = DerivedFormat::Rtstruct
        .write(&mask, Path::new("mask"), &series, &out, &Options::default())
        .unwrap();
    assert_eq!(all.voxels, 592);
    series.reference.frame_of_reference = None;
    let e = DerivedFormat::Rtstruct
        .write(
            &mask,
            Path::new("mask"),
            &series,
            &dir.path().join("no.dcm"),
            &Options::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lacks FrameOfReferenceUID") && e.contains("IM0010.dcm"),
        "{e}"
    );
    assert!(!dir.path().join("no.dcm").exists());
}
