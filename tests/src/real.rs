//! NVIDIA's real driver files on a simulated host: [`RealHost`] is a
//! simulated host (mock NVML, `/dev` and `/proc` stand-ins) whose driver root
//! is one of the real driver trees of `fixtures::real_driver` (downloaded
//! once and cached under `target/nvidia-driver`). The hook's own NVML stays
//! the mock (`NVIDIA_DOCKER_NVML_LIB`), so nothing on the host loads the real
//! libraries; the files the hook finds and mounts are the real ones, and a
//! container that loads them gets the real driver's answers.
//!
//! [`probe`] builds `tests/probe/gpu-probe.c` with the host's `gcc`.
use std::path::{Path, PathBuf};

use anyhow::Context;
use fixtures::host_desc::HostDescription;
use fixtures::real_driver::{self, DriverLayout, RealDriver, Series};
use serde_json::Value;

use crate::bundle::Hook;
use crate::hook::{hook_binary, SimHost};
use crate::process::run_timeout;

/// A simulated host whose driver files are NVIDIA's real ones.
#[derive(Debug)]
pub struct RealHost {
    /// The simulated host (GPUs, nodes, `/proc`, mock NVML, config file).
    pub sim: SimHost,
    /// The real driver tree.
    pub driver: RealDriver,
    /// The driver root the hook is given: the tree itself, or where it is
    /// mounted ([`RealHost::containerised`]).
    pub driver_root: PathBuf,
    /// Unmounted on drop.
    mounted: Option<PathBuf>,
}

impl RealHost {
    /// Two synthetic GPUs on the real driver of `series` laid out as `layout`
    /// (the mock NVML reports the real driver's version and CUDA version).
    pub fn new(series: Series, layout: DriverLayout) -> anyhow::Result<RealHost> {
        let driver = real_driver::ensure(series, layout)
            .context("cannot build the real driver root (see fixtures/src/real_driver.rs)")?;
        RealHost::with_nvml_version(driver, None)
    }

    /// Like [`RealHost::new`] with the mock NVML reporting `nvml_version`
    /// (a half-finished driver upgrade when it differs from the files).
    pub fn with_nvml_version(
        driver: RealDriver,
        nvml_version: Option<&str>,
    ) -> anyhow::Result<RealHost> {
        let version = nvml_version.unwrap_or(&driver.version);
        let desc = HostDescription::synthetic(2, version, driver.series.cuda_version());
        let sim = SimHost::generate(desc)?;
        let driver_root = driver.root.clone();
        Ok(RealHost {
            sim,
            driver,
            driver_root,
            mounted: None,
        })
    }

    /// The tree bind-mounted read-only at `<host>/run/nvidia/driver`, as the
    /// GPU Operator's driver container leaves it, and given to the hook
    /// there (`NVIDIA_DOCKER_DRIVER_ROOT=/run/nvidia/driver` on a real node).
    pub fn containerised(series: Series, layout: DriverLayout) -> anyhow::Result<RealHost> {
        let mut host = RealHost::new(series, layout)?;
        let at = host.sim.dir().join("run/nvidia/driver");
        std::fs::create_dir_all(&at)?;
        let status = std::process::Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(&host.driver.root)
            .arg(&at)
            .status()
            .context("mount --bind")?;
        anyhow::ensure!(status.success(), "mount --bind {} failed", at.display());
        host.mounted = Some(at.clone());
        host.driver_root = at;
        Ok(host)
    }

    /// The hook's environment: the simulated host's, with the real driver
    /// root and the mock NVML named explicitly.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut env: Vec<(&'static str, String)> = self
            .sim
            .env()
            .into_iter()
            .filter(|(k, _)| *k != "NVIDIA_DOCKER_DRIVER_ROOT")
            .collect();
        env.push(("NVIDIA_DOCKER_DRIVER_ROOT", s(&self.driver_root)));
        env.push(("NVIDIA_DOCKER_NVML_LIB", s(&self.sim.layout.nvml_lib)));
        env
    }

    /// The runc `config.json` prestart registration with [`RealHost::env`].
    pub fn prestart_hook(&self) -> anyhow::Result<Hook> {
        crate::hook::prestart_hook_with(self.env())
    }

    /// `nvidia-docker-hook inventory --json --refresh` on this host.
    pub fn inventory(&self) -> anyhow::Result<crate::Output> {
        let mut cmd = crate::process::command(hook_binary()?);
        cmd.args(["inventory", "--json", "--refresh"]);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        run_timeout(&mut cmd, std::time::Duration::from_secs(120))
    }

    /// The inventory as JSON (the command must succeed).
    pub fn inventory_json(&self) -> anyhow::Result<Value> {
        let out = self.inventory()?.check()?;
        serde_json::from_str(&out.stdout).context("inventory --json is not JSON")
    }
}

impl Drop for RealHost {
    fn drop(&mut self) {
        if let Some(at) = &self.mounted {
            let _ = std::process::Command::new("umount").arg(at).status();
        }
    }
}

/// `tests/probe/gpu-probe.c`, built with `gcc` (`-m32` with `m32`) into
/// `dir/gpu-probe[32]`.
pub fn probe(dir: &Path, m32: bool) -> anyhow::Result<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("probe/gpu-probe.c");
    let out = dir.join(if m32 { "gpu-probe32" } else { "gpu-probe" });
    let mut cmd = crate::process::command("gcc");
    cmd.arg("-O1").arg("-o").arg(&out).arg(&src).arg("-ldl");
    if m32 {
        cmd.arg("-m32");
    }
    run_timeout(&mut cmd, std::time::Duration::from_secs(120))?.check()?;
    Ok(out)
}

/// `key=value` lines of the probe (the first value of a key wins).
pub fn probe_values(stdout: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        if let Some((k, v)) = line.split_once('=') {
            out.entry(k.trim().to_owned())
                .or_insert_with(|| v.to_owned());
        }
    }
    out
}
