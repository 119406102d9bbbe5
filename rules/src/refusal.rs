//! Refusals: why a container does not start, as a value.
//!
//! Each renders as one line that says what was asked, what the host has, and
//! what to do. Where nvidia-docker 1.0 is the cause (`NV_GPU`, the REST
//! `dev=`/`vol=` query, the `com.nvidia.cuda.version` label) the text is v1's,
//! byte for byte, because scripts and the REST API's 400 bodies depend on it.
//!
//! For a failed `cuda>=X.Y` the toolkit's `unsatisfied condition: cuda>=X.Y,
//! please update your driver to a newer version, or use an earlier cuda
//! container` is replaced by a message naming the driver that CUDA needs (from
//! the table). Other failed conditions keep the toolkit's `unsatisfied
//! condition: <term>` prefix, so that searches for it still match, followed by
//! the variable, the host's value and the way out.

use std::fmt;

use crate::capability::{Capabilities, Capability};
use crate::device::DeviceSource;
use crate::require::{Property, RequireError};
use crate::version::Version;

const DISABLE: &str = "set NVIDIA_DISABLE_REQUIRE=true";

/// What the host has, for an unsatisfied condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostFact {
    /// The CUDA version (unknown: `None`) and the driver.
    Cuda {
        /// The CUDA version the driver supports.
        cuda: Option<Version>,
        /// The driver.
        driver: Version,
    },
    /// The driver.
    Driver {
        /// The driver.
        driver: Version,
    },
    /// A GPU's arch or brand.
    Gpu {
        /// NVML index.
        index: u32,
        /// Product name.
        model: String,
        /// `arch` or `brand`.
        property: Property,
        /// The GPU's value.
        value: String,
    },
}

impl fmt::Display for HostFact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostFact::Cuda {
                cuda: Some(cuda),
                driver,
            } => write!(f, "this host has CUDA {cuda} (driver {driver})"),
            HostFact::Cuda { cuda: None, driver } => {
                write!(f, "this host's CUDA version is unknown (driver {driver})")
            }
            HostFact::Driver { driver } => write!(f, "this host has driver {driver}"),
            HostFact::Gpu {
                index,
                model,
                property,
                value,
            } => {
                write!(f, "GPU {index} ({model}) has {property} {value}")
            }
        }
    }
}

/// Why a container is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `cuda>=X.Y` failed: the image needs a newer driver.
    #[error("{0}")]
    CudaTooNew(Box<CudaTooNew>),
    /// Any other condition failed.
    #[error("unsatisfied condition: {condition} ({variable}); {host}: {}", advice(.host))]
    Unsatisfied {
        /// The failing condition, e.g. `driver>=470`.
        condition: String,
        /// The variable it came from.
        variable: String,
        /// What the host has.
        host: Box<HostFact>,
    },
    /// v1's `cudaSupported` failed on the `com.nvidia.cuda.version` label.
    #[error("unsupported CUDA version: driver {driver_cuda} < image {label}")]
    V1CudaUnsupported {
        /// The driver's CUDA version, `major.minor` (`0.0` when unknown, as v1).
        driver_cuda: String,
        /// The label as written.
        label: String,
    },
    /// The `com.nvidia.cuda.version` label is not `major.minor`.
    #[error(
        "invalid label com.nvidia.cuda.version={label:?}: expected a CUDA version such as 8.0"
    )]
    BadCudaLabel {
        /// The label as written.
        label: String,
    },
    /// An `NVIDIA_REQUIRE_*` value does not parse.
    #[error("{}", bad_requirement(.variable, .value, .error))]
    BadRequirement {
        /// The variable.
        variable: String,
        /// Its value.
        value: String,
        /// What is wrong.
        error: RequireError,
    },
    /// `CUDA_VERSION` (legacy image) is not a version.
    #[error("invalid CUDA_VERSION={value:?}: expected a version such as 12.2.0; fix the image or {DISABLE}")]
    BadCudaVersion {
        /// The value.
        value: String,
    },
    /// `NVIDIA_DRIVER_CAPABILITIES` names something that is no capability.
    #[error("unknown driver capability {name:?} in NVIDIA_DRIVER_CAPABILITIES={value:?}: expected a comma list of {}", cap_names())]
    UnknownCapability {
        /// The unknown name.
        name: String,
        /// The whole value.
        value: String,
    },
    /// `NVIDIA_DRIVER_CAPABILITIES` names a capability the configuration does not allow.
    #[error("driver capability {capability} in NVIDIA_DRIVER_CAPABILITIES is not enabled on this host (supported-driver-capabilities: {supported}): remove it or ask the administrator")]
    UnsupportedCapability {
        /// The capability.
        capability: Capability,
        /// What the configuration allows.
        supported: Capabilities,
    },
    /// A device id has no known form.
    #[error("{}", bad_device_id(.id, .input))]
    BadDeviceId {
        /// The id as written.
        id: String,
        /// Where it came from.
        input: DeviceSource,
    },
    /// A device id names no device of this host.
    #[error("{}", unknown_device(.id, .input, *.mig, .gpus))]
    UnknownDevice {
        /// The id as written.
        id: String,
        /// Where it came from.
        input: DeviceSource,
        /// A MIG form.
        mig: bool,
        /// The host's GPU indexes.
        gpus: Vec<u32>,
    },
    /// A UUID prefix matches more than one device.
    #[error("ambiguous device {id} in {input}: it matches both {} and {}: give more of the UUID", .matches.first().map_or("", String::as_str), .matches.get(1).map_or("", String::as_str))]
    AmbiguousDevice {
        /// The id as written.
        id: String,
        /// Where it came from.
        input: DeviceSource,
        /// Two of the UUIDs it matches.
        matches: Vec<String>,
    },
    /// A MIG device was asked for where there is no MIG.
    #[error("{}", no_mig(.id, .input, *.gpu))]
    NoMig {
        /// The id as written.
        id: String,
        /// Where it came from.
        input: DeviceSource,
        /// The parent GPU when it exists but has MIG disabled; `None` when no
        /// GPU of the host has MIG enabled.
        gpu: Option<u32>,
    },
    /// A CDI annotation holds something that is no fully-qualified CDI name.
    #[error(
        "invalid CDI device {name:?} in {input}: expected vendor/class=name, e.g. nvidia.com/gpu=0"
    )]
    BadCdiName {
        /// The name as written.
        name: String,
        /// Where it came from.
        input: DeviceSource,
    },
    /// A CDI annotation names a device of a kind this runtime does not serve.
    #[error("CDI device {name} in {input} is not of kind {kind}, the one this runtime answers from the GPU inventory: let the engine resolve it (containerd >= 1.7 with enable_cdi, CRI-O) or remove it")]
    ForeignCdiKind {
        /// The name as written.
        name: String,
        /// Where it came from.
        input: DeviceSource,
        /// The kind served.
        kind: String,
    },
    /// `NVIDIA_VISIBLE_DEVICES` asks for the volume-mounts strategy, which
    /// the configuration does not accept.
    #[error("NVIDIA_VISIBLE_DEVICES={path} asks for the GPUs mounted under {path}, but accept-nvidia-visible-devices-as-volume-mounts is false: set it to true in the configuration (the device plugin's DEVICE_LIST_STRATEGY=volume-mounts), or use another strategy", path = crate::sources::VOLUME_MOUNT_ROOT)]
    VolumeMountsNotAccepted,
    /// IMEX channels or a gated device family that cannot be given.
    #[error("{0}")]
    ExtraDevice(Box<crate::extra_devices::ExtraDeviceRefusal>),
    /// v1's REST `vol=` names an unknown volume.
    #[error("invalid volume: {name}")]
    V1InvalidVolume {
        /// The name as written.
        name: String,
    },
}

/// The details of [`Refusal::CudaTooNew`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaTooNew {
    /// The CUDA version the image asks for.
    pub asked: Version,
    /// The table's minimum driver for it (`None`: the table has no row).
    pub min_driver: Option<Version>,
    /// The minor-version compatibility floor, when it is below `min_driver`.
    pub minor_compat_from: Option<Version>,
    /// The host's driver.
    pub driver: Version,
    /// The CUDA version the host's driver supports.
    pub host_cuda: Option<Version>,
}

impl fmt::Display for CudaTooNew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let CudaTooNew {
            asked,
            min_driver,
            minor_compat_from,
            driver,
            host_cuda,
        } = self;
        write!(f, "CUDA {asked} ")?;
        match (min_driver, minor_compat_from) {
            (Some(min), Some(c)) => write!(f, "needs driver >= {min} (minor-version compatible from {c})")?,
            (Some(min), None) => write!(f, "needs driver >= {min}")?,
            (None, Some(c)) => {
                write!(f, "needs a newer driver (minimum not in the CUDA table; minor-version compatible from {c})")?
            }
            (None, None) => f.write_str("needs a newer driver (minimum not in the CUDA table)")?,
        }
        match host_cuda {
            Some(hc) => write!(
                f,
                "; this host has {driver} with CUDA {hc}: upgrade the driver, use an image for CUDA <= {hc}, or {DISABLE}"
            ),
            None => write!(f, "; this host has {driver} with an unknown CUDA version: upgrade the driver, or {DISABLE}"),
        }
    }
}

fn advice(host: &HostFact) -> String {
    match host {
        HostFact::Cuda { .. } | HostFact::Driver { .. } => {
            format!("use another driver or another image, or {DISABLE}")
        }
        HostFact::Gpu { .. } => format!(
            "select other GPUs with NVIDIA_VISIBLE_DEVICES, use another image, or {DISABLE}"
        ),
    }
}

fn bad_requirement(variable: &str, value: &str, error: &RequireError) -> String {
    format!("invalid {variable}={value:?}: {error}; fix the image or {DISABLE}")
}

fn cap_names() -> String {
    let mut s = String::new();
    for c in Capability::ALL {
        s.push_str(c.as_str());
        s.push_str(", ");
    }
    s.push_str("or all");
    s
}

const DEVICE_FORMS: &str =
    "all, none, void, GPU indexes, GPU-/MIG- UUIDs, PCI bus ids or <gpu>:<mig>";

fn bad_device_id(id: &str, source: &DeviceSource) -> String {
    if source.is_v1() {
        return format!("invalid device: {id}");
    }
    format!("invalid device {id:?} in {source}: expected a comma list of {DEVICE_FORMS}")
}

fn describe_gpus(gpus: &[u32]) -> String {
    match gpus {
        [] => "this host has no GPU".to_owned(),
        [one] => format!("this host has 1 GPU (index {one})"),
        [first, .., last]
            if (*last as usize).checked_sub(*first as usize) == Some(gpus.len() - 1) =>
        {
            format!("this host has {} GPUs (indexes {first}-{last})", gpus.len())
        }
        _ => format!(
            "this host has {} GPUs (indexes {})",
            gpus.len(),
            gpus.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn unknown_device(id: &str, source: &DeviceSource, mig: bool, gpus: &[u32]) -> String {
    if source.is_v1() {
        return format!("invalid device: {id}");
    }
    let (what, use_) = if mig {
        ("MIG device", "a MIG-... UUID or <gpu>:<mig> index")
    } else {
        ("GPU", "an index, UUID or PCI bus id")
    };
    format!(
        "unknown {what} {id} in {source}; {}: use {use_} that nvidia-smi -L lists",
        describe_gpus(gpus)
    )
}

fn no_mig(id: &str, source: &DeviceSource, gpu: Option<u32>) -> String {
    if source.is_v1() {
        return format!("invalid device: {id}");
    }
    match gpu {
        Some(g) => format!(
            "MIG device {id} in {source}, but GPU {g} does not have MIG mode enabled: select the whole GPU, or enable MIG mode on it"
        ),
        None => format!(
            "MIG device {id} in {source}, but no GPU on this host has MIG mode enabled: select whole GPUs instead"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn gpu_descriptions() {
        assert_eq!(describe_gpus(&[]), "this host has no GPU");
        assert_eq!(describe_gpus(&[0]), "this host has 1 GPU (index 0)");
        assert_eq!(
            describe_gpus(&[0, 1, 2, 3]),
            "this host has 4 GPUs (indexes 0-3)"
        );
        assert_eq!(describe_gpus(&[0, 2]), "this host has 2 GPUs (indexes 0,2)");
    }

    #[test]
    fn cuda_variants() {
        let r = Refusal::CudaTooNew(Box::new(CudaTooNew {
            asked: v("13.4"),
            min_driver: None,
            minor_compat_from: Some(v("580.65.06")),
            driver: v("575.57.08"),
            host_cuda: Some(v("12.9")),
        }));
        assert_eq!(
            r.to_string(),
            "CUDA 13.4 needs a newer driver (minimum not in the CUDA table; minor-version compatible from 580.65.06); \
             this host has 575.57.08 with CUDA 12.9: upgrade the driver, use an image for CUDA <= 12.9, or set NVIDIA_DISABLE_REQUIRE=true"
        );
        let r = Refusal::CudaTooNew(Box::new(CudaTooNew {
            asked: v("10.2"),
            min_driver: Some(v("440.33")),
            minor_compat_from: None,
            driver: v("418.39"),
            host_cuda: None,
        }));
        assert_eq!(
            r.to_string(),
            "CUDA 10.2 needs driver >= 440.33; this host has 418.39 with an unknown CUDA version: upgrade the driver, or set NVIDIA_DISABLE_REQUIRE=true"
        );
    }
}
