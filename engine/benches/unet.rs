//! Micro-benchmark of the paper's U-Net on the CPU backend (not a test): one SGD training step
//! (forward, loss, backward, update) and one inference batch (eval mode, no autodiff) as
//! `delinea predict` runs it (batch norm folded, one concurrent part of the batch per thread),
//! and for comparison the whole batch at once with and without batch norm folded.
//!
//! `cargo bench -p delinea --bench unet` (release profile). Environment: `DELINEA_BENCH_THREADS`
//! (rayon threads, default 2), `DELINEA_BENCH_SIZE` (slice side, default 128),
//! `DELINEA_BENCH_BATCH` (default 8), `DELINEA_BENCH_REPS` (timed repetitions, default 3),
//! `DELINEA_BENCH_BN` (0: skip the batch-norm comparison, e.g. when profiling the U-Net alone),
//! `DELINEA_BENCH_TRAIN` (0: time inference only, e.g. when profiling it; training reads 0),
//! `DELINEA_BENCH_OPS` (0: skip the per-op table of `unet/ops.rs`), `DELINEA_BENCH_BEFORE` (0:
//! skip the runs with burn's convolution ops, e.g. when profiling). The training step and the
//! inference as predict runs it are also timed with burn's own convolution ops (the path before
//! delinea's kernels, `model::kernels`), in the same run.
//! Reports the median and the minimum of the timed repetitions after one warm-up (also as one
//! `json: {...}` line, read by bench/model/run.sh), and the same
//! for one batch norm at `[batch, 16, size, size]` (the widest activation of the network):
//! burn 0.21's `BatchNorm` against ours ([`BatchNorm2d`]), measured in the same run.
#![allow(clippy::print_stdout)]

#[path = "unet/ops.rs"]
mod ops;

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::nn::BatchNormConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};
use delinea::device::CpuAutodiff;
use delinea::model::kernels::use_burn_ops;
use delinea::model::{BatchNorm2d, BatchNorm2dConfig, SegLossConfig, UNet2d, UNet2dConfig};

type AB = CpuAutodiff;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Median and minimum of `reps` timed runs of `f`, after one untimed warm-up.
fn time(reps: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut t: Vec<Duration> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    t.sort();
    (t[t.len() / 2], t[0])
}

fn main() {
    let threads = env("DELINEA_BENCH_THREADS", 2);
    let (size, batch, reps) = (
        env("DELINEA_BENCH_SIZE", 128),
        env("DELINEA_BENCH_BATCH", 8),
        env("DELINEA_BENCH_REPS", 3),
    );
    if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global() {
        println!("could not set {threads} rayon threads: {e}");
    }
    let device = Default::default();
    AB::seed(&device, 0);
    let config = UNet2dConfig::new();
    let mut net: UNet2d<AB> = config.init(&device).expect("the paper config is valid");
    let loss_fn = SegLossConfig::new()
        .init(config.classes)
        .expect("the default loss is valid");
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
        .with_weight_decay(Some(WeightDecayConfig::new(1e-4)))
        .init::<AB, UNet2d<AB>>();
    let x = Tensor::<AB, 4>::random([batch, 1, size, size], Distribution::Normal(0.0, 1.0), &device);
    let y = Tensor::<AB, 3, Int>::random([batch, size, size], Distribution::Uniform(0.0, 2.0), &device);

    // Where a training step goes: forward (with the autodiff graph) + loss, then + backward.
    let train = env("DELINEA_BENCH_TRAIN", 1) == 1;
    let timed = |f: &mut dyn FnMut()| {
        if train {
            time(reps, f)
        } else {
            (Duration::ZERO, Duration::ZERO)
        }
    };
    let (fwd_med, _) = timed(&mut || {
        let _ = loss_fn.forward(net.forward(x.clone()), y.clone()).total.into_scalar();
    });
    let (fwd_bwd_med, _) = timed(&mut || {
        let _ = loss_fn.forward(net.forward(x.clone()), y.clone()).total.backward();
    });
    let mut step = || {
        let loss = loss_fn.forward(net.forward(x.clone()), y.clone()).total;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(0.03, net.clone(), grads);
    };
    let (train_med, train_min) = timed(&mut step);
    // The same step with burn's own convolution ops: the path before delinea's kernels.
    let before = env("DELINEA_BENCH_BEFORE", 1) == 1;
    let (burn_train_med, burn_train_min) = if before {
        everywhere_burn_ops(|| timed(&mut step))
    } else {
        Default::default()
    };
    let eval = net.valid();
    let xi = x.inner();
    // Inference as `delinea predict` runs it on the CPU: one concurrent part per thread, batch
    // norm folded; then the whole batch at once, folded and not (the path before both).
    let (infer_med, infer_min) = time(reps, || {
        let _ = eval.forward_in_parts(xi.clone(), threads).0.sum().into_scalar();
    });
    let (burn_infer_med, burn_infer_min) = if before {
        everywhere_burn_ops(|| {
            time(reps, || {
                let _ = eval.forward_in_parts(xi.clone(), threads).0.sum().into_scalar();
            })
        })
    } else {
        Default::default()
    };
    let (whole_med, whole_min) = time(reps, || {
        let _ = eval.forward(xi.clone()).sum().into_scalar();
    });
    let (unfolded_med, unfolded_min) = time(reps, || {
        let _ = eval.forward_unfolded(xi.clone()).sum().into_scalar();
    });
    let bn = (env("DELINEA_BENCH_BN", 1) == 1).then(|| bench_batch_norm(reps, batch, size));
    let op_times = (train && env("DELINEA_BENCH_OPS", 1) == 1)
        .then(|| [true, false].map(|burn_ops| ops::time_ops(reps, batch, size, burn_ops)));
    println!("unet2d paper config, flex CPU, {threads} threads, batch [{batch}, 1, {size}, {size}], {reps} reps");
    println!(
        "  training step:   median {:.3} s  (min {:.3} s)",
        train_med.as_secs_f64(),
        train_min.as_secs_f64()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  of which: forward+loss {:.0} ms, backward {:.0} ms, optimiser step {:.0} ms",
        ms(fwd_med),
        ms(fwd_bwd_med.saturating_sub(fwd_med)),
        ms(train_med.saturating_sub(fwd_bwd_med))
    );
    println!(
        "  training step, burn's convolution ops (before): median {:.3} s  (min {:.3} s)",
        burn_train_med.as_secs_f64(),
        burn_train_min.as_secs_f64()
    );
    println!(
        "  inference batch: median {:.3} s  (min {:.3} s)",
        infer_med.as_secs_f64(),
        infer_min.as_secs_f64()
    );
    for (what, (med, min)) in [
        (
            "as predict runs it, burn's convolution ops (before)",
            (burn_infer_med, burn_infer_min),
        ),
        ("whole batch at once", (whole_med, whole_min)),
        ("whole batch, batch norm not folded", (unfolded_med, unfolded_min)),
    ] {
        println!(
            "  inference, {what}: median {:.3} s  (min {:.3} s)",
            med.as_secs_f64(),
            min.as_secs_f64()
        );
    }
    println!(
        "json: {}",
        serde_json::json!({
            "impl": "delinea", "threads": threads, "batch": batch, "size": size, "reps": reps,
            "train_median_s": train_med.as_secs_f64(), "train_min_s": train_min.as_secs_f64(),
            "infer_median_s": infer_med.as_secs_f64(), "infer_min_s": infer_min.as_secs_f64(),
            "infer_whole_median_s": whole_med.as_secs_f64(), "infer_whole_min_s": whole_min.as_secs_f64(),
            "infer_unfolded_median_s": unfolded_med.as_secs_f64(),
            "infer_unfolded_min_s": unfolded_min.as_secs_f64(),
            "train_burn_ops_median_s": burn_train_med.as_secs_f64(),
            "train_burn_ops_min_s": burn_train_min.as_secs_f64(),
            "infer_burn_ops_median_s": burn_infer_med.as_secs_f64(),
            "infer_burn_ops_min_s": burn_infer_min.as_secs_f64(),
            "ops_ms": op_times.map(|[burn, ours]| serde_json::json!({
                "burn": op_json(&burn, burn_train_med), "delinea": op_json(&ours, train_med),
            })),
        })
    );
    if let Some([burn, ours]) = op_times {
        print_ops(reps, &[(burn, burn_train_med), (ours, train_med)]);
    }
    if let Some(bn) = bn {
        println!("batch norm [{batch}, 16, {size}, {size}], median of {reps}:");
        println!(
            "  forward+backward: burn BatchNorm {:.1} ms, delinea BatchNorm2d {:.1} ms",
            ms(bn[0]),
            ms(bn[1])
        );
        println!(
            "  forward (eval):   burn BatchNorm {:.1} ms, delinea BatchNorm2d {:.1} ms",
            ms(bn[2]),
            ms(bn[3])
        );
    }
}

/// Runs `f` with burn's own convolution ops on every thread of the pool and this one.
fn everywhere_burn_ops<R>(f: impl FnOnce() -> R) -> R {
    rayon::broadcast(|_| use_burn_ops(true));
    use_burn_ops(true);
    let result = f();
    rayon::broadcast(|_| use_burn_ops(false));
    use_burn_ops(false);
    result
}

/// The rows of the per-op table: name and milliseconds, "the rest" from the step's median.
fn op_rows(t: &ops::OpTimes, step: Duration) -> [(&'static str, f64); 6] {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    [
        ("convolution forward", ms(t.conv_forward)),
        ("convolution input gradient", ms(t.conv_input_grad)),
        ("convolution weight + bias gradient", ms(t.conv_weight_grad)),
        ("transposed convolution, forward + backward", ms(t.conv_transpose)),
        ("batch norm, forward + backward", ms(t.batch_norm)),
        ("the rest of the step", ms(step.saturating_sub(t.total()))),
    ]
}

fn op_json(t: &ops::OpTimes, step: Duration) -> serde_json::Value {
    serde_json::Value::Object(
        op_rows(t, step)
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect(),
    )
}

fn print_ops(reps: usize, runs: &[(ops::OpTimes, Duration); 2]) {
    println!("per op in a training step, summed over the network's layers (medians of {reps}, ms):");
    println!("  {:<44} {:>10} {:>10}", "", "burn ops", "delinea");
    let [before, after] = runs.map(|(t, step)| op_rows(&t, step));
    for ((name, b), (_, a)) in before.iter().zip(after) {
        println!("  {name:<44} {b:>10.1} {a:>10.1}");
    }
}

/// Forward + backward (training) and forward (evaluation) of one batch norm over
/// `[batch, 16, size, size]`: burn's `BatchNorm`, then ours. Returns the medians in that order:
/// `[burn train, ours train, burn eval, ours eval]`.
fn bench_batch_norm(reps: usize, batch: usize, size: usize) -> [Duration; 4] {
    let device = Default::default();
    let x = Tensor::<AB, 4>::random([batch, 16, size, size], Distribution::Normal(0.0, 1.0), &device).require_grad();
    let theirs = BatchNormConfig::new(16).init::<AB>(&device);
    let ours: BatchNorm2d<AB> = BatchNorm2dConfig::new(16).init(&device);
    let burn_train = time(reps, || {
        let _ = theirs.forward(x.clone()).sum().backward();
    });
    let ours_train = time(reps, || {
        let _ = ours.forward(x.clone()).sum().backward();
    });
    let (theirs, ours, xi) = (theirs.valid(), ours.valid(), x.inner());
    let burn_eval = time(reps, || {
        let _ = theirs.forward(xi.clone());
    });
    let ours_eval = time(reps, || {
        let _ = ours.forward(xi.clone());
    });
    [burn_train.0, ours_train.0, burn_eval.0, ours_eval.0]
}
