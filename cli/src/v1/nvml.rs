//! NVML queries of the daemon: the NVML-only facts of `/gpu/info` (once per
//! inventory) and the live `/gpu/status` (each request). Only the daemon
//! calls these, on a blocking worker thread; the shim and `cli-options`
//! never load NVML.
//!
//! NOT_SUPPORTED maps to `None`/`null`; any other NVML error fails the query
//! (v1's rule, docs/v1.md §5).

use std::path::{Path, PathBuf};

use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, MemoryLocation, P2pCapabilitiesIndex, P2pStatus,
    PcieUtilCounter, TemperatureSensor, TopologyLevel as NvmlLevel,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use rules::Inventory;

use super::info::{Clocks, GpuFacts, Peer, TopologyLevel};
use super::status::{
    DeviceStatus, EccErrors, GpuStatus, MemoryStatus, PciStatus, ProcessInfo, Throughput,
    Utilization,
};

/// An NVML failure.
#[derive(Debug, thiserror::Error)]
pub enum NvmlQueryError {
    /// The library could not be loaded or initialised.
    #[error("could not load NVML library {}", lib.display())]
    Init {
        /// The library.
        lib: PathBuf,
        /// Why.
        #[source]
        source: NvmlError,
    },
    /// A query failed.
    #[error("nvml: {what} of GPU {gpu}")]
    Query {
        /// The NVML call.
        what: &'static str,
        /// The GPU (UUID).
        gpu: String,
        /// Why.
        #[source]
        source: NvmlError,
    },
}

/// Loads and initialises NVML from `lib`.
pub fn open(lib: &Path) -> Result<Nvml, NvmlQueryError> {
    Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .map_err(|source| NvmlQueryError::Init {
            lib: lib.to_path_buf(),
            source,
        })
}

/// NOT_SUPPORTED (and a symbol missing from an old driver) → `None`.
fn opt<T>(
    r: Result<T, NvmlError>,
    what: &'static str,
    gpu: &str,
) -> Result<Option<T>, NvmlQueryError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => Ok(None),
        Err(source) => Err(NvmlQueryError::Query {
            what,
            gpu: gpu.to_owned(),
            source,
        }),
    }
}

fn device<'n>(nvml: &'n Nvml, uuid: &str) -> Result<Device<'n>, NvmlQueryError> {
    nvml.device_by_uuid(uuid)
        .map_err(|source| NvmlQueryError::Query {
            what: "nvmlDeviceGetHandleByUUID",
            gpu: uuid.to_owned(),
            source,
        })
}

fn level(l: NvmlLevel) -> TopologyLevel {
    match l {
        NvmlLevel::Internal => TopologyLevel::Internal,
        NvmlLevel::Single => TopologyLevel::Single,
        NvmlLevel::Multiple => TopologyLevel::Multiple,
        NvmlLevel::HostBridge => TopologyLevel::HostBridge,
        NvmlLevel::Node => TopologyLevel::Node,
        NvmlLevel::System => TopologyLevel::System,
    }
}

const MIB: u64 = 1024 * 1024;

/// The NVML facts of each inventory GPU, in `inv.gpus` index order.
pub fn facts(nvml: &Nvml, inv: &Inventory) -> Result<Vec<GpuFacts>, NvmlQueryError> {
    let mut gpus: Vec<&rules::Gpu> = inv.gpus.iter().collect();
    gpus.sort_by_key(|g| g.index);
    let handles = gpus
        .iter()
        .map(|g| device(nvml, &g.uuid))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(gpus.len());
    for (i, (g, d)) in gpus.iter().zip(&handles).enumerate() {
        let u = g.uuid.as_str();
        let mut peers = Vec::new();
        for (j, (other, od)) in gpus.iter().zip(&handles).enumerate() {
            if i == j {
                continue;
            }
            let p2p = opt(
                d.p2p_status(od, P2pCapabilitiesIndex::Read),
                "nvmlDeviceGetP2PStatus",
                u,
            )?;
            if p2p != Some(P2pStatus::Ok) {
                continue;
            }
            // v1: a missing or failing nvmlDeviceGetTopologyCommonAncestor is 0.
            let l = d
                .topology_common_ancestor(device(nvml, &other.uuid)?)
                .map_or(TopologyLevel::Unknown, level);
            peers.push(Peer {
                index: other.index,
                level: l,
            });
        }
        let memory = opt(d.memory_info(), "nvmlDeviceGetMemoryInfo", u)?;
        out.push(GpuFacts {
            bus_id: opt(d.pci_info(), "nvmlDeviceGetPciInfo", u)?.map(|p| p.bus_id),
            power_limit_mw: opt(
                d.power_management_limit(),
                "nvmlDeviceGetPowerManagementLimit",
                u,
            )?,
            numa_node: opt(d.numa_node_id(), "nvmlDeviceGetNumaNodeId", u)?
                .map(|n| i64::from(n as i32))
                .or_else(|| sysfs_numa_node(g)),
            bar1_total: opt(d.bar1_memory_info(), "nvmlDeviceGetBAR1MemoryInfo", u)?
                .map(|b| b.total),
            pcie_max_gen: opt(
                d.max_pcie_link_gen(),
                "nvmlDeviceGetMaxPcieLinkGeneration",
                u,
            )?,
            pcie_max_width: opt(d.max_pcie_link_width(), "nvmlDeviceGetMaxPcieLinkWidth", u)?,
            max_sm_clock: opt(d.max_clock_info(Clock::SM), "nvmlDeviceGetMaxClockInfo", u)?,
            max_mem_clock: opt(
                d.max_clock_info(Clock::Memory),
                "nvmlDeviceGetMaxClockInfo",
                u,
            )?,
            peers,
            ecc: opt(d.is_ecc_enabled(), "nvmlDeviceGetEccMode", u)?.map(|e| e.currently_enabled),
            memory_total: memory.map(|m| m.total),
            memory_bus_width: opt(d.memory_bus_width(), "nvmlDeviceGetMemoryBusWidth", u)?,
            cores: opt(d.num_cores(), "nvmlDeviceGetNumGpuCores", u)?,
            cuda: Default::default(),
        });
    }
    Ok(out)
}

/// v1's source of `CPUAffinity`: `/sys/bus/pci/devices/<bus id>/numa_node`
/// (tried with both domain widths); used when NVML has no NUMA node.
fn sysfs_numa_node(g: &rules::Gpu) -> Option<i64> {
    g.bus_id.proc_names().iter().find_map(|name| {
        let path = Path::new("/sys/bus/pci/devices")
            .join(name.to_ascii_lowercase())
            .join("numa_node");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
}

/// v1 asked NVML for at most 64 characters of a process name.
const PROCESS_NAME_LEN: usize = 64;

/// The live status of each inventory GPU, by index.
pub fn status(nvml: &Nvml, inv: &Inventory) -> Result<GpuStatus, NvmlQueryError> {
    let mut gpus: Vec<&rules::Gpu> = inv.gpus.iter().collect();
    gpus.sort_by_key(|g| g.index);
    let mut devices = Vec::with_capacity(gpus.len());
    for g in gpus {
        let u = g.uuid.as_str();
        let d = device(nvml, u)?;
        let rates = opt(d.utilization_rates(), "nvmlDeviceGetUtilizationRates", u)?;
        let l1 = opt(
            d.memory_error_counter(
                MemoryError::Uncorrected,
                EccCounter::Volatile,
                MemoryLocation::L1Cache,
            ),
            "nvmlDeviceGetMemoryErrorCounter",
            u,
        )?;
        // v1: all three are null when L1 is not supported.
        let ecc_errors = if l1.is_some() {
            let count = |loc| {
                opt(
                    d.memory_error_counter(MemoryError::Uncorrected, EccCounter::Volatile, loc),
                    "nvmlDeviceGetMemoryErrorCounter",
                    u,
                )
            };
            EccErrors {
                l1_cache: l1,
                l2_cache: count(MemoryLocation::L2Cache)?,
                global: count(MemoryLocation::Device)?,
            }
        } else {
            EccErrors::default()
        };
        let processes = opt(
            d.running_compute_processes(),
            "nvmlDeviceGetComputeRunningProcesses",
            u,
        )?
        .unwrap_or_default();
        let mut procs = Vec::with_capacity(processes.len());
        for p in processes {
            let name = match nvml.sys_process_name(p.pid, PROCESS_NAME_LEN) {
                Ok(n) => n,
                // The process ended between the two calls.
                Err(NvmlError::NotFound | NvmlError::NotSupported) => String::new(),
                Err(source) => {
                    return Err(NvmlQueryError::Query {
                        what: "nvmlSystemGetProcessName",
                        gpu: u.to_owned(),
                        source,
                    })
                }
            };
            procs.push(ProcessInfo {
                pid: p.pid,
                name,
                memory_used: match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b / MIB),
                    UsedGpuMemory::Unavailable => None,
                },
            });
        }
        devices.push(DeviceStatus {
            power: opt(d.power_usage(), "nvmlDeviceGetPowerUsage", u)?.map(|mw| mw / 1000),
            temperature: opt(
                d.temperature(TemperatureSensor::Gpu),
                "nvmlDeviceGetTemperature",
                u,
            )?,
            utilization: Utilization {
                gpu: rates.as_ref().map(|r| r.gpu),
                memory: rates.as_ref().map(|r| r.memory),
                encoder: opt(
                    d.encoder_utilization(),
                    "nvmlDeviceGetEncoderUtilization",
                    u,
                )?
                .map(|e| e.utilization),
                decoder: opt(
                    d.decoder_utilization(),
                    "nvmlDeviceGetDecoderUtilization",
                    u,
                )?
                .map(|e| e.utilization),
            },
            memory: MemoryStatus {
                global_used: opt(d.memory_info(), "nvmlDeviceGetMemoryInfo", u)?
                    .map(|m| m.used / MIB),
                ecc_errors,
            },
            clocks: Clocks {
                cores: opt(d.clock_info(Clock::SM), "nvmlDeviceGetClockInfo", u)?,
                memory: opt(d.clock_info(Clock::Memory), "nvmlDeviceGetClockInfo", u)?,
            },
            pci: PciStatus {
                bar1_used: opt(d.bar1_memory_info(), "nvmlDeviceGetBAR1MemoryInfo", u)?
                    .map(|b| b.used / MIB),
                throughput: Throughput {
                    rx: opt(
                        d.pcie_throughput(PcieUtilCounter::Receive),
                        "nvmlDeviceGetPcieThroughput",
                        u,
                    )?
                    .map(|k| k / 1000),
                    tx: opt(
                        d.pcie_throughput(PcieUtilCounter::Send),
                        "nvmlDeviceGetPcieThroughput",
                        u,
                    )?
                    .map(|k| k / 1000),
                },
            },
            processes: (!procs.is_empty()).then_some(procs),
        });
    }
    Ok(GpuStatus { devices })
}
