//! Property tests of `plan()`: deterministic, independent of the inventory's
//! order, and never naming a container path outside the root.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use rules::{
    plan, Config, ContainerPath, DriverFile, ElfClass, Env, FileKind, HostPath, Inventory, Request,
    RootfsFlavor,
};

/// File paths including hostile-looking but valid names.
fn path_strategy() -> impl Strategy<Value = String> {
    let dirs = prop::sample::select(vec![
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/i386-linux-gnu",
        "/usr/bin",
        "/lib/firmware/nvidia/535.104.05",
        "/var/run/nvidia-persistenced",
        "/tmp",
        "/..",
    ]);
    let names = prop::sample::select(vec![
        "libcuda.so.535.104.05",
        "libcuda.so",
        "libnvidia-ml.so.535.104.05",
        "libGLX_nvidia.so.535.104.05",
        "libGL.so.1.7.0",
        "libnvidia-opticalflow.so.535",
        "nvidia-smi",
        "nvidia-cuda-mps-server",
        "gsp.bin",
        "socket",
        "..libcuda.so.1",
        "...",
        "libcuda.so.1 ",
        "x",
    ]);
    (dirs, names).prop_map(|(d, n)| format!("{d}/{n}"))
}

fn soname_strategy() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::sample::select(vec![
            "libcuda.so.1",
            "../../etc/passwd",
            "a/b",
            "..",
            ".",
            "",
            "libGLX_nvidia.so.0",
            "libcuda.so.535.104.05",
            "x\0y",
        ])
        .prop_map(String::from),
    )
}

fn file_strategy() -> impl Strategy<Value = Option<DriverFile>> {
    let kinds = prop::sample::select(vec![
        FileKind::Library,
        FileKind::Binary,
        FileKind::Firmware,
        FileKind::IpcSocket,
        FileKind::MpsPipeDir,
    ]);
    let classes = prop::sample::select(vec![ElfClass::Elf64, ElfClass::Elf32]);
    (path_strategy(), kinds, classes, soname_strategy()).prop_map(|(p, kind, class, soname)| {
        HostPath::new(p).ok().map(|path| DriverFile {
            path,
            kind,
            class,
            soname,
        })
    })
}

fn inventory_strategy() -> impl Strategy<Value = Inventory> {
    (
        0u32..6,
        prop::collection::vec(file_strategy(), 0..40),
        any::<bool>(),
        prop::sample::select(vec!["/", "/run/nvidia/driver"]),
    )
        .prop_map(|(n, files, mig, root)| {
            let mut inv = host(n);
            inv.files = files.into_iter().flatten().collect();
            inv.driver_root = HostPath::new(root).unwrap();
            if mig && n > 0 {
                inv = with_mig(inv, 0);
            }
            inv
        })
}

fn env_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    let devices = prop::sample::select(vec![
        "all",
        "none",
        "0",
        "1,0",
        "0:1",
        "GPU-8d8a",
        "void",
        "",
        "0,5",
        "00000000:04:00.0",
    ]);
    let caps = prop::sample::select(vec![
        "all",
        "compute",
        "graphics,display",
        "utility,compat32,compute",
        "video",
        "ngx",
        "",
    ]);
    let require = prop::sample::select(vec![
        "",
        "cuda>=12.2",
        "cuda>=12.4 brand=tesla",
        "arch>=8.0",
        "driver>=500",
    ]);
    (prop::option::of(devices), prop::option::of(caps), require).prop_map(|(d, c, r)| {
        let mut env = Vec::new();
        if let Some(d) = d {
            env.push(("NVIDIA_VISIBLE_DEVICES".to_string(), d.to_string()));
        }
        if let Some(c) = c {
            env.push(("NVIDIA_DRIVER_CAPABILITIES".to_string(), c.to_string()));
        }
        env.push(("NVIDIA_REQUIRE_CUDA".to_string(), r.to_string()));
        env
    })
}

fn flavor_strategy() -> impl Strategy<Value = RootfsFlavor> {
    prop::sample::select(vec![
        RootfsFlavor::DebianLike,
        RootfsFlavor::Lib64,
        RootfsFlavor::Lib64Lib32,
    ])
}

fn check_path(p: &ContainerPath) -> Result<(), TestCaseError> {
    let s = p.as_str();
    prop_assert!(s.starts_with('/'), "{s}");
    prop_assert!(
        !s.split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == ".."),
        "{s}"
    );
    prop_assert!(!s.contains('\0'));
    prop_assert!(ContainerPath::new(s).is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plan_is_deterministic_and_contained(
        inv in inventory_strategy(),
        env_pairs in env_strategy(),
        flavor in flavor_strategy(),
        label in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let config = Config::default();
        let mut ann = BTreeMap::new();
        if label {
            ann.insert("com.nvidia.volumes.needed".to_string(), "nvidia_driver".to_string());
        }
        let Ok(req) = Request::from_container(&Env::from_pairs(env_pairs), &ann, true, flavor, &config) else {
            return Ok(());
        };
        let first = plan(&inv, &req, &config);
        let second = plan(&inv, &req, &config);
        prop_assert_eq!(&first, &second);

        // The same inventory in another order plans the same.
        let mut shuffled = inv.clone();
        let n = shuffled.files.len();
        if n > 1 {
            shuffled.files.rotate_left((seed % n as u64) as usize);
            shuffled.files.reverse();
        }
        shuffled.gpus.reverse();
        prop_assert_eq!(&plan(&shuffled, &req, &config), &first);

        let Ok(p) = first else { return Ok(()) };
        let mut seen = BTreeSet::new();
        for m in &p.mounts {
            check_path(&m.destination)?;
            prop_assert!(seen.insert(m.destination.clone()), "duplicate mount {}", m.destination);
        }
        for s in &p.symlinks {
            check_path(&s.link)?;
            let t = s.target.as_str();
            prop_assert!(!t.is_empty() && !t.contains('/') && t != ".." && t != ".", "target {t:?}");
            prop_assert!(!seen.contains(&s.link), "symlink over a mount: {}", s.link);
        }
        for d in &p.device_nodes {
            check_path(&d.path)?;
            prop_assert!(d.path.as_str().starts_with("/dev/"));
        }
        for d in &p.ldconfig_dirs {
            check_path(d)?;
        }
        if let Some(mask) = &p.proc_mask {
            for a in &mask.mig_access {
                check_path(a)?;
            }
        }
        // Rules match nodes one to one.
        prop_assert_eq!(p.device_rules.len(), p.device_nodes.len());
        // Sorted output.
        prop_assert!(p.mounts.windows(2).all(|w| w[0].destination < w[1].destination));
        prop_assert!(p.symlinks.windows(2).all(|w| w[0].link < w[1].link));
        prop_assert!(p.gpus.windows(2).all(|w| w[0].index < w[1].index));
    }
}
