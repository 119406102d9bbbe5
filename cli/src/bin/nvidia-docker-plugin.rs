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
    after_help = "Exit status: 0 stopped by SIGTERM/SIGINT, 1 failure (one line on stderr), \
    2 usage error.\n\n\
    Logging: RUST_LOG (env_logger syntax) when set, else info, raised by each --verbose.\n\n\
    Examples:\n  \
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
    /// Show the plugin version information (v1's format).
    #[arg(short = 'v')]
    version: bool,
    /// Print the version with the git commit.
    #[arg(long = "version")]
    long_version: bool,
    /// More log output (debug, then trace); RUST_LOG wins.
    #[arg(long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print a shell completion script (bash, zsh, fish, ...).
    #[arg(long, value_enum, value_name = "SHELL", hide = true)]
    completions: Option<clap_complete::Shell>,
    /// Print the man page (roff).
    #[arg(long, hide = true)]
    man: bool,
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
    if args.long_version {
        println!("nvidia-docker-plugin {}", hook::about::VERSION);
        return ExitCode::SUCCESS;
    }
    let argv0 = std::env::args()
        .next()
        .unwrap_or_else(|| "nvidia-docker-plugin".into());
    let generated = if let Some(shell) = args.completions {
        use clap::CommandFactory;
        Some(hook::about::write_completions(
            &mut Args::command(),
            shell,
            &mut std::io::stdout(),
        ))
    } else if args.man {
        use clap::CommandFactory;
        Some(hook::about::write_man(
            &Args::command(),
            &mut std::io::stdout(),
        ))
    } else {
        None
    };
    if let Some(result) = generated {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{argv0}: cannot write to stdout: {e}");
                ExitCode::FAILURE
            }
        };
    }
    cli::logfmt::init(
        &argv0,
        &hook::about::filter(log::LevelFilter::Info, args.verbose),
    );
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
