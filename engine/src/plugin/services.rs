//! The engine's services to plugins ([`HostServices`]): read a volume or label map inside the
//! folders the command allows, compute the metrics of two masks, run the command's model on a
//! batch of slices on its device. Every service catches panics (none may unwind into a
//! plugin's frames) and answers in a host-owned buffer the plugin gives back with `release`.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;
use delinea_plugin_api::abi::{HostBuffer, HostServices, StrRef};

use crate::device::{self, BackendTask, Device};
use crate::script::Sandbox;
use crate::volume::{self, Geometry, LabelMap};

/// What a command lets its plugins reach.
#[derive(Debug, Clone)]
pub struct PluginServices {
    /// Folders whose files `read_volume` may read.
    pub sandbox: Sandbox,
    /// The model `predict` runs (the command's), if any.
    pub model: Option<PathBuf>,
    /// Where it runs.
    pub device: Device,
}

impl Default for PluginServices {
    fn default() -> Self {
        PluginServices {
            sandbox: Sandbox::none(),
            model: None,
            device: Device::Cpu,
        }
    }
}

/// The services' table and the state it points to (kept together, the state boxed so that
/// the table's pointer to it stays valid).
#[derive(Debug)]
pub struct Table {
    state: Box<PluginServices>,
    /// The table handed to plugins.
    pub services: HostServices,
}

// SAFETY: the table only points to `state`, owned here and never mutated after construction.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

impl Table {
    /// The table of `state`.
    pub fn new(state: PluginServices) -> Arc<Table> {
        let state = Box::new(state);
        let data = &*state as *const PluginServices as *const c_void;
        Arc::new(Table {
            services: HostServices {
                version: 1,
                size: std::mem::size_of::<HostServices>() as u32,
                data,
                read_volume,
                metrics,
                predict,
                release,
            },
            state,
        })
    }

    /// The state the services reach.
    pub fn state(&self) -> &PluginServices {
        &self.state
    }
}

/// A host-owned answer.
struct Owned {
    floats: Vec<f32>,
    json: String,
}

/// Fills `out` with `answer` (or an error) and returns the status.
fn answer(out: *mut HostBuffer, answer: Result<(Vec<f32>, String), String>) -> i32 {
    // SAFETY: the plugin passes a writable buffer (the ABI's contract); null is refused.
    let Some(out) = (unsafe { out.as_mut() }) else { return 1 };
    let (status, owned) = match answer {
        Ok((floats, json)) => (0, Owned { floats, json }),
        Err(e) => (
            1,
            Owned {
                floats: vec![],
                json: serde_json::json!({ "error": e }).to_string(),
            },
        ),
    };
    let owned = Box::new(owned);
    out.floats = owned.floats.as_ptr();
    out.n_floats = owned.floats.len();
    out.json = StrRef::new(&owned.json);
    out.owner = Box::into_raw(owned) as *mut c_void;
    status
}

/// Runs a service body, a panic turned into an error.
fn guarded(f: impl FnOnce() -> Result<(Vec<f32>, String), String>) -> Result<(Vec<f32>, String), String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err("the host's service panicked".into()))
}

/// The services' state behind `data`.
///
/// # Safety
/// `data` must be the `data` of a live [`Table`].
unsafe fn state<'a>(data: *const c_void) -> Result<&'a PluginServices, String> {
    // SAFETY: the caller's contract.
    unsafe { (data as *const PluginServices).as_ref() }.ok_or_else(|| "no host state".to_string())
}

unsafe extern "C" fn read_volume(data: *const c_void, path: StrRef, labels: u32, out: *mut HostBuffer) -> i32 {
    answer(
        out,
        guarded(|| {
            // SAFETY: `data` is this table's; `path` a plugin string valid for the call.
            let s = unsafe { state(data) }?;
            let path = PathBuf::from(unsafe { path.to_str_lossy() }.into_owned());
            s.sandbox.check(&path)?;
            let (geometry, voxels) = if labels != 0 {
                let l = volume::read_label_map(&path).map_err(|e| e.to_string())?;
                (l.geometry, l.data.iter().map(|v| f32::from(*v)).collect())
            } else {
                let v = volume::read_volume(&path).map_err(|e| e.to_string())?;
                (v.geometry, v.data)
            };
            let json =
                serde_json::json!({"dims": geometry.dims, "spacing": geometry.spacing, "affine": geometry.affine});
            Ok((voxels, json.to_string()))
        }),
    )
}

unsafe extern "C" fn metrics(
    _data: *const c_void,
    pred: *const u8,
    truth: *const u8,
    dims: *const usize,
    spacing: *const f64,
    out: *mut HostBuffer,
) -> i32 {
    answer(
        out,
        guarded(|| {
            if pred.is_null() || truth.is_null() || dims.is_null() || spacing.is_null() {
                return Err("metrics: a null buffer".into());
            }
            // SAFETY: three dims and three spacings (the ABI), then two masks of that many
            // voxels each, valid for the call.
            let (dims, spacing) = unsafe { (*(dims as *const [usize; 3]), *(spacing as *const [f64; 3])) };
            let n: usize = dims.iter().product();
            let (p, t) = unsafe {
                (
                    std::slice::from_raw_parts(pred, n),
                    std::slice::from_raw_parts(truth, n),
                )
            };
            let g = Geometry::axis_aligned(dims, spacing);
            let (p, t) = (
                LabelMap {
                    geometry: g.clone(),
                    data: p.to_vec(),
                },
                LabelMap {
                    geometry: g,
                    data: t.to_vec(),
                },
            );
            let m = crate::metrics::compute(&p, &t, &crate::metrics::Options::default()).map_err(|e| e.to_string())?;
            Ok((vec![], serde_json::to_string(&m).map_err(|e| e.to_string())?))
        }),
    )
}

/// The command's model on slices.
struct Predict<'a> {
    model: &'a std::path::Path,
    slices: &'a [f32],
    size: usize,
    mc_samples: u32,
}

impl BackendTask for Predict<'_> {
    type Output = Result<Vec<f32>, String>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let (net, card) =
            crate::model::checkpoint::load::<B::InnerBackend>(self.model, &device).map_err(|e| e.to_string())?;
        if card.preprocessing.slice_size != self.size {
            return Err(format!(
                "the model takes {0} × {0} slices, not {1} × {1}",
                card.preprocessing.slice_size, self.size
            ));
        }
        if self.mc_samples == 0 {
            let (p, _) = crate::infer::slice_probabilities(&net, self.slices, self.size, (16, 1), false, false);
            return Ok(p);
        }
        <B::InnerBackend as burn::tensor::backend::Backend>::seed(&device, 0);
        let mut all = Vec::new();
        for _ in 0..self.mc_samples {
            let (p, _) = crate::infer::slice_probabilities(&net, self.slices, self.size, (16, 1), true, false);
            all.extend(p);
        }
        Ok(all)
    }
}

unsafe extern "C" fn predict(
    data: *const c_void,
    slices: *const f32,
    n: usize,
    size: usize,
    mc_samples: u32,
    out: *mut HostBuffer,
) -> i32 {
    answer(
        out,
        guarded(|| {
            // SAFETY: `data` is this table's.
            let s = unsafe { state(data) }?;
            let model = s
                .model
                .as_deref()
                .ok_or("this command has no model for plugins to run")?;
            if slices.is_null() {
                return Err("predict: no slices".into());
            }
            // SAFETY: `n` slices of `size × size` floats, valid for the call.
            let slices = unsafe { std::slice::from_raw_parts(slices, n * size * size) };
            let task = Predict {
                model,
                slices,
                size,
                mc_samples,
            };
            let probs = device::run_on(s.device, task).map_err(|e| e.to_string())??;
            Ok((probs, String::new()))
        }),
    )
}

unsafe extern "C" fn release(_data: *const c_void, buffer: *mut HostBuffer) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `owner` came from `Box::into_raw` in `answer` and is released once (the
        // plugin's contract); null means nothing to release.
        unsafe {
            if let Some(b) = buffer.as_mut() {
                if !b.owner.is_null() {
                    drop(Box::from_raw(b.owner as *mut Owned));
                    *b = HostBuffer::EMPTY;
                }
            }
        }
    }));
}
