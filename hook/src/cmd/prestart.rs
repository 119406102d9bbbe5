//! `nvidia-docker-hook prestart`: the OCI hook.
//!
//! Reads the state on stdin and the bundle's `config.json`; a container that
//! asks for no GPU ends there (exit 0, no inventory, no fork). Otherwise:
//! capabilities cut to the hook's set, rootfs flavour and the image's CUDA
//! forward-compatibility library ([`container::complete_request`]),
//! inventory snapshot, plan (a refusal ends here with its one line), device cgroup, apply in
//! the container's mount namespace, linker cache: written by the apply step
//! itself (`hook::ldcache_write`, the default; then the apply step is the
//! last one and this process enters the container itself,
//! [`apply::apply_in_place`]), or by the sealed host `ldconfig` afterwards
//! (`linker-cache = "ldconfig"`, or a plan that needs the image's files
//! scanned: [`ldcache_write::in_process_entries`]; then the apply step runs
//! in a forked child).
//!
//! Also the toolkit's calling convention for the name
//! `nvidia-container-runtime-hook` ([`ToolkitArgs`]), which is what
//! `docker run --gpus` runs.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use clap::Args;
use hook::apply::{self, caps, root::ContainerRoot, Target};
use hook::config::HookConfig;
use hook::container::{self, Bundle};
use hook::deadline::Deadline;
use hook::state::State;
use hook::{cgroup, inventory, ldcache_write, ldconfig};
use rules::RootfsFlavor;

/// Give the container on stdin its GPUs (OCI prestart / createRuntime).
#[derive(Debug, Args, Default)]
pub struct PrestartArgs {
    /// Log at debug level to stderr.
    #[arg(long)]
    pub debug: bool,
    /// `-v` given to the binary (set by `main`, see `hook::about`).
    #[arg(skip)]
    pub verbose: u8,
}

/// Runs the subcommand: see the module docs.
pub fn run(config: Option<&Path>, args: &PrestartArgs) -> anyhow::Result<()> {
    let mut clock = Clock::start();
    let deadline = Deadline::from(clock.start);
    let state = State::read(std::io::stdin().lock())?;
    let mut cfg = HookConfig::load(config)?;
    let level = if args.debug {
        log::LevelFilter::Debug
    } else {
        hook::about::level(log::LevelFilter::Warn, args.verbose)
    };
    init_logging(cfg.debug_log.as_deref(), level);
    log::debug!(
        "state: id {:?}, status {:?}, pid {:?}, bundle {:?}",
        state.id,
        state.status,
        state.pid,
        state.bundle
    );
    let bundle = Bundle::load(&state)?;
    // The fast path: the flavour only places libraries, so any will do to
    // decide whether this is a GPU container at all.
    let request = bundle.request(RootfsFlavor::default(), &cfg.rules)?;
    for w in &request.warnings {
        log::warn!("{w:?}");
    }
    if !request.is_gpu() {
        log::debug!("not a GPU container: nothing to do");
        return Ok(());
    }
    if bundle.plan_applied() {
        log::debug!("the runc wrapper already wrote the GPU plan into the spec: nothing to do");
        return Ok(());
    }
    caps::keep(caps::Step::Hook)?;
    let pid = state.require_pid()?;
    let spec_rules = bundle.device_rules()?;
    let root = ContainerRoot::open(&bundle.rootfs)?;
    let request = container::complete_request(request, &root, &cfg.rules);
    drop(root);
    log::debug!("request: {request:?}");
    clock.lap("read");
    cfg.nvml_timeout = deadline.limit("the driver inventory", cfg.nvml_timeout)?;
    let inv = inventory::load_or_discover(&cfg)?;
    if let Some(w) = hook::diagnose::no_gpu_warning(&cfg.paths, &inv) {
        log::warn!("{w}");
    }
    clock.lap("inventory");
    let mut plan = rules::plan(&inv, &request, &cfg.rules)?;
    // The apply step writes the cache when it can; else `ldconfig` after it.
    let entries =
        ldcache_write::in_process_entries(cfg.linker_cache, &plan.ldconfig_dirs, &plan.ld_cache);
    let in_process = entries.is_some();
    plan.ld_cache = entries.unwrap_or_default();
    clock.lap("plan");
    log::debug!(
        "plan: {}",
        serde_json::to_string(&plan).unwrap_or_else(|e| e.to_string())
    );

    if !plan.device_rules.is_empty() {
        cgroup::allow_devices(&cfg.paths, pid, &plan.device_rules, &spec_rules)
            .context("cannot allow the GPU devices in the container's device cgroup")?;
    }
    clock.lap("cgroup");
    let target = Target {
        pid,
        rootfs: bundle.rootfs.clone(),
    };
    let limit = deadline.limit("applying the GPU plan", apply::APPLY_TIMEOUT)?;
    if in_process {
        // The last step: this process enters the container itself (no fork).
        apply::apply_in_place(&cfg.paths, &target, &plan, limit)?;
        clock.lap("apply");
    } else {
        apply::apply_within(&cfg.paths, &target, &plan, limit)?;
        clock.lap("apply");
        let limit = deadline.limit("the linker cache", ldconfig::TIMEOUT)?;
        ldconfig::refresh_within(&cfg.paths, pid, &bundle.rootfs, &plan.ldconfig_dirs, limit)?;
        clock.lap("ldconfig");
    }
    clock.total();
    log::debug!("container {} ({pid}) has its GPUs", state.id);
    Ok(())
}

/// Step durations, logged at debug level as `timing: <step> <µs> us` (the
/// benchmark reads them from the debug log).
pub(crate) struct Clock {
    pub(crate) start: std::time::Instant,
    last: std::time::Instant,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        let now = std::time::Instant::now();
        Clock {
            start: now,
            last: now,
        }
    }

    pub(crate) fn lap(&mut self, step: &str) {
        let now = std::time::Instant::now();
        log::debug!("timing: {step} {} us", (now - self.last).as_micros());
        self.last = now;
    }

    pub(crate) fn total(&self) {
        log::debug!("timing: total {} us", self.start.elapsed().as_micros());
    }
}

/// The toolkit hook's command line (`nvidia-container-runtime-hook [-debug]
/// [-config F] [-version] prestart|poststart|poststop`), parsed like Go's
/// `flag` package: `-flag`, `--flag`, `-flag=value`, `-flag value`, and
/// flags end at the first non-flag argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolkitArgs {
    /// Run a verb.
    Verb {
        /// `prestart`, `poststart` or `poststop`.
        verb: String,
        /// `-config`.
        config: Option<PathBuf>,
        /// `-debug`.
        debug: bool,
    },
    /// `-version`.
    Version,
    /// `-h`, `-help`.
    Help,
}

/// The toolkit hook's usage text.
pub const TOOLKIT_USAGE: &str = "Usage: nvidia-container-runtime-hook [-debug] [-config FILE] [-version] prestart|poststart|poststop";

impl ToolkitArgs {
    /// Parses the arguments after argv\[0\]; `Err` is the line to print
    /// before the usage (exit 2).
    pub fn parse(args: &[String]) -> Result<ToolkitArgs, String> {
        let mut config = None;
        let mut debug = false;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return match arg.as_str() {
                    "prestart" | "poststart" | "poststop" => Ok(ToolkitArgs::Verb {
                        verb: arg.clone(),
                        config,
                        debug,
                    }),
                    other => Err(format!("unknown command {other:?}")),
                };
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (flag, None),
            };
            match name {
                "debug" => {
                    debug = match value.as_deref() {
                        None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
                        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
                        Some(v) => return Err(format!("invalid boolean value {v:?} for -debug")),
                    }
                }
                "config" => {
                    let v = match value {
                        Some(v) => v,
                        None => it
                            .next()
                            .cloned()
                            .ok_or_else(|| "flag needs an argument: -config".to_owned())?,
                    };
                    config = Some(PathBuf::from(v));
                }
                "version" => return Ok(ToolkitArgs::Version),
                "h" | "help" => return Ok(ToolkitArgs::Help),
                other => return Err(format!("flag provided but not defined: -{other}")),
            }
        }
        Err("no command given".to_owned())
    }
}

/// A logger writing to stderr (`env_logger`, `RUST_LOG`, else `default`:
/// `warn`, raised by `-v`, `debug` with `--debug`) and, when the configuration names a debug log
/// file, every record at debug level to that file too.
struct HookLogger {
    stderr: env_logger::Logger,
    file: Option<Mutex<std::fs::File>>,
}

impl log::Log for HookLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.stderr.enabled(metadata)
            || (self.file.is_some() && metadata.level() <= log::Level::Debug)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.stderr.matches(record) {
            self.stderr.log(record);
        }
        if let Some(file) = &self.file {
            if record.level() <= log::Level::Debug {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                if let Ok(mut f) = file.lock() {
                    let _ = writeln!(
                        f,
                        "{}.{:06} [{}] {} {}: {}",
                        now.as_secs(),
                        now.subsec_micros(),
                        std::process::id(),
                        record.level(),
                        record.target(),
                        record.args()
                    );
                }
            }
        }
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

/// Installs the hook's logger (see [`HookLogger`]). A debug log file that
/// cannot be opened is reported on stderr and ignored.
pub fn init_logging(debug_log: Option<&Path>, default: log::LevelFilter) {
    let default = default.to_string().to_ascii_lowercase();
    let stderr =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .build();
    let file = debug_log.and_then(|path| {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                eprintln!("nvidia-docker-hook: cannot open the debug log {path:?}: {e}");
                None
            }
        }
    });
    let max = if file.is_some() {
        log::LevelFilter::Debug.max(stderr.filter())
    } else {
        stderr.filter()
    };
    if log::set_boxed_logger(Box::new(HookLogger { stderr, file })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ToolkitArgs, String> {
        ToolkitArgs::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn toolkit_command_lines() {
        assert_eq!(
            parse(&["prestart"]).unwrap(),
            ToolkitArgs::Verb {
                verb: "prestart".into(),
                config: None,
                debug: false
            }
        );
        assert_eq!(
            parse(&["-debug", "-config", "/c.toml", "prestart"]).unwrap(),
            ToolkitArgs::Verb {
                verb: "prestart".into(),
                config: Some("/c.toml".into()),
                debug: true
            }
        );
        assert_eq!(
            parse(&["--config=/x", "--debug=false", "poststop"]).unwrap(),
            ToolkitArgs::Verb {
                verb: "poststop".into(),
                config: Some("/x".into()),
                debug: false
            }
        );
        assert_eq!(parse(&["-version"]).unwrap(), ToolkitArgs::Version);
        assert_eq!(parse(&["-h"]).unwrap(), ToolkitArgs::Help);
        assert_eq!(parse(&["start"]).unwrap_err(), "unknown command \"start\"");
        assert_eq!(parse(&[]).unwrap_err(), "no command given");
        assert_eq!(
            parse(&["-bogus", "prestart"]).unwrap_err(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            parse(&["-config"]).unwrap_err(),
            "flag needs an argument: -config"
        );
    }
}
