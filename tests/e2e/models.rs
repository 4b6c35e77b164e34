//! Models from elsewhere: PyTorch and safetensors in, safetensors and ONNX out, through the
//! binary as a user runs it; ONNX Runtime runs the exported models (tests/fixtures/pytorch/
//! check_onnx.py) against delinea's and PyTorch's outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use delinea::model::checkpoint;

use crate::util::{delinea, describe, fixtures, reference_tool, tiny_cohort, tiny_model};

fn pytorch(name: &str) -> PathBuf {
    fixtures().join("pytorch").join(name)
}

fn run_ok(args: &[&str]) -> String {
    let out = delinea(args);
    assert!(out.status.success(), "delinea {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One case for check_onnx.py: an input and delinea's (and maybe PyTorch's) logits.
struct Case {
    name: String,
    shape: [usize; 4],
    input: Vec<f32>,
    delinea: Vec<f32>,
    pytorch: Option<(Vec<usize>, Vec<f32>)>,
}

/// delinea's evaluation logits of model folder `dir` on `input`.
fn logits(dir: &Path, shape: [usize; 4], input: &[f32]) -> Vec<f32> {
    let (model, _) = checkpoint::load::<Flex>(dir, &Default::default()).unwrap();
    let x = Tensor::<Flex, 4>::from_data(TensorData::new(input.to_vec(), shape), &Default::default());
    model.forward(x).into_data().to_vec::<f32>().unwrap()
}

/// Deterministic pseudo-random inputs in about [-2, 2].
fn inputs(shape: [usize; 4], seed: u32) -> Vec<f32> {
    let n = shape.iter().product::<usize>() as u32;
    (0..n)
        .map(|i| {
            let h = (i ^ seed)
                .wrapping_mul(2_654_435_761)
                .rotate_left(13)
                .wrapping_mul(40_503);
            (h % 4001) as f32 / 1000.0 - 2.0
        })
        .collect()
}

fn case(model: &Path, name: &str, shape: [usize; 4], seed: u32) -> Case {
    let input = inputs(shape, seed);
    Case {
        name: name.into(),
        shape,
        delinea: logits(model, shape, &input),
        input,
        pytorch: None,
    }
}

/// Writes the cases as one safetensors file and runs check_onnx.py on `onnx`; its report, or
/// `None` where ONNX Runtime is not installed (outside CI).
fn check_onnx(onnx: &Path, cases: &[Case], dir: &Path) -> Option<serde_json::Value> {
    if !reference_tool(
        "onnxruntime and onnx (Python)",
        Command::new("python3").args(["-c", "import onnxruntime, onnx, numpy"]),
    ) {
        return None;
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for c in cases {
        let out_shape = {
            let n = c.delinea.len() / (c.shape[0] * c.shape[2] * c.shape[3]);
            vec![c.shape[0], n, c.shape[2], c.shape[3]]
        };
        owned.push((format!("input_{}", c.name), c.shape.to_vec(), bytes(&c.input)));
        owned.push((format!("delinea_{}", c.name), out_shape, bytes(&c.delinea)));
        if let Some((shape, values)) = &c.pytorch {
            owned.push((format!("pytorch_{}", c.name), shape.clone(), bytes(values)));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let file = dir.join("cases.safetensors");
    std::fs::write(&file, safetensors::serialize(views, None).unwrap()).unwrap();
    let o = Command::new("python3")
        .arg(pytorch("check_onnx.py"))
        .arg(onnx)
        .arg(&file)
        .output()
        .unwrap();
    println!("check_onnx.py: {}", String::from_utf8_lossy(&o.stdout).trim());
    assert!(o.status.success(), "check_onnx.py: {}", describe(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["opset"], serde_json::json!([17]));
    assert_eq!(report["cases"].as_object().unwrap().len(), cases.len());
    Some(report)
}

/// The paper code's checkpoint → delinea → ONNX: ONNX Runtime gives delinea's and PyTorch's
/// logits (within 1e-4) at two slice sizes and batch sizes.
#[test]
fn a_pytorch_checkpoint_exported_to_onnx_runs_in_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("imported");
    let m = model.to_str().unwrap();
    let said = run_ok(&[
        "model",
        "import",
        pytorch("checkpoint.pth").to_str().unwrap(),
        "--out",
        m,
        "--slice-size",
        "16",
    ]);
    assert!(
        said.contains("features [2, 4, 8, 8, 16]") && said.contains("under `state_dict`"),
        "{said}"
    );
    let onnx = dir.path().join("model.onnx");
    run_ok(&[
        "model",
        "export",
        m,
        "--format",
        "onnx",
        "--out",
        onnx.to_str().unwrap(),
    ]);
    let io = delinea::interop::read::read(&pytorch("io.safetensors"))
        .unwrap()
        .tensors;
    let cases: Vec<Case> = [("16x16", [3, 1, 16, 16]), ("32x48", [2, 1, 32, 48])]
        .into_iter()
        .map(|(size, shape)| {
            let input = io[&format!("small_input_{size}")].values.clone();
            let torch = &io[&format!("small_logits_{size}")];
            Case {
                name: size.into(),
                shape,
                delinea: logits(&model, shape, &input),
                input,
                pytorch: Some((torch.shape.clone(), torch.values.clone())),
            }
        })
        .collect();
    if let Some(report) = check_onnx(&onnx, &cases, dir.path()) {
        for size in ["16x16", "32x48"] {
            let row = &report["cases"][size];
            assert!(row["pytorch"].as_f64().unwrap() <= 1e-4, "{row}");
        }
        let keys = report["metadata"].to_string();
        assert!(
            keys.contains("delinea.preprocessing") && keys.contains("delinea.input"),
            "{keys}"
        );
    }
}

/// A model delinea trained leaves as safetensors and comes back predicting the same bytes; as
/// ONNX (another depth and widths) it runs in ONNX Runtime at two sizes and batches.
#[test]
fn a_delinea_model_goes_out_and_comes_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = tiny_cohort(&dir.path().join("cohort"), 7);
    let model = tiny_model(&manifest, &dir.path().join("model"), 3);
    let st = dir.path().join("model.safetensors");
    let said = run_ok(&[
        "model",
        "export",
        &model,
        "--format",
        "safetensors",
        "--out",
        st.to_str().unwrap(),
    ]);
    assert!(said.contains("(76 tensors)"), "{said}"); // 3 levels: 5 blocks × (12 + 2 counters), 2 ups × 2, head 2
    let back = dir.path().join("back");
    run_ok(&["model", "import", st.to_str().unwrap(), "--out", back.to_str().unwrap()]);
    let (a, b) = (
        checkpoint::load_card(Path::new(&model)).unwrap(),
        checkpoint::load_card(&back).unwrap(),
    );
    assert_eq!((&a.architecture, &a.preprocessing), (&b.architecture, &b.preprocessing));
    for (m, out) in [(model.as_str(), "pred-a"), (back.to_str().unwrap(), "pred-b")] {
        let o = dir.path().join(out);
        let args = [
            "predict", "--model", m, "--input", &manifest, "--split", "test", "--device", "cpu", "--out",
        ];
        run_ok(&[&args[..], &[o.to_str().unwrap(), "--quiet"]].concat());
    }
    let masks = |d: &str| {
        let mut v: Vec<_> = std::fs::read_dir(dir.path().join(d))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".nii.gz"))
            .collect();
        v.sort();
        v
    };
    let (pa, pb) = (masks("pred-a"), masks("pred-b"));
    assert!(!pa.is_empty() && pa.len() == pb.len());
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(
            std::fs::read(x).unwrap(),
            std::fs::read(y).unwrap(),
            "{} differs",
            y.display()
        );
    }
    let onnx = dir.path().join("model.onnx");
    run_ok(&[
        "model",
        "export",
        &model,
        "--format",
        "onnx",
        "--out",
        onnx.to_str().unwrap(),
    ]);
    let m = Path::new(&model);
    let cases = [
        case(m, "b2_32x32", [2, 1, 32, 32], 1),
        case(m, "b3_64x48", [3, 1, 64, 48], 2),
    ];
    check_onnx(&onnx, &cases, dir.path());
}

/// As a new user would: a PyTorch model of the paper's size (trained in PyTorch by
/// train_paper_size.py) is imported, queried with STDR and adapted on the synthetic cohort,
/// and the adapted model leaves as ONNX and safetensors.
#[test]
fn a_paper_size_pytorch_model_is_queried_adapted_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let manifest = tiny_cohort(&dir.path().join("cohort"), 3);
    let said = run_ok(&[
        "model",
        "import",
        pytorch("paper-size.pth").to_str().unwrap(),
        "--out",
        &p("source"),
        "--slice-size",
        "64",
    ]);
    assert!(said.contains("features [16, 32, 64, 128, 256]"), "{said}");
    let card = checkpoint::load_card(Path::new(&p("source"))).unwrap();
    assert_eq!(card.trainable_params, 1_944_034);
    // Without reference points STDR is refused, saying what to do; entropy needs none.
    let o = delinea(&[
        "query",
        "--model",
        &p("source"),
        "--manifest",
        &manifest,
        "--centre",
        "C2",
        "--strategy",
        "stdr",
        "--device",
        "cpu",
        "--out",
        &p("x.json"),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("reference import") && e.contains("every other strategy"),
        "{e}"
    );
    run_ok(&[
        "reference",
        "--model",
        &p("source"),
        "--manifest",
        &manifest,
        "--centre",
        "C1",
        "--k",
        "4",
        "--device",
        "cpu",
        "--out",
        &p("refs.json"),
        "--quiet",
    ]);
    let said = run_ok(&[
        "query",
        "--model",
        &p("source"),
        "--refs",
        &p("refs.json"),
        "--manifest",
        &manifest,
        "--centre",
        "C2",
        "--strategy",
        "stdr",
        "--budget",
        "4",
        "--device",
        "cpu",
        "--out",
        &p("selection.json"),
    ]);
    assert!(said.contains("4 of"), "{said}");
    run_ok(&[
        "adapt",
        "--model",
        &p("source"),
        "--selection",
        &p("selection.json"),
        "--manifest",
        &manifest,
        "--centre",
        "C2",
        "--strategy",
        "finetune",
        "--iterations",
        "2",
        "--batch",
        "2",
        "--device",
        "cpu",
        "--out",
        &p("adapted"),
        "--quiet",
    ]);
    let adapted = checkpoint::load_card(Path::new(&p("adapted"))).unwrap();
    assert_eq!(adapted.architecture, card.architecture);
    run_ok(&[
        "model",
        "export",
        &p("adapted"),
        "--format",
        "safetensors",
        "--out",
        &p("adapted.safetensors"),
    ]);
    run_ok(&[
        "model",
        "import",
        &p("adapted.safetensors"),
        "--out",
        &p("adapted-again"),
    ]);
    run_ok(&[
        "model",
        "export",
        &p("adapted"),
        "--format",
        "onnx",
        "--out",
        &p("adapted.onnx"),
    ]);
    let m = dir.path().join("adapted");
    let cases = [
        case(&m, "b2_64x64", [2, 1, 64, 64], 5),
        case(&m, "b1_128x96", [1, 1, 128, 96], 6),
    ];
    check_onnx(Path::new(&p("adapted.onnx")), &cases, dir.path());
}

/// The fixture checkpoint imported into `dir/source` (slice 32) and fixture centroids `file`
/// imported into `dir/refs.json`, as a user brings both from the source side.
fn import_fixture_with_references(dir: &Path, file: &str) {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let checkpoint = pytorch("checkpoint.pth");
    let import = [
        "model",
        "import",
        checkpoint.to_str().unwrap(),
        "--out",
        &p("source"),
        "--slice-size",
        "32",
    ];
    run_ok(&[&import[..], &["--quiet"]].concat());
    let centroids = pytorch(file);
    let refs = [
        "reference",
        "import",
        centroids.to_str().unwrap(),
        "--model",
        &p("source"),
        "--out",
        &p("refs.json"),
    ];
    run_ok(&[&refs[..], &["--quiet"]].concat());
}

/// `experiment --source-model` adapts an imported PyTorch model without training a source, and
/// `--source-references` uses imported centroids for STDR; a reference grid that does not
/// agree with the config is refused.
#[test]
fn an_experiment_adapts_an_imported_source_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let manifest = tiny_cohort(&dir.path().join("cohort"), 5);
    import_fixture_with_references(dir.path(), "centroids.npy");
    std::fs::write(
        p("config.json"),
        r#"{"adaptation": {"iterations": 2, "batch": 2, "select": "last"}, "mc_samples": 2}"#,
    )
    .unwrap();
    let args = [
        "experiment",
        "--manifest",
        &manifest,
        "--source",
        "C1",
        "--targets",
        "C2",
        "--queries",
        "random,stdr",
        "--adapts",
        "finetune",
        "--budget",
        "4",
        "--config",
        &p("config.json"),
        "--source-model",
        &p("source"),
        "--source-references",
        &p("refs.json"),
        "--device",
        "cpu",
        "--jobs",
        "1",
        "--log-every",
        "0",
        "--out",
        &p("exp"),
    ];
    let o = delinea(&args);
    assert!(o.status.success(), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("source model: taken from") && err.contains("source model taken from"),
        "{err}"
    );
    let exp = dir.path().join("exp");
    assert!(!exp.join("source/training-log.json").exists(), "no source training");
    let card = checkpoint::load_card(&exp.join("source/model")).unwrap();
    assert_eq!(card.imported.unwrap().file, "checkpoint.pth");
    let refs = delinea::strategy::query::References::load(&exp.join("source/references.json")).unwrap();
    assert_eq!(refs.centroids.len(), 5);
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(exp.join("results.json")).unwrap()).unwrap();
    let text = results.to_string();
    assert!(text.contains("stdr+finetune") && text.contains("source-only"), "{text}");
    // References described on another grid than the config's: refused, naming both.
    std::fs::write(
        p("grid8.json"),
        r#"{"references": {"descriptor": {"grid": 8}}, "adaptation": {"iterations": 2, "batch": 2, "select": "last"}}"#,
    )
    .unwrap();
    let mut bad = args.to_vec();
    let (cfg, out) = (p("grid8.json"), p("exp2"));
    let at = bad.iter().position(|a| *a == "--config").unwrap() + 1;
    bad[at] = &cfg;
    let last = bad.len() - 1;
    bad[last] = &out;
    let o = delinea(&bad);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(err.contains("source_references") && err.contains("grid: 8"), "{err}");
}

/// The drop folder and scripts take an imported model (and imported reference points) as they
/// take any other: `watch --once` predicts and ranks a scan with it, `load_model` opens it.
#[test]
fn the_drop_folder_and_scripts_use_an_imported_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    let manifest = tiny_cohort(&d.join("cohort"), 9);
    import_fixture_with_references(dir.path(), "centroids.pt");
    let job = serde_json::json!({
        "format": "delinea-job", "name": "imported model", "model": p("source"), "device": "cpu", "centre": "target",
        "outputs": {"mask": true, "probability": false, "uncertainty": false, "stdr_distance": true},
        "query": {"strategy": "stdr", "references": p("refs.json"), "budget": "1", "unit": "volume"},
    });
    std::fs::write(p("job.json"), job.to_string()).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let image = m["cases"][0]["image"].as_str().unwrap();
    std::fs::create_dir_all(p("in")).unwrap();
    std::fs::copy(d.join("cohort").join(image), d.join("in/scan-1.nii.gz")).unwrap();
    let o = delinea(&[
        "watch",
        "--job",
        &p("job.json"),
        "--inbox",
        &p("in"),
        "--outbox",
        &p("out"),
        "--once",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let cases = d.join("out/cases");
    let case = std::fs::read_dir(&cases)
        .unwrap()
        .next()
        .expect("one case out")
        .unwrap()
        .path();
    let files: Vec<String> = std::fs::read_dir(&case)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f.starts_with("mask")), "{files:?}");
    assert!(d.join("out/label-next.csv").is_file());

    std::fs::write(p("s.rhai"), "let m = load_model(\"source\");\nlet v = load_volume(\"in.nii.gz\");\nlet r = m.predict(v);\nr.mask.geometry().dims\n").unwrap();
    std::fs::copy(d.join("cohort").join(image), d.join("in.nii.gz")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_delinea"))
        .current_dir(d)
        .args(["run", "s.rhai", "--allow", ".", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("32"), "{}", describe(&o));
}

/// burn-store's pickle reader allocates a string's declared length before reading it, clones
/// memoised values on every GET and drops its value tree recursively: a length past the end,
/// a memo doubling its value and a deep nesting are refused by delinea's look at the pickle
/// before burn-store reads it, in a zip (`torch.save`) and as a bare pickle.
#[test]
fn hostile_pickles_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 200_000));
    deep.extend(std::iter::repeat_n(b'a', 199_999));
    deep.push(b'.');
    let mut doubling = b"\x80\x02]q\x00".to_vec();
    for _ in 0..60 {
        doubling.extend(b"h\x00h\x00\x86q\x00");
    }
    doubling.push(b'.');
    let long = b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7fabc.".to_vec();
    for (name, pickle, words) in [
        ("deep", &deep, "nests values more than 100 deep"),
        ("doubling", &doubling, "builds more than"),
        ("long", &long, "more than it holds"),
    ] {
        let zipped = delinea::fuzz::zip_entries(&[&b"archive/data.pkl\n"[..], pickle].concat());
        for (form, bytes) in [("zip", zipped), ("bare", pickle.clone())] {
            let file = dir.path().join(format!("{name}-{form}.pth"));
            std::fs::write(&file, bytes).unwrap();
            let out_dir = dir.path().join(format!("{name}-{form}"));
            let start = std::time::Instant::now();
            let out = delinea(&[
                "model",
                "import",
                file.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
            ]);
            assert_eq!(out.status.code(), Some(2), "{name} {form}: {}", describe(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(words) && err.contains(file.to_str().unwrap()),
                "{name} {form}: {err}"
            );
            assert!(start.elapsed().as_secs() < 5, "{name} {form}: {:?}", start.elapsed());
            assert!(!out_dir.exists(), "{name} {form}: a model folder was written");
        }
    }
}
