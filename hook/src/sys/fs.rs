//! File-system syscalls on held descriptors.
//!
//! Paths given to these wrappers are relative to a directory descriptor the
//! caller holds; inside a container root they are single file names or
//! resolved with [`openat2`] and [`IN_ROOT`]. Errors record every argument.
//! Descriptors are printed by number: a path read back from a descriptor
//! would be racy (an "unsafe path", pathrs' term) and is never needed to act.
use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OpenHow};

/// The flag and error types of this module's calls, for callers outside
/// the hook (the volume store) that hold no syscall crate of their own.
pub use nix::errno::Errno;
pub use nix::fcntl::{OFlag, ResolveFlag};
pub use nix::sys::stat::SFlag;
use nix::sys::stat::{FileStat, Mode};
use nix::sys::statfs::{fstatfs, FsType, PROC_SUPER_MAGIC};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

/// Resolution inside a container root: the descriptor is `/`, `..` stops
/// there, absolute symlinks restart there, and magic links
/// (`/proc/self/root`, `/proc/<pid>/fd/N`) are refused.
pub const IN_ROOT: ResolveFlag =
    ResolveFlag::RESOLVE_IN_ROOT.union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// Resolution of one name in a held directory: no symlink at all, nothing
/// outside the directory.
pub const NO_SYMLINKS: ResolveFlag =
    ResolveFlag::RESOLVE_NO_SYMLINKS.union(ResolveFlag::RESOLVE_BENEATH);

/// A file-system syscall that failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// `open(2)` of a host path. Displayed in words (the caller names the
    /// path); the call itself is logged at debug level.
    #[error("{}", in_words(*errno, ResolveFlag::empty()))]
    Open {
        /// The host path.
        path: PathBuf,
        /// Flags.
        flags: OFlag,
        /// What the kernel said.
        errno: Errno,
    },
    /// `openat2(2)`. Displayed in words (the caller names the path); the
    /// call itself is logged at debug level.
    #[error("{}", in_words(*errno, *resolve))]
    Openat2 {
        /// Directory descriptor.
        dirfd: RawFd,
        /// Relative path.
        path: PathBuf,
        /// Flags.
        flags: OFlag,
        /// Resolution flags.
        resolve: ResolveFlag,
        /// What the kernel said.
        errno: Errno,
    },
    /// `openat(2)` (creation of one name). Displayed in words (the caller
    /// names the path); the call itself is logged at debug level.
    #[error("{}", in_words(*errno, ResolveFlag::empty()))]
    Openat {
        /// Directory descriptor.
        dirfd: RawFd,
        /// The name.
        name: String,
        /// Flags.
        flags: OFlag,
        /// Mode of a created file.
        mode: u32,
        /// What the kernel said.
        errno: Errno,
    },
    /// `mkdirat(2)`.
    #[error("mkdirat(fd {dirfd}, {name:?}, 0o{mode:o})")]
    Mkdirat {
        /// Directory descriptor.
        dirfd: RawFd,
        /// The name.
        name: String,
        /// Mode.
        mode: u32,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `mknodat(2)` of a character device.
    #[error("mknodat(fd {dirfd}, {name:?}, S_IFCHR|0o{mode:o}, {major}:{minor})")]
    Mknodat {
        /// Directory descriptor.
        dirfd: RawFd,
        /// The name.
        name: String,
        /// Permission bits.
        mode: u32,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `symlinkat(2)`.
    #[error("symlinkat({target:?}, fd {dirfd}, {name:?})")]
    Symlinkat {
        /// The link's content.
        target: String,
        /// Directory descriptor.
        dirfd: RawFd,
        /// The link's name.
        name: String,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `renameat(2)` within one directory.
    #[error("renameat(fd {dirfd}, {from:?}, fd {dirfd}, {to:?})")]
    Renameat {
        /// Directory descriptor.
        dirfd: RawFd,
        /// Old name.
        from: String,
        /// New name.
        to: String,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `renameat2(2)` with `RENAME_EXCHANGE` within one directory.
    #[error("renameat2(fd {dirfd}, {a:?}, fd {dirfd}, {b:?}, RENAME_EXCHANGE)")]
    Exchangeat {
        /// Directory descriptor.
        dirfd: RawFd,
        /// One name.
        a: String,
        /// The other.
        b: String,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `unlinkat(2)`.
    #[error("unlinkat(fd {dirfd}, {name:?}, {flags})")]
    Unlinkat {
        /// Directory descriptor.
        dirfd: RawFd,
        /// The name.
        name: String,
        /// `0` or `AT_REMOVEDIR`.
        flags: &'static str,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `readlinkat(2)`.
    #[error("readlinkat(fd {dirfd}, {name:?})")]
    Readlinkat {
        /// Directory descriptor.
        dirfd: RawFd,
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `fstat(2)` or `fstatat(2)`.
    #[error("fstatat(fd {dirfd}, {name:?}, AT_SYMLINK_NOFOLLOW)")]
    Fstatat {
        /// Directory descriptor (or the file itself with an empty name).
        dirfd: RawFd,
        /// The name (empty: the descriptor itself).
        name: String,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `stat(2)` of a host path.
    #[error("stat({path:?})")]
    Stat {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `fstatfs(2)`.
    #[error("fstatfs(fd {fd})")]
    Fstatfs {
        /// The descriptor.
        fd: RawFd,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `fchownat(2)` with `AT_EMPTY_PATH`.
    #[error("fchownat(fd {fd}, \"\", {uid}, {gid}, AT_EMPTY_PATH)")]
    Fchown {
        /// The descriptor.
        fd: RawFd,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `fchmodat2(2)` with `AT_EMPTY_PATH`, or `chmod` of `/proc/self/fd/N`.
    #[error("chmod(fd {fd}, 0o{mode:o})")]
    Fchmod {
        /// The descriptor.
        fd: RawFd,
        /// Mode.
        mode: u32,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `getdents(2)` through `fdopendir(3)`/`readdir(3)`.
    #[error("readdir(fd {fd})")]
    Readdir {
        /// The directory descriptor.
        fd: RawFd,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// A descriptor reopened through `/proc/self/fd` is not the file it
    /// was opened from (device or inode differ).
    #[error("the file changed while it was being opened (/proc/self/fd/{fd} is another file)")]
    ReopenMismatch {
        /// The descriptor reopened.
        fd: RawFd,
        /// Flags of the new descriptor.
        flags: OFlag,
    },
    /// `/proc/self/fd` is not on a procfs (something is mounted over it).
    #[error("/proc/self/fd is not procfs (file system type {fs_type:#x}); refusing to use it")]
    NotProcfs {
        /// What `fstatfs` said.
        fs_type: i64,
    },
    /// `write(2)` of a created file.
    #[error("write(fd {fd}, {len} bytes)")]
    Write {
        /// The descriptor.
        fd: RawFd,
        /// How many bytes.
        len: usize,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl FsError {
    /// The errno behind the failure (`EIO` for a write error without one).
    pub fn errno(&self) -> Errno {
        match self {
            FsError::Open { errno, .. }
            | FsError::Openat2 { errno, .. }
            | FsError::Openat { errno, .. } => *errno,
            FsError::Mkdirat { source, .. }
            | FsError::Mknodat { source, .. }
            | FsError::Symlinkat { source, .. }
            | FsError::Renameat { source, .. }
            | FsError::Exchangeat { source, .. }
            | FsError::Unlinkat { source, .. }
            | FsError::Readlinkat { source, .. }
            | FsError::Fstatat { source, .. }
            | FsError::Stat { source, .. }
            | FsError::Fstatfs { source, .. }
            | FsError::Fchown { source, .. }
            | FsError::Fchmod { source, .. }
            | FsError::Readdir { source, .. } => *source,
            FsError::ReopenMismatch { .. } => Errno::ESTALE,
            FsError::Write { source, .. } => source
                .raw_os_error()
                .map(Errno::from_raw)
                .unwrap_or(Errno::EIO),
            FsError::NotProcfs { .. } => Errno::EXDEV,
        }
    }
}

/// What an open's errno means, in words, for a message that already names
/// the path (`cannot resolve /usr/lib inside the container root: ...`).
/// `resolve` tells a symlink loop from a symlink refused outright.
pub fn in_words(errno: Errno, resolve: ResolveFlag) -> String {
    let no_symlinks = resolve.contains(ResolveFlag::RESOLVE_NO_SYMLINKS);
    match errno {
        Errno::ELOOP if no_symlinks => {
            "it is a symlink, and no symlink is followed there".to_owned()
        }
        Errno::ELOOP if resolve.contains(ResolveFlag::RESOLVE_NO_MAGICLINKS) => {
            "it is a symlink loop (or more than 40 symlinks, or a /proc magic link)".to_owned()
        }
        Errno::ELOOP => "it is a symlink loop (or more than 40 symlinks)".to_owned(),
        Errno::ENAMETOOLONG => "name too long".to_owned(),
        Errno::ENOENT => "it does not exist".to_owned(),
        Errno::ENOTDIR => "a component of the path is not a directory".to_owned(),
        Errno::EISDIR => "it is a directory".to_owned(),
        Errno::EXDEV => "it leads out of the directory it must stay in".to_owned(),
        Errno::EAGAIN => format!(
            "the directory tree kept changing while it was resolved ({OPENAT2_RETRIES} tries)"
        ),
        Errno::EACCES | Errno::EPERM => "permission denied".to_owned(),
        Errno::EEXIST => "it already exists".to_owned(),
        Errno::ENXIO | Errno::ENODEV => "no such device".to_owned(),
        Errno::ENOSPC => "no space left on the device".to_owned(),
        Errno::EROFS => "the file system is read-only".to_owned(),
        Errno::ENOSYS => "this kernel has no openat2 (Linux 5.6 or later is needed)".to_owned(),
        other => other.desc().to_lowercase(),
    }
}

fn raw(fd: &impl AsFd) -> RawFd {
    fd.as_fd().as_raw_fd()
}

/// Opens a host path (the hook's own view: driver root, dev root, proc
/// root). `O_CLOEXEC` is always added.
pub fn open_host(path: &Path, flags: OFlag) -> Result<OwnedFd, FsError> {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .custom_flags((flags | OFlag::O_CLOEXEC).bits() & !libc::O_ACCMODE);
    match opts.open(path) {
        Ok(f) => Ok(OwnedFd::from(f)),
        Err(e) => {
            let errno = e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO);
            log::debug!("open({path:?}, {flags:?}): {errno}");
            Err(FsError::Open {
                path: path.to_path_buf(),
                flags,
                errno,
            })
        }
    }
}

/// `openat2(dirfd, path, flags | O_CLOEXEC, mode 0, resolve)`.
pub fn openat2(
    dirfd: &impl AsFd,
    path: &Path,
    flags: OFlag,
    resolve: ResolveFlag,
) -> Result<OwnedFd, FsError> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    // With RESOLVE_IN_ROOT or RESOLVE_BENEATH the kernel answers EAGAIN when
    // a rename or mount anywhere on the system raced a `..` step and it
    // cannot prove the walk stayed inside; openat2(2) says to retry. Busy
    // hosts (many containers starting at once) hit it; an attacker who
    // keeps renaming only gets the bounded retries, then this error.
    let mut result = nix::fcntl::openat2(dirfd.as_fd(), path, how);
    for _ in 0..OPENAT2_RETRIES {
        if !matches!(result, Err(Errno::EAGAIN)) {
            break;
        }
        result = nix::fcntl::openat2(dirfd.as_fd(), path, how);
    }
    result.map_err(|errno| {
        log::debug!(
            "openat2(fd {}, {path:?}, {flags:?}, {resolve:?}): {errno}",
            raw(dirfd)
        );
        FsError::Openat2 {
            dirfd: raw(dirfd),
            path: path.to_path_buf(),
            flags,
            resolve,
            errno,
        }
    })
}

/// How many times [`openat2`] retries a walk the kernel could not vouch for
/// (`EAGAIN`), as libpathrs does.
const OPENAT2_RETRIES: usize = 128;

/// `openat(dirfd, name, flags | O_CLOEXEC, mode)`, for creating one name
/// (callers pass `O_CREAT | O_EXCL | O_NOFOLLOW`).
pub fn openat(dirfd: &impl AsFd, name: &str, flags: OFlag, mode: u32) -> Result<OwnedFd, FsError> {
    nix::fcntl::openat(
        dirfd.as_fd(),
        name,
        flags | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|errno| {
        log::debug!(
            "openat(fd {}, {name:?}, {flags:?}, 0o{mode:o}): {errno}",
            raw(dirfd)
        );
        FsError::Openat {
            dirfd: raw(dirfd),
            name: name.to_owned(),
            flags,
            mode,
            errno,
        }
    })
}

/// `mkdirat(dirfd, name, mode)` (the process umask applies; it only narrows).
pub fn mkdirat(dirfd: &impl AsFd, name: &str, mode: u32) -> Result<(), FsError> {
    nix::sys::stat::mkdirat(dirfd.as_fd(), name, Mode::from_bits_truncate(mode)).map_err(|source| {
        FsError::Mkdirat {
            dirfd: raw(dirfd),
            name: name.to_owned(),
            mode,
            source,
        }
    })
}

/// `mknodat(dirfd, name, S_IFCHR | mode, makedev(major, minor))`. The
/// umask applies: callers set the final mode with [`chmod_fd`].
pub fn mknod_char(
    dirfd: &impl AsFd,
    name: &str,
    mode: u32,
    major: u32,
    minor: u32,
) -> Result<(), FsError> {
    let dev = nix::sys::stat::makedev(major.into(), minor.into());
    nix::sys::stat::mknodat(
        dirfd.as_fd(),
        name,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(mode),
        dev,
    )
    .map_err(|source| FsError::Mknodat {
        dirfd: raw(dirfd),
        name: name.to_owned(),
        mode,
        major,
        minor,
        source,
    })
}

/// `symlinkat(target, dirfd, name)`.
pub fn symlinkat(target: &str, dirfd: &impl AsFd, name: &str) -> Result<(), FsError> {
    nix::unistd::symlinkat(target, dirfd.as_fd(), name).map_err(|source| FsError::Symlinkat {
        target: target.to_owned(),
        dirfd: raw(dirfd),
        name: name.to_owned(),
        source,
    })
}

/// `renameat(dirfd, from, dirfd, to)`: atomically replaces `to` (not a
/// directory).
pub fn renameat(dirfd: &impl AsFd, from: &str, to: &str) -> Result<(), FsError> {
    nix::fcntl::renameat(dirfd.as_fd(), from, dirfd.as_fd(), to).map_err(|source| {
        FsError::Renameat {
            dirfd: raw(dirfd),
            from: from.to_owned(),
            to: to.to_owned(),
            source,
        }
    })
}

/// `renameat2(dirfd, a, dirfd, b, RENAME_EXCHANGE)`: atomically swaps two
/// names of one directory (both must exist; `EINVAL` where the file system
/// cannot). Unlike a `rename` over an existing file, it does not make ext4
/// start writing the new file's data back at once (its replace-by-rename
/// heuristic, `auto_da_alloc`), which cost a start about 0.1 ms
/// (`docs/start-cost.md`).
pub fn exchangeat(dirfd: &impl AsFd, a: &str, b: &str) -> Result<(), FsError> {
    nix::fcntl::renameat2(
        dirfd.as_fd(),
        a,
        dirfd.as_fd(),
        b,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .map_err(|source| FsError::Exchangeat {
        dirfd: raw(dirfd),
        a: a.to_owned(),
        b: b.to_owned(),
        source,
    })
}

/// `unlinkat(dirfd, name, 0 | AT_REMOVEDIR)`.
pub fn unlinkat(dirfd: &impl AsFd, name: &str, dir: bool) -> Result<(), FsError> {
    let (flag, flags) = if dir {
        (UnlinkatFlags::RemoveDir, "AT_REMOVEDIR")
    } else {
        (UnlinkatFlags::NoRemoveDir, "0")
    };
    nix::unistd::unlinkat(dirfd.as_fd(), name, flag).map_err(|source| FsError::Unlinkat {
        dirfd: raw(dirfd),
        name: name.to_owned(),
        flags,
        source,
    })
}

/// `readlinkat(dirfd, name)`.
pub fn readlinkat(dirfd: &impl AsFd, name: &str) -> Result<OsString, FsError> {
    nix::fcntl::readlinkat(dirfd.as_fd(), name).map_err(|source| FsError::Readlinkat {
        dirfd: raw(dirfd),
        name: name.to_owned(),
        source,
    })
}

/// `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstatat(dirfd: &impl AsFd, name: &str) -> Result<FileStat, FsError> {
    nix::sys::stat::fstatat(dirfd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|source| {
        FsError::Fstatat {
            dirfd: raw(dirfd),
            name: name.to_owned(),
            source,
        }
    })
}

/// Calls `f` with each name in the directory behind `dir` (a descriptor
/// opened `O_RDONLY | O_DIRECTORY`; a duplicate is read, `dir` stays
/// open), `.` and `..` left out.
pub fn read_dir(dir: &impl AsFd, mut f: impl FnMut(&OsStr)) -> Result<(), FsError> {
    let err = |source| FsError::Readdir {
        fd: raw(dir),
        source,
    };
    let dup = dir
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| err(e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)))?;
    let mut stream = nix::dir::Dir::from_fd(dup).map_err(err)?;
    for entry in stream.iter() {
        let entry = entry.map_err(err)?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            f(name);
        }
    }
    Ok(())
}

/// Opens the file behind `fd` (typically an `O_PATH` descriptor whose type
/// was checked with [`fstat`]) again with `flags`, through
/// `/proc/self/fd/N` once that is known to be a real procfs, and checks
/// that the new descriptor is the same file. The file itself is never
/// looked up by name again, so it cannot be swapped for a FIFO or a device
/// in between (pathrs' "reopen"). `flags` must not hold `O_NOFOLLOW`: the
/// magic link is followed, which is the point.
pub fn reopen(fd: &impl AsFd, flags: OFlag) -> Result<OwnedFd, FsError> {
    let dir = open_host(
        Path::new("/proc/self/fd"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )?;
    if !is_procfs(&dir)? {
        return Err(FsError::NotProcfs {
            fs_type: fs_type(&dir)?.0,
        });
    }
    let name = raw(fd).to_string();
    let new = openat(&dir, &name, flags & !OFlag::O_NOFOLLOW, 0)?;
    let (a, b) = (fstat(fd)?, fstat(&new)?);
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err(FsError::ReopenMismatch { fd: raw(fd), flags });
    }
    Ok(new)
}

/// `stat(path)` of a host path (follows symlinks).
pub fn stat_host(path: &Path) -> Result<FileStat, FsError> {
    nix::sys::stat::stat(path).map_err(|source| FsError::Stat {
        path: path.to_path_buf(),
        source,
    })
}

/// `fstat(fd)` (works on `O_PATH` descriptors).
pub fn fstat(fd: &impl AsFd) -> Result<FileStat, FsError> {
    nix::sys::stat::fstatat(
        fd.as_fd(),
        "",
        AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|source| FsError::Fstatat {
        dirfd: raw(fd),
        name: String::new(),
        source,
    })
}

/// The file system type (`f_type`) of the file behind `fd`.
pub fn fs_type(fd: &impl AsFd) -> Result<FsType, FsError> {
    fstatfs(fd.as_fd())
        .map(|s| s.filesystem_type())
        .map_err(|source| FsError::Fstatfs {
            fd: raw(fd),
            source,
        })
}

/// True when `fd` is on a procfs.
pub fn is_procfs(fd: &impl AsFd) -> Result<bool, FsError> {
    Ok(fs_type(fd)? == PROC_SUPER_MAGIC)
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: changes the owner of the
/// file behind an `O_PATH` descriptor.
pub fn fchown(fd: &impl AsFd, uid: u32, gid: u32) -> Result<(), FsError> {
    nix::unistd::fchownat(
        fd.as_fd(),
        "",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH,
    )
    .map_err(|source| FsError::Fchown {
        fd: raw(fd),
        uid,
        gid,
        source,
    })
}

/// `fchmodat2(2)`, the same number on every architecture the hook builds for
/// (libc 0.2.191 names it on x86_64 but not on aarch64 glibc).
const SYS_FCHMODAT2: libc::c_long = 452;

/// Sets the mode of the file behind an `O_PATH` descriptor (which `fchmod`
/// refuses): `fchmodat2(fd, "", mode, AT_EMPTY_PATH)` (Linux 6.6), else
/// `chmod("/proc/self/fd/N")` after checking that `/proc/self/fd` is a real
/// procfs.
///
/// `fchmodat2` is hand-written: rustix 1.1 lists it as not implemented yet
/// (`not_implemented::yet::fchmodat2`) and its `chmodat` refuses
/// `AT_EMPTY_PATH` (`EINVAL`); nix 0.32 has no binding. A path-based
/// `fchmodat` on the name would follow a link swapped in after the check.
pub fn chmod_fd(fd: &impl AsFd, mode: u32) -> Result<(), FsError> {
    let empty = c"";
    // SAFETY: fchmodat2 takes (int dirfd, const char *path, mode_t mode,
    // unsigned int flags); the path is a valid NUL-terminated string that
    // outlives the call, and the descriptor is borrowed for its duration.
    let rc = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            raw(fd),
            empty.as_ptr(),
            mode as libc::mode_t,
            libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let errno = Errno::last();
    if !matches!(errno, Errno::ENOSYS | Errno::EINVAL) {
        return Err(FsError::Fchmod {
            fd: raw(fd),
            mode,
            source: errno,
        });
    }
    // Older kernels: through the magic link, once /proc/self/fd is known to
    // be procfs (not something mounted over it).
    let dir = open_host(
        Path::new("/proc/self/fd"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )?;
    if !is_procfs(&dir)? {
        return Err(FsError::NotProcfs {
            fs_type: fs_type(&dir)?.0,
        });
    }
    let link = format!("{}", raw(fd));
    nix::sys::stat::fchmodat(
        dir.as_fd(),
        link.as_str(),
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|source| FsError::Fchmod {
        fd: raw(fd),
        mode,
        source,
    })
}

/// Writes `bytes` to a descriptor opened for writing, then closes it.
pub fn write_all(fd: OwnedFd, bytes: &[u8]) -> Result<(), FsError> {
    let n = fd.as_raw_fd();
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes).map_err(|source| FsError::Write {
        fd: n,
        len: bytes.len(),
        source,
    })
}
