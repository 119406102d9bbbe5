//! NVML, through `nvml-wrapper`, loaded from a given library path.
//!
//! [`query`] runs in the calling process: NVML may start threads and may
//! take seconds (a GPU without persistence mode initialises on first open),
//! so the hook never calls it in a process that will `setns` into a
//! container; it runs [`query`] in a child (`discover::probe`). The plugin
//! daemon may call it on a worker thread.
//!
//! `NVML_ERROR_NOT_SUPPORTED` on a per-GPU query makes that fact absent
//! (`None`), as v1's REST API showed `null`; so does a function the loaded
//! NVML does not export (an older driver). Every other failure is an
//! [`NvmlError`] naming the call, the GPU, NVML's error code and message, and
//! the library path tried.
#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use nvml_wrapper::enum_wrappers::device::Brand;
use nvml_wrapper::enums::device::DeviceArchitecture;
use nvml_wrapper::error::NvmlError as WrapperError;
use nvml_wrapper::Nvml;
use serde::{Deserialize, Serialize};

/// What NVML says about the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmlFacts {
    /// The library that answered.
    pub lib: PathBuf,
    /// `nvmlSystemGetDriverVersion`, e.g. `535.104.05`.
    pub driver_version: String,
    /// `nvmlSystemGetCudaDriverVersion_v2`: `major*1000 + minor*10`; absent
    /// when NVML cannot say (no `libcuda`).
    pub cuda_driver_version: Option<i32>,
    /// `nvmlSystemGetNVMLVersion`.
    pub nvml_version: Option<String>,
    /// The GPUs, by NVML index.
    pub gpus: Vec<GpuFacts>,
}

/// What NVML says about one GPU; `None` where NVML answered NOT_SUPPORTED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuFacts {
    /// NVML index.
    pub index: u32,
    /// `nvmlDeviceGetMinorNumber`: `/dev/nvidia<minor>`.
    pub minor: Option<u32>,
    /// `nvmlDeviceGetUUID`.
    pub uuid: Option<String>,
    /// `nvmlDeviceGetPciInfo`'s `busId`, e.g. `00000000:07:00.0`.
    pub bus_id: Option<String>,
    /// `nvmlDeviceGetName`.
    pub name: Option<String>,
    /// `nvmlDeviceGetBrand`, named as the toolkit and the host description
    /// name it (`Tesla`, `GeForce`, `NvidiaRTX`, `GRID`, ...).
    pub brand: Option<String>,
    /// `nvmlDeviceGetCudaComputeCapability`: `(major, minor)`.
    pub compute_capability: Option<(i32, i32)>,
    /// `nvmlDeviceGetArchitecture`, e.g. `Ampere`.
    pub architecture: Option<String>,
    /// `nvmlDeviceGetMigMode`'s current mode.
    pub mig_enabled: Option<bool>,
    /// The MIG devices, when MIG mode is enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mig: Vec<MigFacts>,
}

/// What NVML says about one MIG device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigFacts {
    /// `nvmlDeviceGetMigDeviceHandleByIndex`'s index.
    pub index: u32,
    /// `nvmlDeviceGetUUID` of the MIG handle, `MIG-...`.
    pub uuid: String,
    /// `nvmlDeviceGetGpuInstanceId`.
    pub gi: u32,
    /// `nvmlDeviceGetComputeInstanceId`.
    pub ci: u32,
}

/// NVML's return codes (`nvmlReturn_t`), plus the wrapper's own failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum NvmlCode {
    Uninitialized,
    InvalidArgument,
    NotSupported,
    NoPermission,
    AlreadyInitialized,
    NotFound,
    InsufficientSize,
    InsufficientPower,
    DriverNotLoaded,
    Timeout,
    IrqIssue,
    LibraryNotFound,
    FunctionNotFound,
    CorruptedInforom,
    GpuIsLost,
    ResetRequired,
    OperatingSystem,
    LibRmVersionMismatch,
    InUse,
    Memory,
    NoData,
    VgpuEccNotSupported,
    Unknown,
    /// Not an NVML code: NVML answered something the wrapper could not
    /// interpret (bad UTF-8, an unknown enum value, ...).
    InvalidAnswer,
}

impl NvmlCode {
    /// NVML's name for the code, e.g. `NVML_ERROR_DRIVER_NOT_LOADED`.
    pub fn name(self) -> &'static str {
        use NvmlCode::*;
        match self {
            Uninitialized => "NVML_ERROR_UNINITIALIZED",
            InvalidArgument => "NVML_ERROR_INVALID_ARGUMENT",
            NotSupported => "NVML_ERROR_NOT_SUPPORTED",
            NoPermission => "NVML_ERROR_NO_PERMISSION",
            AlreadyInitialized => "NVML_ERROR_ALREADY_INITIALIZED",
            NotFound => "NVML_ERROR_NOT_FOUND",
            InsufficientSize => "NVML_ERROR_INSUFFICIENT_SIZE",
            InsufficientPower => "NVML_ERROR_INSUFFICIENT_POWER",
            DriverNotLoaded => "NVML_ERROR_DRIVER_NOT_LOADED",
            Timeout => "NVML_ERROR_TIMEOUT",
            IrqIssue => "NVML_ERROR_IRQ_ISSUE",
            LibraryNotFound => "NVML_ERROR_LIBRARY_NOT_FOUND",
            FunctionNotFound => "NVML_ERROR_FUNCTION_NOT_FOUND",
            CorruptedInforom => "NVML_ERROR_CORRUPTED_INFOROM",
            GpuIsLost => "NVML_ERROR_GPU_IS_LOST",
            ResetRequired => "NVML_ERROR_RESET_REQUIRED",
            OperatingSystem => "NVML_ERROR_OPERATING_SYSTEM",
            LibRmVersionMismatch => "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
            InUse => "NVML_ERROR_IN_USE",
            Memory => "NVML_ERROR_MEMORY",
            NoData => "NVML_ERROR_NO_DATA",
            VgpuEccNotSupported => "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED",
            Unknown => "NVML_ERROR_UNKNOWN",
            InvalidAnswer => "invalid answer",
        }
    }
}

impl fmt::Display for NvmlCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An NVML failure. Serializable, so that the probe child can hand it to
/// the parent intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum NvmlError {
    /// The library could not be loaded (`dlopen`).
    #[error("cannot load NVML library {}: {message}", lib.display())]
    Load {
        /// The library path tried.
        lib: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// A call failed.
    #[error("NVML library {}: {call}{} failed: {code}: {message}", lib.display(), gpu.map(|g| format!(" on GPU {g}")).unwrap_or_default())]
    Call {
        /// The library path tried.
        lib: PathBuf,
        /// The NVML function, e.g. `nvmlInit_v2`.
        call: String,
        /// The GPU (NVML index), for per-GPU calls.
        gpu: Option<u32>,
        /// NVML's code.
        code: NvmlCode,
        /// NVML's message for it.
        message: String,
    },
}

impl NvmlError {
    /// NVML's code, for a failed call.
    pub fn code(&self) -> Option<NvmlCode> {
        match self {
            NvmlError::Call { code, .. } => Some(*code),
            NvmlError::Load { .. } => None,
        }
    }
}

#[allow(deprecated)]
fn code_of(e: &WrapperError) -> NvmlCode {
    use NvmlCode as C;
    use WrapperError as W;
    match e {
        W::Uninitialized => C::Uninitialized,
        W::InvalidArg => C::InvalidArgument,
        W::NotSupported => C::NotSupported,
        W::NoPermission => C::NoPermission,
        W::AlreadyInitialized => C::AlreadyInitialized,
        W::NotFound => C::NotFound,
        W::InsufficientSize(_) => C::InsufficientSize,
        W::InsufficientPower => C::InsufficientPower,
        W::DriverNotLoaded => C::DriverNotLoaded,
        W::Timeout => C::Timeout,
        W::IrqIssue => C::IrqIssue,
        W::LibraryNotFound => C::LibraryNotFound,
        W::FunctionNotFound | W::FailedToLoadSymbol(_) => C::FunctionNotFound,
        W::CorruptedInfoROM => C::CorruptedInforom,
        W::GpuLost => C::GpuIsLost,
        W::ResetRequired => C::ResetRequired,
        W::OperatingSystem => C::OperatingSystem,
        W::LibRmVersionMismatch => C::LibRmVersionMismatch,
        W::InUse => C::InUse,
        W::InsufficientMemory => C::Memory,
        W::NoData => C::NoData,
        W::VgpuEccNotSupported => C::VgpuEccNotSupported,
        W::Unknown => C::Unknown,
        _ => C::InvalidAnswer,
    }
}

/// One NVML session's context for errors.
struct Ctx<'a> {
    lib: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, call: &str, gpu: Option<u32>, e: WrapperError) -> NvmlError {
        NvmlError::Call {
            lib: self.lib.to_path_buf(),
            call: call.to_owned(),
            gpu,
            code: code_of(&e),
            message: e.to_string(),
        }
    }

    /// A required answer.
    fn must<T>(
        &self,
        call: &str,
        gpu: Option<u32>,
        r: Result<T, WrapperError>,
    ) -> Result<T, NvmlError> {
        r.map_err(|e| self.err(call, gpu, e))
    }

    /// An optional answer: NOT_SUPPORTED, or a function this NVML lacks,
    /// is absent.
    fn may<T>(
        &self,
        call: &str,
        gpu: Option<u32>,
        r: Result<T, WrapperError>,
    ) -> Result<Option<T>, NvmlError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(
                WrapperError::NotSupported
                | WrapperError::FailedToLoadSymbol(_)
                | WrapperError::FunctionNotFound,
            ) => Ok(None),
            Err(e) => Err(self.err(call, gpu, e)),
        }
    }
}

/// The brand as the toolkit and the host description name it.
pub fn brand_name(brand: &Brand) -> &'static str {
    match brand {
        Brand::Unknown => "Unknown",
        Brand::Quadro => "Quadro",
        Brand::Tesla => "Tesla",
        Brand::NVS => "NVS",
        Brand::GRID => "GRID",
        Brand::GeForce => "GeForce",
        Brand::Titan => "Titan",
        Brand::VApps => "NvidiaVApps",
        Brand::VPC => "NvidiaVPC",
        Brand::VCS => "NvidiaVCS",
        Brand::VWS => "NvidiaVWS",
        // Same NVML value (11).
        Brand::CloudGaming | Brand::VGaming => "NvidiaCloudGaming",
        Brand::QuadroRTX => "QuadroRTX",
        Brand::NvidiaRTX => "NvidiaRTX",
        Brand::Nvidia => "Nvidia",
        Brand::GeForceRTX => "GeForceRTX",
        Brand::TitanRTX => "TitanRTX",
    }
}

fn architecture_name(arch: &DeviceArchitecture) -> &'static str {
    match arch {
        DeviceArchitecture::Kepler => "Kepler",
        DeviceArchitecture::Maxwell => "Maxwell",
        DeviceArchitecture::Pascal => "Pascal",
        DeviceArchitecture::Volta => "Volta",
        DeviceArchitecture::Turing => "Turing",
        DeviceArchitecture::Ampere => "Ampere",
        DeviceArchitecture::Ada => "Ada",
        DeviceArchitecture::Hopper => "Hopper",
        DeviceArchitecture::Blackwell => "Blackwell",
        DeviceArchitecture::Unknown => "Unknown",
    }
}

/// The MIG devices of a MIG-enabled GPU, as the toolkit enumerates them:
/// every index below `nvmlDeviceGetMaxMigDeviceCount`, skipping the
/// NOT_FOUND ones (MIG device slots need not be contiguous).
fn mig_devices(
    ctx: &Ctx<'_>,
    nvml: &Nvml,
    dev: &nvml_wrapper::Device<'_>,
    index: u32,
) -> Result<Vec<MigFacts>, NvmlError> {
    let g = Some(index);
    let Some(max) = ctx.may("nvmlDeviceGetMaxMigDeviceCount", g, dev.mig_device_count())? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for k in 0..max {
        let mig = match dev.mig_device_by_index(k) {
            Ok(m) => m,
            Err(WrapperError::NotFound) => continue,
            Err(e) => return Err(ctx.err("nvmlDeviceGetMigDeviceHandleByIndex", g, e)),
        };
        let uuid = ctx.must("nvmlDeviceGetUUID (MIG device)", g, mig.uuid())?;
        let (gi, ci) = ctx.must(
            "nvmlDeviceGetGpuInstanceId/nvmlDeviceGetComputeInstanceId",
            g,
            crate::sys::nvml::mig_instance_ids(nvml, &mig),
        )?;
        out.push(MigFacts {
            index: k,
            uuid,
            gi,
            ci,
        });
    }
    Ok(out)
}

/// Loads NVML from `lib`, initialises it and reads the driver, CUDA and
/// per-GPU facts, in this process. NVML is shut down before returning.
pub fn query(lib: &Path) -> Result<NvmlFacts, NvmlError> {
    let ctx = Ctx { lib };
    let nvml = Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .map_err(|e| match e {
            WrapperError::LibloadingError(l) => NvmlError::Load {
                lib: lib.to_path_buf(),
                message: l.to_string(),
            },
            other => ctx.err("nvmlInit_v2", None, other),
        })?;
    let driver_version = ctx.must(
        "nvmlSystemGetDriverVersion",
        None,
        nvml.sys_driver_version(),
    )?;
    let cuda_driver_version = match nvml.sys_cuda_driver_version() {
        Ok(v) => Some(v),
        // No libcuda: `_v2` says LIBRARY_NOT_FOUND (docs/cuda.md §1.3).
        Err(WrapperError::LibraryNotFound) => None,
        Err(e) => ctx.may("nvmlSystemGetCudaDriverVersion_v2", None, Err(e))?,
    };
    let nvml_version = ctx.may("nvmlSystemGetNVMLVersion", None, nvml.sys_nvml_version())?;
    let count = ctx.must("nvmlDeviceGetCount_v2", None, nvml.device_count())?;
    let mut gpus = Vec::with_capacity(count as usize);
    for index in 0..count {
        let g = Some(index);
        let dev = ctx.must(
            "nvmlDeviceGetHandleByIndex_v2",
            g,
            nvml.device_by_index(index),
        )?;
        let mig_enabled = ctx
            .may("nvmlDeviceGetMigMode", g, dev.mig_mode())?
            .map(|m| m.current != 0);
        let mig = if mig_enabled == Some(true) {
            mig_devices(&ctx, &nvml, &dev, index)?
        } else {
            Vec::new()
        };
        gpus.push(GpuFacts {
            index,
            minor: ctx.may("nvmlDeviceGetMinorNumber", g, dev.minor_number())?,
            uuid: ctx.may("nvmlDeviceGetUUID", g, dev.uuid())?,
            bus_id: ctx
                .may("nvmlDeviceGetPciInfo_v3", g, dev.pci_info())?
                .map(|p| p.bus_id),
            name: ctx.may("nvmlDeviceGetName", g, dev.name())?,
            brand: ctx
                .may("nvmlDeviceGetBrand", g, dev.brand())?
                .map(|b| brand_name(&b).to_owned()),
            compute_capability: ctx
                .may(
                    "nvmlDeviceGetCudaComputeCapability",
                    g,
                    dev.cuda_compute_capability(),
                )?
                .map(|c| (c.major, c.minor)),
            architecture: ctx
                .may("nvmlDeviceGetArchitecture", g, dev.architecture())?
                .map(|a| architecture_name(&a).to_owned()),
            mig_enabled,
            mig,
        });
    }
    Ok(NvmlFacts {
        lib: lib.to_path_buf(),
        driver_version,
        cuda_driver_version,
        nvml_version,
        gpus,
    })
}
