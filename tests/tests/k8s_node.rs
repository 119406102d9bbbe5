//! Issue 12, the node beyond the CRI suite: the CDI refresh units that
//! `nvidia-docker setup cdi-refresh` installs, checked by systemd's own
//! parser (`systemd-analyze verify`: unknown keys, a missing `ExecStart`
//! binary, a bad `Unit=` reference all fail it); the prestart hook (hooks.d,
//! as CRI-O runs it) reading the device plugin's volume mounts.
use e2e::hook::{inside_script, lib_dir, Inside, SimHost};
use e2e::process::run_timeout;
use e2e::{require, Podman, Prereq, Variant};

use crate::config_common::{run_setup, setup_binary};

#[test]
fn cdi_refresh_units_pass_systemd_analyze_verify() {
    require!(Prereq::Tool("systemd-analyze"));
    let host = SimHost::synthetic(1).unwrap();
    let dir = host.dir().join("units");
    let cli = setup_binary().unwrap();
    run_setup(
        &host,
        &[
            "cdi-refresh",
            "--systemd-dir",
            dir.to_str().unwrap(),
            "--udev-dir",
            dir.join("udev").to_str().unwrap(),
            "--cli-path",
            cli.to_str().unwrap(),
            "--write",
        ],
        &[],
    )
    .unwrap();
    let mut verify = e2e::process::command("systemd-analyze");
    verify
        .arg("verify")
        .arg(dir.join("nvidia-docker-cdi-refresh.service"))
        .arg(dir.join("nvidia-docker-cdi-refresh.path"));
    let out = run_timeout(&mut verify, std::time::Duration::from_secs(60)).unwrap();
    out.assert_success();
    assert_eq!(out.stderr.trim(), "", "{out}");
}

/// The prestart hook (hooks.d: Podman, CRI-O) reads the device plugin's
/// volume mounts too, with the secure setting: an unprivileged container
/// gets the GPU mounted for it and not the `all` it asks for itself.
#[test]
fn prestart_hook_reads_volume_mounts() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(4).unwrap();
    host.write_config(
        "accept-nvidia-visible-devices-envvar-when-unprivileged = false\n\
         accept-nvidia-visible-devices-as-volume-mounts = true\n",
    )
    .unwrap();
    let podman = Podman::builder()
        .hooks_dir(host.hooks_dir().unwrap())
        .build()
        .unwrap();
    let image = "localhost/e2e/k8s-hooks";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let lib = format!("{}/{}", lib_dir(Variant::Debian), host.libcuda());
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = vec!["run", "--rm"];
        all.extend_from_slice(args);
        let script = inside_script(&lib);
        all.extend([image, "/bin/sh", "-c", script.as_str()]);
        podman.run_podman(&all).unwrap()
    };
    let out = run(&[
        "--env",
        "NVIDIA_VISIBLE_DEVICES=/var/run/nvidia-container-devices",
        "-v",
        "/dev/null:/var/run/nvidia-container-devices/2:ro",
    ]);
    assert!(out.success(), "{out}");
    Inside::parse(&out.stdout).assert_gpus(&host, &[2], &out);
    let out = run(&["--env", "NVIDIA_VISIBLE_DEVICES=all"]);
    assert!(out.success(), "{out}");
    assert!(Inside::parse(&out.stdout).nodes.is_empty(), "{out}");
}
