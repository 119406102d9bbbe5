//! IMEX channels and the gated device families in `plan()`: given only when
//! asked, with their cgroup rules; every refusal's exact text (product).

mod common;

use common::*;
use rules::extra_devices::{ExtraDevices, HostNode};
use rules::{plan, Config, Inventory, NodeRole, Plan};

fn extra_host() -> Inventory {
    let mut inv = host(2);
    inv.extra_devices = ExtraDevices {
        imex_major: Some(238),
        imex_channels: vec![0, 1],
        nodes: [
            ("/dev/nvidia-fs0", 239, 0),
            ("/dev/nvidia-fs1", 239, 1),
            ("/dev/infiniband/uverbs0", 231, 192),
            ("/dev/infiniband/rdma_cm", 10, 58),
            ("/dev/gdrdrv", 240, 0),
            ("/dev/nvidia-nvswitch0", 241, 0),
            ("/dev/nvidia-nvlink", 242, 0),
        ]
        .map(|(path, major, minor)| HostNode {
            path: path.into(),
            major,
            minor,
        })
        .to_vec(),
        mig_config_minor: Some(1),
        mig_monitor_minor: Some(2),
    };
    inv
}

/// Variables set, and the nodes expected.
type Asked<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
/// The host, the variables set, and the refusal's text.
type Refused<'a> = (&'a Inventory, &'a [(&'a str, &'a str)], &'a str);

fn planned(inv: &Inventory, pairs: &[(&str, &str)]) -> Result<Plan, String> {
    let mut all = vec![("NVIDIA_VISIBLE_DEVICES", "0")];
    all.extend_from_slice(pairs);
    let cfg = Config::default();
    rules::Request::from_container(
        &env(&all),
        &Default::default(),
        true,
        rules::RootfsFlavor::DebianLike,
        &cfg,
    )
    .and_then(|r| plan(inv, &r, &cfg))
    .map_err(|e| e.to_string())
}

fn extra(p: &Plan) -> Vec<String> {
    p.device_nodes
        .iter()
        .filter(|n| matches!(n.role, NodeRole::Imex { .. } | NodeRole::Gated { .. }))
        .map(|n| format!("{} {}:{}", n.path, n.major, n.minor))
        .collect()
}

#[test]
fn each_family_only_when_asked() {
    let inv = extra_host();
    assert!(extra(&planned(&inv, &[]).unwrap()).is_empty());
    assert!(extra(&planned(&inv, &[("NVIDIA_GDS", "disabled")]).unwrap()).is_empty());
    let cases: &[Asked] = &[
        (
            &[("NVIDIA_IMEX_CHANNELS", "all")],
            &[
                "/dev/nvidia-caps-imex-channels/channel0 238:0",
                "/dev/nvidia-caps-imex-channels/channel1 238:1",
            ],
        ),
        (
            &[("NVIDIA_IMEX_CHANNELS", "1")],
            &["/dev/nvidia-caps-imex-channels/channel1 238:1"],
        ),
        (
            &[("NVIDIA_GDS", "enabled")],
            &["/dev/nvidia-fs0 239:0", "/dev/nvidia-fs1 239:1"],
        ),
        (
            &[("NVIDIA_MOFED", "enabled")],
            &[
                "/dev/infiniband/rdma_cm 10:58",
                "/dev/infiniband/uverbs0 231:192",
            ],
        ),
        (&[("NVIDIA_GDRCOPY", "enabled")], &["/dev/gdrdrv 240:0"]),
        (
            &[("NVIDIA_NVSWITCH", "enabled")],
            &["/dev/nvidia-nvlink 242:0", "/dev/nvidia-nvswitch0 241:0"],
        ),
    ];
    for (env, want) in cases {
        let p = planned(&inv, env).unwrap();
        assert_eq!(extra(&p), *want, "{env:?}");
        for n in p
            .device_nodes
            .iter()
            .filter(|n| want.iter().any(|w| w.starts_with(n.path.as_str())))
        {
            assert!(
                p.device_rules
                    .iter()
                    .any(|r| (r.major, r.minor) == (n.major, n.minor)),
                "{} has no rule",
                n.path
            );
        }
    }
}

#[test]
fn refusal_texts() {
    let with = extra_host();
    let without = host(2);
    let cases: &[Refused] = &[
        (
            &with,
            &[("NVIDIA_IMEX_CHANNELS", "0,x")],
            "invalid IMEX channel \"x\" in NVIDIA_IMEX_CHANNELS=\"0,x\": expected all, none, or a comma list of channel numbers such as 0,1",
        ),
        (
            &without,
            &[("NVIDIA_IMEX_CHANNELS", "all")],
            "NVIDIA_IMEX_CHANNELS=all asks for IMEX channels, but this host has none (no nvidia-caps-imex-channels in /proc/devices): load the NVIDIA driver with IMEX support (NVreg_CreateImexChannel0=1) or unset NVIDIA_IMEX_CHANNELS",
        ),
        (
            &without,
            &[("NVIDIA_IMEX_CHANNELS", "1,0")],
            "NVIDIA_IMEX_CHANNELS=0,1 asks for IMEX channels, but this host has none (no nvidia-caps-imex-channels in /proc/devices): load the NVIDIA driver with IMEX support (NVreg_CreateImexChannel0=1) or unset NVIDIA_IMEX_CHANNELS",
        ),
        (
            &with,
            &[("NVIDIA_IMEX_CHANNELS", "0,7")],
            "IMEX channel 7 asked for in NVIDIA_IMEX_CHANNELS does not exist on this host (it has channel0, channel1): create /dev/nvidia-caps-imex-channels/channel7 on the host or ask for an existing channel",
        ),
        (
            &without,
            &[("NVIDIA_GDS", "enabled")],
            "NVIDIA_GDS=enabled asks for /dev/nvidia-fs*, but this host has none: load the nvidia-fs module on the host or unset NVIDIA_GDS",
        ),
        (
            &without,
            &[("NVIDIA_MOFED", "enabled")],
            "NVIDIA_MOFED=enabled asks for /dev/infiniband/*, but this host has none: load the ib_uverbs (MLNX_OFED) module on the host or unset NVIDIA_MOFED",
        ),
        (
            &without,
            &[("NVIDIA_GDRCOPY", "enabled")],
            "NVIDIA_GDRCOPY=enabled asks for /dev/gdrdrv, but this host has none: load the gdrdrv module on the host or unset NVIDIA_GDRCOPY",
        ),
        (
            &without,
            &[("NVIDIA_NVSWITCH", "enabled")],
            "NVIDIA_NVSWITCH=enabled asks for /dev/nvidia-nvswitch* and /dev/nvidia-nvlink, but this host has none: load the nvidia (on an NVSwitch system) module on the host or unset NVIDIA_NVSWITCH",
        ),
    ];
    for (inv, env, want) in cases {
        assert_eq!(planned(inv, env).unwrap_err(), *want, "{env:?}");
    }
}

#[test]
fn mig_config_and_monitor_for_privileged_containers() {
    let inv = extra_host();
    let p = planned(
        &inv,
        &[
            ("NVIDIA_MIG_CONFIG_DEVICES", "all"),
            ("NVIDIA_MIG_MONITOR_DEVICES", "all"),
        ],
    )
    .unwrap();
    let control: Vec<String> = p
        .device_nodes
        .iter()
        .filter(|n| n.role == NodeRole::MigControl)
        .map(|n| format!("{} {}:{}", n.path, n.major, n.minor))
        .collect();
    assert_eq!(
        control,
        [
            "/dev/nvidia-caps/nvidia-cap1 509:1",
            "/dev/nvidia-caps/nvidia-cap2 509:2"
        ]
    );
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
            "/proc/driver/nvidia/capabilities/mig/config",
            "/proc/driver/nvidia/capabilities/mig/monitor"
        ]
    );
    assert!(planned(&inv, &[])
        .unwrap()
        .device_nodes
        .iter()
        .all(|n| n.role != NodeRole::MigControl));

    // Refusals: unprivileged, a bad value, a host without the capability.
    let cfg = Config::default();
    let unprivileged = rules::Request::from_container(
        &env(&[
            ("NVIDIA_VISIBLE_DEVICES", "0"),
            ("NVIDIA_MIG_CONFIG_DEVICES", "all"),
        ]),
        &Default::default(),
        false,
        rules::RootfsFlavor::DebianLike,
        &cfg,
    )
    .unwrap_err();
    assert_eq!(
        unprivileged.to_string(),
        "NVIDIA_MIG_CONFIG_DEVICES needs a privileged container (CAP_SYS_ADMIN), as with the NVIDIA Container Toolkit: run it privileged or unset NVIDIA_MIG_CONFIG_DEVICES"
    );
    assert_eq!(
        planned(&inv, &[("NVIDIA_MIG_MONITOR_DEVICES", "0")]).unwrap_err(),
        "invalid NVIDIA_MIG_MONITOR_DEVICES=\"0\": expected all or none"
    );
    assert_eq!(
        planned(&host(1), &[("NVIDIA_MIG_MONITOR_DEVICES", "all")]).unwrap_err(),
        "NVIDIA_MIG_MONITOR_DEVICES=all asks for the MIG monitor capability, but this host has none (/proc/driver/nvidia/capabilities/mig/monitor is missing, or nvidia-caps is not in /proc/devices): use a driver with MIG support or unset NVIDIA_MIG_MONITOR_DEVICES"
    );
}
