//! Where the numbers are computed: `--device auto|cpu|cuda[:N]` parsed into a
//! [`DeviceRequest`], resolved into a [`Device`] that exists, and the one place that names
//! concrete burn backends ([`CpuBackend`], `CudaBackend` with the `cuda` feature).
//!
//! Library code stays generic over `B: Backend`; a caller hands a [`BackendTask`] to
//! [`run_on`], which picks the backend type for the resolved device (the pattern of burn's
//! examples, where `main` fixes the backend and the library stays generic).
//!
//! ```
//! use delinea::device::{resolve, Device, DeviceRequest};
//!
//! let request: DeviceRequest = "cpu".parse().unwrap();
//! assert_eq!(resolve(request).unwrap(), Device::Cpu);
//! assert!("gpu".parse::<DeviceRequest>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;

/// The CPU backend: burn's flex (SIMD kernels, rayon threads).
pub type CpuBackend = Flex;
/// [`CpuBackend`] with automatic differentiation, for training.
pub type CpuAutodiff = Autodiff<CpuBackend>;
/// The CUDA backend (burn-cuda with kernel fusion and autotuning).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;
/// [`CudaBackend`] with automatic differentiation, for training.
#[cfg(feature = "cuda")]
pub type CudaAutodiff = Autodiff<CudaBackend>;

/// What the user asked for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// CUDA when compiled in and a GPU answers, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device number `N` (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceRequest {
    type Err = Error;

    /// Parses `auto`, `cpu`, `cuda` or `cuda:N` (case-insensitive, surrounding blanks ignored).
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| Error::Parse { input: s.to_string() }),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// A device that exists and answered, as [`resolve`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The CPU ([`CpuBackend`]).
    Cpu,
    /// CUDA device number `index` (`CudaBackend`).
    Cuda {
        /// The CUDA ordinal.
        index: usize,
    },
}

impl Device {
    /// How many concurrent parts a batch is cut into for inference here
    /// ([`UNet2d::forward_in_parts`](crate::model::UNet2d::forward_in_parts)): one per rayon
    /// thread on the CPU (each convolution has stretches one thread runs alone), 1 on a GPU
    /// (it runs the whole batch at once).
    pub fn inference_parts(&self) -> usize {
        match self {
            Device::Cpu => rayon::current_num_threads(),
            Device::Cuda { .. } => 1,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda { index } => write!(f, "cuda:{index}"),
        }
    }
}

/// Why a device request cannot be met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not one of `auto`, `cpu`, `cuda`, `cuda:N`.
    #[error("unknown device `{input}`: expected auto, cpu, cuda or cuda:N")]
    Parse {
        /// What was given.
        input: String,
    },
    /// CUDA was asked for, but this delinea was built without the `cuda` feature.
    #[error("`{requested}` asked for, but this delinea was built without CUDA (rebuild with `--features cuda`)")]
    CudaNotCompiled {
        /// The request, e.g. `cuda:0`.
        requested: String,
    },
    /// CUDA is compiled in, but the device did not answer (no driver, no GPU, bad index).
    #[error("CUDA device {index} is not usable: {reason}")]
    CudaUnavailable {
        /// The CUDA ordinal asked for.
        index: usize,
        /// What the CUDA runtime said.
        reason: String,
    },
}

/// Whether this build has the CUDA backend (the `cuda` cargo feature).
pub const fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// Turns a request into a device that answers: `cpu` always; `cuda:N` only when compiled in and
/// device `N` runs a tiny computation, else a typed error; `auto` CUDA device 0 when that works,
/// else the CPU.
pub fn resolve(request: DeviceRequest) -> Result<Device, Error> {
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Cuda(index) => probe_cuda(index, &request).map(|()| Device::Cuda { index }),
        DeviceRequest::Auto => Ok(match probe_cuda(0, &request) {
            Ok(()) => Device::Cuda { index: 0 },
            Err(_) => Device::Cpu,
        }),
    }
}

#[cfg(not(feature = "cuda"))]
fn probe_cuda(_index: usize, request: &DeviceRequest) -> Result<(), Error> {
    Err(Error::CudaNotCompiled {
        requested: request.to_string(),
    })
}

/// Runs `1 + 2` on the device and reads it back. cubecl panics (rather than erring) when the
/// driver library is missing or the ordinal does not exist, often in its own server thread, so
/// the probe catches the panic and, through a temporary panic hook that prints nothing, keeps
/// the first panic message of any thread as the reason (a panic elsewhere in the process
/// during those milliseconds would print nothing either: resolve devices at startup).
#[cfg(feature = "cuda")]
fn probe_cuda(index: usize, _request: &DeviceRequest) -> Result<(), Error> {
    use burn::backend::cuda::CudaDevice;
    use burn::tensor::Tensor;
    use std::panic::{catch_unwind, set_hook, take_hook};
    use std::sync::Mutex;

    // One probe at a time, so that concurrent probes cannot restore each other's silent hook.
    static PROBE: Mutex<()> = Mutex::new(());
    static FIRST_PANIC: Mutex<Option<String>> = Mutex::new(None);
    let _probe = PROBE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *FIRST_PANIC.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    let hook = take_hook();
    set_hook(Box::new(|info| {
        let mut first = FIRST_PANIC.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if first.is_none() {
            let payload = info.payload();
            let message = (payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| info.to_string());
            *first = Some(message);
        }
    }));
    let result = catch_unwind(|| {
        let device = CudaDevice::new(index);
        Tensor::<CudaBackend, 1>::from_floats([1.0, 2.0], &device)
            .sum()
            .into_scalar()
    });
    set_hook(hook);
    let first = FIRST_PANIC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    match result {
        Ok(3.0) => Ok(()),
        Ok(sum) => Err(Error::CudaUnavailable {
            index,
            reason: format!("1 + 2 gave {sum}"),
        }),
        Err(_) => {
            let reason = first.unwrap_or_else(|| "the CUDA runtime failed".into());
            // cudarc's message goes on to list every library name it tried; the head says it.
            let head = reason.lines().next().unwrap_or_default();
            let reason = head
                .split(" - searched for")
                .next()
                .unwrap_or(head)
                .chars()
                .take(300)
                .collect();
            Err(Error::CudaUnavailable { index, reason })
        }
    }
}

/// Work that runs on any autodiff backend; [`run_on`] chooses which.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs on backend `B` (train with `B`, evaluate with `B::InnerBackend`) on `device`.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on the backend of `device`: [`CpuAutodiff`] for the CPU, `CudaAutodiff` for CUDA.
///
/// Without the `cuda` feature a [`Device::Cuda`] cannot come out of [`resolve`]; given one
/// anyway, this returns [`Error::CudaNotCompiled`].
pub fn run_on<T: BackendTask>(device: Device, task: T) -> Result<T::Output, Error> {
    match device {
        Device::Cpu => Ok(task.run::<CpuAutodiff>(Default::default())),
        #[cfg(feature = "cuda")]
        Device::Cuda { index } => Ok(task.run::<CudaAutodiff>(burn::backend::cuda::CudaDevice::new(index))),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda { .. } => Err(Error::CudaNotCompiled {
            requested: device.to_string(),
        }),
    }
}

/// The CPU as the operating system names it (Linux: `model name` in /proc/cpuinfo), else the
/// architecture, with the instruction set its matrix products run with ([`simd_level`]), e.g.
/// `Intel(R) Xeon(R) Platinum 8488C (AVX-512)`: two tables computed on CPUs that differ here
/// may differ in their floating-point detail.
pub fn cpu_description() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model} ({})", simd_level())
}

/// The instruction set `gemm` (under flex's and delinea's CPU kernels) chooses at run time, as
/// gemm-common 0.19 chooses it: AVX-512 (this build enables burn-flex's `x86-v4`), else FMA
/// (AVX2), else scalar on x86; NEON on ARM.
pub fn simd_level() -> &'static str {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "AVX-512"
        } else if std::arch::is_x86_feature_detected!("fma") {
            "AVX2/FMA"
        } else {
            "scalar"
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            "NEON"
        } else {
            "scalar"
        }
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// [`Device::inference_parts`] for backend `B`: the CPU's for the CPU backends, 1 otherwise.
pub fn inference_parts<B: burn::tensor::backend::Backend>() -> usize {
    use std::any::TypeId;
    let cpu = [TypeId::of::<CpuBackend>(), TypeId::of::<CpuAutodiff>()];
    if cpu.contains(&TypeId::of::<B>()) {
        Device::Cpu.inference_parts()
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{ElementConversion, Tensor};

    use super::*;

    #[test]
    fn the_cpu_is_named_with_its_simd_level() {
        let cpu = cpu_description();
        let level = simd_level();
        assert!(["AVX-512", "AVX2/FMA", "NEON", "scalar"].contains(&level), "{level}");
        assert!(
            cpu.ends_with(&format!(" ({level})")) && cpu.len() > level.len() + 3,
            "{cpu}"
        );
    }

    #[test]
    fn parses_every_form() {
        assert_eq!("auto".parse(), Ok(DeviceRequest::Auto));
        assert_eq!(" CPU ".parse(), Ok(DeviceRequest::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceRequest::Cuda(3)));
        for bad in ["", "gpu", "cuda:", "cuda:-1", "cuda:x", "cpu:0"] {
            assert_eq!(
                bad.parse::<DeviceRequest>(),
                Err(Error::Parse { input: bad.to_string() }),
                "{bad}"
            );
        }
        assert_eq!(DeviceRequest::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn cpu_always_resolves_and_auto_falls_back() {
        assert_eq!(resolve(DeviceRequest::Cpu), Ok(Device::Cpu));
        // On a machine without a GPU (or a build without CUDA), auto is the CPU; with one, CUDA 0.
        let auto = resolve(DeviceRequest::Auto).unwrap();
        assert!(auto == Device::Cpu || (cuda_compiled() && auto == Device::Cuda { index: 0 }));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_typed_error() {
        let err = resolve(DeviceRequest::Cuda(1)).unwrap_err();
        assert_eq!(
            err,
            Error::CudaNotCompiled {
                requested: "cuda:1".into()
            }
        );
        assert!(err.to_string().contains("--features cuda"));
        assert!(run_on(Device::Cuda { index: 0 }, Sum).is_err());
    }

    /// A device number no machine has must fail cleanly, not panic.
    #[cfg(feature = "cuda")]
    #[test]
    fn missing_cuda_device_is_a_typed_error() {
        match resolve(DeviceRequest::Cuda(999)) {
            // The reason is the runtime's own first message, not the channel error it causes.
            Err(Error::CudaUnavailable { index: 999, reason }) => {
                assert!(!reason.is_empty() && !reason.contains("RecvError"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    struct Sum;
    impl BackendTask for Sum {
        type Output = f32;
        fn run<B: AutodiffBackend>(self, device: B::Device) -> f32 {
            Tensor::<B, 1>::from_floats([1.0, 2.0], &device)
                .sum()
                .into_scalar()
                .elem()
        }
    }

    #[test]
    fn run_on_cpu_dispatches() {
        assert_eq!(run_on(Device::Cpu, Sum), Ok(3.0));
    }
}
