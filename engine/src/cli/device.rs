//! `delinea device`: which compute device `--device` resolves to on this machine.

use delinea::device::{cuda_compiled, resolve, DeviceRequest};

use super::{ExitStatus, Global};

/// Resolve a `--device` request and say what it gives (exit 2 if it cannot be met).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// auto (CUDA if compiled in and a GPU answers, else CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
}

/// Resolves the request and prints the device it gives.
pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    let device = resolve(args.device)?;
    if !global.quiet {
        println!(
            "{} -> {device} (CUDA compiled in: {})",
            args.device,
            if cuda_compiled() { "yes" } else { "no" }
        );
    }
    Ok(ExitStatus::Success)
}
