//! The plan: everything a container gets, as data, in a deterministic order.
//!
//! `plan(&Inventory, &Request, &Config)` resolves the devices, checks the
//! requirements once per selected GPU (or MIG parent), or once with no GPU,
//! and lists what to apply. The hook applies it inside the container's mount
//! namespace; the renderers turn it into OCI edits, a CDI spec, v1 options or
//! REST JSON. Decisions where the references leave room:
//!
//! - **Control nodes.** `/dev/nvidiactl` is in every GPU container, `none`
//!   included (libnvidia-container mounts the control devices with the driver
//!   whatever the selection); `/dev/nvidia-uvm` and `-uvm-tools` come with
//!   compute, `/dev/nvidia-modeset` with display. v1 requests get v1's set:
//!   nvidiactl, uvm, uvm-tools (if present), never modeset. A node whose
//!   major the inventory lacks (uvm module not loaded) is left out.
//! - **Device modes** are `0666`, as `nvidia-modprobe` creates them.
//! - **Symlinks.** Beyond the toolkit's three (`libcuda.so`,
//!   `libGLX_indirect.so.0`, `libnvidia-opticalflow.so`), each library gets
//!   its `soname -> file` link, so the container works before `ldconfig`.
//!   Targets are single file names in the link's directory.
//! - **Environment additions** are for renderers that edit the spec (the hook
//!   cannot change a created container's environment). The only one is
//!   `CUDA_MPS_PIPE_DIRECTORY` when the MPS directory is mounted somewhere
//!   other than CUDA's default `/tmp/nvidia-mps`. `PATH` and
//!   `LD_LIBRARY_PATH` of v1 images are the image's business (they already
//!   name `/usr/local/nvidia`).
//! - **v1 images** (`com.nvidia.volumes.needed` with `Delivery::Bind`) get the
//!   `/usr/local/nvidia/{bin,lib,lib64}` layout *in addition to* the modern
//!   layout of their capabilities.
//! - **Forward compatibility.** When the image's compat `libcuda` is to be
//!   used, its directory goes first in the linker-cache directories and its
//!   CUDA version counts for `cuda` conditions (it is what the container will
//!   run). Nothing is mounted from the image.
//! - **Order.** Device nodes: nvidiactl, uvm, uvm-tools, modeset, then GPUs by
//!   index, then MIG capability nodes by minor, then IMEX channels and the
//!   gated families' nodes ([`crate::extra_devices`]), then (graphics,
//!   display) the GPUs' DRM nodes by GPU index. Rules follow the nodes.
//!   Mounts and symlinks are sorted by container path and deduplicated (the
//!   smallest source, then kind and flags, wins), so the plan does not depend on the inventory's
//!   file order.

mod drm;
mod loader;
mod text;

pub use drm::DevLink;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::capability::{Capabilities, Capability};
use crate::compat::{compat_considered, compat_dir, forward_compat, CompatDecision};
use crate::config::Config;
use crate::device::{resolve, DeviceRequest, PciBusId, Selection};
use crate::extra_devices::{extra_nodes, mig_control_nodes, Gated};
use crate::files::{
    binary_spec, library_capabilities, library_dir, library_spec, ElfClass, FileKind, Machine,
    BINARY_DIR,
};
use crate::inventory::{Gpu, Inventory};
use crate::path::{ContainerPath, FileName, HostPath};
use crate::refusal::{CudaTooNew, HostFact, Refusal};
use crate::request::{Delivery, Request};
use crate::require::{v1_cuda_supported, Condition, Facts, Op, Operand, Property};
use crate::v1::{v1_layout, V1Dir, V1Volume, V1_MOUNTPOINT};
use crate::version::Version;

/// CUDA's default MPS pipe directory.
pub const DEFAULT_MPS_PIPE_DIR: &str = "/tmp/nvidia-mps";
/// The directory the graphics application profile is written into (a tmpfs).
pub const APP_PROFILE_DIR: &str = "/etc/nvidia/nvidia-application-profiles-rc.d";
/// The profile's file name in [`APP_PROFILE_DIR`].
pub const APP_PROFILE_FILE: &str = "10-container.conf";
/// The directory masked by [`ProcMask`].
pub const PROC_DRIVER_DIR: &str = "/proc/driver/nvidia";

/// Device node type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeType {
    /// Character device (`c`).
    #[serde(rename = "c")]
    Char,
}

impl NodeType {
    /// `c`.
    pub fn as_str(self) -> &'static str {
        "c"
    }
}

/// What a device node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// `/dev/nvidiactl`.
    Control,
    /// `/dev/nvidia-uvm`.
    Uvm,
    /// `/dev/nvidia-uvm-tools`.
    UvmTools,
    /// `/dev/nvidia-modeset`.
    Modeset,
    /// `/dev/nvidia<minor>` of GPU `index`.
    Gpu {
        /// NVML index.
        index: u32,
    },
    /// `/dev/nvidia-caps/nvidia-cap<N>` of a MIG device of GPU `index`.
    MigCap {
        /// NVML index of the parent.
        index: u32,
    },
    /// `/dev/dri/card<N>` or `renderD<N>` of GPU `index`.
    Drm {
        /// NVML index.
        index: u32,
    },
    /// `/dev/nvidia-caps-imex-channels/channel<N>`.
    Imex {
        /// The channel.
        channel: u32,
    },
    /// A node of a gated family (`NVIDIA_GDS`, ...).
    Gated {
        /// The family.
        family: crate::extra_devices::Gated,
    },
    /// The MIG config or monitor capability (`NVIDIA_MIG_*_DEVICES`).
    MigControl,
}

/// A device node to create (same path on the host under its dev root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Path in the container.
    pub path: ContainerPath,
    /// Node type.
    #[serde(rename = "type")]
    pub kind: NodeType,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
    /// What it is for.
    pub role: NodeRole,
}

/// A device cgroup rule: `c major:minor rw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// Always true (the plan only allows).
    pub allow: bool,
    /// Node type.
    #[serde(rename = "type")]
    pub kind: NodeType,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// `rw` (no `m`: nothing is created through the cgroup).
    pub access: String,
}

impl fmt::Display for DeviceRule {
    /// The cgroup v1 `devices.allow` line: `c 195:0 rw`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} {}",
            self.kind.as_str(),
            self.major,
            self.minor,
            self.access
        )
    }
}

/// What is mounted: a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A file (the mount point is created as an empty file).
    File,
    /// A directory.
    Directory,
}

/// Bind mount flags, applied with a remount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MountFlags {
    /// `ro`.
    pub read_only: bool,
    /// `nosuid`.
    pub nosuid: bool,
    /// `nodev`.
    pub nodev: bool,
    /// `noexec`.
    pub noexec: bool,
}

impl MountFlags {
    /// Driver files: `ro,nosuid,nodev`.
    pub const DRIVER: MountFlags = MountFlags {
        read_only: true,
        nosuid: true,
        nodev: true,
        noexec: false,
    };
    /// IPC sockets and directories: writable, `nosuid,nodev,noexec`.
    pub const IPC: MountFlags = MountFlags {
        read_only: false,
        nosuid: true,
        nodev: true,
        noexec: true,
    };

    /// The mount option words, e.g. for CDI: `["ro", "nosuid", "nodev"]`.
    pub fn options(self) -> Vec<&'static str> {
        let mut o = Vec::with_capacity(4);
        if self.read_only {
            o.push("ro");
        }
        if self.nosuid {
            o.push("nosuid");
        }
        if self.nodev {
            o.push("nodev");
        }
        if self.noexec {
            o.push("noexec");
        }
        o
    }
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MountOp {
    /// The host file (driver root applied).
    pub source: HostPath,
    /// Where it goes in the container.
    pub destination: ContainerPath,
    /// File or directory.
    pub kind: MountKind,
    /// Flags.
    pub flags: MountFlags,
}

/// A relative symlink to create: `link -> target`, target in the same directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Symlink {
    /// The link's path in the container.
    pub link: ContainerPath,
    /// Its target: a file name in the link's directory.
    pub target: FileName,
}

/// `/proc/driver/nvidia` masking: a `0555` tmpfs with copies of `params`
/// (`ModifyDeviceFiles: 0`, see [`rewrite_params`]), `version` and
/// `registry`, remounted `nodev,nosuid,noexec`; only the listed GPUs'
/// `gpus/<bus id>` directories and MIG access files are bound back read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcMask {
    /// GPUs that stay visible, by index (each tried as
    /// [`PciBusId::proc_names`]).
    pub gpus: Vec<PciBusId>,
    /// MIG access files to bind back, same path on the host's `/proc`.
    pub mig_access: Vec<ContainerPath>,
}

/// The graphics application profile limiting EGL to the selected GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppProfile {
    /// Minors of the selected GPUs.
    pub minors: Vec<u32>,
}

impl AppProfile {
    /// `EGLVisibleDGPUDevices`: the bitmask of selected minors (minors >= 64
    /// cannot be expressed and are left out).
    pub fn mask(&self) -> u64 {
        self.minors
            .iter()
            .filter(|m| **m < 64)
            .fold(0, |acc, m| acc | (1u64 << m))
    }

    /// The file's content (libnvidia-container's format).
    pub fn render(&self) -> String {
        format!(
            "{{\n\t\"profiles\": [{{\"name\": \"_container_\", \"settings\": [\"EGLVisibleDGPUDevices\", 0x{:x}]}}],\n\t\"rules\": [{{\"pattern\": [], \"profile\": \"_container_\"}}]\n}}\n",
            self.mask()
        )
    }
}

/// A v1 Docker volume the container gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1VolumeRef {
    /// Which volume.
    pub volume: V1Volume,
    /// Docker's name, `nvidia_driver_<version>`.
    pub docker_name: String,
    /// `/usr/local/nvidia`.
    pub mountpoint: ContainerPath,
}

/// A selected MIG device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMig {
    /// Index within its GPU.
    pub index: u32,
    /// `MIG-...`.
    pub uuid: String,
    /// GPU instance.
    pub gi: u32,
    /// Compute instance.
    pub ci: u32,
}

/// A GPU the container gets (whole, or as the parent of MIG devices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedGpu {
    /// NVML index.
    pub index: u32,
    /// Device minor.
    pub minor: u32,
    /// `GPU-...`.
    pub uuid: String,
    /// PCI location.
    pub bus_id: PciBusId,
    /// The whole GPU is selected (not only MIG devices of it).
    pub whole: bool,
    /// Selected MIG devices.
    pub mig: Vec<PlannedMig>,
}

/// Everything a container gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// False when the request is no GPU container: everything else is empty.
    pub gpu_container: bool,
    /// The host driver.
    pub driver_version: Version,
    /// The CUDA version requirements were checked against (the host's, the
    /// table's guess for the driver, or the forward-compat library's).
    pub cuda_version: Option<Version>,
    /// The capabilities served.
    pub capabilities: Capabilities,
    /// The forward-compatibility decision, when the image had a compat library.
    pub cuda_compat: Option<CompatDecision>,
    /// Selected GPUs, by index.
    pub gpus: Vec<PlannedGpu>,
    /// Device nodes.
    pub device_nodes: Vec<DeviceNode>,
    /// Device cgroup rules (empty with `no_cgroups`).
    pub device_rules: Vec<DeviceRule>,
    /// Bind mounts, by destination.
    pub mounts: Vec<MountOp>,
    /// Symlinks, by link path.
    pub symlinks: Vec<Symlink>,
    /// Directories to give the container's `ldconfig`.
    pub ldconfig_dirs: Vec<ContainerPath>,
    /// Environment additions (renderers that edit the spec).
    pub env: BTreeMap<String, String>,
    /// `/proc/driver/nvidia` masking.
    pub proc_mask: Option<ProcMask>,
    /// The graphics application profile.
    pub app_profile: Option<AppProfile>,
    /// v1 Docker volumes.
    pub v1_volumes: Vec<V1VolumeRef>,
    /// Links to device nodes (`/dev/dri/by-path`), by link path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dev_links: Vec<DevLink>,
    /// The entries glibc's `ldconfig` would add to the container's linker
    /// cache for the driver libraries and the links this plan creates
    /// (`docs/linker-cache.md`), in the order it would scan them.
    #[serde(default)]
    pub ld_cache: Vec<LdCacheEntry>,
}

/// One linker cache entry for a driver library the plan mounts: what
/// `ldconfig` would record for it in its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdCacheEntry {
    /// The name looked up: the library's soname (its file name when it has
    /// none), or a development link (`libcuda.so`).
    pub key: FileName,
    /// `<library directory>/<key>` in the container.
    pub path: ContainerPath,
    /// The library's bitness.
    pub class: ElfClass,
    /// The host's architecture (the cache's flags depend on it).
    pub machine: Machine,
}

impl Plan {
    fn empty(inv: &Inventory) -> Plan {
        Plan {
            gpu_container: false,
            driver_version: inv.driver_version.clone(),
            cuda_version: inv.cuda_version.clone(),
            capabilities: Capabilities::empty(),
            cuda_compat: None,
            gpus: Vec::new(),
            device_nodes: Vec::new(),
            device_rules: Vec::new(),
            mounts: Vec::new(),
            symlinks: Vec::new(),
            ldconfig_dirs: Vec::new(),
            env: BTreeMap::new(),
            proc_mask: None,
            app_profile: None,
            v1_volumes: Vec::new(),
            ld_cache: Vec::new(),
            dev_links: Vec::new(),
        }
    }
}

/// Rewrites `/proc/driver/nvidia/params` for the container: `ModifyDeviceFiles: 0`,
/// so the driver in a container never recreates device nodes.
pub fn rewrite_params(params: &str) -> String {
    let mut out = String::with_capacity(params.len());
    for line in params.lines() {
        if line.starts_with("ModifyDeviceFiles:") {
            out.push_str("ModifyDeviceFiles: 0");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn cpath(s: &str) -> ContainerPath {
    // Only called with constants and with names validated as FileName; a
    // failure would be a bug, and the root is a harmless value for it.
    ContainerPath::new(s).unwrap_or_else(|_| ContainerPath::root())
}

fn fname(s: &str) -> Option<FileName> {
    FileName::new(s).ok()
}

/// The refusal for a failed condition.
fn refusal_for(
    cond: &Condition,
    variable: &str,
    gpu: Option<&Gpu>,
    inv: &Inventory,
    cuda: Option<&Version>,
    cfg: &Config,
) -> Refusal {
    match (&cond.property, cond.op, &cond.value) {
        (Property::Cuda, Op::Ge, Operand::Version(asked)) => {
            let table = &cfg.cuda_table;
            let min_driver = table.min_driver(asked).cloned();
            let minor_compat_from = table
                .min_driver_minor_compat(asked)
                .filter(|floor| min_driver.as_ref().map_or(true, |min| *floor < min))
                .cloned();
            Refusal::CudaTooNew(Box::new(CudaTooNew {
                asked: asked.clone(),
                min_driver,
                minor_compat_from,
                driver: inv.driver_version.clone(),
                host_cuda: cuda.cloned(),
            }))
        }
        (Property::Cuda, ..) => Refusal::Unsatisfied {
            condition: cond.to_string(),
            variable: variable.to_owned(),
            host: Box::new(HostFact::Cuda {
                cuda: cuda.cloned(),
                driver: inv.driver_version.clone(),
            }),
        },
        (Property::Driver, ..) => Refusal::Unsatisfied {
            condition: cond.to_string(),
            variable: variable.to_owned(),
            host: Box::new(HostFact::Driver {
                driver: inv.driver_version.clone(),
            }),
        },
        (property @ (Property::Arch | Property::Brand), ..) => {
            let (index, model, value) = gpu.map_or((0, String::new(), String::new()), |g| {
                let value = if *property == Property::Arch {
                    g.arch.to_string()
                } else {
                    g.brand.clone()
                };
                (g.index, g.model.clone(), value)
            });
            Refusal::Unsatisfied {
                condition: cond.to_string(),
                variable: variable.to_owned(),
                host: Box::new(HostFact::Gpu {
                    index,
                    model,
                    property: *property,
                    value,
                }),
            }
        }
    }
}

fn check_requirements(
    inv: &Inventory,
    req: &Request,
    cfg: &Config,
    parents: &[&Gpu],
    cuda: Option<&Version>,
) -> Result<(), Refusal> {
    // v1's label rule first: where the label is the cause, v1's message.
    if let Some(label) = &req.v1_cuda_label {
        let have = cuda.map_or((0, 0), |c| (c.major(), c.minor()));
        if !v1_cuda_supported(label.major_minor, have) {
            return Err(Refusal::V1CudaUnsupported {
                driver_cuda: format!("{}.{}", have.0, have.1),
                label: label.text.clone(),
            });
        }
    }
    let driver = &inv.driver_version;
    let check_one = |gpu: Option<&Gpu>| -> Result<(), Refusal> {
        let facts = Facts {
            cuda,
            driver,
            gpu: gpu.map(|g| (&g.arch, g.brand.as_str())),
        };
        for r in &req.requirements {
            if let Err(cond) = r.check(&facts) {
                return Err(refusal_for(cond, &r.variable, gpu, inv, cuda, cfg));
            }
        }
        Ok(())
    };
    if parents.is_empty() {
        check_one(None)?;
    } else {
        for g in parents {
            check_one(Some(g))?;
        }
    }
    Ok(())
}

struct Builder<'a> {
    inv: &'a Inventory,
    cfg: &'a Config,
    nodes: Vec<DeviceNode>,
    /// Device numbers already given, sorted.
    seen_nodes: Vec<(u32, u32)>,
    mounts: Vec<MountOp>,
    symlinks: Vec<Symlink>,
    ld_cache: Vec<LdCacheEntry>,
}

impl Builder<'_> {
    fn node(&mut self, path: &str, major: u32, minor: u32, role: NodeRole) {
        self.node_owned(path.to_owned(), major, minor, role);
    }

    fn node_owned(&mut self, path: String, major: u32, minor: u32, role: NodeRole) {
        // One node per device number; the first (in plan order) names it.
        match self.seen_nodes.binary_search(&(major, minor)) {
            Ok(_) => return,
            Err(at) => self.seen_nodes.insert(at, (major, minor)),
        }
        self.nodes.push(DeviceNode {
            // Only called with constants and formatted names; as `cpath`.
            path: ContainerPath::new(path).unwrap_or_else(|_| ContainerPath::root()),
            kind: NodeType::Char,
            major,
            minor,
            mode: 0o666,
            role,
        });
    }

    fn source(&self, path: &HostPath) -> HostPath {
        self.inv.driver_root.under(path)
    }

    fn mount(
        &mut self,
        source: HostPath,
        destination: ContainerPath,
        kind: MountKind,
        flags: MountFlags,
    ) {
        self.mounts.push(MountOp {
            source,
            destination,
            kind,
            flags,
        });
    }

    fn link(&mut self, dir: &ContainerPath, link: &str, target: &FileName) {
        if link != target.as_str() {
            if let Some(l) = fname(link) {
                self.symlinks.push(Symlink {
                    link: dir.join(&l),
                    target: target.clone(),
                });
            }
        }
    }

    /// Driver libraries, binaries, firmware and IPC for the modern layout.
    /// Returns the library directories used.
    fn driver_files(&mut self, req: &Request, caps: Capabilities) -> Vec<ContainerPath> {
        let lib_caps = library_capabilities(caps);
        let machine = self.inv.machine;
        let dir64 = library_dir(req.rootfs, machine, ElfClass::Elf64).map(cpath);
        let dir32 = if caps.contains(Capability::Compat32) {
            library_dir(req.rootfs, machine, ElfClass::Elf32).map(cpath)
        } else {
            None
        };
        let (mut used64, mut used32) = (false, false);
        let bin_dir = cpath(BINARY_DIR);
        let inv = self.inv;
        for f in &inv.files {
            // Filter on the name before allocating anything.
            let Some(name) = f.path.file_name_str() else {
                continue;
            };
            match f.kind {
                FileKind::Library => {
                    let Some(spec) = library_spec(name) else {
                        continue;
                    };
                    if !spec.toolkit || !lib_caps.contains(spec.capability) {
                        continue;
                    }
                    let (dir, used) = match f.class {
                        ElfClass::Elf64 => (dir64.as_ref(), &mut used64),
                        ElfClass::Elf32 => (dir32.as_ref(), &mut used32),
                    };
                    let (Some(dir), Some(name)) = (dir, FileName::of_component(name)) else {
                        continue;
                    };
                    *used = true;
                    self.mount(
                        self.source(&f.path),
                        dir.join(&name),
                        MountKind::File,
                        MountFlags::DRIVER,
                    );
                    let soname = f.soname.as_deref().and_then(fname);
                    // The toolkit's own links (libnvidia-container `nvc_ldcache.c`).
                    match spec.stem {
                        "libcuda" => self.link(dir, "libcuda.so", soname.as_ref().unwrap_or(&name)),
                        "libnvidia-opticalflow" => self.link(
                            dir,
                            "libnvidia-opticalflow.so",
                            soname.as_ref().unwrap_or(&name),
                        ),
                        "libGLX_nvidia" => self.link(dir, "libGLX_indirect.so.0", &name),
                        _ => {}
                    }
                    // `soname -> file`, the file's name moved into the link.
                    let soname_or_file = match soname {
                        Some(s) => {
                            if s != name {
                                self.symlinks.push(Symlink {
                                    link: dir.join(&s),
                                    target: name,
                                });
                            }
                            s
                        }
                        None => name,
                    };
                    let cache = |key: FileName| LdCacheEntry {
                        path: dir.join(&key),
                        key,
                        class: f.class,
                        machine,
                    };
                    // `ldconfig` caches a development link (`lib<x>.so`)
                    // under its own name when the soname extends it.
                    for (stem, dev) in [
                        ("libcuda", "libcuda.so"),
                        ("libnvidia-opticalflow", "libnvidia-opticalflow.so"),
                    ] {
                        if spec.stem == stem && soname_or_file.as_str().starts_with(dev) {
                            if let Some(dev) = fname(dev).filter(|d| d != &soname_or_file) {
                                self.ld_cache.push(cache(dev));
                            }
                        }
                    }
                    self.ld_cache.push(cache(soname_or_file));
                }
                FileKind::Binary => {
                    let Some(spec) = binary_spec(name) else {
                        continue;
                    };
                    let Some(name) = fname(name).filter(|_| caps.contains(spec.capability)) else {
                        continue;
                    };
                    self.mount(
                        self.source(&f.path),
                        bin_dir.join(&name),
                        MountKind::File,
                        MountFlags::DRIVER,
                    );
                }
                FileKind::Firmware => {
                    if self.cfg.mount_firmware {
                        self.mount(
                            self.source(&f.path),
                            f.path.to_container(),
                            MountKind::File,
                            MountFlags::DRIVER,
                        );
                    }
                }
                FileKind::IpcSocket => {
                    let fabric = f.path.as_str().contains("fabricmanager");
                    let wanted = if fabric {
                        self.cfg.mount_fabricmanager
                    } else {
                        self.cfg.mount_persistenced
                    };
                    // NVSwitch systems' containers talk to the fabric
                    // manager whatever their capabilities.
                    let nvswitch = fabric && req.extra.gated.contains(&Gated::Nvswitch);
                    if wanted && (caps.contains(Capability::Utility) || nvswitch) {
                        self.mount(
                            self.source(&f.path),
                            f.path.to_container(),
                            MountKind::File,
                            MountFlags::IPC,
                        );
                    }
                }
                FileKind::MpsPipeDir => {
                    if self.cfg.mount_mps && caps.contains(Capability::Compute) {
                        self.mount(
                            self.source(&f.path),
                            f.path.to_container(),
                            MountKind::Directory,
                            MountFlags::IPC,
                        );
                    }
                }
            }
        }
        for f in &inv.loader_files {
            self.loader_file(f, req.rootfs, lib_caps);
        }
        let mut dirs = Vec::new();
        if let (true, Some(d)) = (used64, dir64) {
            dirs.push(d);
        }
        if let (true, Some(d)) = (used32, dir32) {
            dirs.push(d);
        }
        dirs
    }

    /// The v1 volume layout, bind-mounted. Returns its library directories.
    fn v1_files(&mut self) -> Vec<ContainerPath> {
        let layout = v1_layout(self.inv);
        let machine = self.inv.machine;
        let root = cpath(V1_MOUNTPOINT);
        let dir = |d: V1Dir| fname(d.name()).map_or_else(|| root.clone(), |n| root.join(&n));
        let class = |d: V1Dir| match d {
            V1Dir::Lib => Some(ElfClass::Elf32),
            V1Dir::Lib64 => Some(ElfClass::Elf64),
            V1Dir::Bin => None,
        };
        let mut used = BTreeSet::new();
        for f in layout.files {
            used.insert(f.dir);
            self.mount(
                f.source,
                dir(f.dir).join(&f.name),
                MountKind::File,
                MountFlags::DRIVER,
            );
            // What `ldconfig` records for the volume's libraries, as for
            // the driver files (`driver_files`).
            if let Some(class) = class(f.dir) {
                let key = f.soname.unwrap_or(f.name);
                self.ld_cache.push(LdCacheEntry {
                    path: dir(f.dir).join(&key),
                    key,
                    class,
                    machine,
                });
            }
        }
        for l in layout.links {
            let link = dir(l.dir).join(&l.link);
            // The development link `ldconfig` caches under its own name.
            if let (Some(class), "libcuda.so" | "libnvidia-opticalflow.so") =
                (class(l.dir), l.link.as_str())
            {
                self.ld_cache.push(LdCacheEntry {
                    key: l.link.clone(),
                    path: link.clone(),
                    class,
                    machine,
                });
            }
            self.symlinks.push(Symlink {
                link,
                target: l.target,
            });
        }
        [V1Dir::Lib64, V1Dir::Lib]
            .into_iter()
            .filter(|d| used.contains(d))
            .map(dir)
            .collect()
    }
}

/// Plans a container.
pub fn plan(inv: &Inventory, req: &Request, cfg: &Config) -> Result<Plan, Refusal> {
    if req.devices == DeviceRequest::NoGpu {
        return Ok(Plan::empty(inv));
    }
    let selection: Selection = resolve(&req.devices, &req.device_source, inv)?;
    let parent_indexes = selection.parents();
    let mut parents: Vec<&Gpu> = parent_indexes.iter().filter_map(|i| inv.gpu(*i)).collect();
    parents.sort_by_key(|g| g.index);

    // The CUDA version conditions are checked against.
    let host_cuda = inv
        .cuda_version
        .clone()
        .or_else(|| cfg.cuda_table.newest_cuda(&inv.driver_version));
    let caps = req.capabilities;
    let mut cuda = host_cuda.clone();
    let mut cuda_compat = None;
    let mut compat_used = false;
    if let Some(lib) = &req.compat {
        if compat_considered(req, cfg) {
            let decision = forward_compat(lib, Some(&inv.driver_version), host_cuda.as_ref());
            if decision == CompatDecision::Use {
                compat_used = true;
                let compat_cuda = lib
                    .note
                    .as_ref()
                    .map(|n| n.cuda.clone())
                    .or_else(|| cfg.cuda_table.newest_cuda(&lib.version));
                cuda = cuda.into_iter().chain(compat_cuda).max();
            }
            cuda_compat = Some(decision);
        }
    }
    check_requirements(inv, req, cfg, &parents, cuda.as_ref())?;

    let files = inv.files.len() + inv.loader_files.len();
    let mut b = Builder {
        inv,
        cfg,
        nodes: Vec::new(),
        seen_nodes: Vec::new(),
        mounts: Vec::with_capacity(files),
        symlinks: Vec::with_capacity(files),
        ld_cache: Vec::with_capacity(files),
    };
    let majors = &inv.devices;
    let nv = majors.nvidia_major;
    let v1 = req.delivery == Delivery::V1Volume;

    // Control nodes.
    b.node("/dev/nvidiactl", nv, 255, NodeRole::Control);
    if let Some(uvm) = majors.uvm_major {
        if v1 || caps.contains(Capability::Compute) {
            b.node("/dev/nvidia-uvm", uvm, 0, NodeRole::Uvm);
            if majors.uvm_tools {
                b.node("/dev/nvidia-uvm-tools", uvm, 1, NodeRole::UvmTools);
            }
        }
    }
    if !v1 && caps.contains(Capability::Display) && majors.modeset {
        b.node("/dev/nvidia-modeset", nv, 254, NodeRole::Modeset);
    }

    // GPUs and MIG devices.
    let mut gpus = Vec::with_capacity(parents.len());
    let mut caps_nodes: Vec<(u32, u32)> = Vec::new();
    let mut mig_access = Vec::new();
    for g in &parents {
        b.node(
            &format!("/dev/nvidia{}", g.minor),
            nv,
            g.minor,
            NodeRole::Gpu { index: g.index },
        );
        let mut migs = Vec::new();
        for m in g
            .mig
            .iter()
            .filter(|m| selection.migs.contains(&(g.index, m.index)))
        {
            caps_nodes.push((m.gi_caps_minor, g.index));
            caps_nodes.push((m.ci_caps_minor, g.index));
            let gi_dir = format!(
                "{PROC_DRIVER_DIR}/capabilities/gpu{}/mig/gi{}",
                g.minor, m.gi
            );
            mig_access.push(cpath(&format!("{gi_dir}/access")));
            mig_access.push(cpath(&format!("{gi_dir}/ci{}/access", m.ci)));
            migs.push(PlannedMig {
                index: m.index,
                uuid: m.uuid.clone(),
                gi: m.gi,
                ci: m.ci,
            });
        }
        gpus.push(PlannedGpu {
            index: g.index,
            minor: g.minor,
            uuid: g.uuid.clone(),
            bus_id: g.bus_id,
            whole: selection.gpus.contains(&g.index),
            mig: migs,
        });
    }
    if let Some(caps_major) = majors.caps_major {
        caps_nodes.sort_unstable();
        for (minor, index) in caps_nodes {
            b.node(
                &format!("/dev/nvidia-caps/nvidia-cap{minor}"),
                caps_major,
                minor,
                NodeRole::MigCap { index },
            );
        }
    }
    mig_access.sort();
    mig_access.dedup();
    for (path, major, minor) in extra_nodes(&req.extra, &inv.extra_devices)
        .map_err(|e| Refusal::ExtraDevice(Box::new(e)))?
    {
        let role = match Gated::of_path(&path) {
            Some(family) => NodeRole::Gated { family },
            None => NodeRole::Imex { channel: minor },
        };
        b.node(&path, major, minor, role);
    }
    for (path, major, minor, access) in
        mig_control_nodes(&req.extra, &inv.extra_devices, majors.caps_major)
            .map_err(|e| Refusal::ExtraDevice(Box::new(e)))?
    {
        b.node(&path, major, minor, NodeRole::MigControl);
        mig_access.push(cpath(access));
        mig_access.sort();
        mig_access.dedup();
    }
    let dev_links =
        if !v1 && (caps.contains(Capability::Graphics) || caps.contains(Capability::Display)) {
            b.drm_nodes(&gpus)
        } else {
            Vec::new()
        };

    let device_rules = if cfg.no_cgroups {
        Vec::new()
    } else {
        b.nodes
            .iter()
            .map(|n| DeviceRule {
                allow: true,
                kind: n.kind,
                major: n.major,
                minor: n.minor,
                access: "rw".to_owned(),
            })
            .collect()
    };

    // Files.
    let mut ldconfig_dirs = Vec::new();
    if compat_used {
        ldconfig_dirs.push(compat_dir());
    }
    if !v1 {
        ldconfig_dirs.extend(b.driver_files(req, caps));
        if req.v1_volumes.contains(&V1Volume::NvidiaDriver) {
            ldconfig_dirs.extend(b.v1_files());
        }
    }
    let mut ld_cache = std::mem::take(&mut b.ld_cache);
    // One entry per (path, class), whatever the inventory's order (the
    // cache writer sorts as ldconfig does).
    // Entries with the same (path, class) are equal (the key is the path's
    // last component), so an unstable sort gives the same plan.
    ld_cache.sort_unstable_by(|a, b| a.path.cmp(&b.path).then(a.class.cmp(&b.class)));
    ld_cache.dedup_by(|later, first| later.path == first.path && later.class == first.class);
    let mut mounts = std::mem::take(&mut b.mounts);
    // A total order: equal mounts are identical, so unstable is stable here.
    mounts.sort_unstable_by(|a, b| a.destination.cmp(&b.destination).then_with(|| a.cmp(b)));
    mounts.dedup_by(|later, first| later.destination == first.destination);
    let mut symlinks = std::mem::take(&mut b.symlinks);
    symlinks.sort_unstable();
    symlinks.dedup_by(|later, first| later.link == first.link);
    // Both sorted: one walk drops the links a mount takes the place of.
    let mut taken = mounts.iter().map(|m| &m.destination).peekable();
    symlinks.retain(|s| {
        while taken.next_if(|d| *d < &s.link).is_some() {}
        taken.peek() != Some(&&s.link)
    });

    let mut env = BTreeMap::new();
    if let Some(mps) = mounts.iter().find(|m| m.kind == MountKind::Directory) {
        if mps.destination.as_str() != DEFAULT_MPS_PIPE_DIR {
            env.insert(
                "CUDA_MPS_PIPE_DIRECTORY".to_owned(),
                mps.destination.to_string(),
            );
        }
    }

    let proc_mask = (!v1).then(|| ProcMask {
        gpus: parents.iter().map(|g| g.bus_id).collect(),
        mig_access,
    });
    let app_profile = (!v1
        && cfg.graphics_app_profile
        && (caps.contains(Capability::Graphics) || caps.contains(Capability::Display)))
    .then(|| AppProfile {
        minors: parents.iter().map(|g| g.minor).collect(),
    });
    let v1_volumes = req
        .v1_volumes
        .iter()
        .map(|v| V1VolumeRef {
            volume: *v,
            docker_name: v.docker_name(&inv.driver_version),
            mountpoint: cpath(V1_MOUNTPOINT),
        })
        .collect();

    Ok(Plan {
        gpu_container: true,
        driver_version: inv.driver_version.clone(),
        cuda_version: cuda,
        capabilities: caps,
        cuda_compat,
        gpus,
        device_nodes: b.nodes,
        device_rules,
        mounts,
        symlinks,
        ldconfig_dirs,
        env,
        proc_mask,
        app_profile,
        v1_volumes,
        ld_cache,
        dev_links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_rewrite() {
        let p = "Mobile: 0\nModifyDeviceFiles: 1\nDeviceFileUID: 0\n";
        assert_eq!(
            rewrite_params(p),
            "Mobile: 0\nModifyDeviceFiles: 0\nDeviceFileUID: 0\n"
        );
    }

    #[test]
    fn app_profile() {
        let p = AppProfile {
            minors: vec![0, 2, 70],
        };
        assert_eq!(p.mask(), 0b101);
        assert!(p.render().contains("[\"EGLVisibleDGPUDevices\", 0x5]"));
    }

    #[test]
    fn rule_text_and_flags() {
        let r = DeviceRule {
            allow: true,
            kind: NodeType::Char,
            major: 195,
            minor: 0,
            access: "rw".into(),
        };
        assert_eq!(r.to_string(), "c 195:0 rw");
        assert_eq!(MountFlags::DRIVER.options(), ["ro", "nosuid", "nodev"]);
        assert_eq!(MountFlags::IPC.options(), ["nosuid", "nodev", "noexec"]);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"allow":true,"type":"c","major":195,"minor":0,"access":"rw"}"#
        );
    }
}
