//! The inventory: loaded from a validated snapshot, rediscovered (NVML, the
//! linker cache, driver files, `/proc/devices`) only when the host changed.
//!
//! - [`load_or_discover`] — what the hook, `cli-options` and the daemon call.
//!   A warm snapshot costs a few `stat`s and one small JSON parse; NVML is
//!   never loaded in the calling process (discovery runs NVML in a child,
//!   [`crate::discover::probe`], killed after `nvml_timeout`).
//! - [`discover()`] — always fresh, nothing written. [`refresh`] discovers and
//!   write the snapshot.
//! - [`run_nvml_probe`] — the child side, for any binary's hidden probe
//!   subcommand (the hook's is `inventory --nvml-probe <lib>`).
//! - [`render_text`] — `nvidia-container-cli info`'s format.
//!
//! NVML facts a container needs (minor number, UUID, PCI bus id) must be
//! present; the others default when NVML answers NOT_SUPPORTED: brand
//! `Unknown`, model `Unknown`, compute capability `0.0` (so an `arch>=`
//! requirement fails rather than passes on an unknown GPU), MIG disabled.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rules::inventory::MigDevice;
use rules::{DeviceInfo, Gpu, HostPath, Inventory, PciBusId, Version};

use crate::config::HookConfig;
use crate::discover::nvml::NvmlFacts;
use crate::discover::probe::{self, ProbeError};
use crate::discover::root::Resolver;
use crate::discover::{self, DiscoverError, FileSearch};
use crate::snapshot::{self, Fingerprint, Snapshot};

pub use crate::discover::probe::run_nvml_probe;

/// Why the inventory could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A host file or the linker cache could not be read.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// NVML failed, timed out, or its probe did not answer.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// NVML's driver version is not a version.
    #[error("NVML ({}) reports driver version {version:?}", lib.display())]
    DriverVersion {
        /// The library.
        lib: PathBuf,
        /// What it said.
        version: String,
        /// The cause.
        #[source]
        source: rules::version::VersionError,
    },
    /// A GPU fact a container needs is NOT_SUPPORTED.
    #[error("GPU {index}: NVML ({}) does not report its {field} (NVML_ERROR_NOT_SUPPORTED); without it the GPU cannot be given to containers", lib.display())]
    MissingGpuField {
        /// NVML index.
        index: u32,
        /// What is missing.
        field: &'static str,
        /// The library.
        lib: PathBuf,
    },
    /// A GPU's bus id is not a PCI address.
    #[error("GPU {index}: NVML ({}) reports PCI bus id {bus_id:?}, which is not a PCI address", lib.display())]
    BadBusId {
        /// NVML index.
        index: u32,
        /// What it said.
        bus_id: String,
        /// The library.
        lib: PathBuf,
    },
    /// The driver root is not an absolute UTF-8 path.
    #[error("driver root {} is not an absolute, normalised UTF-8 path", path.display())]
    DriverRoot {
        /// The configured root.
        path: PathBuf,
    },
    /// NVML's driver version is not the version of the driver files: a
    /// driver upgrade replaced the files but the old kernel module (and so
    /// NVML's answer) is still the one running, or the other way round.
    #[error("{0}")]
    VersionMismatch(Box<VersionMismatch>),
    /// A MIG device's access file is missing or malformed.
    #[error(transparent)]
    Mig(#[from] discover::mig::MigError),
    /// The discovered inventory is inconsistent (e.g. two GPUs with one UUID).
    #[error("the discovered inventory is inconsistent")]
    Inconsistent(#[source] rules::inventory::InventoryError),
}

/// NVML and the driver files name different driver versions.
#[derive(Debug)]
pub struct VersionMismatch {
    /// What NVML said.
    pub nvml: String,
    /// The NVML library.
    pub lib: PathBuf,
    /// The driver root.
    pub root: PathBuf,
    /// The version(s) the files carry.
    pub files: String,
    /// One such file.
    pub example: String,
}

impl std::fmt::Display for VersionMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "driver version mismatch: NVML ({}) reports driver {} but the driver files in {} are version {} ({}); finish the driver upgrade and reboot (or reload the nvidia kernel module) so that both are the same version",
            self.lib.display(),
            self.nvml,
            self.root.display(),
            self.files,
            self.example
        )
    }
}

/// The inventory: from the snapshot if it is still valid, else discovered
/// (and the snapshot rewritten; if the cache directory is not writable the
/// inventory is still returned). NVML never runs in this process.
pub fn load_or_discover(cfg: &HookConfig) -> Result<Inventory, InventoryError> {
    match snapshot::load(cfg) {
        Ok(inv) => {
            log::debug!(
                "inventory from snapshot {}",
                snapshot::path(&cfg.paths.cache_dir).display()
            );
            return Ok(inv);
        }
        Err(why) => log::debug!("{}; rediscovering", chain(&why)),
    }
    // Concurrent cold starts rediscover once: the first takes the lock on
    // the cache directory and discovers; the others wait for it, then use
    // the snapshot it wrote. Without a usable cache directory (missing,
    // read-only), each discovers on its own.
    if !cfg.paths.cache_dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&cfg.paths.cache_dir);
    }
    let lock_path = cfg.paths.cache_dir.join(LOCK_FILE);
    let _held = match crate::sys::lock::exclusive(&lock_path, cfg.nvml_timeout) {
        Ok(held) => {
            if let Ok(inv) = snapshot::load(cfg) {
                log::debug!("inventory from the snapshot another start just wrote");
                return Ok(inv);
            }
            Some(held)
        }
        Err(e) => {
            log::debug!("{}; discovering without the lock", chain(&e));
            None
        }
    };
    refresh(cfg)
}

/// The lock file in the cache directory held while discovering.
pub const LOCK_FILE: &str = ".discovery.lock";

/// Discovers the inventory and writes the snapshot.
pub fn refresh(cfg: &HookConfig) -> Result<Inventory, InventoryError> {
    let (inv, fingerprint) = discover_with_fingerprint(cfg)?;
    let Some(fingerprint) = fingerprint else {
        return Ok(inv);
    };
    let snap = Snapshot {
        format: snapshot::FORMAT,
        checksum: None,
        fingerprint,
        inventory: inv,
    };
    match snapshot::write(&cfg.paths.cache_dir, &snap) {
        Ok(path) => log::debug!("wrote inventory snapshot {}", path.display()),
        Err(e) if e.is_permission_denied() => log::debug!("{}", chain(&e)),
        Err(e) => log::warn!("{}", chain(&e)),
    }
    Ok(snap.inventory)
}

/// Discovers the inventory now; writes nothing.
pub fn discover(cfg: &HookConfig) -> Result<Inventory, InventoryError> {
    discover_with_fingerprint(cfg).map(|(inv, _)| inv)
}

/// An error and its causes on one line, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

fn host_path(path: &Path) -> Option<HostPath> {
    let s = path.to_str()?;
    let trimmed = s.trim_end_matches('/');
    HostPath::new(if trimmed.is_empty() { "/" } else { trimmed }).ok()
}

/// Discovery, and the fingerprint taken before it (`None` when the host
/// cannot be fingerprinted: the inventory is then not cached).
fn discover_with_fingerprint(
    cfg: &HookConfig,
) -> Result<(Inventory, Option<Fingerprint>), InventoryError> {
    let paths = &cfg.paths;
    let driver_root = host_path(&paths.driver_root).ok_or_else(|| InventoryError::DriverRoot {
        path: paths.driver_root.clone(),
    })?;
    let mut resolver = Resolver::new(&paths.driver_root);
    let cache = discover::read_ld_cache(&paths.ld_cache)?;
    let nvml_lib = match &paths.nvml_lib {
        Some(lib) => lib.clone(),
        None => discover::find_nvml(&mut resolver, &cache, &paths.ld_cache)?,
    };
    let fingerprint = match Fingerprint::take(cfg, &nvml_lib) {
        Ok(f) => Some(f),
        Err(e) => {
            log::debug!("{}; the inventory will not be cached", chain(&e));
            None
        }
    };
    // NVML runs in a child while this process reads the files.
    let running = probe::start(&cfg.nvml_probe, &nvml_lib, cfg.nvml_timeout)?;
    let machine = discover::host_machine();
    let candidates = discover::library_candidates(&mut resolver, &cache, machine);
    let majors = discover::device_majors(&paths.proc_root)?;
    let nodes = discover::control_nodes(&paths.dev_root);
    let facts = running.wait()?;

    let driver_version =
        Version::parse(&facts.driver_version).map_err(|source| InventoryError::DriverVersion {
            lib: facts.lib.clone(),
            version: facts.driver_version.clone(),
            source,
        })?;
    let file_versions = candidates.file_versions();
    let files = discover::driver_files(
        &mut resolver,
        candidates,
        &FileSearch {
            driver_version: &facts.driver_version,
            machine,
            binary_path: &cfg.binary_path,
            mps_pipe_dir: &cfg.mps_pipe_dir,
        },
    );
    let matched = files.iter().any(|f| {
        f.kind == rules::FileKind::Library
            && f.path
                .as_str()
                .rsplit('/')
                .next()
                .is_some_and(|n| n.ends_with(&format!(".so.{}", facts.driver_version)))
    });
    if !matched && !file_versions.is_empty() && !file_versions.contains_key(&facts.driver_version) {
        return Err(InventoryError::VersionMismatch(Box::new(VersionMismatch {
            nvml: facts.driver_version.clone(),
            lib: facts.lib.clone(),
            root: paths.driver_root.clone(),
            files: file_versions.keys().cloned().collect::<Vec<_>>().join(", "),
            example: file_versions.values().next().cloned().unwrap_or_default(),
        })));
    }
    let loader_files =
        discover::loader::find_loader_files(&mut resolver, &files, &facts.driver_version);
    let gpus = gpus(&facts, &paths.proc_root)?;
    let drm = discover::drm::drm_nodes(&paths.sys_root, &gpus);
    let extra_devices = discover::extra::extra_devices(&paths.proc_root, &paths.dev_root);
    let inv = Inventory {
        driver_version,
        cuda_version: facts
            .cuda_driver_version
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .map(Version::from_cuda_driver_int),
        driver_root,
        machine,
        devices: DeviceInfo {
            nvidia_major: majors.nvidia,
            uvm_major: majors.uvm,
            caps_major: majors.caps,
            uvm_tools: nodes.uvm_tools,
            modeset: nodes.modeset,
        },
        gpus,
        files,
        loader_files,
        drm,
        extra_devices,
    };
    inv.validate().map_err(InventoryError::Inconsistent)?;
    Ok((inv, fingerprint))
}

/// The inventory's GPUs from NVML's facts, with their MIG devices' caps
/// minors read from the access files under `proc_root`.
pub fn gpus(facts: &NvmlFacts, proc_root: &Path) -> Result<Vec<Gpu>, InventoryError> {
    let lib = &facts.lib;
    let missing = |index, field| InventoryError::MissingGpuField {
        index,
        field,
        lib: lib.clone(),
    };
    facts
        .gpus
        .iter()
        .map(|g| {
            let i = g.index;
            let minor = g.minor.ok_or_else(|| missing(i, "minor number"))?;
            let uuid = g.uuid.clone().ok_or_else(|| missing(i, "UUID"))?;
            let bus = g
                .bus_id
                .as_deref()
                .ok_or_else(|| missing(i, "PCI bus id"))?;
            let bus_id = PciBusId::parse(bus).ok_or_else(|| InventoryError::BadBusId {
                index: i,
                bus_id: bus.to_owned(),
                lib: lib.clone(),
            })?;
            let arch = g
                .compute_capability
                .and_then(|(a, b)| Some((u64::try_from(a).ok()?, u64::try_from(b).ok()?)))
                .map_or_else(
                    || Version::major_minor(0, 0),
                    |(a, b)| Version::major_minor(a, b),
                );
            Ok(Gpu {
                index: i,
                minor,
                uuid,
                bus_id,
                brand: g.brand.clone().unwrap_or_else(|| "Unknown".to_owned()),
                arch,
                model: g.name.clone().unwrap_or_else(|| "Unknown".to_owned()),
                mig_enabled: g.mig_enabled.unwrap_or(false),
                mig: mig_devices(g, minor, proc_root)?,
            })
        })
        .collect()
}

fn mig_devices(
    g: &discover::nvml::GpuFacts,
    minor: u32,
    proc_root: &Path,
) -> Result<Vec<MigDevice>, InventoryError> {
    use discover::mig::{access_file, read_minor, MigId};
    g.mig
        .iter()
        .map(|m| {
            let id = MigId {
                gpu: g.index,
                mig: m.index,
                uuid: &m.uuid,
            };
            Ok(MigDevice {
                index: m.index,
                uuid: m.uuid.clone(),
                gi: m.gi,
                ci: m.ci,
                gi_caps_minor: read_minor(proc_root, &access_file(minor, m.gi, None), id)?,
                ci_caps_minor: read_minor(proc_root, &access_file(minor, m.gi, Some(m.ci)), id)?,
            })
        })
        .collect()
}

/// The inventory as `nvidia-container-cli info` prints it (`%-15s` labels):
///
/// ```text
/// NVRM version:   535.104.05
/// CUDA version:   12.2
///
/// Device Index:   0
/// Device Minor:   0
/// Model:          NVIDIA A100-SXM4-80GB
/// Brand:          Nvidia
/// GPU UUID:       GPU-...
/// Bus Location:   00000000:07:00.0
/// Architecture:   8.0
/// ```
pub fn render_text(inv: &Inventory) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{label:<15} {value}");
    };
    line("NVRM version:", &inv.driver_version);
    match &inv.cuda_version {
        Some(v) => line("CUDA version:", v),
        None => line("CUDA version:", &"N/A"),
    }
    for g in &inv.gpus {
        out.push('\n');
        let mut line = |label: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(out, "{label:<15} {value}");
        };
        line("Device Index:", &g.index);
        line("Device Minor:", &g.minor);
        line("Model:", &g.model);
        line("Brand:", &g.brand);
        line("GPU UUID:", &g.uuid);
        line("Bus Location:", &g.bus_id);
        line("Architecture:", &g.arch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_format() {
        let json = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../rules/tests/data/inventory-a100x2.json"
        ));
        let inv: Inventory = serde_json::from_str(json).unwrap();
        let text = render_text(&inv);
        let first: Vec<&str> = text.lines().take(4).collect();
        assert_eq!(first[0], format!("NVRM version:   {}", inv.driver_version));
        assert!(first[1].starts_with("CUDA version:   "));
        assert_eq!(first[2], "");
        assert_eq!(first[3], "Device Index:   0");
        assert!(text.contains(&format!("\nModel:          {}\n", inv.gpus[0].model)));
        assert!(text.contains(&format!("\nBus Location:   {}\n", inv.gpus[0].bus_id)));
        assert_eq!(text.matches("Device Index:").count(), inv.gpus.len());
    }
}
