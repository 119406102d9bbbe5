//! systemd as PID 1 of a private namespace, for tests that need a real
//! systemd managing cgroups (`runc --systemd-cgroup`, `systemctl
//! daemon-reload`).
//!
//! [`SystemdNs::boot`] puts the test in a new cgroup under the cgroup v2
//! hierarchy, then starts systemd in new mount, PID and cgroup namespaces
//! on a root of its own: a tmpfs holding the host's `/usr` (read-only), a
//! generated `/etc` whose only units are `e2e.target` and a `dbus.service`
//! (both without default dependencies, so nothing of `sysinit.target` runs:
//! no tmpfiles, sysctl or module loading), `/proc`, a read-only `/sys`, a
//! `/dev` with the basic nodes, and a cgroup2 mount rooted at the test's
//! cgroup. Host directories named by the test are bind-mounted at the same
//! paths, so bundles, hooks and the simulated host keep their paths. Dropping
//! it kills systemd (and with it every process of the namespace) and removes
//! the cgroups it left.
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::process::{command, run_timeout, unique_name, Output};

/// How long systemd may take to reach `running`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The script run under `unshare`: `$1` the root, `$2` the console log,
/// then the host directories to bind.
const BOOT: &str = r#"
set -e
R=$1; LOG=$2; shift 2
mount -t tmpfs -o mode=755 tmpfs "$R"
cd "$R"
mkdir -p usr etc run proc sys dev tmp var/lib var/log root
mount --bind /usr usr
mount -o remount,bind,ro usr
ln -s usr/bin bin; ln -s usr/lib lib; ln -s usr/lib64 lib64; ln -s usr/sbin sbin
cp /etc/passwd /etc/group etc/
cp /usr/lib/os-release etc/os-release
: > etc/machine-id
mkdir -p etc/systemd/system
printf '[Unit]\nDescription=e2e\nDefaultDependencies=no\nWants=dbus.service\n' > etc/systemd/system/e2e.target
printf '[Unit]\nDescription=D-Bus for e2e\nDefaultDependencies=no\n[Service]\nType=notify\nRuntimeDirectory=dbus\nExecStart=/usr/bin/dbus-daemon --system --nofork --nopidfile\n' > etc/systemd/system/dbus.service
mount -t proc proc proc
mount --rbind /sys sys
mount -o remount,bind,ro sys
mount -t cgroup2 cgroup2 sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs dev
for n in null zero full random urandom tty; do touch dev/$n; mount --bind /dev/$n dev/$n; done
touch dev/console; mount --bind "$LOG" dev/console
mkdir -p dev/pts dev/shm
for d in "$@"; do mkdir -p "$R$d"; mount --bind "$d" "$R$d"; done
export container=e2e
# pivot_root, not chroot: a process joining a mount namespace (runc exec,
# the hook) gets the namespace's root, which must be this one.
mkdir .old
pivot_root . .old
umount -l /.old
rmdir /.old
exec /usr/lib/systemd/systemd --unit=e2e.target
"#;

/// A running systemd in its own namespaces.
#[derive(Debug)]
pub struct SystemdNs {
    child: Child,
    cgroup: PathBuf,
    dir: tempfile::TempDir,
}

impl SystemdNs {
    /// Boots systemd with `binds` (absolute host directories) visible at
    /// the same paths; waits until `systemctl is-system-running` answers
    /// `running` or `degraded`.
    pub fn boot(binds: &[&Path]) -> anyhow::Result<SystemdNs> {
        let v2 = crate::runc::cgroup2_mount().context("no cgroup v2 hierarchy on this host")?;
        let dir = tempfile::Builder::new()
            .prefix("e2e-systemd-")
            .tempdir()
            .context("cannot create the systemd directory")?;
        let root = dir.path().join("root");
        std::fs::create_dir(&root)?;
        let log = dir.path().join("console.log");
        std::fs::write(&log, "")?;
        let cgroup = v2.join(unique_name("e2e-systemd"));
        std::fs::create_dir(&cgroup)
            .with_context(|| format!("cannot create {}", cgroup.display()))?;
        // The shell moves itself into the cgroup, then unshares: the cgroup
        // namespace is rooted there.
        let mut cmd = command("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec unshare --mount --pid --fork --cgroup --propagation private sh -c "$@""#)
            .arg("sh")
            .arg(&cgroup)
            .arg(BOOT)
            .arg("boot")
            .arg(&root)
            .arg(&log)
            .args(binds)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("boot.log"))?);
        let child = cmd.spawn().context("cannot start unshare")?;
        let ns = SystemdNs { child, cgroup, dir };
        let start = Instant::now();
        loop {
            if let Ok(out) = ns.exec(&["systemctl", "is-system-running"]) {
                let state = out.stdout.trim();
                if state == "running" || state == "degraded" {
                    return Ok(ns);
                }
            }
            if start.elapsed() > BOOT_TIMEOUT {
                bail!(
                    "systemd did not boot in {BOOT_TIMEOUT:?}\nboot log:\n{}\nconsole:\n{}",
                    ns.boot_log(),
                    ns.console()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// systemd's PID (in the host's PID namespace): the child of `unshare`.
    pub fn pid(&self) -> anyhow::Result<u32> {
        let unshare = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))?;
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .context("systemd has not started yet")
    }

    /// Runs `args` inside the namespaces and root of systemd.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<Output> {
        let pid = self.pid()?;
        let root = format!("/proc/{pid}/root");
        let mut cmd = command("nsenter");
        cmd.arg("--target")
            .arg(pid.to_string())
            .args(["--mount", "--pid", "--cgroup"])
            .arg(format!("--root={root}"))
            .arg(format!("--wd={root}"))
            .args(args);
        run_timeout(&mut cmd, Duration::from_secs(60))
    }

    /// What `unshare` and the boot script printed.
    pub fn boot_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("boot.log")).unwrap_or_default()
    }

    /// systemd's console.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

impl Drop for SystemdNs {
    fn drop(&mut self) {
        // SIGKILL to the namespace's PID 1 ends every process in it; the
        // mount namespace goes with them.
        if let Ok(pid) = self.pid() {
            crate::process::signal(pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while remove_cgroup_tree(&self.cgroup).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Removes `dir` and the cgroups below it, deepest first.
fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}
