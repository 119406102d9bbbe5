//! A private dockerd started with the `daemon.json` that `nvidia-docker
//! setup docker --write` generates (the runc wrapper as runtime `nvidia`),
//! on a simulated 4-GPU host; no prestart hook anywhere.
//!
//! The runtime is registered as a small script that exports the simulated
//! host's variables and execs the wrapper: what environment containerd's
//! shim gives a runtime is containerd's business, a script makes it
//! explicit.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use e2e::hook::{hook_binary, inside_script, lib_dir, Inside, SimHost};
use e2e::{require, Dockerd, Prereq, Variant};
use serde_json::Value;

use crate::config_common::{real_runc, run_setup, wrapper_binary};

/// `<host>/nvidia-runtime.sh`: the simulated host's variables, the real
/// runc and the built hook, then the wrapper.
pub(crate) fn runtime_script(host: &SimHost) -> PathBuf {
    let mut text = String::from("#!/bin/sh\n");
    let mut vars: Vec<(String, String)> = host
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    vars.push((
        "NVIDIA_DOCKER_RUNTIMES".into(),
        real_runc().unwrap().display().to_string(),
    ));
    vars.push((
        "NVIDIA_DOCKER_HOOK".into(),
        hook_binary().unwrap().display().to_string(),
    ));
    for (k, v) in vars {
        text.push_str(&format!("export {k}='{v}'\n"));
    }
    text.push_str(&format!(
        "exec '{}' \"$@\"\n",
        wrapper_binary().unwrap().display()
    ));
    let path = host.dir().join("nvidia-runtime.sh");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The bundle's `config.json` of container `id`, under the daemon's exec
/// root (containerd's task directory).
pub(crate) fn find_config(root: &Path, id: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if p.file_name().is_some_and(|n| n == id) && p.join("config.json").is_file() {
                    return Some(p.join("config.json"));
                }
                if !p.ends_with("rootfs") && !p.ends_with("data") {
                    stack.push(p);
                }
            }
        }
    }
    None
}

#[test]
fn docker_runtime_from_generated_daemon_json() {
    require!(Prereq::Dockerd);
    let host = SimHost::synthetic(4).unwrap();
    let script = runtime_script(&host);
    let daemon_json = host.dir().join("etc-docker/daemon.json");
    std::fs::create_dir_all(daemon_json.parent().unwrap()).unwrap();
    std::fs::write(&daemon_json, "{\n  \"log-level\": \"info\"\n}\n").unwrap();
    let args = [
        "docker",
        "--config",
        daemon_json.to_str().unwrap(),
        "--runtime-path",
        script.to_str().unwrap(),
        // The runtime by name only, whatever the host's docker runs with.
        "--mode",
        "hook",
        "--write",
    ];
    run_setup(&host, &args, &[]).unwrap();
    let written = std::fs::read(&daemon_json).unwrap();
    // Twice: nothing changes, no second backup.
    let again = run_setup(&host, &args, &[]).unwrap();
    assert!(again.stderr.contains("already up to date"), "{again}");
    assert_eq!(std::fs::read(&daemon_json).unwrap(), written);
    let config: Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(config["log-level"], "info");
    assert_eq!(
        config["runtimes"]["nvidia"]["path"],
        script.to_str().unwrap()
    );

    let dockerd = Dockerd::builder().daemon_json(config).start().unwrap();
    let variant = Variant::Debian;
    let image = "e2e/config-debian";
    dockerd.import(variant, image, &[] as &[&str]).unwrap();
    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());

    // GPU 0 only: nodes, mounts, linker cache, stand-in output.
    let out = dockerd
        .run_docker(&[
            "run",
            "--rm",
            "--runtime=nvidia",
            "-e",
            "NVIDIA_VISIBLE_DEVICES=0",
            image,
            "/bin/sh",
            "-c",
            &inside_script(&lib),
        ])
        .unwrap();
    let context = format!("{out}\n--- dockerd log ---\n{}", dockerd.log_tail(20));
    assert!(out.success(), "{context}");
    Inside::parse(&out.stdout).assert_gpus(&host, &[0], &context);

    // A running container: its config.json carries the devices and the
    // rules; the runtime alone allows the selected node (ENXIO) and denies
    // another GPU's (EPERM), no hook touching the cgroup.
    let sel = host.desc.gpus[0].minor;
    let other = host.desc.gpus[1].minor;
    let run = dockerd
        .run_docker(&[
            "run",
            "-d",
            "--runtime=nvidia",
            "-e",
            "NVIDIA_VISIBLE_DEVICES=0",
            image,
            "/bin/sh",
            "-c",
            "sleep 60",
        ])
        .unwrap();
    assert!(run.success(), "{run}");
    let id = run.stdout.trim().to_owned();
    let config_path = find_config(dockerd.dir(), &id).expect("the container's config.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    let devices: Vec<String> = spec["linux"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        devices.contains(&format!("/dev/nvidia{sel}")),
        "{devices:?}"
    );
    assert!(
        !devices.contains(&format!("/dev/nvidia{other}")),
        "{devices:?}"
    );
    let rules = spec["linux"]["resources"]["devices"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["allow"] == true
        && r["major"] == 195
        && r["minor"] == sel
        && r["access"] == "rw"));
    assert_eq!(spec["annotations"]["nvidia-docker.plan"], "applied");
    let probe = dockerd
        .run_docker(&[
            "exec",
            &id,
            "/bin/sh",
            "-c",
            &format!(
                "cat /dev/nvidia{sel} 2>&1 | sed 's/.*: /sel /'; mknod /tmp/other c 195 {other} && cat /tmp/other 2>&1 | sed 's/.*: /other /'"
            ),
        ])
        .unwrap();
    let _ = dockerd.run_docker(&["rm", "-f", &id]);
    assert!(
        probe.stdout.contains("sel No such device or address"),
        "{probe}"
    );
    assert!(
        probe.stdout.contains("other Operation not permitted"),
        "{probe}"
    );

    // No GPU asked for: the runtime passes the container through untouched.
    let out = dockerd
        .run_docker(&[
            "run",
            "--rm",
            "--runtime=nvidia",
            image,
            "/bin/sh",
            "-c",
            "ls /dev",
        ])
        .unwrap();
    out.assert_success();
    assert!(!out.stdout.contains("nvidia"), "{out}");

    // A refusal fails the start with the rules' line.
    let out = dockerd
        .run_docker(&[
            "run",
            "--rm",
            "--runtime=nvidia",
            "-e",
            "NVIDIA_VISIBLE_DEVICES=7",
            image,
            "true",
        ])
        .unwrap();
    out.assert_failure();
    assert!(out.stderr.contains('7'), "{out}");
}

/// A malformed `daemon.json` is refused with a clear line and left as it
/// was, by `--write` and `--dry-run` alike.
#[test]
fn malformed_daemon_json_is_refused() {
    require!(Prereq::Root);
    let host = SimHost::synthetic(1).unwrap();
    let path = host.dir().join("daemon.json");
    let bad = "{\n  \"runtimes\": {\n    \"x\": \n  }\n}\n";
    std::fs::write(&path, bad).unwrap();
    for mode in ["--write", "--dry-run"] {
        let out = run_setup(
            &host,
            &["docker", "--config", path.to_str().unwrap(), mode],
            &[],
        );
        let err = format!("{:#}", out.unwrap_err());
        assert!(
            err.contains(&format!(
                "cannot update {}: it is not valid JSON (line 4, column 3:",
                path.display()
            )),
            "{err}"
        );
        assert!(err.contains("fix or remove it first"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
    }
    assert_eq!(
        std::fs::read_dir(host.dir())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("daemon.json."))
            .count(),
        0
    );
}
