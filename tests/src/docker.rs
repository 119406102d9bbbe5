//! A private `dockerd` for tests.
//!
//! Each [`Dockerd`] has its own data root, exec root (and so its own
//! containerd), pidfile, socket and `daemon.json`, all in one temporary
//! directory, and runs with `--iptables=false --bridge=none`; so several can
//! run side by side (other test processes, the host's own docker) without
//! touching each other. The storage driver is dockerd's choice (overlay2
//! where the temporary directory supports it, vfs otherwise) unless
//! `E2E_DOCKER_STORAGE_DRIVER` names one.
//!
//! [`Dockerd::shared`] gives every test of the process the same daemon,
//! started on first use and stopped when the process exits; tests that need
//! special daemon options ([`DockerdBuilder`]) start their own, stopped on drop.
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fixtures::rootfs::{self, Variant};
use serde_json::{json, Value};

use crate::mounts::unmount_under;
use crate::process::{display_command, kill_group, path_env, run_timeout, signal, Output};

/// How long one `docker` CLI command may take.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long dockerd may take to answer after start.
pub const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long dockerd may take to stop after SIGTERM before it is killed.
const DOCKERD_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment variable naming a storage driver to force.
pub const ENV_STORAGE_DRIVER: &str = "E2E_DOCKER_STORAGE_DRIVER";

/// Options for a private dockerd (owned builder).
#[derive(Debug, Clone, Default)]
pub struct DockerdBuilder {
    args: Vec<OsString>,
    path_prepend: Vec<PathBuf>,
    daemon_json: Option<Value>,
    env: Vec<(OsString, OsString)>,
}

impl DockerdBuilder {
    /// Default options.
    pub fn new() -> DockerdBuilder {
        DockerdBuilder::default()
    }

    /// An extra dockerd argument (e.g. `--add-runtime=nvidia=/path/to/runtime`).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> DockerdBuilder {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// A directory put first on dockerd's `PATH` (where it, containerd and
    /// runc find `nvidia-container-runtime-hook` and runtimes).
    pub fn path_prepend(mut self, dir: impl Into<PathBuf>) -> DockerdBuilder {
        self.path_prepend.push(dir.into());
        self
    }

    /// The `daemon.json` given with `--config-file` (default `{}`). It must
    /// not repeat options given as flags: `data-root`, `exec-root`, `pidfile`,
    /// `hosts`, `iptables`, `bridge`.
    pub fn daemon_json(mut self, config: Value) -> DockerdBuilder {
        self.daemon_json = Some(config);
        self
    }

    /// An environment variable for dockerd (its environment is otherwise
    /// only `PATH`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> DockerdBuilder {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Starts dockerd and waits until `docker info` answers.
    pub fn start(self) -> anyhow::Result<Dockerd> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-dockerd-")
            .tempdir()
            .context("cannot create a dockerd directory")?;
        let d = dir.path();
        for sub in ["home", "client"] {
            std::fs::create_dir(d.join(sub))?;
        }
        let config = d.join("daemon.json");
        std::fs::write(
            &config,
            serde_json::to_string_pretty(&self.daemon_json.unwrap_or_else(|| json!({})))?,
        )?;
        let log_path = d.join("dockerd.log");
        let log = File::create(&log_path)?;
        let sock = d.join("docker.sock");
        let path = path_env(&self.path_prepend);
        let mut cmd = Command::new("dockerd");
        cmd.env_clear()
            .env("PATH", &path)
            .envs(self.env)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--config-file")
            .arg(&config)
            .args(["--iptables=false", "--bridge=none"]);
        if let Some(driver) = std::env::var_os(ENV_STORAGE_DRIVER).filter(|v| !v.is_empty()) {
            cmd.arg("--storage-driver").arg(driver);
        }
        cmd.args(&self.args);
        let line = display_command(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let dockerd = Dockerd {
            child: Mutex::new(child),
            sock,
            log: log_path,
            path: path_env(&[]),
            dir,
        };
        dockerd
            .wait_ready(DOCKERD_START_TIMEOUT)
            .with_context(|| format!("`{line}` did not come up"))?;
        Ok(dockerd)
    }
}

/// A running private dockerd; stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Dockerd {
    child: Mutex<Child>,
    sock: PathBuf,
    log: PathBuf,
    /// `PATH` for the docker CLI.
    path: OsString,
    dir: tempfile::TempDir,
}

static SHARED: Mutex<Option<Arc<Dockerd>>> = Mutex::new(None);
static STOP_AT_EXIT: Once = Once::new();

/// Stops the shared daemon when the test process exits (libtest has no
/// global teardown; `atexit` handlers run on both ways out of its `main`).
extern "C" fn stop_shared() {
    let _ = std::panic::catch_unwind(|| {
        let shared = SHARED.lock().ok().and_then(|mut s| s.take());
        drop(shared);
    });
}

impl Dockerd {
    /// Starts a daemon with options; see [`DockerdBuilder`].
    pub fn builder() -> DockerdBuilder {
        DockerdBuilder::new()
    }

    /// The default daemon shared by all tests of this process: started on
    /// first use (again if it died), stopped at process exit.
    pub fn shared() -> anyhow::Result<Arc<Dockerd>> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = shared.as_ref().filter(|d| d.is_running()) {
            return Ok(Arc::clone(d));
        }
        let d = Arc::new(DockerdBuilder::new().start()?);
        STOP_AT_EXIT.call_once(|| {
            // SAFETY: atexit(3) only records a function pointer; stop_shared
            // is an `extern "C" fn()` that catches every panic.
            unsafe {
                libc::atexit(stop_shared);
            }
        });
        *shared = Some(Arc::clone(&d));
        Ok(d)
    }

    /// `unix:///…/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// The daemon's private directory (data root, exec root, log, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything dockerd has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the daemon process is still alive.
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    /// A `docker -H <this daemon>` command with a private client config.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.dir().join("home"))
            .env("DOCKER_CONFIG", self.dir().join("client"))
            .arg("--host")
            .arg(self.host());
        cmd
    }

    /// Runs `docker <args>` with [`DOCKER_TIMEOUT`]; any exit status is `Ok`.
    pub fn run_docker<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<Output> {
        run_timeout(self.docker().args(args), DOCKER_TIMEOUT)
    }

    /// `docker import --change <c>... <tarball of variant> <tag>`; `changes`
    /// are Dockerfile instructions (`LABEL k=v`, `ENV K=v`); see
    /// [`crate::v1_labels`] and [`crate::require_cuda_env`].
    pub fn import<S: AsRef<str>>(
        &self,
        variant: Variant,
        tag: &str,
        changes: &[S],
    ) -> anyhow::Result<()> {
        let tar = rootfs::tarball(variant)?;
        let mut cmd = self.docker();
        cmd.arg("import");
        for change in changes {
            cmd.arg("--change").arg(change.as_ref());
        }
        cmd.arg(&tar).arg(tag);
        run_timeout(&mut cmd, DOCKER_TIMEOUT)?
            .check()
            .with_context(|| format!("docker import of {variant} as {tag}"))?;
        Ok(())
    }

    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                bail!("dockerd exited; its log ends:\n{}", self.log_tail(30));
            }
            let probe = run_timeout(
                self.docker()
                    .args(["version", "--format", "{{.Server.Version}}"]),
                Duration::from_secs(10),
            );
            if probe.as_ref().is_ok_and(Output::success) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "no answer after {timeout:?} (last probe: {}); its log ends:\n{}",
                    match probe {
                        Ok(out) => out.stderr.trim().to_owned(),
                        Err(e) => format!("{e:#}"),
                    },
                    self.log_tail(30)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if matches!(child.try_wait(), Ok(None)) {
            signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + DOCKERD_STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                kill_group(child.id());
                let _ = child.wait();
            }
        }
        // A clean stop leaves nothing mounted; a killed one may leave the
        // data root and container rootfs mounts.
        unmount_under(self.dir.path());
    }
}
