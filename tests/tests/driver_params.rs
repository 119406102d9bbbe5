//! `/proc/driver/nvidia/params` in the container says `ModifyDeviceFiles: 0`
//! (the toolkit's `disable-device-node-modification`), so NVIDIA's libraries
//! in the container never create device nodes it was not given; the rest of
//! the host's file is kept, and the container cannot write it. Under runc
//! with the prestart hook (cgroup v1 and v2), the runc wrapper and CDI.
use e2e::hook::SimHost;
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Podman, Prereq, Variant};

use crate::config_common::wrapped_runc_run;
use crate::config_podman::{cdi_spec, run_with_devices};

const SCRIPT: &str = "cat /proc/driver/nvidia/params; \
    (echo 'ModifyDeviceFiles: 1' > /proc/driver/nvidia/params) 2>/dev/null && echo written; \
    echo done";

#[track_caller]
fn check(stdout: &str, context: &dyn std::fmt::Display) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"ModifyDeviceFiles: 0"), "{context}");
    assert!(!lines.contains(&"ModifyDeviceFiles: 1"), "{context}");
    // The host's other parameters are kept (the simulated host's file).
    assert!(
        lines.iter().any(|l| l.starts_with("DeviceFileMode: ")),
        "{context}"
    );
    assert!(!lines.contains(&"written"), "{context}");
    assert_eq!(lines.last(), Some(&"done"), "{context}");
}

fn hook_run(cgroup: CgroupVersion) {
    require!(Prereq::Runc, cgroup.prereq());
    let host = SimHost::synthetic(1).unwrap();
    let bundle = Bundle::builder(Variant::Debian)
        .sh(SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, cgroup).unwrap();
    out.assert_success();
    check(&out.stdout, &out);
}

#[test]
fn hook_params_v1() {
    hook_run(CgroupVersion::V1);
}

#[test]
fn hook_params_v2() {
    hook_run(CgroupVersion::V2);
}

#[test]
fn wrapper_params_v2() {
    require!(Prereq::Runc, CgroupVersion::V2.prereq());
    let host = SimHost::synthetic(1).unwrap();
    let bundle = Bundle::builder(Variant::Lib64)
        .sh(SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .build()
        .unwrap();
    let out = wrapped_runc_run(&host, &bundle, CgroupVersion::V2).unwrap();
    out.assert_success();
    check(&out.stdout, &out);
}

#[test]
fn podman_cdi_params() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(1).unwrap();
    let (kind, _guard) = cdi_spec(&host, "json");
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-params";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let out = run_with_devices(&podman, image, &[format!("{kind}=0")], SCRIPT);
    assert!(out.success(), "{out}");
    check(&out.stdout, &out);
}
