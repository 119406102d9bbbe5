//! Prerequisites of privileged tests: skip locally, fail under CI.
//!
//! A test that needs root, runc, dockerd, podman or a cgroup version starts
//! with [`require!`](crate::require) (or [`require_all`]). When something is
//! missing and the environment variable `CI` is set, the test fails with what
//! is missing and how to get it; otherwise it prints
//! `SKIP <test>: <why>` to stderr and returns, so that a developer's machine
//! without the tools still passes. Nothing is ever skipped silently under CI.
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::process::which;

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prereq {
    /// An effective uid of 0.
    Root,
    /// `runc` on PATH, and root.
    Runc,
    /// `crun` and `gcc` (for `fixtures::crun`'s shim) on PATH, and root.
    Crun,
    /// `dockerd`, `docker` and `containerd` on PATH, and root.
    Dockerd,
    /// `podman` and `conmon`, and root.
    Podman,
    /// `containerd` (with its CRI plugin), its runc shim, `ctr`, runc, and root.
    Containerd,
    /// The cgroup v1 devices controller at `/sys/fs/cgroup/devices`.
    CgroupV1,
    /// A cgroup2 file system (at `/sys/fs/cgroup`, or elsewhere plus
    /// `unshare` to put it there in a private mount namespace).
    CgroupV2,
    /// Any program on PATH (`gcc`, `wrk`, ...), named.
    Tool(&'static str),
}

impl fmt::Display for Prereq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prereq::Root => f.write_str("root"),
            Prereq::Runc => f.write_str("runc"),
            Prereq::Crun => f.write_str("crun"),
            Prereq::Dockerd => f.write_str("dockerd"),
            Prereq::Podman => f.write_str("podman"),
            Prereq::Containerd => f.write_str("containerd"),
            Prereq::CgroupV1 => f.write_str("cgroup v1"),
            Prereq::CgroupV2 => f.write_str("cgroup v2"),
            Prereq::Tool(t) => f.write_str(t),
        }
    }
}

impl Prereq {
    /// `Err(why it is missing and what to do)` when it is missing.
    pub fn check(self) -> Result<(), String> {
        const INSTALL: &str = "install it with scripts/install-deps";
        match self {
            Prereq::Root => {
                if is_root() {
                    Ok(())
                } else {
                    Err("not running as root; run the tests as root (CI runs `bash .ci/run` as root)".into())
                }
            }
            Prereq::Runc => {
                Prereq::Root.check()?;
                tools(&["runc"], INSTALL)
            }
            Prereq::Crun => {
                Prereq::Root.check()?;
                tools(&["crun", "gcc"], INSTALL)
            }
            Prereq::Dockerd => {
                Prereq::Root.check()?;
                tools(
                    &[
                        "dockerd",
                        "docker",
                        "containerd",
                        "containerd-shim-runc-v2",
                        "runc",
                    ],
                    "install docker.io with scripts/install-deps",
                )
            }
            Prereq::Podman => {
                Prereq::Root.check()?;
                tools(&["podman", "runc"], INSTALL)?;
                conmon()
                    .map(drop)
                    .ok_or_else(|| format!("conmon not found; {INSTALL}"))
            }
            Prereq::Containerd => {
                Prereq::Root.check()?;
                tools(
                    &[
                        "containerd",
                        "containerd-shim-runc-v2",
                        "ctr",
                        "runc",
                        "tar",
                        "sha256sum",
                    ],
                    "install containerd with scripts/install-deps",
                )
            }
            Prereq::CgroupV1 => {
                if crate::mounts::fs_type_at(Path::new("/sys/fs/cgroup/devices")).as_deref()
                    == Some("cgroup")
                {
                    Ok(())
                } else {
                    Err("no cgroup v1 devices controller at /sys/fs/cgroup/devices (this machine is cgroup v2 only); \
                         run on a host booted with a hybrid or legacy cgroup layout"
                        .into())
                }
            }
            Prereq::CgroupV2 => match crate::runc::cgroup2_mount() {
                None => Err(
                    "no cgroup2 file system is mounted; mount one (e.g. at /sys/fs/cgroup/unified)"
                        .into(),
                ),
                Some(p) if p != Path::new("/sys/fs/cgroup") && which("unshare").is_none() => {
                    Err(format!(
                        "cgroup2 is at {} and `unshare` (util-linux) is missing; {INSTALL}",
                        p.display()
                    ))
                }
                Some(_) => Ok(()),
            },
            Prereq::Tool(t) => tools(&[t], INSTALL),
        }
    }
}

fn tools(names: &[&str], remedy: &str) -> Result<(), String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| which(n).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} not found on PATH; {remedy}",
            missing.join(", ")
        ))
    }
}

/// Podman's monitor (Debian puts it in /usr/libexec/podman).
fn conmon() -> Option<PathBuf> {
    which("conmon").or_else(|| {
        [
            "/usr/libexec/podman/conmon",
            "/usr/bin/conmon",
            "/usr/local/libexec/podman/conmon",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    })
}

/// Whether the effective uid is 0 (from /proc/self/status: no unsafe needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Whether the environment variable `CI` is set (to anything but empty,
/// `0` or `false`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// Checks `prereqs`. All present: `true`. Some missing: under CI this panics
/// ("CI requires runc: ..."); otherwise it prints `SKIP <test>: ...` to stderr
/// and returns `false`, and the test should return early (passing).
#[track_caller]
pub fn require_all(prereqs: &[Prereq]) -> bool {
    let missing: Vec<String> = prereqs
        .iter()
        .filter_map(|p| p.check().err().map(|why| format!("{p}: {why}")))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if under_ci() {
        panic!("CI requires {}", missing.join("; CI requires "));
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<test>");
    // Straight to fd 2: libtest captures `eprintln!` of passing tests, and a
    // skip must be visible in a normal run.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: needs {}",
        missing.join("; needs ")
    );
    false
}

/// [`require_all`] for one prerequisite.
#[track_caller]
pub fn require(prereq: Prereq) -> bool {
    require_all(&[prereq])
}

/// Returns from the calling test (with `()`) unless every prerequisite is
/// present; see [`require_all`]:
/// `require!(Prereq::Runc, CgroupVersion::V2.prereq())`.
#[macro_export]
macro_rules! require {
    ($($p:expr),+ $(,)?) => {
        if !$crate::prereq::require_all(&[$($p),+]) {
            return;
        }
    };
}
