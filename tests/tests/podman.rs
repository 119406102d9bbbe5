//! The harness against real podman (runc, cgroupfs): imported test images run,
//! and a `--hooks-dir` hook sees `--annotation`s in the OCI state.
use e2e::{require, Podman, Prereq, Variant};

#[test]
fn podman_runs_imported_debian_image() {
    require!(Prereq::Podman);
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/debian:v1-volume";
    podman
        .import(
            Variant::Debian,
            image,
            &["LABEL com.nvidia.volumes.needed=nvidia_driver"],
        )
        .unwrap();
    let out = podman
        .run_podman(&["run", "--rm", image, "/bin/sh", "-c", "echo hi"])
        .unwrap();
    out.assert_success();
    assert_eq!(out.stdout, "hi\n", "{out}");
    let out = podman
        .run_podman(&["image", "inspect", "--format", "{{json .Labels}}", image])
        .unwrap();
    out.assert_success();
    let labels: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        labels["com.nvidia.volumes.needed"], "nvidia_driver",
        "{out}"
    );
}

#[test]
fn podman_hooks_dir_hook_sees_annotations() {
    require!(Prereq::Podman);
    let podman = Podman::new().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let state = out_dir.path().join("state.json");
    let hook = serde_json::json!({
        "version": "1.0.0",
        "hook": {
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > '{}'", state.display())]
        },
        "when": { "annotations": { "^e2e\\.probe$": "^yes$" } },
        "stages": ["prestart"]
    });
    std::fs::write(
        podman.hooks_dir().join("e2e-probe.json"),
        serde_json::to_string(&hook).unwrap(),
    )
    .unwrap();
    let image = "localhost/e2e/lib64:plain";
    podman
        .import(Variant::Lib64, image, &[] as &[&str])
        .unwrap();
    // Without the annotation the hook does not run...
    podman
        .run_podman(&["run", "--rm", image, "/bin/true"])
        .unwrap()
        .assert_success();
    assert!(!state.exists(), "hook ran without its annotation");
    // ...with it, it runs and sees it.
    podman
        .run_podman(&[
            "run",
            "--rm",
            "--annotation",
            "e2e.probe=yes",
            image,
            "/bin/true",
        ])
        .unwrap()
        .assert_success();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(state["annotations"]["e2e.probe"], "yes", "{state}");
    assert!(
        state["bundle"].as_str().is_some_and(|b| !b.is_empty()),
        "{state}"
    );
}
