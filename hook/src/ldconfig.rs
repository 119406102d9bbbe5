//! Refreshing a container's linker cache with the host's `ldconfig`, run in
//! a locked-down child, never the image's (CVE-2024-0136 class: an
//! image-planted `/sbin/ldconfig` would run with host privileges).
//!
//! [`refresh`] runs in the hook process (host namespaces, root), before the
//! container's `pivot_root`:
//!
//! 1. **On the host**: `paths.ldconfig` is opened (`O_RDONLY|O_CLOEXEC`) and
//!    read; it must be a *static* ELF executable (Debian's `/sbin/ldconfig`,
//!    Ubuntu's `/sbin/ldconfig.real`), because after `chroot` a dynamic one
//!    would load the image's `ld.so` and libc with host privileges; a script
//!    or a dynamic binary is refused with a line saying so. The bytes go
//!    into a sealed memfd (`F_SEAL_WRITE|GROW|SHRINK|SEAL`), which is what
//!    is executed: nothing on a path can be swapped in between (where
//!    `vm.memfd_noexec = 2` forbids executing memfds, the descriptor opened
//!    on the host file is executed instead). The
//!    container's mount namespace (`<procfs>/<pid>/ns/mnt`) is opened.
//! 2. **In a forked child** (`sys::child::run_in_child`, killed after
//!    [`TIMEOUT`]): for a container with its own user namespace, `setns`
//!    into it and become its root first (so `ldconfig` never runs as the
//!    host's root for such a container); `setns` into the mount namespace; `unshare` mount, IPC and
//!    PID namespaces; every mount made private; `chroot(rootfs)` and
//!    `chdir("/")`. `rootfs` is trusted: it is the bundle's root as seen in
//!    the container's mount namespace before `pivot_root`. Once inside,
//!    links resolve within the root by construction. If `/etc/ld.so.conf`
//!    does not exist (static and musl images), the step ends here: `Ok`,
//!    with a debug log line.
//! 3. **In its child**, pid 1 of the new PID namespace (killed if its
//!    parent dies): stdin is an empty pipe, stdout and stderr a pipe read by
//!    its parent; resource limits ([`LIMITS`]); capabilities cut to
//!    `CAP_DAC_OVERRIDE` (bounding set included; root-owned files in the
//!    image may be read-only to their owner), ambient and inheritable sets
//!    emptied; `no_new_privs`; every descriptor above 2 close-on-exec; then
//!    `fexecve(memfd, ["ldconfig", "-f", "/etc/ld.so.conf", "-C",
//!    "/etc/ld.so.cache", <dirs>...], [])` with an **empty environment**, so
//!    neither the image's nor the hook's `LD_PRELOAD` (CVE-2025-23266) or
//!    anything else reaches it.
//!
//! The plan's `dirs` are passed as arguments: Debian's `ldconfig` does not
//! treat `/usr/lib64` as a trusted directory, so a lib64-style image would
//! otherwise not get the driver libraries cached.
//!
//! Files `ldconfig` creates are owned by the container's root (the host's
//! root for a container without a user namespace).
//!
//! Errors are one line naming the step and, when `ldconfig` itself failed,
//! what it printed: `cannot refresh the linker cache in /run/b/rootfs:
//! ldconfig exited with status 1: ldconfig: Can't create temporary cache
//! file /etc/ld.so.cache~: Read-only file system`.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::fmt;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use crate::config::HostPaths;
use crate::sys::child::{run_in_child, ChildError};
use crate::sys::ns::{Namespace, NsKind};
use crate::sys::process::{self, ProcessError};

/// Longest the whole step may take before the child is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Largest `ldconfig` binary read (Debian's is about 1 MiB).
const MAX_BINARY: u64 = 64 << 20;

/// Most of `ldconfig`'s output kept for an error message.
const MAX_OUTPUT: usize = 4096;

/// Exit status of the exec'ing child when it failed before the exec.
const SETUP_FAILED: i32 = 126;

/// Resource limits `(resource, soft, hard)` of the exec'd `ldconfig`.
///
/// - CPU 10 s soft (`SIGXCPU`), 11 s hard: it normally needs well under a
///   second; the wall-clock [`TIMEOUT`] bounds it too.
/// - Address space 4 GiB: glibc's `ldconfig` (2.36) maps each library whole
///   while reading its headers, and single CUDA libraries approach 1 GiB.
/// - 64 descriptors: it holds a directory stream and a file or two.
/// - Files up to 64 MiB: `ld.so.cache` is kilobytes to a few megabytes.
pub const LIMITS: [(Resource, u64, u64); 4] = [
    (Resource::RLIMIT_CPU, 10, 11),
    (Resource::RLIMIT_AS, 4 << 30, 4 << 30),
    (Resource::RLIMIT_NOFILE, 64, 64),
    (Resource::RLIMIT_FSIZE, 64 << 20, 64 << 20),
];

/// The linker cache could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum LdconfigError {
    /// The host's `ldconfig` could not be opened or read.
    #[error("cannot read the host's ldconfig {}", path.display())]
    ReadBinary {
        /// `paths.ldconfig`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host's `ldconfig` is not a static executable.
    #[error(
        "the host's ldconfig {} {why}: it would run the image's loader inside the container; \
         set ldconfig to the static binary (Ubuntu: /sbin/ldconfig.real)",
        path.display()
    )]
    NotStatic {
        /// `paths.ldconfig`.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// The memfd for the binary could not be made.
    #[error("cannot copy the host's ldconfig {} into a sealed memfd", path.display())]
    Memfd {
        /// `paths.ldconfig`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ProcessError,
    },
    /// The container's mount namespace could not be opened.
    #[error("cannot open the mount namespace of process {pid} ({})", path.display())]
    Namespace {
        /// The container's pid.
        pid: i32,
        /// `<procfs>/<pid>/ns/mnt`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The container root could not be opened.
    #[error(transparent)]
    Root(#[from] crate::apply::root::RootError),
    /// The image's `ld.so.conf` would hold or break `ldconfig`.
    #[error(transparent)]
    Conf(#[from] crate::ldconfig_conf::ConfError),
    /// The container's user namespace could not be opened.
    #[error("cannot open the user namespace of process {pid}")]
    UserNamespace {
        /// The container's pid.
        pid: i32,
        /// The cause.
        #[source]
        source: crate::sys::ns::NsError,
    },
    /// A path argument holds a NUL byte.
    #[error("cannot pass {arg:?} to ldconfig: it contains a NUL byte")]
    Argument {
        /// The argument.
        arg: String,
    },
    /// The child failed (its step and `ldconfig`'s output are in the
    /// source's text) or ran past [`TIMEOUT`].
    #[error("cannot refresh the linker cache in {}", rootfs.display())]
    Run {
        /// The container root.
        rootfs: PathBuf,
        /// What the child reported.
        #[source]
        source: ChildError,
    },
}

/// Runs the host's `ldconfig` inside the container root `rootfs` of the
/// container whose init process is `pid`, with the plan's library `dirs`
/// (module doc for every step). `Ok` also when the image has no
/// `/etc/ld.so.conf` (nothing to refresh).
pub fn refresh(
    paths: &HostPaths,
    pid: i32,
    rootfs: &Path,
    dirs: &[rules::ContainerPath],
) -> Result<(), LdconfigError> {
    refresh_within(paths, pid, rootfs, dirs, TIMEOUT)
}

/// [`refresh`] with the child killed after `timeout` (what is left of the
/// hook's deadline: [`crate::deadline`]).
pub fn refresh_within(
    paths: &HostPaths,
    pid: i32,
    rootfs: &Path,
    dirs: &[rules::ContainerPath],
    timeout: Duration,
) -> Result<(), LdconfigError> {
    // The image's configuration first: a FIFO or an include loop would
    // hold ldconfig until its limits (issue 13, finding 4).
    let root = crate::apply::root::ContainerRoot::open(rootfs)?;
    crate::ldconfig_conf::check(&root)?;
    drop(root);
    let (file, binary) = read_binary(&paths.ldconfig)?;
    if let Some(why) = not_static(&binary) {
        return Err(LdconfigError::NotStatic {
            path: paths.ldconfig.clone(),
            why,
        });
    }
    let exe: OwnedFd = match process::sealed_memfd(c"ldconfig", &binary) {
        Ok(memfd) => memfd,
        // `vm.memfd_noexec = 2` forbids executable memfds: run the host
        // file through the descriptor opened above instead.
        Err(e) if e.errno == nix::errno::Errno::EACCES => {
            log::debug!("{e}: executing {} by descriptor", paths.ldconfig.display());
            file.into()
        }
        Err(source) => {
            return Err(LdconfigError::Memfd {
                path: paths.ldconfig.clone(),
                source,
            })
        }
    };
    drop(binary);
    let ns_path = paths.procfs.join(pid.to_string()).join("ns").join("mnt");
    let mnt_ns: OwnedFd = std::fs::File::open(&ns_path)
        .map_err(|source| LdconfigError::Namespace {
            pid,
            path: ns_path.clone(),
            source,
        })?
        .into();
    // A user-namespaced container: ldconfig runs as that namespace's root
    // (issue 13, finding 3), never as the host's.
    let proc = paths.procfs.as_path();
    let user = Namespace::open(proc, Some(pid), NsKind::User)
        .map_err(|source| LdconfigError::UserNamespace { pid, source })?;
    let own = Namespace::open(proc, None, NsKind::User)
        .map_err(|source| LdconfigError::UserNamespace { pid, source })?;
    let user = (!user.same_as(&own)).then_some(user);
    let argv = argv(dirs)?;
    let root = rootfs.to_path_buf();
    log::debug!(
        "running the host's ldconfig {} in {} (pid {pid}): {:?}",
        paths.ldconfig.display(),
        rootfs.display(),
        argv
    );
    run_in_child("ldconfig", timeout, || {
        in_child(user.as_ref(), &mnt_ns, &root, &exe, &argv)
    })
    .map_err(|source| LdconfigError::Run {
        rootfs: rootfs.to_path_buf(),
        source,
    })
}

/// Opens and reads `path`: the open file and its bytes.
fn read_binary(path: &Path) -> Result<(std::fs::File, Vec<u8>), LdconfigError> {
    let fail = |source| LdconfigError::ReadBinary {
        path: path.to_path_buf(),
        source,
    };
    // std opens with O_CLOEXEC.
    let file = std::fs::File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&file)
        .take(MAX_BINARY)
        .read_to_end(&mut data)
        .map_err(fail)?;
    Ok((file, data))
}

/// `None` for a static ELF executable; otherwise what it is.
pub fn not_static(data: &[u8]) -> Option<String> {
    use object::elf::{FileHeader32, FileHeader64};
    use object::Endianness;
    match object::FileKind::parse(data) {
        Ok(object::FileKind::Elf64) => elf_not_static::<FileHeader64<Endianness>>(data),
        Ok(object::FileKind::Elf32) => elf_not_static::<FileHeader32<Endianness>>(data),
        _ if data.starts_with(b"#!") => Some("is a script".to_owned()),
        _ => Some("is not an ELF executable".to_owned()),
    }
}

fn elf_not_static<H>(data: &[u8]) -> Option<String>
where
    H: object::read::elf::FileHeader<Endian = object::Endianness>,
{
    use object::read::elf::ProgramHeader;
    let Ok(header) = H::parse(data) else {
        return Some("is a malformed ELF file".to_owned());
    };
    let Ok(endian) = header.endian() else {
        return Some("is a malformed ELF file".to_owned());
    };
    let e_type = header.e_type(endian);
    if e_type != object::elf::ET_EXEC && e_type != object::elf::ET_DYN {
        return Some("is not an ELF executable".to_owned());
    }
    let Ok(headers) = header.program_headers(endian, data) else {
        return Some("is a malformed ELF file".to_owned());
    };
    for ph in headers {
        if let Ok(Some(interp)) = ph.interpreter(endian, data) {
            return Some(format!(
                "is dynamically linked (interpreter {})",
                String::from_utf8_lossy(interp)
            ));
        }
    }
    None
}

/// `["ldconfig", "-f", "/etc/ld.so.conf", "-C", "/etc/ld.so.cache", dirs...]`.
pub fn argv(dirs: &[rules::ContainerPath]) -> Result<Vec<CString>, LdconfigError> {
    [
        "ldconfig",
        "-f",
        "/etc/ld.so.conf",
        "-C",
        "/etc/ld.so.cache",
    ]
    .into_iter()
    .chain(dirs.iter().map(|d| d.as_str()))
    .map(|a| CString::new(a).map_err(|_| LdconfigError::Argument { arg: a.to_owned() }))
    .collect()
}

/// What went wrong in the child, as the one line sent back to the hook.
#[derive(Debug)]
enum InChild {
    /// A setup call failed.
    Step(ProcessError),
    /// The exec'ing child could not get as far as `ldconfig`.
    Setup(String),
    /// `ldconfig` exited non-zero.
    Exit { code: i32, output: String },
    /// `ldconfig` was killed.
    Signal { signal: Signal, output: String },
}

fn with_output(f: &mut fmt::Formatter<'_>, output: &str) -> fmt::Result {
    if output.is_empty() {
        Ok(())
    } else {
        write!(f, ": {output}")
    }
}

impl fmt::Display for InChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InChild::Step(e) => write!(f, "{e}"),
            InChild::Setup(message) => write!(f, "before exec of ldconfig: {message}"),
            InChild::Exit { code, output } => {
                write!(f, "ldconfig exited with status {code}")?;
                with_output(f, output)
            }
            InChild::Signal { signal, output } => {
                let why = match signal {
                    Signal::SIGXCPU | Signal::SIGKILL => " (CPU limit 10 s?)",
                    _ => "",
                };
                write!(f, "ldconfig was killed by {signal}{why}")?;
                with_output(f, output)
            }
        }
    }
}

impl From<ProcessError> for InChild {
    fn from(e: ProcessError) -> Self {
        InChild::Step(e)
    }
}

/// Runs in the forked child: enter, isolate, chroot, then fork the process
/// that execs `ldconfig` and report how it ended.
fn in_child(
    user_ns: Option<&Namespace>,
    mnt_ns: &OwnedFd,
    rootfs: &Path,
    exe: &OwnedFd,
    argv: &[CString],
) -> Result<(), InChild> {
    if let Some(user) = user_ns {
        user.enter()
            .and_then(|()| crate::sys::ns::become_root())
            .map_err(|e| {
                InChild::Setup(format!("cannot enter the container's user namespace: {e}"))
            })?;
    }
    process::enter_mount_namespace(mnt_ns.as_fd())?;
    process::unshare(
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID,
    )?;
    process::make_mounts_private()?;
    process::chroot(rootfs)?;
    // After chroot, this cannot leave the root, whatever links it meets.
    if !Path::new("/etc/ld.so.conf").exists() {
        log::debug!(
            "{} has no /etc/ld.so.conf (static or musl image): ldconfig skipped",
            rootfs.display()
        );
        return Ok(());
    }
    let (stdin_r, stdin_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| ProcessError {
            call: "pipe2(O_CLOEXEC)".to_owned(),
            errno,
        })?;
    drop(stdin_w);
    let (out_r, out_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| ProcessError {
            call: "pipe2(O_CLOEXEC)".to_owned(),
            errno,
        })?;
    let child = process::fork(|| match exec_ldconfig(&stdin_r, &out_w, exe, argv) {
        Ok(never) => match never {},
        Err(e) => {
            process::write_stderr(&e.to_string());
            SETUP_FAILED
        }
    })?;
    drop(out_w);
    drop(stdin_r);
    let output = read_output(out_r);
    match process::wait(child)? {
        WaitStatus::Exited(_, 0) => {
            if !output.is_empty() {
                log::debug!("ldconfig in {}: {output}", rootfs.display());
            }
            Ok(())
        }
        WaitStatus::Exited(_, SETUP_FAILED) => Err(InChild::Setup(output)),
        WaitStatus::Exited(_, code) => Err(InChild::Exit { code, output }),
        WaitStatus::Signaled(_, signal, _) => Err(InChild::Signal { signal, output }),
        other => Err(InChild::Setup(format!("unexpected wait status {other:?}"))),
    }
}

/// Reads the pipe to its end (all writers gone), keeping the first
/// [`MAX_OUTPUT`] bytes, as one line.
fn read_output(pipe: OwnedFd) -> String {
    let mut file = std::fs::File::from(pipe);
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&kept)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs in pid 1 of the new PID namespace: lock down and exec.
fn exec_ldconfig(
    stdin: &OwnedFd,
    out: &OwnedFd,
    exe: &OwnedFd,
    argv: &[CString],
) -> Result<std::convert::Infallible, ProcessError> {
    process::set_parent_death_signal(Signal::SIGKILL)?;
    process::dup_onto(stdin.as_fd(), 0)?;
    process::dup_onto(out.as_fd(), 1)?;
    process::dup_onto(out.as_fd(), 2)?;
    for (resource, soft, hard) in LIMITS {
        process::set_rlimit(resource, soft, hard)?;
    }
    process::restrict_capabilities(&[caps::Capability::CAP_DAC_OVERRIDE])?;
    process::set_no_new_privs()?;
    process::cloexec_from(3)?;
    let env: [CString; 0] = [];
    Err(process::exec_fd(exe.as_fd(), argv, &env))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[test]
    fn argv_has_the_plan_dirs() {
        let dirs = [
            rules::ContainerPath::new("/usr/lib64").unwrap(),
            rules::ContainerPath::new("/usr/local/cuda/compat").unwrap(),
        ];
        let argv = argv(&dirs).unwrap();
        let argv: Vec<&str> = argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            argv,
            [
                "ldconfig",
                "-f",
                "/etc/ld.so.conf",
                "-C",
                "/etc/ld.so.cache",
                "/usr/lib64",
                "/usr/local/cuda/compat"
            ]
        );
    }

    #[test]
    fn static_dynamic_and_scripts() {
        let host = std::fs::read("/sbin/ldconfig").ok();
        if let Some(host) = host {
            // Debian's and Ubuntu's ldconfig(.real) are static.
            if Path::new("/etc/debian_version").exists() && !host.starts_with(b"#!") {
                assert_eq!(not_static(&host), None);
            }
        }
        let exe = fixtures::elf::executable(fixtures::elf::Arch::X86_64, "hi").unwrap();
        assert_eq!(not_static(&exe), None);
        assert_eq!(
            not_static(b"#!/bin/sh\nexec true\n").as_deref(),
            Some("is a script")
        );
        assert_eq!(
            not_static(b"\0\0\0\0").as_deref(),
            Some("is not an ELF executable")
        );
        if let Ok(dynamic) = std::fs::read("/bin/true") {
            let why = not_static(&dynamic).unwrap();
            assert!(
                why.starts_with("is dynamically linked (interpreter /lib"),
                "{why}"
            );
        }
    }

    #[test]
    fn child_error_lines() {
        let e = InChild::Exit {
            code: 1,
            output: "ldconfig: Can't create temporary cache file /etc/ld.so.cache~: Read-only file system".into(),
        };
        assert_eq!(
            e.to_string(),
            "ldconfig exited with status 1: ldconfig: Can't create temporary cache file \
             /etc/ld.so.cache~: Read-only file system"
        );
        let e = InChild::Step(ProcessError {
            call: "chroot(\"/x\")".into(),
            errno: Errno::ENOENT,
        });
        assert_eq!(e.to_string(), "chroot(\"/x\"): No such file or directory");
        let e = InChild::Signal {
            signal: Signal::SIGXCPU,
            output: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "ldconfig was killed by SIGXCPU (CPU limit 10 s?)"
        );
    }
}
