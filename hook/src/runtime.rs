//! The runc wrapper (`nvidia-docker-runtime`): the GPU plan written into a
//! bundle's spec on `create`, then the real runtime exec'd with the
//! original arguments.
//!
//! Registered as a Docker runtime (`daemon.json` `runtimes`) or as a
//! containerd runtime's `BinaryName`, it is called exactly like runc. Only
//! `create` and `run` are looked at ([`args`]); every other command goes
//! straight to the real runtime without reading anything.
//!
//! On `create` ([`prepare`]): `<bundle>/config.json` is read through
//! [`crate::container::Bundle`] (the same reading as the prestart hook); a
//! container that asks for no GPU is left byte-identical. Otherwise the
//! rootfs flavour and the image's CUDA forward-compatibility library are
//! looked up inside the root ([`container::complete_request`], as the
//! prestart hook does), the inventory snapshot
//! loaded, `rules::plan` called (a refusal fails `create` with its line) and
//! the plan written into the spec ([`spec::apply_plan`]): devices and their
//! cgroup rules and environment are then the runtime's to apply (and
//! re-apply: they survive `systemctl daemon-reload`, unlike device grants a
//! hook adds), and one `createRuntime` hook entry runs `nvidia-docker-hook
//! create-container --enter` for the driver's bind mounts (cheaper there
//! than as spec mounts, see [`spec`]) and what a spec cannot do
//! ([`fixups`]). The spec is rewritten in place ([`write_in_place`]).
//!
//! Why the annotation ([`spec::ANNOTATION_PLAN`]): `docker run --gpus`
//! with `--runtime=nvidia` also registers the prestart hook; it must leave
//! a container the wrapper handled alone instead of applying the plan a
//! second time.
#![forbid(unsafe_code)]

pub mod args;
pub mod fixups;
pub mod spec;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rules::{Inventory, Plan, Refusal, RootfsFlavor};

use crate::apply::root::{ContainerRoot, RootError};
use crate::config;
use crate::container::{self, Bundle, ContainerError};
use crate::inventory::InventoryError;
use crate::state::State;
use fixups::Fixups;
use spec::{HookEntry, SpecEditError};

/// Environment variable: the real runtimes to try, `:`-separated names
/// (searched on `PATH`) or absolute paths; default [`DEFAULT_RUNTIMES`].
pub const ENV_RUNTIMES: &str = "NVIDIA_DOCKER_RUNTIMES";
/// Environment variable: the `nvidia-docker-hook` binary written into the
/// `createRuntime` entry; default: beside the wrapper, else
/// [`DEFAULT_HOOK_PATH`].
pub const ENV_HOOK: &str = "NVIDIA_DOCKER_HOOK";
/// The real runtimes tried by default, in order.
pub const DEFAULT_RUNTIMES: &[&str] = &["runc", "crun"];
/// Where the hook is installed.
pub const DEFAULT_HOOK_PATH: &str = "/usr/bin/nvidia-docker-hook";
/// The `PATH` given to the hook entry.
pub const HOOK_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The configuration variables a hook entry passes on when the wrapper
/// (or the generator) has them: the host roots and the configuration file.
pub const PASSED_ENV: &[&str] = &[
    config::ENV_CONFIG,
    config::ENV_DRIVER_ROOT,
    config::ENV_DEV_ROOT,
    config::ENV_PROC_ROOT,
    config::ENV_CGROUP_ROOT,
    config::ENV_LDCONFIG,
    config::ENV_CACHE_DIR,
    config::ENV_NVML_LIB,
];

/// Why `create` could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The bundle's spec could not be read.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The rootfs could not be opened to look into it (flavour, compat
    /// library).
    #[error("cannot open the container's root file system {}", path.display())]
    Rootfs {
        /// The rootfs.
        path: PathBuf,
        /// The cause.
        #[source]
        source: RootError,
    },
    /// The inventory could not be loaded.
    #[error("cannot load the GPU inventory")]
    Inventory(#[source] InventoryError),
    /// The container's request was refused (the rules' line).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The edited spec could not be serialised.
    #[error("cannot write {} as JSON", path.display())]
    SpecJson {
        /// `config.json`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The spec cannot hold the edits.
    #[error("cannot add the GPUs to {}", path.display())]
    SpecEdit {
        /// `config.json`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: SpecEditError,
    },
    /// The new spec could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file written (the temporary file or `config.json`).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No real runtime was found.
    #[error("no OCI runtime found: tried {tried} (set {ENV_RUNTIMES} to a runtime's name or absolute path)")]
    NoRuntime {
        /// What was tried, comma-separated.
        tried: String,
    },
}

/// The wrapper's settings, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The real runtimes to try.
    pub runtimes: Vec<String>,
    /// The hook binary for the `createRuntime` entry.
    pub hook_path: PathBuf,
    /// The hook entry's environment (`PATH` and the passed variables).
    pub hook_env: Vec<String>,
}

impl Settings {
    /// From an environment lookup; `beside` is the wrapper's own directory
    /// (where the hook is looked for first).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, beside: Option<&Path>) -> Settings {
        let runtimes = env(ENV_RUNTIMES)
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.split(':')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_else(|| DEFAULT_RUNTIMES.iter().map(|s| (*s).to_owned()).collect());
        let hook_path = env(ENV_HOOK)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                beside
                    .map(|d| d.join("nvidia-docker-hook"))
                    .filter(|p| p.is_file())
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_HOOK_PATH));
        Settings {
            runtimes,
            hook_path,
            hook_env: hook_env(env),
        }
    }
}

/// `PATH` and the [`PASSED_ENV`] variables that are set, as `K=V`.
pub fn hook_env(env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = vec![HOOK_PATH_ENV.to_owned()];
    for k in PASSED_ENV {
        if let Some(v) = env(k).filter(|v| !v.is_empty()) {
            out.push(format!("{k}={v}"));
        }
    }
    out
}

/// The hook entry running `fixups`, `None` when empty (the runc wrapper
/// writes it as `createRuntime`, the CDI spec as `createContainer`).
pub fn hook_entry(fixups: &Fixups, hook_path: &Path, env: &[String]) -> Option<HookEntry> {
    if fixups.is_empty() {
        return None;
    }
    let mut args = vec![
        "nvidia-docker-hook".to_owned(),
        fixups::SUBCOMMAND.to_owned(),
    ];
    args.extend(fixups.to_args());
    Some(HookEntry {
        path: hook_path.to_string_lossy().into_owned(),
        args,
        env: env.to_vec(),
        timeout: spec::HOOK_TIMEOUT,
    })
}

/// What [`prepare`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a GPU container: the spec was not touched.
    NotGpu,
    /// The spec was rewritten with this plan.
    Rewritten(Box<Plan>),
}

/// Prepares the bundle at `bundle_dir` for `create` (module docs).
/// `inventory` is called only for a GPU container.
pub fn prepare(
    bundle_dir: &Path,
    rules_cfg: &rules::Config,
    settings: &Settings,
    inventory: impl FnOnce() -> Result<Inventory, InventoryError>,
) -> Result<Outcome, RuntimeError> {
    let state = State {
        id: String::new(),
        status: "creating".to_owned(),
        pid: None,
        bundle: bundle_dir.to_path_buf(),
        root: None,
        annotations: Default::default(),
    };
    let bundle = Bundle::load(&state)?;
    // The runtime reads CDI annotations (the toolkit's runtime does; its
    // hook does not): `nvidia.com/gpu=<name>` answered from the inventory.
    let jit = rules_cfg.runtime_mode == rules::RuntimeMode::JitCdi;
    let request = bundle.request_with(RootfsFlavor::default(), rules_cfg, jit)?;
    for w in &request.warnings {
        log::warn!("{w:?}");
    }
    if !request.is_gpu() {
        log::debug!(
            "not a GPU container: {} untouched",
            bundle.config_path.display()
        );
        return Ok(Outcome::NotGpu);
    }
    if bundle.plan_applied() {
        log::debug!("{} already has its GPUs", bundle.config_path.display());
        return Ok(Outcome::NotGpu);
    }
    let root = ContainerRoot::open(&bundle.rootfs).map_err(|source| RuntimeError::Rootfs {
        path: bundle.rootfs.clone(),
        source,
    })?;
    let request = container::complete_request(request, &root, rules_cfg);
    drop(root);
    let inv = inventory().map_err(RuntimeError::Inventory)?;
    let plan = rules::plan(&inv, &request, rules_cfg)?;
    let mut value = bundle.value()?;
    // Run by runc itself, not by its init process (`createRuntime`): the
    // step enters the container as the prestart hook does, and saves the
    // start the cost of an exec from the container's init (`spec`).
    let fixups = Fixups {
        enter: true,
        mounts: plan.mounts.clone(),
        ..Fixups::from_plan(&plan)
    };
    let entry = hook_entry(&fixups, &settings.hook_path, &settings.hook_env);
    spec::apply_plan(&mut value, &plan, entry.as_ref()).map_err(|source| {
        RuntimeError::SpecEdit {
            path: bundle.config_path.clone(),
            source,
        }
    })?;
    let mut out = serde_json::to_vec(&value).map_err(|source| RuntimeError::SpecJson {
        path: bundle.config_path.clone(),
        source,
    })?;
    out.push(b'\n');
    write_in_place(&bundle.config_path, &out)?;
    log::debug!(
        "{}: {} device nodes, {} mounts",
        bundle.config_path.display(),
        plan.device_nodes.len(),
        plan.mounts.len()
    );
    Ok(Outcome::Rewritten(Box::new(plan)))
}

/// Rewrites `path` with `bytes` in place (truncated, then written), the
/// file's inode and mode kept. Neither a temporary file plus `rename` nor a
/// flush: nothing reads a bundle's spec between the engine writing it and
/// the runtime this wrapper execs, and a wrapper that dies mid-write fails
/// that start anyway (the engine writes a new bundle for the next). A new
/// inode cost a start about 1.2 ms on a journal-less ext4 and the flush
/// about 2 ms on a disk-backed bundle (`docs/start-cost.md`).
pub fn write_in_place(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let err = |source| RuntimeError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)
}

/// The first of `settings.runtimes` that exists: an absolute path as is, a
/// name searched on `path` (the wrapper's `PATH`). A candidate that is the
/// wrapper itself (`self_exe`, compared by device and inode) is skipped, so
/// installing the wrapper as `runc` cannot loop.
pub fn find_runtime(
    runtimes: &[String],
    path: Option<&OsStr>,
    self_exe: Option<&Path>,
) -> Result<PathBuf, RuntimeError> {
    let me = self_exe
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()));
    let usable = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => m.is_file() && m.mode() & 0o111 != 0 && Some((m.dev(), m.ino())) != me,
        Err(_) => false,
    };
    for name in runtimes {
        let candidate = Path::new(name);
        if candidate.is_absolute() {
            if usable(candidate) {
                return Ok(candidate.to_path_buf());
            }
            continue;
        }
        if let Some(path) = path {
            for dir in std::env::split_paths(path) {
                let p = dir.join(candidate);
                if dir.is_absolute() && usable(&p) {
                    return Ok(p);
                }
            }
        }
    }
    Err(RuntimeError::NoRuntime {
        tried: runtimes.join(", "),
    })
}

/// The line runc's callers read for a failed command: appended to runc's
/// `--log` file in its format (`json`: `{"level":"error","msg":...,"time":...}`;
/// `text`: `time="..." level=error msg="..."`), so that containerd and
/// Docker show `msg` as the error. `now` is seconds since the epoch.
pub fn log_line(format: Option<&str>, msg: &str, now: u64) -> String {
    let time = rfc3339(now);
    if format == Some("json") {
        serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string() + "\n"
    } else {
        format!(
            "time={} level=error msg={}\n",
            serde_json::Value::String(time),
            serde_json::Value::String(msg.to_owned())
        )
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `secs` since the epoch (UTC).
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Appends `msg` to runc's `--log` file (if one was given) as an error
/// line; failures to do so are ignored (stderr has the message too).
pub fn report_to_runtime_log(inv: &args::Invocation, msg: &str) {
    let Some(log) = &inv.log else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let line = log_line(inv.log_format.as_deref(), msg, now);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The bundle directory of a `create`: `--bundle`, else the current
/// directory (`.`: the exec'd runtime resolves it the same way).
pub fn bundle_dir(inv: &args::Invocation) -> PathBuf {
    inv.bundle.clone().unwrap_or_else(|| PathBuf::from("."))
}

/// argv without argv\[0\], as `OsString`s.
pub fn tail(argv: &[OsString]) -> &[OsString] {
    argv.get(1..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            log_line(Some("json"), "refused \"x\"", 0),
            "{\"level\":\"error\",\"msg\":\"refused \\\"x\\\"\",\"time\":\"1970-01-01T00:00:00Z\"}\n"
        );
        assert_eq!(
            log_line(None, "no", 0),
            "time=\"1970-01-01T00:00:00Z\" level=error msg=\"no\"\n"
        );
    }

    #[test]
    fn settings_from_env() {
        let s = Settings::from_env(&|_| None, None);
        assert_eq!(s.runtimes, ["runc", "crun"]);
        assert_eq!(s.hook_path, PathBuf::from(DEFAULT_HOOK_PATH));
        assert_eq!(s.hook_env, [HOOK_PATH_ENV]);
        let s = Settings::from_env(
            &|k| match k {
                ENV_RUNTIMES => Some("crun: /opt/runc ".to_owned()),
                ENV_HOOK => Some("/opt/hook".to_owned()),
                config::ENV_DRIVER_ROOT => Some("/sim".to_owned()),
                config::ENV_DEV_ROOT => Some(String::new()),
                _ => None,
            },
            None,
        );
        assert_eq!(s.runtimes, ["crun", "/opt/runc"]);
        assert_eq!(s.hook_path, PathBuf::from("/opt/hook"));
        assert_eq!(
            s.hook_env,
            [HOOK_PATH_ENV, "NVIDIA_DOCKER_DRIVER_ROOT=/sim"]
        );
    }
}
