//! The engine's services, safe: read a volume or label map, compute the metrics of two masks,
//! run the current model on slices. Each call copies the host's answer and gives the host's
//! buffer back at once.

use crate::abi::{CallContext, HostBuffer, HostServices, StrRef};

/// A volume (or label map) the host read: voxels (i fastest) and its grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Voxel values.
    pub data: Vec<f32>,
    /// `{"dims": [...], "spacing": [...], "affine": [[...]]}`.
    pub geometry: serde_json::Value,
}

/// What the host offers a call (no services in tests unless a test gives some).
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    services: Option<&'a HostServices>,
    threads: usize,
    host_parallel: bool,
}

impl<'a> Host<'a> {
    /// The host of a call.
    ///
    /// # Safety
    /// `call` (and its `services`) must be valid for `'a`, or null.
    #[doc(hidden)]
    pub unsafe fn from_call(call: *const CallContext) -> Host<'a> {
        // SAFETY: the caller's contract.
        let call = unsafe { call.as_ref() };
        Host {
            services: call.and_then(|c| unsafe { c.services.as_ref() }),
            threads: call.map_or(1, |c| c.threads.max(1) as usize),
            host_parallel: call.is_some_and(|c| c.host_parallel != 0),
        }
    }

    /// A host offering nothing (one thread).
    pub fn none() -> Host<'static> {
        Host {
            services: None,
            threads: 1,
            host_parallel: false,
        }
    }

    /// Threads the plugin may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether the host already runs work in parallel around this call (use one thread).
    pub fn host_parallel(&self) -> bool {
        self.host_parallel
    }

    fn services(&self) -> Result<&'a HostServices, String> {
        self.services
            .ok_or_else(|| "this host offers no services to plugins here".to_string())
    }

    /// Calls a service filling `out`, copies what `take` wants, releases the buffer.
    fn call<T>(
        &self,
        run: impl FnOnce(&HostServices, *mut HostBuffer) -> i32,
        take: impl FnOnce(&HostBuffer) -> Result<T, String>,
    ) -> Result<T, String> {
        let s = self.services()?;
        let mut out = HostBuffer::EMPTY;
        let status = run(s, &mut out);
        let result = if status == 0 {
            take(&out)
        } else {
            // SAFETY: the host's json is valid until released.
            let json = unsafe { out.json.to_str_lossy() }.into_owned();
            let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            Err(value["error"]
                .as_str()
                .unwrap_or("the host's service failed")
                .to_string())
        };
        // SAFETY: `out` was filled by this host's service and is released once.
        unsafe { (s.release)(s.data, &mut out) };
        result
    }

    fn floats(out: &HostBuffer) -> Vec<f32> {
        if out.floats.is_null() {
            return Vec::new();
        }
        // SAFETY: the host's floats are valid until released.
        unsafe { std::slice::from_raw_parts(out.floats, out.n_floats) }.to_vec()
    }

    fn json(out: &HostBuffer) -> Result<serde_json::Value, String> {
        // SAFETY: the host's json is valid until released.
        let text = unsafe { out.json.to_str_lossy() };
        serde_json::from_str(&text).map_err(|e| format!("the host's answer is not JSON: {e}"))
    }

    /// Reads the image (`labels: false`) or label map at `path` (inside the folders the job
    /// allows).
    pub fn read_volume(&self, path: &str, labels: bool) -> Result<Volume, String> {
        self.call(
            // SAFETY: a service of this host, its arguments valid for the call.
            |s, out| unsafe { (s.read_volume)(s.data, StrRef::new(path), u32::from(labels), out) },
            |out| {
                Ok(Volume {
                    data: Self::floats(out),
                    geometry: Self::json(out)?,
                })
            },
        )
    }

    /// The metrics (as `delinea metrics`) of two masks on one grid of `dims` voxels of
    /// `spacing` mm.
    pub fn metrics(
        &self,
        pred: &[u8],
        truth: &[u8],
        dims: [usize; 3],
        spacing: [f64; 3],
    ) -> Result<serde_json::Value, String> {
        let n = dims.iter().product::<usize>();
        if pred.len() != n || truth.len() != n {
            return Err(format!(
                "masks of {} and {} voxels for a grid of {n}",
                pred.len(),
                truth.len()
            ));
        }
        self.call(
            // SAFETY: both masks hold `n` voxels; dims and spacing three values.
            |s, out| unsafe {
                (s.metrics)(
                    s.data,
                    pred.as_ptr(),
                    truth.as_ptr(),
                    dims.as_ptr(),
                    spacing.as_ptr(),
                    out,
                )
            },
            Self::json,
        )
    }

    /// The current model's softmax probabilities of `n` slices of `size × size`
    /// (`[n, classes, size, size]`), or with `mc_samples > 0` that many MC-dropout samples.
    pub fn predict(&self, slices: &[f32], size: usize, mc_samples: u32) -> Result<Vec<f32>, String> {
        let px = size * size;
        if px == 0 || !slices.len().is_multiple_of(px) {
            return Err(format!("{} values are not whole {size} × {size} slices", slices.len()));
        }
        let n = slices.len() / px;
        self.call(
            // SAFETY: `n` slices of `px` floats.
            |s, out| unsafe { (s.predict)(s.data, slices.as_ptr(), n, size, mc_samples, out) },
            |out| Ok(Self::floats(out)),
        )
    }
}
