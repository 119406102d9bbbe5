//! The data of `/gpu/info` (docs/v1.md §2, §5): v1's `nvidia.Device`
//! with Go's field names and order, built from the inventory and per-GPU
//! NVML facts ([`GpuFacts`], gathered by [`super::nvml`]).
//!
//! Where v1 read CUDA (`cudaGetDeviceProperties`), the values come from:
//! - `Arch`: the inventory's compute capability (NVML).
//! - `Family`: the per compute capability table in [`super::arch`].
//! - `Memory.Shared`, `Memory.Constant`, `Memory.L2Cache`: the CUDA driver
//!   API (`cuDeviceGetAttribute`, [`super::cuda`]); where libcuda cannot
//!   initialise, the table's shared memory and constant memory, and L2
//!   `null` (`N/A`).
//! - `Cores`: NVML's core count (`nvmlDeviceGetNumGpuCores`), else v1's
//!   cores per SM (the table) × CUDA's SM count; `null` when neither is known.
//! - `Memory.ECC`: NVML's current ECC mode; `Memory.Global`: NVML's total
//!   memory in MiB.
//! - `Memory.Bandwidth`: v1's `2 × memClock(MHz) × busWidth/8` from NVML's
//!   maximum memory clock and memory bus width.
//!
//! `null` wherever NVML answers NOT_SUPPORTED (v1's rule).

use serde::Serialize;

use rules::Inventory;

use super::arch;

/// `GET /gpu/info/json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    /// Driver and CUDA versions.
    #[serde(rename = "Version")]
    pub version: VersionInfo,
    /// The GPUs, by NVML index; `null` when there are none (v1's nil slice).
    #[serde(rename = "Devices")]
    pub devices: Option<Vec<Device>>,
}

/// `Version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// NVML's driver version, e.g. `375.66`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// The driver's CUDA version `major.minor` (`0.0` when unknown, as v1
    /// without libcuda).
    #[serde(rename = "CUDA")]
    pub cuda: String,
}

/// One GPU (v1's `nvidia.Device`, `nvml.Device` embedded first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// `GPU-...`.
    #[serde(rename = "UUID")]
    pub uuid: String,
    /// `/dev/nvidia<minor>`.
    #[serde(rename = "Path")]
    pub path: String,
    /// Product name.
    #[serde(rename = "Model")]
    pub model: Option<String>,
    /// Power management limit, W.
    #[serde(rename = "Power")]
    pub power: Option<u32>,
    /// NUMA node (0 when unknown, never null).
    #[serde(rename = "CPUAffinity")]
    pub cpu_affinity: Option<u32>,
    /// PCI facts.
    #[serde(rename = "PCI")]
    pub pci: PciInfo,
    /// Maximum clocks.
    #[serde(rename = "Clocks")]
    pub clocks: Clocks,
    /// Peers reachable with P2P; `null` when none.
    #[serde(rename = "Topology")]
    pub topology: Option<Vec<P2pLink>>,
    /// Architecture family.
    #[serde(rename = "Family")]
    pub family: Option<String>,
    /// Compute capability `major.minor`.
    #[serde(rename = "Arch")]
    pub arch: Option<String>,
    /// CUDA cores.
    #[serde(rename = "Cores")]
    pub cores: Option<u32>,
    /// Memory facts.
    #[serde(rename = "Memory")]
    pub memory: DeviceMemory,
}

/// `PCI`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciInfo {
    /// NVML's `busId`, verbatim.
    #[serde(rename = "BusID")]
    pub bus_id: String,
    /// BAR1 size, MiB.
    #[serde(rename = "BAR1")]
    pub bar1: Option<u64>,
    /// Maximum link bandwidth, MB/s.
    #[serde(rename = "Bandwidth")]
    pub bandwidth: Option<u32>,
}

/// `Clocks` (MHz).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Clocks {
    /// SM clock.
    #[serde(rename = "Cores")]
    pub cores: Option<u32>,
    /// Memory clock.
    #[serde(rename = "Memory")]
    pub memory: Option<u32>,
}

/// A `Topology` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct P2pLink {
    /// The peer's bus id.
    #[serde(rename = "BusID")]
    pub bus_id: String,
    /// v1's link type (see [`link_name`]).
    #[serde(rename = "Link")]
    pub link: u8,
}

/// `Memory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceMemory {
    /// ECC enabled.
    #[serde(rename = "ECC")]
    pub ecc: Option<bool>,
    /// Total memory, MiB.
    #[serde(rename = "Global")]
    pub global: Option<u64>,
    /// Shared memory per SM, KiB.
    #[serde(rename = "Shared")]
    pub shared: Option<u32>,
    /// Constant memory, KiB.
    #[serde(rename = "Constant")]
    pub constant: Option<u32>,
    /// L2 cache, KiB.
    #[serde(rename = "L2Cache")]
    pub l2_cache: Option<u32>,
    /// Memory bandwidth, MB/s.
    #[serde(rename = "Bandwidth")]
    pub bandwidth: Option<u32>,
}

/// NVML's topology levels, as v1's `P2PLinkType` integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyLevel {
    /// `NVML_TOPOLOGY_INTERNAL` (6, `Same board`).
    Internal,
    /// `NVML_TOPOLOGY_SINGLE` (5).
    Single,
    /// `NVML_TOPOLOGY_MULTIPLE` (4).
    Multiple,
    /// `NVML_TOPOLOGY_HOSTBRIDGE` (3).
    HostBridge,
    /// `NVML_TOPOLOGY_NODE`, v1's `CPU` (2).
    Node,
    /// `NVML_TOPOLOGY_SYSTEM` (1).
    System,
    /// Unknown or unsupported (0).
    Unknown,
}

impl TopologyLevel {
    /// v1's integer (docs/v1.md §5 table).
    pub fn v1_link(self) -> u8 {
        match self {
            TopologyLevel::Unknown => 0,
            TopologyLevel::System => 1,
            TopologyLevel::Node => 2,
            TopologyLevel::HostBridge => 3,
            TopologyLevel::Multiple => 4,
            TopologyLevel::Single => 5,
            TopologyLevel::Internal => 6,
        }
    }
}

/// v1's text for a link integer.
pub fn link_name(link: u8) -> &'static str {
    match link {
        1 => "Cross CPU socket",
        2 => "Same CPU socket",
        3 => "Host PCI bridge",
        4 => "Multiple PCI switches",
        5 => "Single PCI switch",
        6 => "Same board",
        _ => "N/A",
    }
}

/// PCIe per-lane bandwidth in MB/s by generation: v1's table (1–4) and
/// the PCI-SIG figures for 5 and 6.
pub fn pcie_lane_mbps(generation: u32) -> Option<u32> {
    Some(match generation {
        1 => 250,
        2 => 500,
        3 => 985,
        4 => 1969,
        5 => 3938,
        6 => 7877,
        _ => return None,
    })
}

/// A peer with P2P.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its NVML index.
    pub index: u32,
    /// The common ancestor level.
    pub level: TopologyLevel,
}

/// What NVML says about one GPU, beyond the inventory (`None`: NOT_SUPPORTED).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuFacts {
    /// `nvmlPciInfo_t.busId`.
    pub bus_id: Option<String>,
    /// Power management limit, mW.
    pub power_limit_mw: Option<u32>,
    /// NUMA node (negative: none).
    pub numa_node: Option<i64>,
    /// BAR1 total, bytes.
    pub bar1_total: Option<u64>,
    /// Maximum PCIe generation.
    pub pcie_max_gen: Option<u32>,
    /// Maximum PCIe width.
    pub pcie_max_width: Option<u32>,
    /// Maximum SM clock, MHz.
    pub max_sm_clock: Option<u32>,
    /// Maximum memory clock, MHz.
    pub max_mem_clock: Option<u32>,
    /// Peers with P2P, by index.
    pub peers: Vec<Peer>,
    /// ECC mode.
    pub ecc: Option<bool>,
    /// Total memory, bytes.
    pub memory_total: Option<u64>,
    /// Memory bus width, bits.
    pub memory_bus_width: Option<u32>,
    /// CUDA cores.
    pub cores: Option<u32>,
    /// What the CUDA driver API says (`cuDeviceGetAttribute`, see
    /// [`super::cuda`]); all `None` where libcuda could not initialise.
    pub cuda: CudaFacts,
}

/// The CUDA attributes v1 read with `cudaGetDeviceProperties` (`None`: not
/// known).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CudaFacts {
    /// Streaming multiprocessors.
    pub sm_count: Option<u32>,
    /// L2 cache, bytes.
    pub l2_cache: Option<u32>,
    /// Shared memory per SM, bytes.
    pub shared_memory_per_sm: Option<u32>,
    /// Constant memory, bytes.
    pub constant_memory: Option<u32>,
}

const MIB: u64 = 1024 * 1024;

/// Bytes to KiB, as v1 divided `cudaDeviceProp` sizes.
fn kib(bytes: Option<u32>) -> Option<u32> {
    bytes.map(|b| b / 1024)
}

/// `/gpu/info` for an inventory and the facts of its GPUs (same order as
/// `inv.gpus`; missing facts read as NOT_SUPPORTED).
pub fn build(inv: &Inventory, facts: &[GpuFacts]) -> GpuInfo {
    let cuda = inv.cuda_version.as_ref().map_or_else(
        || "0.0".to_owned(),
        |v| format!("{}.{}", v.major(), v.minor()),
    );
    let mut gpus: Vec<&rules::Gpu> = inv.gpus.iter().collect();
    gpus.sort_by_key(|g| g.index);
    let default = GpuFacts::default();
    let bus_of = |i: usize| -> String {
        let g = gpus[i];
        facts
            .get(i)
            .and_then(|f| f.bus_id.clone())
            .unwrap_or_else(|| g.bus_id.to_string())
    };
    let devices: Vec<Device> = gpus
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let f = facts.get(i).unwrap_or(&default);
            let arch_facts = arch::facts(g.arch.major(), g.arch.minor());
            let family = arch_facts
                .map(|a| a.family)
                .or_else(|| arch::family_by_major(g.arch.major()));
            let topology: Vec<P2pLink> = f
                .peers
                .iter()
                .filter_map(|p| {
                    let j = gpus.iter().position(|o| o.index == p.index)?;
                    Some(P2pLink {
                        bus_id: bus_of(j),
                        link: p.level.v1_link(),
                    })
                })
                .collect();
            Device {
                uuid: g.uuid.clone(),
                path: format!("/dev/nvidia{}", g.minor),
                model: Some(g.model.clone()).filter(|m| !m.is_empty()),
                power: f.power_limit_mw.map(|mw| mw / 1000),
                cpu_affinity: Some(f.numa_node.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)),
                pci: PciInfo {
                    bus_id: bus_of(i),
                    bar1: f.bar1_total.map(|b| b / MIB),
                    bandwidth: f
                        .pcie_max_gen
                        .and_then(pcie_lane_mbps)
                        .zip(f.pcie_max_width)
                        .map(|(lane, width)| lane.saturating_mul(width)),
                },
                clocks: Clocks {
                    cores: f.max_sm_clock,
                    memory: f.max_mem_clock,
                },
                topology: (!topology.is_empty()).then_some(topology),
                family: family.map(str::to_owned),
                arch: Some(format!("{}.{}", g.arch.major(), g.arch.minor())),
                // v1: cores per SM × SMs; NVML's own count when it has one.
                cores: f.cores.or_else(|| {
                    f.cuda
                        .sm_count
                        .zip(arch_facts)
                        .map(|(sms, a)| sms.saturating_mul(a.cores_per_sm))
                }),
                memory: DeviceMemory {
                    ecc: f.ecc,
                    global: f.memory_total.map(|b| b / MIB),
                    shared: kib(f.cuda.shared_memory_per_sm)
                        .or_else(|| arch_facts.map(|a| a.shared_kib)),
                    constant: kib(f.cuda.constant_memory)
                        .or_else(|| arch_facts.map(|_| arch::CONSTANT_KIB)),
                    l2_cache: kib(f.cuda.l2_cache),
                    bandwidth: f
                        .max_mem_clock
                        .zip(f.memory_bus_width)
                        .map(|(mhz, width)| 2u32.saturating_mul(mhz).saturating_mul(width / 8)),
                },
            }
        })
        .collect();
    GpuInfo {
        version: VersionInfo {
            driver: inv.driver_version.to_string(),
            cuda,
        },
        devices: (!devices.is_empty()).then_some(devices),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_table() {
        let names: Vec<&str> = [
            TopologyLevel::Unknown,
            TopologyLevel::System,
            TopologyLevel::Node,
            TopologyLevel::HostBridge,
            TopologyLevel::Multiple,
            TopologyLevel::Single,
            TopologyLevel::Internal,
        ]
        .iter()
        .map(|l| link_name(l.v1_link()))
        .collect();
        assert_eq!(
            names,
            [
                "N/A",
                "Cross CPU socket",
                "Same CPU socket",
                "Host PCI bridge",
                "Multiple PCI switches",
                "Single PCI switch",
                "Same board"
            ]
        );
    }

    #[test]
    fn v1_bandwidth_arithmetic() {
        // K80: PCIe 3 x16, 2505 MHz, 384 bits (docs/v1.md §2 example).
        assert_eq!(pcie_lane_mbps(3).unwrap() * 16, 15760);
        assert_eq!(2 * 2505 * (384 / 8), 240480);
    }
}
