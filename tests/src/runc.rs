//! Running a bundle with the real `runc`, under cgroup v1 or v2.
//!
//! On a hybrid host (v1 controllers under `/sys/fs/cgroup/<ctrl>`, cgroup2 at
//! `/sys/fs/cgroup/unified`), runc uses v1. For v2, runc is started in a
//! private mount namespace where the cgroup2 hierarchy is bind-mounted on
//! `/sys/fs/cgroup` (runc decides by statfs of `/sys/fs/cgroup`); it then
//! puts the container in a v2 cgroup and enforces `linux.resources.devices`
//! with an eBPF program. Everything else (the bundle, `/tmp`, the state
//! directory) is the same file system, and hooks run in that namespace too.
//! On a pure v2 host nothing is needed for v2, and v1 is unavailable.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::bundle::Bundle;
use crate::mounts::{fs_type_at, mounts};
use crate::process::{command, run_timeout, unique_name, Output};

/// How long a container may run before it is killed.
pub const RUNC_TIMEOUT: Duration = Duration::from_secs(60);

/// The cgroup version runc should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// cgroup v1 (the devices controller).
    V1,
    /// cgroup v2 (eBPF device filter).
    V2,
}

impl CgroupVersion {
    /// Both.
    pub const ALL: [CgroupVersion; 2] = [CgroupVersion::V1, CgroupVersion::V2];

    /// The prerequisite to [`require!`](crate::require) for this version.
    pub fn prereq(self) -> crate::Prereq {
        match self {
            CgroupVersion::V1 => crate::Prereq::CgroupV1,
            CgroupVersion::V2 => crate::Prereq::CgroupV2,
        }
    }
}

/// Where a cgroup2 file system is mounted (`/sys/fs/cgroup` on a v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one), if anywhere.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if fs_type_at(root).as_deref() == Some("cgroup2") {
        return Some(root.to_path_buf());
    }
    mounts()
        .into_iter()
        .filter(|m| m.fstype == "cgroup2")
        .map(|m| m.point)
        .min_by_key(|p| {
            (
                p != Path::new("/sys/fs/cgroup/unified"),
                p.as_os_str().len(),
            )
        })
}

/// An OCI runtime the suites drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `runc`.
    Runc,
    /// `crun` (cgroup v2 only here: it refuses a hybrid layout's v1), with
    /// `fixtures::crun`'s `setrlimit` shim preloaded where it needs one.
    Crun,
}

impl Runtime {
    /// The program name, looked up on `PATH`.
    pub fn program(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    /// What the runtime's environment needs (crun: `LD_PRELOAD` of the
    /// `setrlimit` shim where this machine cannot raise `RLIMIT_MEMLOCK`).
    pub fn env(self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(match self {
            Runtime::Runc => Vec::new(),
            Runtime::Crun => fixtures::crun::memlock_shim()?
                .map(|so| ("LD_PRELOAD".to_owned(), so.to_string_lossy().into_owned()))
                .into_iter()
                .collect(),
        })
    }
}

/// A `runc` command line that runs under `cgroup`: plain `runc` for v1 (or
/// on a pure v2 host), otherwise wrapped in `unshare -m` with the cgroup2
/// hierarchy bind-mounted on `/sys/fs/cgroup`. `state_root` is runc's `--root`.
pub fn runc_command(
    cgroup: CgroupVersion,
    state_root: &Path,
    args: &[&OsStr],
) -> anyhow::Result<Command> {
    runtime_command(Runtime::Runc, cgroup, state_root, args)
}

/// The same for `runtime` (its [`Runtime::env`] set).
pub fn runtime_command(
    runtime: Runtime,
    cgroup: CgroupVersion,
    state_root: &Path,
    args: &[&OsStr],
) -> anyhow::Result<Command> {
    let program = runtime.program();
    let v2 = cgroup2_mount();
    let mut cmd = match (cgroup, v2) {
        (CgroupVersion::V2, None) => anyhow::bail!("cgroup v2 is not mounted on this host"),
        (CgroupVersion::V2, Some(mount)) if mount != Path::new("/sys/fs/cgroup") => {
            let mut cmd = command("unshare");
            cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg(r#"mount --bind "$1" /sys/fs/cgroup && shift && exec "$@""#)
                .arg("sh")
                .arg(mount)
                .arg(program);
            cmd
        }
        (CgroupVersion::V1, Some(mount)) if mount == Path::new("/sys/fs/cgroup") => {
            anyhow::bail!("this host is cgroup v2 only: {program} cannot use cgroup v1")
        }
        _ => command(program),
    };
    cmd.arg("--root").arg(state_root).args(args);
    cmd.envs(runtime.env()?);
    Ok(cmd)
}

/// `runc run` of `bundle` under `cgroup`, with [`RUNC_TIMEOUT`].
pub fn runc_run(bundle: &Bundle, cgroup: CgroupVersion) -> anyhow::Result<Output> {
    runc_run_timeout(bundle, cgroup, RUNC_TIMEOUT)
}

/// `runc --root <temp> run --bundle <bundle> <unique id>` under `cgroup`,
/// capturing the container's stdout, stderr and exit status; killed after
/// `timeout`. The container is always deleted afterwards (`runc delete -f`,
/// under the same cgroup setup, so that its cgroup goes too). The id starts
/// with `e2e-`.
pub fn runc_run_timeout(
    bundle: &Bundle,
    cgroup: CgroupVersion,
    timeout: Duration,
) -> anyhow::Result<Output> {
    runtime_run_timeout(Runtime::Runc, bundle, cgroup, timeout)
}

/// The same with `runtime`.
pub fn runtime_run_timeout(
    runtime: Runtime,
    bundle: &Bundle,
    cgroup: CgroupVersion,
    timeout: Duration,
) -> anyhow::Result<Output> {
    let state = tempfile::Builder::new()
        .prefix("e2e-runc-state-")
        .tempdir()
        .context("cannot create a runtime state directory")?;
    let id = unique_name("e2e");
    let mut run = runtime_command(
        runtime,
        cgroup,
        state.path(),
        &[
            OsStr::new("run"),
            OsStr::new("--bundle"),
            bundle.path().as_os_str(),
            OsStr::new(&id),
        ],
    )?;
    let result = run_timeout(&mut run, timeout);
    // Normally gone already (`run` deletes on exit); after a timeout this
    // kills the container and removes its cgroup.
    if let Ok(mut delete) = runtime_command(
        runtime,
        cgroup,
        state.path(),
        &[OsStr::new("delete"), OsStr::new("--force"), OsStr::new(&id)],
    ) {
        let _ = run_timeout(&mut delete, Duration::from_secs(20));
    }
    result.with_context(|| {
        format!(
            "{} run of {} ({cgroup:?})",
            runtime.program(),
            bundle.path().display()
        )
    })
}
