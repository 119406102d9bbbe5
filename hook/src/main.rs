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
    version = hook::about::VERSION,
    after_help = "Exit status: 0 success (or nothing to do), 1 failure (one line on stderr), \
    2 usage error, 3 refused by the rules (their one line, alone, which runc shows).\n\n\
    Logging: RUST_LOG (env_logger syntax) when set, else warn, raised by each -v.\n\n\
    Examples:\n  \
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
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG wins.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the host's GPUs and driver files (the inventory snapshot).
    Inventory(cmd::inventory::InventoryArgs),
    /// Apply the GPU plan to the container whose state is on stdin.
    Prestart(cmd::prestart::PrestartArgs),
    /// Finish a container whose spec already has its GPUs (OCI createContainer,
    /// or createRuntime with --enter).
    CreateContainer(cmd::create_container::CreateContainerArgs),
    /// Show what a container would get, and why, touching nothing.
    Explain(cmd::explain::ExplainArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Accepted and ignored (OCI poststart).
    Poststart,
    /// Accepted and ignored (OCI poststop).
    Poststop,
}

/// The name `docker run --gpus` looks for on dockerd's `PATH`; a symlink
/// to this binary under that name behaves like the toolkit's hook.
const TOOLKIT_NAME: &str = "nvidia-container-runtime-hook";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let invoked_as = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if invoked_as == TOOLKIT_NAME {
        return toolkit_main(&argv[1..]);
    }
    // The start path, as registrations write it: straight to the command
    // (building clap's command tree and parsing cost about 20 page faults
    // and 0.05 ms per start, `perf stat -r 500`). Anything else, or any
    // option, goes through clap.
    match argv.get(1).map(String::as_str) {
        Some("prestart") if argv.len() == 2 => {
            return exit(cmd::prestart::run(None, &Default::default()));
        }
        Some("create-container") if !argv[2..].iter().any(|a| is_cli_option(a)) => {
            let args = cmd::create_container::CreateContainerArgs {
                fixups: argv[2..].to_vec(),
                verbose: 0,
            };
            return exit(cmd::create_container::run(None, &args));
        }
        _ => {}
    }
    let mut cli = Cli::parse();
    // prestart and create-container install their own logger once their
    // configuration (its debug log file) is read.
    if let Command::Prestart(args) = &mut cli.command {
        args.verbose = cli.verbose;
    } else if let Command::CreateContainer(args) = &mut cli.command {
        args.verbose = cli.verbose;
    } else {
        let filter = hook::about::filter(log::LevelFilter::Warn, cli.verbose);
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter)).init();
    }
    let result = match &cli.command {
        Command::Inventory(args) => cmd::inventory::run(cli.config.as_deref(), args),
        Command::Prestart(args) => cmd::prestart::run(cli.config.as_deref(), args),
        Command::CreateContainer(args) => cmd::create_container::run(cli.config.as_deref(), args),
        Command::Explain(args) => cmd::explain::run(cli.config.as_deref(), args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            hook::about::write_completions(&mut Cli::command(), *shell, &mut std::io::stdout())
                .map_err(Into::into)
        }
        Command::Man => {
            use clap::CommandFactory;
            hook::about::write_man(&Cli::command(), &mut std::io::stdout()).map_err(Into::into)
        }
        Command::Poststart | Command::Poststop => Ok(()),
    };
    exit(result)
}

/// An argument clap reads itself rather than passing it to a subcommand:
/// the global options and help or version.
fn is_cli_option(arg: &str) -> bool {
    matches!(
        arg,
        "--config" | "--verbose" | "--help" | "-h" | "--version" | "-V"
    ) || arg.starts_with("--config=")
        || (arg.len() > 1
            && arg.starts_with('-')
            && !arg.starts_with("--")
            && arg[1..].chars().all(|c| c == 'v'))
}

/// `nvidia-container-runtime-hook [-debug] [-config F] [-version] VERB`.
fn toolkit_main(args: &[String]) -> ExitCode {
    use cmd::prestart::{ToolkitArgs, TOOLKIT_USAGE};
    match ToolkitArgs::parse(args) {
        Ok(ToolkitArgs::Verb {
            verb,
            config,
            debug,
        }) => match verb.as_str() {
            "prestart" => exit(cmd::prestart::run(
                config.as_deref(),
                &cmd::prestart::PrestartArgs {
                    debug,
                    ..Default::default()
                },
            )),
            _ => ExitCode::SUCCESS,
        },
        Ok(ToolkitArgs::Version) => {
            println!(
                "{TOOLKIT_NAME} (nvidia-docker-hook {})",
                hook::about::VERSION
            );
            ExitCode::SUCCESS
        }
        Ok(ToolkitArgs::Help) => {
            println!("{TOOLKIT_USAGE}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("{TOOLKIT_NAME}: {why}\n{TOOLKIT_USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The one place results become exit codes: 0 done (or nothing to do);
/// 3 refused (the rules' one line, alone, which runc shows); 1 anything
/// else (`nvidia-docker-hook: <error>: <cause>...`); clap uses 2 for usage.
fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<rules::Refusal>() {
            Some(refusal) => {
                eprintln!("{refusal}");
                ExitCode::from(3)
            }
            None => {
                eprintln!("nvidia-docker-hook: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn options_clap_reads_are_not_taken_for_fix_ups() {
        for a in [
            "--config",
            "--config=/etc/x.toml",
            "-v",
            "-vvv",
            "--verbose",
            "-h",
            "--help",
            "-V",
            "--version",
        ] {
            assert!(super::is_cli_option(a), "{a}");
        }
        for a in [
            "--link",
            "libcuda.so.1::/usr/lib/x86_64-linux-gnu/libcuda.so",
            "--enter",
            "--debug",
            "--mask-proc",
            "-",
            "--v",
        ] {
            assert!(!super::is_cli_option(a), "{a}");
        }
    }
}
