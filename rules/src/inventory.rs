//! What a host has: the input the hook discovers (NVML, `ld.so.cache`,
//! `/proc/devices`, the driver root) and caches as JSON.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::device::PciBusId;
use crate::extra_devices::ExtraDevices;
use crate::files::{ElfClass, FileKind, Machine};
use crate::loader_files::LoaderFile;
use crate::path::HostPath;
use crate::version::Version;

/// A host's GPUs and driver, as discovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// The kernel module (NVRM) version, e.g. `535.104.05`.
    pub driver_version: Version,
    /// The CUDA version the driver reports (`major.minor`); `None` when NVML
    /// could not say (no `libcuda`). The planner then falls back to the
    /// newest CUDA the table gives for the driver.
    #[serde(default)]
    pub cuda_version: Option<Version>,
    /// Where the driver files live (`/`, or `/run/nvidia/driver` for a
    /// containerised driver). [`DriverFile::path`]s are relative to it.
    #[serde(default = "HostPath::root")]
    pub driver_root: HostPath,
    /// The machine architecture.
    #[serde(default)]
    pub machine: Machine,
    /// Device majors and which control nodes exist.
    pub devices: DeviceInfo,
    /// The GPUs, by NVML index.
    #[serde(default)]
    pub gpus: Vec<Gpu>,
    /// The driver's files: libraries, binaries, firmware, IPC sockets.
    #[serde(default)]
    pub files: Vec<DriverFile>,
    /// The loaders' files: ICD and vendor JSON, X server modules, GBM and
    /// VDPAU modules ([`crate::loader_files`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loader_files: Vec<LoaderFile>,
    /// The GPUs' DRM nodes (`/dev/dri/card<N>`, `renderD<N>`), found in
    /// sysfs by bus id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drm: Vec<DrmNode>,
    /// IMEX channels and the GPUDirect/NVSwitch nodes
    /// ([`crate::extra_devices`]).
    #[serde(default, skip_serializing_if = "ExtraDevices::is_empty")]
    pub extra_devices: ExtraDevices,
}

/// A DRM node of a GPU: `<sysfs>/bus/pci/devices/<bus id>/drm/<name>`,
/// whose `dev` file gives its numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrmNode {
    /// The GPU's PCI location.
    pub bus_id: PciBusId,
    /// `card<N>` or `renderD<N>`: the node is `/dev/dri/<name>`.
    pub name: String,
    /// Major number (226, `drm`).
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DrmNode {
    /// `card` or `render`: the kind udev's `by-path` link names end with,
    /// or `None` for another name.
    pub fn by_path_kind(&self) -> Option<&'static str> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if self.name.strip_prefix("card").is_some_and(digits) {
            Some("card")
        } else if self.name.strip_prefix("renderD").is_some_and(digits) {
            Some("render")
        } else {
            None
        }
    }
}

/// Device majors (`/proc/devices`) and control nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// `nvidia` (or `nvidia-frontend` before 550.40): `/dev/nvidiactl`,
    /// `/dev/nvidia-modeset`, `/dev/nvidia<minor>`. Usually 195.
    pub nvidia_major: u32,
    /// `nvidia-uvm` (dynamic); `None` when the module is not loaded.
    #[serde(default)]
    pub uvm_major: Option<u32>,
    /// `nvidia-caps` (dynamic); `None` without MIG support.
    #[serde(default)]
    pub caps_major: Option<u32>,
    /// `/dev/nvidia-uvm-tools` exists (v1 passed it only then).
    #[serde(default = "yes")]
    pub uvm_tools: bool,
    /// `/dev/nvidia-modeset` exists.
    #[serde(default = "yes")]
    pub modeset: bool,
}

fn yes() -> bool {
    true
}

impl Default for DeviceInfo {
    fn default() -> Self {
        DeviceInfo {
            nvidia_major: 195,
            uvm_major: None,
            caps_major: None,
            uvm_tools: true,
            modeset: true,
        }
    }
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// NVML index (the `nvidia-smi` order).
    pub index: u32,
    /// `/dev/nvidia<minor>`; need not equal the index.
    pub minor: u32,
    /// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub uuid: String,
    /// PCI location.
    pub bus_id: PciBusId,
    /// NVML brand as the toolkit names it (`Tesla`, `GeForce`, `NvidiaRTX`,
    /// ...); `brand=` requirements compare it ignoring case.
    pub brand: String,
    /// CUDA compute capability, e.g. `8.0`.
    pub arch: Version,
    /// Product name, e.g. `NVIDIA A100-SXM4-80GB`.
    pub model: String,
    /// MIG mode is enabled.
    #[serde(default)]
    pub mig_enabled: bool,
    /// The MIG devices, when MIG mode is enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mig: Vec<MigDevice>,
}

/// One MIG device (a compute instance inside a GPU instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigDevice {
    /// Index within its GPU (`<gpu>:<index>` selects it).
    pub index: u32,
    /// `MIG-xxxxxxxx-...`.
    pub uuid: String,
    /// GPU instance id.
    pub gi: u32,
    /// Compute instance id.
    pub ci: u32,
    /// Minor of `/dev/nvidia-caps/nvidia-cap<N>` for the GPU instance.
    pub gi_caps_minor: u32,
    /// Minor of `/dev/nvidia-caps/nvidia-cap<N>` for the compute instance.
    pub ci_caps_minor: u32,
}

/// One driver file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverFile {
    /// The resolved path, relative to [`Inventory::driver_root`] (its last
    /// component is the versioned name, e.g. `libcuda.so.535.104.05`).
    pub path: HostPath,
    /// What it is.
    pub kind: FileKind,
    /// ELF class (libraries).
    #[serde(default)]
    pub class: ElfClass,
    /// `DT_SONAME` (libraries), e.g. `libcuda.so.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soname: Option<String>,
}

/// An inconsistency in an inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// Two GPUs share an index.
    #[error("inventory lists GPU index {0} twice")]
    DuplicateIndex(u32),
    /// Two GPUs share a UUID.
    #[error("inventory lists GPU {0} twice")]
    DuplicateUuid(String),
    /// A driver file's path has no file name (`/`).
    #[error("inventory lists a driver file without a name")]
    NamelessFile,
}

impl Inventory {
    /// An inventory with a driver and nothing else (for tests and tools).
    pub fn new(driver_version: Version) -> Inventory {
        Inventory {
            driver_version,
            cuda_version: None,
            driver_root: HostPath::root(),
            machine: Machine::default(),
            devices: DeviceInfo::default(),
            gpus: Vec::new(),
            files: Vec::new(),
            loader_files: Vec::new(),
            drm: Vec::new(),
            extra_devices: ExtraDevices::default(),
        }
    }

    /// Checks what serde cannot: unique GPU indexes and UUIDs, named files.
    /// The planner does not rely on it (it never panics on any inventory),
    /// but the hook checks a snapshot before caching it.
    pub fn validate(&self) -> Result<(), InventoryError> {
        let mut indexes = BTreeSet::new();
        let mut uuids = BTreeSet::new();
        for g in &self.gpus {
            if !indexes.insert(g.index) {
                return Err(InventoryError::DuplicateIndex(g.index));
            }
            if !uuids.insert(g.uuid.to_ascii_lowercase()) {
                return Err(InventoryError::DuplicateUuid(g.uuid.clone()));
            }
        }
        if self.files.iter().any(|f| f.path.is_root()) {
            return Err(InventoryError::NamelessFile);
        }
        Ok(())
    }

    /// The GPU with NVML index `index`.
    pub fn gpu(&self, index: u32) -> Option<&Gpu> {
        self.gpus.iter().find(|g| g.index == index)
    }

    /// True when some GPU has MIG mode enabled.
    pub fn has_mig(&self) -> bool {
        self.gpus.iter().any(|g| g.mig_enabled || !g.mig.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_with_defaults() {
        let json = r#"{
            "driver_version": "535.104.05",
            "cuda_version": "12.2",
            "devices": {"nvidia_major": 195, "uvm_major": 508},
            "gpus": [{"index": 0, "minor": 0, "uuid": "GPU-1", "bus_id": "0000:04:00.0",
                      "brand": "Tesla", "arch": "8.0", "model": "A100"}],
            "files": [{"path": "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05",
                       "kind": "library", "soname": "libcuda.so.1"},
                      {"path": "/usr/bin/nvidia-smi", "kind": "binary"}]
        }"#;
        let inv: Inventory = serde_json::from_str(json).unwrap();
        assert_eq!(inv.driver_root, HostPath::root());
        assert!(inv.devices.uvm_tools && inv.devices.modeset);
        assert_eq!(inv.gpus[0].bus_id.to_string(), "00000000:04:00.0");
        assert_eq!(inv.files[1].class, ElfClass::Elf64);
        inv.validate().unwrap();
        let back: Inventory = serde_json::from_str(&serde_json::to_string(&inv).unwrap()).unwrap();
        assert_eq!(back, inv);
        assert!(serde_json::from_str::<Inventory>(&json.replace("\"minor\"", "\"minr\"")).is_err());
        assert!(serde_json::from_str::<Inventory>(
            &json.replace("/usr/bin/nvidia-smi", "/usr/../bin")
        )
        .is_err());
    }

    #[test]
    fn validate_catches_duplicates() {
        let gpu = Gpu {
            index: 0,
            minor: 0,
            uuid: "GPU-a".into(),
            bus_id: PciBusId::parse("0:1:0.0").unwrap(),
            brand: "Tesla".into(),
            arch: Version::parse("8.0").unwrap(),
            model: "A100".into(),
            mig_enabled: false,
            mig: vec![],
        };
        let mut inv = Inventory::new(Version::parse("535.104.05").unwrap());
        inv.gpus = vec![gpu.clone(), gpu.clone()];
        assert_eq!(inv.validate(), Err(InventoryError::DuplicateIndex(0)));
        inv.gpus[1].index = 1;
        inv.gpus[1].uuid = "gpu-A".into();
        assert_eq!(
            inv.validate(),
            Err(InventoryError::DuplicateUuid("gpu-A".into()))
        );
        inv.gpus.pop();
        inv.files.push(DriverFile {
            path: HostPath::root(),
            kind: FileKind::Binary,
            class: ElfClass::Elf64,
            soname: None,
        });
        assert_eq!(inv.validate(), Err(InventoryError::NamelessFile));
        assert!(!inv.has_mig());
        assert!(inv.gpu(0).is_some() && inv.gpu(1).is_none());
    }
}
