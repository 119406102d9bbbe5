//! `plan()` against synthetic hosts: devices, rules, mounts, symlinks,
//! linker-cache directories, /proc masking, v1 layout, requirements.

mod common;

use std::collections::BTreeMap;

use common::*;
use rules::{
    plan, CompatDecision, CompatLib, CompatNote, Config, Delivery, ElfClass, HostPath, MountFlags,
    MountKind, NodeRole, Plan, Refusal, Request, RootfsFlavor,
};

fn nodes(p: &Plan) -> Vec<String> {
    p.device_nodes
        .iter()
        .map(|n| format!("{} {}:{}", n.path, n.major, n.minor))
        .collect()
}

fn dests(p: &Plan) -> Vec<&str> {
    p.mounts.iter().map(|m| m.destination.as_str()).collect()
}

fn links(p: &Plan) -> Vec<String> {
    p.symlinks
        .iter()
        .map(|s| format!("{} -> {}", s.link, s.target))
        .collect()
}

fn has_mount(p: &Plan, dest: &str) -> bool {
    p.mounts.iter().any(|m| m.destination.as_str() == dest)
}

fn has_link(p: &Plan, link: &str, target: &str) -> bool {
    p.symlinks
        .iter()
        .any(|s| s.link.as_str() == link && s.target.as_str() == target)
}

const LIB: &str = "/usr/lib/x86_64-linux-gnu";
const LIB32: &str = "/usr/lib/i386-linux-gnu";

#[test]
fn not_a_gpu_container_gets_nothing() {
    let p = plan(&host(2), &request(&[]), &Config::default()).unwrap();
    assert!(!p.gpu_container);
    assert!(
        p.device_nodes.is_empty()
            && p.mounts.is_empty()
            && p.symlinks.is_empty()
            && p.proc_mask.is_none()
    );
}

#[test]
fn default_capabilities_on_two_gpus() {
    let p = plan(
        &host(2),
        &request(&[("NVIDIA_VISIBLE_DEVICES", "all")]),
        &Config::default(),
    )
    .unwrap();
    assert!(p.gpu_container);
    assert_eq!(
        nodes(&p),
        [
            "/dev/nvidiactl 195:255",
            "/dev/nvidia-uvm 508:0",
            "/dev/nvidia-uvm-tools 508:1",
            "/dev/nvidia0 195:0",
            "/dev/nvidia1 195:1"
        ]
    );
    let rules: Vec<String> = p.device_rules.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        rules,
        [
            "c 195:255 rw",
            "c 508:0 rw",
            "c 508:1 rw",
            "c 195:0 rw",
            "c 195:1 rw"
        ]
    );
    // compute + utility libraries, no graphics, no 32-bit.
    assert!(has_mount(&p, &format!("{LIB}/libcuda.so.535.104.05")));
    assert!(has_mount(&p, &format!("{LIB}/libnvidia-ml.so.535.104.05")));
    assert!(has_mount(
        &p,
        &format!("{LIB}/libnvidia-ptxjitcompiler.so.535.104.05")
    ));
    assert!(!has_mount(
        &p,
        &format!("{LIB}/libGLX_nvidia.so.535.104.05")
    ));
    assert!(!has_mount(&p, &format!("{LIB}/libnvcuvid.so.535.104.05")));
    assert!(!p
        .mounts
        .iter()
        .any(|m| m.destination.as_str().starts_with(LIB32)));
    // binaries of both capabilities
    for b in [
        "nvidia-smi",
        "nvidia-debugdump",
        "nvidia-persistenced",
        "nv-fabricmanager",
        "nvidia-cuda-mps-control",
        "nvidia-cuda-mps-server",
    ] {
        assert!(has_mount(&p, &format!("/usr/bin/{b}")), "{b}");
    }
    // firmware at the same path, IPC writable noexec
    assert!(has_mount(
        &p,
        "/lib/firmware/nvidia/535.104.05/gsp_ga10x.bin"
    ));
    let sock = p
        .mounts
        .iter()
        .find(|m| m.destination.as_str() == "/var/run/nvidia-persistenced/socket")
        .unwrap();
    assert_eq!(sock.flags, MountFlags::IPC);
    let mps = p
        .mounts
        .iter()
        .find(|m| m.destination.as_str() == "/tmp/nvidia-mps")
        .unwrap();
    assert_eq!(mps.kind, MountKind::Directory);
    assert!(p.env.is_empty(), "MPS at CUDA's default needs no variable");
    let lib = p
        .mounts
        .iter()
        .find(|m| m.destination.as_str().ends_with("libcuda.so.535.104.05"))
        .unwrap();
    assert_eq!(lib.flags, MountFlags::DRIVER);
    assert_eq!(
        lib.source.as_str(),
        "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05"
    );
    // symlinks
    assert!(has_link(&p, &format!("{LIB}/libcuda.so"), "libcuda.so.1"));
    assert!(has_link(
        &p,
        &format!("{LIB}/libcuda.so.1"),
        "libcuda.so.535.104.05"
    ));
    assert!(has_link(
        &p,
        &format!("{LIB}/libnvidia-ml.so.1"),
        "libnvidia-ml.so.535.104.05"
    ));
    assert!(!links(&p).iter().any(|l| l.contains("GLX")));
    assert_eq!(
        p.ldconfig_dirs
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>(),
        [LIB]
    );
    let mask = p.proc_mask.as_ref().unwrap();
    assert_eq!(
        mask.gpus.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
        ["00000000:04:00.0", "00000000:05:00.0"]
    );
    assert!(p.app_profile.is_none());
    assert_eq!(p.gpus.len(), 2);
    assert!(p.gpus.iter().all(|g| g.whole));
}

#[test]
fn all_capabilities() {
    let r = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "1"),
        ("NVIDIA_DRIVER_CAPABILITIES", "all"),
    ]);
    let p = plan(&host(4), &r, &Config::default()).unwrap();
    assert_eq!(
        nodes(&p),
        [
            "/dev/nvidiactl 195:255",
            "/dev/nvidia-uvm 508:0",
            "/dev/nvidia-uvm-tools 508:1",
            "/dev/nvidia-modeset 195:254",
            "/dev/nvidia1 195:1",
            "/dev/dri/card2 226:2",
            "/dev/dri/renderD129 226:129",
        ]
    );
    assert_eq!(p.device_nodes[3].role, NodeRole::Modeset);
    for lib in [
        "libGLX_nvidia",
        "libEGL_nvidia",
        "libnvcuvid",
        "libnvidia-opticalflow",
        "libnvidia-ngx",
        "libnvidia-encode",
    ] {
        assert!(
            has_mount(&p, &format!("{LIB}/{lib}.so.535.104.05")),
            "{lib}"
        );
        assert!(
            has_mount(&p, &format!("{LIB32}/{lib}.so.535.104.05")),
            "32-bit {lib}"
        );
    }
    // GLVND front-ends belong to the image.
    assert!(!has_mount(&p, &format!("{LIB}/libGL.so.535.104.05")));
    assert!(!has_mount(&p, &format!("{LIB}/libEGL.so.535.104.05")));
    assert!(has_link(
        &p,
        &format!("{LIB}/libGLX_indirect.so.0"),
        "libGLX_nvidia.so.535.104.05"
    ));
    assert!(has_link(
        &p,
        &format!("{LIB}/libnvidia-opticalflow.so"),
        "libnvidia-opticalflow.so.1"
    ));
    assert!(has_link(&p, &format!("{LIB32}/libcuda.so"), "libcuda.so.1"));
    // A soname equal to the file name makes no link.
    assert!(!links(&p)
        .iter()
        .any(|l| l.contains("libnvidia-glcore.so.535.104.05 ->")));
    assert_eq!(
        p.ldconfig_dirs
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>(),
        [LIB, LIB32]
    );
    assert_eq!(p.app_profile.as_ref().unwrap().mask(), 0b10);
    assert_eq!(p.proc_mask.as_ref().unwrap().gpus.len(), 1);
}

#[test]
fn implied_libraries() {
    let video = plan(
        &host(1),
        &request(&[
            ("NVIDIA_VISIBLE_DEVICES", "0"),
            ("NVIDIA_DRIVER_CAPABILITIES", "video"),
        ]),
        &Config::default(),
    )
    .unwrap();
    assert!(has_mount(
        &video,
        &format!("{LIB}/libnvcuvid.so.535.104.05")
    ));
    assert!(
        has_mount(&video, &format!("{LIB}/libcuda.so.535.104.05")),
        "video brings compute libraries"
    );
    assert!(
        !has_mount(&video, "/usr/bin/nvidia-cuda-mps-server"),
        "but not compute binaries"
    );
    assert!(!nodes(&video).iter().any(|n| n.contains("uvm")));
    let display = plan(
        &host(1),
        &request(&[
            ("NVIDIA_VISIBLE_DEVICES", "0"),
            ("NVIDIA_DRIVER_CAPABILITIES", "display"),
        ]),
        &Config::default(),
    )
    .unwrap();
    assert!(has_mount(
        &display,
        &format!("{LIB}/libGLX_nvidia.so.535.104.05")
    ));
    assert!(nodes(&display)
        .iter()
        .any(|n| n.starts_with("/dev/nvidia-modeset")));
    assert!(display.app_profile.is_some());
}

#[test]
fn none_gets_driver_and_control_nodes_only() {
    let p = plan(
        &host(2),
        &request(&[("NVIDIA_VISIBLE_DEVICES", "none")]),
        &Config::default(),
    )
    .unwrap();
    assert_eq!(
        nodes(&p),
        [
            "/dev/nvidiactl 195:255",
            "/dev/nvidia-uvm 508:0",
            "/dev/nvidia-uvm-tools 508:1"
        ]
    );
    assert!(has_mount(&p, "/usr/bin/nvidia-smi"));
    assert!(p.gpus.is_empty());
    assert!(p.proc_mask.as_ref().unwrap().gpus.is_empty());
}

#[test]
fn rootfs_flavours() {
    let caps = [
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_DRIVER_CAPABILITIES", "compute,compat32"),
    ];
    for (flavor, d64, d32) in [
        (RootfsFlavor::DebianLike, LIB, LIB32),
        (RootfsFlavor::Lib64, "/usr/lib64", "/usr/lib"),
        (RootfsFlavor::Lib64Lib32, "/usr/lib64", "/usr/lib32"),
    ] {
        let p = plan(
            &host(1),
            &request_with(&caps, &[], flavor, &Config::default()),
            &Config::default(),
        )
        .unwrap();
        assert!(
            has_mount(&p, &format!("{d64}/libcuda.so.535.104.05")),
            "{flavor:?}"
        );
        assert!(
            has_mount(&p, &format!("{d32}/libcuda.so.535.104.05")),
            "{flavor:?}"
        );
        assert!(has_link(
            &p,
            &format!("{d32}/libcuda.so.1"),
            "libcuda.so.535.104.05"
        ));
        assert_eq!(
            p.ldconfig_dirs
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>(),
            [d64, d32]
        );
    }
}

#[test]
fn config_knobs() {
    let cfg = Config {
        no_cgroups: true,
        mount_firmware: false,
        mount_persistenced: false,
        mount_fabricmanager: false,
        mount_mps: false,
        graphics_app_profile: false,
        ..Config::default()
    };
    let r = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_DRIVER_CAPABILITIES", "all"),
    ]);
    let p = plan(&host(2), &r, &cfg).unwrap();
    assert!(p.device_rules.is_empty());
    assert!(!p.device_nodes.is_empty());
    assert!(!dests(&p).iter().any(|d| d.starts_with("/lib/firmware")
        || d.starts_with("/var/run")
        || d.starts_with("/tmp")));
    assert!(p.app_profile.is_none());
}

#[test]
fn driver_root_and_mps_dir() {
    let mut inv = host(1);
    inv.driver_root = HostPath::new("/run/nvidia/driver").unwrap();
    for f in &mut inv.files {
        if f.kind == rules::FileKind::MpsPipeDir {
            f.path = HostPath::new("/var/mps").unwrap();
        }
    }
    let p = plan(
        &inv,
        &request(&[("NVIDIA_VISIBLE_DEVICES", "0")]),
        &Config::default(),
    )
    .unwrap();
    let lib = p
        .mounts
        .iter()
        .find(|m| m.destination.as_str() == format!("{LIB}/libcuda.so.535.104.05"))
        .unwrap();
    assert_eq!(
        lib.source.as_str(),
        "/run/nvidia/driver/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05"
    );
    assert!(has_mount(&p, "/var/mps"));
    assert_eq!(
        p.env.get("CUDA_MPS_PIPE_DIRECTORY").map(String::as_str),
        Some("/var/mps")
    );
}

#[test]
fn minor_is_not_index() {
    let mut inv = host(2);
    inv.gpus[0].minor = 3;
    inv.gpus[1].minor = 0;
    let p = plan(
        &inv,
        &request(&[("NVIDIA_VISIBLE_DEVICES", "0")]),
        &Config::default(),
    )
    .unwrap();
    assert!(nodes(&p).contains(&"/dev/nvidia3 195:3".to_string()));
    assert!(!nodes(&p).contains(&"/dev/nvidia0 195:0".to_string()));
}

#[test]
fn mig_devices() {
    let inv = with_mig(host(2), 1);
    let p = plan(
        &inv,
        &request(&[("NVIDIA_VISIBLE_DEVICES", "1:1,MIG-aaaa")]),
        &Config::default(),
    )
    .unwrap();
    assert_eq!(
        nodes(&p),
        [
            "/dev/nvidiactl 195:255",
            "/dev/nvidia-uvm 508:0",
            "/dev/nvidia-uvm-tools 508:1",
            "/dev/nvidia1 195:1",
            "/dev/nvidia-caps/nvidia-cap12 509:12",
            "/dev/nvidia-caps/nvidia-cap13 509:13",
            "/dev/nvidia-caps/nvidia-cap21 509:21",
            "/dev/nvidia-caps/nvidia-cap22 509:22",
        ]
    );
    assert!(!p.gpus[0].whole);
    assert_eq!(p.gpus[0].mig.len(), 2);
    let access: Vec<&str> = p
        .proc_mask
        .as_ref()
        .unwrap()
        .mig_access
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(
        access,
        [
            "/proc/driver/nvidia/capabilities/gpu1/mig/gi1/access",
            "/proc/driver/nvidia/capabilities/gpu1/mig/gi1/ci0/access",
            "/proc/driver/nvidia/capabilities/gpu1/mig/gi2/access",
            "/proc/driver/nvidia/capabilities/gpu1/mig/gi2/ci0/access",
        ]
    );
}

#[test]
fn v1_label_adds_usr_local_nvidia() {
    let r = request_with(
        &[],
        &[
            ("com.nvidia.volumes.needed", "nvidia_driver"),
            ("com.nvidia.cuda.version", "8.0"),
        ],
        RootfsFlavor::DebianLike,
        &Config::default(),
    );
    let p = plan(&host(2), &r, &Config::default()).unwrap();
    assert_eq!(p.gpus.len(), 2, "all GPUs");
    assert!(has_mount(
        &p,
        "/usr/local/nvidia/lib64/libcuda.so.535.104.05"
    ));
    assert!(
        has_mount(&p, "/usr/local/nvidia/lib64/libGL.so.535.104.05"),
        "v1 carried GLVND"
    );
    assert!(has_mount(&p, "/usr/local/nvidia/lib/libcuda.so.535.104.05"));
    assert!(has_mount(&p, "/usr/local/nvidia/bin/nvidia-smi"));
    assert!(!has_mount(&p, "/usr/local/nvidia/bin/nv-fabricmanager"));
    assert!(has_link(
        &p,
        "/usr/local/nvidia/lib64/libcuda.so",
        "libcuda.so.535.104.05"
    ));
    assert!(has_link(
        &p,
        "/usr/local/nvidia/lib64/libcuda.so.1",
        "libcuda.so.535.104.05"
    ));
    assert!(has_link(
        &p,
        "/usr/local/nvidia/lib64/libGLX_indirect.so.0",
        "libGLX_nvidia.so.535.104.05"
    ));
    // and the modern layout for its (all) capabilities
    assert!(has_mount(&p, &format!("{LIB}/libcuda.so.535.104.05")));
    let dirs: Vec<&str> = p.ldconfig_dirs.iter().map(|d| d.as_str()).collect();
    assert_eq!(
        dirs,
        [
            LIB,
            LIB32,
            "/usr/local/nvidia/lib64",
            "/usr/local/nvidia/lib"
        ]
    );
    assert_eq!(p.v1_volumes[0].docker_name, "nvidia_driver_535.104.05");
    // The linker cache covers the v1 directories too (the in-process
    // writer serves them: `docs/linker-cache.md`).
    let cached = |path: &str| p.ld_cache.iter().find(|e| e.path.as_str() == path);
    for d in &dirs {
        assert!(
            p.ld_cache
                .iter()
                .any(|e| e.path.parent().is_some_and(|p| p.as_str() == *d)),
            "{d} has no cache entry"
        );
    }
    let v1 = cached("/usr/local/nvidia/lib64/libcuda.so.1").expect("v1 libcuda.so.1");
    assert_eq!(
        (v1.key.as_str(), v1.class),
        ("libcuda.so.1", ElfClass::Elf64)
    );
    assert!(cached("/usr/local/nvidia/lib64/libcuda.so").is_some());
    assert_eq!(
        cached("/usr/local/nvidia/lib/libcuda.so.1").map(|e| e.class),
        Some(ElfClass::Elf32)
    );
    assert!(cached("/usr/local/nvidia/lib64/libGLX_indirect.so.0").is_none());
}

#[test]
fn v1_volume_delivery() {
    let mut inv = host(2);
    let p = plan(
        &inv,
        &Request::from_v1_query(Some("1"), None, &Config::default()).unwrap(),
        &Config::default(),
    )
    .unwrap();
    assert_eq!(
        nodes(&p),
        [
            "/dev/nvidiactl 195:255",
            "/dev/nvidia-uvm 508:0",
            "/dev/nvidia-uvm-tools 508:1",
            "/dev/nvidia1 195:1"
        ]
    );
    assert!(
        p.mounts.is_empty()
            && p.symlinks.is_empty()
            && p.proc_mask.is_none()
            && p.app_profile.is_none()
    );
    assert_eq!(p.v1_volumes.len(), 1);
    assert_eq!(p.v1_volumes[0].docker_name, "nvidia_driver_535.104.05");
    assert_eq!(p.v1_volumes[0].mountpoint.as_str(), "/usr/local/nvidia");
    inv.devices.uvm_tools = false;
    let mut labels = BTreeMap::new();
    labels.insert(
        "com.nvidia.volumes.needed".to_string(),
        "nvidia_driver".to_string(),
    );
    let r = Request::from_nv_gpu(None, &labels, &Config::default()).unwrap();
    assert_eq!(r.delivery, Delivery::V1Volume);
    let p = plan(&inv, &r, &Config::default()).unwrap();
    assert_eq!(
        nodes(&p),
        [
            "/dev/nvidiactl 195:255",
            "/dev/nvidia-uvm 508:0",
            "/dev/nvidia0 195:0",
            "/dev/nvidia1 195:1"
        ]
    );
}

#[test]
fn requirements_per_gpu() {
    let mut inv = host(3);
    inv.gpus[2].arch = v("7.0");
    inv.gpus[2].model = "Tesla V100-SXM2-16GB".into();
    let ok = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "0,1"),
        ("NVIDIA_REQUIRE_ARCH", "arch>=8.0"),
    ]);
    plan(&inv, &ok, &Config::default()).unwrap();
    let bad = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_REQUIRE_ARCH", "arch>=8.0"),
    ]);
    let err = plan(&inv, &bad, &Config::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("GPU 2 (Tesla V100-SXM2-16GB) has arch 7.0"),
        "{err}"
    );
    // With no GPU, arch and brand pass.
    let none = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "none"),
        ("NVIDIA_REQUIRE_ARCH", "arch>=9.0"),
        ("NVIDIA_REQUIRE_BRAND", "brand=geforce"),
    ]);
    plan(&inv, &none, &Config::default()).unwrap();
}

#[test]
fn cuda_checks_use_the_table_when_nvml_cannot_say() {
    let mut inv = host(1);
    inv.cuda_version = None;
    let p = plan(
        &inv,
        &request(&[
            ("NVIDIA_VISIBLE_DEVICES", "0"),
            ("NVIDIA_REQUIRE_CUDA", "cuda>=12.2"),
        ]),
        &Config::default(),
    )
    .unwrap();
    assert_eq!(p.cuda_version.unwrap().as_str(), "12.2");
    let err = plan(
        &inv,
        &request(&[
            ("NVIDIA_VISIBLE_DEVICES", "0"),
            ("NVIDIA_REQUIRE_CUDA", "cuda>=12.3"),
        ]),
        &Config::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Refusal::CudaTooNew { .. }));
}

#[test]
fn forward_compat_lets_newer_cuda_run() {
    let inv = host(1);
    let note =
        CompatNote::from_json(r#"{"CUDA version":"12.9","driver":[535,550,560,565,570,575]}"#)
            .unwrap();
    let r = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "0"),
        ("NVIDIA_REQUIRE_CUDA", "cuda>=12.9"),
    ]);
    assert!(plan(&inv, &r, &Config::default()).is_err());
    let r = r.with_compat(CompatLib {
        version: v("575.57.08"),
        note: Some(note),
    });
    let p = plan(&inv, &r, &Config::default()).unwrap();
    assert_eq!(p.cuda_compat, Some(CompatDecision::Use));
    assert_eq!(p.cuda_version.as_ref().unwrap().as_str(), "12.9");
    assert_eq!(p.ldconfig_dirs[0].as_str(), "/usr/local/cuda/compat");
    assert!(
        !p.mounts
            .iter()
            .any(|m| m.source.as_str().starts_with("/usr/local/cuda")),
        "nothing mounted from the image"
    );
    let off = Config {
        cuda_compat: rules::CudaCompatMode::Disabled,
        ..Config::default()
    };
    assert!(plan(&inv, &r, &off).is_err());
}

#[test]
fn v1_label_check() {
    let ann = [
        ("com.nvidia.volumes.needed", "nvidia_driver"),
        ("com.nvidia.cuda.version", "12.4"),
    ];
    let r = request_with(&[], &ann, RootfsFlavor::DebianLike, &Config::default());
    assert_eq!(
        plan(&host(1), &r, &Config::default())
            .unwrap_err()
            .to_string(),
        "unsupported CUDA version: driver 12.2 < image 12.4"
    );
    let ann = [
        ("com.nvidia.volumes.needed", "nvidia_driver"),
        ("com.nvidia.cuda.version", "12.2.140"),
    ];
    let r = request_with(&[], &ann, RootfsFlavor::DebianLike, &Config::default());
    plan(&host(1), &r, &Config::default()).unwrap();
}

#[test]
fn order_does_not_depend_on_inventory_order() {
    let inv = host(4);
    let r = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "3,1"),
        ("NVIDIA_DRIVER_CAPABILITIES", "all"),
    ]);
    let a = plan(&inv, &r, &Config::default()).unwrap();
    let mut shuffled = inv.clone();
    shuffled.files.reverse();
    shuffled.gpus.reverse();
    let b = plan(&shuffled, &r, &Config::default()).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    // Duplicated files collapse.
    let mut doubled = inv.clone();
    doubled.files.extend(inv.files.clone());
    assert_eq!(plan(&doubled, &r, &Config::default()).unwrap(), a);
}

#[test]
fn plan_and_inventory_serialize() {
    let inv = with_mig(host(2), 0);
    let json = serde_json::to_string(&inv).unwrap();
    let back: rules::Inventory = serde_json::from_str(&json).unwrap();
    assert_eq!(back, inv);
    let p = plan(
        &inv,
        &request(&[("NVIDIA_VISIBLE_DEVICES", "all")]),
        &Config::default(),
    )
    .unwrap();
    let value = serde_json::to_value(&p).unwrap();
    assert_eq!(value["device_nodes"][0]["path"], "/dev/nvidiactl");
    assert_eq!(value["device_nodes"][0]["type"], "c");
    assert_eq!(value["mounts"][0]["flags"]["read_only"], true);
    assert_eq!(
        value["capabilities"],
        serde_json::json!(["compute", "utility"])
    );
}

/// The JSON shape the hook caches (also a readable example of it).
#[test]
fn json_inventory_fixture() {
    let inv: rules::Inventory =
        serde_json::from_str(include_str!("data/inventory-a100x2.json")).unwrap();
    inv.validate().unwrap();
    let r = request(&[
        ("NVIDIA_VISIBLE_DEVICES", "0,1:0"),
        ("NVIDIA_REQUIRE_CUDA", "cuda>=12.0"),
    ]);
    let p = plan(&inv, &r, &Config::default()).unwrap();
    assert_eq!(
        nodes(&p),
        [
            "/dev/nvidiactl 195:255",
            "/dev/nvidia-uvm 508:0",
            "/dev/nvidia-uvm-tools 508:1",
            "/dev/nvidia0 195:0",
            "/dev/nvidia1 195:1",
            "/dev/nvidia-caps/nvidia-cap12 509:12",
            "/dev/nvidia-caps/nvidia-cap13 509:13",
        ]
    );
    assert_eq!(
        dests(&p),
        [
            "/lib/firmware/nvidia/535.104.05/gsp_ga10x.bin",
            "/tmp/nvidia-mps",
            "/usr/bin/nvidia-cuda-mps-control",
            "/usr/bin/nvidia-smi",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05",
            "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.535.104.05",
            "/usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.535.104.05",
            "/var/run/nvidia-persistenced/socket",
        ]
    );
    assert_eq!(
        links(&p),
        [
            "/usr/lib/x86_64-linux-gnu/libcuda.so -> libcuda.so.1",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1 -> libcuda.so.535.104.05",
            "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 -> libnvidia-ml.so.535.104.05",
            "/usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1 -> libnvidia-ptxjitcompiler.so.535.104.05",
        ]
    );
    let mask = p.proc_mask.as_ref().unwrap();
    assert_eq!(mask.gpus[1].proc_names()[0], "0000:0f:00.0");
}

/// `nvidia-docker run` of an image: the v1 label or `NVIDIA_VISIBLE_DEVICES`
/// in its environment makes it a GPU image; either gets v1's driver volume.
#[test]
fn v1_image_requests() {
    let cfg = Config::default();
    let labels: BTreeMap<String, String> = [(
        "com.nvidia.volumes.needed".to_owned(),
        "nvidia_driver".to_owned(),
    )]
    .into();
    let none = BTreeMap::new();
    for (labels, image_env, gpu) in [
        (&labels, env(&[]), true),
        (&none, env(&[("NVIDIA_VISIBLE_DEVICES", "all")]), true),
        (&none, env(&[("NVIDIA_VISIBLE_DEVICES", "void")]), false),
        (&none, env(&[("NVIDIA_VISIBLE_DEVICES", " ")]), false),
        (&none, env(&[("CUDA_VERSION", "12.2")]), false),
    ] {
        assert_eq!(
            rules::is_v1_gpu_image(labels, &image_env),
            gpu,
            "{image_env:?}"
        );
        let req = Request::from_v1_image(Some("1"), labels, &image_env, &cfg).unwrap();
        assert_eq!(req.is_gpu(), gpu, "{image_env:?}");
        let p = plan(&host(2), &req, &cfg).unwrap();
        assert_eq!(p.v1_volumes.len(), usize::from(gpu), "{p:?}");
        assert_eq!(
            p.gpus.iter().map(|g| g.index).collect::<Vec<_>>(),
            if gpu { vec![1] } else { vec![] }
        );
    }
}

/// A v1 image whose label and `NVIDIA_REQUIRE_CUDA` are both too new is
/// refused with v1's message (the label is checked first); with only the
/// variable too new, with the rules' message.
#[test]
fn v1_image_label_refusal_comes_first() {
    let cfg = Config::default();
    let labels: BTreeMap<String, String> = [
        (
            "com.nvidia.volumes.needed".to_owned(),
            "nvidia_driver".to_owned(),
        ),
        ("com.nvidia.cuda.version".to_owned(), "99.0".to_owned()),
    ]
    .into();
    let image_env = env(&[("NVIDIA_REQUIRE_CUDA", "cuda>=99.0")]);
    let req = Request::from_v1_image(None, &labels, &image_env, &cfg).unwrap();
    let err = plan(&host(2), &req, &cfg).unwrap_err();
    assert!(matches!(err, Refusal::V1CudaUnsupported { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("unsupported CUDA version: driver "),
        "{err}"
    );

    let modern_only = env(&[
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_REQUIRE_CUDA", "cuda>=99.0"),
    ]);
    let req = Request::from_v1_image(None, &BTreeMap::new(), &modern_only, &cfg).unwrap();
    let err = plan(&host(2), &req, &cfg).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("CUDA 99.0 needs a newer driver"),
        "{err}"
    );
}
