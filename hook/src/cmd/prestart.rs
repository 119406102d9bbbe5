//! `nvidia-docker-hook prestart`: the OCI hook.
use clap::Args;

/// Give the container on stdin its GPUs (OCI prestart / createRuntime).
#[derive(Debug, Args)]
pub struct PrestartArgs {}

/// Runs the subcommand.
pub fn run(_config: Option<&std::path::Path>, _args: &PrestartArgs) -> anyhow::Result<()> {
    anyhow::bail!("prestart: not implemented yet")
}
