//! The C ABI: what a plugin library exports and what the host hands it. Every type is
//! `#[repr(C)]` and holds no Rust-only layout; strings and buffers are (pointer, length) pairs.
//!
//! Ownership: the host owns every buffer it passes in (`PoolView`, `StrRef` arguments) for the
//! length of the call; the plugin owns every buffer it returns (`QueryAnswer`, `PlanAnswer`)
//! until the host calls the answer's own `release`. Neither side ever frees the other's memory.
//! Buffers the host's services return to a plugin (`HostBuffer`) are released with the
//! services' `release`.

use std::ffi::c_void;

/// The major version: a host refuses a plugin of another major.
pub const ABI_MAJOR: u32 = 1;
/// The minor version: additions a host of the same major may ignore.
pub const ABI_MINOR: u32 = 0;
/// The first bytes of a [`Descriptor`].
pub const MAGIC: [u8; 8] = *b"DLNPLUG1";
/// The section holding the descriptor (ELF; Mach-O uses `__DATA,__delinea`).
pub const SECTION: &str = ".delinea_plugin";
/// The exported function returning the [`PluginTable`].
pub const ENTRY: &str = "delinea_plugin_entry_v1";

/// A query plugin: ranks a pool.
pub const KIND_QUERY: u32 = 1;
/// An adaptation plugin: plans an adaptation.
pub const KIND_ADAPT: u32 = 2;

/// The call succeeded.
pub const STATUS_OK: i32 = 0;
/// The plugin reported an error (the answer's `error` says which).
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked; the panic was caught at the boundary (the answer's `error` holds its
/// message).
pub const STATUS_PANIC: i32 = 2;

/// A UTF-8 string of `len` bytes at `ptr` (not NUL-terminated; `ptr` may be null when `len`
/// is 0), owned by whoever made it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StrRef {
    /// The bytes.
    pub ptr: *const u8,
    /// How many.
    pub len: usize,
}

impl StrRef {
    /// The empty string.
    pub const EMPTY: StrRef = StrRef {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// A view of `s` (valid while `s` lives).
    pub fn new(s: &str) -> StrRef {
        StrRef {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The string, lossily decoded.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes (or `len` be 0) for the returned lifetime.
    pub unsafe fn to_str_lossy<'a>(self) -> std::borrow::Cow<'a, str> {
        if self.ptr.is_null() || self.len == 0 {
            return std::borrow::Cow::Borrowed("");
        }
        // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        String::from_utf8_lossy(bytes)
    }
}

/// A fixed-size string inside the [`Descriptor`] (readable from the file without loading it,
/// so no pointers).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FixedStr<const N: usize> {
    /// Bytes used.
    pub len: u32,
    /// UTF-8 bytes, zero-padded.
    pub bytes: [u8; N],
}

impl<const N: usize> FixedStr<N> {
    /// `parts` concatenated; a compile-time error when they do not fit.
    pub const fn join(parts: &[&str]) -> FixedStr<N> {
        let mut bytes = [0u8; N];
        let mut len = 0;
        let mut p = 0;
        while p < parts.len() {
            let s = parts[p].as_bytes();
            let mut i = 0;
            while i < s.len() {
                assert!(len < N, "a plugin descriptor string is too long");
                bytes[len] = s[i];
                len += 1;
                i += 1;
            }
            p += 1;
        }
        FixedStr { len: len as u32, bytes }
    }

    /// The string (lossily decoded).
    pub fn as_string(&self) -> String {
        let n = (self.len as usize).min(N);
        String::from_utf8_lossy(&self.bytes[..n]).into_owned()
    }
}

/// What the host reads from the library file before loading it (a named section), so that
/// a file that is not a delinea plugin of this ABI never runs any of its code here.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Descriptor {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`ABI_MAJOR`] of the SDK the plugin was built with.
    pub abi_major: u32,
    /// [`ABI_MINOR`] of that SDK.
    pub abi_minor: u32,
    /// `size_of::<Descriptor>()` as built: a host refuses a shorter one.
    pub size: u32,
    /// [`KIND_QUERY`] or [`KIND_ADAPT`].
    pub kind: u32,
    /// 1 when the plugin was built with `panic = "unwind"` (a panic can then be caught at the
    /// boundary); 0 for `panic = "abort"`, which a host refuses: such a plugin's panic would
    /// abort the host.
    pub panic_unwind: u32,
    /// The scores a query plugin reads, one bit each: entropy 1, bald 2, margin 4, stdr 8,
    /// features 16 (only those are computed for its pool).
    pub needs: u32,
    /// The plugin's name.
    pub name: FixedStr<64>,
    /// The plugin's version.
    pub version: FixedStr<32>,
    /// The SDK (`delinea-plugin-api`) version it was built with.
    pub sdk_version: FixedStr<32>,
    /// `arch-os` it was built for.
    pub target: FixedStr<64>,
    /// The JSON Schema of its parameters.
    pub params_schema: FixedStr<4096>,
}

/// One host-owned score column of a pool: `values[row]`, NaN where the row has no value.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ColumnView {
    /// `entropy`, `bald`, `margin`, `tumour_area` or `stdr_distance`.
    pub name: StrRef,
    /// `rows` values.
    pub values: *const f64,
}

/// The pool a query plugin ranks, host-owned, as columns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PoolView {
    /// Rows.
    pub rows: usize,
    /// 0: a row is a slice; 1: a volume.
    pub unit: u32,
    /// Score columns.
    pub columns: *const ColumnView,
    /// How many.
    pub n_columns: usize,
    /// Each row's case number, into `case_ids`.
    pub case: *const u32,
    /// Each row's axial slice index (-1 for a volume row).
    pub slice: *const i64,
    /// The case ids.
    pub case_ids: *const StrRef,
    /// How many.
    pub n_cases: usize,
    /// `rows × descriptor_len` STDR descriptors, row-major (null when not computed).
    pub descriptors: *const f32,
    /// Values per descriptor (0 when not computed).
    pub descriptor_len: usize,
    /// JSON metadata: `{"unit": …, "centres": [...]}`.
    pub metadata: StrRef,
}

/// A buffer the host's services made for a plugin; give it back with
/// [`HostServices::release`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostBuffer {
    /// Floats (volumes, probabilities), or null.
    pub floats: *const f32,
    /// How many.
    pub n_floats: usize,
    /// JSON (geometry, metrics, errors), or empty.
    pub json: StrRef,
    /// The host's own handle; leave it alone.
    pub owner: *mut c_void,
}

impl HostBuffer {
    /// An empty buffer to be filled by a service.
    pub const EMPTY: HostBuffer = HostBuffer {
        floats: std::ptr::null(),
        n_floats: 0,
        json: StrRef::EMPTY,
        owner: std::ptr::null_mut(),
    };
}

/// The engine's services a plugin may call during a call: read a volume or label map, compute
/// the metrics of two masks, run the current model on a batch of slices. Each returns a status
/// and fills `out` (on error, `out.json` holds `{"error": "…"}`); the plugin releases every
/// `out` it got with `release`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostServices {
    /// 1.
    pub version: u32,
    /// `size_of::<HostServices>()`.
    pub size: u32,
    /// The host's state; pass it back to every service.
    pub data: *const c_void,
    /// Reads a volume (`labels` 0) or label map (1) at `path`, inside the folders the job
    /// allows: `out.floats` the voxels (i fastest), `out.json` `{"dims", "spacing", "affine"}`.
    pub read_volume: unsafe extern "C" fn(data: *const c_void, path: StrRef, labels: u32, out: *mut HostBuffer) -> i32,
    /// The metrics (`delinea metrics`) of two masks of `dims` voxels of `spacing` mm:
    /// `out.json` the metrics map.
    pub metrics: unsafe extern "C" fn(
        data: *const c_void,
        pred: *const u8,
        truth: *const u8,
        dims: *const usize,
        spacing: *const f64,
        out: *mut HostBuffer,
    ) -> i32,
    /// Runs the current model on `n` slices of `size × size` (preprocessed as the model card
    /// says): `out.floats` `[n, classes, size, size]` softmax probabilities; with
    /// `mc_samples > 0`, that many MC-dropout samples one after another
    /// (`[samples, n, classes, size, size]`). Only where the host has a model for the call.
    pub predict: unsafe extern "C" fn(
        data: *const c_void,
        slices: *const f32,
        n: usize,
        size: usize,
        mc_samples: u32,
        out: *mut HostBuffer,
    ) -> i32,
    /// Gives back a buffer a service filled.
    pub release: unsafe extern "C" fn(data: *const c_void, buffer: *mut HostBuffer),
}

/// What every call gets besides its arguments.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CallContext {
    /// `size_of::<CallContext>()`.
    pub size: u32,
    /// Threads the plugin may use.
    pub threads: u32,
    /// 1 when the host already runs work in parallel around this call (use one thread).
    pub host_parallel: u32,
    /// The host's services (null when it offers none).
    pub services: *const HostServices,
}

/// A query plugin's answer, plugin-owned: selected rows best first, optional scores and
/// reasons, or an error.
#[repr(C)]
#[derive(Debug)]
pub struct QueryAnswer {
    /// Row indices.
    pub rows: *const u64,
    /// One score per row (NaN: none), or null.
    pub scores: *const f64,
    /// One reason code per row ([`REASONS`]), or null.
    pub reasons: *const u8,
    /// Rows selected.
    pub len: usize,
    /// The error, when the status is not OK.
    pub error: StrRef,
    /// Frees this answer's buffers (the plugin's own allocator); called once by the host.
    pub release: Option<unsafe extern "C" fn(answer: *mut QueryAnswer)>,
    /// The plugin's handle to its buffers.
    pub owner: *mut c_void,
}

/// An adaptation plugin's answer, plugin-owned: the plan as JSON (the adapt-plan schema), or
/// an error.
#[repr(C)]
#[derive(Debug)]
pub struct PlanAnswer {
    /// The plan.
    pub json: StrRef,
    /// The error, when the status is not OK.
    pub error: StrRef,
    /// Frees this answer's buffers; called once by the host.
    pub release: Option<unsafe extern "C" fn(answer: *mut PlanAnswer)>,
    /// The plugin's handle to its buffers.
    pub owner: *mut c_void,
}

/// Reason codes of a [`QueryAnswer`], by index: far, near, uncertain, diverse, random, policy.
pub const REASONS: [&str; 6] = ["far", "near", "uncertain", "diverse", "random", "policy"];

/// Ranks `pool` for `budget` rows; `params` is JSON (the descriptor's schema).
pub type QueryFn = unsafe extern "C" fn(
    call: *const CallContext,
    pool: *const PoolView,
    budget: u64,
    seed: u64,
    params: StrRef,
    out: *mut QueryAnswer,
) -> i32;

/// Plans an adaptation for `state` (JSON: target, selection, schedule); `params` is JSON.
pub type PlanFn =
    unsafe extern "C" fn(call: *const CallContext, state: StrRef, params: StrRef, out: *mut PlanAnswer) -> i32;

/// What [`ENTRY`] returns: the plugin's functions. A host checks it against the descriptor.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginTable {
    /// `size_of::<PluginTable>()`.
    pub size: u32,
    /// [`ABI_MAJOR`].
    pub abi_major: u32,
    /// [`KIND_QUERY`] or [`KIND_ADAPT`], as the descriptor says.
    pub kind: u32,
    /// The query function (query plugins).
    pub query: Option<QueryFn>,
    /// The plan function (adaptation plugins).
    pub plan: Option<PlanFn>,
}

/// The signature of [`ENTRY`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginTable;
