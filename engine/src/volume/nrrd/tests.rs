//! Round trips, the LPS ↔ RAS conversion against hand-worked numbers, every refusal, and the
//! files `tests/fixtures/nrrd/make.py` writes with pynrrd (values SimpleITK 2.5.7 reads from
//! them, in its expected.json).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/nrrd")
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap()
}

fn oblique() -> LabelMap {
    let (s, c) = (0.3f64.sin(), 0.3f64.cos());
    let mut g = Geometry::axis_aligned([7, 5, 3], [0.6, 0.7, 3.3]);
    g.affine = [
        [-0.6 * c, 0.7 * s, 0.0, 91.25],
        [0.6 * s, 0.7 * c, 0.1, -120.5],
        [0.0, 0.0, 3.3, -33.125],
        [0.0, 0.0, 0.0, 1.0],
    ];
    // NRRD has no spacing apart from the directions: the reader takes their lengths.
    g.spacing = [0, 1, 2].map(|c| (0..3).map(|r| g.affine[r][c] * g.affine[r][c]).sum::<f64>().sqrt());
    let data = (0..g.len()).map(|v| (v % 5) as u8).collect();
    LabelMap::from_vec(g, data).unwrap()
}

/// A file with `header` lines (after the magic) and `data` after the blank line.
fn file(header: &[&str], data: &[u8]) -> Vec<u8> {
    let mut out = b"NRRD0004\n".to_vec();
    for line in header {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

/// The usual 2 × 2 × 2 LPS header of `ty` in `encoding`, little-endian, with `extra` lines.
fn file_2x2x2(ty: &str, encoding: &str, extra: &[&str], data: &[u8]) -> Vec<u8> {
    let (ty, encoding) = (format!("type: {ty}"), format!("encoding: {encoding}"));
    let mut h = vec![
        ty.as_str(),
        "dimension: 3",
        "space: left-posterior-superior",
        "sizes: 2 2 2",
        "space directions: (1,0,0) (0,1,0) (0,0,1)",
        "endian: little",
        encoding.as_str(),
    ];
    h.extend_from_slice(extra);
    file(&h, data)
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The error message for `bytes`, which must be refused.
fn refusal(bytes: &[u8]) -> String {
    let err = decode_label_map(Path::new("in.nrrd"), bytes).unwrap_err().to_string();
    assert!(err.starts_with("in.nrrd: "), "{err}");
    err
}

fn assert_refused(bytes: &[u8], needles: &[&str]) {
    let err = refusal(bytes);
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

#[test]
fn round_trip_keeps_an_oblique_affine_bit_for_bit() {
    let labels = oblique();
    let back = decode_label_map(Path::new("x.nrrd"), &encode_label_map(&labels)).unwrap();
    assert_eq!(back.labels, labels);
    assert!(back.segments.is_empty() && back.key_values.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mask.nrrd");
    write_label_map(&path, &labels).unwrap();
    assert_eq!(read_label_map(&path).unwrap().labels, labels);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
}

#[test]
fn the_header_is_written_in_lps() {
    let mut g = Geometry::axis_aligned([2, 3, 4], [0.5, 0.75, 2.0]);
    g.affine[0][3] = 10.0;
    g.affine[1][3] = -20.5;
    g.affine[2][3] = 30.0;
    let bytes = encode_label_map(&LabelMap::zeros(g));
    let text = String::from_utf8_lossy(&bytes);
    for line in [
        "NRRD0004\n",
        "\ntype: uint8\n",
        "\nsizes: 2 3 4\n",
        "\nspace: left-posterior-superior\n",
        "\nspace directions: (-0.5,0,0) (0,-0.75,0) (0,0,2)\n",
        "\nkinds: domain domain domain\n",
        "\nencoding: gzip\n",
        "\nspace origin: (-10,20.5,30)\n\n\x1f\u{fffd}",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

#[test]
fn lps_ras_and_las_become_the_ras_affine() {
    fn header(space: &str) -> [&str; 7] {
        [
            "type: uint8",
            "dimension: 3",
            space,
            "sizes: 1 1 1",
            "space directions: (0.6,0.8,0) (0,0,2) (3,0,0)",
            "encoding: raw",
            "space origin: (10,-20,30)",
        ]
    }
    let cases = [
        ("space: LPS", [[-0.6, 0.0, -3.0, -10.0], [-0.8, 0.0, 0.0, 20.0]]),
        (
            "space: right-anterior-superior",
            [[0.6, 0.0, 3.0, 10.0], [0.8, 0.0, 0.0, -20.0]],
        ),
        (
            "space: left-anterior-superior",
            [[-0.6, 0.0, -3.0, -10.0], [0.8, 0.0, 0.0, -20.0]],
        ),
    ];
    for (space, rows) in cases {
        let g = decode_label_map(Path::new("x"), &file(&header(space), &[7]))
            .unwrap()
            .labels
            .geometry;
        assert_eq!(g.affine[0], rows[0], "{space}");
        assert_eq!(g.affine[1], rows[1], "{space}");
        assert_eq!(g.affine[2], [0.0, 2.0, 0.0, 30.0], "{space}");
        assert_eq!(g.affine[3], [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(g.spacing, [1.0, 2.0, 3.0]);
    }
}

#[test]
fn types_endians_and_encodings_decode_to_labels() {
    let values: Vec<u8> = (0..8).collect();
    let be16: Vec<u8> = values.iter().flat_map(|v| u16::from(*v).to_be_bytes()).collect();
    let be16 = String::from_utf8_lossy(&file_2x2x2("uint16", "gzip", &[], &[]))
        .replace("endian: little", "endian: big")
        .into_bytes()
        .into_iter()
        .chain(gz(&be16))
        .collect::<Vec<u8>>();
    let f64s: Vec<u8> = values.iter().flat_map(|v| f64::from(*v).to_le_bytes()).collect();
    let i8s: Vec<u8> = values.clone();
    for (name, bytes) in [
        ("uint16 big gzip", be16),
        ("double gz", file_2x2x2("double", "gz", &[], &gz(&f64s))),
        (
            "int8 raw, trailing bytes",
            file_2x2x2("signed char", "raw", &[], &[&i8s[..], b"\n\n"].concat()),
        ),
    ] {
        assert_eq!(
            decode_label_map(Path::new("x"), &bytes).unwrap().labels.data,
            values,
            "{name}"
        );
    }
}

#[test]
fn each_refusal_names_the_problem() {
    let eight = [0u8; 8];
    let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (
            b"P5\n2 2\n".to_vec(),
            vec!["not a NRRD file", "\"P5\"", "NRRD0001 to NRRD0005"],
        ),
        (gz(b"NRRD0004\n"), vec!["not a NRRD file", "gzip data"]),
        (
            b"NRRD0009\ntype: uint8\n\n".to_vec(),
            vec!["\"NRRD0009\"", "NRRD0001 to NRRD0005"],
        ),
        (b"NRRD0004".to_vec(), vec!["\"NRRD0004\"", "magic"]),
        (b"NRRD0004\ntype: uint8\n".to_vec(), vec!["no blank line"]),
        (
            file_2x2x2("uint8", "raw", &["data file: mask.raw"], &[]),
            vec!["detached data", "mask.raw"],
        ),
        (
            file_2x2x2("uint8", "raw", &["byte skip: -1"], &eight),
            vec!["byte skip: -1"],
        ),
        (
            file_2x2x2("uint8", "raw", &[], &eight[..7]),
            vec!["data shorter", "8 bytes expected", "7 found"],
        ),
        (
            file_2x2x2("uint8", "gzip", &[], &gz(&eight[..5])),
            vec!["data shorter", "5 found"],
        ),
        (
            file_2x2x2("uint8", "gzip", &[], &gz(&[0; 9])),
            vec!["more than the 8 bytes"],
        ),
        (file_2x2x2("uint8", "gzip", &[], b"\x1f\x8b\x08garbage"), vec!["gzip"]),
        (
            file_2x2x2("block", "raw", &[], &eight),
            vec!["unsupported", "type `block`"],
        ),
        (
            file_2x2x2("uint8", "ascii", &[], b"0 0 0 0 0 0 0 0"),
            vec!["encoding `ascii`"],
        ),
        (
            file_2x2x2("uint8", "raw", &["type: uint8"], &eight),
            vec!["field `type` given twice"],
        ),
        (
            file_2x2x2("uint8", "raw", &["not a field"], &eight),
            vec!["header line 9", "not a field"],
        ),
    ];
    for (bytes, needles) in &cases {
        assert_refused(bytes, needles);
    }
}

#[test]
fn refusals_of_sizes_geometry_and_values() {
    let header = |sizes: &str, space: &str, dirs: &str| {
        vec![
            "type: uint16".to_string(),
            "dimension: 3".into(),
            sizes.into(),
            space.into(),
            dirs.into(),
            "encoding: raw".into(),
            "endian: little".into(),
        ]
    };
    let lps = "space: LPS";
    let unit = "space directions: (1,0,0) (0,1,0) (0,0,1)";
    let with = |h: Vec<String>, data: &[u8]| file(&h.iter().map(String::as_str).collect::<Vec<_>>(), data);
    let le = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let two = le(&[0, 1]);
    let mut no_endian = header("sizes: 2 1 1", lps, unit);
    no_endian.pop();
    let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (
            with(header("sizes: 100000 100000 100000", lps, unit), &[]),
            vec!["sizes", "more voxels than the cap"],
        ),
        (
            with(header("sizes: 18446744073709551615 2 2", lps, unit), &[]),
            vec!["sizes"],
        ),
        (with(header("sizes: 2 0 1", lps, unit), &[]), vec!["sizes", "positive"]),
        (with(no_endian, &two), vec!["endian", "missing"]),
        (
            with(header("sizes: 2 1 1", "space: scanner-xyz", unit), &two),
            vec!["space `scanner-xyz`"],
        ),
        (
            with(header("sizes: 2 1 1", "spacings: 1 1 1", unit), &two),
            vec!["no `space` field"],
        ),
        (
            with(
                header("sizes: 2 1 1", lps, "space directions: (1,0,0) (0,0,0) (0,0,1)"),
                &two,
            ),
            vec!["space directions", "(0,0,0)"],
        ),
        (
            with(header("sizes: 2 1 1", lps, "space directions: (1,0,0) (0,1,0)"), &two),
            vec!["space directions"],
        ),
        (
            with(
                header("sizes: 2 1 1", lps, "space directions: (1,0,0) (0,nan,0) (0,0,1)"),
                &two,
            ),
            vec!["space directions"],
        ),
        (
            with(header("sizes: 2 1 1", lps, unit), &le(&[3, 300])),
            vec!["not a label map", "voxel (1, 0, 0) is 300"],
        ),
    ];
    for (bytes, needles) in &cases {
        assert_refused(bytes, needles);
    }
}

/// A 4D Slicer-style file: 2 layers on a 2 × 1 × 1 grid, `stacks` layer values per voxel.
fn layered(stacks: &[u8], extra: &[&str]) -> Vec<u8> {
    let mut h = vec![
        "type: uint8",
        "dimension: 4",
        "space: left-posterior-superior",
        "sizes: 2 2 1 1",
        "space directions: none (1,0,0) (0,1,0) (0,0,1)",
        "kinds: list domain domain domain",
        "encoding: raw",
    ];
    h.extend_from_slice(extra);
    file(&h, stacks)
}

#[test]
fn layers_merge_unless_they_overlap() {
    let segs = [
        "Segment0_Name:=a",
        "Segment0_LabelValue:=1",
        "Segment1_Name:=b",
        "Segment1_LabelValue:=2",
    ];
    let ok = decode_label_map(Path::new("x"), &layered(&[1, 0, 0, 2], &segs)).unwrap();
    assert_eq!(ok.labels.data, vec![1, 2]);
    assert_eq!(ok.labels.geometry.dims, [2, 1, 1]);
    let names: Vec<_> = ok.segments.iter().map(|s| (s.name.as_str(), s.value)).collect();
    assert_eq!(names, [("a", 1), ("b", 2)]);
    assert_refused(
        &layered(&[0, 0, 1, 2], &segs),
        &[
            "overlapping segments",
            "voxel (1, 0, 0)",
            "label 1 in layer 0",
            "label 2 in layer 1",
            "labelmap",
        ],
    );
    let same = ["Segment0_Name:=a", "Segment1_Name:=b"]; // no LabelValue: both 1
    assert_refused(
        &layered(&[1, 0, 0, 1], &same),
        &["segments \"a\" and \"b\" both have label value 1"],
    );
    assert_refused(
        &layered(&[1, 0, 0, 1], &["Segment0_LabelValue:=256"]),
        &["Segment0_LabelValue is \"256\""],
    );
    let time = String::from_utf8(layered(&[0; 4], &[]))
        .unwrap()
        .replace("list", "time");
    assert_refused(time.as_bytes(), &["4D", "segment layers"]);
}

#[test]
fn no_prefix_of_a_file_panics() {
    let bytes = encode_label_map(&oblique());
    for n in 0..bytes.len() {
        assert!(decode_label_map(Path::new("x"), &bytes[..n]).is_err(), "prefix {n}");
    }
    let text = file_2x2x2("int32", "raw", &["space origin: (1,2,3)"], &[0; 32]);
    for n in 0..text.len() {
        let mut flipped = text.clone();
        flipped[n] ^= 0x20;
        let _ = decode_label_map(Path::new("x"), &flipped);
    }
}

#[test]
fn pynrrd_fixtures_read_as_simpleitk_reads_them() {
    let want = expected();
    for name in [
        "lps_oblique_raw.nrrd",
        "ras_int16_big_gzip.nrrd",
        "las_float32_raw.nrrd",
        "slicer.seg.nrrd",
        "layers.seg.nrrd",
    ] {
        let got = read_label_map(&fixtures().join(name)).unwrap();
        let w = &want[name];
        let g = &got.labels.geometry;
        let dims: Vec<usize> = serde_json::from_value(w["dims"].clone()).unwrap();
        assert_eq!(g.dims.to_vec(), dims, "{name}");
        for c in 0..3 {
            assert!(
                (g.spacing[c] - w["spacing"][c].as_f64().unwrap()).abs() < 1e-12,
                "{name} spacing {c}"
            );
        }
        for r in 0..4 {
            for c in 0..4 {
                let e = w["affine"][r][c].as_f64().unwrap();
                assert!(
                    (g.affine[r][c] - e).abs() < 1e-12,
                    "{name} affine[{r}][{c}] {} vs {e}",
                    g.affine[r][c]
                );
            }
        }
        let voxels: Vec<u8> = serde_json::from_value(w["voxels"].clone()).unwrap();
        assert_eq!(got.labels.data, voxels, "{name}");
        let segments: Vec<(String, u8)> = w["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["value"].as_u64().unwrap() as u8,
                )
            })
            .collect();
        let got_segments: Vec<(String, u8)> = got.segments.iter().map(|s| (s.name.clone(), s.value)).collect();
        assert_eq!(got_segments, segments, "{name}");
    }
}

/// The label map `make.py check` expects in delinea_written.nrrd.
fn delinea_written() -> LabelMap {
    let w = &expected()["delinea_written"];
    let dims: [usize; 3] = serde_json::from_value(w["dims"].clone()).unwrap();
    let affine: Affine = serde_json::from_value(w["affine"].clone()).unwrap();
    let mut g = Geometry::axis_aligned(dims, [1.0; 3]);
    g.spacing = [0, 1, 2].map(|c| (0..3).map(|r| affine[r][c] * affine[r][c]).sum::<f64>().sqrt());
    g.affine = affine;
    LabelMap::from_vec(g, serde_json::from_value(w["voxels"].clone()).unwrap()).unwrap()
}

/// `DELINEA_NRRD_FIXTURE=path` writes the file again (README.md in the fixtures folder).
#[test]
fn the_committed_delinea_file_reads_back() {
    let labels = delinea_written();
    if let Ok(out) = std::env::var("DELINEA_NRRD_FIXTURE") {
        write_label_map(Path::new(&out), &labels).unwrap();
    }
    let back = read_label_map(&fixtures().join("delinea_written.nrrd")).unwrap();
    assert_eq!(back.labels, labels);
}
