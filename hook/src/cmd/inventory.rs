//! `nvidia-docker-hook inventory [--json] [--refresh]`.
use clap::Args;

/// Print what the host has (the inventory snapshot), refreshing it if asked.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Rediscover even when the snapshot is valid.
    #[arg(long)]
    pub refresh: bool,
}

/// Runs the subcommand.
pub fn run(_config: Option<&std::path::Path>, _args: &InventoryArgs) -> anyhow::Result<()> {
    anyhow::bail!("inventory: not implemented yet")
}
