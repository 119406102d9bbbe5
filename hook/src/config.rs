//! The hook's configuration: every host root as data ([`HostPaths`]), how
//! NVML discovery is run ([`ProbeCommand`], the timeout), and the policy
//! knobs handed to `rules`.
//!
//! Sources, lowest precedence first: built-in defaults (the real host), one
//! TOML file, environment overrides, then command-line flags (applied by the
//! binaries on the returned struct). The file is the one named by `--config`,
//! else by `$NVIDIA_DOCKER_CONFIG`, else `/etc/nvidia-docker/config.toml` if
//! it exists. Every key is documented in `hook/config.example.toml`; key
//! names follow nvidia-container-toolkit's `config.toml` where a key exists
//! there (docs/toolkit.md §5), so an administrator's knowledge carries
//! over. Unknown keys are errors, so a typo is never silently ignored.
//!
//! Library code never reads the process environment implicitly: the
//! environment is a parameter ([`HookConfig::from_sources`]);
//! [`HookConfig::load`] is the one convenience that reads the process's own
//! environment, for binaries.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The default configuration file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/nvidia-docker/config.toml";
/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "NVIDIA_DOCKER_CONFIG";
/// Environment override of [`HostPaths::driver_root`].
pub const ENV_DRIVER_ROOT: &str = "NVIDIA_DOCKER_DRIVER_ROOT";
/// Environment override of [`HostPaths::dev_root`].
pub const ENV_DEV_ROOT: &str = "NVIDIA_DOCKER_DEV_ROOT";
/// Environment override of [`HostPaths::proc_root`].
pub const ENV_PROC_ROOT: &str = "NVIDIA_DOCKER_PROC_ROOT";
/// Environment override of [`HostPaths::sys_root`].
pub const ENV_SYS_ROOT: &str = "NVIDIA_DOCKER_SYS_ROOT";
/// Environment override of [`HostPaths::cgroup_root`].
pub const ENV_CGROUP_ROOT: &str = "NVIDIA_DOCKER_CGROUP_ROOT";
/// Environment override of [`HostPaths::ldconfig`].
pub const ENV_LDCONFIG: &str = "NVIDIA_DOCKER_LDCONFIG";
/// Environment override of [`HostPaths::cache_dir`].
pub const ENV_CACHE_DIR: &str = "NVIDIA_DOCKER_CACHE_DIR";
/// Environment override of [`HostPaths::nvml_lib`].
pub const ENV_NVML_LIB: &str = "NVIDIA_DOCKER_NVML_LIB";
/// Environment override of [`HostPaths::cuda_lib`].
pub const ENV_CUDA_LIB: &str = "NVIDIA_DOCKER_CUDA_LIB";
/// The MPS pipe directory, as CUDA and the toolkit read it.
pub const ENV_MPS_PIPE_DIRECTORY: &str = "CUDA_MPS_PIPE_DIRECTORY";

/// Longest NVML timeout accepted (an hour): anything longer is a mistake.
pub const MAX_NVML_TIMEOUT: Duration = Duration::from_secs(3600);

/// Every path to the host, defaulting to the real ones; tests point them at a
/// simulated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// Where the driver's files live (`/`, or `/run/nvidia/driver`).
    pub driver_root: PathBuf,
    /// Where the `/dev/nvidia*` nodes are (`/dev`).
    pub dev_root: PathBuf,
    /// Where the driver's `/proc` files are (`/proc/devices`,
    /// `/proc/driver/nvidia`): the host's `/proc`, or a simulated host's.
    pub proc_root: PathBuf,
    /// The kernel's procfs as the hook sees it, where processes are
    /// (`/proc/<pid>/ns`, `/proc/<pid>/cgroup`, `/proc/self/mountinfo`):
    /// always `/proc` on a host; not changed by `NVIDIA_DOCKER_PROC_ROOT`,
    /// since a simulated driver does not simulate processes.
    pub procfs: PathBuf,
    /// The host's cgroup mount root (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// Where the GPUs' sysfs entries are (`/sys`: DRM nodes are found
    /// under `bus/pci/devices/<bus id>/drm`).
    pub sys_root: PathBuf,
    /// The driver root's linker cache (`<driver_root>/etc/ld.so.cache`).
    pub ld_cache: PathBuf,
    /// The host's `ldconfig`, run inside containers (`/sbin/ldconfig`).
    pub ldconfig: PathBuf,
    /// The NVML library (`<driver_root>/.../libnvidia-ml.so.1`, found through
    /// the driver root's cache when unset).
    pub nvml_lib: Option<PathBuf>,
    /// The CUDA driver library the v1 `/gpu/info` and `cli-options` read
    /// device attributes from (the driver root's `libcuda.so.<version>`
    /// when unset).
    pub cuda_lib: Option<PathBuf>,
    /// Where the inventory snapshot is kept (`/run/nvidia-docker`).
    pub cache_dir: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            driver_root: PathBuf::from("/"),
            dev_root: PathBuf::from("/dev"),
            proc_root: PathBuf::from("/proc"),
            procfs: PathBuf::from("/proc"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            sys_root: PathBuf::from("/sys"),
            ld_cache: PathBuf::from("/etc/ld.so.cache"),
            ldconfig: PathBuf::from("/sbin/ldconfig"),
            nvml_lib: None,
            cuda_lib: None,
            cache_dir: PathBuf::from("/run/nvidia-docker"),
        }
    }
}

impl HostPaths {
    /// The defaults with another driver root, whose linker cache is then
    /// `<driver_root>/etc/ld.so.cache`.
    pub fn with_driver_root(driver_root: &Path) -> HostPaths {
        HostPaths {
            driver_root: driver_root.to_path_buf(),
            ld_cache: driver_root.join("etc/ld.so.cache"),
            ..HostPaths::default()
        }
    }
}

/// How NVML discovery is run: a child process that prints the NVML facts as
/// JSON (see `inventory::run_nvml_probe`). The library appends the NVML
/// library path as the last argument.
///
/// The child inherits this process's environment unchanged, plus [`env`]
/// (which tests use for `NVML_MOCK_DEV_ROOT`); nothing else is set or
/// removed. The hook's own environment comes from the runtime, never from the
/// image, so passing it on adds no input an image controls.
///
/// [`env`]: ProbeCommand::env
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeCommand {
    /// The program (default `/proc/self/exe`: the running binary, even if
    /// its file was replaced since it started).
    pub program: PathBuf,
    /// Arguments before the library path (default `inventory --nvml-probe`,
    /// the hook's hidden probe flag). Other binaries set their own.
    pub args: Vec<OsString>,
    /// Variables added to the inherited environment.
    pub env: Vec<(OsString, OsString)>,
}

impl Default for ProbeCommand {
    fn default() -> Self {
        ProbeCommand {
            program: PathBuf::from("/proc/self/exe"),
            args: vec!["inventory".into(), "--nvml-probe".into()],
            env: Vec::new(),
        }
    }
}

/// The standard `PATH` searched for driver binaries inside the driver root
/// (the toolkit's default search path).
pub const DEFAULT_BINARY_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The MPS pipe directory when `CUDA_MPS_PIPE_DIRECTORY` is not set.
pub const DEFAULT_MPS_PIPE_DIR: &str = "/tmp/nvidia-mps";

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
    /// How NVML discovery is run.
    pub nvml_probe: ProbeCommand,
    /// Directories, inside the driver root, searched for driver binaries.
    pub binary_path: Vec<String>,
    /// The MPS pipe directory, inside the driver root.
    pub mps_pipe_dir: String,
    /// Who updates a GPU container's linker cache.
    pub linker_cache: LinkerCache,
}

/// Who updates a GPU container's `/etc/ld.so.cache`
/// (`linker-cache` in `[nvidia-container-cli]`; `docs/linker-cache.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkerCache {
    /// The hook itself, in-process (`"hook"`, the default): the image's
    /// cache plus the driver libraries, no exec.
    #[default]
    Hook,
    /// The host's static `ldconfig`, sealed and locked down, in the
    /// container's namespaces (`"ldconfig"`): for images whose own
    /// `ld.so.conf` must be honoured.
    Ldconfig,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            paths: HostPaths::default(),
            nvml_timeout: Duration::from_secs(10),
            rules: rules::Config::default(),
            debug_log: None,
            nvml_probe: ProbeCommand::default(),
            binary_path: DEFAULT_BINARY_PATH
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            mps_pipe_dir: DEFAULT_MPS_PIPE_DIR.to_owned(),
            linker_cache: LinkerCache::default(),
        }
    }
}

/// Why the configuration could not be loaded. Each renders as one line
/// naming the file (or variable), the line and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrong type.
    #[error("invalid configuration file {}{}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default(), key.as_deref().map(|k| format!(", key {k:?}")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// The key on that line, when known.
        key: Option<String>,
        /// The parser's message (one line).
        message: String,
    },
    /// A key has a value of the right type that is not acceptable.
    #[error("invalid configuration: {origin} {key:?} = {value:?}: {problem}")]
    Value {
        /// The file (and line, when known), or the environment variable.
        origin: String,
        /// The key or variable.
        key: String,
        /// The value.
        value: String,
        /// What is wrong.
        problem: ValueProblem,
    },
    /// `supported-driver-capabilities` names an unknown capability.
    #[error("invalid configuration: {origin} \"supported-driver-capabilities\" = {value:?}")]
    Capabilities {
        /// The file.
        origin: String,
        /// The value.
        value: String,
        /// The cause.
        #[source]
        source: rules::capability::CapabilityError,
    },
    /// The admin CUDA table (`cuda-table`) could not be read.
    #[error("cannot read the CUDA table {} (key \"cuda-table\" in {origin})", path.display())]
    CudaTableRead {
        /// The table file.
        path: PathBuf,
        /// The configuration file naming it.
        origin: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The admin CUDA table is malformed.
    #[error("invalid CUDA table (key \"cuda-table\" in {origin})")]
    CudaTable {
        /// The configuration file naming it.
        origin: String,
        /// The cause (names the table file and line).
        #[source]
        source: rules::TableError,
    },
}

/// What is wrong with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    /// A path must be absolute.
    #[error("the path must be absolute")]
    NotAbsolute,
    /// A path inside the driver root must be absolute and normalised.
    #[error("the path must be absolute, without '.' or '..' components")]
    NotNormalised,
    /// The timeout is zero, negative, not a number or too long.
    #[error("the timeout must be a number of seconds greater than 0 and at most 3600")]
    BadTimeout,
    /// `cuda-compat-mode = "mount"` mounts files from the image with host
    /// privileges (CVE-2024-0132); refused.
    #[error("\"mount\" mounts libraries from the image (the CVE-2024-0132 surface) and is not supported; use \"ldconfig\" or \"disabled\"")]
    CompatMount,
    /// An unknown `cuda-compat-mode`.
    #[error("expected \"ldconfig\", \"disabled\" or \"hook\"")]
    CompatMode,
    /// An unknown `linker-cache`.
    #[error("expected \"hook\" or \"ldconfig\"")]
    LinkerCache,
    /// An unknown runtime `mode`.
    #[error("expected \"jit-cdi\" (also \"auto\" or \"cdi\") or \"legacy\"")]
    RuntimeMode,
    /// A CDI kind that is not `vendor/class`.
    #[error("expected a CDI kind such as nvidia.com/gpu")]
    CdiKind,
}

// ---------------------------------------------------------------------------
// The file.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    accept_nvidia_visible_devices_envvar_when_unprivileged: Option<bool>,
    accept_nvidia_visible_devices_as_volume_mounts: Option<bool>,
    disable_require: Option<bool>,
    supported_driver_capabilities: Option<String>,
    swarm_resource: Option<String>,
    cuda_table: Option<PathBuf>,
    graphics_app_profile: Option<bool>,
    #[serde(rename = "nvidia-container-cli")]
    cli: Option<CliSection>,
    #[serde(rename = "nvidia-container-runtime")]
    runtime: Option<RuntimeSection>,
    host: Option<HostSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CliSection {
    root: Option<PathBuf>,
    ldcache: Option<String>,
    ldconfig: Option<String>,
    linker_cache: Option<String>,
    no_cgroups: Option<bool>,
    debug: Option<PathBuf>,
    no_gsp_firmware: Option<bool>,
    no_persistenced: Option<bool>,
    no_fabricmanager: Option<bool>,
    no_mps: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RuntimeSection {
    mode: Option<String>,
    modes: Option<ModesSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ModesSection {
    legacy: Option<LegacySection>,
    cdi: Option<CdiSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CdiSection {
    annotation_prefixes: Option<Vec<String>>,
    default_kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LegacySection {
    cuda_compat_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HostSection {
    dev_root: Option<PathBuf>,
    proc_root: Option<PathBuf>,
    cgroup_root: Option<PathBuf>,
    sys_root: Option<PathBuf>,
    nvml_lib: Option<PathBuf>,
    cuda_lib: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    nvml_timeout: Option<f64>,
    binary_path: Option<Vec<String>>,
    mps_pipe_dir: Option<String>,
}

/// 1-based line of byte `offset` in `text`, and the key written on it.
fn locate(text: &str, offset: usize) -> (usize, Option<String>) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or_default();
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.starts_with('#'));
    (line, key)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let (line, key) = match e.span() {
            Some(span) => {
                let (line, key) = locate(text, span.start);
                // A span on a key (unknown field) names the key itself.
                let at = text
                    .get(span.clone())
                    .map(|s| s.trim().trim_matches('"'))
                    .filter(|s| !s.is_empty() && !s.contains(['\n', '=', '[']));
                let key = match (key, at) {
                    (Some(k), _) => Some(k),
                    (None, Some(a)) => Some(a.to_owned()),
                    (None, None) => None,
                };
                (Some(line), key)
            }
            None => (None, None),
        };
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            key,
            message: e.message().replace('\n', " ").trim().to_owned(),
        }
    })
}

fn absolute(origin: &str, key: &str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(ConfigError::Value {
            origin: origin.to_owned(),
            key: key.to_owned(),
            value: path.display().to_string(),
            problem: ValueProblem::NotAbsolute,
        })
    }
}

/// A path inside the driver root: absolute and normalised.
fn inside(origin: &str, key: &str, path: String) -> Result<String, ConfigError> {
    match rules::HostPath::new(path.clone()) {
        Ok(p) => Ok(p.as_str().to_owned()),
        Err(_) => Err(ConfigError::Value {
            origin: origin.to_owned(),
            key: key.to_owned(),
            value: path,
            problem: ValueProblem::NotNormalised,
        }),
    }
}

impl HookConfig {
    /// Loads the configuration as a binary does: the file `explicit` (from
    /// `--config`), else `$NVIDIA_DOCKER_CONFIG`, else
    /// [`DEFAULT_CONFIG_FILE`] if it exists; then the `NVIDIA_DOCKER_*`
    /// overrides. Reads the **process** environment: for binaries only;
    /// library code and tests call [`HookConfig::load_with_env`].
    pub fn load(explicit: Option<&Path>) -> Result<HookConfig, ConfigError> {
        HookConfig::load_with_env(explicit, &|k| std::env::var(k).ok())
    }

    /// [`HookConfig::load`] with the environment given as a lookup function.
    /// A file named explicitly (`explicit` or `$NVIDIA_DOCKER_CONFIG`) must
    /// exist; the default file may be absent (defaults apply).
    pub fn load_with_env(
        explicit: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HookConfig, ConfigError> {
        let named = explicit
            .map(Path::to_path_buf)
            .or_else(|| env(ENV_CONFIG).filter(|v| !v.is_empty()).map(PathBuf::from));
        let (path, required) = match named {
            Some(p) => (p, true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let file = text.as_deref().map(|t| (path.as_path(), t));
        HookConfig::from_sources(file, env)
    }

    /// Builds the configuration from a file's text (and its path, for
    /// messages and for resolving nothing else) and an environment lookup.
    /// Precedence: defaults < file < environment.
    pub fn from_sources(
        file: Option<(&Path, &str)>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HookConfig, ConfigError> {
        let mut cfg = HookConfig::default();
        let mut ldcache_inside: Option<String> = None;
        if let Some((path, text)) = file {
            let f = parse_file(text, path)?;
            ldcache_inside = cfg.apply_file(f, path)?;
        }
        cfg.apply_env(env)?;
        cfg.paths.ld_cache = match ldcache_inside {
            Some(inside) => cfg.paths.driver_root.join(inside.trim_start_matches('/')),
            None => cfg.paths.driver_root.join("etc/ld.so.cache"),
        };
        Ok(cfg)
    }

    /// Applies the file; returns the `ldcache` key (a path inside the driver
    /// root), which is joined once the driver root is final.
    fn apply_file(&mut self, f: FileConfig, path: &Path) -> Result<Option<String>, ConfigError> {
        let origin = path.display().to_string();
        let o = origin.as_str();
        let r = &mut self.rules;
        if let Some(v) = f.accept_nvidia_visible_devices_envvar_when_unprivileged {
            r.accept_visible_devices_when_unprivileged = v;
        }
        if let Some(v) = f.accept_nvidia_visible_devices_as_volume_mounts {
            r.accept_devices_as_volume_mounts = v;
        }
        if let Some(v) = f.disable_require {
            r.disable_require = v;
        }
        if let Some(v) = f.supported_driver_capabilities {
            r.supported_capabilities = rules::Capabilities::parse(&v, rules::Capabilities::all())
                .map_err(|source| ConfigError::Capabilities {
                origin: origin.clone(),
                value: v.clone(),
                source,
            })?;
        }
        if let Some(v) = f.swarm_resource {
            r.swarm_resource = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = f.graphics_app_profile {
            r.graphics_app_profile = v;
        }
        if let Some(table) = f.cuda_table {
            let table = absolute(o, "cuda-table", table)?;
            let text =
                std::fs::read_to_string(&table).map_err(|source| ConfigError::CudaTableRead {
                    path: table.clone(),
                    origin: origin.clone(),
                    source,
                })?;
            r.cuda_table
                .extend_from_str(&text, &table.display().to_string())
                .map_err(|source| ConfigError::CudaTable {
                    origin: origin.clone(),
                    source,
                })?;
        }
        let runtime = f.runtime.unwrap_or_default();
        if let Some(mode) = runtime.mode {
            r.runtime_mode = match mode.as_str() {
                "jit-cdi" | "auto" | "cdi" => rules::RuntimeMode::JitCdi,
                "legacy" => rules::RuntimeMode::Legacy,
                _ => return Err(value_err(o, "mode", &mode, ValueProblem::RuntimeMode)),
            };
        }
        let modes = runtime.modes.unwrap_or_default();
        if let Some(cdi) = modes.cdi {
            if let Some(p) = cdi.annotation_prefixes {
                r.annotation_prefixes = p;
            }
            if let Some(kind) = cdi.default_kind {
                if rules::sources::split_cdi_name(&format!("{kind}=x")).is_none() {
                    return Err(value_err(o, "default-kind", &kind, ValueProblem::CdiKind));
                }
                r.cdi_kind = kind;
            }
        }
        if let Some(mode) = modes.legacy.and_then(|l| l.cuda_compat_mode) {
            r.cuda_compat = match mode.as_str() {
                "ldconfig" => rules::CudaCompatMode::Ldconfig,
                // The toolkit's `hook` mode runs a separate CDI hook; this
                // hook has none, so compat libraries are left alone.
                "disabled" | "hook" => rules::CudaCompatMode::Disabled,
                "mount" => {
                    return Err(value_err(
                        o,
                        "cuda-compat-mode",
                        &mode,
                        ValueProblem::CompatMount,
                    ))
                }
                _ => {
                    return Err(value_err(
                        o,
                        "cuda-compat-mode",
                        &mode,
                        ValueProblem::CompatMode,
                    ))
                }
            };
        }
        let mut ldcache = None;
        if let Some(cli) = f.cli {
            if let Some(root) = cli.root {
                self.paths.driver_root = absolute(o, "root", root)?;
            }
            if let Some(v) = cli.ldcache {
                ldcache = Some(inside(o, "ldcache", v)?);
            }
            if let Some(v) = cli.ldconfig {
                // The toolkit's `@` marks a host binary; this hook only ever
                // runs the host's ldconfig, so the mark is optional.
                let v = v.strip_prefix('@').unwrap_or(&v).to_owned();
                self.paths.ldconfig = absolute(o, "ldconfig", PathBuf::from(v))?;
            }
            if let Some(v) = cli.linker_cache {
                self.linker_cache = match v.as_str() {
                    "hook" => LinkerCache::Hook,
                    "ldconfig" => LinkerCache::Ldconfig,
                    _ => return Err(value_err(o, "linker-cache", &v, ValueProblem::LinkerCache)),
                };
            }
            if let Some(v) = cli.no_cgroups {
                self.rules.no_cgroups = v;
            }
            if let Some(v) = cli.debug {
                self.debug_log = Some(absolute(o, "debug", v)?);
            }
            if let Some(v) = cli.no_gsp_firmware {
                self.rules.mount_firmware = !v;
            }
            if let Some(v) = cli.no_persistenced {
                self.rules.mount_persistenced = !v;
            }
            if let Some(v) = cli.no_fabricmanager {
                self.rules.mount_fabricmanager = !v;
            }
            if let Some(v) = cli.no_mps {
                self.rules.mount_mps = !v;
            }
        }
        if let Some(h) = f.host {
            if let Some(v) = h.dev_root {
                self.paths.dev_root = absolute(o, "dev-root", v)?;
            }
            if let Some(v) = h.proc_root {
                self.paths.proc_root = absolute(o, "proc-root", v)?;
            }
            if let Some(v) = h.cgroup_root {
                self.paths.cgroup_root = absolute(o, "cgroup-root", v)?;
            }
            if let Some(v) = h.sys_root {
                self.paths.sys_root = absolute(o, "sys-root", v)?;
            }
            if let Some(v) = h.nvml_lib {
                self.paths.nvml_lib = Some(absolute(o, "nvml-lib", v)?);
            }
            if let Some(v) = h.cuda_lib {
                self.paths.cuda_lib = Some(absolute(o, "cuda-lib", v)?);
            }
            if let Some(v) = h.cache_dir {
                self.paths.cache_dir = absolute(o, "cache-dir", v)?;
            }
            if let Some(secs) = h.nvml_timeout {
                self.nvml_timeout = timeout(secs).ok_or_else(|| {
                    value_err(
                        o,
                        "nvml-timeout",
                        &secs.to_string(),
                        ValueProblem::BadTimeout,
                    )
                })?;
            }
            if let Some(dirs) = h.binary_path {
                self.binary_path = dirs
                    .into_iter()
                    .map(|d| inside(o, "binary-path", d))
                    .collect::<Result<_, _>>()?;
            }
            if let Some(v) = h.mps_pipe_dir {
                self.mps_pipe_dir = inside(o, "mps-pipe-dir", v)?;
            }
        }
        Ok(ldcache)
    }

    /// Applies the `NVIDIA_DOCKER_*` overrides (and `CUDA_MPS_PIPE_DIRECTORY`).
    /// Empty values are ignored.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |var: &str| env(var).filter(|v| !v.is_empty());
        let path = |var: &str| -> Result<Option<PathBuf>, ConfigError> {
            get(var)
                .map(|v| absolute("environment", var, PathBuf::from(v)))
                .transpose()
        };
        if let Some(p) = path(ENV_DRIVER_ROOT)? {
            self.paths.driver_root = p;
        }
        if let Some(p) = path(ENV_DEV_ROOT)? {
            self.paths.dev_root = p;
        }
        if let Some(p) = path(ENV_PROC_ROOT)? {
            self.paths.proc_root = p;
        }
        if let Some(p) = path(ENV_CGROUP_ROOT)? {
            self.paths.cgroup_root = p;
        }
        if let Some(p) = path(ENV_SYS_ROOT)? {
            self.paths.sys_root = p;
        }
        if let Some(p) = path(ENV_LDCONFIG)? {
            self.paths.ldconfig = p;
        }
        if let Some(p) = path(ENV_CACHE_DIR)? {
            self.paths.cache_dir = p;
        }
        if let Some(p) = path(ENV_NVML_LIB)? {
            self.paths.nvml_lib = Some(p);
        }
        if let Some(p) = path(ENV_CUDA_LIB)? {
            self.paths.cuda_lib = Some(p);
        }
        if let Some(v) = get(ENV_MPS_PIPE_DIRECTORY) {
            self.mps_pipe_dir = inside("environment", ENV_MPS_PIPE_DIRECTORY, v)?;
        }
        Ok(())
    }

    /// Points every root at another driver root, keeping its linker cache
    /// in step (`<root>/etc/ld.so.cache`); for `--driver-root` flags.
    pub fn set_driver_root(&mut self, root: PathBuf) {
        self.paths.ld_cache = root.join("etc/ld.so.cache");
        self.paths.driver_root = root;
    }
}

fn value_err(origin: &str, key: &str, value: &str, problem: ValueProblem) -> ConfigError {
    ConfigError::Value {
        origin: origin.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
        problem,
    }
}

/// A timeout in seconds, if acceptable.
pub fn timeout(secs: f64) -> Option<Duration> {
    if !(secs.is_finite() && secs > 0.0 && secs <= MAX_NVML_TIMEOUT.as_secs_f64()) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<HookConfig, ConfigError> {
        HookConfig::from_sources(
            Some((Path::new("/etc/nvidia-docker/config.toml"), text)),
            &env(vars),
        )
    }

    #[test]
    fn defaults_are_the_real_host() {
        let cfg = HookConfig::from_sources(None, &env(&[])).unwrap();
        assert_eq!(cfg.paths, HostPaths::default());
        assert_eq!(cfg.nvml_timeout, Duration::from_secs(10));
        assert_eq!(cfg.rules, rules::Config::default());
        assert_eq!(cfg.nvml_probe, ProbeCommand::default());
        assert_eq!(cfg.mps_pipe_dir, "/tmp/nvidia-mps");
    }

    #[test]
    fn every_key() {
        let text = r#"
accept-nvidia-visible-devices-envvar-when-unprivileged = false
accept-nvidia-visible-devices-as-volume-mounts = true
disable-require = true
supported-driver-capabilities = "compute,utility"
swarm-resource = "DOCKER_RESOURCE_GPU, OTHER"
graphics-app-profile = false

[nvidia-container-cli]
root = "/run/nvidia/driver"
ldcache = "/etc/ld.so.cache.d/cache"
ldconfig = "@/sbin/ldconfig.real"
no-cgroups = true
debug = "/var/log/hook.log"
no-gsp-firmware = true
no-persistenced = true
no-fabricmanager = true
no-mps = true

[nvidia-container-runtime]
mode = "legacy"

[nvidia-container-runtime.modes.legacy]
cuda-compat-mode = "disabled"

[nvidia-container-runtime.modes.cdi]
annotation-prefixes = ["cdi.k8s.io/", "nvidia.cdi.k8s.io/"]
default-kind = "example.com/gpu"

[host]
dev-root = "/sim/dev"
proc-root = "/sim/proc"
cgroup-root = "/sim/cgroup"
nvml-lib = "/sim/libnvidia-ml.so.1"
cuda-lib = "/sim/libcuda.so.1"
cache-dir = "/sim/cache"
nvml-timeout = 2.5
binary-path = ["/opt/bin"]
mps-pipe-dir = "/var/mps"
"#;
        let cfg = load(text, &[]).unwrap();
        let r = &cfg.rules;
        assert!(!r.accept_visible_devices_when_unprivileged);
        assert!(r.accept_devices_as_volume_mounts);
        assert!(r.disable_require && r.no_cgroups);
        assert_eq!(r.supported_capabilities.to_string(), "compute,utility");
        assert_eq!(r.swarm_resource, ["DOCKER_RESOURCE_GPU", "OTHER"]);
        assert!(!r.graphics_app_profile && !r.mount_firmware && !r.mount_mps);
        assert!(!r.mount_persistenced && !r.mount_fabricmanager);
        assert_eq!(r.cuda_compat, rules::CudaCompatMode::Disabled);
        assert_eq!(r.runtime_mode, rules::RuntimeMode::Legacy);
        assert_eq!(r.annotation_prefixes, ["cdi.k8s.io/", "nvidia.cdi.k8s.io/"]);
        assert_eq!(r.cdi_kind, "example.com/gpu");
        let p = &cfg.paths;
        assert_eq!(p.driver_root, Path::new("/run/nvidia/driver"));
        assert_eq!(
            p.ld_cache,
            Path::new("/run/nvidia/driver/etc/ld.so.cache.d/cache")
        );
        assert_eq!(p.ldconfig, Path::new("/sbin/ldconfig.real"));
        assert_eq!(p.dev_root, Path::new("/sim/dev"));
        assert_eq!(p.proc_root, Path::new("/sim/proc"));
        assert_eq!(p.cgroup_root, Path::new("/sim/cgroup"));
        assert_eq!(
            p.nvml_lib.as_deref(),
            Some(Path::new("/sim/libnvidia-ml.so.1"))
        );
        assert_eq!(p.cuda_lib.as_deref(), Some(Path::new("/sim/libcuda.so.1")));
        assert_eq!(p.cache_dir, Path::new("/sim/cache"));
        assert_eq!(cfg.nvml_timeout, Duration::from_millis(2500));
        assert_eq!(
            cfg.debug_log.as_deref(),
            Some(Path::new("/var/log/hook.log"))
        );
        assert_eq!(cfg.binary_path, ["/opt/bin"]);
        assert_eq!(cfg.mps_pipe_dir, "/var/mps");
    }

    #[test]
    fn env_overrides_file() {
        let text = "[nvidia-container-cli]\nroot = \"/a\"\n[host]\ncache-dir = \"/c\"\n";
        let cfg = load(
            text,
            &[
                (ENV_DRIVER_ROOT, "/b"),
                (ENV_DEV_ROOT, "/b/dev"),
                (ENV_PROC_ROOT, "/b/proc"),
                (ENV_CGROUP_ROOT, "/b/cg"),
                (ENV_LDCONFIG, "/b/ldconfig"),
                (ENV_NVML_LIB, "/b/nvml.so"),
                (ENV_CUDA_LIB, "/b/cuda.so"),
                (ENV_CACHE_DIR, ""),
                (ENV_MPS_PIPE_DIRECTORY, "/mps"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.paths.driver_root, Path::new("/b"));
        assert_eq!(cfg.paths.ld_cache, Path::new("/b/etc/ld.so.cache"));
        assert_eq!(cfg.paths.dev_root, Path::new("/b/dev"));
        assert_eq!(cfg.paths.proc_root, Path::new("/b/proc"));
        assert_eq!(cfg.paths.cgroup_root, Path::new("/b/cg"));
        assert_eq!(cfg.paths.ldconfig, Path::new("/b/ldconfig"));
        assert_eq!(cfg.paths.nvml_lib.as_deref(), Some(Path::new("/b/nvml.so")));
        assert_eq!(cfg.paths.cuda_lib.as_deref(), Some(Path::new("/b/cuda.so")));
        assert_eq!(
            cfg.paths.cache_dir,
            Path::new("/c"),
            "empty values are ignored"
        );
        assert_eq!(cfg.mps_pipe_dir, "/mps");
        let err = load("", &[(ENV_DEV_ROOT, "dev")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: environment \"NVIDIA_DOCKER_DEV_ROOT\" = \"dev\": the path must be absolute"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = load("disable-require = true\ndrive-root = \"/x\"\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid configuration file /etc/nvidia-docker/config.toml, line 2, key \"drive-root\": unknown field `drive-root`"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        let err = load("\n[host]\nnvml-timeout = \"ten\"\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(", line 3, key \"nvml-timeout\": "), "{msg}");
        let err = load("[host]\nnvml-timeout = 0\n", &[]).unwrap_err();
        assert!(err.to_string().contains("greater than 0"), "{err}");
        let err = load("[host]\ncache-dir = \"run\"\n", &[]).unwrap_err();
        assert!(err
            .to_string()
            .contains("\"cache-dir\" = \"run\": the path must be absolute"));
        let err = load(
            "[nvidia-container-runtime.modes.legacy]\ncuda-compat-mode = \"mount\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("CVE-2024-0132"));
        let err = load("supported-driver-capabilities = \"compute,gpu\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("supported-driver-capabilities"));
        let err = load(
            "[nvidia-container-cli]\nldcache = \"etc/ld.so.cache\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("without '.' or '..'"));
        let err = load("[host\n", &[]).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn example_file_documents_the_defaults() {
        let text = include_str!("../config.example.toml");
        let path = Path::new("config.example.toml");
        // As shipped (every key commented out): the defaults.
        let shipped = HookConfig::from_sources(Some((path, text)), &env(&[])).unwrap();
        // Every key uncommented, except those without a default value.
        let examples_only = [
            "swarm-resource",
            "cuda-table",
            "debug",
            "nvml-lib",
            "cuda-lib",
        ];
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if rest.starts_with(|c: char| c.is_ascii_lowercase())
                        && !examples_only
                            .iter()
                            .any(|k| rest.starts_with(&format!("{k} "))) =>
                {
                    format!("{rest}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        assert!(uncommented.contains("\nnvml-timeout = 10\n"));
        let explicit = HookConfig::from_sources(Some((path, &uncommented)), &env(&[])).unwrap();
        let default = HookConfig::default();
        for cfg in [&shipped, &explicit] {
            assert_eq!(cfg.paths, default.paths);
            assert_eq!(cfg.rules, default.rules);
            assert_eq!(cfg.nvml_timeout, default.nvml_timeout);
            assert_eq!(cfg.binary_path, default.binary_path);
            assert_eq!(cfg.mps_pipe_dir, default.mps_pipe_dir);
            assert_eq!(cfg.debug_log, None);
        }
    }

    #[test]
    fn explicit_file_must_exist_default_may_not() {
        let missing = Path::new("/nonexistent/nvidia-docker.toml");
        let err = HookConfig::load_with_env(Some(missing), &env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read configuration file /nonexistent/nvidia-docker.toml"
        );
        let err = HookConfig::load_with_env(None, &env(&[(ENV_CONFIG, "/nonexistent/x.toml")]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn cuda_table_extends_the_builtin() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("cuda-drivers.txt");
        std::fs::write(&table, "this is not a table\n").unwrap();
        let text = format!("cuda-table = {:?}\n", table.display().to_string());
        let err = load(&text, &[]).unwrap_err();
        assert!(err.to_string().contains("cuda-table"), "{err}");
        std::fs::write(&table, "toolkit 99.1  999.10.01  GA\n").unwrap();
        let cfg = load(&text, &[]).unwrap();
        let v = |s| rules::Version::parse(s).unwrap();
        assert_eq!(
            cfg.rules.cuda_table.min_driver(&v("99.1")),
            Some(&v("999.10.01"))
        );
        let missing = format!(
            "cuda-table = {:?}\n",
            dir.path().join("none").display().to_string()
        );
        assert!(matches!(
            load(&missing, &[]).unwrap_err(),
            ConfigError::CudaTableRead { .. }
        ));
    }
}
