//! The hook's configuration: every host root as data (`HostPaths`) and the
//! policy knobs handed to `rules`.
//!
//! (in progress: see issue 4; the shape below is the contract other modules
//! code against.)
use std::path::PathBuf;
use std::time::Duration;

/// Every path to the host, defaulting to the real ones; tests point them at a
/// simulated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// Where the driver's files live (`/`, or `/run/nvidia/driver`).
    pub driver_root: PathBuf,
    /// Where the `/dev/nvidia*` nodes are (`/dev`).
    pub dev_root: PathBuf,
    /// The host's `/proc`.
    pub proc_root: PathBuf,
    /// The host's cgroup mount root (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// The driver root's linker cache (`<driver_root>/etc/ld.so.cache`).
    pub ld_cache: PathBuf,
    /// The host's `ldconfig`, run inside containers (`/sbin/ldconfig`).
    pub ldconfig: PathBuf,
    /// The NVML library (`<driver_root>/.../libnvidia-ml.so.1`, found through
    /// the driver root's cache when unset).
    pub nvml_lib: Option<PathBuf>,
    /// Where the inventory snapshot is kept (`/run/nvidia-docker`).
    pub cache_dir: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            driver_root: PathBuf::from("/"),
            dev_root: PathBuf::from("/dev"),
            proc_root: PathBuf::from("/proc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            ld_cache: PathBuf::from("/etc/ld.so.cache"),
            ldconfig: PathBuf::from("/sbin/ldconfig"),
            nvml_lib: None,
            cache_dir: PathBuf::from("/run/nvidia-docker"),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct HookConfig {
    /// Host roots.
    pub paths: HostPaths,
    /// Bound on NVML discovery.
    pub nvml_timeout: Duration,
    /// Policy for `rules::plan`.
    pub rules: rules::Config,
    /// Debug log file (in addition to stderr).
    pub debug_log: Option<PathBuf>,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            paths: HostPaths::default(),
            nvml_timeout: Duration::from_secs(10),
            rules: rules::Config::default(),
            debug_log: None,
        }
    }
}
