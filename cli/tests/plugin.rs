//! The daemon's volume plugin (docs/v1.md §3), start-up and
//! shutdown (§2), `cli-options` agreeing with the API, and a driver upgrade
//! picked up without a restart.

use std::path::Path;
use std::process::Command;

use crate::support::{golden, golden_desc, http, sim_host, Plugin};

fn json(r: &crate::support::HttpReply) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn volume_plugin_protocol() {
    let host = sim_host(golden_desc());
    let sockets = host.dir.path().join("plugins");
    let p = Plugin::start(&host, Path::new("/dev"), &sockets);
    let mime = "application/vnd.docker.plugins.v1+json";

    let r = p.post("/Plugin.Activate", "");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "{\"Implements\":[\"VolumeDriver\"]}\n")
    );
    assert_eq!(r.header("content-type"), Some(mime));
    let r = p.post("/VolumeDriver.Capabilities", "{}");
    assert_eq!(r.text(), "{\"Capabilities\":{\"Scope\":\"local\"}}\n");
    let r = p.post("/VolumeDriver.List", "{}");
    assert_eq!(r.text(), "{\"Volumes\":null,\"Err\":null}\n");

    for (name, err) in [
        ("foo", "bad volume format: foo"),
        ("nvidia_foo_1.0", "unsupported volume: nvidia_foo_1.0"),
        (
            "nvidia_driver_1.0",
            "invalid volume version: nvidia_driver_1.0",
        ),
    ] {
        let r = p.post(
            "/VolumeDriver.Create",
            &format!("{{\"Name\":\"{name}\",\"Opts\":{{}}}}"),
        );
        assert_eq!(r.status, 200);
        assert_eq!(json(&r)["Err"], err, "{name}");
    }
    let r = p.post(
        "/VolumeDriver.Mount",
        "{\"Name\":\"nvidia_driver_375.66\",\"ID\":\"x\"}",
    );
    assert_eq!(
        r.text(),
        "{\"Mountpoint\":null,\"Err\":\"no such volume: nvidia_driver_375.66\"}\n"
    );

    let r = p.post(
        "/VolumeDriver.Create",
        "{\"Name\":\"nvidia_driver_375.66\",\"Opts\":{}}",
    );
    assert_eq!(r.text(), "{\"Err\":null}\n", "{}", p.log_text());
    let mp = p.volume_dir.join("nvidia_driver/375.66");
    let mps = mp.display().to_string();
    for path in ["/VolumeDriver.Mount", "/VolumeDriver.Path"] {
        let r = p.post(path, "{\"Name\":\"nvidia_driver_375.66\",\"ID\":\"x\"}");
        assert_eq!(
            r.text(),
            format!("{{\"Mountpoint\":\"{mps}\",\"Err\":null}}\n")
        );
    }
    let r = p.post("/VolumeDriver.Get", "{\"Name\":\"nvidia_driver_375.66\"}");
    assert_eq!(
        r.text(),
        format!("{{\"Volume\":{{\"Name\":\"nvidia_driver_375.66\",\"Mountpoint\":\"{mps}\"}},\"Err\":null}}\n")
    );
    let r = p.post("/VolumeDriver.List", "{}");
    assert_eq!(
        r.text(),
        format!("{{\"Volumes\":[{{\"Name\":\"nvidia_driver_375.66\",\"Mountpoint\":\"{mps}\"}}],\"Err\":null}}\n")
    );
    let r = p.post(
        "/VolumeDriver.Unmount",
        "{\"Name\":\"nvidia_driver_375.66\",\"ID\":\"x\"}",
    );
    assert_eq!(r.text(), "{\"Err\":null}\n");

    // The volume's content: v1's layout from the inventory.
    for d in ["bin", "lib", "lib64"] {
        assert!(mp.join(d).is_dir(), "{d}");
    }
    assert!(mp.join("bin/nvidia-smi").is_file());
    assert!(!mp.join("bin/nv-fabricmanager").exists());
    assert_eq!(
        std::fs::read_link(mp.join("lib64/libcuda.so.1")).unwrap(),
        Path::new("libcuda.so.375.66")
    );
    assert_eq!(
        std::fs::read_link(mp.join("lib64/libcuda.so")).unwrap(),
        Path::new("libcuda.so.375.66")
    );
    assert!(mp.join("lib/libcuda.so.375.66").is_file());
    assert!(mp.join("lib64/libnvidia-ml.so.375.66").is_file());
    assert!(!mp.join("lib64/libnvidia-cfg.so.375.66").exists());
    // v1's blacklist: GLVND's libGL (it needs libGLdispatch) is in, Mesa's
    // copy (the host's decoy, which needs libglapi) is not: libGL.so.1 is
    // only the soname link to GLVND's file.
    assert!(mp.join("lib64/libGL.so.1.7.0").is_file());
    assert_eq!(
        std::fs::read_link(mp.join("lib64/libGL.so.1")).unwrap(),
        Path::new("libGL.so.1.7.0")
    );
    assert!(mp.join("lib64/libnvidia-tls.so.375.66").is_file());

    // Issue 13, finding 2: `..` is no version; no request names anything
    // outside the volume's directory, and the volume survives them all.
    for bad in ["nvidia_driver_..", "nvidia_driver_.", "nvidia_driver_1..2"] {
        for path in [
            "/VolumeDriver.Get",
            "/VolumeDriver.Mount",
            "/VolumeDriver.Path",
            "/VolumeDriver.Remove",
            "/VolumeDriver.Create",
            "/VolumeDriver.Unmount",
        ] {
            let r = p.post(path, &format!("{{\"Name\":\"{bad}\",\"ID\":\"x\"}}"));
            assert_eq!(r.status, 200, "{path} {bad}");
            let v = json(&r);
            assert_eq!(
                v["Err"],
                format!("bad volume format: {bad}"),
                "{path} {bad}"
            );
            assert!(
                v.get("Mountpoint").is_none_or(|m| m.is_null()),
                "{path} {bad}"
            );
            assert!(v.get("Volume").is_none_or(|m| m.is_null()), "{path} {bad}");
        }
    }
    assert!(mp.join("bin/nvidia-smi").is_file());
    // A link planted in the store is no volume and is never followed.
    let outside = host.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, p.volume_dir.join("nvidia_driver/9.9")).unwrap();
    let r = p.post("/VolumeDriver.Get", "{\"Name\":\"nvidia_driver_9.9\"}");
    assert_eq!(
        r.text(),
        "{\"Volume\":null,\"Err\":\"no such volume: nvidia_driver_9.9\"}\n"
    );
    let r = p.post("/VolumeDriver.Remove", "{\"Name\":\"nvidia_driver_9.9\"}");
    assert_eq!(r.text(), "{\"Err\":null}\n");
    assert!(outside.join("keep").is_file());

    let r = p.post("/VolumeDriver.Get", "{\"Name\":\"nvidia_driver_1.0\"}");
    assert_eq!(
        r.text(),
        "{\"Volume\":null,\"Err\":\"no such volume: nvidia_driver_1.0\"}\n"
    );
    let r = p.post(
        "/VolumeDriver.Remove",
        "{\"Name\":\"nvidia_driver_375.66\"}",
    );
    assert_eq!(r.text(), "{\"Err\":null}\n");
    assert!(!mp.exists());

    // Wrong Accept: 406; wrong method or path: 404; bad JSON: 4xx.
    let s = || std::os::unix::net::UnixStream::connect(p.socket()).unwrap();
    let r = http(
        s(),
        "POST",
        "/Plugin.Activate",
        &[("Accept", "application/json")],
        "",
    );
    assert_eq!(r.status, 406);
    let r = http(s(), "GET", "/Plugin.Activate", &[], "");
    assert_eq!(r.status, 404);
    let r = p.post("/VolumeDriver.Nope", "{}");
    assert_eq!(r.status, 404);
    let r = p.post("/VolumeDriver.Create", "{not json");
    assert_eq!(r.status, 400);

    // Logs as v1.
    let log = p.log_text();
    for line in [
        "Loading NVIDIA unified memory",
        "Loading NVIDIA management library",
        "Discovering GPU devices",
        &format!("Provisioning volumes at {}", p.volume_dir.display()),
        &format!("Serving plugin API at {}", sockets.display()),
        &format!("Serving remote API at {}", p.addr),
        "Received activate request",
        "Plugins activated [VolumeDriver]",
        "Received create request for volume 'nvidia_driver_375.66'",
        "Received mount request for volume 'nvidia_driver_375.66'",
        "Received unmount request for volume 'nvidia_driver_375.66'",
        "Received remove request for volume 'nvidia_driver_375.66'",
        "Unsupported plugin API application/json",
    ] {
        assert!(log.contains(line), "{line:?} not in\n{log}");
    }
    assert!(log.lines().all(|l| l.contains(" | ")), "{log}");

    // SIGTERM: graceful stop, socket removed.
    let socket = p.socket();
    let (status, log) = p.terminate();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("Successfully terminated"), "{log}");
    assert!(!socket.exists());
}

#[test]
fn volume_across_file_systems_is_copied() {
    // The volume directory on /dev/shm (tmpfs), the driver under /tmp.
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        return;
    };
    let host = sim_host(golden_desc());
    let sockets = host.dir.path().join("plugins");
    let mut p = Plugin::start(&host, Path::new("/dev"), &sockets);
    // Restart with -d on the other file system.
    drop(p);
    let port = crate::support::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_nvidia-docker-plugin"))
        .args(["-l", &format!("127.0.0.1:{port}"), "-s"])
        .arg(&sockets)
        .arg("-d")
        .arg(shm.path())
        .env_clear()
        .env("NVIDIA_DOCKER_CONFIG", "/dev/null")
        .env("NVIDIA_DOCKER_INVENTORY", &host.inventory)
        .env("NVML_MOCK_DEV_ROOT", &host.layout.dev_root)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    p = Plugin {
        child,
        addr: format!("127.0.0.1:{port}"),
        socket_dir: sockets.clone(),
        volume_dir: shm.path().to_path_buf(),
        log: host.dir.path().join("none.log"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !p.socket().exists() || std::net::TcpStream::connect(&p.addr).is_err() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = p.post(
        "/VolumeDriver.Create",
        "{\"Name\":\"nvidia_driver_375.66\"}",
    );
    assert_eq!(r.text(), "{\"Err\":null}\n");
    let smi = shm.path().join("nvidia_driver/375.66/bin/nvidia-smi");
    assert_eq!(
        std::fs::read(&smi).unwrap(),
        std::fs::read(&host.layout.nvidia_smi).unwrap()
    );
}

#[test]
fn driver_upgrade_without_restart() {
    let host = sim_host(golden_desc());
    let sockets = host.dir.path().join("plugins");
    let p = Plugin::start(&host, Path::new("/dev"), &sockets);
    let r = p.post(
        "/VolumeDriver.Create",
        "{\"Name\":\"nvidia_driver_375.66\"}",
    );
    assert_eq!(r.text(), "{\"Err\":null}\n");
    // The driver is upgraded: the inventory now says 375.82.
    let text = std::fs::read_to_string(&host.inventory).unwrap();
    std::fs::write(&host.inventory, text.replace("\"375.66\"", "\"375.82\"")).unwrap();
    let r = p.post(
        "/VolumeDriver.Create",
        "{\"Name\":\"nvidia_driver_375.82\"}",
    );
    assert_eq!(r.text(), "{\"Err\":null}\n", "{}", p.log_text());
    let r = p.post("/VolumeDriver.List", "{}");
    let names: Vec<String> = json(&r)["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["nvidia_driver_375.66", "nvidia_driver_375.82"]);
    // The old volume is still served to old containers.
    let r = p.post("/VolumeDriver.Mount", "{\"Name\":\"nvidia_driver_375.66\"}");
    assert_eq!(json(&r)["Err"], serde_json::Value::Null);
    // And the REST API reports the new driver.
    let r = p.get("/docker/cli");
    assert!(r.text().contains("nvidia_driver_375.82"), "{}", r.text());
    let r = p.post(
        "/VolumeDriver.Create",
        "{\"Name\":\"nvidia_driver_375.66\"}",
    );
    assert_eq!(
        json(&r)["Err"],
        "invalid volume version: nvidia_driver_375.66"
    );
}

fn cli_options(
    host: &crate::support::SimHost,
    args: &[&str],
    nv_gpu: Option<&str>,
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nvidia-docker"));
    cmd.arg("cli-options")
        .args(args)
        .env_clear()
        .env("NVIDIA_DOCKER_CONFIG", "/dev/null")
        .env("NVIDIA_DOCKER_INVENTORY", &host.inventory)
        .env("NVML_MOCK_DEV_ROOT", &host.layout.dev_root);
    if let Some(g) = nv_gpu {
        cmd.env("NV_GPU", g);
    }
    cmd.output().unwrap()
}

#[test]
fn cli_options_prints_what_the_api_would() {
    let host = sim_host(golden_desc());
    let out = cli_options(&host, &[], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, golden("docker_cli.txt"));
    let out = cli_options(&host, &["--json"], None);
    assert_eq!(out.stdout, golden("docker_cli.json"));
    let out = cli_options(&host, &["--vol", "nvidia_driver"], Some("1,GPU-00c0"));
    assert_eq!(out.stdout, golden("docker_cli_dev.txt"));
    let out = cli_options(&host, &["--dev", "1 GPU-00c0"], Some("0"));
    assert_eq!(out.stdout, golden("docker_cli_dev.txt"));
    let out = cli_options(&host, &["--mesos"], None);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with(&String::from_utf8(golden("mesos_resources.txt")).unwrap()));
    for (args, nv_gpu, msg) in [
        (&["--dev", "4"][..], None, "Error: invalid device: 4"),
        (&[][..], Some("0 9"), "Error: invalid device: 9"),
        (&["--vol", "foo"][..], None, "Error: invalid volume: foo"),
    ] {
        let out = cli_options(&host, args, nv_gpu);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("nvidia-docker | ") || err.contains("nvidia-docker | "),
            "{err}"
        );
        assert!(err.trim_end().ends_with(msg), "{err}");
        assert!(out.stdout.is_empty());
    }
}
