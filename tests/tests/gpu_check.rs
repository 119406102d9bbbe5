//! `scripts/gpu-check`, the one-command real-GPU check: prepared into a
//! directory as for a GPU host, it fails with one line where there is no
//! driver, and its whole flow (inventory against nvidia-smi, runc and the
//! runc wrapper with all / an index / a UUID / none, start times, the
//! summary table) passes on the simulated host (`--simulate`), under the
//! host's default cgroup setup and under cgroup v2 (what GPU hosts have).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::hook::hook_binary;
use e2e::process::run_timeout;
use e2e::runc::cgroup2_mount;
use e2e::{require, CgroupVersion, Output, Prereq};

const TIMEOUT: Duration = Duration::from_secs(300);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu-check")
}

/// `scripts/gpu-check --prepare --no-build` of the binaries this test run
/// uses, into `<tmp>/gpu-check`.
fn prepare(tmp: &Path) -> PathBuf {
    let hook = hook_binary().expect("the hook is built");
    let profile_dir = hook.parent().expect("target/<profile>");
    let target = profile_dir.parent().expect("target");
    let dir = tmp.join("gpu-check");
    let mut cmd = Command::new(script());
    cmd.arg("--prepare").arg("--no-build");
    if profile_dir.file_name().is_some_and(|n| n != "release") {
        cmd.arg("--debug");
    }
    cmd.arg(&dir).env("CARGO_TARGET_DIR", target);
    run_timeout(&mut cmd, TIMEOUT).unwrap().assert_success();
    dir
}

fn simulate(dir: &Path, cgroup: Option<CgroupVersion>) -> Output {
    let mut cmd = match (cgroup, cgroup2_mount()) {
        (Some(CgroupVersion::V2), Some(mount)) if mount != Path::new("/sys/fs/cgroup") => {
            let mut cmd = Command::new("unshare");
            cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg(r#"mount --bind "$1" /sys/fs/cgroup && shift && exec "$@""#)
                .arg("sh")
                .arg(mount)
                .arg(dir.join("gpu-check"));
            cmd
        }
        _ => Command::new(dir.join("gpu-check")),
    };
    cmd.arg("--simulate")
        .arg(dir)
        .env("GPU_CHECK_RUNS", "2")
        .env("GPU_CHECK_SIMHOST", simhost());
    run_timeout(&mut cmd, TIMEOUT).unwrap()
}

fn simhost() -> PathBuf {
    hook_binary().unwrap().with_file_name("simhost")
}

fn assert_whole_flow(out: &Output) {
    out.assert_success();
    assert!(
        out.stdout.ends_with("gpu-check: all checks passed\n"),
        "{out}"
    );
    for row in [
        "PASS  GPU UUIDs",
        "PASS  bus ids (index order)",
        "PASS  driver version",
        "PASS  CUDA version",
        "PASS  runc all cuda ",
        "PASS  runc index 1 cuda ",
        "PASS  runc uuid cuda ",
        "PASS  runc none cuda ",
        "PASS  wrapper all cuda ",
        "PASS  runc all nvml ",
        "PASS  runc all nvidia-smi -L ",
        "PASS  runc index 1 nvidia-smi -L ",
        "PASS  runc uuid nvidia-smi -L ",
        "PASS  runc none nvidia-smi -L ",
        "PASS  wrapper all nvidia-smi -L ",
        "PASS  wrapper index 1 nvml ",
        "PASS  wrapper none nvml ",
        "PASS  start time ",
    ] {
        assert!(out.stdout.contains(row), "no {row:?} row:\n{out}");
    }
    assert!(!out.stdout.contains("FAIL"), "{out}");
    assert!(!out.stdout.contains("SKIP"), "{out}");
}

#[test]
fn without_a_driver_it_fails_with_one_line() {
    require!(Prereq::Runc, Prereq::Tool("cc"));
    if Path::new("/proc/driver/nvidia/version").exists() {
        eprintln!("SKIP without_a_driver_it_fails_with_one_line: this host has an NVIDIA driver");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = prepare(tmp.path());
    let out = run_timeout(&mut Command::new(dir.join("gpu-check")), TIMEOUT).unwrap();
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    assert!(
        out.stderr.starts_with(
            "gpu-check: no NVIDIA driver on this host (no /proc/driver/nvidia/version, "
        ),
        "{out}"
    );
}

#[test]
fn simulated_host_whole_flow_default_cgroups() {
    require!(Prereq::Runc, Prereq::Tool("cc"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = prepare(tmp.path());
    assert_whole_flow(&simulate(&dir, None));
}

#[test]
fn simulated_host_whole_flow_cgroup_v2() {
    require!(Prereq::Runc, Prereq::Tool("cc"), CgroupVersion::V2.prereq());
    let tmp = tempfile::tempdir().unwrap();
    let dir = prepare(tmp.path());
    assert_whole_flow(&simulate(&dir, Some(CgroupVersion::V2)));
}
