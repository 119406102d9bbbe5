//! A CDI spec (container-device-interface `SPEC.md`) generated from the
//! inventory with `rules::plan`, so that Podman, CRI-O, containerd or
//! Docker 25+ give a container exactly what the hook would.
//!
//! - **Devices**, in inventory order: each GPU by index (`0`) and by UUID
//!   (`GPU-...`), each MIG device by `<gpu>:<mig>` and by its `MIG-...`
//!   UUID, then `all`. A device's edits are the device nodes its plan has
//!   beyond the common ones (`/dev/nvidia<minor>`, MIG capability nodes).
//! - **Common edits** (applied when any device of the spec is requested),
//!   from the plan of `all` with every supported capability: the control
//!   nodes, every driver bind mount (`rbind,rprivate` and the plan's
//!   `ro,nosuid,nodev` / `nosuid,nodev,noexec`), the plan's environment plus
//!   `NVIDIA_VISIBLE_DEVICES=void`, and one `createContainer` hook: the
//!   hook's `create-container` mode with the plan's symlinks, linker-cache
//!   directories, `/proc/driver/nvidia` masking and the CUDA
//!   forward-compatibility step (`--cuda-compat-host-driver`: the image's
//!   compat library is looked at when the container is created, as the
//!   hook and the runc wrapper do), with an explicit `env` and a timeout.
//! - Device nodes carry `path`, `hostPath` (under the configured dev root),
//!   `fileMode` and `permissions: "rw"` (the runtime adds exactly that allow
//!   rule), but no `type`, `major` or `minor`: the runtime reads those from
//!   the host node when it creates the container (the CDI library's
//!   `fillMissingInfo`), so a spec stays true when a dynamic major changes
//!   (`nvidia-uvm`'s is given by the kernel at module load, and moves
//!   across reboots and driver reloads).
//! - A host without GPUs (a node before its GPUs are visible, a CPU node in
//!   a mixed pool) still gets a valid spec: CDI refuses a device with empty
//!   edits and a spec without devices, so `all` carries the driver edits
//!   itself (there is nothing device-specific to tell apart from them).
//!   A host with neither GPUs nor driver files has nothing to serve and is
//!   refused with one line.
//!
//! Decisions:
//! - `NVIDIA_VISIBLE_DEVICES=void` (as NVIDIA's generator does): CUDA
//!   images set `NVIDIA_VISIBLE_DEVICES=all`, and a prestart hook
//!   registered as well (hooks.d, `--gpus`) would then add every GPU on top
//!   of the CDI selection; `void` makes it a no-op.
//! - `/proc/driver/nvidia` is masked with every GPU kept: hooks of separate
//!   devices cannot be merged into one selection, so the mask only rewrites
//!   `params` (`ModifyDeviceFiles: 0`) and makes the directory read-only.
//!   For the same reason the graphics application profile is left out.
//! - Library destinations follow one rootfs flavour (default: the driver
//!   root's own, like NVIDIA's "same path as on the host"); the hook's
//!   linker-cache step lists those directories and every flavour's system
//!   library directories ([`system_lib_dirs`]), so any image finds the
//!   driver and keeps its own libraries.
//! - **Devices beyond the GPUs** get specs of their own kinds, as
//!   `nvidia-ctk cdi generate --mode imex|gds|mofed|gdrcopy|nvswitch` names
//!   them ([`Mode`], `docs/toolkit.md` §4): `nvidia.com/imex-channel` with
//!   one device per channel the host has, named by its number (`0`), and
//!   `nvidia.com/gds`, `/mofed`, `/gdrcopy`, `/nvswitch` with one device
//!   `all` each, only for the families the host has. Their edits are what
//!   the plan adds when a container asks for them (`NVIDIA_IMEX_CHANNELS=<n>`,
//!   `NVIDIA_GDS=enabled`, ...): the same rules and inventory values as the
//!   hook and the runc wrapper, so NVSwitch brings the fabric manager's
//!   socket here too. Their common edits are `NVIDIA_VISIBLE_DEVICES=void`
//!   only.
//! - `cdiVersion` is the minimum its fields need ([`min_version`]):
//!   0.5.0 with index names (a name may start with a digit since 0.5.0).
//! - Bytes are deterministic: the same inventory gives the same spec.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rules::extra_devices::Gated;
use rules::{DeviceNode, Env, Inventory, MountOp, NodeRole, Plan, Refusal, Request, RootfsFlavor};
use serde::Serialize;

use hook::runtime::fixups::Fixups;

/// Where a static spec goes.
pub const STATIC_DIR: &str = "/etc/cdi";
/// Where a generated-at-boot spec goes.
pub const DYNAMIC_DIR: &str = "/var/run/cdi";

/// The spec could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    /// The plan for one device name was refused (a host the rules cannot
    /// serve, e.g. an inconsistent inventory).
    #[error("cannot plan CDI device {name:?}")]
    Plan {
        /// The device name.
        name: String,
        /// The refusal.
        #[source]
        source: Box<Refusal>,
    },
    /// Neither GPUs nor driver files: no device could carry an edit.
    #[error("no NVIDIA GPU and no driver files on this host: a CDI spec needs at least one device with edits; install the driver (or set NVIDIA_DOCKER_DRIVER_ROOT) and run setup cdi again")]
    Empty,
    /// A spec of devices beyond the GPUs was asked for and the host has
    /// none of them.
    #[error("this host has no {what}, so there is no {kind} CDI spec to generate: {remedy}, or leave out --mode {mode}")]
    Absent {
        /// The kind that would have been generated.
        kind: String,
        /// The `--mode` value.
        mode: &'static str,
        /// The devices, as a person names them.
        what: String,
        /// What makes the host have them.
        remedy: String,
    },
    /// `vendor/class` is not a valid CDI kind.
    #[error("invalid CDI kind {kind:?}: the vendor is a DNS name (letters, digits, '-', '.'), the class letters, digits, '-' or '_', each starting with a letter")]
    Kind {
        /// `vendor/class`.
        kind: String,
    },
}

/// Which spec to generate: the GPUs, or one kind of device beyond them
/// (the `nvidia-ctk cdi generate --mode` of the same name, module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// GPUs and MIG devices, with the driver (`nvidia.com/gpu`).
    Gpu,
    /// IMEX channels (`nvidia.com/imex-channel`).
    #[value(name = "imex-channel", alias = "imex")]
    ImexChannel,
    /// GPUDirect Storage (`nvidia.com/gds`).
    Gds,
    /// GPUDirect RDMA (`nvidia.com/mofed`).
    Mofed,
    /// GDRCopy (`nvidia.com/gdrcopy`).
    Gdrcopy,
    /// NVSwitch, NVLink and the fabric manager (`nvidia.com/nvswitch`).
    Nvswitch,
}

impl Mode {
    /// Every mode, GPUs first.
    pub const ALL: [Mode; 6] = [
        Mode::Gpu,
        Mode::ImexChannel,
        Mode::Gds,
        Mode::Mofed,
        Mode::Gdrcopy,
        Mode::Nvswitch,
    ];

    /// The CDI class the toolkit gives it.
    pub fn class(self) -> &'static str {
        match self {
            Mode::Gpu => "gpu",
            Mode::ImexChannel => "imex-channel",
            Mode::Gds => "gds",
            Mode::Mofed => "mofed",
            Mode::Gdrcopy => "gdrcopy",
            Mode::Nvswitch => "nvswitch",
        }
    }

    /// The gated family it serves.
    pub fn gated(self) -> Option<Gated> {
        match self {
            Mode::Gds => Some(Gated::Gds),
            Mode::Mofed => Some(Gated::Mofed),
            Mode::Gdrcopy => Some(Gated::Gdrcopy),
            Mode::Nvswitch => Some(Gated::Nvswitch),
            Mode::Gpu | Mode::ImexChannel => None,
        }
    }

    /// True when `inv` has devices of this mode (a GPU spec always has
    /// something to say, or is refused by [`generate`] itself).
    pub fn present(self, inv: &Inventory) -> bool {
        let extra = &inv.extra_devices;
        match (self, self.gated()) {
            (Mode::Gpu, _) => true,
            (Mode::ImexChannel, _) => extra.imex_major.is_some() && !extra.imex_channels.is_empty(),
            (_, Some(g)) => extra
                .nodes
                .iter()
                .any(|n| Gated::of_path(&n.path) == Some(g)),
            (_, None) => false,
        }
    }
}

/// How to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdiOptions {
    /// `nvidia.com`.
    pub vendor: String,
    /// `gpu`.
    pub class: String,
    /// The hook binary.
    pub hook_path: PathBuf,
    /// The hook's environment (`PATH` and the host roots).
    pub hook_env: Vec<String>,
    /// Where libraries go in the container.
    pub flavor: RootfsFlavor,
    /// Where the host's device nodes are (`/dev`).
    pub dev_root: PathBuf,
}

/// A CDI spec (the fields this generator uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The minimum version its fields need.
    pub cdi_version: String,
    /// `vendor/class`.
    pub kind: String,
    /// The devices.
    pub devices: Vec<Device>,
    /// Edits for any device of the spec.
    pub container_edits: ContainerEdits,
}

/// A named device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// `0`, `GPU-...`, `all`.
    pub name: String,
    /// Its own edits.
    pub container_edits: ContainerEdits,
}

/// `containerEdits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEdits {
    /// `K=V`, appended to the container's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Device nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<CdiDeviceNode>,
    /// Mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<CdiMount>,
    /// Hooks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<CdiHook>,
}

/// `deviceNodes[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiDeviceNode {
    /// In the container.
    pub path: String,
    /// On the host; the runtime stats it for what is not written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// `c`; `None`: read by the runtime from `hostPath`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Major; `None`: read by the runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    /// Minor; `None`: read by the runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<u32>,
    /// Mode bits.
    pub file_mode: u32,
    /// `rw`.
    pub permissions: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// `mounts[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiMount {
    /// On the host.
    pub host_path: String,
    /// In the container.
    pub container_path: String,
    /// `bind`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Mount options.
    pub options: Vec<String>,
}

/// `hooks[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CdiHook {
    /// `createContainer`.
    pub hook_name: String,
    /// The binary.
    pub path: String,
    /// argv.
    pub args: Vec<String>,
    /// The whole environment.
    pub env: Vec<String>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
}

/// `vendor/class` checked against CDI's name rules.
fn kind(vendor: &str, class: &str) -> Result<String, CdiError> {
    let kind = format!("{vendor}/{class}");
    let starts_alpha = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let ends_alnum = |s: &str| s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    let vendor_ok = starts_alpha(vendor)
        && ends_alnum(vendor)
        && vendor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let class_ok = starts_alpha(class)
        && ends_alnum(class)
        && class
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if vendor_ok && class_ok {
        Ok(kind)
    } else {
        Err(CdiError::Kind { kind })
    }
}

fn request(name: &str, flavor: RootfsFlavor, cfg: &rules::Config) -> Result<Request, Refusal> {
    let env = Env::from_pairs([
        ("NVIDIA_VISIBLE_DEVICES", name),
        ("NVIDIA_DRIVER_CAPABILITIES", "all"),
    ]);
    Request::from_container(&env, &BTreeMap::new(), true, flavor, cfg)
}

fn plan_for(
    inv: &Inventory,
    name: &str,
    opts: &CdiOptions,
    cfg: &rules::Config,
) -> Result<Plan, CdiError> {
    let plan_err = |source| CdiError::Plan {
        name: name.to_owned(),
        source: Box::new(source),
    };
    let req = request(name, opts.flavor, cfg).map_err(plan_err)?;
    rules::plan(inv, &req, cfg).map_err(plan_err)
}

fn is_device_specific(n: &DeviceNode) -> bool {
    matches!(
        n.role,
        NodeRole::Gpu { .. } | NodeRole::MigCap { .. } | NodeRole::Drm { .. }
    )
}

/// A node as the runtime re-checks it: path and host path only; type and
/// numbers are read from the host node at container creation (module docs).
fn node(n: &DeviceNode, dev_root: &Path) -> CdiDeviceNode {
    let rest = n
        .path
        .as_str()
        .strip_prefix("/dev/")
        .unwrap_or(n.path.as_str());
    CdiDeviceNode {
        path: n.path.to_string(),
        host_path: Some(dev_root.join(rest).to_string_lossy().into_owned()),
        kind: None,
        major: None,
        minor: None,
        file_mode: n.mode,
        permissions: "rw".to_owned(),
        uid: 0,
        gid: 0,
    }
}

fn mount(m: &MountOp) -> CdiMount {
    let mut options = vec!["rbind".to_owned(), "rprivate".to_owned()];
    options.extend(m.flags.options().into_iter().map(str::to_owned));
    CdiMount {
        host_path: m.source.to_string(),
        container_path: m.destination.to_string(),
        kind: Some("bind".to_owned()),
        options,
    }
}

/// The 64-bit system library directories of every rootfs flavour. A CDI
/// spec does not know its image, and the host's `ldconfig` trusts only its
/// own distribution's directories (Debian's does not read `/usr/lib64`), so
/// the linker-cache step lists them all; the hook keeps those that exist in
/// the image.
pub fn system_lib_dirs(machine: rules::Machine) -> Vec<String> {
    let multiarch =
        rules::files::library_dir(RootfsFlavor::DebianLike, machine, rules::ElfClass::Elf64)
            .unwrap_or("/usr/lib/x86_64-linux-gnu");
    vec![
        multiarch.trim_start_matches("/usr").to_owned(),
        multiarch.to_owned(),
        "/lib64".to_owned(),
        "/usr/lib64".to_owned(),
    ]
}

/// The device names of `inv`, in spec order.
pub fn device_names(inv: &Inventory) -> Vec<String> {
    let mut names = Vec::new();
    for g in &inv.gpus {
        names.push(g.index.to_string());
        names.push(g.uuid.clone());
        for m in &g.mig {
            names.push(format!("{}:{}", g.index, m.index));
            names.push(m.uuid.clone());
        }
    }
    names.push("all".to_owned());
    names
}

/// Generates the spec (module docs).
pub fn generate(inv: &Inventory, cfg: &rules::Config, opts: &CdiOptions) -> Result<Spec, CdiError> {
    let kind = kind(&opts.vendor, &opts.class)?;
    let all = plan_for(inv, "all", opts, cfg)?;
    let mut env: Vec<String> = all.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push("NVIDIA_VISIBLE_DEVICES=void".to_owned());
    let mut common = ContainerEdits {
        env,
        device_nodes: all
            .device_nodes
            .iter()
            .filter(|n| !is_device_specific(n))
            .map(|n| node(n, &opts.dev_root))
            .collect(),
        mounts: all.mounts.iter().map(mount).collect(),
        hooks: Vec::new(),
    };
    let mut ldconfig_dirs = all.ldconfig_dirs.clone();
    for dir in system_lib_dirs(inv.machine) {
        if let Ok(dir) = rules::ContainerPath::new(dir) {
            if !ldconfig_dirs.contains(&dir) {
                ldconfig_dirs.push(dir);
            }
        }
    }
    let fixups = Fixups {
        symlinks: all.symlinks.clone(),
        ldconfig_dirs,
        // The system directories above hold the image's own files: only
        // `ldconfig` scans them (`hook::ldcache_write::in_process_entries`).
        ld_cache: Vec::new(),
        proc_mask: all.proc_mask.clone(),
        app_profile: None,
        // The image is not known yet: the hook looks for its compat
        // library at create time and decides against this driver.
        cuda_compat_host_driver: (cfg.cuda_compat == rules::CudaCompatMode::Ldconfig
            && all.capabilities.contains(rules::Capability::Compute))
        .then(|| inv.driver_version.clone()),
        dev_links: Vec::new(),
        // The spec's own `mounts` carry them, as CDI wants.
        mounts: Vec::new(),
        enter: false,
        debug: false,
    };
    if let Some(entry) = hook::runtime::hook_entry(&fixups, &opts.hook_path, &opts.hook_env) {
        common.hooks.push(CdiHook {
            hook_name: "createContainer".to_owned(),
            path: entry.path,
            args: entry.args,
            env: entry.env,
            timeout: Some(entry.timeout),
        });
    }
    let mut devices = Vec::new();
    for name in device_names(inv) {
        let plan = if name == "all" {
            all.clone()
        } else {
            plan_for(inv, &name, opts, cfg)?
        };
        // The device's own `/dev/dri/by-path` links, made by its own hook.
        let links = Fixups {
            dev_links: plan.dev_links.clone(),
            ..Fixups::default()
        };
        let hooks = hook::runtime::hook_entry(&links, &opts.hook_path, &opts.hook_env)
            .map(|entry| CdiHook {
                hook_name: "createContainer".to_owned(),
                path: entry.path,
                args: entry.args,
                env: entry.env,
                timeout: Some(entry.timeout),
            })
            .into_iter()
            .collect();
        devices.push(Device {
            name,
            container_edits: ContainerEdits {
                device_nodes: plan
                    .device_nodes
                    .iter()
                    .filter(|n| is_device_specific(n))
                    .map(|n| node(n, &opts.dev_root))
                    .collect(),
                hooks,
                ..ContainerEdits::default()
            },
        });
    }
    if inv.gpus.is_empty() {
        // Only `all`, with no node of its own: it carries the driver edits.
        if common == ContainerEdits::default() {
            return Err(CdiError::Empty);
        }
        for d in &mut devices {
            d.container_edits = std::mem::take(&mut common);
        }
    }
    let mut spec = Spec {
        cdi_version: String::new(),
        kind,
        devices,
        container_edits: common,
    };
    spec.cdi_version = min_version(&spec).to_owned();
    Ok(spec)
}

/// Generates the spec of `mode` (module docs); `opts.class` names its
/// class.
pub fn generate_mode(
    inv: &Inventory,
    cfg: &rules::Config,
    opts: &CdiOptions,
    mode: Mode,
) -> Result<Spec, CdiError> {
    if mode == Mode::Gpu {
        return generate(inv, cfg, opts);
    }
    let kind = kind(&opts.vendor, &opts.class)?;
    if !mode.present(inv) {
        let (what, remedy) = match mode.gated() {
            Some(g) => (
                g.devices().to_owned(),
                format!("load the {} module on the host", g.module()),
            ),
            None => (
                format!(
                    "IMEX channel ({}/channel<N>)",
                    rules::extra_devices::IMEX_DIR
                ),
                "load the NVIDIA driver with IMEX support (NVreg_CreateImexChannel0=1)".to_owned(),
            ),
        };
        return Err(CdiError::Absent {
            kind,
            mode: mode.class(),
            what,
            remedy,
        });
    }
    // What asking adds to a driver-only container: the same plan the hook
    // and the runc wrapper apply for the same variable.
    let base = extra_plan(inv, cfg, opts, "none", None)?;
    let mut devices = Vec::new();
    match mode.gated() {
        Some(g) => {
            let plan = extra_plan(inv, cfg, opts, "all", Some((g.variable(), "enabled")))?;
            devices.push(Device {
                name: "all".to_owned(),
                container_edits: added_edits(&base, &plan, &opts.dev_root),
            });
        }
        None => {
            let mut channels = inv.extra_devices.imex_channels.clone();
            channels.sort_unstable();
            channels.dedup();
            for c in channels {
                let name = c.to_string();
                let plan = extra_plan(
                    inv,
                    cfg,
                    opts,
                    &name,
                    Some((rules::extra_devices::ENV_IMEX_CHANNELS, &name)),
                )?;
                devices.push(Device {
                    name,
                    container_edits: added_edits(&base, &plan, &opts.dev_root),
                });
            }
        }
    }
    let mut spec = Spec {
        cdi_version: String::new(),
        kind,
        devices,
        container_edits: ContainerEdits {
            env: vec!["NVIDIA_VISIBLE_DEVICES=void".to_owned()],
            ..ContainerEdits::default()
        },
    };
    spec.cdi_version = min_version(&spec).to_owned();
    Ok(spec)
}

/// Every spec the host has devices for, GPUs first, each with its
/// mode's class (`opts.class` is for the GPU spec).
pub fn generate_all(
    inv: &Inventory,
    cfg: &rules::Config,
    opts: &CdiOptions,
) -> Result<Vec<(Mode, Spec)>, CdiError> {
    let mut specs = Vec::new();
    for mode in Mode::ALL.into_iter().filter(|m| m.present(inv)) {
        let opts = if mode == Mode::Gpu {
            opts.clone()
        } else {
            CdiOptions {
                class: mode.class().to_owned(),
                ..opts.clone()
            }
        };
        specs.push((mode, generate_mode(inv, cfg, &opts, mode)?));
    }
    Ok(specs)
}

/// The plan of a driver-only container (`compute`) asking for `extra`;
/// `name` is the CDI device it is for.
fn extra_plan(
    inv: &Inventory,
    cfg: &rules::Config,
    opts: &CdiOptions,
    name: &str,
    extra: Option<(&str, &str)>,
) -> Result<Plan, CdiError> {
    let plan_err = |source| CdiError::Plan {
        name: name.to_owned(),
        source: Box::new(source),
    };
    let env = Env::from_pairs(
        [
            ("NVIDIA_VISIBLE_DEVICES", "none"),
            ("NVIDIA_DRIVER_CAPABILITIES", "compute"),
        ]
        .into_iter()
        .chain(extra),
    );
    let req = Request::from_container(&env, &BTreeMap::new(), true, opts.flavor, cfg)
        .map_err(plan_err)?;
    rules::plan(inv, &req, cfg).map_err(plan_err)
}

/// The device nodes and mounts `plan` has beyond `base`, in plan order.
fn added_edits(base: &Plan, plan: &Plan, dev_root: &Path) -> ContainerEdits {
    ContainerEdits {
        device_nodes: plan
            .device_nodes
            .iter()
            .filter(|n| !base.device_nodes.iter().any(|b| b.path == n.path))
            .map(|n| node(n, dev_root))
            .collect(),
        mounts: plan
            .mounts
            .iter()
            .filter(|m| !base.mounts.contains(m))
            .map(mount)
            .collect(),
        ..ContainerEdits::default()
    }
}

/// The lowest `cdiVersion` whose loader accepts `spec` (the CDI library's
/// `MinimumRequiredVersion` rules for the fields this generator uses):
/// 0.3.0 base; 0.4.0 for a mount `type`; 0.5.0 for a `hostPath` or a
/// device name not starting with a letter; 0.6.0 for a `.` in the class.
pub fn min_version(spec: &Spec) -> &'static str {
    let edits = spec
        .devices
        .iter()
        .map(|d| &d.container_edits)
        .chain(std::iter::once(&spec.container_edits));
    let class_dot = spec
        .kind
        .split_once('/')
        .is_some_and(|(_, c)| c.contains('.'));
    let mut v050 = spec
        .devices
        .iter()
        .any(|d| !d.name.starts_with(|c: char| c.is_ascii_alphabetic()));
    let mut v040 = false;
    for e in edits {
        v050 |= e.device_nodes.iter().any(|n| n.host_path.is_some());
        v040 |= e.mounts.iter().any(|m| m.kind.is_some());
    }
    if class_dot {
        "0.6.0"
    } else if v050 {
        "0.5.0"
    } else if v040 {
        "0.4.0"
    } else {
        "0.3.0"
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// `spec` as text.
pub fn render(spec: &Spec, format: Format) -> String {
    // Through an ordered document: the struct's field order is kept.
    let text = serde_json::to_string(spec).unwrap_or_default();
    let doc: super::doc::Doc = serde_json::from_str(&text).unwrap_or(super::doc::Doc::Null);
    match format {
        Format::Json => doc.to_json_pretty(),
        Format::Yaml => doc.to_yaml(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind("nvidia.com", "gpu").unwrap(), "nvidia.com/gpu");
        assert!(kind("e2e-1-2.example.com", "gpu").is_ok());
        for (v, c) in [
            ("", "gpu"),
            ("-x.com", "gpu"),
            ("x.com", "g/pu"),
            ("x.com", ""),
        ] {
            assert!(kind(v, c).is_err(), "{v}/{c}");
        }
    }
}

#[cfg(test)]
mod extra_tests {
    use super::*;
    use rules::extra_devices::{ExtraDevices, HostNode};
    use rules::{DriverFile, ElfClass, FileKind, HostPath, Version};

    fn host_node(path: &str, major: u32, minor: u32) -> HostNode {
        HostNode {
            path: path.to_owned(),
            major,
            minor,
        }
    }

    /// A driver-only host (no GPU) with two IMEX channels (listed out of
    /// order), GDS and NVSwitch nodes, and the fabric manager's socket.
    fn inventory() -> Inventory {
        let mut inv = Inventory::new(Version::parse("535.104.05").unwrap());
        inv.files.push(DriverFile {
            path: HostPath::new("/run/nvidia-fabricmanager/socket").unwrap(),
            kind: FileKind::IpcSocket,
            class: ElfClass::Elf64,
            soname: None,
        });
        inv.extra_devices = ExtraDevices {
            imex_major: Some(238),
            imex_channels: vec![1, 0],
            nodes: vec![
                host_node("/dev/nvidia-fs1", 239, 1),
                host_node("/dev/nvidia-fs0", 239, 0),
                host_node("/dev/nvidia-nvswitch0", 241, 0),
                host_node("/dev/nvidia-nvlink", 242, 0),
            ],
            ..ExtraDevices::default()
        };
        inv
    }

    fn opts(mode: Mode) -> CdiOptions {
        CdiOptions {
            vendor: "nvidia.com".to_owned(),
            class: mode.class().to_owned(),
            hook_path: PathBuf::from("/usr/bin/nvidia-container-runtime-hook"),
            hook_env: Vec::new(),
            flavor: RootfsFlavor::DebianLike,
            dev_root: PathBuf::from("/dev"),
        }
    }

    fn json(inv: &Inventory, mode: Mode) -> Result<String, CdiError> {
        let spec = generate_mode(inv, &rules::Config::default(), &opts(mode), mode)?;
        Ok(render(&spec, Format::Json))
    }

    fn node_json(path: &str) -> String {
        format!(
            r#"{{
            "path": "{path}",
            "hostPath": "{path}",
            "fileMode": 438,
            "permissions": "rw",
            "uid": 0,
            "gid": 0
          }}"#
        )
    }

    fn spec_json(kind: &str, devices: &[(&str, String)]) -> String {
        let devices: Vec<String> = devices
            .iter()
            .map(|(name, edits)| {
                format!(
                    "    {{\n      \"name\": \"{name}\",\n      \"containerEdits\": {{\n{edits}\n      }}\n    }}"
                )
            })
            .collect();
        format!(
            "{{\n  \"cdiVersion\": \"0.5.0\",\n  \"kind\": \"{kind}\",\n  \"devices\": [\n{}\n  ],\n  \"containerEdits\": {{\n    \"env\": [\n      \"NVIDIA_VISIBLE_DEVICES=void\"\n    ]\n  }}\n}}\n",
            devices.join(",\n")
        )
    }

    fn nodes_json(paths: &[&str]) -> String {
        let nodes: Vec<String> = paths
            .iter()
            .map(|p| format!("          {}", node_json(p)))
            .collect();
        format!(
            "        \"deviceNodes\": [\n{}\n        ]",
            nodes.join(",\n")
        )
    }

    #[test]
    fn imex_channels_are_devices_named_by_number() {
        let got = json(&inventory(), Mode::ImexChannel).unwrap();
        let want = spec_json(
            "nvidia.com/imex-channel",
            &[
                (
                    "0",
                    nodes_json(&["/dev/nvidia-caps-imex-channels/channel0"]),
                ),
                (
                    "1",
                    nodes_json(&["/dev/nvidia-caps-imex-channels/channel1"]),
                ),
            ],
        );
        assert_eq!(got, want);
    }

    #[test]
    fn gated_families_are_one_device_all() {
        let got = json(&inventory(), Mode::Gds).unwrap();
        let want = spec_json(
            "nvidia.com/gds",
            &[("all", nodes_json(&["/dev/nvidia-fs0", "/dev/nvidia-fs1"]))],
        );
        assert_eq!(got, want);
        // NVSwitch brings the fabric manager's socket, as the plan does.
        let got = json(&inventory(), Mode::Nvswitch).unwrap();
        let mounts = "        \"mounts\": [\n          {\n            \"hostPath\": \"/run/nvidia-fabricmanager/socket\",\n            \"containerPath\": \"/run/nvidia-fabricmanager/socket\",\n            \"type\": \"bind\",\n            \"options\": [\n              \"rbind\",\n              \"rprivate\",\n              \"nosuid\",\n              \"nodev\",\n              \"noexec\"\n            ]\n          }\n        ]";
        let want = spec_json(
            "nvidia.com/nvswitch",
            &[(
                "all",
                format!(
                    "{},\n{mounts}",
                    nodes_json(&["/dev/nvidia-nvlink", "/dev/nvidia-nvswitch0"])
                ),
            )],
        );
        assert_eq!(got, want);
    }

    #[test]
    fn only_what_the_host_has() {
        let inv = inventory();
        let all = generate_all(&inv, &rules::Config::default(), &opts(Mode::Gpu)).unwrap();
        let kinds: Vec<&str> = all.iter().map(|(_, s)| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "nvidia.com/gpu",
                "nvidia.com/imex-channel",
                "nvidia.com/gds",
                "nvidia.com/nvswitch"
            ]
        );
        for (mode, what) in [
            (
                Mode::Mofed,
                "this host has no /dev/infiniband/*, so there is no nvidia.com/mofed CDI spec to generate: load the ib_uverbs (MLNX_OFED) module on the host, or leave out --mode mofed",
            ),
            (
                Mode::Gdrcopy,
                "this host has no /dev/gdrdrv, so there is no nvidia.com/gdrcopy CDI spec to generate: load the gdrdrv module on the host, or leave out --mode gdrcopy",
            ),
        ] {
            assert_eq!(json(&inv, mode).unwrap_err().to_string(), what);
        }
        let mut bare = inv.clone();
        bare.extra_devices = ExtraDevices::default();
        assert_eq!(
            json(&bare, Mode::ImexChannel).unwrap_err().to_string(),
            "this host has no IMEX channel (/dev/nvidia-caps-imex-channels/channel<N>), so there is no nvidia.com/imex-channel CDI spec to generate: load the NVIDIA driver with IMEX support (NVreg_CreateImexChannel0=1), or leave out --mode imex-channel"
        );
    }
}
