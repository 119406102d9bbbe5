//! DRM nodes in real containers: with `graphics` or `display`, each whole
//! selected GPU's `/dev/dri/card<N>` and `renderD<N>` (found in the
//! simulated sysfs by bus id; `card0` is the board's VGA and never given),
//! allowed by the device cgroup, with `/dev/dri/by-path` links; a GPU
//! without DRM nodes gets none and starts; `compute` gets none. Under runc
//! with the prestart hook (cgroup v1 and v2), the runc wrapper and CDI.
use std::collections::BTreeSet;

use e2e::hook::SimHost;
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Podman, Prereq, Variant};
use fixtures::host_desc::HostDescription;

use crate::config_common::wrapped_runc_run;
use crate::config_podman::{cdi_spec, run_with_devices};

const SCRIPT: &str = r#"for n in /dev/dri/*; do [ -c "$n" ] && echo "node $n $(stat -c '%t:%T' "$n") $(cat "$n" 2>&1 >/dev/null | sed 's/.*: //')"; done
for l in /dev/dri/by-path/*; do [ -L "$l" ] && echo "link $l $(readlink "$l")"; done
echo done"#;

/// Three GPUs (buses 07, 08, 09); GPU 1 has no DRM nodes, so GPU 0 has
/// card1/renderD128 and GPU 2 card2/renderD129.
fn host() -> SimHost {
    let mut desc = HostDescription::synthetic(3, "535.104.05", "12.2");
    desc.gpus[1].drm = false;
    SimHost::generate(desc).unwrap()
}

/// The lines expected for the GPUs `indexes` (of 0 and 2).
fn expected(indexes: &[usize]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for i in indexes {
        let (bus, card, render) = match i {
            0 => ("07", 1, 128),
            2 => ("09", 2, 129),
            _ => continue,
        };
        out.insert(format!("node /dev/dri/card{card} e2:{card:x}"));
        out.insert(format!("node /dev/dri/renderD{render} e2:{render:x}"));
        out.insert(format!(
            "link /dev/dri/by-path/pci-0000:{bus}:00.0-card ../card{card}"
        ));
        out.insert(format!(
            "link /dev/dri/by-path/pci-0000:{bus}:00.0-render ../renderD{render}"
        ));
    }
    out
}

#[track_caller]
fn check(stdout: &str, indexes: &[usize], context: &dyn std::fmt::Display) {
    assert_eq!(stdout.lines().last(), Some("done"), "{context}");
    let mut got = BTreeSet::new();
    for line in stdout.lines().filter(|l| *l != "done") {
        if let Some(rest) = line.strip_prefix("node ") {
            // The cgroup allows it: opening is not refused with EPERM.
            let f: Vec<&str> = rest.splitn(3, ' ').collect();
            assert!(
                !f.get(2).is_some_and(|e| e.contains("not permitted")),
                "{line}: {context}"
            );
            got.insert(format!("node {} {}", f[0], f[1]));
        } else {
            got.insert(line.to_owned());
        }
    }
    assert_eq!(got, expected(indexes), "{context}");
}

fn hook_run(cgroup: CgroupVersion, visible: &str, caps: &str, indexes: &[usize]) {
    require!(Prereq::Runc, cgroup.prereq());
    let host = host();
    let bundle = Bundle::builder(Variant::Debian)
        .sh(SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", visible)
        .env("NVIDIA_DRIVER_CAPABILITIES", caps)
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, cgroup).unwrap();
    out.assert_success();
    check(&out.stdout, indexes, &out);
}

#[test]
fn hook_graphics_all_v1() {
    hook_run(CgroupVersion::V1, "all", "graphics", &[0, 2]);
}

#[test]
fn hook_display_one_v2() {
    hook_run(CgroupVersion::V2, "2", "display", &[2]);
}

#[test]
fn hook_gpu_without_drm_v2() {
    hook_run(CgroupVersion::V2, "1", "graphics,display", &[]);
}

#[test]
fn hook_compute_has_no_drm_v1() {
    hook_run(CgroupVersion::V1, "all", "compute,utility", &[]);
}

#[test]
fn wrapper_graphics_v2() {
    require!(Prereq::Runc, CgroupVersion::V2.prereq());
    let host = host();
    let bundle = Bundle::builder(Variant::Lib64)
        .sh(SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "0,1")
        .env("NVIDIA_DRIVER_CAPABILITIES", "graphics")
        .build()
        .unwrap();
    let out = wrapped_runc_run(&host, &bundle, CgroupVersion::V2).unwrap();
    out.assert_success();
    check(&out.stdout, &[0], &out);
}

/// CDI: each device carries its own DRM nodes and links.
#[test]
fn podman_cdi_drm() {
    require!(Prereq::Podman);
    let host = host();
    let (kind, _guard) = cdi_spec(&host, "json");
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-drm";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    for (device, indexes) in [("2", vec![2]), ("1", vec![]), ("all", vec![0, 2])] {
        let out = run_with_devices(&podman, image, &[format!("{kind}={device}")], SCRIPT);
        assert!(out.success(), "{out}");
        check(&out.stdout, &indexes, &out);
    }
}
