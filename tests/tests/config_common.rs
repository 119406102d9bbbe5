//! Shared by the `config_*` suites (the plan rendered as configuration):
//! where the runc wrapper and the `setup` test binary are, and `runc run`
//! through the wrapper.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use e2e::hook::{hook_binary, SimHost};
use e2e::process::{run_timeout, unique_name, which};
use e2e::runc::{runc_command, runtime_command, RUNC_TIMEOUT};
use e2e::{runtime_run_timeout, Bundle, BundleBuilder, CgroupVersion, HookStage, Output, Runtime};

/// The wrapper's file name.
pub const WRAPPER_FILE: &str = "nvidia-docker-runtime";

/// The built wrapper, beside the built hook.
pub fn wrapper_binary() -> anyhow::Result<PathBuf> {
    let p = hook_binary()?.with_file_name(WRAPPER_FILE);
    anyhow::ensure!(
        p.is_file(),
        "{} not found; build the workspace first (cargo build --workspace)",
        p.display()
    );
    Ok(p)
}

/// The real runc, absolute.
pub fn real_runc() -> anyhow::Result<PathBuf> {
    which("runc").context("runc is not on PATH")
}

/// A directory holding `runc`, a symlink to the wrapper: first on `PATH`,
/// it makes every `runc` the harness starts go through the wrapper (which
/// skips itself when it looks for the real one).
pub fn wrapper_as_runc(dir: &Path) -> anyhow::Result<PathBuf> {
    let bin = dir.join("wrapper-bin");
    std::fs::create_dir_all(&bin)?;
    let link = bin.join("runc");
    if !link.exists() {
        std::os::unix::fs::symlink(wrapper_binary()?, &link)?;
    }
    Ok(bin)
}

/// The wrapper's environment on `host`: the simulated host's variables,
/// the real runc and the built hook.
pub fn wrapper_env(host: &SimHost) -> anyhow::Result<Vec<(String, String)>> {
    with_runtime_and_hook(Runtime::Runc, host.env())
}

/// `host_env` plus the real `runtime` (absolute, with what its environment
/// needs) and the built hook, as the wrapper reads them.
fn with_runtime_and_hook(
    runtime: Runtime,
    host_env: Vec<(&'static str, String)>,
) -> anyhow::Result<Vec<(String, String)>> {
    let real = which(runtime.program())
        .with_context(|| format!("{} is not on PATH", runtime.program()))?;
    let mut env: Vec<(String, String)> = host_env
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push((
        "NVIDIA_DOCKER_RUNTIMES".into(),
        real.to_string_lossy().into_owned(),
    ));
    env.push((
        "NVIDIA_DOCKER_HOOK".into(),
        hook_binary()?.to_string_lossy().into_owned(),
    ));
    env.extend(runtime.env()?);
    Ok(env)
}

/// How a test container gets its GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The hook, registered as a prestart hook.
    Prestart,
    /// The runc wrapper, no hook registered: devices and rules in the spec,
    /// mounts, links and linker cache made by its `createRuntime` step.
    Wrapper,
}

impl Via {
    /// `builder` with `host`'s prestart hook registered, for [`Via::Prestart`].
    pub fn register(self, host: &SimHost, builder: BundleBuilder) -> BundleBuilder {
        match self {
            Via::Prestart => builder.hook(HookStage::Prestart, &host.prestart_hook().unwrap()),
            Via::Wrapper => builder,
        }
    }

    /// `run` of `bundle` by `runtime` under `cgroup`: directly, or through
    /// the wrapper with `runtime` as the real one.
    pub fn run(
        self,
        runtime: Runtime,
        host: &SimHost,
        bundle: &Bundle,
        cgroup: CgroupVersion,
    ) -> anyhow::Result<Output> {
        match self {
            Via::Prestart => runtime_run_timeout(runtime, bundle, cgroup, RUNC_TIMEOUT),
            Via::Wrapper => wrapped_run(runtime, host, bundle, cgroup),
        }
    }
}

/// `runc run` of `bundle` under `cgroup`, through the wrapper (`runc` on
/// `PATH` is the wrapper) with the simulated host's environment. The
/// container is deleted afterwards.
pub fn wrapped_runc_run(
    host: &SimHost,
    bundle: &Bundle,
    cgroup: CgroupVersion,
) -> anyhow::Result<Output> {
    wrapped_runc_run_with(host, host.env(), bundle, cgroup)
}

/// The same with `host_env` for the host's variables (a real driver root's,
/// say); the wrapper's link lives in `host`'s directory.
pub fn wrapped_runc_run_with(
    host: &SimHost,
    host_env: Vec<(&'static str, String)>,
    bundle: &Bundle,
    cgroup: CgroupVersion,
) -> anyhow::Result<Output> {
    wrapped_run_with(Runtime::Runc, host, host_env, bundle, cgroup)
}

/// `run` of `bundle` through the wrapper with `runtime` as the real one.
pub fn wrapped_run(
    runtime: Runtime,
    host: &SimHost,
    bundle: &Bundle,
    cgroup: CgroupVersion,
) -> anyhow::Result<Output> {
    wrapped_run_with(runtime, host, host.env(), bundle, cgroup)
}

fn wrapped_run_with(
    runtime: Runtime,
    host: &SimHost,
    host_env: Vec<(&'static str, String)>,
    bundle: &Bundle,
    cgroup: CgroupVersion,
) -> anyhow::Result<Output> {
    let state = tempfile::Builder::new()
        .prefix("e2e-wrapped-state-")
        .tempdir()?;
    let bin = wrapper_as_runc(host.dir())?;
    let path = e2e::process::path_env(&[bin]);
    let env = with_runtime_and_hook(runtime, host_env)?;
    let id = unique_name("e2e");
    // `runc` on PATH is the wrapper, which execs the real runtime.
    let mut run = runc_command(
        cgroup,
        state.path(),
        &[
            OsStr::new("run"),
            OsStr::new("--bundle"),
            bundle.path().as_os_str(),
            OsStr::new(&id),
        ],
    )?;
    run.env("PATH", &path).envs(env.iter().map(|(k, v)| (k, v)));
    let result = run_timeout(&mut run, RUNC_TIMEOUT);
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
            "wrapped {} run of {}",
            runtime.program(),
            bundle.path().display()
        )
    })
}

/// Environment variable naming the program run as `<program> setup ...`
/// (default: the built `nvidia-docker`).
pub const ENV_SETUP_BINARY: &str = "E2E_SETUP_BINARY";

/// The program that answers `setup ...`.
pub fn setup_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(ENV_SETUP_BINARY).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let p = hook_binary()?.with_file_name("nvidia-docker");
    anyhow::ensure!(
        p.is_file(),
        "{} not found; build the workspace first (cargo build --workspace) or set {ENV_SETUP_BINARY}",
        p.display()
    );
    Ok(p)
}

/// `nvidia-docker setup <args>` with the simulated host's environment
/// (and `extra`); fails unless it exits 0.
pub fn run_setup(host: &SimHost, args: &[&str], extra: &[(&str, &str)]) -> anyhow::Result<Output> {
    let mut cmd = e2e::process::command(setup_binary()?);
    cmd.arg("setup").args(args).envs(host.env());
    cmd.envs(extra.iter().copied());
    run_timeout(&mut cmd, Duration::from_secs(60))?.check()
}

/// A file removed when dropped (CDI specs in the shared spec directories).
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
