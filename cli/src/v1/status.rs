//! The data of `/gpu/status` (docs/v1.md §2, §5): v1's
//! `nvml.DeviceStatus` with Go's field names and order. Queried live from
//! NVML on each request ([`super::nvml::status`]).

use serde::Serialize;

/// `GET /gpu/status/json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuStatus {
    /// One entry per GPU, by NVML index.
    #[serde(rename = "Devices")]
    pub devices: Vec<DeviceStatus>,
}

/// One GPU's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// Power usage, W.
    #[serde(rename = "Power")]
    pub power: Option<u32>,
    /// GPU temperature, °C.
    #[serde(rename = "Temperature")]
    pub temperature: Option<u32>,
    /// Utilization, %.
    #[serde(rename = "Utilization")]
    pub utilization: Utilization,
    /// Memory.
    #[serde(rename = "Memory")]
    pub memory: MemoryStatus,
    /// Current clocks, MHz.
    #[serde(rename = "Clocks")]
    pub clocks: super::info::Clocks,
    /// PCI.
    #[serde(rename = "PCI")]
    pub pci: PciStatus,
    /// Compute processes; `null` when none.
    #[serde(rename = "Processes")]
    pub processes: Option<Vec<ProcessInfo>>,
}

/// `Utilization`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Utilization {
    /// GPU.
    #[serde(rename = "GPU")]
    pub gpu: Option<u32>,
    /// Memory.
    #[serde(rename = "Memory")]
    pub memory: Option<u32>,
    /// Encoder.
    #[serde(rename = "Encoder")]
    pub encoder: Option<u32>,
    /// Decoder.
    #[serde(rename = "Decoder")]
    pub decoder: Option<u32>,
}

/// `Memory`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStatus {
    /// Used memory, MiB.
    #[serde(rename = "GlobalUsed")]
    pub global_used: Option<u64>,
    /// Volatile uncorrected ECC error counts.
    #[serde(rename = "ECCErrors")]
    pub ecc_errors: EccErrors,
}

/// `ECCErrors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EccErrors {
    /// L1 cache.
    #[serde(rename = "L1Cache")]
    pub l1_cache: Option<u64>,
    /// L2 cache.
    #[serde(rename = "L2Cache")]
    pub l2_cache: Option<u64>,
    /// Device memory.
    #[serde(rename = "Global")]
    pub global: Option<u64>,
}

/// `PCI`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PciStatus {
    /// BAR1 used, MiB.
    #[serde(rename = "BAR1Used")]
    pub bar1_used: Option<u64>,
    /// PCIe throughput, MB/s.
    #[serde(rename = "Throughput")]
    pub throughput: Throughput,
}

/// `Throughput`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Throughput {
    /// Received.
    #[serde(rename = "RX")]
    pub rx: Option<u32>,
    /// Sent.
    #[serde(rename = "TX")]
    pub tx: Option<u32>,
}

/// A compute process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// Process id.
    #[serde(rename = "PID")]
    pub pid: u32,
    /// Its name (at most 64 characters, as v1 asked NVML).
    #[serde(rename = "Name")]
    pub name: String,
    /// GPU memory used, MiB.
    #[serde(rename = "MemoryUsed")]
    pub memory_used: Option<u64>,
}
