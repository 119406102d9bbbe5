//! `nvidia-docker-hook inventory [--json] [--refresh]`: what the host has,
//! as the hook sees it. From a systemd unit or a udev rule,
//! `inventory --refresh` rewrites the snapshot after a driver change.
//!
//! The hidden `--nvml-probe <LIB>` is the NVML child the library starts
//! (`hook::discover::probe`): it prints one JSON reply and exits 0.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use hook::config::{self, HookConfig};
use hook::inventory;

/// Print what the host has (the inventory snapshot), refreshing it if asked.
#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Rediscover even when the snapshot is valid.
    #[arg(long)]
    pub refresh: bool,
    /// Driver root (overrides the configuration and NVIDIA_DOCKER_DRIVER_ROOT).
    #[arg(long, value_name = "DIR")]
    pub driver_root: Option<PathBuf>,
    /// Directory holding the /dev/nvidia* nodes.
    #[arg(long, value_name = "DIR")]
    pub dev_root: Option<PathBuf>,
    /// The host's /proc.
    #[arg(long, value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
    /// The NVML library to load.
    #[arg(long, value_name = "FILE")]
    pub nvml_lib: Option<PathBuf>,
    /// Where the snapshot is kept.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Bound on NVML discovery, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub nvml_timeout: Option<f64>,
    /// Internal: query NVML from LIB in this process and print the reply.
    #[arg(long, value_name = "LIB", hide = true)]
    pub nvml_probe: Option<PathBuf>,
}

fn absolute(flag: &str, path: &Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        path.is_absolute(),
        "--{flag} {}: the path must be absolute",
        path.display()
    );
    Ok(path.to_path_buf())
}

/// Applies the flags on top of the loaded configuration.
fn apply_flags(cfg: &mut HookConfig, args: &InventoryArgs) -> anyhow::Result<()> {
    if let Some(p) = &args.driver_root {
        cfg.set_driver_root(absolute("driver-root", p)?);
    }
    if let Some(p) = &args.dev_root {
        cfg.paths.dev_root = absolute("dev-root", p)?;
    }
    if let Some(p) = &args.proc_root {
        cfg.paths.proc_root = absolute("proc-root", p)?;
    }
    if let Some(p) = &args.nvml_lib {
        cfg.paths.nvml_lib = Some(absolute("nvml-lib", p)?);
    }
    if let Some(p) = &args.cache_dir {
        cfg.paths.cache_dir = absolute("cache-dir", p)?;
    }
    if let Some(secs) = args.nvml_timeout {
        cfg.nvml_timeout = config::timeout(secs).with_context(|| {
            format!("--nvml-timeout {secs}: must be greater than 0 and at most 3600 seconds")
        })?;
    }
    Ok(())
}

/// Runs the subcommand.
pub fn run(config_path: Option<&Path>, args: &InventoryArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    if let Some(lib) = &args.nvml_probe {
        // The reply carries NVML's error, if any; exit 0 either way.
        inventory::run_nvml_probe(lib, &mut stdout.lock())
            .context("writing the NVML probe reply")?;
        return Ok(());
    }
    let mut cfg = HookConfig::load(config_path)?;
    apply_flags(&mut cfg, args)?;
    let inv = if args.refresh {
        inventory::refresh(&cfg)?
    } else {
        inventory::load_or_discover(&cfg)?
    };
    if let Some(w) = hook::diagnose::no_gpu_warning(&cfg.paths, &inv) {
        log::warn!("{w}");
    }
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &inv).context("writing the inventory")?;
        writeln!(out)?;
    } else {
        out.write_all(inventory::render_text(&inv).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
