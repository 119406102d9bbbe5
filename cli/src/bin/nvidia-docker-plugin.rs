//! `nvidia-docker-plugin`: the v1 REST info API and Docker volume plugin.
use std::process::ExitCode;

use clap::Parser;

/// Serves the nvidia-docker 1.0 REST API and the nvidia-docker volume plugin.
#[derive(Debug, Parser)]
#[command(
    name = "nvidia-docker-plugin",
    version,
    after_help = "Examples:\n  \
    nvidia-docker-plugin -l localhost:3476 -s /run/docker/plugins\n  \
    curl -s localhost:3476/gpu/info"
)]
struct Args {}

fn main() -> ExitCode {
    let _args = Args::parse();
    eprintln!("nvidia-docker-plugin: not implemented yet; see --help");
    ExitCode::from(2)
}
