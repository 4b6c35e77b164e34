//! How fast the paper's U-Net runs on a device (`delinea device --bench`): one SGD training
//! step (forward, loss, backward, update) and one inference batch (evaluation mode, no
//! autodiff), each timed after a warm-up, with the device synchronised before every clock
//! reading (GPU work is asynchronous). The CPU micro-benchmark with its breakdown is
//! `cargo bench --bench unet`.

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, ElementConversion, Int, Tensor};
use serde::Serialize;

use super::{SegLossConfig, UNet2d, UNet2dConfig};
use crate::device::BackendTask;

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Options {
    /// Slice side (the paper: 256).
    pub size: usize,
    /// Slices per batch (the paper: 32).
    pub batch: usize,
    /// Timed repetitions after one warm-up.
    pub reps: usize,
}

/// The timings, seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    /// What was timed.
    pub options: Options,
    /// Median of a training step.
    pub train_step_median_s: f64,
    /// The fastest training step.
    pub train_step_min_s: f64,
    /// Median of an inference batch.
    pub inference_median_s: f64,
    /// The fastest inference batch.
    pub inference_min_s: f64,
    /// The loss of the last training step (finite when the device computes).
    pub last_loss: f64,
}

/// Error of a device that cannot run the network at this size.
#[derive(Debug, thiserror::Error)]
#[error("the U-Net at {size} x {size}, batch {batch}: {reason}")]
pub struct TimingError {
    size: usize,
    batch: usize,
    reason: String,
}

impl BackendTask for Options {
    type Output = Result<Timings, TimingError>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let fail = |reason: String| TimingError {
            size: self.size,
            batch: self.batch,
            reason,
        };
        if self.size == 0 || !self.size.is_multiple_of(16) || self.batch == 0 || self.reps == 0 {
            return Err(fail(
                "size must be a positive multiple of 16, batch and reps at least 1".into(),
            ));
        }
        B::seed(&device, 0);
        let config = UNet2dConfig::new();
        let mut net: UNet2d<B> = config.init(&device).map_err(|e| fail(e.to_string()))?;
        let loss_fn = SegLossConfig::new()
            .init(config.classes)
            .map_err(|e| fail(e.to_string()))?;
        let mut optim = SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
            .with_weight_decay(Some(WeightDecayConfig::new(1e-4)))
            .init::<B, UNet2d<B>>();
        let (b, s) = (self.batch, self.size);
        let x = Tensor::<B, 4>::random([b, 1, s, s], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<B, 3, Int>::random([b, s, s], Distribution::Uniform(0.0, 2.0), &device);
        let sync = || B::sync(&device).map_err(|e| fail(format!("{e:?}")));
        let mut last_loss = f64::NAN;
        // A step as the trainer runs it: the loss read back (logged), the update applied.
        let train = time(self.reps, || {
            let loss = loss_fn.forward(net.forward(x.clone()), y.clone()).total;
            last_loss = loss.clone().into_scalar().elem::<f64>();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(0.03, net.clone(), grads);
            sync()
        })?;
        let eval = net.valid();
        let xi = x.inner();
        let infer = time(self.reps, || {
            let _ = eval.forward(xi.clone());
            sync()
        })?;
        Ok(Timings {
            options: self,
            train_step_median_s: train[0].as_secs_f64(),
            train_step_min_s: train[1].as_secs_f64(),
            inference_median_s: infer[0].as_secs_f64(),
            inference_min_s: infer[1].as_secs_f64(),
            last_loss,
        })
    }
}

/// Median and minimum of `reps` timed runs of `f`, after one untimed warm-up.
fn time<E>(reps: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<[Duration; 2], E> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed());
    }
    t.sort();
    Ok([t[t.len() / 2], t[0]])
}
