//! `nvidia-docker explain IMAGE` against a private dockerd on the simulated
//! host: the image's labels and environment come from the Engine API, the
//! plan is the one `nvidia-docker run` would deliver (the same GPUs, the
//! same `--device` and driver volume options), a too-new image is refused
//! with the line `nvidia-docker run` stops on (exit 3), and an image that is
//! not local is one line, never a pull.
use std::path::PathBuf;
use std::time::Duration;

use e2e::hook::SimHost;
use e2e::process::{command, run_timeout};
use e2e::{require_all, v1_labels, Dockerd, Output, Prereq, Variant};
use serde_json::Value;

fn shim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap()
    } else {
        dir
    };
    dir.join("nvidia-docker")
}

fn nvidia_docker(host: &SimHost, dockerd: &Dockerd, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(shim());
    cmd.envs(host.env())
        .env("DOCKER_HOST", dockerd.host())
        .env("HOME", dockerd.dir().join("home"))
        .env("DOCKER_CONFIG", dockerd.dir().join("client"))
        .envs(env.iter().copied())
        .args(args);
    run_timeout(&mut cmd, Duration::from_secs(60)).unwrap()
}

#[test]
fn explain_an_image_as_the_shim_decides() {
    if !require_all(&[Prereq::Root, Prereq::Dockerd]) {
        return;
    }
    let host = SimHost::synthetic(2).unwrap();
    let dockerd = Dockerd::shared().unwrap();
    dockerd
        .import(Variant::Debian, "explain/cuda:8.0", &v1_labels("8.0"))
        .unwrap();
    dockerd
        .import(Variant::Debian, "explain/cuda:99.0", &v1_labels("99.0"))
        .unwrap();
    dockerd
        .import(Variant::Debian, "explain/plain", &[] as &[&str])
        .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| nvidia_docker(&host, &dockerd, args, env);

    // All GPUs, through the driver volume.
    let out = run(&["explain", "--json", "explain/cuda:8.0"], &[]);
    out.assert_success();
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["gpus"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(
        plan["v1_volumes"][0]["docker_name"], "nvidia_driver_535.104.05",
        "{out}"
    );

    // NV_GPU narrows it; the text names the input and the options.
    let out = run(&["explain", "explain/cuda:8.0"], &[("NV_GPU", "1")]);
    out.assert_success();
    let t = &out.stdout;
    assert!(t.starts_with("Image explain/cuda:8.0\n"), "{out}");
    assert!(t.contains("env NV_GPU"), "{out}");
    assert!(t.contains("<- selects the devices"), "{out}");
    assert!(t.contains("annotation com.nvidia.volumes.needed"), "{out}");
    assert!(
        t.contains("nvidia-docker run adds (before the image):"),
        "{out}"
    );
    // GPU 1 of the synthetic host is minor 0: one GPU node, its own.
    let gpu_nodes: Vec<&str> = t
        .lines()
        .filter(|l| l.trim_start().starts_with("--device=") && l.contains("/dev/nvidia0:"))
        .collect();
    assert_eq!(gpu_nodes.len(), 1, "{out}");
    assert!(!t.contains("/dev/nvidia1:"), "{out}");
    assert!(t.contains("    1  GPU-"), "{out}");
    assert!(
        t.contains("--volume=nvidia_driver_535.104.05:/usr/local/nvidia:ro"),
        "{out}"
    );

    // Not a GPU image.
    let out = run(&["explain", "explain/plain"], &[]);
    out.assert_success();
    assert!(
        out.stdout
            .contains("not a GPU container: the hook does nothing"),
        "{out}"
    );

    // Refused: the line `nvidia-docker run` stops on, exit 3.
    let out = run(&["explain", "explain/cuda:99.0"], &[]);
    assert_eq!(out.code(), Some(3), "{out}");
    let line = out.stderr.trim_end();
    assert!(line.contains("99.0"), "{out}");
    let shim_run = run(&["run", "--rm", "explain/cuda:99.0", "true"], &[]);
    shim_run.assert_failure();
    assert!(
        shim_run.stderr.contains(line),
        "{shim_run}\nexplain said {line:?}"
    );

    // Hook mode: the hook's request, NV_GPU as NVIDIA_VISIBLE_DEVICES.
    let out = run(
        &["explain", "--json", "explain/cuda:8.0"],
        &[("NV_DOCKER_HOOK", "runtime=nvidia"), ("NV_GPU", "0")],
    );
    out.assert_success();
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["gpus"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(plan["gpus"][0]["index"], 0, "{out}");
    assert!(
        plan["mounts"].as_array().is_some_and(|m| !m.is_empty()),
        "{out}"
    );

    // Not local: one line, no pull.
    let out = run(&["explain", "explain/absent:1"], &[]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains("image explain/absent:1 is not on this docker host; pull it first"),
        "{out}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
}

/// `nvidia-docker run` of a GPU image while no `nvidia-docker-plugin` is
/// running: one line before docker runs (start the plugin, or use the
/// hook), not docker's misleading "Unable to find image ... locally" and a
/// pull from the public registry.
#[test]
fn run_without_the_plugin_says_so() {
    if !require_all(&[Prereq::Root, Prereq::Dockerd]) {
        return;
    }
    // The v1 suite registers a plugin machine-wide while it runs.
    let _lock = crate::v1_docker::PLUGIN_NAME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for p in [
        "/run/docker/plugins/nvidia-docker.sock",
        "/etc/docker/plugins/nvidia-docker.spec",
        "/etc/docker/plugins/nvidia-docker.json",
        "/usr/lib/docker/plugins/nvidia-docker.spec",
    ] {
        assert!(
            !std::path::Path::new(p).exists(),
            "an nvidia-docker plugin is installed on this machine ({p}); this test needs none"
        );
    }
    let host = SimHost::synthetic(1).unwrap();
    let dockerd = Dockerd::shared().unwrap();
    dockerd
        .import(Variant::Debian, "noplugin/cuda:8.0", &v1_labels("8.0"))
        .unwrap();
    let out = nvidia_docker(
        &host,
        &dockerd,
        &["run", "--rm", "noplugin/cuda:8.0", "true"],
        &[],
    );
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    for part in [
        "the nvidia-docker volume plugin is not running",
        "start nvidia-docker-plugin",
        "NV_DOCKER_HOOK=",
    ] {
        assert!(out.stderr.contains(part), "lacks {part:?}:\n{out}");
    }
    assert!(!out.stderr.contains("Unable to find image"), "{out}");
    // A plain image still runs: nothing to check.
    dockerd
        .import(Variant::Debian, "noplugin/plain", &[] as &[&str])
        .unwrap();
    let out = nvidia_docker(
        &host,
        &dockerd,
        &["run", "--rm", "noplugin/plain", "true"],
        &[],
    );
    out.assert_success();
}
