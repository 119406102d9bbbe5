//! A container root held as a descriptor, and every path operation in it.
//!
//! The image is untrusted: any component of any path may be a symlink to
//! `/`, to `..`, to `/proc/self/root`, to a host path, or dangle. So:
//!
//! - Lookups go through `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//!   on the held root: `..` stops at the root, absolute links restart there,
//!   magic links are refused. Nothing is resolved to a string and reused.
//! - Missing directories are created one component at a time with
//!   `mkdirat` on the held parent, and the new component is reopened
//!   without following symlinks.
//! - A file is created with `O_CREAT | O_EXCL | O_NOFOLLOW` on its parent;
//!   an image symlink where a file must go is replaced, never followed.
//! - Symlinks are made under a temporary name and renamed over.
//!
//! A symlink that cannot be resolved inside the root (dangling, or through
//! a file) where a directory must be created is refused: following it would
//! mean creating what the image chose.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use rules::{ContainerPath, FileName};

use crate::sys::fs::{self, FsError, IN_ROOT, NO_SYMLINKS};

/// Mode of directories the hook creates in a container.
pub const DIR_MODE: u32 = 0o755;

/// A path operation inside a container root that failed.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The root itself could not be opened.
    #[error("cannot open the container root {path:?}")]
    OpenRoot {
        /// The root, as the runtime named it.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
    /// The root names something that is not a directory.
    #[error("the container root {path:?} is not a directory; the bundle's \"root\": {{\"path\": ...}} must name the root file system's directory")]
    RootNotDirectory {
        /// The root, as the runtime named it.
        path: PathBuf,
    },
    /// A lookup failed.
    #[error("cannot resolve {path} inside the container root")]
    Resolve {
        /// The path in the container.
        path: ContainerPath,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
    /// A directory could not be created.
    #[error("cannot create directory {path} in the container")]
    Mkdir {
        /// The path in the container.
        path: ContainerPath,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
    /// A symlink of the image stands where a directory must be created and
    /// does not resolve to one inside the root.
    #[error("{path} in the container is a symlink that does not resolve to a directory inside the container root; refusing to create anything through it")]
    UnresolvedLink {
        /// The path in the container.
        path: ContainerPath,
    },
    /// Something that is not a directory stands where one is needed.
    #[error("{path} in the container is not a directory")]
    NotDirectory {
        /// The path in the container.
        path: ContainerPath,
    },
    /// A directory stands where a file or node is needed.
    #[error("{path} in the container is a directory; expected a file")]
    IsDirectory {
        /// The path in the container.
        path: ContainerPath,
    },
    /// A file could not be created.
    #[error("cannot create {path} in the container")]
    Create {
        /// The path in the container.
        path: ContainerPath,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
    /// A device node could not be created or set up.
    #[error("cannot create the device node {path} ({major}:{minor}) in the container")]
    Mknod {
        /// The path in the container.
        path: ContainerPath,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
    /// A symlink could not be created.
    #[error("cannot create the symlink {link} -> {target} in the container")]
    Symlink {
        /// The link.
        link: ContainerPath,
        /// Its content.
        target: String,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
}

impl RootError {
    /// The errno behind the failure, when a syscall failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            RootError::OpenRoot { source, .. }
            | RootError::Resolve { source, .. }
            | RootError::Mkdir { source, .. }
            | RootError::Create { source, .. }
            | RootError::Mknod { source, .. }
            | RootError::Symlink { source, .. } => Some(source.errno()),
            RootError::UnresolvedLink { .. } => Some(Errno::ELOOP),
            RootError::NotDirectory { .. } | RootError::RootNotDirectory { .. } => {
                Some(Errno::ENOTDIR)
            }
            RootError::IsDirectory { .. } => Some(Errno::EISDIR),
        }
    }
}

/// What [`ContainerRoot::mknod_char`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOutcome {
    /// The node was created (or an identical one was there).
    Created,
    /// `mknod` is not permitted here (a user namespace): the caller binds
    /// the host node onto [`ContainerRoot::create_file`] instead.
    NotPermitted,
}

/// The container root, held open (`O_PATH`).
#[derive(Debug)]
pub struct ContainerRoot {
    fd: OwnedFd,
}

fn relative(path: &ContainerPath) -> &Path {
    let rel = path.as_str().trim_start_matches('/');
    if rel.is_empty() {
        Path::new(".")
    } else {
        Path::new(rel)
    }
}

/// The parent and last component of a path that is not `/`.
fn split(path: &ContainerPath) -> Result<(ContainerPath, FileName), RootError> {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(RootError::IsDirectory { path: path.clone() }),
    }
}

impl ContainerRoot {
    /// Opens the root at `path`, a path the runtime gave (the bundle's
    /// `root.path`, cleaned as the runtime cleans it:
    /// [`crate::container::Bundle::rootfs`]), as seen from the caller's
    /// mount namespace. Every later operation goes through the descriptor;
    /// a root that is not a directory is refused.
    pub fn open(path: &Path) -> Result<ContainerRoot, RootError> {
        let fd = fs::open_host(path, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|source| {
            if source.errno() == Errno::ENOTDIR {
                RootError::RootNotDirectory {
                    path: path.to_path_buf(),
                }
            } else {
                RootError::OpenRoot {
                    path: path.to_path_buf(),
                    source: Box::new(source),
                }
            }
        })?;
        Ok(ContainerRoot { fd })
    }

    /// The root descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `path` inside the root with `flags` (`O_CLOEXEC` added),
    /// following symlinks inside the root only.
    pub fn resolve(&self, path: &ContainerPath, flags: OFlag) -> Result<OwnedFd, RootError> {
        fs::openat2(&self.fd, relative(path), flags, IN_ROOT).map_err(|source| RootError::Resolve {
            path: path.clone(),
            source: Box::new(source),
        })
    }

    /// True when `path` resolves inside the root (to anything).
    pub fn exists(&self, path: &ContainerPath) -> Result<bool, RootError> {
        match self.resolve(path, OFlag::O_PATH) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The directory at `path`, created (with its missing parents, mode
    /// [`DIR_MODE`]) when absent. Returns an `O_PATH | O_DIRECTORY`
    /// descriptor of it.
    pub fn mkdir_all(&self, path: &ContainerPath) -> Result<OwnedFd, RootError> {
        let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        // The common case: it exists.
        match self.resolve(path, dir_flags) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.errno() == Some(Errno::ENOENT) => {}
            Err(e) if e.errno() == Some(Errno::ENOTDIR) => {
                return Err(RootError::NotDirectory { path: path.clone() })
            }
            Err(e) => return Err(e),
        }
        // Find the deepest existing ancestor, then create downwards.
        let mut ancestors = Vec::new();
        let mut cur = path.clone();
        let mut fd = loop {
            let Some(parent) = cur.parent() else {
                // `/` always resolves; reaching here means it did not.
                return Err(RootError::NotDirectory { path: cur });
            };
            ancestors.push(cur);
            match self.resolve(&parent, dir_flags) {
                Ok(fd) => break fd,
                Err(e) if e.errno() == Some(Errno::ENOENT) => cur = parent,
                Err(e) if e.errno() == Some(Errno::ENOTDIR) => {
                    return Err(RootError::NotDirectory { path: parent })
                }
                Err(e) => return Err(e),
            }
        };
        for dir in ancestors.iter().rev() {
            let Some(name) = dir.file_name_str() else {
                continue;
            };
            match fs::mkdirat(&fd, name, DIR_MODE) {
                Ok(()) => {}
                Err(e) if e.errno() == Errno::EEXIST => {}
                Err(source) => {
                    return Err(RootError::Mkdir {
                        path: dir.clone(),
                        source: Box::new(source),
                    })
                }
            }
            // Reopen without following anything: if the name is (or was
            // raced into) a symlink, refuse rather than follow.
            fd = match fs::openat2(&fd, Path::new(name), dir_flags, NO_SYMLINKS) {
                Ok(fd) => fd,
                Err(e) if e.errno() == Errno::ELOOP => {
                    return Err(RootError::UnresolvedLink { path: dir.clone() })
                }
                Err(e) if e.errno() == Errno::ENOTDIR => {
                    return Err(RootError::NotDirectory { path: dir.clone() })
                }
                Err(source) => {
                    return Err(RootError::Resolve {
                        path: dir.clone(),
                        source: Box::new(source),
                    })
                }
            };
        }
        Ok(fd)
    }

    /// A file at exactly `path` (a mount point for a file bind): created
    /// empty with `mode` when absent; an existing file (or socket, node) is
    /// used as it is; an image symlink there is replaced by an empty file.
    /// Missing parents are created. Returns a descriptor of the file.
    pub fn create_file(&self, path: &ContainerPath, mode: u32) -> Result<OwnedFd, RootError> {
        let (parent, name) = split(path)?;
        let dir = self.mkdir_all(&parent)?;
        self.create_file_in(&dir, path, name.as_str(), mode)
    }

    /// [`Self::create_file`] for `name` in the held directory `dir` (whose
    /// path in the container is the parent of `path`).
    pub fn create_file_in(
        &self,
        dir: &OwnedFd,
        path: &ContainerPath,
        name: &str,
        mode: u32,
    ) -> Result<OwnedFd, RootError> {
        let create = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY;
        let err = |source| RootError::Create {
            path: path.clone(),
            source: Box::new(source),
        };
        for _ in 0..2 {
            match fs::openat(dir, name, create, mode) {
                Ok(fd) => return Ok(fd),
                Err(e) if e.errno() == Errno::EEXIST => {}
                Err(e) => return Err(err(e)),
            }
            match fs::openat2(dir, Path::new(name), OFlag::O_PATH, NO_SYMLINKS) {
                Ok(fd) => {
                    let st = fs::fstat(&fd).map_err(err)?;
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
                        return Err(RootError::IsDirectory { path: path.clone() });
                    }
                    return Ok(fd);
                }
                Err(e) if e.errno() == Errno::ELOOP => {
                    // An image symlink: replace it.
                    log::debug!("{path}: replacing the image's symlink with a file");
                    fs::unlinkat(dir, name, false).map_err(err)?;
                }
                Err(e) if e.errno() == Errno::ENOENT => {} // raced away: retry
                Err(e) => return Err(err(e)),
            }
        }
        Err(err(FsError::Openat {
            dirfd: -1,
            name: name.to_owned(),
            flags: create,
            mode,
            errno: Errno::EEXIST,
        }))
    }

    /// A character device node at `path` with exactly `mode`, owned by
    /// `owner` (ids as seen from the caller's user namespace). An identical
    /// node already there is kept (and given the mode and owner); anything
    /// else but a directory is replaced. `EPERM` from `mknod` (a user
    /// namespace) is [`NodeOutcome::NotPermitted`], not an error.
    pub fn mknod_char(
        &self,
        dir: &OwnedFd,
        path: &ContainerPath,
        node: (u32, u32, u32),
        owner: (u32, u32),
    ) -> Result<NodeOutcome, RootError> {
        let (mode, major, minor) = node;
        let name = path
            .file_name_str()
            .ok_or_else(|| RootError::IsDirectory { path: path.clone() })?;
        let err = |source| RootError::Mknod {
            path: path.clone(),
            major,
            minor,
            source: Box::new(source),
        };
        let rdev = nix::sys::stat::makedev(major.into(), minor.into());
        let mut replaced = false;
        loop {
            match fs::mknod_char(dir, name, mode, major, minor) {
                Ok(()) => break,
                Err(e) if e.errno() == Errno::EPERM => return Ok(NodeOutcome::NotPermitted),
                Err(e) if e.errno() == Errno::EEXIST && !replaced => {
                    let st = fs::lstatat(dir, name).map_err(err)?;
                    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                    if kind == SFlag::S_IFCHR && st.st_rdev == rdev {
                        break;
                    }
                    if kind == SFlag::S_IFDIR {
                        return Err(RootError::IsDirectory { path: path.clone() });
                    }
                    fs::unlinkat(dir, name, false).map_err(err)?;
                    replaced = true;
                }
                Err(e) => return Err(err(e)),
            }
        }
        let fd = fs::openat2(dir, Path::new(name), OFlag::O_PATH, NO_SYMLINKS).map_err(err)?;
        let st = fs::fstat(&fd).map_err(err)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFCHR
            || st.st_rdev != rdev
        {
            // Raced into something else between mknod and open.
            return Err(err(FsError::Fstatat {
                dirfd: -1,
                name: name.to_owned(),
                source: Errno::ESTALE,
            }));
        }
        if st.st_mode & 0o7777 != mode {
            // mknod applied the umask.
            fs::chmod_fd(&fd, mode).map_err(err)?;
        }
        if (st.st_uid, st.st_gid) != owner {
            fs::fchown(&fd, owner.0, owner.1).map_err(err)?;
        }
        Ok(NodeOutcome::Created)
    }

    /// A symlink `link -> target` (a file name in the link's directory).
    /// Where something is already at `link`, the new link is made under a
    /// temporary name and renamed over it (atomic; not over a directory);
    /// an identical link is left alone.
    /// Missing parents are created.
    pub fn symlink(&self, link: &ContainerPath, target: &FileName) -> Result<(), RootError> {
        let (parent, _) = split(link)?;
        let dir = self.mkdir_all(&parent)?;
        self.symlink_in(&dir, link, target)
    }

    /// [`Self::symlink`] in the held directory `dir`, the parent of `link`.
    pub fn symlink_in(
        &self,
        dir: &OwnedFd,
        link: &ContainerPath,
        target: &FileName,
    ) -> Result<(), RootError> {
        self.symlink_to(dir, link, target.as_str())
    }

    /// [`ContainerRoot::symlink_in`] with any relative target (`../card1`
    /// for a `/dev/dri/by-path` link): the link is made by `symlinkat` in
    /// `dir` and never followed.
    pub fn symlink_to(
        &self,
        dir: &OwnedFd,
        link: &ContainerPath,
        target: &str,
    ) -> Result<(), RootError> {
        let (_, name) = split(link)?;
        let err = |source| RootError::Symlink {
            link: link.clone(),
            target: target.to_string(),
            source: Box::new(source),
        };
        // The common case: nothing there yet.
        match fs::symlinkat(target, dir, name.as_str()) {
            Ok(()) => return Ok(()),
            Err(e) if e.errno() == Errno::EEXIST => {}
            Err(e) => return Err(err(e)),
        }
        if let Ok(current) = fs::readlinkat(dir, name.as_str()) {
            if current.as_encoded_bytes() == target.as_bytes() {
                return Ok(());
            }
        }
        let tmp = format!(".nvidia-docker-link.{}", std::process::id());
        match fs::unlinkat(dir, &tmp, false) {
            Ok(()) => {}
            Err(e) if e.errno() == Errno::ENOENT => {}
            Err(e) => return Err(err(e)),
        }
        fs::symlinkat(target, dir, &tmp).map_err(err)?;
        if let Err(e) = fs::renameat(dir, &tmp, name.as_str()) {
            let _ = fs::unlinkat(dir, &tmp, false);
            return Err(err(e));
        }
        Ok(())
    }
}
