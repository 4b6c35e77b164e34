//! Import and export against the reference network's fixtures (tests/fixtures/pytorch, made
//! by its make.py with PyTorch: weights, fixed inputs and PyTorch's outputs on them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use safetensors::Dtype;

use super::read::{read_safetensors, Raw};
use super::*;
use crate::model::checkpoint;
use crate::preprocess::Preprocessing;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/pytorch")
        .join(name)
}

fn io() -> BTreeMap<String, Raw> {
    read_safetensors(&std::fs::read(fixture("io.safetensors")).unwrap())
        .unwrap()
        .tensors
}

/// Imports fixture `name` into a fresh folder (slice 16) and returns the folder.
fn import(name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(name.replace('.', "-"));
    let options = ImportOptions {
        slice_size: Some(16),
        ..Default::default()
    };
    import_model(&fixture(name), &out, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
    out
}

/// Evaluation-mode logits of model folder `dir` on `x`.
fn logits(dir: &Path, x: &Raw) -> Vec<f32> {
    let (model, _) = checkpoint::load::<Flex>(dir, &Default::default()).unwrap();
    let [n, c, h, w] = x.shape[..] else {
        panic!("{:?}", x.shape)
    };
    let input = Tensor::<Flex, 4>::from_data(TensorData::new(x.values.clone(), [n, c, h, w]), &Default::default());
    model.forward(input).into_data().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The paper code's checkpoint, a bare state_dict with `module.`, the pre-1.6 pickle format
/// and safetensors all give
/// PyTorch's outputs (within 1e-4) at two slice sizes and batch sizes, for two networks.
#[test]
fn imported_networks_give_pytorchs_outputs() {
    let _rng = crate::model::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let io = io();
    for name in ["checkpoint.pth", "state_dict.pth", "legacy.pth", "model.safetensors"] {
        let model = import(name, dir.path());
        for size in ["16x16", "32x48"] {
            let want = &io[&format!("small_logits_{size}")].values;
            let got = logits(&model, &io[&format!("small_input_{size}")]);
            let d = max_diff(&got, want);
            assert!(d < 1e-4, "{name} at {size}: max difference {d}");
        }
    }
    let wide = import("wide3.safetensors", dir.path());
    let card = checkpoint::load_card(&wide).unwrap();
    assert_eq!((card.architecture.in_channels, card.architecture.classes), (2, 3));
    assert_eq!(card.architecture.features, [4, 8, 8, 16, 16]);
    let got = logits(&wide, &io["wide3_input_32x32"]);
    let d = max_diff(&got, &io["wide3_logits_32x32"].values);
    assert!(d < 1e-4, "wide3: max difference {d}");
}

/// The card records the file, its hash, the nesting and what was ignored; the preprocessing is
/// the paper's unless told otherwise.
#[test]
fn the_card_says_where_the_model_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let card = import_model(&fixture("checkpoint.pth"), &out, &ImportOptions::default()).unwrap();
    assert_eq!(card.preprocessing, Preprocessing::default());
    assert_eq!(card.slice_size, 256);
    let i = card.imported.unwrap();
    assert_eq!((i.file.as_str(), i.format.as_str()), ("checkpoint.pth", "pytorch"));
    assert_eq!(i.nested_under.as_deref(), Some("state_dict"));
    assert_eq!(i.sha256, sha256_file(&fixture("checkpoint.pth")).unwrap());
    assert_eq!(i.sha256.len(), 64);
    assert_eq!(i.tensors, 118);
    assert!(
        i.ignored.iter().any(|s| s.contains("18 num_batches_tracked")),
        "{:?}",
        i.ignored
    );
    assert_eq!(checkpoint::load_card(&out).unwrap().imported.unwrap().sha256, i.sha256);
    // A card file: preprocessing and dropout.
    let custom = ImportOptions {
        slice_size: Some(64),
        card: ImportCard {
            dropout: Some(vec![0.0, 0.0, 0.1, 0.1, 0.2]),
            ..Default::default()
        },
    };
    let card = import_model(&fixture("model.safetensors"), &dir.path().join("c"), &custom).unwrap();
    assert_eq!((card.slice_size, card.architecture.dropout[4]), (64, 0.2));
}

/// Writes `tensors` (F32 values, or I64 zeros where no values) as safetensors.
fn write(path: &Path, tensors: &BTreeMap<String, Raw>) {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, r)| match r.values.is_empty() {
            true => (
                k.clone(),
                Dtype::I64,
                r.shape.clone(),
                vec![0; 8 * r.shape.iter().product::<usize>()],
            ),
            false => (
                k.clone(),
                Dtype::F32,
                r.shape.clone(),
                r.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, d, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn refusal(tensors: &BTreeMap<String, Raw>, dir: &Path, name: &str) -> String {
    let file = dir.join(format!("{name}.safetensors"));
    write(&file, tensors);
    let out = dir.join(name);
    let e = import_model(&file, &out, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(!out.exists(), "{name}: nothing may be written on a refusal");
    e
}

/// Missing, unexpected, misshapen, non-finite keys and other networks are refused naming the
/// key and both shapes; nothing is written.
#[test]
fn wrong_files_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = read_safetensors(&std::fs::read(fixture("model.safetensors")).unwrap())
        .unwrap()
        .tensors;
    let mut t = good.clone();
    let moved = t.remove("decoder.up2.conv.conv_conv.4.bias").unwrap();
    t.insert("decoder.up2.conv.conv_conv.3.bias".into(), moved);
    let e = refusal(&t, dir.path(), "renamed");
    assert!(
        e.contains("missing `decoder.up2.conv.conv_conv.4.bias` (expected shape [8])"),
        "{e}"
    );
    assert!(
        e.contains("unexpected `decoder.up2.conv.conv_conv.3.bias` (shape [8])"),
        "{e}"
    );

    let mut t = good.clone();
    t.get_mut("decoder.up3.up.weight").unwrap().shape = vec![8, 4, 1, 4];
    let e = refusal(&t, dir.path(), "shape");
    assert!(
        e.contains("`decoder.up3.up.weight` has shape [8, 4, 1, 4], the network wants [8, 4, 2, 2]"),
        "{e}"
    );

    let mut t = good.clone();
    t.get_mut("encoder.down1.maxpool_conv.1.conv_conv.1.running_var")
        .unwrap()
        .values[0] = f32::NAN;
    let e = refusal(&t, dir.path(), "nan");
    assert!(e.contains("running_var` holds NaN"), "{e}");

    let other: BTreeMap<String, Raw> = [("fc.weight", vec![2, 3]), ("fc.bias", vec![2])]
        .into_iter()
        .map(|(k, s)| {
            let n = s.iter().product();
            (
                k.to_string(),
                Raw {
                    shape: s,
                    dtype: "F32".into(),
                    values: vec![0.5; n],
                },
            )
        })
        .collect();
    let e = refusal(&other, dir.path(), "other");
    assert!(e.contains("is not the PyMIC/SSL4MIS UNet"), "{e}");
    assert!(
        e.contains(
            "none of its 118 keys is there (the first is `encoder.in_conv.conv_conv.0.weight`, shape [16, 1, 3, 3])"
        ),
        "{e}"
    );
    assert!(e.contains("unexpected `fc.weight` (shape [2, 3])"), "{e}");

    // Not a model file at all, and a truncated one.
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"hello, this is not a checkpoint").unwrap();
    let e = import_model(&junk, &dir.path().join("j"), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("junk.pth") && e.contains("neither a PyTorch checkpoint"),
        "{e}"
    );
    let bytes = std::fs::read(fixture("checkpoint.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = import_model(&cut, &dir.path().join("k"), &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.pth"), "{e}");
    assert!(!dir.path().join("k").exists());

    // An output folder that holds something is not overwritten.
    let full = dir.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "x").unwrap();
    let e = import_model(&fixture("model.safetensors"), &full, &ImportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    // A slice size the network cannot take.
    let bad = ImportOptions {
        slice_size: Some(40),
        ..Default::default()
    };
    let e = import_model(&fixture("model.safetensors"), &dir.path().join("s"), &bad).unwrap_err();
    assert!(e.to_string().contains("multiple of 16"), "{e}");
}

/// Export writes the fixture's tensors bit for bit under its keys (num_batches_tracked as
/// int64 scalars), and an exported-then-imported model predicts the same bytes.
#[test]
fn export_gives_back_the_fixtures_tensors_and_reimports_identically() {
    let _rng = crate::model::rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let model = import("checkpoint.pth", dir.path());
    let out = dir.path().join("exported.safetensors");
    assert_eq!(export_safetensors(&model, &out).unwrap(), 136);
    let bytes = std::fs::read(&out).unwrap();
    let exported = read_safetensors(&bytes).unwrap();
    let fixture = read_safetensors(&std::fs::read(fixture("model.safetensors")).unwrap()).unwrap();
    assert_eq!(
        exported.tensors.keys().collect::<Vec<_>>(),
        fixture.tensors.keys().collect::<Vec<_>>()
    );
    for (k, want) in &fixture.tensors {
        let got = &exported.tensors[k];
        assert_eq!((&got.shape, &got.dtype), (&want.shape, &want.dtype), "{k}");
        let same = got
            .values
            .iter()
            .zip(&want.values)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same && got.values.len() == want.values.len(), "{k} differs");
    }
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let counter = file.tensor("encoder.in_conv.conv_conv.1.num_batches_tracked").unwrap();
    assert_eq!((counter.dtype(), counter.shape()), (Dtype::I64, &[][..]));
    assert_eq!(exported.metadata["format"], "pt");

    // Reimport: the same preprocessing (from the metadata) and the same output bytes.
    let again = dir.path().join("again");
    let card = import_model(&out, &again, &ImportOptions::default()).unwrap();
    assert_eq!(card.slice_size, 16, "the exported preprocessing comes back");
    let x = &io()["small_input_32x48"];
    assert_eq!(logits(&model, x), logits(&again, x));
    let named = |d: &Path| named_tensors(&checkpoint::load::<Flex>(d, &Default::default()).unwrap().0).unwrap();
    assert_eq!(named(&model), named(&again));
}

/// Reference points from .npy (float32 and float64) and .pt agree; wrong shapes and grids are
/// refused naming the file.
#[test]
fn reference_points_come_in_from_npy_and_pt() {
    let descriptor = crate::infer::DescriptorConfig::default();
    let a = import_references(&fixture("centroids.npy"), 256, descriptor).unwrap();
    let b = import_references(&fixture("centroids64.npy"), 256, descriptor).unwrap();
    let c = import_references(&fixture("centroids.pt"), 64, descriptor).unwrap();
    assert_eq!(
        (a.centroids.len(), a.centroids[0].len(), a.descriptor.grid),
        (5, 256, 16)
    );
    assert_eq!(a.centroids, b.centroids);
    assert_eq!(a.centroids, c.centroids);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refs.json");
    a.write(&path).unwrap();
    assert_eq!(crate::strategy::query::References::load(&path).unwrap(), a);

    let npy = |shape: &str, values: usize| {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        b.extend(std::iter::repeat_n(0.5f32.to_le_bytes(), values).flatten());
        b
    };
    let refuse = |bytes: Vec<u8>, slice: usize| {
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, bytes).unwrap();
        import_references(&p, slice, descriptor).unwrap_err().to_string()
    };
    assert!(refuse(npy("(3, 200)", 600), 256).contains("rows of 200 values"));
    assert!(refuse(npy("(3, 81)", 243), 256).contains("does not divide"));
    assert!(refuse(npy("(3, 256)", 10), 256).contains("only 40 data bytes"));
    assert!(refuse(npy("(768,)", 768), 256).contains("K × 256"));
    assert!(refuse(b"\x93NUMPY\x01".to_vec(), 256).contains("shorter"));
    let e = refuse(b"not numpy".to_vec(), 256);
    assert!(e.contains("bad.npy") && e.contains("numpy.save"), "{e}");
}
