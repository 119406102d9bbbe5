//! Namespaces: descriptors of a process's namespaces and `setns`.
//!
//! `setns(CLONE_NEWNS)` needs a caller that shares no file-system state
//! with other threads (setns(2): `EINVAL` otherwise) and holds
//! `CAP_SYS_ADMIN` and `CAP_SYS_CHROOT`: the hook calls it only in a forked
//! child ([`super::child`]). Opening `/proc/<pid>/ns/*` of runc's
//! not-yet-dumpable init needs `CAP_SYS_PTRACE`.
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;

use super::fs::{self, FsError};

/// A namespace kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    /// `mnt`.
    Mount,
    /// `user`.
    User,
}

impl NsKind {
    fn name(self) -> &'static str {
        match self {
            NsKind::Mount => "mnt",
            NsKind::User => "user",
        }
    }

    fn flag(self) -> CloneFlags {
        match self {
            NsKind::Mount => CloneFlags::CLONE_NEWNS,
            NsKind::User => CloneFlags::CLONE_NEWUSER,
        }
    }
}

impl fmt::Display for NsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A namespace operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// Opening or inspecting `/proc/<pid>/ns/<kind>`.
    #[error("cannot open the {kind} namespace of {path:?}")]
    Open {
        /// Which namespace.
        kind: NsKind,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: FsError,
    },
    /// `/proc/<pid>` is gone: the container's process exited (or was
    /// killed) while its hooks ran.
    #[error("process {pid} has exited: the container stopped before its GPUs were set up")]
    Exited {
        /// The container's pid.
        pid: i32,
        /// Which namespace was being opened.
        kind: NsKind,
    },
    /// `setresgid`/`setresuid` to 0 in a joined user namespace.
    #[error("cannot become root of the container's user namespace ({call})")]
    BecomeRoot {
        /// Which call.
        call: &'static str,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `setns(fd, CLONE_NEW*)`.
    #[error("setns(fd {fd}, {kind})")]
    Setns {
        /// The namespace descriptor.
        fd: RawFd,
        /// Which namespace.
        kind: NsKind,
        /// The cause.
        #[source]
        source: Errno,
    },
}

/// A held namespace descriptor and its identity (`st_dev`, `st_ino`).
#[derive(Debug)]
pub struct Namespace {
    /// The kind.
    pub kind: NsKind,
    fd: OwnedFd,
    id: (u64, u64),
}

impl Namespace {
    /// Opens `<proc>/<pid>/ns/<kind>` (`pid` `None`: `self`). `proc` is the
    /// real procfs of the hook's pid namespace (`/proc`), not the simulated
    /// host's proc root.
    pub fn open(proc: &std::path::Path, pid: Option<i32>, kind: NsKind) -> Result<Self, NsError> {
        let who = pid.map_or_else(|| "self".to_owned(), |p| p.to_string());
        let path = proc.join(who).join("ns").join(kind.name());
        let err = |source| NsError::Open {
            kind,
            path: path.clone(),
            source,
        };
        let fd = fs::open_host(&path, OFlag::O_RDONLY).map_err(|e| match (pid, e.errno()) {
            (Some(pid), Errno::ENOENT | Errno::ESRCH) => NsError::Exited { pid, kind },
            _ => err(e),
        })?;
        let st = fs::fstat(&fd).map_err(err)?;
        #[allow(clippy::useless_conversion)] // dev_t/ino_t widths differ by target
        let id = (u64::from(st.st_dev), u64::from(st.st_ino));
        Ok(Namespace { kind, fd, id })
    }

    /// True when both descriptors name the same namespace.
    pub fn same_as(&self, other: &Namespace) -> bool {
        self.kind == other.kind && self.id == other.id
    }

    /// Joins it (`setns`). For a mount namespace the caller's root and
    /// working directory become the namespace's root.
    pub fn enter(&self) -> Result<(), NsError> {
        nix::sched::setns(self.fd.as_fd(), self.kind.flag()).map_err(|source| NsError::Setns {
            fd: self.fd.as_raw_fd(),
            kind: self.kind,
            source,
        })
    }
}

/// After joining a user namespace: take its uid and gid 0 (the container's
/// root) as real, effective, saved and file-system ids, so that files the
/// caller creates belong to the container's root and are representable in
/// its file systems (an unmapped owner makes creation fail with
/// `EOVERFLOW`). Capabilities in the namespace are kept (the new ids are
/// its root). Supplementary groups are left alone (`setgroups` may be
/// denied in the namespace).
pub fn become_root() -> Result<(), NsError> {
    let zero_g = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(zero_g, zero_g, zero_g).map_err(|source| NsError::BecomeRoot {
        call: "setresgid(0, 0, 0)",
        source,
    })?;
    let zero_u = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(zero_u, zero_u, zero_u).map_err(|source| NsError::BecomeRoot {
        call: "setresuid(0, 0, 0)",
        source,
    })
}

#[cfg(test)]
mod exited_tests {
    use super::*;

    #[test]
    fn a_gone_process_is_said_so() {
        let proc = tempfile::tempdir().unwrap();
        let err = Namespace::open(proc.path(), Some(4242), NsKind::Mount).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process 4242 has exited: the container stopped before its GPUs were set up"
        );
    }
}
