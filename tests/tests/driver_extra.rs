//! IMEX channels, GPUDirect (GDS, MOFED, GDRCopy) and NVSwitch devices in
//! real containers: each only when asked, created with the host's numbers
//! and allowed by the device cgroup (open is not refused with EPERM); the
//! fabric manager's socket with `NVIDIA_NVSWITCH`; an absent family is a
//! refusal naming it. Under runc with the prestart hook (cgroup v1 and v2)
//! and the runc wrapper.
use std::collections::BTreeSet;

use e2e::hook::SimHost;
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Prereq, Variant};
use fixtures::host_desc::HostDescription;

use crate::config_common::wrapped_runc_run;

const SCRIPT: &str = r#"for n in /dev/nvidia-caps-imex-channels/* /dev/nvidia-fs* /dev/infiniband/* /dev/gdrdrv /dev/nvidia-nvswitch* /dev/nvidia-nvlink; do [ -c "$n" ] && echo "node $n $(stat -c '%t:%T' "$n") $(cat "$n" 2>&1 >/dev/null | sed 's/.*: //')"; done
[ -e /run/nvidia-fabricmanager/socket ] && echo fabricmanager
echo done"#;

fn host(extras: bool) -> SimHost {
    let mut desc = HostDescription::synthetic(1, "535.104.05", "12.2");
    if extras {
        desc.imex_channels = Some(2);
        desc.gpudirect = true;
    }
    SimHost::generate_with(desc, |o| o.ipc = true).unwrap()
}

/// `node <path> <hex major:minor>` lines, checking none was refused.
#[track_caller]
fn nodes(stdout: &str, context: &dyn std::fmt::Display) -> BTreeSet<String> {
    assert_eq!(stdout.lines().last(), Some("done"), "{context}");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("node "))
        .map(|rest| {
            let f: Vec<&str> = rest.splitn(3, ' ').collect();
            assert!(
                !f.get(2).is_some_and(|e| e.contains("not permitted")),
                "{rest}: {context}"
            );
            format!("{} {}", f[0], f[1])
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn hook_run(cgroup: CgroupVersion, env: &[(&str, &str)]) -> e2e::Output {
    let host = host(true);
    let mut b = Bundle::builder(Variant::Debian)
        .sh(SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .env("NVIDIA_DRIVER_CAPABILITIES", "compute")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap());
    for (k, v) in env {
        b = b.env(k, v);
    }
    let out = runc_run(&b.build().unwrap(), cgroup).unwrap();
    out.assert_success();
    out
}

#[test]
fn hook_everything_asked_v1() {
    require!(Prereq::Runc, CgroupVersion::V1.prereq());
    let out = hook_run(
        CgroupVersion::V1,
        &[
            ("NVIDIA_IMEX_CHANNELS", "all"),
            ("NVIDIA_GDS", "enabled"),
            ("NVIDIA_MOFED", "enabled"),
            ("NVIDIA_GDRCOPY", "enabled"),
            ("NVIDIA_NVSWITCH", "enabled"),
        ],
    );
    // Majors (hex): imex 238 = ee, nvidia-fs 239 = ef, gdrdrv 240 = f0,
    // nvswitch 241 = f1, infiniband 231 = e7 and misc 10 = a.
    let got = nodes(&out.stdout, &out);
    let want = set(&[
        "/dev/nvidia-caps-imex-channels/channel0 ee:0",
        "/dev/nvidia-caps-imex-channels/channel1 ee:1",
        "/dev/nvidia-fs0 ef:0",
        "/dev/nvidia-fs1 ef:1",
        "/dev/infiniband/uverbs0 e7:c0",
        "/dev/infiniband/rdma_cm a:3a",
        "/dev/gdrdrv f0:0",
        "/dev/nvidia-nvswitch0 f1:0",
    ]);
    assert!(got.is_superset(&want), "{got:?}\n{out}");
    assert_eq!(got.len(), want.len() + 1, "{got:?}\n{out}");
    assert!(
        got.iter().any(|n| n.starts_with("/dev/nvidia-nvlink ")),
        "{out}"
    );
    // NVSwitch brings the fabric manager's socket, even without utility.
    assert!(out.stdout.lines().any(|l| l == "fabricmanager"), "{out}");
}

#[test]
fn hook_only_what_is_asked_v2() {
    require!(Prereq::Runc, CgroupVersion::V2.prereq());
    let out = hook_run(CgroupVersion::V2, &[("NVIDIA_IMEX_CHANNELS", "1")]);
    assert_eq!(
        nodes(&out.stdout, &out),
        set(&["/dev/nvidia-caps-imex-channels/channel1 ee:1"]),
        "{out}"
    );
    assert!(!out.stdout.contains("fabricmanager"), "{out}");
    let out = hook_run(CgroupVersion::V2, &[]);
    assert!(nodes(&out.stdout, &out).is_empty(), "{out}");
}

#[test]
fn wrapper_gds_and_gdrcopy_v2() {
    require!(Prereq::Runc, CgroupVersion::V2.prereq());
    let host = host(true);
    let bundle = Bundle::builder(Variant::Lib64)
        .sh(SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .env("NVIDIA_GDS", "enabled")
        .env("NVIDIA_GDRCOPY", "enabled")
        .build()
        .unwrap();
    let out = wrapped_runc_run(&host, &bundle, CgroupVersion::V2).unwrap();
    out.assert_success();
    assert_eq!(
        nodes(&out.stdout, &out),
        set(&[
            "/dev/nvidia-fs0 ef:0",
            "/dev/nvidia-fs1 ef:1",
            "/dev/gdrdrv f0:0"
        ]),
        "{out}"
    );
}

/// A host without the devices: the container does not start, and the
/// line names the device and the way out.
#[test]
fn absent_devices_are_refused_v1() {
    require!(Prereq::Runc, CgroupVersion::V1.prereq());
    let host = host(false);
    for (var, value, text) in [
        (
            "NVIDIA_GDS",
            "enabled",
            "NVIDIA_GDS=enabled asks for /dev/nvidia-fs*, but this host has none",
        ),
        (
            "NVIDIA_IMEX_CHANNELS",
            "0",
            "NVIDIA_IMEX_CHANNELS=0 asks for IMEX channels, but this host has none",
        ),
    ] {
        let bundle = Bundle::builder(Variant::Debian)
            .sh("echo started")
            .env("NVIDIA_VISIBLE_DEVICES", "0")
            .env(var, value)
            .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
            .build()
            .unwrap();
        let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
        out.assert_failure();
        assert!(out.stderr.contains(text), "{out}");
        assert!(!out.stdout.contains("started"), "{out}");
    }
}

const MIG_SCRIPT: &str = r#"for n in /dev/nvidia-caps/*; do [ -c "$n" ] && echo "node $n $(stat -c '%t:%T' "$n")"; done
for f in config monitor; do [ -f /proc/driver/nvidia/capabilities/mig/$f ] && echo "access $f $(grep DeviceFileMinor /proc/driver/nvidia/capabilities/mig/$f)"; done
echo done"#;

fn privileged(b: e2e::BundleBuilder) -> e2e::BundleBuilder {
    b.with_config(|c| {
        for set in ["bounding", "effective", "permitted"] {
            if let Some(list) = c["process"]["capabilities"][set].as_array_mut() {
                list.push("CAP_SYS_ADMIN".into());
            }
        }
    })
}

#[track_caller]
fn check_mig_control(stdout: &str, context: &dyn std::fmt::Display) {
    let lines: BTreeSet<&str> = stdout.lines().collect();
    // nvidia-caps is 509 (0x1fd) on the simulated host.
    for want in [
        "node /dev/nvidia-caps/nvidia-cap1 1fd:1",
        "node /dev/nvidia-caps/nvidia-cap2 1fd:2",
        "access config DeviceFileMinor: 1",
        "access monitor DeviceFileMinor: 2",
        "done",
    ] {
        assert!(lines.contains(want), "{want}: {context}");
    }
}

/// `NVIDIA_MIG_CONFIG_DEVICES` and `NVIDIA_MIG_MONITOR_DEVICES` in a
/// privileged container: the capability nodes and their access files.
#[test]
fn hook_mig_config_and_monitor_v1() {
    require!(Prereq::Runc, CgroupVersion::V1.prereq());
    let host = host(false);
    let bundle = privileged(Bundle::builder(Variant::Debian))
        .sh(MIG_SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .env("NVIDIA_MIG_CONFIG_DEVICES", "all")
        .env("NVIDIA_MIG_MONITOR_DEVICES", "all")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    check_mig_control(&out.stdout, &out);

    // Not asked: neither node nor file.
    let bundle = privileged(Bundle::builder(Variant::Debian))
        .sh(MIG_SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    assert_eq!(out.stdout.trim(), "done", "{out}");

    // Unprivileged: refused.
    let bundle = Bundle::builder(Variant::Debian)
        .sh("echo started")
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .env("NVIDIA_MIG_CONFIG_DEVICES", "all")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_failure();
    assert!(
        out.stderr
            .contains("NVIDIA_MIG_CONFIG_DEVICES needs a privileged container"),
        "{out}"
    );
}

#[test]
fn wrapper_mig_config_and_monitor_v2() {
    require!(Prereq::Runc, CgroupVersion::V2.prereq());
    let host = host(false);
    let bundle = privileged(Bundle::builder(Variant::Lib64))
        .sh(MIG_SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .env("NVIDIA_MIG_CONFIG_DEVICES", "all")
        .env("NVIDIA_MIG_MONITOR_DEVICES", "all")
        .build()
        .unwrap();
    let out = wrapped_runc_run(&host, &bundle, CgroupVersion::V2).unwrap();
    out.assert_success();
    check_mig_control(&out.stdout, &out);
}
