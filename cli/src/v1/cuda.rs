//! The CUDA part of `/gpu/info`: SM count, L2 cache, shared memory per SM
//! and constant memory from the libcuda [`crate::host::cuda_lib`] names
//! (`hook::sys::cuda`, the CUDA driver API through `cudarc`), matched to the
//! inventory's GPUs by UUID. Where libcuda cannot initialise (no usable GPU,
//! a stub library), the facts stay empty and `/gpu/info` keeps its
//! NVML-and-table values (see [`super::info`]).

use std::path::Path;

use hook::sys::cuda::{device_attributes, DeviceAttributes};
use rules::Inventory;

use super::info::{CudaFacts, GpuFacts};

/// Fills `facts[i].cuda` (same order as `inv.gpus` by index) from the CUDA
/// driver API; on failure logs why (debug) and leaves them empty.
pub fn fill(facts: &mut [GpuFacts], inv: &Inventory, lib: &Path) {
    match device_attributes(lib) {
        Ok(devices) => apply(facts, inv, &devices),
        Err(e) => log::debug!("CUDA attributes unavailable, /gpu/info keeps its defaults: {e}"),
    }
}

/// The matching by UUID, separate for tests.
pub fn apply(facts: &mut [GpuFacts], inv: &Inventory, devices: &[DeviceAttributes]) {
    let mut gpus: Vec<&rules::Gpu> = inv.gpus.iter().collect();
    gpus.sort_by_key(|g| g.index);
    for (f, g) in facts.iter_mut().zip(gpus) {
        if let Some(d) = devices
            .iter()
            .find(|d| d.uuid.eq_ignore_ascii_case(&g.uuid))
        {
            f.cuda = CudaFacts {
                sm_count: d.sm_count,
                l2_cache: d.l2_cache,
                shared_memory_per_sm: d.shared_memory_per_sm,
                constant_memory: d.constant_memory,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::info;
    use rules::{Gpu, PciBusId, Version};

    fn inventory() -> Inventory {
        let mut inv = Inventory::new(Version::parse("550.54.14").unwrap());
        inv.gpus = (0..2)
            .map(|i| Gpu {
                index: i,
                minor: i,
                uuid: format!("GPU-0000000{i}-0000-0000-0000-000000000000"),
                bus_id: PciBusId::parse(&format!("00000000:0{i}:00.0")).unwrap(),
                brand: "Nvidia".into(),
                arch: Version::parse("9.0").unwrap(),
                model: "NVIDIA H100".into(),
                mig_enabled: false,
                mig: vec![],
            })
            .collect();
        inv
    }

    #[test]
    fn attributes_are_matched_by_uuid_and_rendered_like_v1() {
        let inv = inventory();
        let mut facts = vec![GpuFacts::default(), GpuFacts::default()];
        // CUDA enumerates only GPU 1 (CUDA_VISIBLE_DEVICES, a hidden node).
        let devices = [DeviceAttributes {
            uuid: "GPU-00000001-0000-0000-0000-000000000000".into(),
            sm_count: Some(132),
            l2_cache: Some(50 << 20),
            shared_memory_per_sm: Some(228 << 10),
            constant_memory: None,
        }];
        apply(&mut facts, &inv, &devices);
        assert_eq!(facts[0].cuda, CudaFacts::default());
        let built = info::build(&inv, &facts);
        let devs = built.devices.unwrap();
        // GPU 0: today's output (the table, L2 unknown, no cores).
        assert_eq!(devs[0].memory.l2_cache, None);
        assert_eq!(devs[0].memory.shared, Some(228));
        assert_eq!(devs[0].memory.constant, Some(64));
        assert_eq!(devs[0].cores, None);
        // GPU 1: CUDA's L2 and shared memory in KiB, cores = SMs × 128.
        assert_eq!(devs[1].memory.l2_cache, Some(51200));
        assert_eq!(devs[1].memory.shared, Some(228));
        assert_eq!(
            devs[1].memory.constant,
            Some(64),
            "the table's, CUDA had none"
        );
        assert_eq!(devs[1].cores, Some(132 * 128));
    }
}
