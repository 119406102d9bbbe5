//! MIG in real containers, on a simulated host with a MIG-enabled GPU
//! (index 0, minor 1: GPU instance 1 with compute instances 0 and 1, GPU
//! instance 2 with compute instance 0) and a GPU without MIG (index 1,
//! minor 0), so that a mix-up of index and minor shows. For each selection
//! (`MIG-<uuid>`, `<gpu>:<mig>`, `all`) the container gets the parent's
//! `/dev/nvidia<minor>`, exactly the capability nodes of its instances
//! (`/dev/nvidia-caps/nvidia-cap<M>`, allowed: opening gives ENXIO, not
//! EPERM), exactly their access files under
//! `/proc/driver/nvidia/capabilities` (with CDI: every instance's, the
//! spec's mask keeps all GPUs), and the `nvidia-smi` stand-in
//! inside lists exactly the selected MIG devices. Under runc with the
//! prestart hook (cgroup v1 and v2), the runc wrapper, and Podman with the
//! CDI spec of `nvidia-docker setup cdi` (devices named as `nvidia-ctk`
//! names them: `<gpu>:<mig>` and the MIG UUID).
use std::collections::BTreeSet;

use e2e::hook::SimHost;
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Podman, Prereq, Variant};
use fixtures::host_desc::HostDescription;

use crate::config_common::wrapped_runc_run;
use crate::config_podman::{cdi_spec, run_with_devices};

/// Every NVIDIA node with its numbers and what opening it says; the MIG
/// access files with their minor; the MIG devices `nvidia-smi -L` lists.
const SCRIPT: &str = r#"for n in /dev/nvidia[0-9]* /dev/nvidia-caps/*; do [ -c "$n" ] && echo "node $n $(stat -c '%t:%T' "$n") $(cat "$n" 2>&1 >/dev/null | sed 's/.*: //')"; done
for f in /proc/driver/nvidia/capabilities/*/mig/*/access /proc/driver/nvidia/capabilities/*/mig/*/*/access; do [ -f "$f" ] && echo "access $f $(grep DeviceFileMinor "$f")"; done
nvidia-smi -L 2>&1 | sed -n 's/^ *MIG .*(UUID: \(MIG-[^)]*\))$/smi \1/p'
echo done"#;

/// The host: index 0 (minor 1) MIG-enabled, index 1 (minor 0) not.
fn host() -> SimHost {
    let mut desc = HostDescription::synthetic(2, "535.104.05", "12.2");
    desc.gpus[0].minor = 1;
    desc.gpus[1].minor = 0;
    SimHost::generate(desc.with_mig(0)).unwrap()
}

/// The MIG device UUIDs of GPU 0, in MIG index order.
fn mig_uuids(host: &SimHost) -> Vec<String> {
    host.desc.gpus[0]
        .mig_devices()
        .iter()
        .map(|m| m.ci.uuid.clone())
        .collect()
}

/// What a container saw.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// `<path> <hex major>:<hex minor>`.
    nodes: BTreeSet<String>,
    /// `<path> <minor>`.
    access: BTreeSet<String>,
    /// MIG UUIDs `nvidia-smi -L` listed.
    smi: BTreeSet<String>,
}

#[track_caller]
fn seen(stdout: &str, context: &dyn std::fmt::Display) -> Seen {
    assert_eq!(stdout.lines().last(), Some("done"), "{context}");
    let mut s = Seen {
        nodes: BTreeSet::new(),
        access: BTreeSet::new(),
        smi: BTreeSet::new(),
    };
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("node ") {
            let f: Vec<&str> = rest.splitn(3, ' ').collect();
            // Created and allowed: no driver behind it (ENXIO), never EPERM.
            assert_eq!(
                f.get(2).copied(),
                Some("No such device or address"),
                "{rest}: {context}"
            );
            s.nodes.insert(format!("{} {}", f[0], f[1]));
        } else if let Some(rest) = line.strip_prefix("access ") {
            let (path, minor) = rest.split_once(" DeviceFileMinor: ").unwrap_or((rest, "?"));
            s.access.insert(format!("{path} {minor}"));
        } else if let Some(uuid) = line.strip_prefix("smi ") {
            s.smi.insert(uuid.to_owned());
        }
    }
    s
}

/// What selecting `(gpu 0 MIG indexes, whole GPU indexes)` must give.
fn want(host: &SimHost, migs: &[usize], whole: &[usize]) -> Seen {
    // nvidia-caps is 509 (0x1fd); the nvidia major is 195 (0xc3).
    let mut nodes = BTreeSet::new();
    let mut access = BTreeSet::new();
    let mut smi = BTreeSet::new();
    let caps = "/proc/driver/nvidia/capabilities";
    let gpu = &host.desc.gpus[0];
    if !migs.is_empty() {
        nodes.insert(format!("/dev/nvidia{} c3:{:x}", gpu.minor, gpu.minor));
    }
    for &w in whole {
        let minor = host.desc.gpus[w].minor;
        nodes.insert(format!("/dev/nvidia{minor} c3:{minor:x}"));
    }
    let all = gpu.mig_devices();
    for &k in migs {
        let m = &all[k];
        let gi = fixtures::host_desc::gi_caps_minor(gpu.minor, m.gi.id);
        let ci = fixtures::host_desc::ci_caps_minor(gpu.minor, m.gi.id, m.ci.id);
        for cap in [gi, ci] {
            nodes.insert(format!("/dev/nvidia-caps/nvidia-cap{cap} 1fd:{cap:x}"));
        }
        let dir = format!("{caps}/gpu{}/mig/gi{}", gpu.minor, m.gi.id);
        access.insert(format!("{dir}/access {gi}"));
        access.insert(format!("{dir}/ci{}/access {ci}", m.ci.id));
        smi.insert(m.ci.uuid.clone());
    }
    Seen { nodes, access, smi }
}

fn bundle(host: &SimHost, variant: Variant, devices: &str, hook: bool) -> Bundle {
    let mut b = Bundle::builder(variant)
        .sh(SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", devices)
        .env("NVIDIA_DRIVER_CAPABILITIES", "compute,utility");
    if hook {
        b = b.hook(HookStage::Prestart, &host.prestart_hook().unwrap());
    }
    b.build().unwrap()
}

fn hook_case(host: &SimHost, cgroup: CgroupVersion, devices: &str, want: &Seen) {
    let out = runc_run(&bundle(host, Variant::Debian, devices, true), cgroup).unwrap();
    out.assert_success();
    assert_eq!(
        &seen(&out.stdout, &out),
        want,
        "{devices} ({cgroup:?}): {out}"
    );
}

#[test]
fn hook_mig_uuid_index_and_all_v1() {
    require!(Prereq::Runc, CgroupVersion::V1.prereq());
    let host = host();
    let uuids = mig_uuids(&host);
    hook_case(&host, CgroupVersion::V1, &uuids[2], &want(&host, &[2], &[]));
    hook_case(&host, CgroupVersion::V1, "0:1", &want(&host, &[1], &[]));
    // A MIG device and the GPU without MIG.
    let both = format!("{},1", uuids[0]);
    hook_case(&host, CgroupVersion::V1, &both, &want(&host, &[0], &[1]));
    hook_case(
        &host,
        CgroupVersion::V1,
        "all",
        &want(&host, &[0, 1, 2], &[1]),
    );
}

#[test]
fn hook_mig_index_uuid_and_all_v2() {
    require!(Prereq::Runc, CgroupVersion::V2.prereq());
    let host = host();
    let uuids = mig_uuids(&host);
    hook_case(&host, CgroupVersion::V2, "0:1", &want(&host, &[1], &[]));
    hook_case(&host, CgroupVersion::V2, &uuids[2], &want(&host, &[2], &[]));
    // `all`: both GPUs and every MIG device of the MIG-enabled one.
    hook_case(
        &host,
        CgroupVersion::V2,
        "all",
        &want(&host, &[0, 1, 2], &[1]),
    );
}

/// An unknown MIG UUID, and a MIG device of the GPU without MIG: refused
/// with one line, the container does not start.
#[test]
fn hook_mig_refusals_v1() {
    require!(Prereq::Runc, CgroupVersion::V1.prereq());
    let host = host();
    for (devices, text) in [
        (
            "MIG-00000000-0000-0000-0000-000000000000",
            "unknown MIG device MIG-00000000-0000-0000-0000-000000000000 in NVIDIA_VISIBLE_DEVICES",
        ),
        (
            "1:0",
            "MIG device 1:0 in NVIDIA_VISIBLE_DEVICES, but GPU 1 does not have MIG mode enabled",
        ),
    ] {
        let bundle = Bundle::builder(Variant::Debian)
            .sh("echo started")
            .env("NVIDIA_VISIBLE_DEVICES", devices)
            .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
            .build()
            .unwrap();
        let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
        out.assert_failure();
        assert!(out.stderr.contains(text), "{text}: {out}");
        assert!(!out.stdout.contains("started"), "{out}");
    }
}

#[test]
fn wrapper_mig_index_v2() {
    require!(Prereq::Runc, CgroupVersion::V2.prereq());
    let host = host();
    let out = wrapped_runc_run(
        &host,
        &bundle(&host, Variant::Lib64, "0:0", false),
        CgroupVersion::V2,
    )
    .unwrap();
    out.assert_success();
    assert_eq!(seen(&out.stdout, &out), want(&host, &[0], &[]), "{out}");
}

/// `NVIDIA_MIG_CONFIG_DEVICES=all` with a MIG device: the config capability
/// in a privileged container, refused in an unprivileged one.
#[test]
fn hook_mig_config_privileged_only_v1() {
    require!(Prereq::Runc, CgroupVersion::V1.prereq());
    let host = host();
    let build = |privileged: bool| {
        let mut b = Bundle::builder(Variant::Debian)
            .sh(SCRIPT)
            .env("NVIDIA_VISIBLE_DEVICES", "0:1")
            .env("NVIDIA_MIG_CONFIG_DEVICES", "all")
            .hook(HookStage::Prestart, &host.prestart_hook().unwrap());
        if privileged {
            b = b.with_config(|c| {
                for set in ["bounding", "effective", "permitted"] {
                    if let Some(list) = c["process"]["capabilities"][set].as_array_mut() {
                        list.push("CAP_SYS_ADMIN".into());
                    }
                }
            });
        }
        b.build().unwrap()
    };
    let out = runc_run(&build(true), CgroupVersion::V1).unwrap();
    out.assert_success();
    let mut expected = want(&host, &[1], &[]);
    expected
        .nodes
        .insert("/dev/nvidia-caps/nvidia-cap1 1fd:1".to_owned());
    assert_eq!(seen(&out.stdout, &out), expected, "{out}");
    let out = runc_run(&build(false), CgroupVersion::V1).unwrap();
    out.assert_failure();
    assert!(
        out.stderr
            .contains("NVIDIA_MIG_CONFIG_DEVICES needs a privileged container"),
        "{out}"
    );
}

/// Podman with the generated CDI spec: a MIG device by `<gpu>:<mig>` and
/// by its UUID gets the parent node and exactly its capability nodes, and
/// `nvidia-smi` sees only it.
#[test]
fn podman_cdi_mig_devices() {
    require!(Prereq::Podman);
    let host = host();
    let uuids = mig_uuids(&host);
    let (kind, _guard) = cdi_spec(&host, "json");
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-mig";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let every_access = want(&host, &[0, 1, 2], &[]).access;
    for (name, k) in [("0:1".to_owned(), 1), (uuids[2].clone(), 2)] {
        let out = run_with_devices(&podman, image, &[format!("{kind}={name}")], SCRIPT);
        assert!(out.success(), "{name}: {out}");
        let got = seen(&out.stdout, &out);
        let want = want(&host, &[k], &[]);
        assert_eq!(got.nodes, want.nodes, "{name}: {out}");
        assert_eq!(got.smi, want.smi, "{name}: {out}");
        // The spec masks `/proc/driver/nvidia` with every GPU kept (hooks of
        // separate devices cannot be merged, see `cli::setup::cdi`): every
        // instance's access file is readable, only the selected one's nodes
        // exist.
        assert_eq!(got.access, every_access, "{name}: {out}");
    }
}

/// The device cgroup allows only the selected instances: the host's node
/// of another compute instance of the same GPU instance, bind-mounted in
/// by the bundle, is refused (EPERM), while the selected one's opens up to
/// the missing driver (ENXIO).
#[test]
fn hook_other_instances_are_denied_v1_v2() {
    let host = host();
    let gpu = &host.desc.gpus[0];
    // `0:1` is gi1/ci1; gi1/ci0 is another MIG device.
    let selected = fixtures::host_desc::ci_caps_minor(gpu.minor, 1, 1);
    let other = fixtures::host_desc::ci_caps_minor(gpu.minor, 1, 0);
    let node = |minor: u32| {
        host.layout
            .dev_root
            .join(format!("nvidia-caps/nvidia-cap{minor}"))
    };
    for cgroup in [CgroupVersion::V1, CgroupVersion::V2] {
        require!(Prereq::Runc, cgroup.prereq());
        let mut b = Bundle::builder(Variant::Debian)
            .sh("for n in selected other; do echo \"$n $(cat /dev/e2e-$n 2>&1 >/dev/null | sed 's/.*: //')\"; done")
            .env("NVIDIA_VISIBLE_DEVICES", "0:1")
            .hook(HookStage::Prestart, &host.prestart_hook().unwrap());
        for (name, minor) in [("selected", selected), ("other", other)] {
            b = b.mount(serde_json::json!({
                "destination": format!("/dev/e2e-{name}"), "type": "bind",
                "source": node(minor), "options": ["bind"]
            }));
        }
        let out = runc_run(&b.build().unwrap(), cgroup).unwrap();
        out.assert_success();
        assert_eq!(
            out.stdout, "selected No such device or address\nother Operation not permitted\n",
            "{cgroup:?}: {out}"
        );
    }
}
