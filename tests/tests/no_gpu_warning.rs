//! NVML answers but no GPU is visible (the mock NVML sees a GPU only when
//! its `/dev/nvidia<N>` opens): the hook and the plugin say so in one line
//! naming the cause, instead of serving an empty host without a word.
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e::hook::{hook_binary, SimHost};
use e2e::process::{command, run_timeout};

const WARNING: &str = "NVML (driver 535.104.05) answers but sees no GPU: no ";

/// The host's variables with the device nodes pointed at an empty directory.
fn env_without_nodes(host: &SimHost, empty: &std::path::Path) -> Vec<(&'static str, String)> {
    let empty = empty.to_string_lossy().into_owned();
    host.env()
        .into_iter()
        .map(|(k, v)| match k {
            "NVIDIA_DOCKER_DEV_ROOT" | "NVML_MOCK_DEV_ROOT" => (k, empty.clone()),
            _ => (k, v),
        })
        .collect()
}

#[test]
fn hook_inventory_warns_when_nvml_sees_no_gpu() {
    let host = SimHost::synthetic(2).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = command(hook_binary().unwrap());
    cmd.envs(env_without_nodes(&host, empty.path()))
        .arg("inventory");
    let out = run_timeout(&mut cmd, Duration::from_secs(60)).unwrap();
    out.assert_success();
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains(&format!(
            "{}/nvidia<N> device nodes",
            empty.path().display()
        )),
        "{out}"
    );
    // With the nodes, nothing to say.
    let mut cmd = command(hook_binary().unwrap());
    cmd.envs(host.env()).args(["inventory", "--refresh"]);
    let out = run_timeout(&mut cmd, Duration::from_secs(60)).unwrap();
    out.assert_success();
    assert!(!out.stderr.contains("sees no GPU"), "{out}");
}

#[test]
fn plugin_warns_when_nvml_sees_no_gpu() {
    let host = SimHost::synthetic(2).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let plugin = hook_binary()
        .unwrap()
        .parent()
        .unwrap()
        .join("nvidia-docker-plugin");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = command(&plugin)
        .envs(env_without_nodes(&host, empty.path()))
        .args(["-l", &format!("127.0.0.1:{port}"), "-s"])
        .arg(work.path().join("plugins"))
        .arg("-d")
        .arg(work.path().join("volumes"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(WARNING) => break Some(line),
            Ok(line) if line.contains("Serving") || line.contains("Error") => {
                seen.push(line);
                break None;
            }
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let line = found.unwrap_or_else(|| panic!("no warning; the plugin said:\n{}", seen.join("\n")));
    // v1's log format: `<argv0> | <date> Warning: ...`, one line.
    assert!(line.contains(" Warning: NVML"), "{line}");
}
