//! `nvidia-docker-hook explain` holds against the hook: for a bundle on the
//! simulated host, `explain --json BUNDLE` prints exactly the plan the
//! prestart hook then applies when runc starts that bundle (the plan the
//! hook writes to its debug log), and the container sees exactly the plan's
//! device nodes. A refused request gives the hook's line and exit code 3,
//! and the container is refused with the same line. `explain` writes
//! nothing: no snapshot, no debug log.
use std::time::Duration;

use e2e::hook::{hook_binary, inside_script, lib_dir, Inside, SimHost};
use e2e::process::{command, run_timeout};
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Output, Prereq, Variant};
use serde_json::Value;

fn explain(host: &SimHost, args: &[&str]) -> Output {
    let mut cmd = command(hook_binary().unwrap());
    cmd.envs(host.env()).arg("explain").args(args);
    run_timeout(&mut cmd, Duration::from_secs(60)).unwrap()
}

/// The `plan: {...}` line the hook logged at debug level.
fn logged_plan(host: &SimHost) -> Value {
    let log = std::fs::read_to_string(host.debug_log()).unwrap_or_default();
    let line = log
        .lines()
        .filter_map(|l| l.split_once(": plan: ").map(|(_, json)| json))
        .next_back()
        .unwrap_or_else(|| panic!("no plan in the hook's debug log:\n{log}"));
    serde_json::from_str(line).unwrap()
}

fn bundle(host: &SimHost, variant: Variant, visible: &str) -> Bundle {
    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
    Bundle::builder(variant)
        .sh(&inside_script(&lib))
        .env("NVIDIA_VISIBLE_DEVICES", visible)
        .env("NVIDIA_DRIVER_CAPABILITIES", "compute,utility")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap()
}

fn explain_equals_what_the_hook_applies(variant: Variant, visible: &str, indexes: &[usize]) {
    require!(Prereq::Runc, Prereq::CgroupV2);
    let host = SimHost::synthetic(4).unwrap();
    host.enable_debug_log().unwrap();
    let bundle = bundle(&host, variant, visible);
    let bundle_dir = bundle.path().to_str().unwrap().to_owned();

    let out = explain(&host, &["--json", &bundle_dir]);
    out.assert_success();
    let explained: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        !host.dir().join("cache").exists(),
        "explain wrote the snapshot"
    );
    assert!(!host.debug_log().exists(), "explain wrote the debug log");

    // The text form shows the same decision for people.
    let text = explain(&host, &[&bundle_dir]);
    text.assert_success();
    assert!(
        text.stdout.contains("NVIDIA_VISIBLE_DEVICES")
            && text.stdout.contains("<- selects the devices"),
        "{text}"
    );
    for node in explained["device_nodes"].as_array().unwrap() {
        assert!(
            text.stdout.contains(node["path"].as_str().unwrap()),
            "{text}"
        );
    }

    let run = runc_run(&bundle, CgroupVersion::V2).unwrap();
    run.assert_success();
    assert_eq!(explained, logged_plan(&host), "explain vs the hook's plan");
    let inside = Inside::parse(&run.stdout);
    inside.assert_gpus(&host, indexes, &run);
    let planned: Vec<&str> = explained["device_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    let seen: Vec<&str> = inside.nodes.keys().map(String::as_str).collect();
    let mut planned_sorted = planned.clone();
    planned_sorted.sort_unstable();
    assert_eq!(planned_sorted, seen, "{run}");
}

#[test]
fn explain_json_is_the_applied_plan_debian() {
    explain_equals_what_the_hook_applies(Variant::Debian, "1,3", &[1, 3]);
}

#[test]
fn explain_json_is_the_applied_plan_lib64() {
    explain_equals_what_the_hook_applies(Variant::Lib64, "all", &[0, 1, 2, 3]);
}

/// A refusal: `explain` exits 3 with the hook's line on stderr, which is
/// the line runc shows when it starts the container.
#[test]
fn explain_refuses_as_the_hook_does() {
    require!(Prereq::Runc, Prereq::CgroupV2);
    let host = SimHost::synthetic(2).unwrap();
    let bundle = bundle(&host, Variant::Debian, "7");
    let out = explain(&host, &[bundle.path().to_str().unwrap()]);
    assert_eq!(out.code(), Some(3), "{out}");
    let line = out.stderr.trim_end();
    assert!(
        line.contains("unknown GPU 7 in NVIDIA_VISIBLE_DEVICES"),
        "{out}"
    );
    assert!(out.stdout.contains(&format!("refused: {line}")), "{out}");
    let run = runc_run(&bundle, CgroupVersion::V2).unwrap();
    run.assert_failure();
    assert!(run.stderr.contains(line), "{run}");
}

/// Without a bundle: the flags alone, labels as annotations, and a
/// non-GPU container.
#[test]
fn explain_from_flags() {
    let host = SimHost::synthetic(2).unwrap();
    let out = explain(
        &host,
        &[
            "--json",
            "--image-label",
            "com.nvidia.volumes.needed=nvidia_driver",
            "--privileged",
        ],
    );
    out.assert_success();
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["gpus"].as_array().map(Vec::len), Some(2), "{out}");
    let text = explain(
        &host,
        &["--image-label", "com.nvidia.volumes.needed=nvidia_driver"],
    );
    text.assert_success();
    assert!(
        text.stdout.contains(
            "annotation com.nvidia.volumes.needed  nvidia_driver  <- selects the devices"
        ),
        "{text}"
    );
    let none = explain(&host, &["--env", "NVIDIA_VISIBLE_DEVICES=void"]);
    none.assert_success();
    assert!(
        none.stdout
            .contains("not a GPU container: the hook does nothing"),
        "{none}"
    );
    let json = explain(&host, &["--json", "-e", "NVIDIA_VISIBLE_DEVICES=void"]);
    assert_eq!(json.stdout.trim(), r#"{"gpu_container": false}"#, "{json}");
    let bad = explain(&host, &["--env", "NOEQUALS"]);
    assert_eq!(bad.code(), Some(2), "{bad}");
}
