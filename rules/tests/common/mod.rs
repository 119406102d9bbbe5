//! Synthetic hosts for the integration tests and the benchmark.
#![allow(dead_code)]

use std::collections::BTreeMap;

use rules::files::{BINARIES, LIBRARIES};
use rules::{
    Config, DeviceInfo, DriverFile, ElfClass, Env, FileKind, Gpu, HostPath, Inventory, MigDevice,
    PciBusId, Request, RootfsFlavor, Version,
};

pub const DRIVER: &str = "535.104.05";

pub fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

pub fn gpu(index: u32) -> Gpu {
    Gpu {
        index,
        minor: index,
        uuid: format!(
            "GPU-{:08x}-1ac4-e6e4-d8d0-4b3e3b5c0c{:02x}",
            0x8d8a_3b52u32.wrapping_add(index << 20),
            index % 256
        ),
        bus_id: PciBusId {
            domain: 0,
            bus: (index % 200 + 4) as u8,
            device: 0,
            function: 0,
        },
        brand: "Tesla".into(),
        arch: v("8.0"),
        model: "NVIDIA A100-SXM4-80GB".into(),
        mig_enabled: false,
        mig: vec![],
    }
}

fn file(path: &str, kind: FileKind, class: ElfClass, soname: Option<String>) -> DriverFile {
    DriverFile {
        path: HostPath::new(path).unwrap(),
        kind,
        class,
        soname,
    }
}

/// Every driver file of a real install of `driver`: all known libraries (64-
/// bit, and 32-bit for the toolkit ones), binaries, firmware and IPC.
pub fn driver_files(driver: &str) -> Vec<DriverFile> {
    let mut files = Vec::new();
    for l in LIBRARIES {
        let soname = match l.stem {
            "libGLX_nvidia" | "libEGL_nvidia" | "libGLX" | "libGL" | "libEGL" | "libOpenGL"
            | "libGLdispatch" => {
                format!("{}.so.0", l.stem)
            }
            "libGLESv2_nvidia" | "libGLESv2" => format!("{}.so.2", l.stem),
            "libnvidia-tls" | "libnvidia-glcore" | "libnvidia-eglcore" | "libnvidia-glsi" => {
                format!("{}.so.{driver}", l.stem)
            }
            _ => format!("{}.so.1", l.stem),
        };
        let name = format!("{}.so.{driver}", l.stem);
        files.push(file(
            &format!("/usr/lib/x86_64-linux-gnu/{name}"),
            FileKind::Library,
            ElfClass::Elf64,
            Some(soname.clone()),
        ));
        if l.toolkit {
            files.push(file(
                &format!("/usr/lib/i386-linux-gnu/{name}"),
                FileKind::Library,
                ElfClass::Elf32,
                Some(soname),
            ));
        }
    }
    for b in BINARIES {
        files.push(file(
            &format!("/usr/bin/{}", b.name),
            FileKind::Binary,
            ElfClass::Elf64,
            None,
        ));
    }
    for fw in ["gsp_ga10x.bin", "gsp_tu10x.bin"] {
        files.push(file(
            &format!("/lib/firmware/nvidia/{driver}/{fw}"),
            FileKind::Firmware,
            ElfClass::Elf64,
            None,
        ));
    }
    files.push(file(
        "/var/run/nvidia-persistenced/socket",
        FileKind::IpcSocket,
        ElfClass::Elf64,
        None,
    ));
    files.push(file(
        "/var/run/nvidia-fabricmanager/socket",
        FileKind::IpcSocket,
        ElfClass::Elf64,
        None,
    ));
    files.push(file(
        "/tmp/nvidia-mps",
        FileKind::MpsPipeDir,
        ElfClass::Elf64,
        None,
    ));
    files
}

/// A host with `n` A100s on driver 535.104.05 (CUDA 12.2).
pub fn host(n: u32) -> Inventory {
    let mut inv = Inventory::new(v(DRIVER));
    inv.cuda_version = Some(v("12.2"));
    inv.devices = DeviceInfo {
        nvidia_major: 195,
        uvm_major: Some(508),
        caps_major: Some(509),
        uvm_tools: true,
        modeset: true,
    };
    inv.gpus = (0..n).map(gpu).collect();
    inv.files = driver_files(DRIVER);
    inv.loader_files = loader_files(DRIVER);
    // card0 is the board's own VGA (not a GPU of the inventory): GPU i has
    // card<i+1> and renderD<128+i>.
    inv.drm = inv
        .gpus
        .iter()
        .flat_map(|g| {
            [
                (format!("card{}", g.index + 1), g.index + 1),
                (format!("renderD{}", 128 + g.index), 128 + g.index),
            ]
            .map(|(name, minor)| rules::DrmNode {
                bus_id: g.bus_id,
                name,
                major: 226,
                minor,
            })
        })
        .collect();
    inv
}

/// The loaders' files of a host (where the `.run` installer and Debian put
/// them; `source` differs from the lookup path where the host has a link).
pub fn loader_files(driver: &str) -> Vec<rules::loader_files::LoaderFile> {
    let lib = "/usr/lib/x86_64-linux-gnu";
    [
        (
            "10_nvidia.json",
            "/usr/share/glvnd/egl_vendor.d/10_nvidia.json".to_owned(),
        ),
        (
            "10_nvidia_wayland.json",
            "/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json".to_owned(),
        ),
        (
            "15_nvidia_gbm.json",
            "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json".to_owned(),
        ),
        (
            "nvidia_icd.json",
            "/usr/lib/nvidia/current/nvidia_icd.json".to_owned(),
        ),
        (
            "nvidia_layers.json",
            "/etc/vulkan/implicit_layer.d/nvidia_layers.json".to_owned(),
        ),
        (
            "nvidia-drm_gbm.so",
            format!("{lib}/libnvidia-allocator.so.{driver}"),
        ),
        ("nvidia.icd", "/etc/OpenCL/vendors/nvidia.icd".to_owned()),
        (
            &*format!("libvdpau_nvidia.so.{driver}"),
            format!("{lib}/vdpau/libvdpau_nvidia.so.{driver}"),
        ),
        (
            "nvidia_drv.so",
            "/usr/lib/xorg/modules/drivers/nvidia_drv.so".to_owned(),
        ),
        (
            &*format!("libglxserver_nvidia.so.{driver}"),
            format!("/usr/lib/xorg/modules/extensions/libglxserver_nvidia.so.{driver}"),
        ),
        (
            "10-nvidia.conf",
            "/usr/share/X11/xorg.conf.d/10-nvidia.conf".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(name, path)| rules::loader_files::LoaderFile {
        name: name.to_owned(),
        path: HostPath::new(path).unwrap(),
    })
    .collect()
}

/// Adds two MIG devices on GPU `index`.
pub fn with_mig(mut inv: Inventory, index: usize) -> Inventory {
    let g = &mut inv.gpus[index];
    g.mig_enabled = true;
    g.mig = vec![
        MigDevice {
            index: 0,
            uuid: "MIG-aaaaaaaa-0000-0000-0000-000000000000".into(),
            gi: 1,
            ci: 0,
            gi_caps_minor: 12,
            ci_caps_minor: 13,
        },
        MigDevice {
            index: 1,
            uuid: "MIG-bbbbbbbb-0000-0000-0000-000000000000".into(),
            gi: 2,
            ci: 0,
            gi_caps_minor: 21,
            ci_caps_minor: 22,
        },
    ];
    inv
}

pub fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

pub fn request_with(
    pairs: &[(&str, &str)],
    annotations: &[(&str, &str)],
    rootfs: RootfsFlavor,
    config: &Config,
) -> Request {
    let ann: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Request::from_container(&env(pairs), &ann, true, rootfs, config).unwrap()
}

pub fn request(pairs: &[(&str, &str)]) -> Request {
    request_with(pairs, &[], RootfsFlavor::DebianLike, &Config::default())
}
