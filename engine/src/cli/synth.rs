//! `delinea synth` (being written).

use super::{ExitStatus, Global};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _global: Global) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("delinea synth is not built yet")
}
