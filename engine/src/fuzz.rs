//! The bodies of the fuzz targets (`fuzz/`, cargo-fuzz): one function per input format, each
//! taking arbitrary bytes through the same entry point a user's file takes — written to a
//! scratch file when the reader takes a path. The property is that none panics, hangs or
//! allocates without bound; a reader's `Err` is a pass. Where a read succeeds, what delinea
//! would do next with the result (write it back, draw an RTSTRUCT on it) is done too.
//!
//! `fuzz/fuzz_targets/*.rs` call these under libFuzzer; the `fuzz_corpus` test replays every
//! committed input (`fuzz/corpus`, `fuzz/regressions`) through them on stable Rust, so CI
//! guards what fuzzing found without fuzzing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::volume::{self, dicom, LabelMap};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (the folder of its corpus) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("nifti", nifti),
    ("dicom", dicom_series),
    ("rtstruct", rtstruct),
    ("nrrd", nrrd),
    ("job", job),
    ("manifest", manifest),
    ("experiment_config", experiment_config),
    ("journal", journal),
    ("plugin_descriptor", plugin_descriptor),
    ("model_file", model_file),
    ("references", references),
    ("multipart", multipart),
];

/// A fresh folder for one input, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new empty folder under the system's temporary folder (`TMPDIR`).
    pub fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("delinea-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("scratch folder {}: {e}", dir.display()));
        Scratch(dir)
    }

    /// `bytes` written as `name` in this folder.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("scratch file {}: {e}", path.display()));
        path
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first byte chooses a mode (of `modes`), the rest is the input.
fn mode(data: &[u8], modes: u8) -> (u8, &[u8]) {
    match data.split_first() {
        Some((m, rest)) => (m % modes, rest),
        None => (0, data),
    }
}

/// A NIfTI file: mode 0 the bytes as `.nii`; 1 the bytes gzip-compressed by the harness as
/// `.nii.gz` (so mutations reach the header past gzip's checksum); 2 the bytes as `.nii.gz`
/// (the gzip decoder itself). Read as a volume, a label map and by `inspect`; a volume read is
/// written back and read again on the same grid.
pub fn nifti(data: &[u8]) {
    let s = Scratch::new();
    let (extension, bytes) = nifti_file(data);
    let path = s.file(&format!("in.{extension}"), &bytes);
    let _ = volume::read_label_map(&path);
    let _ = volume::inspect(&path);
    let Ok(read) = volume::read_volume_with_info(&path) else {
        return;
    };
    let copy = s.path().join("copy.nii.gz");
    if volume::write_volume(&copy, &read.volume).is_ok() {
        let back = volume::nifti::read_volume(&copy).expect("a volume delinea wrote reads back");
        assert_eq!(back.geometry.dims, read.volume.geometry.dims);
    }
}

/// The file a `nifti` input stands for: its extension and bytes.
pub fn nifti_file(data: &[u8]) -> (&'static str, Vec<u8>) {
    match mode(data, 3) {
        (0, body) => ("nii", body.to_vec()),
        (1, body) => ("nii.gz", gzip(body)),
        (_, body) => ("nii.gz", body.to_vec()),
    }
}

/// The scan file an input of the `nifti` or `dicom` target stands for (its extension and
/// bytes), for dropping fuzzed scans where scans arrive; `None` for a multi-file `dicom` input.
pub fn as_scan(target: &str, data: &[u8]) -> Option<(&'static str, Vec<u8>)> {
    match target {
        "nifti" => Some(nifti_file(data)),
        "dicom" if split(data, NEXT, 2).len() == 1 => Some(("dcm", data.to_vec())),
        _ => None,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// A DICOM series: the input cut at each [`NEXT`] into up to 8 files of one folder
/// (one piece: a single file). Read as delinea reads a series; one that reads gets an RTSTRUCT
/// and a SEG of its bright voxels written, and the RTSTRUCT read back onto it.
pub fn dicom_series(data: &[u8]) {
    let s = Scratch::new();
    let pieces = split(data, NEXT, 8);
    let path = if pieces.len() == 1 {
        s.file("IM0001.dcm", pieces[0])
    } else {
        let dir = s.path().join("series");
        let _ = std::fs::create_dir(&dir);
        for (i, p) in pieces.iter().enumerate() {
            let _ = std::fs::write(dir.join(format!("IM{:04}.dcm", i + 1)), p);
        }
        dir
    };
    let _ = volume::read_volume(&path);
    if let Ok(series) = dicom::read_one_series(&path) {
        derive(&series, s.path());
    }
}

fn split<'a>(data: &'a [u8], cut: &[u8], most: usize) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    while pieces.len() + 1 < most {
        match rest.windows(cut.len()).position(|w| w == cut) {
            Some(i) => {
                pieces.push(&rest[..i]);
                rest = &rest[i + cut.len()..];
            }
            None => break,
        }
    }
    pieces.push(rest);
    pieces
}

/// The RTSTRUCT and SEG of the voxels above the series' mean in each slice's first
/// [`DERIVED_WINDOW`] rows and columns, then the RTSTRUCT read back.
fn derive(series: &dicom::Series, dir: &Path) {
    let v = &series.volume;
    let mean = v.data.iter().map(|x| f64::from(*x)).sum::<f64>() / v.data.len().max(1) as f64;
    let mut mask = LabelMap::zeros(v.geometry.clone());
    let [w, h, _] = v.geometry.dims;
    for (n, (m, x)) in mask.data.iter_mut().zip(&v.data).enumerate() {
        let (i, j) = (n % w, (n / w) % h);
        *m = u8::from(i < DERIVED_WINDOW && j < DERIVED_WINDOW && f64::from(*x) > mean);
    }
    let options = dicom::Options::default();
    let mask_path = dir.join("mask.nii.gz");
    for format in [dicom::DerivedFormat::Rtstruct, dicom::DerivedFormat::Seg] {
        let out = dir.join(format.extension());
        let written = format.write(&mask, &mask_path, series, &out, &options);
        if format == dicom::DerivedFormat::Rtstruct && written.is_ok() {
            let _ = dicom::read_rtstruct(&out, series, None);
        }
    }
}

/// How much of each slice the `dicom` target's derived mask covers. A mask of noise over a
/// whole 128 × 128 slice (thousands of contours) takes 1.4 s per input under AddressSanitizer,
/// which libFuzzer's 1 s limit reports as a hang; the writers'
/// cost on such masks is bounded by `MAX_KEYHOLE_RINGS` and tested natively.
pub const DERIVED_WINDOW: usize = 48;

/// An RTSTRUCT read onto a fixed, valid series: the first series of `fuzz/seeds/series`
/// (this crate's DICOM sphere fixture) given by [`set_rtstruct_series`].
pub fn rtstruct(data: &[u8]) {
    let Some(series) = RTSTRUCT_SERIES.get() else {
        panic!("the rtstruct target needs its series: call delinea::fuzz::set_rtstruct_series first")
    };
    let s = Scratch::new();
    let path = s.file("rs.dcm", data);
    let _ = dicom::read_rtstruct(&path, series, None);
    let _ = dicom::read_rtstruct(&path, series, Some("GTV"));
}

static RTSTRUCT_SERIES: std::sync::OnceLock<dicom::Series> = std::sync::OnceLock::new();

/// Reads the series the `rtstruct` target draws on (once per process).
pub fn set_rtstruct_series(folder: &Path) -> Result<(), volume::Error> {
    if RTSTRUCT_SERIES.get().is_none() {
        let _ = RTSTRUCT_SERIES.set(dicom::read_one_series(folder)?);
    }
    Ok(())
}

/// A label map as NRRD (Slicer's `.seg.nrrd` or plain), as the server and `convert` take it.
pub fn nrrd(data: &[u8]) {
    let path = Path::new("upload.seg.nrrd");
    let _ = volume::nrrd::decode_label_map(path, data);
}

/// A job file, with the checks `delinea watch` and `serve` run on it at start.
pub fn job(data: &[u8]) {
    let s = Scratch::new();
    let Ok(job) = crate::job::Job::load(&s.file("job.json", data)) else {
        return;
    };
    let _ = job.device_request();
    let _ = job.budget();
    let _ = job.requested_adaptation();
}

/// A dataset manifest and its checks, as `delinea validate` runs them (the files it names are
/// looked for in the scratch folder).
pub fn manifest(data: &[u8]) {
    let s = Scratch::new();
    if let Ok(m) = crate::dataset::Manifest::load(&s.file("manifest.json", data)) {
        let _ = crate::dataset::validate(&m);
    }
}

/// An experiment config and its checks.
pub fn experiment_config(data: &[u8]) {
    let s = Scratch::new();
    if let Ok(c) = crate::experiment::ExperimentConfig::load(&s.file("experiment.json", data)) {
        let _ = c.validate();
        let _ = c.budget();
    }
}

/// The start of the journal the `journal` target appends its input to: a scan seen and
/// claimed, as a watcher killed while predicting leaves it.
pub const JOURNAL_START: &str = concat!(
    r#"{"event":"seen","kind":"scan","input":"a.nii.gz","time":"2026-12-07T08:00:00Z"}"#,
    "\n",
    r#"{"event":"claimed","kind":"scan","input":"a.nii.gz","time":"2026-12-07T08:00:01Z"}"#,
    "\n"
);

/// The drop folder's journal at recovery: [`JOURNAL_START`] with the input appended, read by
/// `--status`, then opened as a restarting watcher opens it (a torn last line cut off) and
/// folded into its history.
pub fn journal(data: &[u8]) {
    use crate::watch::journal::{History, Journal};
    let s = Scratch::new();
    let outbox = s.path().join("outbox");
    let _ = std::fs::create_dir(&outbox);
    let path = outbox.join("journal.jsonl");
    let _ = std::fs::write(&path, [JOURNAL_START.as_bytes(), data].concat());
    let _ = crate::watch::status(&s.path().join("inbox"), &outbox, &s.path().join("state"));
    if let Ok((_, lines)) = Journal::open(&path) {
        let h = History::of(&lines);
        let _ = (h.generation(), h.done_cases(), h.registered_labels());
    }
}

/// A plugin's descriptor: mode 0 the descriptor section's bytes, 1 a whole shared library whose
/// sections are searched (read, never loaded).
pub fn plugin_descriptor(data: &[u8]) {
    let (m, body) = mode(data, 2);
    let s = Scratch::new();
    let path = s.file("libplugin.so", body);
    let _ = match m {
        0 => crate::plugin::descriptor::parse(&path, body),
        _ => crate::plugin::descriptor::read(&path),
    };
}

/// A model file imported as `delinea model import` does: mode 0 the bytes as the file (a
/// PyTorch zip or pickle, safetensors); 1 a PyTorch zip the harness builds from the input's
/// entries ([`zip_entries`]), so that mutations of the pickle get past the zip's checksums.
pub fn model_file(data: &[u8]) {
    let s = Scratch::new();
    let file = s.file("model.pth", &file_or_zip(data));
    let _ = crate::interop::read::read(&file);
    let options = crate::interop::ImportOptions::default();
    let _ = crate::interop::import_model(&file, &s.path().join("model"), &options);
}

/// Reference points as `--references` takes them: mode 0 the bytes (`.npy`, a PyTorch tensor
/// file), 1 a PyTorch zip built from the input's entries.
pub fn references(data: &[u8]) {
    let s = Scratch::new();
    let bytes = file_or_zip(data);
    let file = s.file("centroids.npy", &bytes);
    let _ = crate::interop::parse_npy(&bytes);
    let _ = crate::interop::import_references(&file, 256, Default::default());
}

/// The cut between two files or entries of one input.
pub const NEXT: &[u8] = b"--next-file--";

fn file_or_zip(data: &[u8]) -> Vec<u8> {
    match mode(data, 2) {
        (0, body) => body.to_vec(),
        (_, body) => zip_entries(body),
    }
}

/// A stored (uncompressed) zip of the input's entries: pieces cut at [`NEXT`], each its entry
/// name up to the first newline, then its bytes.
pub fn zip_entries(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for piece in split(data, NEXT, 4096) {
        let (name, bytes) = match piece.iter().position(|b| *b == b'\n') {
            Some(i) => (String::from_utf8_lossy(&piece[..i]).into_owned(), &piece[i + 1..]),
            None => (String::new(), piece),
        };
        if z.start_file(name, options).is_err() || z.write_all(bytes).is_err() {
            break;
        }
    }
    z.finish().map(std::io::Cursor::into_inner).unwrap_or_default()
}

/// The boundary of the `multipart` target's requests.
pub const BOUNDARY: &str = "delinea-fuzz-boundary";

/// A multipart request body, read as the server reads MONAI Label's uploads (a 64 KiB limit).
pub fn multipart(data: &[u8]) {
    use axum::extract::{FromRequest, Multipart};
    let s = Scratch::new();
    let request = axum::http::Request::builder()
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(axum::body::Body::from(data.to_vec()))
        .expect("a request from bytes");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let Ok(mp) = Multipart::from_request(request, &()).await else {
            return;
        };
        if let Ok(form) = crate::serve::http::read_form(mp, s.path(), 64 << 10).await {
            form.discard();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_target_starts_from_a_journal_the_watcher_reads() {
        let s = Scratch::new();
        let path = s.file("journal.jsonl", JOURNAL_START.as_bytes());
        let (_, lines) = crate::watch::journal::Journal::open(&path).expect("a valid journal");
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn zip_entries_are_the_pieces_named_by_their_first_line() {
        let zip = zip_entries(b"archive/data.pkl\nPICKLE--next-file--archive/data/0\n\x01\x02");
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
        assert_eq!(z.len(), 2);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name("archive/data/0").expect("entry"), &mut bytes).expect("read");
        assert_eq!(bytes, [1, 2]);
    }

    #[test]
    fn split_keeps_at_most_the_asked_pieces() {
        assert_eq!(
            split(b"a--next-file--b--next-file--c", NEXT, 2),
            [&b"a"[..], b"b--next-file--c"]
        );
        assert_eq!(split(b"abc", NEXT, 8), [&b"abc"[..]]);
    }
}
