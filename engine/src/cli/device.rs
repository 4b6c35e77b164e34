//! `delinea device`: which compute device `--device` resolves to on this machine, and with
//! `--bench` how fast the paper's U-Net trains and infers on it.

use delinea::device::{cuda_compiled, resolve, run_on, DeviceRequest};
use delinea::model::timing;

use super::{print_json, ExitStatus, Global};

/// Resolve a `--device` request and say what it gives (exit 2 if it cannot be met, 75 if a
/// compiled-in GPU does not answer).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// auto (CUDA if compiled in and a GPU answers, else CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
    /// Also time one training step and one inference batch of the paper's U-Net there.
    #[arg(long)]
    bench: bool,
    /// --bench: slice side (the paper's 256).
    #[arg(long, default_value_t = 256, requires = "bench")]
    size: usize,
    /// --bench: slices per batch (the paper's 32).
    #[arg(long, default_value_t = 32, requires = "bench")]
    batch: usize,
    /// --bench: timed repetitions, after one warm-up.
    #[arg(long, default_value_t = 5, requires = "bench")]
    reps: usize,
    /// --bench: print the timings as one JSON object.
    #[arg(long, requires = "bench")]
    json: bool,
}

/// Resolves the request and prints the device it gives (and its timings).
pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let device = resolve(args.device)?;
    if !global.quiet && !args.json {
        println!(
            "{} -> {device} (CUDA compiled in: {})",
            args.device,
            if cuda_compiled() { "yes" } else { "no" }
        );
    }
    if !args.bench {
        return Ok(ExitStatus::Success);
    }
    let options = timing::Options {
        size: args.size,
        batch: args.batch,
        reps: args.reps,
    };
    let t = run_on(device, options)??;
    if args.json {
        print_json(
            &serde_json::json!({"device": device.to_string(), "threads": rayon::current_num_threads(), "timings": t}),
        )?;
    } else if !global.quiet {
        println!(
            "U-Net (paper config), batch [{}, 1, {s}, {s}], {} reps: training step median {:.4} s (min {:.4} s), inference batch median {:.4} s (min {:.4} s); last loss {:.4}",
            t.options.batch,
            t.options.reps,
            t.train_step_median_s,
            t.train_step_min_s,
            t.inference_median_s,
            t.inference_min_s,
            t.last_loss,
            s = t.options.size,
        );
    }
    Ok(ExitStatus::Success)
}
