//! `nvidia-docker`: the v1-compatible docker shim.
use std::process::ExitCode;

use clap::Parser;

/// Runs docker with the host's NVIDIA GPUs (nvidia-docker 1.0 compatible).
#[derive(Debug, Parser)]
#[command(
    name = "nvidia-docker",
    version,
    after_help = "Examples:\n  \
    nvidia-docker run --rm nvidia/cuda nvidia-smi\n  \
    NV_GPU=0,1 nvidia-docker run --rm nvidia/cuda nvidia-smi\n  \
    nvidia-docker cli-options"
)]
struct Args {}

fn main() -> ExitCode {
    let _args = Args::parse();
    eprintln!("nvidia-docker: not implemented yet; see --help");
    ExitCode::from(2)
}
