//! Executing a plan inside a container's mount namespace.
//!
//! [`apply`] forks a single-threaded child ([`crate::sys::child`]) that
//! does the steps below ([`apply_in_place`] does them in the calling process,
//! for a caller with nothing left to do on the host):
//!
//! 1. keeps only the capabilities of the host-side step ([`caps`]);
//! 2. on the host side, opens the container's namespaces
//!    (`/proc/<pid>/ns/{user,mnt}`) and prepares everything that comes from
//!    the host ([`Prepared`]): each bind source is opened and cloned as a
//!    detached mount with its final flags (`ro,nosuid,nodev` for driver
//!    files, `nosuid,nodev,noexec` for IPC), the `/proc/driver/nvidia` files
//!    are read and the selected GPUs' entries cloned;
//! 3. joins the container's user namespace (when it has its own) and mount
//!    namespace, and drops to the in-container capabilities;
//! 4. opens the container root (the runtime's `root.path`, as the container's
//!    mount namespace sees it before `pivot_root`) and, relative to that
//!    descriptor only ([`root`]): creates the device nodes, the mount
//!    points and attaches the clones, makes the symlinks, masks
//!    `/proc/driver/nvidia` with a read-only tmpfs, and writes the graphics
//!    application profile.
//!
//! Why clones: a bind mount of a descriptor opened in another mount
//! namespace fails (`EINVAL`), and resolving host paths after `setns` would
//! resolve them in the container's namespace. A detached clone made on the
//! host side is attached with `move_mount` and never exists writable.
//!
//! Device nodes are `mknod`ed with the host node's permission bits and the
//! container root as owner; where `mknod` is refused because the container
//! has a user namespace, the host node is bound onto an empty file instead.
#![forbid(unsafe_code)]

pub mod caps;
pub mod root;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use rules::{ContainerPath, MountFlags, MountKind, Plan};

use crate::config::HostPaths;
use crate::sys::child::{run_in_child, ChildError};
use crate::sys::fs::{self, FsError, NO_SYMLINKS};
use crate::sys::mount::{self, Attrs, MountError};
use crate::sys::ns::{Namespace, NsError, NsKind};
use root::{ContainerRoot, NodeOutcome, RootError};

/// How long the apply child may run.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The container the plan is applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its init process, as the hook sees it.
    pub pid: i32,
    /// Its root file system, as its mount namespace sees it before
    /// `pivot_root` (the bundle's resolved `root.path`).
    pub rootfs: PathBuf,
}

/// Applying a plan failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Capabilities could not be dropped.
    #[error(transparent)]
    Caps(#[from] caps::CapsError),
    /// The container's namespaces could not be opened or joined.
    #[error("cannot enter the container's namespaces")]
    Namespace(#[source] NsError),
    /// The deadline of [`apply_in_place`] could not be set.
    #[error("cannot set the deadline for applying the GPU plan")]
    Deadline(#[source] crate::sys::process::ProcessError),
    /// A host file could not be opened.
    #[error("cannot open the host's {path:?}")]
    HostOpen {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
    /// A host file could not be read.
    #[error("cannot read the host's {path:?}")]
    HostRead {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A host file could not be cloned as a detached mount.
    #[error("cannot prepare a bind mount of the host's {path:?}")]
    Clone {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<MountError>,
    },
    /// A path operation inside the container root failed.
    #[error(transparent)]
    Root(#[from] RootError),
    /// A mount could not be attached.
    #[error("cannot mount {source_path:?} on {destination} in the container")]
    Mount {
        /// The host source.
        source_path: PathBuf,
        /// The destination.
        destination: ContainerPath,
        /// The cause.
        #[source]
        source: Box<MountError>,
    },
    /// `mknod` was refused outside a user namespace.
    #[error("cannot create the device node {path}: mknod is not permitted here (and the container has no user namespace of its own)")]
    NodeNotPermitted {
        /// The node.
        path: ContainerPath,
    },
    /// A tmpfs (the `/proc/driver/nvidia` mask, the application profile)
    /// could not be made.
    #[error("cannot mount a tmpfs on {path} in the container")]
    Tmpfs {
        /// Where.
        path: ContainerPath,
        /// The cause.
        #[source]
        source: Box<MountError>,
    },
    /// A file inside a tmpfs the hook made could not be written.
    #[error("cannot write {path} in the container")]
    TmpfsFile {
        /// The file.
        path: ContainerPath,
        /// The cause.
        #[source]
        source: Box<FsError>,
    },
    /// The child step failed (its one-line error) or died.
    #[error("cannot apply the GPU plan in the container")]
    Child(#[source] ChildError),
    /// The linker cache could not be written.
    #[error(transparent)]
    LdCache(#[from] crate::ldcache_write::LdCacheWriteError),
}

fn cpath(s: &str) -> ContainerPath {
    ContainerPath::new(s).unwrap_or_else(|_| ContainerPath::root())
}

fn attrs(flags: MountFlags) -> Attrs {
    Attrs {
        read_only: flags.read_only,
        nosuid: flags.nosuid,
        nodev: flags.nodev,
        noexec: flags.noexec,
        nosymfollow: false,
    }
}

const PROC_ATTRS: Attrs = Attrs {
    read_only: true,
    nosuid: true,
    nodev: true,
    noexec: true,
    nosymfollow: false,
};

/// `error: cause: cause`, on one line (the child's report).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

/// Applies `plan` to the container `target` from a forked child with a
/// deadline of [`APPLY_TIMEOUT`]. The caller must be single-threaded.
pub fn apply(paths: &HostPaths, target: &Target, plan: &Plan) -> Result<(), ApplyError> {
    apply_within(paths, target, plan, APPLY_TIMEOUT)
}

/// [`apply`] with the child killed after `timeout` (what is left of the
/// hook's deadline: [`crate::deadline`]).
pub fn apply_within(
    paths: &HostPaths,
    target: &Target,
    plan: &Plan,
    timeout: std::time::Duration,
) -> Result<(), ApplyError> {
    run_in_child("applying the GPU plan", timeout, || {
        enter_and_apply(paths, target, plan).map_err(|e| error_chain(&e))
    })
    .map_err(ApplyError::Child)
}

/// [`enter_and_apply`] in the calling process itself, with `timeout` as an
/// [`Alarm`](crate::sys::process::Alarm): no fork, for a caller whose last
/// step this is (it ends in the container's namespaces with reduced
/// capabilities, so nothing on the host can follow). Forking cost the hook
/// 0.1 to 0.5 ms of CPU per start in same-run measurements (page tables
/// copied, pages copied on write in both processes, a second exit):
/// `docs/start-cost.md`.
/// The caller must be single-threaded. A step still running at `timeout`
/// prints its one line and ends the process by `SIGALRM`.
pub fn apply_in_place(
    paths: &HostPaths,
    target: &Target,
    plan: &Plan,
    timeout: std::time::Duration,
) -> Result<(), ApplyError> {
    let _alarm = crate::sys::process::Alarm::set(
        timeout,
        format!("nvidia-docker-hook: applying the GPU plan ran past {timeout:?} and was stopped\n"),
    )
    .map_err(ApplyError::Deadline)?;
    enter_and_apply(paths, target, plan)
}

/// Steps 1 to 4 of the module docs in the calling process, which must be
/// single-threaded and disposable (it ends in the container's namespaces
/// with reduced capabilities): the body of [`apply`]'s child.
pub fn enter_and_apply(paths: &HostPaths, target: &Target, plan: &Plan) -> Result<(), ApplyError> {
    caps::keep(caps::Step::ApplyHost)?;
    let proc = paths.procfs.as_path();
    let mnt =
        Namespace::open(proc, Some(target.pid), NsKind::Mount).map_err(ApplyError::Namespace)?;
    let user =
        Namespace::open(proc, Some(target.pid), NsKind::User).map_err(ApplyError::Namespace)?;
    let own_user = Namespace::open(proc, None, NsKind::User).map_err(ApplyError::Namespace)?;
    let userns = !user.same_as(&own_user);
    log::debug!(
        "container {}: root {:?}, {}",
        target.pid,
        target.rootfs,
        if userns {
            "own user namespace"
        } else {
            "host user namespace"
        }
    );
    let prepared = Prepared::collect(paths, plan, userns)?;
    if userns {
        user.enter().map_err(ApplyError::Namespace)?;
        crate::sys::ns::become_root().map_err(ApplyError::Namespace)?;
    }
    mnt.enter().map_err(ApplyError::Namespace)?;
    caps::keep(caps::Step::ApplyContainer)?;
    let root = ContainerRoot::open(&target.rootfs)?;
    apply_in_root(&root, plan, prepared)?;
    // In the container's namespaces, as its root: the cache is the
    // container's file (`docs/linker-cache.md`).
    if !plan.ld_cache.is_empty() {
        crate::ldcache_write::update(&root, &plan.ld_cache)?;
    }
    Ok(())
}

/// A device node's host-side facts.
#[derive(Debug)]
struct NodePrep {
    /// Permission bits: the host node's, else the plan's.
    mode: u32,
    /// The host node, cloned for binding (user namespaces only).
    bind: Option<OwnedFd>,
}

/// The `/proc/driver/nvidia` mask's content.
#[derive(Debug)]
struct ProcPrep {
    /// `params` (rewritten), `version`, `registry`.
    files: Vec<(&'static str, Vec<u8>)>,
    /// `gpus/<bus id>` of the selected GPUs: name and clone.
    gpus: Vec<(String, OwnedFd)>,
    /// MIG access files: path under `/proc/driver/nvidia` and clone.
    mig: Vec<(Vec<String>, OwnedFd)>,
}

/// Everything that comes from the host, gathered before entering the
/// container: detached clones of every bind source with their flags set,
/// and file contents.
#[derive(Debug)]
pub struct Prepared {
    mounts: Vec<OwnedFd>,
    nodes: Vec<NodePrep>,
    proc: Option<ProcPrep>,
}

fn host_clone(path: &Path, flags: OFlag, attrs: Attrs) -> Result<OwnedFd, ApplyError> {
    let fd = fs::open_host(path, OFlag::O_PATH | flags).map_err(|source| ApplyError::HostOpen {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    let err = |source| ApplyError::Clone {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let tree = mount::clone_tree(&fd, false, path.to_path_buf()).map_err(err)?;
    mount::set_attrs(&tree, attrs).map_err(err)?;
    Ok(tree)
}

/// The host path of a container path under `/dev` (`/dev/nvidia0` is
/// `<dev_root>/nvidia0`) or `/proc`.
fn under(root: &Path, path: &ContainerPath, prefix: &str) -> PathBuf {
    let rest = path
        .as_str()
        .strip_prefix(prefix)
        .unwrap_or(path.as_str())
        .trim_start_matches('/');
    root.join(rest)
}

fn read_small(path: &Path) -> Result<Option<Vec<u8>>, ApplyError> {
    let err = |source| ApplyError::HostRead {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let mut buf = Vec::new();
    file.take(1 << 20).read_to_end(&mut buf).map_err(err)?;
    Ok(Some(buf))
}

impl Prepared {
    /// Gathers the host side of `plan`. With `bind_nodes` (a user
    /// namespace, where `mknod` is refused) the host device nodes are cloned
    /// too.
    pub fn collect(
        paths: &HostPaths,
        plan: &Plan,
        bind_nodes: bool,
    ) -> Result<Prepared, ApplyError> {
        let mut mounts = Vec::with_capacity(plan.mounts.len());
        for m in &plan.mounts {
            let path = Path::new(m.source.as_str());
            let dir = match m.kind {
                MountKind::Directory => OFlag::O_DIRECTORY,
                MountKind::File => OFlag::empty(),
            };
            mounts.push(host_clone(path, dir, attrs(m.flags))?);
        }
        let mut nodes = Vec::with_capacity(plan.device_nodes.len());
        for n in &plan.device_nodes {
            let host = under(&paths.dev_root, &n.path, "/dev");
            let rdev = nix::sys::stat::makedev(n.major.into(), n.minor.into());
            let mode = match fs::stat_host(&host) {
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
                        && st.st_rdev == rdev =>
                {
                    st.st_mode & 0o7777
                }
                _ => n.mode,
            };
            let bind = if bind_nodes {
                Some(host_clone(
                    &host,
                    OFlag::empty(),
                    Attrs {
                        nosuid: true,
                        noexec: true,
                        ..Attrs::default()
                    },
                )?)
            } else {
                None
            };
            nodes.push(NodePrep { mode, bind });
        }
        let proc = match &plan.proc_mask {
            Some(mask) => ProcPrep::collect(paths, mask)?,
            None => None,
        };
        Ok(Prepared {
            mounts,
            nodes,
            proc,
        })
    }
}

impl ProcPrep {
    fn collect(paths: &HostPaths, mask: &rules::ProcMask) -> Result<Option<ProcPrep>, ApplyError> {
        let host = paths.proc_root.join("driver/nvidia");
        if !host.is_dir() {
            log::debug!("{host:?} does not exist: /proc/driver/nvidia is not masked");
            return Ok(None);
        }
        let mut files = Vec::new();
        for name in ["params", "version", "registry"] {
            if let Some(mut content) = read_small(&host.join(name))? {
                if name == "params" {
                    content = rules::plan::rewrite_params(&String::from_utf8_lossy(&content))
                        .into_bytes();
                }
                files.push((name, content));
            }
        }
        let mut gpus = Vec::new();
        for bus in &mask.gpus {
            let mut found = false;
            for name in bus.proc_names() {
                let dir = host.join("gpus").join(&name);
                if dir.is_dir() {
                    gpus.push((name, host_clone(&dir, OFlag::O_DIRECTORY, PROC_ATTRS)?));
                    found = true;
                    break;
                }
            }
            if !found {
                log::warn!("{host:?}/gpus has no entry for GPU {bus}");
            }
        }
        let mut mig = Vec::new();
        for access in &mask.mig_access {
            let Some(rest) = access.as_str().strip_prefix(rules::plan::PROC_DRIVER_DIR) else {
                continue;
            };
            let comps: Vec<String> = rest
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            let src = under(&paths.proc_root, access, "/proc");
            if comps.is_empty() || !src.exists() {
                log::warn!("MIG access file {src:?} is missing on the host");
                continue;
            }
            mig.push((comps, host_clone(&src, OFlag::empty(), PROC_ATTRS)?));
        }
        Ok(Some(ProcPrep { files, gpus, mig }))
    }
}

/// Held directories of the container, by path.
struct Dirs<'r> {
    root: &'r ContainerRoot,
    map: BTreeMap<ContainerPath, OwnedFd>,
}

impl<'r> Dirs<'r> {
    fn new(root: &'r ContainerRoot) -> Self {
        Dirs {
            root,
            map: BTreeMap::new(),
        }
    }

    fn get(&mut self, path: &ContainerPath) -> Result<&OwnedFd, RootError> {
        if !self.map.contains_key(path) {
            let fd = self.root.mkdir_all(path)?;
            self.map.insert(path.clone(), fd);
        }
        Ok(&self.map[path])
    }

    /// Forgets `path` and everything under it (something was mounted there).
    fn invalidate(&mut self, path: &ContainerPath) {
        let prefix = format!("{}/", path.as_str().trim_end_matches('/'));
        self.map
            .retain(|p, _| p != path && !p.as_str().starts_with(&prefix));
    }
}

/// Applies `plan` inside `root` with the host side `prepared` (the caller
/// is already in the container's namespaces).
pub fn apply_in_root(
    root: &ContainerRoot,
    plan: &Plan,
    prepared: Prepared,
) -> Result<(), ApplyError> {
    let mut dirs = Dirs::new(root);
    let Prepared {
        mounts,
        nodes,
        proc,
    } = prepared;

    for (node, prep) in plan.device_nodes.iter().zip(nodes) {
        let Some(parent) = node.path.parent() else {
            continue;
        };
        let dir = dirs.get(&parent)?;
        let outcome =
            root.mknod_char(dir, &node.path, (prep.mode, node.major, node.minor), (0, 0))?;
        match (outcome, prep.bind) {
            (NodeOutcome::Created, _) => log::debug!(
                "device node {} c {}:{} mode {:o}",
                node.path,
                node.major,
                node.minor,
                prep.mode
            ),
            (NodeOutcome::NotPermitted, Some(bind)) => {
                let name = node.path.file_name_str().unwrap_or_default();
                let file = root.create_file_in(dir, &node.path, name, 0o644)?;
                mount::attach(&bind, &file).map_err(|source| ApplyError::Mount {
                    source_path: PathBuf::from(node.path.as_str()),
                    destination: node.path.clone(),
                    source: Box::new(source),
                })?;
                log::debug!(
                    "device node {} bound from the host (user namespace)",
                    node.path
                );
            }
            (NodeOutcome::NotPermitted, None) => {
                return Err(ApplyError::NodeNotPermitted {
                    path: node.path.clone(),
                })
            }
        }
    }

    for (m, tree) in plan.mounts.iter().zip(mounts) {
        let target = match m.kind {
            MountKind::File => {
                let (Some(parent), Some(name)) =
                    (m.destination.parent(), m.destination.file_name_str())
                else {
                    continue;
                };
                let dir = dirs.get(&parent)?;
                root.create_file_in(dir, &m.destination, name, 0o644)?
            }
            MountKind::Directory => root.mkdir_all(&m.destination)?,
        };
        mount::attach(&tree, &target).map_err(|source| ApplyError::Mount {
            source_path: PathBuf::from(m.source.as_str()),
            destination: m.destination.clone(),
            source: Box::new(source),
        })?;
        if m.kind == MountKind::Directory {
            dirs.invalidate(&m.destination);
        }
        log::debug!(
            "mount {} on {} ({})",
            m.source,
            m.destination,
            m.flags.options().join(",")
        );
    }

    for l in &plan.symlinks {
        let Some(parent) = l.link.parent() else {
            continue;
        };
        let dir = dirs.get(&parent)?;
        root.symlink_in(dir, &l.link, &l.target)?;
        log::debug!("symlink {} -> {}", l.link, l.target);
    }
    for l in &plan.dev_links {
        let Some(parent) = l.link.parent() else {
            continue;
        };
        let dir = dirs.get(&parent)?;
        let target = l.target();
        root.symlink_to(dir, &l.link, &target)?;
        log::debug!("symlink {} -> {target}", l.link);
    }

    if let Some(p) = proc {
        mask_proc(root, p)?;
    }
    if let Some(profile) = &plan.app_profile {
        write_app_profile(root, &profile.render())?;
    }
    Ok(())
}

fn tmpfs_err(path: &ContainerPath) -> impl Fn(MountError) -> ApplyError + '_ {
    move |source| ApplyError::Tmpfs {
        path: path.clone(),
        source: Box::new(source),
    }
}

/// Creates `name` in a tmpfs directory `dir` the hook made, mode 0555.
fn tmpfs_dir(dir: &OwnedFd, at: &ContainerPath, name: &str) -> Result<OwnedFd, ApplyError> {
    let err = |source| ApplyError::TmpfsFile {
        path: at.clone(),
        source: Box::new(source),
    };
    match fs::mkdirat(dir, name, 0o555) {
        Ok(()) => {}
        Err(e) if e.errno() == Errno::EEXIST => {}
        Err(e) => return Err(err(e)),
    }
    fs::openat2(
        dir,
        Path::new(name),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        NO_SYMLINKS,
    )
    .map_err(err)
}

fn tmpfs_file(
    dir: &OwnedFd,
    at: &ContainerPath,
    name: &str,
    content: &[u8],
) -> Result<(), ApplyError> {
    let err = |source| ApplyError::TmpfsFile {
        path: at.clone(),
        source: Box::new(source),
    };
    let fd = fs::openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
        0o444,
    )
    .map_err(err)?;
    fs::write_all(fd, content).map_err(err)
}

/// The container's `/proc/driver/nvidia` becomes a read-only tmpfs with
/// the rewritten `params`, `version`, `registry` and only the selected
/// GPUs' `gpus/<bus id>` (and MIG access files) bound back from the host.
///
/// When the container's procfs has no `driver/nvidia` (the host's proc root
/// is not the kernel's: the simulated host, or a driver not loaded), the
/// tmpfs goes on `/proc/driver` and holds `nvidia/`.
fn mask_proc(root: &ContainerRoot, prep: ProcPrep) -> Result<(), ApplyError> {
    let nv = cpath(rules::plan::PROC_DRIVER_DIR);
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let (target, at, nested) = match root.resolve(&nv, dir_flags) {
        Ok(fd) => (fd, nv.clone(), false),
        Err(e) if e.errno() == Some(Errno::ENOENT) => {
            let drv = cpath("/proc/driver");
            match root.resolve(&drv, dir_flags) {
                Ok(fd)
                    if fs::is_procfs(&fd).map_err(|source| ApplyError::TmpfsFile {
                        path: drv.clone(),
                        source: Box::new(source),
                    })? =>
                {
                    (fd, drv, true)
                }
                Ok(_) => (root.mkdir_all(&nv)?, nv.clone(), false),
                Err(e) if e.errno() == Some(Errno::ENOENT) => {
                    (root.mkdir_all(&nv)?, nv.clone(), false)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let tmp = mount::tmpfs(
        &[("mode", "0555")],
        Attrs {
            read_only: false,
            ..PROC_ATTRS
        },
    )
    .map_err(tmpfs_err(&at))?;
    let nested_fd;
    let base = if nested {
        nested_fd = tmpfs_dir(&tmp, &nv, "nvidia")?;
        &nested_fd
    } else {
        &tmp
    };
    for (name, content) in &prep.files {
        tmpfs_file(base, &nv, name, content)?;
    }
    let gpus_dir = tmpfs_dir(base, &nv, "gpus")?;
    let mut binds = Vec::new();
    for (name, tree) in prep.gpus {
        let d = tmpfs_dir(&gpus_dir, &nv, &name)?;
        binds.push((format!("{nv}/gpus/{name}"), tree, d));
    }
    for (comps, tree) in prep.mig {
        let Some((file, dirs)) = comps.split_last() else {
            continue;
        };
        let mut d = tmpfs_dir(base, &nv, ".")?;
        for c in dirs {
            d = tmpfs_dir(&d, &nv, c)?;
        }
        let path = cpath(&format!("{nv}/{}", comps.join("/")));
        let f = root.create_file_in(&d, &path, file, 0o444)?;
        binds.push((path.to_string(), tree, f));
    }
    mount::attach(&tmp, &target).map_err(tmpfs_err(&at))?;
    for (path, tree, on) in binds {
        mount::attach(&tree, &on).map_err(|source| ApplyError::Mount {
            source_path: PathBuf::from(&path),
            destination: cpath(&path),
            source: Box::new(source),
        })?;
        log::debug!("bound the host's {path} into the /proc mask");
    }
    mount::set_attrs(&tmp, PROC_ATTRS).map_err(tmpfs_err(&at))?;
    log::debug!("masked {at} with a read-only tmpfs");
    Ok(())
}

/// The graphics application profile: a read-only tmpfs on
/// [`rules::plan::APP_PROFILE_DIR`] holding [`rules::plan::APP_PROFILE_FILE`].
fn write_app_profile(root: &ContainerRoot, content: &str) -> Result<(), ApplyError> {
    let at = cpath(rules::plan::APP_PROFILE_DIR);
    let target = root.mkdir_all(&at)?;
    let tmp = mount::tmpfs(
        &[("mode", "0755")],
        Attrs {
            nosuid: true,
            nodev: true,
            noexec: true,
            ..Attrs::default()
        },
    )
    .map_err(tmpfs_err(&at))?;
    tmpfs_file(&tmp, &at, rules::plan::APP_PROFILE_FILE, content.as_bytes())?;
    mount::attach(&tmp, &target).map_err(tmpfs_err(&at))?;
    mount::set_attrs(&tmp, PROC_ATTRS).map_err(tmpfs_err(&at))?;
    log::debug!("wrote the application profile in {at}");
    Ok(())
}
