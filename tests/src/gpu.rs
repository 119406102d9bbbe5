//! GPUs given to a runc container through its `config.json` alone, by hand:
//! the simulated host's device nodes in `linux.devices`, device-cgroup rules
//! in `linux.resources.devices`, and the driver's utility and compute files
//! as read-only bind mounts. This is what the foundation checks (and what
//! the demo showed before the hook existed): the simulated host, the mock
//! NVML and the stand-in behave inside a real container like the real ones.
use std::collections::BTreeSet;

use fixtures::driver_root::{Capability, Layout};
use fixtures::elf::Arch;

use crate::{BundleBuilder, Variant};

/// Which of a simulated host's GPUs a container gets.
#[derive(Debug, Clone, Default)]
pub struct GpuAccess {
    /// Indexes whose `/dev/nvidia<minor>` node is created in the container.
    pub nodes: BTreeSet<usize>,
    /// Indexes whose node the device cgroup allows (`c 195:<minor> rw`).
    pub allowed: BTreeSet<usize>,
}

impl GpuAccess {
    /// Nodes for `nodes`, all of them allowed.
    pub fn allowed(nodes: &[usize]) -> GpuAccess {
        let nodes: BTreeSet<usize> = nodes.iter().copied().collect();
        GpuAccess {
            allowed: nodes.clone(),
            nodes,
        }
    }
}

/// The directory the toolkit mounts 64-bit driver libraries into for a rootfs
/// variant (`/etc/debian_version` present: the Debian multiarch directory).
pub fn library_dir(variant: Variant) -> &'static str {
    match variant {
        Variant::Debian => "/usr/lib/x86_64-linux-gnu",
        Variant::Lib64 => "/usr/lib64",
    }
}

/// Adds to `builder` the control nodes (`nvidiactl`, `nvidia-uvm`,
/// `nvidia-uvm-tools`), the GPU nodes and cgroup rules of `access`, the
/// 64-bit utility and compute libraries (mounted read-only under their
/// versioned names in [`library_dir`]) and the `nvidia-smi` stand-in at
/// `/usr/bin/nvidia-smi`. The container must run `ldconfig` (or set
/// `LD_LIBRARY_PATH`) before the libraries can be found by soname.
pub fn with_gpus(
    mut builder: BundleBuilder,
    variant: Variant,
    layout: &Layout,
    access: &GpuAccess,
) -> BundleBuilder {
    let desc = fixtures::host_desc::HostDescription::load(&layout.description)
        .expect("the layout's host description loads");
    let control = [
        ("/dev/nvidiactl", desc.nvidia_major, 255),
        ("/dev/nvidia-uvm", desc.uvm_major, 0),
        ("/dev/nvidia-uvm-tools", desc.uvm_major, 1),
    ];
    for (path, major, minor) in control {
        builder = builder.char_device(path, major.into(), minor).device_rule(
            true,
            "c",
            Some(major.into()),
            Some(minor),
            "rw",
        );
    }
    for (index, gpu) in desc.gpus.iter().enumerate() {
        let minor = i64::from(gpu.minor);
        let major = i64::from(desc.nvidia_major);
        if access.nodes.contains(&index) {
            builder = builder.char_device(&format!("/dev/nvidia{minor}"), major, minor);
        }
        if access.allowed.contains(&index) {
            builder = builder.device_rule(true, "c", Some(major), Some(minor), "rw");
        }
    }
    let dir = library_dir(variant);
    for capability in [Capability::Utility, Capability::Compute] {
        for lib in layout.manifest.libraries_for(capability, Arch::X86_64) {
            let host = layout.driver_path(&lib.path);
            let name = host
                .file_name()
                .expect("a library has a file name")
                .to_string_lossy()
                .into_owned();
            builder = builder.bind_mount(&host, &format!("{dir}/{name}"), true);
        }
    }
    builder.bind_mount(&layout.nvidia_smi, "/usr/bin/nvidia-smi", true)
}
