//! The plan's bytes for rich requests on rich hosts, against a golden file
//! written by the planner before its speed work (`tests/data/
//! plan_golden.txt`): a faster `plan()` must give byte-identical plans.
//! `PLAN_GOLDEN_WRITE=1 cargo test -p rules --test plan_golden` rewrites
//! the file from the current planner (only when the plan is meant to change).
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use rules::extra_devices::{ExtraDevices, HostNode};
use rules::{plan, Config, Inventory, RootfsFlavor};

const GOLDEN: &str = include_str!("data/plan_golden.txt");

fn extras(mut inv: Inventory) -> Inventory {
    let node = |path: &str, major, minor| HostNode {
        path: path.to_owned(),
        major,
        minor,
    };
    inv.extra_devices = ExtraDevices {
        imex_major: Some(238),
        imex_channels: vec![2, 0, 1],
        nodes: vec![
            node("/dev/nvidia-fs1", 239, 1),
            node("/dev/nvidia-fs0", 239, 0),
            node("/dev/infiniband/uverbs0", 231, 192),
            node("/dev/infiniband/rdma_cm", 10, 58),
            node("/dev/gdrdrv", 240, 0),
            node("/dev/nvidia-nvswitch0", 241, 0),
            node("/dev/nvidia-nvlink", 242, 0),
        ],
        mig_config_minor: Some(1),
        mig_monitor_minor: Some(2),
    };
    inv
}

/// The same host with its file lists in reverse order.
fn reversed(mut inv: Inventory) -> Inventory {
    inv.files.reverse();
    inv.loader_files.reverse();
    inv.drm.reverse();
    inv
}

fn cases() -> Vec<(&'static str, String)> {
    let cfg = Config::default();
    let all = [
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_DRIVER_CAPABILITIES", "all"),
    ];
    let rich = [
        ("NVIDIA_VISIBLE_DEVICES", "0,2,5,1:1"),
        ("NVIDIA_DRIVER_CAPABILITIES", "all"),
        ("NVIDIA_IMEX_CHANNELS", "all"),
        ("NVIDIA_GDS", "enabled"),
        ("NVIDIA_MOFED", "enabled"),
        ("NVIDIA_GDRCOPY", "enabled"),
        ("NVIDIA_NVSWITCH", "enabled"),
        ("NVIDIA_MIG_CONFIG_DEVICES", "all"),
        ("NVIDIA_MIG_MONITOR_DEVICES", "all"),
    ];
    let compute = [
        ("NVIDIA_VISIBLE_DEVICES", "3"),
        ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility,compat32"),
    ];
    let v1_ann = [
        ("com.nvidia.volumes.needed", "nvidia_driver"),
        ("com.nvidia.cuda.version", "8.0"),
    ];
    let modern_and_v1 = [
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_DRIVER_CAPABILITIES", "graphics,display,video"),
    ];
    let rich_host = || extras(with_mig(host(8), 1));
    let req =
        |env: &[(&str, &str)], ann: &[(&str, &str)], rootfs| request_with(env, ann, rootfs, &cfg);
    let json = |inv: &Inventory, r: &rules::Request| {
        serde_json::to_string(&plan(inv, r, &cfg).expect("plans")).unwrap()
    };
    vec![
        (
            "8 GPUs, all capabilities",
            json(&host(8), &req(&all, &[], RootfsFlavor::DebianLike)),
        ),
        (
            "16 GPUs, all capabilities, lib64",
            json(&host(16), &req(&all, &[], RootfsFlavor::Lib64)),
        ),
        (
            "MIG, extra devices, all capabilities",
            json(&rich_host(), &req(&rich, &[], RootfsFlavor::DebianLike)),
        ),
        (
            "reversed files, all capabilities, lib64/lib32",
            json(
                &reversed(rich_host()),
                &req(&all, &[], RootfsFlavor::Lib64Lib32),
            ),
        ),
        (
            "compute, utility, compat32",
            json(&rich_host(), &req(&compute, &[], RootfsFlavor::DebianLike)),
        ),
        (
            "v1 volume",
            json(&host(2), &req(&[], &v1_ann, RootfsFlavor::DebianLike)),
        ),
        (
            "modern with a v1 label",
            json(
                &host(2),
                &req(&modern_and_v1, &v1_ann, RootfsFlavor::DebianLike),
            ),
        ),
    ]
}

fn render(cases: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (name, plan) in cases {
        out.push_str(&format!("{name}\n{plan}\n"));
    }
    out
}

#[test]
fn plans_match_the_golden_file() {
    let got = render(&cases());
    if std::env::var_os("PLAN_GOLDEN_WRITE").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/plan_golden.txt");
        std::fs::write(path, &got).unwrap();
        return;
    }
    let want: Vec<&str> = GOLDEN.lines().collect();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got.len(), want.len(), "cases changed");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g != w {
            let at = g
                .bytes()
                .zip(w.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(g.len().min(w.len()));
            panic!(
                "line {} ({}) differs at byte {at}:\n got: ...{}\nwant: ...{}",
                i + 1,
                want[i - i % 2],
                &g[at.saturating_sub(80)..(at + 80).min(g.len())],
                &w[at.saturating_sub(80)..(at + 80).min(w.len())],
            );
        }
    }
}
