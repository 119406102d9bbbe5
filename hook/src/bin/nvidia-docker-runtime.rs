//! `nvidia-docker-runtime`: a runc wrapper that writes the GPU plan into the
//! bundle's spec on `create`, then execs the real runtime with the original
//! arguments (see `hook::runtime`).
//!
//! Thin: read the command line, prepare the bundle on `create`/`run`, exec.
//! Exit codes when it does not exec: 3 refused (the rules' line), 1 any
//! other failure, 127 no runtime found. The message also goes to runc's
//! `--log` file, where containerd and Docker look for a runtime's error.
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use hook::config::HookConfig;
use hook::runtime::{self, args, RuntimeError, Settings};

/// The inventory's NVML child runs `/proc/self/exe inventory --nvml-probe
/// <lib>`: this binary answers it like the hook does.
fn nvml_probe(argv: &[OsString]) -> Option<ExitCode> {
    if argv.len() != 4 || argv[1] != "inventory" || argv[2] != "--nvml-probe" {
        return None;
    }
    let mut out = std::io::stdout().lock();
    Some(
        match hook::inventory::run_nvml_probe(&PathBuf::from(&argv[3]), &mut out) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nvidia-docker-runtime: NVML probe: {e}");
                ExitCode::FAILURE
            }
        },
    )
}

/// Printed before the real runtime's own help for a lone `--help`.
const HELP: &str = "\
nvidia-docker-runtime: runc with the host's NVIDIA GPUs. Called exactly like
runc; on `create`/`run` of a container asking for GPUs (NVIDIA_VISIBLE_DEVICES,
a v1 image label) it writes the devices, cgroup rules and one createRuntime
hook (the driver mounts, links and linker cache) into the bundle's
config.json, then execs the real
runtime (NVIDIA_DOCKER_RUNTIMES, default runc:crun) with the same arguments.

Exit status: the real runtime's, or when it does not run: 3 refused by the
rules (their one line), 1 any other failure (one line on stderr), 127 no
runtime found. Logging: RUST_LOG (every option is the runtime's, so no -v).
`--version` alone prints this wrapper's version, then the runtime's;
`--man` alone prints this page as roff.

Examples:
  nvidia-docker setup docker --write        # daemon.json runtimes.nvidia
  docker run --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=0 IMAGE nvidia-smi
  nvidia-docker-runtime run --bundle /path/to/bundle ID

The real runtime's help follows.

";

fn fail(inv: &args::Invocation, err: &anyhow::Error) -> ExitCode {
    let (msg, code) = match err.downcast_ref::<RuntimeError>() {
        Some(RuntimeError::Refused(refusal)) => (refusal.to_string(), 3),
        Some(RuntimeError::NoRuntime { .. }) => (format!("nvidia-docker-runtime: {err:#}"), 127),
        _ => (format!("nvidia-docker-runtime: {err:#}"), 1),
    };
    eprintln!("{msg}");
    runtime::report_to_runtime_log(inv, &msg);
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if let Some(code) = nvml_probe(&argv) {
        return code;
    }
    if argv.len() == 2 && (argv[1] == "--help" || argv[1] == "-h") {
        print!("{HELP}");
    }
    if argv.len() == 2 && argv[1] == "--version" {
        println!("nvidia-docker-runtime {}", hook::about::VERSION);
    }
    if argv.len() == 2 && argv[1] == "--man" {
        let about = HELP
            .split("The real runtime's help follows.")
            .next()
            .unwrap_or(HELP);
        let cmd = clap::Command::new("nvidia-docker-runtime")
            .about("runc with the host's NVIDIA GPUs")
            .long_about(about.trim_end().to_owned())
            .disable_help_flag(true);
        return match hook::about::write_man(&cmd, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("nvidia-docker-runtime: cannot write to stdout: {e}");
                ExitCode::FAILURE
            }
        };
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let inv = args::parse(runtime::tail(&argv));
    let env = |k: &str| std::env::var(k).ok();
    let exe = std::env::current_exe().ok();
    let settings = Settings::from_env(&env, exe.as_deref().and_then(|p| p.parent()));
    if inv.creates() && !inv.bundle_missing_value {
        let prepared = HookConfig::load(None)
            .map_err(anyhow::Error::from)
            .and_then(|cfg| {
                let outcome =
                    runtime::prepare(&runtime::bundle_dir(&inv), &cfg.rules, &settings, || {
                        hook::inventory::load_or_discover(&cfg)
                    })?;
                // runc's systemd driver puts a device rule into the scope's
                // DeviceAllow= only when /dev/char/M:m (or /sys/dev/char/M:m)
                // exists, and NVIDIA nodes have neither by themselves: without
                // the links, systemctl daemon-reload denies the GPUs even in
                // wrapper mode (tests/tests/cgroup_systemd.rs).
                if let runtime::Outcome::Rewritten(plan) = &outcome {
                    hook::cgroup::create_dev_char_links(&cfg.paths.dev_root, &plan.device_rules);
                }
                Ok(outcome)
            });
        if let Err(e) = prepared {
            return fail(&inv, &e);
        }
    }
    let path = std::env::var_os("PATH");
    let real = match runtime::find_runtime(&settings.runtimes, path.as_deref(), exe.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(&inv, &e.into()),
    };
    let name = real.file_name().map(OsString::from).unwrap_or_default();
    let err = Command::new(&real)
        .arg0(name)
        .args(runtime::tail(&argv))
        .exec();
    fail(
        &inv,
        &anyhow::Error::new(err).context(format!("cannot execute {}", real.display())),
    )
}
