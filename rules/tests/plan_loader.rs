//! `plan()` and the loaders' files: each capability gets its JSON files,
//! X server modules, GBM and VDPAU modules read-only where the loaders look,
//! whatever the host's layout; `compute` alone gets only the OpenCL ICD.

mod common;

use common::*;
use rules::{plan, Config, MountFlags, Plan, RootfsFlavor};

const V: &str = "535.104.05";

fn planned(caps: &str, rootfs: RootfsFlavor) -> Plan {
    let cfg = Config::default();
    let req = request_with(
        &[
            ("NVIDIA_VISIBLE_DEVICES", "0"),
            ("NVIDIA_DRIVER_CAPABILITIES", caps),
        ],
        &[],
        rootfs,
        &cfg,
    );
    plan(&host(1), &req, &cfg).unwrap()
}

fn mount_of<'p>(p: &'p Plan, dest: &str) -> Option<&'p str> {
    p.mounts
        .iter()
        .find(|m| m.destination.as_str() == dest)
        .inspect(|m| assert_eq!(m.flags, MountFlags::DRIVER, "{dest}"))
        .map(|m| m.source.as_str())
}

fn link_of<'p>(p: &'p Plan, link: &str) -> Option<&'p str> {
    p.symlinks
        .iter()
        .find(|s| s.link.as_str() == link)
        .map(|s| s.target.as_str())
}

const GRAPHICS: &[(&str, &str)] = &[
    (
        "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
        "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
    ),
    (
        "/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json",
        "/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json",
    ),
    (
        "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json",
        "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json",
    ),
    // Found behind Debian's alternatives link: mounted where Vulkan looks.
    (
        "/etc/vulkan/icd.d/nvidia_icd.json",
        "/usr/lib/nvidia/current/nvidia_icd.json",
    ),
    (
        "/etc/vulkan/implicit_layer.d/nvidia_layers.json",
        "/etc/vulkan/implicit_layer.d/nvidia_layers.json",
    ),
];

#[test]
fn graphics_gets_the_egl_vulkan_and_gbm_files() {
    let p = planned("graphics", RootfsFlavor::DebianLike);
    for (dest, source) in GRAPHICS {
        assert_eq!(mount_of(&p, dest), Some(*source), "{dest}");
    }
    assert_eq!(
        mount_of(&p, "/usr/lib/x86_64-linux-gnu/gbm/nvidia-drm_gbm.so"),
        Some(&*format!(
            "/usr/lib/x86_64-linux-gnu/libnvidia-allocator.so.{V}"
        ))
    );
    // Not display's, video's or compute's.
    assert_eq!(
        mount_of(&p, "/usr/lib/xorg/modules/drivers/nvidia_drv.so"),
        None
    );
    assert_eq!(mount_of(&p, "/etc/OpenCL/vendors/nvidia.icd"), None);
    assert!(!p
        .mounts
        .iter()
        .any(|m| m.destination.as_str().contains("vdpau")));
}

#[test]
fn display_gets_the_x_server_modules_and_the_graphics_files() {
    for (rootfs, xorg) in [
        (RootfsFlavor::DebianLike, "/usr/lib/xorg/modules"),
        (RootfsFlavor::Lib64, "/usr/lib64/xorg/modules"),
    ] {
        let p = planned("display", rootfs);
        assert_eq!(
            mount_of(&p, &format!("{xorg}/drivers/nvidia_drv.so")),
            Some("/usr/lib/xorg/modules/drivers/nvidia_drv.so")
        );
        let glx = format!("libglxserver_nvidia.so.{V}");
        assert!(mount_of(&p, &format!("{xorg}/extensions/{glx}")).is_some());
        assert_eq!(
            link_of(&p, &format!("{xorg}/extensions/libglxserver_nvidia.so")),
            Some(glx.as_str())
        );
        assert!(mount_of(&p, "/usr/share/X11/xorg.conf.d/10-nvidia.conf").is_some());
        for (dest, _) in GRAPHICS {
            assert!(mount_of(&p, dest).is_some(), "{dest}");
        }
    }
}

#[test]
fn video_gets_vdpau_in_its_module_directory_and_compute_the_opencl_icd() {
    let p = planned("video", RootfsFlavor::Lib64);
    let file = format!("libvdpau_nvidia.so.{V}");
    assert_eq!(
        mount_of(&p, &format!("/usr/lib64/vdpau/{file}")),
        Some(&*format!("/usr/lib/x86_64-linux-gnu/vdpau/{file}"))
    );
    assert_eq!(
        link_of(&p, "/usr/lib64/vdpau/libvdpau_nvidia.so.1"),
        Some(file.as_str())
    );
    // Video brings the compute libraries, OpenCL's ICD with them.
    assert!(mount_of(&p, "/etc/OpenCL/vendors/nvidia.icd").is_some());

    let p = planned("compute,utility", RootfsFlavor::DebianLike);
    assert_eq!(
        mount_of(&p, "/etc/OpenCL/vendors/nvidia.icd"),
        Some("/etc/OpenCL/vendors/nvidia.icd")
    );
    let loaders: Vec<&str> = p
        .mounts
        .iter()
        .map(|m| m.destination.as_str())
        .filter(|d| {
            d.contains(".json")
                || d.contains("xorg")
                || d.contains("/gbm/")
                || d.contains("vdpau")
                || d.contains("egl")
        })
        .collect();
    assert!(loaders.is_empty(), "compute got {loaders:?}");
}

#[test]
fn ngx_gets_its_library_and_updater() {
    let mut inv = host(1);
    inv.files.push(rules::DriverFile {
        path: rules::HostPath::new("/usr/bin/nvidia-ngx-updater").unwrap(),
        kind: rules::FileKind::Binary,
        class: rules::ElfClass::Elf64,
        soname: None,
    });
    let cfg = Config::default();
    let req = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "0"),
        ("NVIDIA_DRIVER_CAPABILITIES", "ngx"),
    ]);
    let p = plan(&inv, &req, &cfg).unwrap();
    assert!(p
        .mounts
        .iter()
        .any(|m| m.destination.as_str() == "/usr/bin/nvidia-ngx-updater"));
    let req = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "0"),
        ("NVIDIA_DRIVER_CAPABILITIES", "utility"),
    ]);
    let p = plan(&inv, &req, &cfg).unwrap();
    assert!(!p
        .mounts
        .iter()
        .any(|m| m.destination.as_str() == "/usr/bin/nvidia-ngx-updater"));
}
