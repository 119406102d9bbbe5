//! Policy knobs: what an administrator configures (the toolkit's
//! `config.toml` keys that change decisions). Reading the file is the
//! caller's business; the hook maps it onto this struct.

use crate::capability::Capabilities;
use crate::cuda_table::CudaTable;

/// How an image's CUDA forward-compatibility libraries are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CudaCompatMode {
    /// Give `/usr/local/cuda/compat` to the container's linker cache when
    /// the compat library should be used (the toolkit's default). Nothing
    /// is mounted from the image.
    #[default]
    Ldconfig,
    /// Ignore compat libraries.
    Disabled,
}

/// How the runc wrapper reads a request (`[nvidia-container-runtime] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeMode {
    /// CDI names of [`Config::cdi_kind`] in `cdi.k8s.io/` annotations and in
    /// `NVIDIA_VISIBLE_DEVICES` are answered from the live inventory at
    /// create time (the toolkit's `jit-cdi`, its default since 1.18).
    #[default]
    JitCdi,
    /// Only the variables and volume mounts, as the prestart hook reads them.
    Legacy,
}

/// The policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `supported-driver-capabilities`: what `all` means and what may be asked for.
    pub supported_capabilities: Capabilities,
    /// `accept-nvidia-visible-devices-envvar-when-unprivileged` (default
    /// true). When false, an unprivileged container's device request (the
    /// variable, a legacy image's or v1 label's implicit `all`) is ignored
    /// and the container gets no GPU.
    pub accept_visible_devices_when_unprivileged: bool,
    /// `accept-nvidia-visible-devices-as-volume-mounts` (default false): read
    /// the device plugin's `/var/run/nvidia-container-devices/<id>` mounts
    /// ([`crate::sources`]); they win over the variable.
    pub accept_devices_as_volume_mounts: bool,
    /// `[nvidia-container-runtime.modes.cdi] annotation-prefixes`: the keys
    /// of CDI annotations (default `cdi.k8s.io/`), read by the runc wrapper.
    pub annotation_prefixes: Vec<String>,
    /// `default-kind`: the CDI kind answered from the inventory
    /// (`nvidia.com/gpu`).
    pub cdi_kind: String,
    /// `[nvidia-container-runtime] mode`.
    pub runtime_mode: RuntimeMode,
    /// `disable-require`: skip every requirement check.
    pub disable_require: bool,
    /// `swarm-resource`: variables read before `NVIDIA_VISIBLE_DEVICES`
    /// (e.g. `DOCKER_RESOURCE_GPU`); the first one set wins.
    pub swarm_resource: Vec<String>,
    /// `no-cgroups`: plan no device cgroup rules (rootless).
    pub no_cgroups: bool,
    /// Mount GSP firmware (`no-gsp-firmware` turns it off).
    pub mount_firmware: bool,
    /// Mount the `nvidia-persistenced` socket (utility).
    pub mount_persistenced: bool,
    /// Mount the `nvidia-fabricmanager` socket (utility).
    pub mount_fabricmanager: bool,
    /// Mount the MPS pipe directory (compute).
    pub mount_mps: bool,
    /// Write the graphics application profile that limits EGL to the
    /// selected GPUs (graphics or display).
    pub graphics_app_profile: bool,
    /// Forward-compatibility handling.
    pub cuda_compat: CudaCompatMode,
    /// The CUDA to driver table (built-in, possibly extended by an admin file).
    pub cuda_table: CudaTable,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            supported_capabilities: Capabilities::all(),
            accept_visible_devices_when_unprivileged: true,
            accept_devices_as_volume_mounts: false,
            runtime_mode: RuntimeMode::default(),
            annotation_prefixes: vec![crate::sources::DEFAULT_ANNOTATION_PREFIX.to_owned()],
            cdi_kind: crate::sources::DEFAULT_CDI_KIND.to_owned(),
            disable_require: false,
            swarm_resource: Vec::new(),
            no_cgroups: false,
            mount_firmware: true,
            mount_persistenced: true,
            mount_fabricmanager: true,
            mount_mps: true,
            graphics_app_profile: true,
            cuda_compat: CudaCompatMode::default(),
            cuda_table: CudaTable::builtin(),
        }
    }
}
