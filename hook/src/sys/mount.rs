//! The new mount API (Linux 5.2+, `mount_setattr` 5.12+): mounts made from
//! and onto descriptors, never from path strings.
//!
//! A bind source is cloned with [`clone_tree`] while the hook is still in the
//! host's mount namespace, its flags are set on the detached clone
//! ([`set_attrs`]), and it is attached in the container's namespace with
//! [`attach`]: the mount never exists writable, and nothing is resolved by
//! name at mount time.
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;

// Flags from <linux/mount.h> (stable kernel ABI).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x01;
const MOUNT_ATTR_NOSUID: u64 = 0x02;
const MOUNT_ATTR_NODEV: u64 = 0x04;
const MOUNT_ATTR_NOEXEC: u64 = 0x08;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// `struct mount_attr` (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Per-mount flags, as `mount_setattr` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attrs {
    /// `ro`.
    pub read_only: bool,
    /// `nosuid`.
    pub nosuid: bool,
    /// `nodev`.
    pub nodev: bool,
    /// `noexec`.
    pub noexec: bool,
    /// `nosymfollow`.
    pub nosymfollow: bool,
}

impl Attrs {
    fn bits(self) -> u64 {
        let mut b = 0;
        if self.read_only {
            b |= MOUNT_ATTR_RDONLY;
        }
        if self.nosuid {
            b |= MOUNT_ATTR_NOSUID;
        }
        if self.nodev {
            b |= MOUNT_ATTR_NODEV;
        }
        if self.noexec {
            b |= MOUNT_ATTR_NOEXEC;
        }
        if self.nosymfollow {
            b |= MOUNT_ATTR_NOSYMFOLLOW;
        }
        b
    }
}

/// A mount syscall that failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH)`.
    #[error("open_tree(fd {fd} = {unsafe_path:?}, OPEN_TREE_CLONE)")]
    OpenTree {
        /// The source descriptor.
        fd: RawFd,
        /// The source, as the caller named it (for messages only).
        unsafe_path: PathBuf,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `mount_setattr(fd, "", AT_EMPTY_PATH, ...)`.
    #[error("mount_setattr(fd {fd}, {attrs:?}, MS_PRIVATE)")]
    SetAttr {
        /// The mount's descriptor.
        fd: RawFd,
        /// The flags set.
        attrs: Attrs,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`.
    #[error("move_mount(fd {from}, fd {to})")]
    MoveMount {
        /// The detached mount.
        from: RawFd,
        /// The mount point.
        to: RawFd,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `fsopen`/`fsconfig`/`fsmount` of a tmpfs.
    #[error("{call} of a tmpfs ({options})")]
    Tmpfs {
        /// Which call.
        call: &'static str,
        /// The options given.
        options: String,
        /// The cause.
        #[source]
        source: Errno,
    },
}

impl MountError {
    /// The errno behind the failure.
    pub fn errno(&self) -> Errno {
        match self {
            MountError::OpenTree { source, .. }
            | MountError::SetAttr { source, .. }
            | MountError::MoveMount { source, .. }
            | MountError::Tmpfs { source, .. } => *source,
        }
    }
}

fn cvt_fd(rc: libc::c_long) -> Result<OwnedFd, Errno> {
    if rc < 0 {
        return Err(Errno::last());
    }
    let fd = RawFd::try_from(rc).map_err(|_| Errno::EBADF)?;
    // SAFETY: the syscall returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A detached copy of the mount at `source` (a descriptor of the file or
/// directory to bind, opened by the caller, normally `O_PATH`): what
/// `mount --bind` would attach. With `recursive`, submounts come too.
/// `unsafe_path` only names the source in errors.
pub fn clone_tree(
    source: &impl AsFd,
    recursive: bool,
    unsafe_path: PathBuf,
) -> Result<OwnedFd, MountError> {
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let fd = source.as_fd().as_raw_fd();
    // SAFETY: open_tree(int dfd, const char *path, unsigned flags); the path
    // is a static empty C string, the descriptor is borrowed for the call.
    let rc = unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) };
    cvt_fd(rc).map_err(|source| MountError::OpenTree {
        fd,
        unsafe_path,
        source,
    })
}

/// Sets `attrs` on the mount behind `mount` (detached or attached; not its
/// submounts) and makes it private, so that nothing mounted later under it
/// propagates anywhere.
pub fn set_attrs(mount: &impl AsFd, attrs: Attrs) -> Result<(), MountError> {
    let attr = MountAttr {
        attr_set: attrs.bits(),
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    let fd = mount.as_fd().as_raw_fd();
    // SAFETY: mount_setattr(int dfd, const char *path, unsigned flags,
    // struct mount_attr *attr, size_t size); `attr` is a live, correctly
    // sized repr(C) struct and the path a static empty C string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(MountError::SetAttr {
            fd,
            attrs,
            source: Errno::last(),
        });
    }
    Ok(())
}

/// Attaches the detached mount `from` on the file or directory behind `to`
/// (any descriptor of it, `O_PATH` included).
pub fn attach(from: &impl AsFd, to: &impl AsFd) -> Result<(), MountError> {
    let (f, t) = (from.as_fd().as_raw_fd(), to.as_fd().as_raw_fd());
    // SAFETY: move_mount(int from_dfd, const char *from_path, int to_dfd,
    // const char *to_path, unsigned flags); both paths are static empty C
    // strings and both descriptors are borrowed for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            f,
            c"".as_ptr(),
            t,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(MountError::MoveMount {
            from: f,
            to: t,
            source: Errno::last(),
        });
    }
    Ok(())
}

/// A new detached tmpfs with `options` (`("mode", "0555")`, ...) and
/// `attrs`; populate it through the returned descriptor (its root), then
/// [`attach`] it.
pub fn tmpfs(options: &[(&str, &str)], attrs: Attrs) -> Result<OwnedFd, MountError> {
    let shown = options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let err = |call: &'static str| {
        let shown = shown.clone();
        move |source| MountError::Tmpfs {
            call,
            options: shown,
            source,
        }
    };
    // SAFETY: fsopen(const char *fsname, unsigned flags) with a static C string.
    let rc = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) };
    let fs = cvt_fd(rc).map_err(err("fsopen"))?;
    for (key, value) in options {
        let (k, v) = (
            cstr(key).map_err(err("fsconfig"))?,
            cstr(value).map_err(err("fsconfig"))?,
        );
        // SAFETY: fsconfig(int fd, unsigned cmd, const char *key, const void
        // *value, int aux); key and value are NUL-terminated and live.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if rc < 0 {
            return Err(err("fsconfig")(Errno::last()));
        }
    }
    // SAFETY: fsconfig(fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc < 0 {
        return Err(err("fsconfig(FSCONFIG_CMD_CREATE)")(Errno::last()));
    }
    // SAFETY: fsmount(int fsfd, unsigned flags, unsigned attr_flags).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs.bits() as libc::c_uint,
        )
    };
    cvt_fd(rc).map_err(err("fsmount"))
}

fn cstr(s: &str) -> Result<std::ffi::CString, Errno> {
    std::ffi::CString::new(s).map_err(|_| Errno::EINVAL)
}
