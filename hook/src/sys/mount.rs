//! The new mount API (Linux 5.2+, `mount_setattr` 5.12+): mounts made from
//! and onto descriptors, never from path strings.
//!
//! A bind source is cloned with [`clone_tree`] while the hook is still in the
//! host's mount namespace, its flags are set on the detached clone
//! ([`set_attrs`]), and it is attached in the container's namespace with
//! [`attach`]: the mount never exists writable, and nothing is resolved by
//! name at mount time.
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

/// `struct mount_attr` (`MOUNT_ATTR_SIZE_VER0`), for [`set_attrs`].
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
    fn flags(self) -> MountAttrFlags {
        let mut f = MountAttrFlags::empty();
        for (on, flag) in [
            (self.read_only, MountAttrFlags::MOUNT_ATTR_RDONLY),
            (self.nosuid, MountAttrFlags::MOUNT_ATTR_NOSUID),
            (self.nodev, MountAttrFlags::MOUNT_ATTR_NODEV),
            (self.noexec, MountAttrFlags::MOUNT_ATTR_NOEXEC),
            (self.nosymfollow, MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW),
        ] {
            if on {
                f |= flag;
            }
        }
        f
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

/// nix's errno for rustix's.
fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
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
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(source, c"", flags).map_err(|e| MountError::OpenTree {
        fd: source.as_fd().as_raw_fd(),
        unsafe_path,
        source: errno(e),
    })
}

/// Sets `attrs` on the mount behind `mount` (detached or attached; not its
/// submounts) and makes it private, so that nothing mounted later under it
/// propagates anywhere.
///
/// Hand-written: rustix 1.1 lists `mount_setattr` as not implemented yet
/// (`not_implemented::yet::mount_setattr`) and nix 0.32 has no binding; its
/// flags are rustix's [`MountAttrFlags`]. (`open_tree_attr`, Linux 6.15,
/// would set them in the clone itself, above the hook's kernel floor.)
pub fn set_attrs(mount: &impl AsFd, attrs: Attrs) -> Result<(), MountError> {
    let attr = MountAttr {
        attr_set: attrs.flags().bits().into(),
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
    rustix::mount::move_mount(
        from,
        c"",
        to,
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| MountError::MoveMount {
        from: from.as_fd().as_raw_fd(),
        to: to.as_fd().as_raw_fd(),
        source: errno(e),
    })
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
    let fs = rustix::mount::fsopen(c"tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| err("fsopen")(errno(e)))?;
    for (key, value) in options {
        rustix::mount::fsconfig_set_string(&fs, *key, *value)
            .map_err(|e| err("fsconfig")(errno(e)))?;
    }
    rustix::mount::fsconfig_create(&fs)
        .map_err(|e| err("fsconfig(FSCONFIG_CMD_CREATE)")(errno(e)))?;
    rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs.flags())
        .map_err(|e| err("fsmount")(errno(e)))
}
