//! The harness against real runc: every rootfs variant starts under cgroup v1
//! and v2, and the device cgroup is proven without a GPU (EPERM when a rule
//! denies `c 195:N`, ENXIO when it allows it and no driver answers).
use e2e::{require, runc_run, Bundle, CgroupVersion, Hook, HookStage, Prereq, Variant};

/// The line of `/proc/self/cgroup` for the cgroup v1 devices controller, and
/// the cgroup v2 (`0::`) line.
fn cgroup_lines(stdout: &str) -> (Option<&str>, Option<&str>) {
    let devices = stdout.lines().find(|l| l.contains(":devices:"));
    let unified = stdout.lines().find(|l| l.starts_with("0::"));
    (devices, unified)
}

/// Asserts that runc put the container in a cgroup of the wanted version
/// (runc's container ids start with `e2e-`).
#[track_caller]
fn assert_cgroup(stdout: &str, cgroup: CgroupVersion) {
    let (devices, unified) = cgroup_lines(stdout);
    match cgroup {
        CgroupVersion::V1 => assert!(
            devices.is_some_and(|l| l.contains("/e2e-")),
            "not in a v1 devices cgroup of its own:\n{stdout}"
        ),
        CgroupVersion::V2 => {
            assert!(
                unified.is_some_and(|l| l.contains("/e2e-")),
                "not in a v2 cgroup of its own:\n{stdout}"
            );
            assert!(
                !devices.is_some_and(|l| l.contains("e2e-")),
                "v2 run but placed in a v1 devices cgroup:\n{stdout}"
            );
        }
    }
}

fn smoke(variant: Variant, cgroup: CgroupVersion) {
    require!(Prereq::Runc, cgroup.prereq());
    let bundle = Bundle::builder(variant)
        .sh("echo hello; cat /etc/os-release; ldconfig -p; /lib64/ld-linux-x86-64.so.2 --version; cat /proc/self/cgroup")
        .build()
        .unwrap();
    let out = runc_run(&bundle, cgroup).unwrap();
    out.assert_success();
    assert!(out.stdout.starts_with("hello\n"), "{out}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("ID=") && l.contains(variant.os_id())),
        "{out}"
    );
    let libc = format!("=> {}/libc.so.6", variant.lib_dir());
    assert!(
        out.stdout.contains(&libc),
        "ld.so.cache lacks `{libc}`:\n{out}"
    );
    assert!(
        out.stdout.contains("release version"),
        "ld.so did not run:\n{out}"
    );
    assert_cgroup(&out.stdout, cgroup);
}

#[test]
fn smoke_debian_v1() {
    smoke(Variant::Debian, CgroupVersion::V1);
}

#[test]
fn smoke_debian_v2() {
    smoke(Variant::Debian, CgroupVersion::V2);
}

#[test]
fn smoke_lib64_v1() {
    smoke(Variant::Lib64, CgroupVersion::V1);
}

#[test]
fn smoke_lib64_v2() {
    smoke(Variant::Lib64, CgroupVersion::V2);
}

const NO_DRIVER: &str = "No such device or address";
const DENIED: &str = "Operation not permitted";

/// `/dev/nvidia0` (c 195:0) and `/dev/nvidia1` (c 195:1) exist; the device
/// cgroup allows `c 195:0 rw` and, when `allow_both`, `c 195:1 rw` too.
fn device_probe(cgroup: CgroupVersion, allow_both: bool) -> e2e::Output {
    let mut builder = Bundle::builder(Variant::Debian)
        .char_device("/dev/nvidia0", 195, 0)
        .char_device("/dev/nvidia1", 195, 1)
        .device_rule(true, "c", Some(195), Some(0), "rw");
    if allow_both {
        builder = builder.device_rule(true, "c", Some(195), Some(1), "rw");
    }
    let bundle = builder
        .sh("stat -c '%n %F %t:%T' /dev/nvidia0 /dev/nvidia1; head -c1 /dev/nvidia0; head -c1 /dev/nvidia1; cat /proc/self/cgroup")
        .build()
        .unwrap();
    let out = runc_run(&bundle, cgroup).unwrap();
    out.assert_success();
    assert!(
        out.stdout
            .contains("/dev/nvidia0 character special file c3:0")
            && out
                .stdout
                .contains("/dev/nvidia1 character special file c3:1"),
        "device nodes missing:\n{out}"
    );
    assert_cgroup(&out.stdout, cgroup);
    out
}

fn device_cgroup(cgroup: CgroupVersion) {
    require!(Prereq::Runc, cgroup.prereq());
    let out = device_probe(cgroup, false);
    assert!(
        out.stderr.contains(&format!("/dev/nvidia0: {NO_DRIVER}")),
        "allowed c 195:0 should open up to the (missing) driver: ENXIO\n{out}"
    );
    assert!(
        out.stderr.contains(&format!("/dev/nvidia1: {DENIED}")),
        "unlisted c 195:1 should be denied by the device cgroup: EPERM\n{out}"
    );
    // Control: with a rule for c 195:1 the same node opens up to the driver,
    // so the EPERM above came from the cgroup, not from the node.
    let out = device_probe(cgroup, true);
    assert!(
        out.stderr.contains(&format!("/dev/nvidia1: {NO_DRIVER}")) && !out.stderr.contains(DENIED),
        "with c 195:1 allowed: ENXIO expected\n{out}"
    );
}

#[test]
fn device_cgroup_v1() {
    device_cgroup(CgroupVersion::V1);
}

#[test]
fn device_cgroup_v2() {
    device_cgroup(CgroupVersion::V2);
}

/// A prestart hook gets the OCI state (with the bundle path and the
/// annotations) on stdin.
fn prestart_hook(cgroup: CgroupVersion) {
    require!(Prereq::Runc, cgroup.prereq());
    let out_dir = tempfile::tempdir().unwrap();
    let state = out_dir.path().join("state.json");
    let script = format!("cat > '{}'", state.display());
    let bundle = Bundle::builder(Variant::Debian)
        .annotation("e2e.probe", "yes")
        .hook(
            HookStage::Prestart,
            &Hook::new("/bin/sh", &["sh", "-c", &script]).timeout(10),
        )
        .sh("echo ran")
        .build()
        .unwrap();
    let out = runc_run(&bundle, cgroup).unwrap();
    out.assert_success();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        state["bundle"].as_str().map(std::path::Path::new),
        Some(bundle.path()),
        "{state}"
    );
    assert_eq!(state["annotations"]["e2e.probe"], "yes", "{state}");
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
}

#[test]
fn prestart_hook_gets_state_v1() {
    prestart_hook(CgroupVersion::V1);
}

#[test]
fn prestart_hook_gets_state_v2() {
    prestart_hook(CgroupVersion::V2);
}

/// A container that never ends is killed at the deadline, and deleted with
/// its cgroup: a hung runtime cannot hang the suite.
fn hung_container(cgroup: CgroupVersion) {
    require!(Prereq::Runc, cgroup.prereq());
    let bundle = Bundle::builder(Variant::Debian)
        .sh("echo started; exec sleep 600")
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    let err = e2e::runc_run_timeout(&bundle, cgroup, std::time::Duration::from_secs(2))
        .expect_err("sleep 600 finished within 2 s");
    let msg = format!("{err:#}");
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
    assert!(
        msg.contains("timed out") && msg.contains("started"),
        "{msg}"
    );
    let id = msg
        .split_whitespace()
        .find(|w| w.starts_with("e2e-"))
        .expect("container id in the message");
    let cgroup_dir = match cgroup {
        CgroupVersion::V1 => std::path::PathBuf::from("/sys/fs/cgroup/devices"),
        CgroupVersion::V2 => e2e::runc::cgroup2_mount().unwrap(),
    };
    let leftovers: Vec<_> = walk_dirs(&cgroup_dir, 4)
        .into_iter()
        .filter(|d| d.file_name().is_some_and(|n| n == id))
        .collect();
    assert!(leftovers.is_empty(), "cgroup left behind: {leftovers:?}");
}

fn walk_dirs(dir: &std::path::Path, depth: usize) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if depth == 0 {
        return found;
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push(entry.path());
            found.extend(walk_dirs(&entry.path(), depth - 1));
        }
    }
    found
}

#[test]
fn hung_container_is_killed_and_deleted_v1() {
    hung_container(CgroupVersion::V1);
}

#[test]
fn hung_container_is_killed_and_deleted_v2() {
    hung_container(CgroupVersion::V2);
}
