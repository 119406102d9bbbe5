//! `hook::cgroup::allow_devices` against real device cgroups.
//!
//! A prober process sits in a test cgroup and opens `c 195:0` (planned),
//! `c 195:1` (not planned) and `c 1:3` (runc's default `/dev/null`) nodes
//! made in a temp dir: with no NVIDIA driver, `open()` fails with `EPERM`
//! when the device cgroup denies it and `ENXIO` when it allows it.
//!
//! - v1: a `devices` cgroup under `/sys/fs/cgroup/devices/`.
//! - v2: in a forked child with a private mount namespace where the cgroup2
//!   hierarchy is bind-mounted on `/sys/fs/cgroup` (as the e2e harness runs
//!   runc), a cgroup with runc's program attached (`BPF_F_ALLOW_MULTI`).
//! - runc: a real runc container (v1 and v2), checked through `runc exec`;
//!   for v2 the program runc attached is compared instruction for
//!   instruction with the one this crate compiles for the same spec.
//!
//! Root-only: skipped (with `SKIP`) when not root, failed under `CI`.
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use hook::cgroup::{allow_devices, v2};
use hook::config::HostPaths;
use hook::sys::bpf;
use nix::errno::Errno;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder};

const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Whether `CI` is set (to anything but empty, `0` or `false`, as the e2e
/// harness reads it).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// A missing prerequisite: `SKIP` locally, a failure under CI.
fn skip(test: &str, why: &str) {
    assert!(!ci(), "CI requires {why} ({test})");
    eprintln!("SKIP {test}: needs {why}");
}

fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(test, "root");
    false
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn rule(major: u32, minor: u32) -> rules::DeviceRule {
    rules::DeviceRule {
        allow: true,
        kind: rules::NodeType::Char,
        major,
        minor,
        access: "rw".to_owned(),
    }
}

fn deny_all() -> LinuxDeviceCgroup {
    LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap()
}

/// `c 195:0`, `c 195:1`, `c 1:3` nodes in a temp dir.
fn nodes() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for (name, major, minor) in [("gpu0", 195, 0), ("gpu1", 195, 1), ("null", 1, 3)] {
        let path = dir.path().join(name);
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .unwrap();
        out.push(path);
    }
    (dir, out)
}

/// A probe's outcome: the device cgroup denied the open (`EPERM`), or let
/// it through (`ENXIO` with no driver, success with one).
const DENIED: bool = true;
const ALLOWED: bool = false;

/// A process that opens `nodes` read-write each time it is told to and
/// reports the errnos (0 for success).
struct Prober {
    pid: Pid,
    go: File,
    results: File,
    n: usize,
}

impl Prober {
    fn spawn(nodes: &[PathBuf]) -> Prober {
        let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (res_r, res_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let list = nodes.to_vec();
        let pid = hook::sys::process::fork(move || {
            let mut go = File::from(go_r);
            let mut out = File::from(res_w);
            let mut b = [0u8; 1];
            while matches!(go.read(&mut b), Ok(1)) {
                for node in &list {
                    let code = match std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(node)
                    {
                        Ok(_) => 0,
                        Err(e) => e.raw_os_error().unwrap_or(-1),
                    };
                    if out.write_all(&code.to_le_bytes()).is_err() {
                        return 1;
                    }
                }
            }
            0
        })
        .unwrap();
        Prober {
            pid,
            go: File::from(go_w),
            results: File::from(res_r),
            n: nodes.len(),
        }
    }

    /// For each node: denied (`EPERM`) or not.
    fn probe(&mut self) -> Vec<bool> {
        self.go.write_all(b"x").unwrap();
        let mut buf = vec![0u8; 4 * self.n];
        self.results.read_exact(&mut buf).unwrap();
        buf.chunks(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) == Errno::EPERM as i32)
            .collect()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

/// Removes a cgroup directory once its processes are gone.
struct CgroupDir(PathBuf);

impl Drop for CgroupDir {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn host_paths(dev_root: &Path) -> HostPaths {
    HostPaths {
        dev_root: dev_root.to_path_buf(),
        ..HostPaths::default()
    }
}

#[test]
fn v1_devices_allow() {
    if !privileged("v1_devices_allow") {
        return;
    }
    let devices = Path::new("/sys/fs/cgroup/devices");
    if !devices.join("devices.allow").exists() {
        skip("v1_devices_allow", "a cgroup v1 devices hierarchy");
        return;
    }
    let (dev, nodes) = nodes();
    let cg = CgroupDir(devices.join(unique("nvd-test")));
    std::fs::create_dir(&cg.0).unwrap();
    // What runc writes for Docker's default: deny all, then its defaults.
    std::fs::write(cg.0.join("devices.deny"), "a").unwrap();
    std::fs::write(cg.0.join("devices.allow"), "c 1:3 rwm").unwrap();
    let mut prober = Prober::spawn(&nodes);
    std::fs::write(cg.0.join("cgroup.procs"), prober.pid.to_string()).unwrap();
    assert_eq!(prober.probe(), [DENIED, DENIED, ALLOWED]);

    allow_devices(
        &host_paths(dev.path()),
        prober.pid.as_raw(),
        &[rule(195, 0)],
        &[deny_all()],
    )
    .unwrap();
    assert_eq!(prober.probe(), [ALLOWED, DENIED, ALLOWED]);
    let list = std::fs::read_to_string(cg.0.join("devices.list")).unwrap();
    assert!(list.lines().any(|l| l == "c 195:0 rw"), "{list}");
    // The /dev/char link points at the node found under dev_root.
    assert_eq!(
        std::fs::read_link(dev.path().join("char/195:0")).unwrap(),
        Path::new("../gpu0")
    );
    drop(prober);
}

#[test]
fn v1_refusal_names_the_cgroup_and_the_remedy() {
    if !privileged("v1_refusal_names_the_cgroup_and_the_remedy") {
        return;
    }
    let devices = Path::new("/sys/fs/cgroup/devices");
    if !devices.join("devices.allow").exists() {
        skip(
            "v1_refusal_names_the_cgroup_and_the_remedy",
            "a cgroup v1 devices hierarchy",
        );
        return;
    }
    // A child may not allow what its parent denies: EPERM from the kernel.
    let parent = CgroupDir(devices.join(unique("nvd-test")));
    std::fs::create_dir(&parent.0).unwrap();
    std::fs::write(parent.0.join("devices.deny"), "a").unwrap();
    let child = CgroupDir(parent.0.join("c"));
    std::fs::create_dir(&child.0).unwrap();
    let (dev, nodes) = nodes();
    let prober = Prober::spawn(&nodes);
    std::fs::write(child.0.join("cgroup.procs"), prober.pid.to_string()).unwrap();
    let err = allow_devices(
        &host_paths(dev.path()),
        prober.pid.as_raw(),
        &[rule(195, 0)],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot allow c 195:0 rw in {}: devices.allow: Operation not permitted; \
             on a rootless host set no-cgroups = true",
            child.0.display()
        )
    );
    drop(prober);
    drop(child);
}

/// Runs `f` in a forked child whose mount namespace has the cgroup2
/// hierarchy on `/sys/fs/cgroup` (what the e2e harness does for runc v2).
fn in_v2_namespace(name: &'static str, f: impl FnOnce() -> anyhow::Result<()>) -> bool {
    if !privileged(name) {
        return false;
    }
    let unified = if bpf::is_cgroup2(Path::new("/sys/fs/cgroup")).unwrap_or(false) {
        None
    } else if bpf::is_cgroup2(Path::new(UNIFIED)).unwrap_or(false) {
        Some(UNIFIED)
    } else {
        skip(name, "a cgroup2 mount");
        return false;
    };
    hook::sys::child::run_in_child(name, Duration::from_secs(90), || -> anyhow::Result<()> {
        if let Some(unified) = unified {
            hook::sys::process::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            hook::sys::process::make_mounts_private()?;
            nix::mount::mount(
                Some(unified),
                "/sys/fs/cgroup",
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .context("bind the cgroup2 hierarchy on /sys/fs/cgroup")?;
        }
        f()
    })
    .unwrap();
    true
}

/// Loads and attaches (`BPF_F_ALLOW_MULTI`) the program runc attaches for
/// `spec`, as runc does; returns its id.
fn attach_runc_program(cgroup: &Path, spec: &[LinuxDeviceCgroup]) -> anyhow::Result<u32> {
    let insns = v2::rulesets(spec, &[])?.runc.compile();
    let prog = bpf::load_cgroup_device_program(&insns, c"Apache", "runc_like")?;
    let dir = File::open(cgroup)?;
    bpf::attach(
        dir.as_fd(),
        prog.as_fd(),
        bpf::ATTACH_CGROUP_DEVICE,
        bpf::F_ALLOW_MULTI,
    )?;
    Ok(bpf::program_id(&prog)?)
}

/// The ids and instructions of the device programs attached to `cgroup`.
fn attached(cgroup: &Path) -> anyhow::Result<Vec<(u32, Vec<bpf::Insn>)>> {
    let dir = File::open(cgroup)?;
    let ids = bpf::query_programs(dir.as_fd(), bpf::ATTACH_CGROUP_DEVICE)?;
    ids.into_iter()
        .map(|id| {
            let fd = bpf::program_fd_by_id(id)?;
            Ok((id, bpf::program_instructions(&fd)?))
        })
        .collect()
}

#[test]
fn v2_program_is_replaced() {
    in_v2_namespace("v2_program_is_replaced", || {
        let (dev, nodes) = nodes();
        let cg = CgroupDir(Path::new("/sys/fs/cgroup").join(unique("nvd-test")));
        std::fs::create_dir(&cg.0)?;
        let mut prober = Prober::spawn(&nodes);
        std::fs::write(cg.0.join("cgroup.procs"), prober.pid.to_string())?;
        let spec = [deny_all()];
        let runc_id = attach_runc_program(&cg.0, &spec)?;
        ensure!(
            prober.probe() == [DENIED, DENIED, ALLOWED],
            "runc's program alone"
        );

        let planned = [rule(195, 0), rule(195, 255)];
        allow_devices(
            &host_paths(dev.path()),
            prober.pid.as_raw(),
            &planned,
            &spec,
        )?;
        let got = prober.probe();
        ensure!(
            got == [ALLOWED, DENIED, ALLOWED],
            "after allow_devices: {got:?}"
        );
        let now = attached(&cg.0)?;
        ensure!(now.len() == 1, "one program left, got {}", now.len());
        ensure!(now[0].0 != runc_id, "runc's program was detached");
        let want = v2::rulesets(&spec, &planned)?.with_planned.compile();
        ensure!(now[0].1 == want, "the kernel holds the compiled program");
        drop(prober);
        Ok(())
    });
}

#[test]
fn v2_left_alone_when_nothing_to_do() {
    in_v2_namespace("v2_left_alone_when_nothing_to_do", || {
        let (dev, nodes) = nodes();
        let cg = CgroupDir(Path::new("/sys/fs/cgroup").join(unique("nvd-test")));
        std::fs::create_dir(&cg.0)?;
        let mut prober = Prober::spawn(&nodes);
        std::fs::write(cg.0.join("cgroup.procs"), prober.pid.to_string())?;
        // No program attached: everything is allowed, and stays so.
        allow_devices(
            &host_paths(dev.path()),
            prober.pid.as_raw(),
            &[rule(195, 0)],
            &[deny_all()],
        )?;
        ensure!(attached(&cg.0)?.is_empty(), "no program was attached");
        ensure!(prober.probe() == [ALLOWED, ALLOWED, ALLOWED]);
        // The spec already allows 195:*: runc's program stays.
        let spec = [
            deny_all(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(oci_spec::runtime::LinuxDeviceType::C)
                .major(195i64)
                .access("rwm")
                .build()?,
        ];
        let runc_id = attach_runc_program(&cg.0, &spec)?;
        allow_devices(
            &host_paths(dev.path()),
            prober.pid.as_raw(),
            &[rule(195, 0)],
            &spec,
        )?;
        let now = attached(&cg.0)?;
        ensure!(now.len() == 1 && now[0].0 == runc_id, "runc's program kept");
        ensure!(prober.probe() == [ALLOWED, ALLOWED, ALLOWED]);
        drop(prober);
        Ok(())
    });
}

// ---------------------------------------------------------------- real runc

fn runc(state: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let out = Command::new("runc")
        .arg("--root")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run runc")?;
    Ok(out)
}

/// A bundle made by `runc spec` (resources.devices = deny all) around a
/// fixtures rootfs, running `sleep 60` with `CAP_MKNOD` added.
struct Bundle {
    dir: tempfile::TempDir,
    spec_devices: Vec<LinuxDeviceCgroup>,
}

impl Bundle {
    /// Made in the test's own process, before any fork (the rootfs cache
    /// takes a lock).
    fn prepare() -> anyhow::Result<Bundle> {
        let dir = tempfile::tempdir()?;
        fixtures::rootfs::copy_to(
            fixtures::rootfs::Variant::Debian,
            &dir.path().join("rootfs"),
        )?;
        let out = Command::new("runc")
            .arg("spec")
            .current_dir(dir.path())
            .output()?;
        ensure!(
            out.status.success(),
            "runc spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join("config.json");
        let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&config)?)?;
        json["process"]["terminal"] = false.into();
        json["process"]["args"] = serde_json::json!(["sleep", "60"]);
        for set in ["bounding", "effective", "permitted"] {
            if let Some(caps) = json["process"]["capabilities"][set].as_array_mut() {
                caps.push("CAP_MKNOD".into());
            }
        }
        std::fs::write(&config, serde_json::to_vec_pretty(&json)?)?;
        let spec = oci_spec::runtime::Spec::load(&config)?;
        let spec_devices = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        Ok(Bundle { dir, spec_devices })
    }
}

struct Container<'a> {
    state: tempfile::TempDir,
    bundle: &'a Bundle,
    id: String,
    pid: i32,
}

impl<'a> Container<'a> {
    /// `runc run -d` of `bundle`.
    fn start(bundle: &'a Bundle) -> anyhow::Result<Container<'a>> {
        let state = tempfile::tempdir()?;
        let id = unique("nvd-test");
        let bundle_arg = bundle
            .dir
            .path()
            .to_str()
            .context("bundle path")?
            .to_owned();
        // The container inherits runc's stdio: a pipe would keep
        // `output()` waiting for it to exit, so errors go to a file.
        let log = state.path().join("run.stderr");
        let status = Command::new("runc")
            .arg("--root")
            .arg(state.path())
            .args(["run", "-d", "--bundle", &bundle_arg, &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .status()?;
        ensure!(
            status.success(),
            "runc run: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let out = runc(state.path(), &["state", &id])?;
        let st: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let pid = i32::try_from(st["pid"].as_i64().context("runc state pid")?)?;
        Ok(Container {
            state,
            bundle,
            id,
            pid,
        })
    }

    /// Opens (read-write) a `c major:minor` node made in the container's
    /// `/dev` with `runc exec`: whether the device cgroup denied it.
    fn denied(&self, major: u32, minor: u32) -> anyhow::Result<bool> {
        let node = format!("/dev/t{major}_{minor}");
        let script =
            format!("{{ test -e {node} || mknod {node} c {major} {minor}; }} && exec 3<>{node}");
        let out = runc(self.state.path(), &["exec", &self.id, "sh", "-c", &script])?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(!err.contains("mknod"), "mknod {node} failed: {err}");
        ensure!(
            out.status.success() || err.contains(&format!("can't create {node}")),
            "runc exec: {err}"
        );
        Ok(err.contains("Operation not permitted"))
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = runc(self.state.path(), &["delete", "--force", &self.id]);
    }
}

fn have_runc(test: &str) -> bool {
    if Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    skip(test, "runc");
    false
}

fn check_runc_container(bundle: &Bundle, v2_checks: bool) -> anyhow::Result<()> {
    let c = Container::start(bundle)?;
    let spec_devices = &c.bundle.spec_devices;
    let dev = tempfile::tempdir()?;
    ensure!(c.denied(195, 0)?, "195:0 is denied before");
    if v2_checks {
        let cg = hook::cgroup::find_device_cgroup(&HostPaths::default(), c.pid)?;
        let hook::cgroup::DeviceCgroup::V2(dir) = cg else {
            bail!("expected a v2 cgroup, got {cg:?}")
        };
        let progs = attached(&dir)?;
        ensure!(progs.len() == 1, "runc attached {} programs", progs.len());
        let ours = v2::rulesets(spec_devices, &[])?.runc.compile();
        let show = |p: &[bpf::Insn]| {
            p.iter()
                .map(hook::cgroup::program::disassemble)
                .collect::<Vec<_>>()
                .join("\n")
        };
        ensure!(
            progs[0].1 == ours,
            "runc's program differs from ours:\nrunc:\n{}\nours:\n{}",
            show(&progs[0].1),
            show(&ours)
        );
    }
    allow_devices(
        &host_paths(dev.path()),
        c.pid,
        &[rule(195, 0)],
        spec_devices,
    )?;
    ensure!(!c.denied(195, 0)?, "195:0 is allowed after");
    ensure!(c.denied(195, 1)?, "195:1 is still denied");
    ensure!(!c.denied(1, 3)?, "1:3 (/dev/null) is still allowed");
    Ok(())
}

#[test]
fn runc_v1_container() {
    if !privileged("runc_v1_container") || !have_runc("runc_v1_container") {
        return;
    }
    if bpf::is_cgroup2(Path::new("/sys/fs/cgroup")).unwrap_or(false) {
        skip(
            "runc_v1_container",
            "cgroup v1 (this host is cgroup v2 only)",
        );
        return;
    }
    let bundle = Bundle::prepare().unwrap();
    check_runc_container(&bundle, false).unwrap();
}

#[test]
fn runc_v2_container_program_matches_ours() {
    if !have_runc("runc_v2_container_program_matches_ours") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        // in_v2_namespace prints the SKIP line (or fails under CI).
        in_v2_namespace("runc_v2_container_program_matches_ours", || Ok(()));
        return;
    }
    let bundle = Bundle::prepare().unwrap();
    in_v2_namespace("runc_v2_container_program_matches_ours", || {
        check_runc_container(&bundle, true)
    });
}
