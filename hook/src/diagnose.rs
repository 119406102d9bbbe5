//! Why NVML answers but shows no GPU: the one warning the hook and the
//! plugin print instead of serving an empty host without a word.
//!
//! NVML lists a GPU only when it can open its `/dev/nvidia<N>` node, so an
//! empty list with a working library has few causes, each checked here
//! from what the host shows: the nodes are missing (the driver is not
//! loaded, or nobody created them: `nvidia-modprobe`, `nvidia-smi` as root),
//! this process's device cgroup denies them (a container or a restricted
//! systemd unit), or the kernel module and the user-space library are of
//! different versions (a driver update without a reboot).
#![forbid(unsafe_code)]

use std::path::Path;

use rules::Inventory;

use crate::config::HostPaths;
use crate::discover;

/// The warning for an inventory without GPUs, or `None` when it has some.
pub fn no_gpu_warning(paths: &HostPaths, inv: &Inventory) -> Option<String> {
    if !inv.gpus.is_empty() {
        return None;
    }
    let mut causes = Vec::new();
    let dev = &paths.dev_root;
    let gpu_nodes = gpu_node_count(dev);
    if gpu_nodes == 0 {
        causes.push(format!(
            "no {}/nvidia<N> device nodes (is the driver loaded? nvidia-modprobe or nvidia-smi as root creates them)",
            dev.display()
        ));
    } else if let Some(denied) = denied_node(dev) {
        causes.push(format!(
            "the device cgroup denies {denied} (this process runs in a restricted cgroup: a container or a systemd unit with DevicePolicy)"
        ));
    }
    match discover::kernel_driver_version(&paths.proc_root) {
        Ok(kernel) if kernel != inv.driver_version.to_string() => causes.push(format!(
            "the kernel module is {kernel} but the library is {} (a driver/library version mismatch: reboot or reload the nvidia module)",
            inv.driver_version
        )),
        _ => {}
    }
    let why = if causes.is_empty() {
        "likely causes: device nodes missing, the device cgroup, or a driver/library version mismatch".to_owned()
    } else {
        causes.join("; ")
    };
    Some(format!(
        "NVML (driver {}) answers but sees no GPU: {why}",
        inv.driver_version
    ))
}

fn gpu_node_count(dev: &Path) -> usize {
    std::fs::read_dir(dev)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("nvidia"))
                        .is_some_and(|rest| {
                            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                        })
                })
                .count()
        })
        .unwrap_or(0)
}

/// The control node when opening it is refused (EPERM is the device
/// cgroup's answer; ENXIO or success means the cgroup let it through).
fn denied_node(dev: &Path) -> Option<String> {
    let ctl = dev.join("nvidiactl");
    match std::fs::File::open(&ctl) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Some(ctl.display().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(driver: &str) -> Inventory {
        serde_json::from_value(serde_json::json!({
            "driver_version": driver,
            "cuda_version": null,
            "driver_root": "/",
            "machine": "x86_64",
            "devices": {"nvidia_major": 195, "uvm_major": null, "caps_major": null,
                        "uvm_tools": false, "modeset": false},
            "gpus": [],
            "files": []
        }))
        .unwrap()
    }

    #[test]
    fn names_the_causes_it_sees() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            dev_root: tmp.path().join("dev"),
            proc_root: tmp.path().join("proc"),
            ..HostPaths::default()
        };
        std::fs::create_dir_all(paths.proc_root.join("driver/nvidia")).unwrap();
        std::fs::write(
            paths.proc_root.join("driver/nvidia/version"),
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n",
        )
        .unwrap();
        let w = no_gpu_warning(&paths, &inv("535.104.05")).unwrap();
        assert_eq!(
            w,
            format!(
                "NVML (driver 535.104.05) answers but sees no GPU: no {}/nvidia<N> device nodes (is the driver loaded? nvidia-modprobe or nvidia-smi as root creates them); the kernel module is 550.54.14 but the library is 535.104.05 (a driver/library version mismatch: reboot or reload the nvidia module)",
                paths.dev_root.display()
            )
        );
        // Nodes present, versions equal: the generic line.
        std::fs::create_dir_all(&paths.dev_root).unwrap();
        std::fs::write(paths.dev_root.join("nvidia0"), "").unwrap();
        let w = no_gpu_warning(&paths, &inv("550.54.14")).unwrap();
        assert!(w.ends_with("likely causes: device nodes missing, the device cgroup, or a driver/library version mismatch"), "{w}");
        assert_eq!(w.lines().count(), 1);
    }
}
