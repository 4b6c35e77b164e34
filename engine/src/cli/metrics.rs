//! `delinea metrics`, `evaluate`, `compare` (being written).

use super::{ExitStatus, Global};

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {}
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {}
#[derive(Debug, clap::Args)]
pub struct CompareArgs {}

pub fn run_metrics(_args: MetricsArgs, _global: Global) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("not built yet")
}
pub fn run_evaluate(_args: EvaluateArgs, _global: Global) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("not built yet")
}
pub fn run_compare(_args: CompareArgs, _global: Global) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("not built yet")
}
