//! `podman` with private storage and configuration, for tests.
//!
//! Every [`Podman`] has its own `--root`, `--runroot`, `--tmpdir`,
//! `--hooks-dir`, `containers.conf` and `storage.conf` (through
//! `CONTAINERS_CONF` and `CONTAINERS_STORAGE_CONF`, so that the host's
//! `/etc/containers` changes nothing). It runs containers with `runc` and the
//! cgroupfs manager (crun refuses a hybrid cgroup layout), without network
//! (`netns = "none"`, so no netavark/CNI), with `nofile` and `nproc` limited to
//! 1024 (podman's defaults exceed the hard limits of some hosts), and the
//! `file` events backend (no journald). The storage driver is overlay unless
//! the temporary directory is itself on overlayfs (then vfs), or whatever
//! `E2E_PODMAN_STORAGE_DRIVER` names.
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use fixtures::rootfs::{self, Variant};

use crate::mounts::{fs_type_of, unmount_under};
use crate::process::{path_env, run_timeout, Output};

/// How long one `podman` command may take.
pub const PODMAN_TIMEOUT: Duration = Duration::from_secs(180);
/// Environment variable naming a storage driver to force.
pub const ENV_STORAGE_DRIVER: &str = "E2E_PODMAN_STORAGE_DRIVER";

/// Options for a private podman (owned builder).
#[derive(Debug, Clone, Default)]
pub struct PodmanBuilder {
    hooks_dir: Option<PathBuf>,
    runtime: Option<OsString>,
    path_prepend: Vec<PathBuf>,
    env: Vec<(OsString, OsString)>,
}

impl PodmanBuilder {
    /// Default options.
    pub fn new() -> PodmanBuilder {
        PodmanBuilder::default()
    }

    /// The `--hooks-dir` (default: an empty private directory, see
    /// [`Podman::hooks_dir`]).
    pub fn hooks_dir(mut self, dir: impl Into<PathBuf>) -> PodmanBuilder {
        self.hooks_dir = Some(dir.into());
        self
    }

    /// The `--runtime` (name or path; default `runc`).
    pub fn runtime(mut self, runtime: impl AsRef<OsStr>) -> PodmanBuilder {
        self.runtime = Some(runtime.as_ref().to_owned());
        self
    }

    /// A directory put first on podman's `PATH` (and so its runtime's and
    /// hooks').
    pub fn path_prepend(mut self, dir: impl Into<PathBuf>) -> PodmanBuilder {
        self.path_prepend.push(dir.into());
        self
    }

    /// An environment variable for podman.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> PodmanBuilder {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Creates the private directories and configuration.
    pub fn build(self) -> anyhow::Result<Podman> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-podman-")
            .tempdir()
            .context("cannot create a podman directory")?;
        let d = dir.path();
        for sub in ["root", "runroot", "tmp", "home", "hooks.d", "networks"] {
            std::fs::create_dir(d.join(sub))?;
        }
        let driver = std::env::var(ENV_STORAGE_DRIVER)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| match fs_type_of(d).as_deref() {
                Some("overlay") => "vfs".to_owned(),
                _ => "overlay".to_owned(),
            });
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\nnetns = \"none\"\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\n\
                 [network]\nnetwork_config_dir = \"{}\"\n\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
                d.join("networks").display()
            ),
        )?;
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"{driver}\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                d.join("runroot").display(),
                d.join("root").display()
            ),
        )?;
        let hooks_dir = self.hooks_dir.unwrap_or_else(|| d.join("hooks.d"));
        let mut global: Vec<OsString> = Vec::new();
        for (flag, value) in [
            ("--root", d.join("root").into_os_string()),
            ("--runroot", d.join("runroot").into_os_string()),
            ("--tmpdir", d.join("tmp").into_os_string()),
            ("--storage-driver", driver.into()),
            (
                "--runtime",
                self.runtime.unwrap_or_else(|| OsString::from("runc")),
            ),
            ("--cgroup-manager", "cgroupfs".into()),
            ("--events-backend", "file".into()),
            ("--hooks-dir", hooks_dir.clone().into_os_string()),
        ] {
            global.push(flag.into());
            global.push(value);
        }
        let mut env = vec![
            (OsString::from("PATH"), path_env(&self.path_prepend)),
            ("HOME".into(), d.join("home").into_os_string()),
            (
                "CONTAINERS_CONF".into(),
                d.join("containers.conf").into_os_string(),
            ),
            (
                "CONTAINERS_STORAGE_CONF".into(),
                d.join("storage.conf").into_os_string(),
            ),
        ];
        env.extend(self.env);
        Ok(Podman {
            dir,
            hooks_dir,
            global,
            env,
        })
    }
}

/// A private podman; its containers and storage are removed on drop.
#[derive(Debug)]
pub struct Podman {
    dir: tempfile::TempDir,
    hooks_dir: PathBuf,
    global: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Podman {
    /// A podman with default options.
    pub fn new() -> anyhow::Result<Podman> {
        PodmanBuilder::new().build()
    }

    /// Starts one with options; see [`PodmanBuilder`].
    pub fn builder() -> PodmanBuilder {
        PodmanBuilder::new()
    }

    /// The `--hooks-dir` (put `*.json` hook configurations here).
    pub fn hooks_dir(&self) -> &Path {
        &self.hooks_dir
    }

    /// Its private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `podman <global flags>` command.
    pub fn podman(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.global);
        cmd
    }

    /// Runs `podman <args>` with [`PODMAN_TIMEOUT`]; any exit status is `Ok`.
    pub fn run_podman<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<Output> {
        run_timeout(self.podman().args(args), PODMAN_TIMEOUT)
    }

    /// `podman import --change <c>... <tarball of variant> <tag>`.
    pub fn import<S: AsRef<str>>(
        &self,
        variant: Variant,
        tag: &str,
        changes: &[S],
    ) -> anyhow::Result<()> {
        let tar = rootfs::tarball(variant)?;
        let mut cmd = self.podman();
        cmd.args(["import", "--quiet"]);
        for change in changes {
            cmd.arg("--change").arg(change.as_ref());
        }
        cmd.arg(&tar).arg(tag);
        run_timeout(&mut cmd, PODMAN_TIMEOUT)?
            .check()
            .with_context(|| format!("podman import of {variant} as {tag}"))?;
        Ok(())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = run_timeout(
            self.podman()
                .args(["rm", "--all", "--force", "--time", "0"]),
            Duration::from_secs(60),
        );
        unmount_under(self.dir.path());
    }
}
