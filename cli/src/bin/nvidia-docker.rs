//! `nvidia-docker`: the v1-compatible docker shim.
//!
//! `nvidia-docker cli-options ...` is its own verb; everything else is
//! docker's command line, handled by `cli::shim` (which `exec`s docker).
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::cmd::cli_options::{self, CliOptionsArgs};

/// `nvidia-docker cli-options`.
#[derive(Debug, Parser)]
#[command(name = "nvidia-docker cli-options", version)]
struct CliOptions {
    #[command(flatten)]
    args: CliOptionsArgs,
}

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
    fail(&argv0, cli::shim::run(argv))
}
