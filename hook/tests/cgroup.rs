//! `hook::cgroup::allow_devices` against real device cgroups.
//!
//! A prober process sits in a test cgroup and opens `c 195:0` (planned),
//! `c 195:1` (not planned), `c 1:3` (runc's default `/dev/null`) and
//! `c 10:200` (`/dev/net/tun`, which the test's runtime program denies)
//! nodes made in a temp dir: with no NVIDIA driver, `open()` fails with
//! `EPERM` when the device cgroup denies it and `ENXIO` when it allows it.
//!
//! - v1: a `devices` cgroup under `/sys/fs/cgroup/devices/`.
//! - v2: in a forked child with a private mount namespace where the cgroup2
//!   hierarchy is bind-mounted on `/sys/fs/cgroup` (as the e2e harness runs
//!   runc), a cgroup with runc's program attached (`BPF_F_ALLOW_MULTI`).
//! - runc and crun: a real container (runc v1 and v2, crun v2), checked
//!   through `exec`: the GPU allowed, every other device as the runtime left
//!   it (tun: runc 1.1 allows it, crun denies it), and for v2 each program
//!   the runtime attached kept instruction for instruction behind the
//!   prepended allow blocks.
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
use hook::cgroup::program::{self, Ruleset};
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

/// `c 195:0`, `c 195:1`, `c 1:3`, `c 10:200` nodes in a temp dir.
fn nodes() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for (name, major, minor) in [
        ("gpu0", 195, 0),
        ("gpu1", 195, 1),
        ("null", 1, 3),
        ("tun", 10, 200),
    ] {
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

/// A new cgroup v2 directory holding a new [`Prober`] of `nodes`.
fn v2_cgroup_with_prober(nodes: &[PathBuf]) -> anyhow::Result<(CgroupDir, Prober)> {
    let cg = CgroupDir(Path::new("/sys/fs/cgroup").join(unique("nvd-test")));
    std::fs::create_dir(&cg.0)?;
    let prober = Prober::spawn(nodes);
    std::fs::write(cg.0.join("cgroup.procs"), prober.pid.to_string())?;
    Ok((cg, prober))
}

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
    assert_eq!(prober.probe(), [DENIED, DENIED, ALLOWED, DENIED]);

    allow_devices(
        &host_paths(dev.path()),
        prober.pid.as_raw(),
        &[rule(195, 0)],
        &[deny_all()],
    )
    .unwrap();
    assert_eq!(prober.probe(), [ALLOWED, DENIED, ALLOWED, DENIED]);
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

/// Loads and attaches (`BPF_F_ALLOW_MULTI`) the program runc 1.1 attaches
/// for `spec`, as runc does; returns its id.
fn attach_runc_program(cgroup: &Path, spec: &[LinuxDeviceCgroup]) -> anyhow::Result<u32> {
    let insns = Ruleset::fold(&program::runc_rules(spec)?)?.compile();
    attach_program(cgroup, &insns)
}

/// Loads and attaches (`BPF_F_ALLOW_MULTI`) `insns`; returns the id.
fn attach_program(cgroup: &Path, insns: &[bpf::Insn]) -> anyhow::Result<u32> {
    let prog = bpf::load_cgroup_device_program(insns, c"Apache", "runtime_like")?;
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

fn allow_c(major: i64, minor: i64) -> LinuxDeviceCgroup {
    LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(oci_spec::runtime::LinuxDeviceType::C)
        .major(major)
        .minor(minor)
        .access("rwm")
        .build()
        .unwrap()
}

#[test]
fn v2_runtime_program_is_kept_and_gpu_rules_prepended() {
    in_v2_namespace("v2_runtime_program_is_kept_and_gpu_rules_prepended", || {
        let (dev, nodes) = nodes();
        let (cg, mut prober) = v2_cgroup_with_prober(&nodes)?;
        // A runtime whose defaults have /dev/null but not tun (crun, runc
        // 1.2.0), with a spec that says only "deny all".
        let spec = [deny_all()];
        let runtime = Ruleset::fold(&[
            program::from_spec(0, &deny_all())?,
            program::from_spec(1, &allow_c(1, 3))?,
        ])?
        .compile();
        let runtime_id = attach_program(&cg.0, &runtime)?;
        let got = prober.probe();
        ensure!(
            got == [DENIED, DENIED, ALLOWED, DENIED],
            "the runtime's program alone: {got:?}"
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
            got == [ALLOWED, DENIED, ALLOWED, DENIED],
            "after allow_devices (tun must stay denied): {got:?}"
        );
        let now = attached(&cg.0)?;
        ensure!(now.len() == 1, "one program left, got {}", now.len());
        ensure!(now[0].0 != runtime_id, "the runtime's program was detached");
        let (ours, _) = v2::planned_rules(&spec, &planned)?;
        let want = program::prepend_allow(&ours, &runtime)?;
        ensure!(
            now[0].1 == want,
            "the kernel holds the runtime's program behind the allow blocks"
        );
        drop(prober);
        Ok(())
    });
}

#[test]
fn v2_every_attached_program_is_widened() {
    in_v2_namespace("v2_every_attached_program_is_widened", || {
        let (dev, nodes) = nodes();
        let (cg, mut prober) = v2_cgroup_with_prober(&nodes)?;
        // Two programs (a runtime's and systemd's, say): all must allow.
        let one = Ruleset::fold(&[program::from_spec(0, &allow_c(1, 3))?])?.compile();
        let two = Ruleset::fold(&[
            program::from_spec(0, &allow_c(1, 3))?,
            program::from_spec(1, &allow_c(10, 200))?,
        ])?
        .compile();
        attach_program(&cg.0, &one)?;
        attach_program(&cg.0, &two)?;
        ensure!(prober.probe() == [DENIED, DENIED, ALLOWED, DENIED]);
        allow_devices(
            &host_paths(dev.path()),
            prober.pid.as_raw(),
            &[rule(195, 0)],
            &[deny_all()],
        )?;
        let got = prober.probe();
        ensure!(
            got == [ALLOWED, DENIED, ALLOWED, DENIED],
            "after allow_devices: {got:?}"
        );
        ensure!(attached(&cg.0)?.len() == 2, "still two programs");
        drop(prober);
        Ok(())
    });
}

#[test]
fn v2_left_alone_when_nothing_to_do() {
    in_v2_namespace("v2_left_alone_when_nothing_to_do", || {
        let (dev, nodes) = nodes();
        let (cg, mut prober) = v2_cgroup_with_prober(&nodes)?;
        // No program attached: everything is allowed, and stays so.
        allow_devices(
            &host_paths(dev.path()),
            prober.pid.as_raw(),
            &[rule(195, 0)],
            &[deny_all()],
        )?;
        ensure!(attached(&cg.0)?.is_empty(), "no program was attached");
        ensure!(prober.probe() == [ALLOWED, ALLOWED, ALLOWED, ALLOWED]);
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
        ensure!(prober.probe() == [ALLOWED, ALLOWED, ALLOWED, ALLOWED]);
        drop(prober);
        Ok(())
    });
}

// ------------------------------------------------------ real runc and crun

/// An OCI runtime binary the tests drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Runc,
    Crun,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    /// The runtime with `--root state`; crun with the preloaded `setrlimit`
    /// of `fixtures::crun` where it needs one.
    fn command(self, state: &Path) -> Command {
        let mut cmd = Command::new(self.name());
        cmd.arg("--root").arg(state).stdin(Stdio::null());
        if self == Runtime::Crun {
            if let Some(shim) = memlock_shim() {
                cmd.env("LD_PRELOAD", shim);
            }
        }
        cmd
    }

    fn run(self, state: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
        self.command(state)
            .args(args)
            .output()
            .with_context(|| format!("run {}", self.name()))
    }
}

/// The `setrlimit` shim for crun (see [`Runtime::command`]), or `None` when
/// this process may raise `RLIMIT_MEMLOCK` itself (`fixtures::crun`).
fn memlock_shim() -> Option<&'static Path> {
    static SHIM: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    SHIM.get_or_init(|| {
        let so = fixtures::crun::memlock_shim().unwrap();
        if let Some(so) = &so {
            eprintln!("crun runs with {} (no CAP_SYS_RESOURCE here)", so.display());
        }
        so
    })
    .as_deref()
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
    runtime: Runtime,
    state: tempfile::TempDir,
    bundle: &'a Bundle,
    id: String,
    pid: i32,
}

impl<'a> Container<'a> {
    /// `<runtime> run -d` of `bundle`.
    fn start(runtime: Runtime, bundle: &'a Bundle) -> anyhow::Result<Container<'a>> {
        let state = tempfile::tempdir()?;
        let id = unique("nvd-test");
        let bundle_arg = bundle
            .dir
            .path()
            .to_str()
            .context("bundle path")?
            .to_owned();
        // The container inherits the runtime's stdio: a pipe would keep
        // `output()` waiting for it to exit, so errors go to a file.
        let log = state.path().join("run.stderr");
        let status = runtime
            .command(state.path())
            .args(["run", "-d", "--bundle", &bundle_arg, &id])
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .status()?;
        ensure!(
            status.success(),
            "{} run: {}",
            runtime.name(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let out = runtime.run(state.path(), &["state", &id])?;
        let st: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let pid = i32::try_from(st["pid"].as_i64().context("state pid")?)?;
        Ok(Container {
            runtime,
            state,
            bundle,
            id,
            pid,
        })
    }

    /// Opens (read-write) a `c major:minor` node made in the container's
    /// `/dev` with `exec`: whether the device cgroup denied it.
    fn denied(&self, major: u32, minor: u32) -> anyhow::Result<bool> {
        let node = format!("/dev/t{major}_{minor}");
        let script =
            format!("{{ test -e {node} || mknod {node} c {major} {minor}; }} && exec 3<>{node}");
        let out = self
            .runtime
            .run(self.state.path(), &["exec", &self.id, "sh", "-c", &script])?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(!err.contains("mknod"), "mknod {node} failed: {err}");
        ensure!(
            out.status.success() || err.contains(&format!("can't create {node}")),
            "{} exec: {err}",
            self.runtime.name()
        );
        Ok(err.contains("Operation not permitted"))
    }

    /// Denied or not, for each of `devices`.
    fn probe(&self, devices: &[(u32, u32)]) -> anyhow::Result<Vec<bool>> {
        devices.iter().map(|&(m, n)| self.denied(m, n)).collect()
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self
            .runtime
            .run(self.state.path(), &["delete", "--force", &self.id]);
    }
}

fn have(runtime: Runtime, test: &str) -> bool {
    if Command::new(runtime.name())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    skip(test, runtime.name());
    false
}

/// Starts a container, allows `c 195:0` with the hook's code, and checks
/// what the container can open before and after: 195:0 denied then allowed;
/// 195:1, tun (10:200) and 42:42 exactly as the runtime left them; for v2,
/// each program the runtime attached is still there, instruction for
/// instruction, behind the allow blocks.
fn check_container(
    runtime: Runtime,
    bundle: &Bundle,
    v2_checks: bool,
) -> anyhow::Result<Vec<bool>> {
    check_container_then(runtime, bundle, v2_checks, |_, _| Ok(()))
}

/// [`check_container`], then `then(container, what it can open now)`.
fn check_container_then(
    runtime: Runtime,
    bundle: &Bundle,
    v2_checks: bool,
    then: impl FnOnce(&Container<'_>, &[bool]) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<bool>> {
    let c = Container::start(runtime, bundle)?;
    let spec_devices = &c.bundle.spec_devices;
    let dev = tempfile::tempdir()?;
    let devices = PROBED;
    let before = c.probe(&devices)?;
    ensure!(
        before[0] && before[1] && !before[2] && before[4],
        "{}: 195:0, 195:1 and 42:42 denied, 1:3 allowed before: {before:?}",
        runtime.name()
    );
    let mut programs = Vec::new();
    if v2_checks {
        let cg = hook::cgroup::find_device_cgroup(&HostPaths::default(), c.pid)?;
        let hook::cgroup::DeviceCgroup::V2(dir) = cg else {
            bail!("expected a v2 cgroup, got {cg:?}")
        };
        programs = attached(&dir)?;
        ensure!(
            !programs.is_empty(),
            "{} attached no device program",
            runtime.name()
        );
        if runtime == Runtime::Runc {
            // The tests' model of runc 1.1 (what the other tests attach).
            let ours = Ruleset::fold(&program::runc_rules(spec_devices)?)?.compile();
            let show = |p: &[bpf::Insn]| {
                p.iter()
                    .map(program::disassemble)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            ensure!(
                programs.len() == 1 && programs[0].1 == ours,
                "runc's program differs from the model:\nrunc:\n{}\nmodel:\n{}",
                show(&programs[0].1),
                show(&ours)
            );
        }
    }
    let planned = [rule(195, 0)];
    allow_devices(&host_paths(dev.path()), c.pid, &planned, spec_devices)?;
    let after = c.probe(&devices)?;
    let mut want = before.clone();
    want[0] = ALLOWED;
    ensure!(
        after == want,
        "{}: after the hook {after:?}, wanted {want:?} (only 195:0 changes)",
        runtime.name()
    );
    if v2_checks {
        let cg = hook::cgroup::find_device_cgroup(&HostPaths::default(), c.pid)?;
        let hook::cgroup::DeviceCgroup::V2(dir) = cg else {
            bail!("expected a v2 cgroup, got {cg:?}")
        };
        let now = attached(&dir)?;
        let (ours, _) = v2::planned_rules(spec_devices, &planned)?;
        ensure!(now.len() == programs.len(), "as many programs as before");
        for (id, insns) in &programs {
            let want = program::prepend_allow(&ours, insns)?;
            ensure!(
                now.iter().any(|(new_id, got)| new_id != id && *got == want),
                "{}'s program {id} is kept behind the allow blocks",
                runtime.name()
            );
        }
    }
    then(&c, &after)?;
    Ok(before)
}

/// The devices [`check_container`] probes.
const PROBED: [(u32, u32); 5] = [(195, 0), (195, 1), (1, 3), (10, 200), (42, 42)];

/// `<runtime> update` with an empty resources document (the runtime applies
/// the container's cgroup configuration again; no controller is needed, and
/// the hybrid host's cgroup2 tree has none), then the same devices as after
/// the hook.
fn update_keeps_the_gpu(c: &Container<'_>, after: &[bool]) -> anyhow::Result<()> {
    let resources = c.state.path().join("resources.json");
    std::fs::write(&resources, "{}")?;
    let resources = resources.to_str().context("state path")?;
    let out = c
        .runtime
        .run(c.state.path(), &["update", "--resources", resources, &c.id])?;
    ensure!(
        out.status.success(),
        "{} update: {}",
        c.runtime.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    let again = c.probe(&PROBED)?;
    ensure!(
        again == after,
        "{}: after update {again:?}, before it {after:?}",
        c.runtime.name()
    );
    Ok(())
}

#[test]
fn runc_v1_container() {
    if !privileged("runc_v1_container") || !have(Runtime::Runc, "runc_v1_container") {
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
    check_container(Runtime::Runc, &bundle, false).unwrap();
}

#[test]
fn runc_v2_container_program_is_kept() {
    const NAME: &str = "runc_v2_container_program_is_kept";
    if !have(Runtime::Runc, NAME) {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        // in_v2_namespace prints the SKIP line (or fails under CI).
        in_v2_namespace(NAME, || Ok(()));
        return;
    }
    let bundle = Bundle::prepare().unwrap();
    in_v2_namespace(NAME, || {
        let before = check_container_then(Runtime::Runc, &bundle, true, update_keeps_the_gpu)?;
        // runc 1.1 allows tun; the hook neither added nor removed it.
        ensure!(!before[3], "runc 1.1 allows tun: {before:?}");
        Ok(())
    });
}

#[test]
fn crun_v2_container_program_is_kept() {
    const NAME: &str = "crun_v2_container_program_is_kept";
    if !have(Runtime::Crun, NAME) {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        in_v2_namespace(NAME, || Ok(()));
        return;
    }
    let bundle = Bundle::prepare().unwrap();
    memlock_shim();
    in_v2_namespace(NAME, || {
        let before = check_container_then(Runtime::Crun, &bundle, true, update_keeps_the_gpu)?;
        // crun's defaults have no tun: it stays denied after the hook
        // (a hook that rebuilt runc's defaults would grant it).
        ensure!(before[3], "crun denies tun: {before:?}");
        Ok(())
    });
}
