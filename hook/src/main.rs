//! `nvidia-docker-hook`: the OCI hook.
use std::process::ExitCode;

use clap::Parser;

/// OCI prestart hook that gives a container the host's NVIDIA GPUs.
#[derive(Debug, Parser)]
#[command(
    name = "nvidia-docker-hook",
    version,
    after_help = "Examples:\n  \
    # registered in a runc config.json as hooks.prestart:\n  \
    {\"path\": \"/usr/bin/nvidia-docker-hook\", \"args\": [\"nvidia-docker-hook\", \"prestart\"]}\n  \
    # called by `docker run --gpus all` under the name nvidia-container-runtime-hook"
)]
struct Args {}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let _args = Args::parse();
    eprintln!("nvidia-docker-hook: no command yet; see --help");
    ExitCode::from(2)
}
