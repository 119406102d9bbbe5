//! `plan()` and DRM nodes: graphics and display get each whole selected
//! GPU's `card`/`renderD` nodes as the inventory found them by bus id, with
//! their cgroup rules and `by-path` links; compute, MIG devices and GPUs
//! without DRM nodes get none.

mod common;

use common::*;
use rules::{plan, Config, NodeRole, Plan};

fn planned(inv: &rules::Inventory, visible: &str, caps: &str) -> Plan {
    let req = request(&[
        ("NVIDIA_VISIBLE_DEVICES", visible),
        ("NVIDIA_DRIVER_CAPABILITIES", caps),
    ]);
    plan(inv, &req, &Config::default()).unwrap()
}

fn drm(p: &Plan) -> Vec<String> {
    p.device_nodes
        .iter()
        .filter(|n| matches!(n.role, NodeRole::Drm { .. }))
        .map(|n| format!("{} {}:{}", n.path, n.major, n.minor))
        .collect()
}

fn links(p: &Plan) -> Vec<String> {
    p.dev_links
        .iter()
        .map(|l| format!("{} -> {}", l.link, l.target()))
        .collect()
}

#[test]
fn graphics_gets_the_selected_gpus_drm_nodes_and_links() {
    let inv = host(4);
    let p = planned(&inv, "2,0", "graphics");
    assert_eq!(
        drm(&p),
        [
            "/dev/dri/card1 226:1",
            "/dev/dri/renderD128 226:128",
            "/dev/dri/card3 226:3",
            "/dev/dri/renderD130 226:130",
        ]
    );
    assert_eq!(
        links(&p),
        [
            "/dev/dri/by-path/pci-0000:04:00.0-card -> ../card1",
            "/dev/dri/by-path/pci-0000:04:00.0-render -> ../renderD128",
            "/dev/dri/by-path/pci-0000:06:00.0-card -> ../card3",
            "/dev/dri/by-path/pci-0000:06:00.0-render -> ../renderD130",
        ]
    );
    for (major, minor) in [(226, 1), (226, 128), (226, 3), (226, 130)] {
        assert_eq!(
            p.device_rules
                .iter()
                .filter(|r| (r.major, r.minor) == (major, minor))
                .count(),
            1
        );
    }
    // Display too; nothing for compute or utility.
    assert_eq!(drm(&planned(&inv, "1", "display")).len(), 2);
    let p = planned(&inv, "all", "compute,utility,video");
    assert!(drm(&p).is_empty() && p.dev_links.is_empty());
}

#[test]
fn a_gpu_without_drm_nodes_gets_none_and_no_error() {
    let mut inv = host(2);
    let bus1 = inv.gpus[1].bus_id;
    inv.drm.retain(|d| d.bus_id != bus1);
    let p = planned(&inv, "1", "graphics");
    assert!(drm(&p).is_empty() && p.dev_links.is_empty());
    let p = planned(&inv, "all", "graphics,display");
    assert_eq!(
        drm(&p),
        ["/dev/dri/card1 226:1", "/dev/dri/renderD128 226:128"]
    );
}

#[test]
fn mig_devices_get_no_drm_nodes() {
    let inv = with_mig(host(2), 1);
    let p = planned(&inv, "1:0", "all");
    assert!(drm(&p).is_empty(), "{:?}", drm(&p));
}
