//! `nvidia-docker-hook`: the OCI hook and its inventory command.
//!
//! Thin: parse arguments, set up logging, run one subcommand, map the result
//! to an exit code.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// OCI hook that gives a container the host's NVIDIA GPUs.
#[derive(Debug, Parser)]
#[command(
    name = "nvidia-docker-hook",
    version,
    after_help = "Examples:\n  \
    # registered in a runc config.json:\n  \
    \"hooks\": {\"prestart\": [{\"path\": \"/usr/bin/nvidia-docker-hook\", \"args\": [\"nvidia-docker-hook\", \"prestart\"]}]}\n  \
    # what the host has, as the hook sees it:\n  \
    nvidia-docker-hook inventory\n  \
    nvidia-docker-hook inventory --json --refresh"
)]
struct Cli {
    /// Configuration file (default /etc/nvidia-docker/config.toml).
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the host's GPUs and driver files (the inventory snapshot).
    Inventory(cmd::inventory::InventoryArgs),
    /// Apply the GPU plan to the container whose state is on stdin.
    Prestart(cmd::prestart::PrestartArgs),
    /// Accepted and ignored (OCI poststart).
    Poststart,
    /// Accepted and ignored (OCI poststop).
    Poststop,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inventory(args) => cmd::inventory::run(cli.config.as_deref(), args),
        Command::Prestart(args) => cmd::prestart::run(cli.config.as_deref(), args),
        Command::Poststart | Command::Poststop => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nvidia-docker-hook: {err:#}");
            ExitCode::FAILURE
        }
    }
}
