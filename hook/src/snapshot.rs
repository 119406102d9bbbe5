//! The inventory snapshot: one JSON file under the cache directory, so that
//! a container start never waits for NVML.
//!
//! Format ([`FORMAT`] = 1), in `<cache_dir>/inventory.json`:
//!
//! ```json
//! {"format": 2, "checksum": "crc32:1c291ca3",
//!  "fingerprint": {"settings": {...}, "kernel_version": "535.104.05",
//!                  "dev_nodes": [{"name": "nvidia0", "kind": "char", "rdev": 49920}, ...],
//!                  "ld_cache": {"dev": 2049, "ino": 1234, "size": 81920, "mtime_ns": ...},
//!                  "nvml_lib": "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.535.104.05",
//!                  "nvml_lib_id": {...}},
//!  "inventory": { rules::Inventory }}
//! ```
//!
//! The fingerprint is what can be checked cheaply and without NVML: the
//! settings discovery used (roots, cache path, NVML path, search path), the
//! NVRM version in `<proc>/driver/nvidia/version`, the `nvidia*` entries
//! of the dev root (and `nvidia-caps/`) with their type and device number,
//! the MIG GPU and compute instances the driver lists under
//! `<proc>/driver/nvidia/capabilities/gpu<N>/mig/` (names only: a MIG
//! reconfiguration creates or removes them), and the identity (device,
//! inode, size, mtime) of `ld.so.cache` and of the NVML library. It is taken *before* discovery, so a host that changes
//! while discovery runs leaves a snapshot that no longer matches.
//!
//! Loading trusts a snapshot only if it is a regular file owned by root (or
//! by the reading user) and not writable by group or others (it decides
//! which host files are mounted into containers), opened without following
//! a symlink, parses, has this format, validates
//! (`Inventory::validate`), its checksum matches (a damaged byte inside a
//! string still parses) and its fingerprint equals the host's now.
//! Anything else is a [`SnapshotError`], which callers log at debug level
//! before rediscovering; nothing here panics or trusts a stale answer.
//!
//! Writing is atomic: a new file (mode 0644, whatever the umask) in the same
//! directory, then `rename`. It is not fsynced: the default directory is on
//! tmpfs, and a torn file after a crash is merely corrupt, i.e. rediscovered.
#![forbid(unsafe_code)]

use std::fs::Metadata;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rules::Inventory;
use serde::{Deserialize, Serialize};

use crate::config::HookConfig;
use crate::discover;

/// The snapshot format version.
pub const FORMAT: u32 = 2;
/// The snapshot's file name in the cache directory.
pub const FILE_NAME: &str = "inventory.json";
/// Largest snapshot read.
pub const MAX_SNAPSHOT: u64 = 64 << 20;

/// The snapshot file for a cache directory.
pub fn path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(FILE_NAME)
}

/// The identity of a file: it changes when the file is replaced or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds.
    pub mtime_ns: i128,
}

impl FileId {
    /// The identity in `meta`.
    pub fn of(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// The type of a dev-root entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum NodeKind {
    Char,
    Block,
    Dir,
    File,
    Link,
    Other,
}

/// One `nvidia*` entry of the dev root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevNode {
    /// Its name relative to the dev root (`nvidia0`, `nvidia-caps/nvidia-cap1`).
    pub name: String,
    /// Its type.
    pub kind: NodeKind,
    /// `st_rdev` (0 unless a device).
    pub rdev: u64,
}

/// What discovery depended on in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Driver root.
    pub driver_root: PathBuf,
    /// Dev root.
    pub dev_root: PathBuf,
    /// Proc root.
    pub proc_root: PathBuf,
    /// Linker cache.
    pub ld_cache: PathBuf,
    /// Configured NVML library (`None`: from the cache).
    pub nvml_lib: Option<PathBuf>,
    /// Binary search path.
    pub binary_path: Vec<String>,
    /// MPS pipe directory.
    pub mps_pipe_dir: String,
    /// Sysfs root (DRM nodes).
    #[serde(default)]
    pub sys_root: PathBuf,
}

impl Settings {
    /// The settings of `cfg`.
    pub fn of(cfg: &HookConfig) -> Settings {
        Settings {
            driver_root: cfg.paths.driver_root.clone(),
            dev_root: cfg.paths.dev_root.clone(),
            proc_root: cfg.paths.proc_root.clone(),
            ld_cache: cfg.paths.ld_cache.clone(),
            nvml_lib: cfg.paths.nvml_lib.clone(),
            binary_path: cfg.binary_path.clone(),
            mps_pipe_dir: cfg.mps_pipe_dir.clone(),
            sys_root: cfg.paths.sys_root.clone(),
        }
    }
}

/// What a snapshot was taken against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// The configuration discovery used.
    pub settings: Settings,
    /// The NVRM version in `<proc>/driver/nvidia/version`.
    pub kernel_version: String,
    /// The dev root's `nvidia*` entries, sorted by name.
    pub dev_nodes: Vec<DevNode>,
    /// `ld.so.cache`'s identity.
    pub ld_cache: FileId,
    /// The NVML library used (a host path, symlinks resolved).
    pub nvml_lib: PathBuf,
    /// Its identity.
    pub nvml_lib_id: FileId,
    /// The MIG GPU and compute instances the driver has
    /// (`<proc>/driver/nvidia/capabilities/gpu<N>/mig/gi<G>[/ci<C>]`, e.g.
    /// `gpu0/gi1/ci0`): creating or destroying one changes the MIG devices
    /// and the capability minors discovery read from their access files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mig_instances: Vec<String>,
}

/// The file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// [`FORMAT`].
    pub format: u32,
    /// `crc32:<hex>` of the file written without this field: a byte
    /// damaged anywhere (a flipped bit in a path still parses) makes the
    /// snapshot untrusted. Set by [`write`], checked by [`read`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// What it was taken against.
    pub fingerprint: Fingerprint,
    /// The inventory.
    pub inventory: Inventory,
}

/// What changed since a snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Change {
    /// The configuration (roots, paths) differs.
    #[error("the configuration changed")]
    Settings,
    /// The kernel module's version differs.
    #[error("the driver version changed from {was} to {now}")]
    DriverVersion {
        /// In the snapshot.
        was: String,
        /// Now.
        now: String,
    },
    /// A `/dev/nvidia*` entry appeared, disappeared or changed.
    #[error("the /dev/nvidia* nodes changed ({detail})")]
    DevNodes {
        /// The first difference.
        detail: String,
    },
    /// A MIG GPU or compute instance was created or destroyed.
    #[error("the MIG instances changed")]
    Mig,
    /// `ld.so.cache` was rewritten or replaced.
    #[error("the linker cache was rewritten")]
    LdCache,
    /// The NVML library was replaced.
    #[error("the NVML library {} was replaced", path.display())]
    NvmlLib {
        /// The library.
        path: PathBuf,
    },
}

/// Why a snapshot was not used (or not written).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// There is none yet.
    #[error("no snapshot at {}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// It could not be read.
    #[error("cannot read snapshot {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It is not a root-owned, non-writable-by-others regular file.
    #[error("snapshot {} is not trusted: owner uid {uid}, mode {mode:o} (must be a regular file owned by root or uid {euid}, not writable by group or others)", path.display())]
    NotTrusted {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its mode bits.
        mode: u32,
        /// Our effective uid.
        euid: u32,
    },
    /// It does not parse.
    #[error("snapshot {} is corrupt", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// It parses, but its checksum does not match its content.
    #[error("snapshot {} is damaged (its checksum does not match)", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
    },
    /// It has another format version.
    #[error("snapshot {} has format {found}, this hook reads format {FORMAT}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
    /// Its inventory is inconsistent.
    #[error("snapshot {} holds an inconsistent inventory", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rules::inventory::InventoryError,
    },
    /// The host changed since it was taken.
    #[error("snapshot {} is stale", path.display())]
    Stale {
        /// The file.
        path: PathBuf,
        /// What changed.
        #[source]
        change: Change,
    },
    /// The host's state could not be read to compare.
    #[error("cannot fingerprint the host")]
    Fingerprint(#[source] FingerprintError),
    /// It could not be written.
    #[error("cannot write snapshot {}", path.display())]
    Write {
        /// The file (or directory).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl SnapshotError {
    /// True when writing failed only because the cache directory is not
    /// writable by this user (an unprivileged run): worth a debug line, not
    /// a warning.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, SnapshotError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied
                || source.raw_os_error() == Some(libc::EROFS))
    }
}

/// Why the host's fingerprint could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    /// The kernel driver version is unavailable.
    #[error("cannot read the kernel driver version")]
    KernelVersion(#[source] discover::DiscoverError),
    /// A file could not be `stat`ed or a directory listed.
    #[error("cannot inspect {}", path.display())]
    Stat {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn stat(path: &Path) -> Result<Metadata, FingerprintError> {
    std::fs::metadata(path).map_err(|source| FingerprintError::Stat {
        path: path.to_path_buf(),
        source,
    })
}

fn node(name: String, meta: &Metadata) -> DevNode {
    let t = meta.file_type();
    let kind = if t.is_char_device() {
        NodeKind::Char
    } else if t.is_block_device() {
        NodeKind::Block
    } else if t.is_dir() {
        NodeKind::Dir
    } else if t.is_file() {
        NodeKind::File
    } else if t.is_symlink() {
        NodeKind::Link
    } else {
        NodeKind::Other
    };
    let rdev = if matches!(kind, NodeKind::Char | NodeKind::Block) {
        meta.rdev()
    } else {
        0
    };
    DevNode { name, kind, rdev }
}

/// Entries of the dev root besides `nvidia*` whose change means
/// rediscovery: GDRCopy, InfiniBand (MOFED) and the DRM nodes.
const EXTRA_DEV_ENTRIES: &[&str] = &["gdrdrv", "infiniband", "dri"];
/// Directories of the dev root whose entries are fingerprinted too.
const DEV_SUBDIRS: &[&str] = &[
    "nvidia-caps",
    "nvidia-caps-imex-channels",
    "infiniband",
    "dri",
];

/// The `nvidia*`, `gdrdrv`, `infiniband` and `dri` entries of `dev_root`
/// (and of its [`DEV_SUBDIRS`]), sorted.
pub fn dev_nodes(dev_root: &Path) -> Result<Vec<DevNode>, FingerprintError> {
    let list = |dir: &Path, all: bool| -> Result<Vec<(String, Metadata)>, FingerprintError> {
        let err = |source| FingerprintError::Stat {
            path: dir.to_path_buf(),
            source,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !all && !name.starts_with("nvidia") && !EXTRA_DEV_ENTRIES.contains(&name.as_str()) {
                continue;
            }
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|source| FingerprintError::Stat { path, source })?;
            out.push((name, meta));
        }
        Ok(out)
    };
    let mut nodes = Vec::new();
    for (name, meta) in list(dev_root, false)? {
        if DEV_SUBDIRS.contains(&name.as_str()) && meta.is_dir() {
            for (sub, m) in list(&dev_root.join(&name), true)? {
                nodes.push(node(format!("{name}/{sub}"), &m));
            }
        }
        nodes.push(node(name, &meta));
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

impl Fingerprint {
    /// The host's fingerprint now, for the NVML library `nvml_lib` (a host
    /// path; its target's identity is recorded).
    pub fn take(cfg: &HookConfig, nvml_lib: &Path) -> Result<Fingerprint, FingerprintError> {
        let kernel_version = discover::kernel_driver_version(&cfg.paths.proc_root)
            .map_err(FingerprintError::KernelVersion)?;
        Ok(Fingerprint {
            settings: Settings::of(cfg),
            kernel_version,
            dev_nodes: dev_nodes(&cfg.paths.dev_root)?,
            ld_cache: FileId::of(&stat(&cfg.paths.ld_cache)?),
            nvml_lib: nvml_lib.to_path_buf(),
            nvml_lib_id: FileId::of(&stat(nvml_lib)?),
            mig_instances: discover::mig::instances(&cfg.paths.proc_root),
        })
    }

    /// Compares with the host now: the first change found, cheapest first.
    pub fn check(&self, cfg: &HookConfig) -> Result<Option<Change>, FingerprintError> {
        if self.settings != Settings::of(cfg) {
            return Ok(Some(Change::Settings));
        }
        let now = discover::kernel_driver_version(&cfg.paths.proc_root)
            .map_err(FingerprintError::KernelVersion)?;
        if now != self.kernel_version {
            return Ok(Some(Change::DriverVersion {
                was: self.kernel_version.clone(),
                now,
            }));
        }
        let nodes = dev_nodes(&cfg.paths.dev_root)?;
        if nodes != self.dev_nodes {
            return Ok(Some(Change::DevNodes {
                detail: node_difference(&self.dev_nodes, &nodes),
            }));
        }
        if discover::mig::instances(&cfg.paths.proc_root) != self.mig_instances {
            return Ok(Some(Change::Mig));
        }
        if FileId::of(&stat(&cfg.paths.ld_cache)?) != self.ld_cache {
            return Ok(Some(Change::LdCache));
        }
        match std::fs::metadata(&self.nvml_lib) {
            Ok(m) if FileId::of(&m) == self.nvml_lib_id => Ok(None),
            Ok(_) => Ok(Some(Change::NvmlLib {
                path: self.nvml_lib.clone(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(Change::NvmlLib {
                path: self.nvml_lib.clone(),
            })),
            Err(source) => Err(FingerprintError::Stat {
                path: self.nvml_lib.clone(),
                source,
            }),
        }
    }
}

fn node_difference(was: &[DevNode], now: &[DevNode]) -> String {
    for n in now {
        match was.iter().find(|w| w.name == n.name) {
            None => return format!("{} appeared", n.name),
            Some(w) if w != n => return format!("{} changed", n.name),
            Some(_) => {}
        }
    }
    for w in was {
        if !now.iter().any(|n| n.name == w.name) {
            return format!("{} disappeared", w.name);
        }
    }
    "order".to_owned()
}

/// Reads the snapshot for `cfg` and returns its inventory if it can be
/// trusted and still matches the host.
pub fn load(cfg: &HookConfig) -> Result<Inventory, SnapshotError> {
    let path = path(&cfg.paths.cache_dir);
    let snapshot = read(&path)?;
    snapshot
        .inventory
        .validate()
        .map_err(|source| SnapshotError::Invalid {
            path: path.clone(),
            source,
        })?;
    match snapshot
        .fingerprint
        .check(cfg)
        .map_err(SnapshotError::Fingerprint)?
    {
        None => Ok(snapshot.inventory),
        Some(change) => Err(SnapshotError::Stale { path, change }),
    }
}

/// Reads and parses a snapshot file, checking who may have written it, its
/// format and its checksum.
pub fn read(path: &Path) -> Result<Snapshot, SnapshotError> {
    let read_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SnapshotError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            SnapshotError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let euid = nix::unistd::geteuid().as_raw();
    let owner_ok = meta.uid() == 0 || meta.uid() == euid;
    if !meta.is_file() || !owner_ok || meta.mode() & 0o022 != 0 {
        return Err(SnapshotError::NotTrusted {
            path: path.to_path_buf(),
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
            euid,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_SNAPSHOT) as usize);
    file.take(MAX_SNAPSHOT)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let mut snapshot: Snapshot =
        serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Corrupt {
            path: path.to_path_buf(),
            source,
        })?;
    // Another hook version's file: say so rather than "damaged".
    if snapshot.format != FORMAT {
        return Err(SnapshotError::Format {
            path: path.to_path_buf(),
            found: snapshot.format,
        });
    }
    let stored = snapshot.checksum.take();
    if stored.is_none() || stored != checksum(&snapshot) {
        return Err(SnapshotError::Checksum {
            path: path.to_path_buf(),
        });
    }
    Ok(snapshot)
}

/// `crc32:<hex>` of the snapshot serialized without its checksum (the
/// serialization is deterministic: structs and sequences only).
fn checksum(snapshot: &Snapshot) -> Option<String> {
    let mut bare = snapshot.clone();
    bare.checksum = None;
    let bytes = serde_json::to_vec(&bare).ok()?;
    Some(format!("crc32:{:08x}", crc32fast::hash(&bytes)))
}

/// Writes `snapshot` into `cache_dir` atomically (creating the directory,
/// mode 0755, if needed); returns the file's path.
pub fn write(cache_dir: &Path, snapshot: &Snapshot) -> Result<PathBuf, SnapshotError> {
    let final_path = path(cache_dir);
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Write { path, source }
    };
    if !cache_dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cache_dir)
            .map_err(werr(cache_dir))?;
    }
    let mut sealed = snapshot.clone();
    sealed.checksum = checksum(snapshot);
    let json = serde_json::to_vec(&sealed).map_err(|e| SnapshotError::Write {
        path: final_path.clone(),
        source: std::io::Error::other(e),
    })?;
    // A name no other process uses (pid), and no other thread of this one
    // (create_new: on a clash, the next number).
    let mut n = 0u32;
    let (tmp, mut file) = loop {
        n += 1;
        let tmp = cache_dir.join(format!(".{FILE_NAME}.{}.{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(werr(&tmp)(e)),
        }
    };
    let result = (|| {
        // The mode is exact whatever the umask: readable by all, writable
        // by the owner (root).
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.write_all(&json)?;
        file.write_all(b"\n")?;
        drop(file);
        std::fs::rename(&tmp, &final_path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(&final_path)(e));
    }
    Ok(final_path)
}
