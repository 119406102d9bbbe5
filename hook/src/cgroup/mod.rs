//! Allowing the planned devices in a container's device cgroup, v1 or v2,
//! and the host's `/dev/char/M:m` links.
//!
//! [`allow_devices`] runs in the hook process: host PID namespace, root, and
//! the mount namespace of the runtime that called the hook (for runc's
//! prestart hook, runc's own). It is not called when the configuration says
//! `no-cgroups = true` (the caller skips it and plans no device rules), nor
//! does it do anything for an empty plan.
//!
//! # Which cgroup
//!
//! The version is decided the way runc decides it, so that the hook patches
//! whatever runc set up: if `paths.cgroup_root` (`/sys/fs/cgroup`) is a
//! cgroup2 file system (`statfs` magic), it is v2 ("unified mode") and the
//! container's cgroup is the `0::<path>` line of `<procfs>/<pid>/cgroup`;
//! otherwise it is v1 and the container's cgroup is that file's line whose
//! controller list has `devices`. (On a hybrid host both lines exist;
//! `cgroup_root` tells which one runc used. The e2e harness runs runc v2 in a
//! mount namespace where the cgroup2 hierarchy is bind-mounted on
//! `/sys/fs/cgroup`; the hook runs in that namespace and sees the same.)
//!
//! The directory is the hierarchy's mount point plus the cgroup path, minus
//! the mount's root (the fourth field of mountinfo, `/` unless the hierarchy
//! was mounted from inside a cgroup namespace). Mounts are read from
//! `<procfs>/self/mountinfo` (the hook's own view): for v2 the mount at
//! `cgroup_root`; for v1 a `cgroup` mount with the `devices` super option,
//! preferring one under `cgroup_root`. Paths in `/proc/<pid>/cgroup` are
//! relative to the hook's cgroup namespace root, which is the host's.
//!
//! # What is written
//!
//! - v1 ([`v1`]): one `c M:m rw` line per planned rule to `devices.allow`.
//! - v2 ([`v2`]): each device program the runtime attached is replaced by
//!   one that allows the planned devices first and then runs the runtime's
//!   own instructions unchanged ([`program`] says why and how).
//!
//! Then, for every planned device whose node is found under
//! `paths.dev_root`, a `<dev_root>/char/M:m -> ../<node>` link is created if
//! no entry of that name exists (an existing one is never replaced). systemd
//! resolves `DeviceAllow=/dev/char/M:m` through them when it re-applies
//! device rules (NVIDIA/nvidia-container-toolkit#48). A failure there is
//! logged as a warning and does not fail the container.
//!
//! # Errors
//!
//! Failures of a write or a bpf(2) call are leaves that carry the errno (not
//! a chained `#[source]`), so that the one line can end with the remedy:
//! `cannot allow c 195:0 rw in /sys/fs/cgroup/devices/x: devices.allow:
//! Permission denied; on a rootless host set no-cgroups = true`.
#![forbid(unsafe_code)]

pub mod program;
pub mod v1;
pub mod v2;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::LinuxDeviceCgroup;

use crate::config::HostPaths;
use crate::sys::bpf::BpfError;

pub use program::ProgramError;

/// A device cgroup that could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `/proc/<pid>/cgroup` or the mountinfo could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Neither a cgroup2 `cgroup_root` nor a v1 `devices` line.
    #[error(
        "cannot find the device cgroup of process {pid}: {} is not a cgroup2 mount and {} has no \
         devices line; on a host without a device cgroup set no-cgroups = true",
        cgroup_root.display(),
        proc_file.display()
    )]
    NoDeviceCgroup {
        /// The container's pid.
        pid: i32,
        /// `paths.cgroup_root`.
        cgroup_root: PathBuf,
        /// `<procfs>/<pid>/cgroup`.
        proc_file: PathBuf,
    },
    /// `statfs(cgroup_root)` failed.
    #[error("cannot tell the cgroup version")]
    Version {
        /// The cause.
        #[source]
        source: BpfError,
    },
    /// No mount of the hierarchy in the hook's mount namespace.
    #[error("no {hierarchy} hierarchy is mounted (looked in {})", mountinfo.display())]
    NoMount {
        /// `devices` (v1) or `cgroup2`.
        hierarchy: &'static str,
        /// The mountinfo read.
        mountinfo: PathBuf,
    },
    /// The container's cgroup is not below the mount's root.
    #[error(
        "the cgroup {cgroup:?} of process {pid} is not visible under {} (mounted from {root:?})",
        mount.display()
    )]
    NotVisible {
        /// The container's pid.
        pid: i32,
        /// Its cgroup path.
        cgroup: String,
        /// The mount point.
        mount: PathBuf,
        /// The mount's root.
        root: String,
    },
    /// A v1 control file could not be written.
    #[error(
        "cannot allow {rule} in {}: {file}: {}{}",
        cgroup.display(),
        errno.desc(),
        rootless_hint(*errno)
    )]
    V1Write {
        /// The rule line.
        rule: String,
        /// The cgroup directory.
        cgroup: PathBuf,
        /// `devices.allow` or `devices.deny`.
        file: &'static str,
        /// What the kernel said.
        errno: Errno,
    },
    /// The device rules could not be turned into a program.
    #[error("cannot allow {rules} in {}", cgroup.display())]
    Rules {
        /// The planned rules.
        rules: RuleList,
        /// The cgroup directory.
        cgroup: PathBuf,
        /// The cause.
        #[source]
        source: ProgramError,
    },
    /// A v2 step (open, bpf(2)) failed.
    #[error(
        "cannot allow {rules} in {}: {call}: {}{}{}",
        cgroup.display(),
        errno.desc(),
        verifier_log.as_deref().map(|l| format!(" (verifier: {l})")).unwrap_or_default(),
        rootless_hint(*errno)
    )]
    V2 {
        /// The planned rules.
        rules: RuleList,
        /// The cgroup directory.
        cgroup: PathBuf,
        /// The call that failed, with its arguments.
        call: String,
        /// What the kernel said.
        errno: Errno,
        /// The verifier's last lines, for a refused program.
        verifier_log: Option<String>,
    },
}

fn rootless_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EPERM | Errno::EACCES | Errno::EROFS => "; on a rootless host set no-cgroups = true",
        _ => "",
    }
}

/// Planned rules, printed `c 195:0 rw, c 195:255 rw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleList(pub Vec<String>);

impl RuleList {
    fn of(planned: &[rules::DeviceRule]) -> Self {
        RuleList(planned.iter().map(ToString::to_string).collect())
    }
}

impl fmt::Display for RuleList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// Which device cgroup a process is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCgroup {
    /// A v1 `devices` cgroup directory.
    V1(PathBuf),
    /// A cgroup2 directory.
    V2(PathBuf),
}

/// Allows the `planned` devices to the container whose init process is `pid`
/// (module doc: which cgroup, what is written). `spec_rules` is the bundle's
/// `linux.resources.devices` (v2 only: when they already allow every planned
/// access, the runtime's program is left alone). Does nothing for an empty
/// `planned`; the caller does not call it at all with `no-cgroups`.
pub fn allow_devices(
    paths: &HostPaths,
    pid: i32,
    planned: &[rules::DeviceRule],
    spec_rules: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    if planned.is_empty() {
        log::debug!("no device rules planned: device cgroup left alone");
        return Ok(());
    }
    match find_device_cgroup(paths, pid)? {
        DeviceCgroup::V1(dir) => v1::allow(&dir, planned)?,
        DeviceCgroup::V2(dir) => v2::allow(&dir, planned, spec_rules)?,
    }
    create_dev_char_links(&paths.dev_root, planned);
    Ok(())
}

/// Finds the device cgroup of `pid` (module doc).
pub fn find_device_cgroup(paths: &HostPaths, pid: i32) -> Result<DeviceCgroup, CgroupError> {
    let proc_file = paths.procfs.join(pid.to_string()).join("cgroup");
    let text = read(&proc_file)?;
    let lines = parse_proc_cgroup(&text);
    let mountinfo_path = paths.procfs.join("self").join("mountinfo");
    let v2 = crate::sys::bpf::is_cgroup2(&paths.cgroup_root)
        .map_err(|source| CgroupError::Version { source })?;
    if v2 {
        if let Some(line) = lines
            .iter()
            .find(|l| l.hierarchy == 0 && l.controllers.is_empty())
        {
            let mounts = parse_mountinfo(&read(&mountinfo_path)?);
            // The last mount at that point is the visible one.
            let root = mounts
                .iter()
                .rev()
                .find(|m| m.point == paths.cgroup_root && m.fstype == "cgroup2")
                .map_or("/", |m| m.root.as_str());
            let dir = join_cgroup(pid, &paths.cgroup_root, root, &line.path)?;
            return Ok(DeviceCgroup::V2(dir));
        }
    } else if let Some(line) = lines
        .iter()
        .find(|l| l.controllers.iter().any(|c| c == "devices"))
    {
        let mounts = parse_mountinfo(&read(&mountinfo_path)?);
        let candidates: Vec<&Mount> = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == "devices"))
            .collect();
        let mount = candidates
            .iter()
            .rev()
            .find(|m| m.point.starts_with(&paths.cgroup_root))
            .or_else(|| candidates.last())
            .ok_or(CgroupError::NoMount {
                hierarchy: "devices",
                mountinfo: mountinfo_path.clone(),
            })?;
        let dir = join_cgroup(pid, &mount.point, &mount.root, &line.path)?;
        return Ok(DeviceCgroup::V1(dir));
    }
    Err(CgroupError::NoDeviceCgroup {
        pid,
        cgroup_root: paths.cgroup_root.clone(),
        proc_file,
    })
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// `mount point + (cgroup path - mount root)`, refusing `..` and paths
/// outside the mount's root.
fn join_cgroup(pid: i32, mount: &Path, root: &str, cgroup: &str) -> Result<PathBuf, CgroupError> {
    let not_visible = || CgroupError::NotVisible {
        pid,
        cgroup: cgroup.to_owned(),
        mount: mount.to_path_buf(),
        root: root.to_owned(),
    };
    let rel = Path::new(cgroup)
        .strip_prefix(root)
        .map_err(|_| not_visible())?;
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(not_visible());
    }
    Ok(mount.join(rel))
}

/// One line of `/proc/<pid>/cgroup`: `ID:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroupLine {
    /// Hierarchy id (0 for cgroup2).
    pub hierarchy: u32,
    /// Controllers (`devices`, `cpu,cpuacct`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    /// Path relative to the reader's cgroup namespace root.
    pub path: String,
}

/// Parses `/proc/<pid>/cgroup`; malformed lines are skipped.
pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroupLine> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?.parse().ok()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(ProcCgroupLine {
                hierarchy,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The fields of a mountinfo line this module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Root of the mount within its file system (field 4).
    pub root: String,
    /// Mount point (field 5).
    pub point: PathBuf,
    /// File system type.
    pub fstype: String,
    /// Super options (`rw,devices`).
    pub super_options: Vec<String>,
}

/// Parses `/proc/<pid>/mountinfo` (octal escapes decoded); malformed lines
/// are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let super_options = right.next().unwrap_or("");
            Some(Mount {
                root: unescape(left.get(3)?),
                point: PathBuf::from(unescape(left.get(4)?)),
                fstype: unescape(fstype),
                super_options: super_options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Decodes mountinfo's `\NNN` octal escapes (space, tab, newline, `\`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Creates `<dev_root>/char/M:m -> ../<node>` for every planned device whose
/// node is found under `dev_root` (top level, or one level down in a
/// directory whose name starts with `nvidia`, like `nvidia-caps/`), unless
/// an entry of that name exists. Failures are logged, not returned.
pub fn create_dev_char_links(dev_root: &Path, planned: &[rules::DeviceRule]) {
    // The dev root is scanned only when a link is missing: on every start
    // after the first, all exist (udev or an earlier start made them).
    let mut scanned: Option<BTreeMap<u64, PathBuf>> = None;
    let char_dir = dev_root.join("char");
    for rule in planned {
        let rdev = nix::sys::stat::makedev(u64::from(rule.major), u64::from(rule.minor));
        let name = format!("{}:{}", rule.major, rule.minor);
        let link = char_dir.join(&name);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        let nodes = scanned.get_or_insert_with(|| char_nodes(dev_root));
        let Some(node) = nodes.get(&rdev) else {
            log::debug!(
                "no device node {name} under {}: no /dev/char link",
                dev_root.display()
            );
            continue;
        };
        let target = Path::new("..").join(node);
        if let Err(e) = std::fs::create_dir_all(&char_dir) {
            log::warn!("cannot create {}: {e}", char_dir.display());
            return;
        }
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => log::debug!("created {} -> {}", link.display(), target.display()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => log::warn!(
                "cannot create {} -> {}: {e} (systemd may drop the device rule on daemon-reload)",
                link.display(),
                target.display()
            ),
        }
    }
}

/// Character device nodes under `dev_root` by device number, as paths
/// relative to it (first in name order wins).
fn char_nodes(dev_root: &Path) -> BTreeMap<u64, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(dev_root.join(&rel)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            let name = rel.join(entry.file_name());
            if meta.file_type().is_char_device() {
                found.entry(meta.rdev()).or_insert(name);
            } else if meta.is_dir()
                && rel.as_os_str().is_empty()
                && entry.file_name().to_string_lossy().starts_with("nvidia")
            {
                dirs.push(name);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_hybrid() {
        let text = "9:name=systemd:/\n5:devices:/docker/abc\n4:cpu,cpuacct:/x\n0::/e2e-1\n";
        let lines = parse_proc_cgroup(text);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1].controllers, ["devices"]);
        assert_eq!(lines[1].path, "/docker/abc");
        assert_eq!(lines[2].controllers, ["cpu", "cpuacct"]);
        assert!(lines[3].controllers.is_empty());
        assert_eq!(lines[3].hierarchy, 0);
        assert_eq!(lines[3].path, "/e2e-1");
    }

    #[test]
    fn mountinfo_fields_and_escapes() {
        let text = "\
30 25 0:26 / /sys/fs/cgroup/devices rw,relatime shared:9 - cgroup cgroup rw,devices
31 25 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
40 25 0:30 /a\\040b /mnt/with\\040space rw - ext4 /dev/vda rw
bad line
";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].point, Path::new("/sys/fs/cgroup/devices"));
        assert_eq!(m[0].fstype, "cgroup");
        assert_eq!(m[0].super_options, ["rw", "devices"]);
        assert_eq!(m[1].fstype, "cgroup2");
        assert_eq!(m[2].root, "/a b");
        assert_eq!(m[2].point, Path::new("/mnt/with space"));
    }

    #[test]
    fn joining_refuses_escapes() {
        let mount = Path::new("/sys/fs/cgroup/devices");
        assert_eq!(
            join_cgroup(1, mount, "/", "/docker/abc").unwrap(),
            Path::new("/sys/fs/cgroup/devices/docker/abc")
        );
        assert_eq!(
            join_cgroup(1, mount, "/docker", "/docker/abc").unwrap(),
            Path::new("/sys/fs/cgroup/devices/abc")
        );
        assert_eq!(join_cgroup(1, mount, "/", "/").unwrap(), mount);
        let err = join_cgroup(7, mount, "/", "/../../etc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the cgroup \"/../../etc\" of process 7 is not visible under /sys/fs/cgroup/devices (mounted from \"/\")"
        );
        assert!(join_cgroup(7, mount, "/other", "/docker/abc").is_err());
    }

    fn fake_host(proc_cgroup: &str, mountinfo: &str) -> (tempfile::TempDir, HostPaths) {
        let dir = tempfile::tempdir().unwrap();
        let procfs = dir.path().join("proc");
        std::fs::create_dir_all(procfs.join("42")).unwrap();
        std::fs::create_dir_all(procfs.join("self")).unwrap();
        std::fs::write(procfs.join("42/cgroup"), proc_cgroup).unwrap();
        std::fs::write(procfs.join("self/mountinfo"), mountinfo).unwrap();
        let cgroup_root = dir.path().join("cgroup");
        std::fs::create_dir_all(&cgroup_root).unwrap();
        let paths = HostPaths {
            procfs,
            cgroup_root,
            dev_root: dir.path().join("dev"),
            ..HostPaths::default()
        };
        (dir, paths)
    }

    #[test]
    fn v1_is_found_through_mountinfo() {
        let (dir, paths) = fake_host("", "");
        let mountinfo = format!(
            "30 25 0:26 / {}/devices rw - cgroup cgroup rw,devices\n",
            paths.cgroup_root.display()
        );
        std::fs::write(paths.procfs.join("self/mountinfo"), mountinfo).unwrap();
        std::fs::write(paths.procfs.join("42/cgroup"), "5:devices:/runc/c1\n0::/\n").unwrap();
        assert_eq!(
            find_device_cgroup(&paths, 42).unwrap(),
            DeviceCgroup::V1(paths.cgroup_root.join("devices/runc/c1"))
        );
        drop(dir);
    }

    #[test]
    fn no_device_cgroup_is_a_clear_refusal() {
        let (_dir, paths) = fake_host("0::/x\n", "");
        let err = find_device_cgroup(&paths, 42).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot find the device cgroup of process 42: "),
            "{err}"
        );
        assert!(err.ends_with("set no-cgroups = true"), "{err}");
    }

    #[test]
    fn empty_plan_touches_nothing() {
        // No /proc files at all: an empty plan must not even look.
        let paths = HostPaths {
            procfs: PathBuf::from("/nonexistent"),
            ..HostPaths::default()
        };
        allow_devices(&paths, 1, &[], &[]).unwrap();
    }

    #[test]
    fn v1_error_text() {
        let err = CgroupError::V1Write {
            rule: "c 195:0 rw".into(),
            cgroup: PathBuf::from("/sys/fs/cgroup/devices/x"),
            file: "devices.allow",
            errno: Errno::EACCES,
        };
        assert_eq!(
            err.to_string(),
            "cannot allow c 195:0 rw in /sys/fs/cgroup/devices/x: devices.allow: Permission denied; \
             on a rootless host set no-cgroups = true"
        );
        let err = CgroupError::V2 {
            rules: RuleList(vec!["c 195:0 rw".into(), "c 195:255 rw".into()]),
            cgroup: PathBuf::from("/sys/fs/cgroup/x"),
            call: "BPF_PROG_LOAD(insn_cnt=3)".into(),
            errno: Errno::EINVAL,
            verifier_log: Some("last insn is not an exit or jmp".into()),
        };
        assert_eq!(
            err.to_string(),
            "cannot allow c 195:0 rw, c 195:255 rw in /sys/fs/cgroup/x: BPF_PROG_LOAD(insn_cnt=3): \
             Invalid argument (verifier: last insn is not an exit or jmp)"
        );
    }

    #[test]
    fn dev_char_links_are_created_but_never_replaced() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP dev_char_links (mknod needs root)");
            return;
        }
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path();
        std::fs::create_dir(dev.join("nvidia-caps")).unwrap();
        mknod(
            &dev.join("nvidia0"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(195, 0),
        )
        .unwrap();
        mknod(
            &dev.join("nvidiactl"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(195, 255),
        )
        .unwrap();
        mknod(
            &dev.join("nvidia-caps/nvidia-cap1"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o400),
            makedev(237, 1),
        )
        .unwrap();
        std::fs::create_dir(dev.join("char")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", dev.join("char/195:255")).unwrap();
        let rule = |major, minor| rules::DeviceRule {
            allow: true,
            kind: rules::NodeType::Char,
            major,
            minor,
            access: "rw".into(),
        };
        create_dev_char_links(
            dev,
            &[rule(195, 0), rule(195, 255), rule(237, 1), rule(195, 7)],
        );
        assert_eq!(
            std::fs::read_link(dev.join("char/195:0")).unwrap(),
            Path::new("../nvidia0")
        );
        assert_eq!(
            std::fs::read_link(dev.join("char/195:255")).unwrap(),
            Path::new("../elsewhere")
        );
        assert_eq!(
            std::fs::read_link(dev.join("char/237:1")).unwrap(),
            Path::new("../nvidia-caps/nvidia-cap1")
        );
        assert!(dev.join("char/195:7").symlink_metadata().is_err());
    }
}
