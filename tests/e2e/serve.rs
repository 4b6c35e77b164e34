//! `delinea serve`: a Slicer session through MONAI Label's own Python client, hostile requests
//! that leave the datastore byte-identical, and kill -9 during an upload and during training.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{reference_tool, tiny_cohort, tiny_model, tiny_references};

/// A tiny model, its references, a job and the target centre's scans and labels.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    labels: PathBuf,
}

fn setup(iterations: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let manifest = tiny_cohort(&root.join("cohort"), 3);
    let model = tiny_model(&manifest, &root.join("model"), 20);
    tiny_references(&model, &manifest, &root.join("refs.json"), 6);
    std::fs::write(
        root.join("job.json"),
        format!(
            r#"{{"format": "delinea-job", "name": "e2e", "model": "model", "device": "cpu",
                "prediction": {{"mc_samples": 2}},
                "query": {{"strategy": "stdr", "references": "refs.json", "budget": "50%"}},
                "adaptation": {{"every_labels": 100, "iterations": {iterations}, "batch": 4}}}}"#
        ),
    )
    .unwrap();
    let inbox = root.join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    for e in std::fs::read_dir(root.join("cohort/C2/images")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, inbox.join(p.file_name().unwrap())).unwrap();
    }
    Setup {
        labels: root.join("cohort/C2/labels/C2-onc"),
        _dir: dir,
        root,
    }
}

/// A free loopback port.
fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Setup {
    /// Starts a server on a fresh port (stderr to `serve.log`), ready once its 5 scans are in.
    fn start(&self, extra: &[&str]) -> Server {
        let port = port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("serve.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_delinea"))
            .args([
                "serve",
                "--job",
                "job.json",
                "--datastore",
                "ds",
                "--inbox",
                "in",
                "--stable",
                "0.2",
            ])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(extra)
            .current_dir(&self.root)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let token = extra.iter().position(|a| *a == "--token-file").map(|i| {
            let t = std::fs::read_to_string(self.root.join(extra[i + 1])).unwrap();
            format!("Authorization: Bearer {}\r\n", t.trim())
        });
        let server = Server {
            child,
            port,
            auth: token.unwrap_or_default(),
        };
        let ready = wait_until(Duration::from_secs(60), || {
            let r = server.get("/datastore/");
            r.0 == 200 && r.1.contains("\"total\":5")
        });
        assert!(ready, "{}", self.log());
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("serve.log")).unwrap_or_default()
    }

    fn ds(&self) -> PathBuf {
        self.root.join("ds")
    }
}

struct Server {
    child: Child,
    port: u16,
    /// The Authorization header line every request sends (empty: none).
    auth: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends raw request bytes; (status, body).
    fn raw(&self, request: &[u8]) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new()); // not listening yet
        };
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
        (status, body)
    }

    fn request(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
        let headers = format!("{}{headers}", self.auth);
        self.request_as(method, path, &headers, body)
    }

    /// A request with exactly `headers` (no token unless they hold one).
    fn request_as(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
        let mut r = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        self.raw(&r)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, "", b"")
    }

    /// `PUT /datastore/label` of `bytes` as `file_name` by `client`.
    fn put_label(&self, image: &str, file_name: &str, bytes: &[u8], client: &str) -> (u16, String) {
        let params = format!(r#"{{"client_id": "{client}", "label_info": [{{"name": "GTV", "idx": 1}}]}}"#);
        let (kind, body) = multipart(&params, file_name, bytes);
        let path = format!("/datastore/label?image={image}&tag=final");
        self.request("PUT", &path, &format!("Content-Type: {kind}\r\n"), &body)
    }
}

/// A multipart body as MONAI Label's client writes it (its boundary holds a `$`).
fn multipart(params: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let b = "----------lImIt_of_THE_fIle_eW_$";
    let mut body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{params}\r\n--{b}\r\n\
         Content-Disposition: form-data; name=\"label\"; filename=\"/tmp/x/{file_name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "lock") {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_slicer_session_through_monailabels_client_labels_per_rater_and_trains_a_new_generation() {
    let mut probe = Command::new("python3");
    probe.args(["-c", "import monailabel.client"]);
    if !reference_tool(
        "MONAI Label's Python client (pip install --no-deps monailabel==0.8.5 requests)",
        &mut probe,
    ) {
        return;
    }
    let s = setup(6);
    let server = s.start(&[]);
    let out = s.root.join("session.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/serve/session.py");
    let run = Command::new("python3")
        .arg(&script)
        .args([&server.url(), s.labels.to_str().unwrap(), out.to_str().unwrap()])
        .args(["--clients", "dr-a,dr-b", "--train"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&run.stderr),
        s.log()
    );
    let seen = json(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(seen["info"]["models"]["delinea"]["type"], "segmentation");
    assert!(seen["info"].get("config").is_none());
    let (a, b) = (&seen["clients"]["dr-a"], &seen["clients"]["dr-b"]);
    assert_ne!(a["sample"]["id"], b["sample"]["id"], "two clients get two samples");
    let id = a["sample"]["id"].as_str().unwrap();
    let image = s.ds().join("processed").join(format!("{id}.nii.gz"));
    let digest = Command::new("sha256sum").arg(&image).output().unwrap();
    let hex = String::from_utf8_lossy(&digest.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(a["sample"]["checksum"], format!("SHA256:{hex}"));
    // The NRRD the client saved is the mask predicted on arrival, on the scan's grid.
    let nrrd = delinea::volume::nrrd::read_label_map(Path::new(a["infer"]["file"].as_str().unwrap())).unwrap();
    let mask = delinea::volume::read_label_map(&s.ds().join("cases").join(id).join("mask.nii.gz")).unwrap();
    assert_eq!(nrrd.labels.data, mask.data);
    assert!(nrrd.labels.geometry.mismatch(&mask.geometry).is_none());
    assert_eq!(a["infer"]["params"]["generation"], 0);
    // Labels kept per rater, measured into revisions.csv.
    let csv = std::fs::read_to_string(s.ds().join("revisions.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains(&format!(",{id},dr-a,0,")), "{csv}");
    assert!(s.ds().join(format!("state/labels/0001-{id}@dr-a.nii.gz")).is_file());
    assert_eq!(
        seen["datastore"]["objects"][id]["labels"]["final@dr-a"]["ext"],
        ".nii.gz"
    );
    // Train: a worker adapted, the next infer comes from generation 1.
    assert_eq!(seen["train_running_before"], false);
    assert_eq!(seen["train_status"]["status"], "DONE", "{}", seen["train_status"]);
    assert_eq!(seen["infer_after"]["params"]["generation"], 1);
    assert_eq!(seen["info_after"]["train_stats"]["delinea"]["generation"], 1);
    assert!(
        s.ds().join("state/models/gen-0001/model-card.json").is_file() || s.ds().join("state/models/gen-0001").is_dir()
    );
}

#[test]
fn hostile_requests_are_refused_naming_the_problem_and_change_nothing() {
    let s = setup(6);
    let server = s.start(&["--max-upload-mb", "1"]);
    let label = std::fs::read(s.labels.join("C2-001.nii.gz")).unwrap();
    let before = tree(&s.ds());
    let other_grid = {
        let l = delinea::volume::LabelMap::zeros(delinea::volume::Geometry::axis_aligned([16, 16, 8], [1.0; 3]));
        let p = s.root.join("other.nii.gz");
        delinea::volume::write_label_map(&p, &l).unwrap();
        std::fs::read(p).unwrap()
    };
    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        (
            "dot-dot id",
            server.get("/datastore/image?image=../job.json"),
            400,
            "not an id",
        ),
        (
            "absolute id",
            server.get("/datastore/image?image=%2Fetc%2Fpasswd"),
            400,
            "not an id",
        ),
        (
            "another datastore's id",
            server.get("/datastore/image?image=P9-001"),
            404,
            "no image",
        ),
        (
            "dot-dot label",
            server.put_label("..", "l.nii.gz", &label, "dr-a"),
            400,
            "not an id",
        ),
        (
            "bad rater",
            server.put_label("C2-001", "l.nii.gz", &label, "../x"),
            400,
            "client_id",
        ),
        (
            "another grid",
            server.put_label("C2-001", "l.nii.gz", &other_grid, "dr-a"),
            400,
            "does not match",
        ),
        (
            "truncated",
            server.put_label("C2-001", "l.nii.gz", &label[..label.len() / 2], "dr-a"),
            400,
            "C2-001",
        ),
        (
            "wrong type",
            server.put_label("C2-001", "l.nii.gz", b"\x89PNG\r\n\x1a\nnot a label", "dr-a"),
            400,
            "",
        ),
        (
            "wrong suffix",
            server.put_label("C2-001", "l.png", &label, "dr-a"),
            400,
            ".nrrd",
        ),
        (
            "oversized",
            server.put_label("C2-001", "l.nii.gz", &vec![7u8; 3 << 20], "dr-a"),
            413,
            "limit",
        ),
        (
            "malformed multipart",
            server.request(
                "PUT",
                "/datastore/label?image=C2-001",
                "Content-Type: multipart/form-data; boundary=zz\r\n",
                b"--zz\r\nContent-Disposition: form-data; name=\"label\"; filename=\"a.nii.gz\"\r\n\r\nabc",
            ),
            400,
            "multipart",
        ),
        (
            "unknown strategy",
            server.request("POST", "/activelearning/script:%2Fetc%2Fx", "", b""),
            404,
            "strategy",
        ),
        (
            "unknown model",
            server.request("POST", "/infer/other?image=C2-001", "", b""),
            404,
            "model",
        ),
        (
            "train without labels",
            server.request("POST", "/train/delinea", "", b""),
            400,
            "no label",
        ),
    ];
    for (what, (status, body), want, words) in &cases {
        assert_eq!(status, want, "{what}: {body}");
        let detail = json(body)["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains(words), "{what}: {detail}");
    }
    // The truncated label's error names the upload, not a server path.
    assert!(!cases[6].1 .1.contains("uploads"), "{}", cases[6].1 .1);
    assert_eq!(before, tree(&s.ds()), "a refused request changed the datastore");
    drop(server);
    // With a token: none or a wrong one is 401; /auth/ says it is on.
    std::fs::write(s.root.join("token"), "s3cret-token\n").unwrap();
    let server = s.start(&["--token-file", "token"]);
    let before = tree(&s.ds());
    let (status, body) = server.request_as("GET", "/info/", "", b"");
    assert_eq!(status, 401, "{body}");
    assert!(json(&body)["detail"].as_str().unwrap().contains("token"), "{body}");
    assert_eq!(
        server
            .request_as("GET", "/info/", "Authorization: Bearer wrong\r\n", b"")
            .0,
        401
    );
    let put = server.request_as(
        "PUT",
        "/datastore/label?image=C2-001",
        "Authorization: Bearer s3cret-toke\r\n",
        b"",
    );
    assert_eq!(put.0, 401);
    assert_eq!(
        server
            .request_as("GET", "/info/", "Authorization: Bearer s3cret-token\r\n", b"")
            .0,
        200
    );
    assert_eq!(json(&server.request_as("GET", "/auth/", "", b"").1)["enabled"], true);
    // Slicer's login: the password is the token.
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let (status, body) = server.request_as(
        "POST",
        "/auth/token",
        form,
        b"username=dr-a&password=s3cret-token&grant_type=password",
    );
    assert_eq!(
        (status, json(&body)["access_token"].clone()),
        (200, "s3cret-token".into()),
        "{body}"
    );
    let (status, _) = server.request_as(
        "POST",
        "/auth/token",
        form,
        b"username=dr-a&password=guess&grant_type=password",
    );
    assert_eq!(status, 401);
    assert_eq!(before, tree(&s.ds()), "a refused request changed the datastore");
    let out = Command::new(env!("CARGO_BIN_EXE_delinea"))
        .args([
            "serve",
            "--job",
            "job.json",
            "--datastore",
            "ds2",
            "--bind",
            "0.0.0.0:0",
        ])
        .current_dir(&s.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"), "{out:?}");
}

/// Whether a process whose command line mentions `needle` is alive.
fn running(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        cmdline.contains(needle) && cmdline.contains(" adapt ")
    })
}

#[test]
fn a_kill_during_an_upload_or_a_training_loses_nothing_and_repeats_nothing() {
    let s = setup(100_000);
    let mut server = s.start(&[]);
    let label = std::fs::read(s.labels.join("C2-001.nii.gz")).unwrap();
    // Half an upload in flight, then kill -9.
    let (kind, body) = multipart(r#"{"client_id": "dr-a"}"#, "l.nii.gz", &label);
    let mut half = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let head = format!(
        "PUT /datastore/label?image=C2-001 HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    half.write_all(head.as_bytes()).unwrap();
    half.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(half);
    let journal = std::fs::read_to_string(s.ds().join("journal.jsonl")).unwrap();
    assert!(!journal.contains("\"label\""), "a half upload reached the journal");
    let mut server = s.start(&[]);
    assert_eq!(std::fs::read_dir(s.ds().join("state/uploads")).unwrap().count(), 0);
    let (status, body) = server.put_label("C2-001", "l.nii.gz", &label, "dr-a");
    assert_eq!(status, 200, "{body}");
    // A long training, killed -9 with the server: the worker goes too, nothing is adapted.
    let (status, body) = server.request("POST", "/train/delinea", "", b"{}");
    assert_eq!(status, 200, "{body}");
    let ds = s.ds().canonicalize().unwrap();
    let needle = ds.to_string_lossy().into_owned();
    assert!(wait_until(Duration::from_secs(30), || running(&needle)), "{}", s.log());
    assert_eq!(server.get("/train/?check_if_running=true").0, 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !running(&needle)),
        "an orphan worker trains on"
    );
    let server = s.start(&[]);
    let (status, body) = server.get("/train/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "STOPPED", "{body}");
    assert_eq!(json(&server.get("/info/").1)["train_stats"]["delinea"]["generation"], 0);
    let csv = std::fs::read_to_string(s.ds().join("revisions.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "one label, registered once: {csv}");
    // Train again, then stop it: the model predicting stays generation 0.
    assert_eq!(server.request("POST", "/train/delinea", "", b"{}").0, 200);
    assert_eq!(server.request("POST", "/train/delinea", "", b"{}").0, 429);
    let (status, body) = server.request("DELETE", "/train/", "", b"");
    assert_eq!(
        (status, json(&body)["status"].clone()),
        (200, "STOPPED".into()),
        "{body}"
    );
    assert!(!json(&body)["details"][0].as_str().unwrap_or_default().is_empty());
    assert_eq!(server.get("/train/?check_if_running=true").0, 404);
    assert!(!s.ds().join("state/models/gen-0001").exists());
}
