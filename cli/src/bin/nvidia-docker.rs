//! `nvidia-docker`: the v1-compatible docker shim.
//!
//! `nvidia-docker cli-options ...` and `nvidia-docker setup ...` are its own
//! verbs; everything else is docker's command line, handled by `cli::shim`
//! (which `exec`s docker).
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::cmd::cli_options::{self, CliOptionsArgs};
use cli::setup::SetupArgs;

/// `nvidia-docker cli-options`.
#[derive(Debug, Parser)]
#[command(name = "nvidia-docker cli-options", version = hook::about::VERSION)]
struct CliOptions {
    #[command(flatten)]
    args: CliOptionsArgs,
}

/// `nvidia-docker setup`.
#[derive(Debug, Parser)]
#[command(name = "nvidia-docker setup", version = hook::about::VERSION)]
struct Setup {
    #[command(flatten)]
    args: SetupArgs,
}

/// `nvidia-docker explain`.
#[derive(Debug, Parser)]
#[command(name = "nvidia-docker explain", version = hook::about::VERSION)]
struct Explain {
    #[command(flatten)]
    args: cli::cmd::explain::ExplainArgs,
}

/// `nvidia-docker completions SHELL`.
#[derive(Debug, Parser)]
#[command(name = "nvidia-docker completions", version = hook::about::VERSION)]
struct Completions {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// The shim's own command line, for completions and the man page: its own
/// verbs; anything else is docker's.
fn own_command() -> clap::Command {
    use clap::CommandFactory;
    clap::Command::new("nvidia-docker")
        .version(hook::about::VERSION)
        .about("docker with the host's NVIDIA GPUs (nvidia-docker 1.0 compatible)")
        .long_about(
            HELP.split("docker's help follows.")
                .next()
                .unwrap_or(HELP)
                .trim_end()
                .to_owned(),
        )
        .subcommand(CliOptions::command().name("cli-options"))
        .subcommand(Setup::command().name("setup"))
        .subcommand(Explain::command().name("explain"))
        .subcommand(Completions::command().name("completions"))
        .subcommand(clap::Command::new("man").about("Print the man page (roff)"))
        .allow_external_subcommands(true)
}

/// Printed before docker's own help for `nvidia-docker --help`, as v1 printed
/// its version before docker's for `version`.
const HELP: &str = "\
nvidia-docker: docker with the host's NVIDIA GPUs (nvidia-docker 1.0 compatible).

`run` and `create` of an image labelled com.nvidia.volumes.needed (or with
NVIDIA_VISIBLE_DEVICES in its environment) get the GPU devices and the driver
volume; every other command is docker's own.

Own verbs:
  nvidia-docker cli-options [--dev IDS] [--vol NAMES] [--json|--mesos]
  nvidia-docker setup docker|containerd|crio|hooks|cdi [--write|--dry-run]
  nvidia-docker explain IMAGE [-e K=V]... [--privileged] [--json]

Environment: NV_GPU (GPU indexes or UUIDs), NV_DOCKER (the docker command),
NV_HOST / DOCKER_HOST (remote mode), NV_DOCKER_HOOK (use a registered hook),
RUST_LOG (log level, e.g. debug: every option is docker's, so no -v here).

Exit status: docker's, or 1 when nvidia-docker stops before docker runs (one
line on stderr); explain: 3 refused by the rules.

Also: nvidia-docker --version (this and docker's), completions SHELL, man.

Examples:
  nvidia-docker run --rm nvidia/cuda nvidia-smi
  NV_GPU=0,1 nvidia-docker run --rm nvidia/cuda nvidia-smi
  docker run $(nvidia-docker cli-options) nvidia/cuda nvidia-smi
  nvidia-docker setup docker --write

docker's help follows.

";

fn fail(argv0: &str, err: impl Into<anyhow::Error>) -> ExitCode {
    eprintln!(
        "{}",
        cli::logfmt::error_line(argv0, &format!("{:#}", err.into()))
    );
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    let argv0 = if argv.is_empty() {
        "nvidia-docker".to_owned()
    } else {
        argv.remove(0)
    };
    cli::logfmt::init(&argv0, "warn");
    if cli::host::nvml_probe(&argv) {
        return ExitCode::SUCCESS;
    }
    if argv.first().map(String::as_str) == Some("cli-options") {
        let opts = CliOptions::parse_from(&argv);
        let nv_gpu = std::env::var("NV_GPU").ok();
        return match cli_options::run(&opts.args, nv_gpu.as_deref()) {
            Ok(out) => {
                let mut stdout = std::io::stdout().lock();
                match stdout.write_all(&out).and_then(|()| stdout.flush()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&argv0, e),
                }
            }
            Err(e) => fail(&argv0, e),
        };
    }
    if argv.first().map(String::as_str) == Some("setup") {
        let setup = Setup::parse_from(&argv);
        return match cli::setup::run(&setup.args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&argv0, e),
        };
    }
    if argv.first().map(String::as_str) == Some("completions") {
        let c = Completions::parse_from(&argv);
        return match hook::about::write_completions(
            &mut own_command(),
            c.shell,
            &mut std::io::stdout(),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&argv0, e),
        };
    }
    if argv.as_slice() == ["man"] {
        return match hook::about::write_man(&own_command(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&argv0, e),
        };
    }
    if argv.as_slice() == ["--version"] {
        // Ours, then docker's own (the shim execs `docker --version`).
        println!("nvidia-docker {}", hook::about::VERSION);
        let _ = std::io::stdout().flush();
    }
    if argv.first().map(String::as_str) == Some("explain") {
        let explain = Explain::parse_from(&argv);
        return match cli::cmd::explain::run(&explain.args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(cli::cmd::explain::ExplainError::Refused(r)) => {
                eprintln!("{r}");
                ExitCode::from(3)
            }
            Err(e) => fail(&argv0, e),
        };
    }
    if matches!(argv.as_slice(), [h] if h == "--help" || h == "-h" || h == "help") {
        print!("{HELP}");
        let _ = std::io::stdout().flush();
    }
    fail(&argv0, cli::shim::run(argv))
}
