//! Issue 13: `nvidia-docker setup docker` asks a real dockerd for its cgroup
//! driver (Engine API `GET /info`) and chooses wrapper mode for the systemd
//! driver: the wrapper becomes the default runtime, so `docker run --gpus`
//! gets its devices written into the spec (what systemd's `DeviceAllow=`
//! keeps across `systemctl daemon-reload`) instead of added by the hook.
//!
//! dockerd accepts `--exec-opt native.cgroupdriver=systemd` on a host without
//! systemd and reports it in `GET /info`; it cannot start containers that
//! way here, so the containers run under a second private dockerd started
//! with the generated `daemon.json` (the cgroupfs driver), where the spec is
//! what the test checks.
use e2e::hook::SimHost;
use e2e::{require, Dockerd, Podman, Prereq, Variant};
use serde_json::Value;

use crate::config_common::run_setup;
use crate::config_docker::{find_config, runtime_script};
use crate::config_podman::podman_gives_gpu_1;

/// The `config.json` of a container started detached with `args`, then removed.
fn spec_of(dockerd: &Dockerd, args: &[&str]) -> Value {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    let run = dockerd.run_docker(&all).unwrap();
    assert!(run.success(), "{run}\n{}", dockerd.log_tail(20));
    let id = run.stdout.trim().to_owned();
    let path = find_config(dockerd.dir(), &id).expect("the container's config.json");
    let spec = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let _ = dockerd.run_docker(&["rm", "-f", &id]);
    spec
}

fn device_paths(spec: &Value) -> Vec<String> {
    spec["linux"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn docker_on_the_systemd_cgroup_driver_gets_the_wrapper_as_default_runtime() {
    require!(Prereq::Dockerd);
    let host = SimHost::synthetic(2).unwrap();
    let script = runtime_script(&host);
    let daemon_json = host.dir().join("etc-docker/daemon.json");
    std::fs::create_dir_all(daemon_json.parent().unwrap()).unwrap();
    std::fs::write(&daemon_json, "{}\n").unwrap();
    let engine_root = host.dir().join("engine-root");
    std::fs::create_dir_all(&engine_root).unwrap();
    let setup = |dockerd_host: &str, extra: &[&str]| {
        let mut args = vec![
            "docker",
            "--config",
            daemon_json.to_str().unwrap(),
            "--runtime-path",
            script.to_str().unwrap(),
            "--docker-host",
            dockerd_host,
            "--engine-root",
            engine_root.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_setup(&host, &args, &[]).unwrap()
    };

    let systemd = Dockerd::builder()
        .arg("--exec-opt")
        .arg("native.cgroupdriver=systemd")
        .start()
        .unwrap();
    let sock = systemd.host();
    let sock_path = sock.strip_prefix("unix://").unwrap();
    // --mode hook: the runtime by name only, and a warning.
    let out = setup(&sock, &["--mode", "hook"]);
    let written: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(written.get("default-runtime"), None, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "mode: hook (default runtime unchanged), as asked; warning: docker uses the systemd cgroup \
             driver (CgroupDriver \"systemd\" from the Engine API at {sock_path})"
        )),
        "{out}"
    );
    let out = setup(&sock, &["--write"]);
    assert!(
        out.stderr.contains(&format!(
            "mode: wrapper (default-runtime \"nvidia\"): docker uses the systemd cgroup driver \
             (CgroupDriver \"systemd\" from the Engine API at {sock_path}), and systemctl daemon-reload \
             drops devices a hook allowed (\"Failed to initialize NVML: Unknown Error\"); --mode hook to \
             leave the default runtime alone\n"
        )),
        "{out}"
    );
    drop(systemd);
    let config: Value = serde_json::from_slice(&std::fs::read(&daemon_json).unwrap()).unwrap();
    assert_eq!(config["default-runtime"], "nvidia");

    // The same generated file on a cgroupfs dockerd, with the hook on its
    // PATH for --gpus: `--gpus` alone now goes through the wrapper and the
    // GPU is in the spec; asking for runc gives hook mode, nothing in it.
    let mut config = config;
    config["exec-opts"] = serde_json::json!(["native.cgroupdriver=cgroupfs"]);
    let mut builder = Dockerd::builder()
        .daemon_json(config)
        .path_prepend(host.toolkit_bin_dir().unwrap());
    for (k, v) in host.env() {
        builder = builder.env(k, v);
    }
    let dockerd = builder.start().unwrap();
    let image = "e2e/setup-mode";
    dockerd
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let minor = host.desc.gpus[0].minor;
    let node = format!("/dev/nvidia{minor}");
    let spec = spec_of(&dockerd, &["--gpus", "device=0", image, "sleep", "60"]);
    assert!(device_paths(&spec).contains(&node), "{spec:#}");
    assert!(
        spec["linux"]["resources"]["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["allow"] == true && r["major"] == 195 && r["minor"] == minor),
        "{spec:#}"
    );
    assert_eq!(spec["annotations"]["nvidia-docker.plan"], "applied");
    let spec = spec_of(
        &dockerd,
        &[
            "--runtime",
            "runc",
            "--gpus",
            "device=0",
            image,
            "sleep",
            "60",
        ],
    );
    assert!(!device_paths(&spec).contains(&node), "{spec:#}");
    assert!(
        spec["hooks"]["prestart"]
            .as_array()
            .is_some_and(|h| !h.is_empty()),
        "hook mode: {spec:#}"
    );

    // Asked, the cgroupfs dockerd gets hook mode: default runtime unchanged.
    let other = host.dir().join("other-daemon.json");
    let out = run_setup(
        &host,
        &[
            "docker",
            "--config",
            other.to_str().unwrap(),
            "--docker-host",
            &dockerd.host(),
            "--engine-root",
            engine_root.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    let written: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(written.get("default-runtime"), None, "{out}");
    let sock = dockerd.host();
    assert!(
        out.stderr.contains(&format!(
            "mode: hook (default runtime unchanged): docker uses the cgroupfs cgroup driver (CgroupDriver \
             \"cgroupfs\" from the Engine API at {}), which keeps devices a hook allowed",
            sock.strip_prefix("unix://").unwrap()
        )),
        "{out}"
    );
}

/// Issue 13: `setup hooks` in wrapper mode registers the wrapper as Podman's
/// runtime `nvidia` (containers.conf.d drop-in); a real Podman reading that
/// table runs a GPU container through it, the devices in the spec.
#[test]
fn podman_runs_gpu_containers_through_the_generated_runtime_table() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(2).unwrap();
    let script = runtime_script(&host);
    let engine_root = host.dir().join("engine-root");
    let out = run_setup(
        &host,
        &[
            "hooks",
            "--engine-root",
            engine_root.to_str().unwrap(),
            "--output-file",
            host.dir().join("hooks.d/nv.json").to_str().unwrap(),
            "--runtime-path",
            script.to_str().unwrap(),
            "--mode",
            "wrapper",
            "--write",
        ],
        &[],
    )
    .unwrap();
    assert!(
        out.stderr
            .contains("mode: wrapper (engine.runtime \"nvidia\" in "),
        "{out}"
    );
    let dropin = std::fs::read_to_string(
        engine_root.join("etc/containers/containers.conf.d/99-nvidia.conf"),
    )
    .unwrap();
    assert!(
        dropin.starts_with("[engine]\nruntime = \"nvidia\"\n"),
        "{dropin}"
    );
    let table = &dropin[dropin
        .find("[engine.runtimes]")
        .expect("the runtimes table")..];
    // The harness's Podman has a containers.conf of its own and always
    // names its runtime: the generated table is added to that file, and the
    // runtime asked for by the name it registers.
    let podman = Podman::builder().runtime("nvidia").build().unwrap();
    let conf = podman.dir().join("containers.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push('\n');
    text.push_str(table);
    std::fs::write(&conf, text).unwrap();
    podman_gives_gpu_1(&podman, &host, "localhost/e2e/setup-mode-podman");
}
