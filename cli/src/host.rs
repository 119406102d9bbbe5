//! The host as the CLI and the daemon see it: the configuration
//! (`hook::config::HookConfig`, the same file and `NVIDIA_DOCKER_*`
//! variables as the hook) and the inventory.
//!
//! The inventory comes from `$NVIDIA_DOCKER_INVENTORY` (an inventory JSON
//! file, `rules::Inventory`, e.g. from `nvidia-docker-hook inventory --json`)
//! when set, else from the hook's validated snapshot
//! (`hook::inventory::load_or_discover`).

use std::path::{Path, PathBuf};

use hook::config::{ConfigError, HookConfig};
use rules::{FileKind, Inventory};

/// Names an inventory JSON file to use instead of discovering.
pub const ENV_INVENTORY: &str = "NVIDIA_DOCKER_INVENTORY";

/// Why the host could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The inventory file could not be read.
    #[error("could not read the inventory {}", path.display())]
    ReadInventory {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The inventory file is not an inventory.
    #[error("invalid inventory {}", path.display())]
    ParseInventory {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The inventory is inconsistent.
    #[error("invalid inventory {}", path.display())]
    InvalidInventory {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rules::inventory::InventoryError,
    },
    /// Discovery (or the snapshot) failed.
    #[error(transparent)]
    Discover(#[from] hook::inventory::InventoryError),
}

/// The hidden first argument of both binaries that makes them the NVML
/// child of inventory discovery (`hook::inventory::run_nvml_probe`): NVML
/// never loads in the shim's own process. No docker command has this name.
pub const NVML_PROBE_ARG: &str = "__nvml-probe";

/// Loads the configuration (`--config`, `$NVIDIA_DOCKER_CONFIG`, the default
/// file, then the `NVIDIA_DOCKER_*` overrides), with discovery's NVML child
/// being this binary's [`NVML_PROBE_ARG`].
pub fn load_config(explicit: Option<&Path>) -> Result<HookConfig, HostError> {
    let mut config = HookConfig::load(explicit)?;
    config.nvml_probe.args = vec![NVML_PROBE_ARG.into()];
    Ok(config)
}

/// When `args` (without argv0) is `__nvml-probe <lib>`, answers as the NVML
/// child and returns true (the caller then exits 0).
pub fn nvml_probe(args: &[String]) -> bool {
    match args {
        [flag, lib] if flag == NVML_PROBE_ARG => {
            let stdout = std::io::stdout();
            // The reply carries NVML's error, if any.
            if let Err(e) = hook::inventory::run_nvml_probe(Path::new(lib), &mut stdout.lock()) {
                log::error!("writing the NVML probe reply: {e}");
            }
            true
        }
        _ => false,
    }
}

/// Reads an inventory JSON file and validates it.
pub fn read_inventory(path: &Path) -> Result<Inventory, HostError> {
    let text = std::fs::read(path).map_err(|source| HostError::ReadInventory {
        path: path.to_path_buf(),
        source,
    })?;
    let inv: Inventory =
        serde_json::from_slice(&text).map_err(|source| HostError::ParseInventory {
            path: path.to_path_buf(),
            source,
        })?;
    inv.validate()
        .map_err(|source| HostError::InvalidInventory {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(inv)
}

/// The host's inventory: `$NVIDIA_DOCKER_INVENTORY` when set, else the
/// hook's validated snapshot (NVML only in a child process on a miss).
pub fn load_inventory(config: &HookConfig) -> Result<Inventory, HostError> {
    match std::env::var_os(ENV_INVENTORY) {
        Some(path) if !path.is_empty() => read_inventory(Path::new(&path)),
        _ => Ok(hook::inventory::load_or_discover(config)?),
    }
}

/// The NVML library: the configured one, else the inventory's 64-bit
/// `libnvidia-ml.so.*` under the driver root, else `libnvidia-ml.so.1` from
/// the linker's search path.
pub fn nvml_lib(config: &HookConfig, inv: &Inventory) -> PathBuf {
    driver_library(
        config.paths.nvml_lib.as_deref(),
        inv,
        "libnvidia-ml.so.1",
        |n| n.starts_with("libnvidia-ml.so"),
    )
}

/// The CUDA driver library v1's `/gpu/info` reads device attributes from:
/// the configured one (`cuda-lib`), else the driver root's 64-bit
/// `libcuda.so.<driver version>` (not a leftover of an older driver), else
/// `libcuda.so.1` from the linker's search path.
pub fn cuda_lib(config: &HookConfig, inv: &Inventory) -> PathBuf {
    let versioned = format!("libcuda.so.{}", inv.driver_version);
    driver_library(config.paths.cuda_lib.as_deref(), inv, "libcuda.so.1", |n| {
        n == versioned
    })
}

/// `configured`, else the first 64-bit library of `inv` whose file name
/// passes `name`, under the driver root, else `soname` for the dynamic
/// linker to find.
fn driver_library(
    configured: Option<&Path>,
    inv: &Inventory,
    soname: &str,
    name: impl Fn(&str) -> bool,
) -> PathBuf {
    if let Some(lib) = configured {
        return lib.to_path_buf();
    }
    inv.files
        .iter()
        .find(|f| {
            f.kind == FileKind::Library
                && f.class == rules::ElfClass::Elf64
                && f.path.file_name_str().is_some_and(&name)
        })
        .map(|f| PathBuf::from(inv.driver_root.under(&f.path).as_str()))
        .unwrap_or_else(|| PathBuf::from(soname))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rules::{DriverFile, ElfClass, HostPath, Version};

    fn inventory() -> Inventory {
        Inventory::new(Version::parse("550.54.14").unwrap())
    }

    #[test]
    fn libcuda_is_the_installed_version_not_a_leftover() {
        let mut inv = inventory();
        inv.driver_root = HostPath::new("/run/nvidia/driver").unwrap();
        for name in ["libcuda.so.470.82.01", "libcuda.so.550.54.14"] {
            inv.files.push(DriverFile {
                path: HostPath::new(format!("/usr/lib/x86_64-linux-gnu/{name}")).unwrap(),
                kind: FileKind::Library,
                class: ElfClass::Elf64,
                soname: Some("libcuda.so.1".into()),
            });
        }
        let config = HookConfig::default();
        assert_eq!(
            cuda_lib(&config, &inv),
            Path::new("/run/nvidia/driver/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14")
        );
        assert_eq!(cuda_lib(&config, &inventory()), Path::new("libcuda.so.1"));
    }

    #[test]
    fn a_configured_library_comes_first() {
        let mut config = HookConfig::default();
        config.paths.cuda_lib = Some("/opt/mock/libcuda.so.1".into());
        config.paths.nvml_lib = Some("/opt/mock/libnvidia-ml.so.1".into());
        assert_eq!(
            cuda_lib(&config, &inventory()),
            Path::new("/opt/mock/libcuda.so.1")
        );
        assert_eq!(
            nvml_lib(&config, &inventory()),
            Path::new("/opt/mock/libnvidia-ml.so.1")
        );
    }
}
