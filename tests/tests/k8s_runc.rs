//! The NVIDIA device plugin's device-list strategies (issue 12) through the
//! runc wrapper in front of the real runc, on a simulated 4-GPU host, with
//! unprivileged containers (Docker's default capabilities) and the secure
//! node setting `accept-nvidia-visible-devices-envvar-when-unprivileged =
//! false`:
//! - `envvar`: a container that sets `NVIDIA_VISIBLE_DEVICES=all` itself
//!   gets no GPU;
//! - `volume-mounts`: `/dev/null` mounts at
//!   `/var/run/nvidia-container-devices/<id>` give exactly those GPUs;
//! - `cdi-annotations` and CDI names in the variable (jit-cdi): answered
//!   from the inventory at create time; `mode = "legacy"` refuses them.
use e2e::hook::{inside_script, lib_dir, Inside, SimHost};
use e2e::{require, Bundle, BundleBuilder, CgroupVersion, Prereq, Variant};
use serde_json::json;

use crate::config_common::wrapped_runc_run;

const SECURE: &str = "accept-nvidia-visible-devices-envvar-when-unprivileged = false\n\
accept-nvidia-visible-devices-as-volume-mounts = true\n";

fn host(config: &str) -> SimHost {
    let host = SimHost::synthetic(4).unwrap();
    host.write_config(config).unwrap();
    host
}

fn bundle(host: &SimHost, edit: impl FnOnce(BundleBuilder) -> BundleBuilder) -> Bundle {
    let lib = format!("{}/{}", lib_dir(Variant::Debian), host.libcuda());
    edit(Bundle::builder(Variant::Debian).sh(&inside_script(&lib)))
        .build()
        .unwrap()
}

fn device_mount(id: &str) -> serde_json::Value {
    json!({
        "destination": format!("/var/run/nvidia-container-devices/{id}"),
        "type": "bind", "source": "/dev/null", "options": ["rbind", "ro"]
    })
}

#[track_caller]
fn assert_gets(host: &SimHost, bundle: &Bundle, indexes: &[usize]) {
    let out = wrapped_runc_run(host, bundle, CgroupVersion::V2).unwrap();
    out.assert_success();
    let inside = Inside::parse(&out.stdout);
    if indexes.is_empty() {
        assert!(inside.nodes.is_empty(), "no GPU expected:\n{out}");
        assert!(inside.done, "{out}");
    } else {
        inside.assert_gpus(host, indexes, &out);
    }
}

#[test]
fn unprivileged_envvar_is_ignored_with_the_secure_setting() {
    require!(Prereq::Runc, Prereq::CgroupV2);
    let host = host(SECURE);
    let b = bundle(&host, |b| b.env("NVIDIA_VISIBLE_DEVICES", "all"));
    let before = std::fs::read(b.config_path()).unwrap();
    assert_gets(&host, &b, &[]);
    assert_eq!(
        std::fs::read(b.config_path()).unwrap(),
        before,
        "spec untouched"
    );
    // The toolkit's default (true) honours it.
    let host = self::host("");
    let b = bundle(&host, |b| b.env("NVIDIA_VISIBLE_DEVICES", "all"));
    assert_gets(&host, &b, &[0, 1, 2, 3]);
}

#[test]
fn volume_mounts_give_exactly_their_gpus() {
    require!(Prereq::Runc, Prereq::CgroupV2);
    let host = host(SECURE);
    let uuid = host.desc.gpus[2].uuid.clone();
    let b = bundle(&host, |b| {
        b.env(
            "NVIDIA_VISIBLE_DEVICES",
            "/var/run/nvidia-container-devices",
        )
        .mount(device_mount(&uuid))
        .mount(device_mount("0"))
        // Not /dev/null: does not count.
        .mount(json!({
            "destination": "/var/run/nvidia-container-devices/3",
            "type": "bind", "source": "/etc/hostname", "options": ["rbind", "ro"]
        }))
    });
    assert_gets(&host, &b, &[0, 2]);
    // Not accepted (the default): one line naming the setting.
    let host = self::host("");
    let b = bundle(&host, |b| {
        b.env(
            "NVIDIA_VISIBLE_DEVICES",
            "/var/run/nvidia-container-devices",
        )
        .mount(device_mount("0"))
    });
    let out = wrapped_runc_run(&host, &b, CgroupVersion::V2).unwrap();
    out.assert_failure();
    assert!(
        out.stderr
            .contains("but accept-nvidia-visible-devices-as-volume-mounts is false"),
        "{out}"
    );
}

#[test]
fn cdi_annotations_and_names_are_answered_from_the_inventory() {
    require!(Prereq::Runc, Prereq::CgroupV2);
    let host = host(SECURE);
    let b = bundle(&host, |b| {
        b.annotation(
            "cdi.k8s.io/nvidia-device-plugin_abc",
            "nvidia.com/gpu=1,nvidia.com/gpu=3",
        )
        // The annotations win over the variable.
        .env("NVIDIA_VISIBLE_DEVICES", "0")
    });
    assert_gets(&host, &b, &[1, 3]);
    let host = self::host("");
    let b = bundle(&host, |b| {
        b.env("NVIDIA_VISIBLE_DEVICES", "nvidia.com/gpu=2")
    });
    assert_gets(&host, &b, &[2]);
    // mode = "legacy": CDI names are no device ids.
    let host = self::host("[nvidia-container-runtime]\nmode = \"legacy\"\n");
    let b = bundle(&host, |b| {
        b.env("NVIDIA_VISIBLE_DEVICES", "nvidia.com/gpu=2")
    });
    let out = wrapped_runc_run(&host, &b, CgroupVersion::V2).unwrap();
    out.assert_failure();
    assert!(
        out.stderr
            .contains("invalid device \"nvidia.com/gpu=2\" in NVIDIA_VISIBLE_DEVICES"),
        "{out}"
    );
}
