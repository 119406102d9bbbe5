//! Issue 13: "Failed to initialize NVML: Unknown Error" after `systemctl
//! daemon-reload`, reproduced with a real systemd.
//!
//! systemd runs as PID 1 of private namespaces on a cgroup v2 hierarchy
//! ([`e2e::systemd::SystemdNs`]); in it, `runc --systemd-cgroup run` starts a
//! GPU container of the simulated host (GPU 0), either with the prestart hook
//! (hook mode) or through the runc wrapper (wrapper mode: the devices are in
//! the spec, so in the scope's `DeviceAllow=`). Opening `/dev/nvidia0` in the
//! container answers ENXIO while the device cgroup allows it (no driver
//! behind the node) and EPERM once it denies it. Then `systemctl
//! daemon-reload` re-applies the scope's device list: hook mode loses the
//! GPU, wrapper mode keeps it.
use std::path::Path;

use e2e::hook::{hook_binary, SimHost};
use e2e::process::unique_name;
use e2e::systemd::SystemdNs;
use e2e::{require, Bundle, Hook, HookStage, Prereq, Variant};

use crate::config_common::{real_runc, wrapper_binary};

const ENXIO: &str = "No such device or address";
const EPERM: &str = "Operation not permitted";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Hook,
    Wrapper,
}

/// What opening GPU 0's node says in the container before and after
/// `systemctl daemon-reload`, the scope's `DeviceAllow=`, and the node's
/// `/dev/char` name.
fn open_before_and_after_reload(mode: Mode) -> (String, String, String, String) {
    let host = SimHost::synthetic(1).unwrap();
    let id = unique_name("e2e-sd");
    // The runtime, the hook and the mock NVML see the namespace's own /dev,
    // which gets the simulated host's nodes: runc's systemd driver looks for
    // /dev/char/M:m there, as on a real host.
    let env: Vec<(&str, String)> = host
        .env()
        .into_iter()
        .map(|(k, v)| match k {
            "NVIDIA_DOCKER_DEV_ROOT" | "NVML_MOCK_DEV_ROOT" => (k, "/dev".to_owned()),
            _ => (k, v),
        })
        .collect();
    let sim_dev = host
        .env()
        .into_iter()
        .find(|(k, _)| *k == "NVIDIA_DOCKER_DEV_ROOT")
        .map(|(_, v)| v)
        .unwrap();
    let mut builder = Bundle::builder(Variant::Debian)
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .args(&["sleep", "300"])
        .with_config(|c| c["linux"]["cgroupsPath"] = format!("system.slice:e2e:{id}").into());
    if mode == Mode::Hook {
        let mut hook = Hook::new(hook_binary().unwrap(), &["nvidia-docker-hook", "prestart"])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        for (k, v) in &env {
            hook = hook.env(k, v);
        }
        builder = builder.hook(HookStage::Prestart, &hook);
    }
    let bundle = builder.build().unwrap();
    let node = format!("/dev/nvidia{}", host.desc.gpus[0].minor);
    let hook = hook_binary().unwrap();
    // target/: the hook, the wrapper, the mock NVML and the rootfs cache.
    let target = hook.parent().and_then(Path::parent).unwrap();
    let ns = SystemdNs::boot(&[host.dir(), bundle.path(), target]).unwrap();
    let copy = ns
        .exec(&["cp", "-a", &format!("{sim_dev}/."), "/dev/"])
        .unwrap();
    assert!(copy.success(), "{copy}");
    let runc = real_runc().unwrap();
    let runc = runc.to_str().unwrap();
    let bundle_path = bundle.path().to_str().unwrap();
    let mut run: Vec<String> = Vec::new();
    if mode == Mode::Wrapper {
        run.push("env".into());
        for (k, v) in &env {
            run.push(format!("{k}={v}"));
        }
        run.push(format!("NVIDIA_DOCKER_RUNTIMES={runc}"));
        run.push(format!("NVIDIA_DOCKER_HOOK={}", hook.display()));
        run.push(wrapper_binary().unwrap().display().to_string());
    } else {
        run.push(runc.into());
    }
    run.extend(
        [
            "--systemd-cgroup",
            "--root",
            "/run/e2e-runc",
            "run",
            "-d",
            "--bundle",
            bundle_path,
            &id,
        ]
        .map(str::to_owned),
    );
    let out = ns
        .exec(&run.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    assert!(out.success(), "{mode:?}: {out}\nconsole:\n{}", ns.console());
    let probe = || {
        let out = ns
            .exec(&[
                runc,
                "--root",
                "/run/e2e-runc",
                "exec",
                &id,
                "/bin/sh",
                "-c",
                &format!("cat {node} 2>&1; true"),
            ])
            .unwrap();
        assert!(out.success(), "{mode:?}: {out}");
        out.stdout.trim().to_owned()
    };
    let before = probe();
    let show = ns
        .exec(&[
            "systemctl",
            "show",
            "-p",
            "DeviceAllow",
            &format!("e2e-{id}.scope"),
        ])
        .unwrap();
    assert!(show.success(), "{show}");
    let reload = ns.exec(&["systemctl", "daemon-reload"]).unwrap();
    assert!(reload.success(), "{reload}");
    let after = probe();
    let _ = ns.exec(&[runc, "--root", "/run/e2e-runc", "delete", "-f", &id]);
    let char_name = format!(
        "/dev/char/{}:{}",
        host.desc.nvidia_major, host.desc.gpus[0].minor
    );
    (before, after, show.stdout, char_name)
}

#[test]
fn hook_mode_loses_the_gpu_at_daemon_reload() {
    require!(
        Prereq::Runc,
        Prereq::CgroupV2,
        Prereq::Tool("systemctl"),
        Prereq::Tool("dbus-daemon"),
        Prereq::Tool("nsenter"),
        Prereq::Tool("unshare")
    );
    let (before, after, allow, node) = open_before_and_after_reload(Mode::Hook);
    assert!(!allow.contains(&node), "{allow}");
    assert!(before.contains(ENXIO), "before: {before}");
    assert!(after.contains(EPERM), "after daemon-reload: {after}");
}

#[test]
fn wrapper_mode_keeps_the_gpu_at_daemon_reload() {
    require!(
        Prereq::Runc,
        Prereq::CgroupV2,
        Prereq::Tool("systemctl"),
        Prereq::Tool("dbus-daemon"),
        Prereq::Tool("nsenter"),
        Prereq::Tool("unshare")
    );
    let (before, after, allow, node) = open_before_and_after_reload(Mode::Wrapper);
    assert!(allow.contains(&format!("{node} rw")), "{allow}");
    assert!(before.contains(ENXIO), "before: {before}");
    assert!(after.contains(ENXIO), "after daemon-reload: {after}");
}
