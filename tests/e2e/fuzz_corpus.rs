//! The fuzz targets' committed inputs replayed on stable Rust: every file of
//! `fuzz/corpus/<target>` (seeds and the corpus fuzzing grew, minimised) and
//! `fuzz/regressions/<target>` (each input that once crashed, hung or over-allocated) goes
//! through the same `delinea::fuzz` function libFuzzer calls. A panic fails the test naming the
//! target and file; so does an input slower than [`SLOW`] (libFuzzer's limit is 1 s), and one
//! whose reading thread holds more than [`MOST_HELD`] at once (libFuzzer's limit is 2 GB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An input this slow is a hang (generous: CI's 2 cores run other tests beside this one).
const SLOW: Duration = Duration::from_secs(20);

/// An input whose thread holds this much memory at once over-allocates: the committed inputs
/// are at most 128 KiB, and an over-allocation found by fuzzing held 0.8 to 4 GB.
const MOST_HELD: isize = 512 << 20;

/// The system allocator, counting the bytes each thread holds and the most it held: the
/// replay measures one input's peak on its own thread, whatever the other tests beside it do
/// (memory freed on another thread than it was allocated on is counted there; the readers
/// replayed here read on the calling thread).
struct PerThread;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    let _ = HELD.try_with(|held| {
        held.set(held.get() + bytes);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(held.get())));
    });
}

// SAFETY: every call is passed to `System` unchanged; counting touches only const-initialised
// thread-locals (no allocation, no destructor).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        count(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, size) };
        if !q.is_null() {
            count(size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: PerThread = PerThread;

/// Runs `f` and returns the most memory this thread held meanwhile beyond what it held before.
fn peak_held(f: impl FnOnce()) -> isize {
    let before = HELD.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    f();
    PEAK.with(Cell::get) - before
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(folder) {
        Ok(entries) => entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) -> Replayed {
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} holds no input: every target needs its committed corpus"
    );
    let files = corpus
        .into_iter()
        .chain(inputs(&fuzz_dir().join("regressions").join(target)));
    let mut seen = Replayed::default();
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let start = Instant::now();
        let mut panicked = false;
        let held = peak_held(|| panicked = std::panic::catch_unwind(|| run(&data)).is_err());
        assert!(!panicked, "fuzz target {target} panicked on {}", file.display());
        let took = start.elapsed();
        assert!(took < SLOW, "fuzz target {target} took {took:?} on {}", file.display());
        assert!(
            held <= MOST_HELD,
            "fuzz target {target} held {} MiB at once on {}",
            held >> 20,
            file.display()
        );
        seen.add(file, took, held);
    }
    seen
}

/// What a target's replay saw: how many inputs, the slowest and the most memory held.
#[derive(Default)]
struct Replayed {
    count: usize,
    slowest: (Duration, String),
    most_held: (isize, String),
}

impl Replayed {
    fn add(&mut self, file: PathBuf, took: Duration, held: isize) {
        let name = || file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        self.count += 1;
        if took > self.slowest.0 {
            self.slowest = (took, name());
        }
        if held > self.most_held.0 {
            self.most_held = (held, name());
        }
    }
}

#[test]
fn every_committed_fuzz_input_is_handled_without_panic_or_hang() {
    let sphere = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/dicom/sphere");
    delinea::fuzz::set_rtstruct_series(&sphere).expect("the sphere fixture reads");
    let targets_on_disk: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".rs").map(String::from))
        .collect();
    for name in &targets_on_disk {
        assert!(
            delinea::fuzz::TARGETS.iter().any(|(t, _)| t == name),
            "fuzz/fuzz_targets/{name}.rs has no delinea::fuzz::TARGETS entry to replay"
        );
    }
    let mut total = 0;
    for (target, run) in delinea::fuzz::TARGETS {
        let seen = replay(target, *run);
        println!(
            "{target}: {} inputs, slowest {:.0} ms ({}), most held {:.1} MiB ({})",
            seen.count,
            seen.slowest.0.as_secs_f64() * 1e3,
            seen.slowest.1,
            seen.most_held.0 as f64 / (1 << 20) as f64,
            seen.most_held.1
        );
        total += seen.count;
    }
    assert_eq!(targets_on_disk.len(), delinea::fuzz::TARGETS.len());
    println!("{total} inputs replayed");
}
