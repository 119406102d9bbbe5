//! `nvidia-docker-plugin`: the v1 REST info API and Docker volume plugin.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use cli::plugin::state::PluginOptions;

/// Serves the nvidia-docker 1.0 REST API and the nvidia-docker volume plugin.
#[derive(Debug, Parser)]
#[command(
    name = "nvidia-docker-plugin",
    disable_version_flag = true,
    after_help = "Examples:\n  \
    nvidia-docker-plugin -l localhost:3476 -s /run/docker/plugins\n  \
    curl -s localhost:3476/gpu/info"
)]
struct Args {
    /// Server listen address.
    #[arg(short = 'l', default_value = "localhost:3476")]
    listen: String,
    /// Path to the plugin socket.
    #[arg(short = 's', default_value = "/run/docker/plugins")]
    socket_dir: PathBuf,
    /// Path where to store the volumes.
    #[arg(short = 'd', default_value = "/var/lib/nvidia-docker/volumes")]
    volume_dir: PathBuf,
    /// Show the plugin version information.
    #[arg(short = 'v')]
    version: bool,
    /// Configuration file (default /etc/nvidia-docker/config.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if cli::host::nvml_probe(&argv) {
        return ExitCode::SUCCESS;
    }
    let args = Args::parse();
    if args.version {
        println!("NVIDIA Docker plugin: {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let argv0 = std::env::args()
        .next()
        .unwrap_or_else(|| "nvidia-docker-plugin".into());
    cli::logfmt::init(&argv0, "info");
    let options = PluginOptions {
        listen: args.listen,
        socket_dir: args.socket_dir,
        volume_dir: args.volume_dir,
    };
    match cli::plugin::run(args.config.as_deref(), options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{:#}", anyhow::Error::from(err));
            ExitCode::FAILURE
        }
    }
}
