//! The driver volumes on disk (docs/v1.md §3):
//! `<d>/nvidia_driver/<version>/{bin,lib,lib64}`.
//!
//! The content is `rules::v1::v1_layout` of the inventory, with v1's
//! blacklist applied to what the inventory lists (`libGL`, `libEGL`,
//! `libGLESv1_CM`, `libGLESv2` only when they need NVIDIA's GL core or
//! GLVND's dispatcher; `libnvidia-tls` only with the `.note.ABI-tag` of
//! ABI x.3.99). Unlike v1:
//! - each file is hard-linked, and **copied** when a hard link is
//!   impossible (another file system: `EXDEV`; `protected_hardlinks` without
//!   `CAP_FOWNER`: `EPERM`), instead of failing with `invalid cross-device
//!   link`;
//! - a volume is built in a hidden temporary directory and renamed into
//!   place, so a failure never leaves a half-populated volume.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hook::discover::{elf, GLVND_NEEDS};
use hook::sys::fs::{self as sysfs, Errno, FsError, OFlag, ResolveFlag, SFlag};
use rules::v1::{parse_docker_volume_name, v1_layout, V1Dir, V1File, V1Layout, V1Volume};
use rules::Inventory;

/// A refused volume request (HTTP 200 with `{"Err":"<msg>: <name>"}`) or a
/// file-system failure (HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The name is not `<volume>_<version>`.
    #[error("bad volume format: {0}")]
    BadFormat(String),
    /// The volume is not `nvidia_driver`.
    #[error("unsupported volume: {0}")]
    Unsupported(String),
    /// The volume does not exist.
    #[error("no such volume: {0}")]
    NoSuch(String),
    /// Create for another driver version than the host's.
    #[error("invalid volume version: {0}")]
    InvalidVersion(String),
    /// A file-system operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// The operation.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl VolumeError {
    /// True for the refusals v1 answered with `{"Err":...}` and status 200.
    pub fn is_logical(&self) -> bool {
        !matches!(self, VolumeError::Io { .. })
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A parsed volume name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeName {
    /// Which volume.
    pub volume: V1Volume,
    /// The driver version part.
    pub version: String,
}

/// Parses `nvidia_driver_<version>` with v1's grammar and errors.
pub fn parse_name(name: &str) -> Result<VolumeName, VolumeError> {
    let (volume, version) =
        parse_docker_volume_name(name).ok_or_else(|| VolumeError::BadFormat(name.to_owned()))?;
    let volume =
        V1Volume::from_name(volume).ok_or_else(|| VolumeError::Unsupported(name.to_owned()))?;
    Ok(VolumeName {
        volume,
        version: version.to_owned(),
    })
}

/// The volumes under `-d`, held as a directory descriptor: every request
/// names `nvidia_driver/<version>` below it and is resolved with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no request (Get,
/// Mount, Path, Remove, Create) can reach anything outside the store, even
/// through a link planted in it.
pub struct VolumeStore {
    dir: PathBuf,
    fd: OwnedFd,
    create: Mutex<()>,
}

/// Resolution of a name below a held store directory: no symlink, no `..`
/// out of it.
fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// A held directory's flags: a path, no reads.
const DIR_PATH: OFlag = OFlag::O_PATH.union(OFlag::O_DIRECTORY);

fn os_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(FsError) -> VolumeError + 'a {
    move |e| VolumeError::Io {
        op,
        path: path.to_path_buf(),
        source: io::Error::from_raw_os_error(e.errno() as i32),
    }
}

/// `/proc/self/fd/<fd>/<name>`: a path to `name` in a held directory, for
/// the path-based copy and link helpers (the directory is the one held,
/// whatever happens to the store's path meanwhile).
fn in_fd(fd: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd()))
}

impl VolumeStore {
    /// The store at `dir`, created (mode 0755) when missing, and held.
    pub fn open(dir: PathBuf) -> Result<VolumeStore, VolumeError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(io_err("create directory", &dir))?;
        let fd = sysfs::open_host(&dir, DIR_PATH).map_err(os_err("open", &dir))?;
        Ok(VolumeStore {
            dir,
            fd,
            create: Mutex::new(()),
        })
    }

    /// `-d`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a volume lives.
    pub fn mountpoint(&self, name: &VolumeName) -> PathBuf {
        self.dir.join(name.volume.name()).join(&name.version)
    }

    /// The directory of `volume` (`nvidia_driver`) in the store, held;
    /// `None` when absent (and not `create`d).
    fn volume_dir(&self, volume: V1Volume, create: bool) -> Result<Option<OwnedFd>, VolumeError> {
        let path = self.dir.join(volume.name());
        let name = Path::new(volume.name());
        match sysfs::openat2(&self.fd, name, DIR_PATH, beneath()) {
            Ok(fd) => return Ok(Some(fd)),
            Err(e) if e.errno() == Errno::ENOENT && create => {}
            Err(e) if e.errno() == Errno::ENOENT => return Ok(None),
            Err(e) => return Err(os_err("open", &path)(e)),
        }
        match sysfs::mkdirat(&self.fd, volume.name(), 0o755) {
            Ok(()) => {}
            Err(e) if e.errno() == Errno::EEXIST => {}
            Err(e) => return Err(os_err("create directory", &path)(e)),
        }
        sysfs::openat2(&self.fd, name, DIR_PATH, beneath())
            .map(Some)
            .map_err(os_err("open", &path))
    }

    /// True when `version` is a directory (not a link) in `parent`.
    fn has_version(parent: &OwnedFd, version: &str) -> bool {
        sysfs::openat2(parent, Path::new(version), DIR_PATH, beneath()).is_ok()
    }

    /// The mountpoint of an existing volume (any version).
    pub fn path(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let n = parse_name(name)?;
        match self.volume_dir(n.volume, false)? {
            Some(parent) if Self::has_version(&parent, &n.version) => Ok(self.mountpoint(&n)),
            _ => Err(VolumeError::NoSuch(name.to_owned())),
        }
    }

    /// Creates the volume for the current driver (`inv`) if missing.
    pub fn create(&self, name: &str, inv: &Inventory) -> Result<PathBuf, VolumeError> {
        let n = parse_name(name)?;
        if n.version != inv.driver_version.as_str() {
            return Err(VolumeError::InvalidVersion(name.to_owned()));
        }
        let mp = self.mountpoint(&n);
        let _one_at_a_time = self.create.lock();
        let Some(parent) = self.volume_dir(n.volume, true)? else {
            return Err(VolumeError::NoSuch(name.to_owned()));
        };
        if Self::has_version(&parent, &n.version) {
            return Ok(mp);
        }
        let tmp_name = format!(".{}.tmp-{}", n.version, std::process::id());
        let tmp = in_fd(&parent, &tmp_name);
        if sysfs::lstatat(&parent, &tmp_name).is_ok() {
            remove_entry(&parent, &tmp_name, &mp)?;
        }
        let layout = filter_blacklisted(v1_layout(inv));
        let result = populate(&tmp, &layout).and_then(|()| {
            sysfs::renameat(&parent, &tmp_name, &n.version)
                .map_err(os_err("rename into place", &mp))
        });
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result.map(|()| mp)
    }

    /// Removes a volume (any version); removing a missing one is no error.
    /// A link standing where a volume would be is removed, never followed.
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let n = parse_name(name)?;
        let mp = self.mountpoint(&n);
        let _one_at_a_time = self.create.lock();
        let Some(parent) = self.volume_dir(n.volume, false)? else {
            return Ok(());
        };
        remove_entry(&parent, &n.version, &mp)
    }

    /// Every volume on disk: (Docker name, mountpoint), sorted. Only real
    /// directories count (a link in the store is no volume).
    pub fn list(&self) -> Result<Vec<(String, PathBuf)>, VolumeError> {
        let mut out = Vec::new();
        for volume in V1Volume::ALL {
            let Some(parent) = self.volume_dir(volume, false)? else {
                continue;
            };
            let dir = self.dir.join(volume.name());
            let entries =
                fs::read_dir(in_fd(&parent, "")).map_err(io_err("read directory", &dir))?;
            for e in entries {
                let e = e.map_err(io_err("read directory", &dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if name.starts_with('.')
                    || !is_dir
                    || parse_name(&format!("{}_{name}", volume.name())).is_err()
                {
                    continue;
                }
                out.push((format!("{}_{name}", volume.name()), dir.join(&name)));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Removes `name` in the held `parent`: a directory is first renamed to a
/// hidden name in the same directory (so the tree removed is the one
/// renamed, reached through the held descriptor), anything else unlinked.
fn remove_entry(parent: &OwnedFd, name: &str, shown: &Path) -> Result<(), VolumeError> {
    let gone = |e: &FsError| e.errno() == Errno::ENOENT;
    let st = match sysfs::lstatat(parent, name) {
        Ok(st) => st,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(os_err("remove", shown)(e)),
    };
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFDIR {
        return match sysfs::unlinkat(parent, name, false) {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(os_err("remove", shown)(e)),
        };
    }
    let doomed = format!(".{name}.rm-{}", std::process::id());
    match sysfs::renameat(parent, name, &doomed) {
        Ok(()) => {}
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(os_err("remove", shown)(e)),
    }
    match fs::remove_dir_all(in_fd(parent, &doomed)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", shown)(e)),
    }
}

fn populate(tmp: &Path, layout: &V1Layout) -> Result<(), VolumeError> {
    let mut b = fs::DirBuilder::new();
    b.mode(0o755);
    b.create(tmp).map_err(io_err("create directory", tmp))?;
    for d in V1Dir::ALL {
        let p = tmp.join(d.name());
        b.create(&p).map_err(io_err("create directory", &p))?;
        // The mode is not subject to the umask of a caller.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", &p))?;
    }
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o755)).map_err(io_err("chmod", tmp))?;
    for f in &layout.files {
        let dst = tmp.join(f.dir.name()).join(f.name.as_str());
        link_or_copy(Path::new(f.source.as_str()), &dst)?;
    }
    for l in &layout.links {
        let dst = tmp.join(l.dir.name()).join(l.link.as_str());
        match std::os::unix::fs::symlink(l.target.as_str(), &dst) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("symlink", &dst)(e)),
        }
    }
    Ok(())
}

/// Hard link, or copy when linking is impossible (another file system,
/// `protected_hardlinks`).
pub fn link_or_copy(src: &Path, dst: &Path) -> Result<(), VolumeError> {
    match fs::hard_link(src, dst) {
        Ok(()) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc_exdev())
                || e.kind() == io::ErrorKind::PermissionDenied =>
        {
            log::debug!("copying {} ({e})", src.display());
            fs::copy(src, dst).map(|_| ()).map_err(io_err("copy", src))
        }
        Err(e) => Err(io_err("hard link", src)(e)),
    }
}

/// `EXDEV` (18 on every Linux architecture).
const fn libc_exdev() -> i32 {
    18
}

/// v1's blacklist (docs/v1.md §3) on the layout's files.
fn filter_blacklisted(mut layout: V1Layout) -> V1Layout {
    layout.files.retain(|f| !blacklisted(f));
    let files = &layout.files;
    layout
        .links
        .retain(|l| files.iter().any(|f| f.dir == l.dir && f.name == l.target));
    layout
}

/// `lib<stem>.so[.digits]` → stem (v1's `^.*/lib([\w-]+)\.so[\d.]*$`).
fn lib_stem(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("lib")?;
    let i = rest.find(".so")?;
    let (stem, tail) = (&rest[..i], &rest[i + 3..]);
    let stem_ok = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let tail_ok = tail.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    (stem_ok && tail_ok).then_some(stem)
}

fn blacklisted(f: &V1File) -> bool {
    let Some(stem) = lib_stem(f.name.as_str()) else {
        return false;
    };
    let path = Path::new(f.source.as_str());
    match stem {
        "EGL" | "GLESv1_CM" | "GLESv2" | "GL" => {
            !elf::inspect(path).is_ok_and(|i| i.needs_any(GLVND_NEEDS))
        }
        "nvidia-tls" => !elf::inspect(path).is_ok_and(|i| i.has_new_tls_abi()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(matches!(
            parse_name("nvidia_driver_375.66"),
            Ok(VolumeName { volume: V1Volume::NvidiaDriver, ref version }) if version == "375.66"
        ));
        assert_eq!(
            parse_name("foo").unwrap_err().to_string(),
            "bad volume format: foo"
        );
        assert_eq!(
            parse_name("nvidia_375.66").unwrap_err().to_string(),
            "unsupported volume: nvidia_375.66"
        );
        // Issue 13, finding 2: versions are digits and single dots between
        // digits; `..` and friends are no version.
        for bad in ["..", ".", "1..2", ".1", "1.", "...", "1./.."] {
            let name = format!("nvidia_driver_{bad}");
            assert_eq!(
                parse_name(&name).unwrap_err().to_string(),
                format!("bad volume format: {name}")
            );
        }
    }

    fn inventory(version: &str) -> Inventory {
        Inventory::new(rules::Version::parse(version).unwrap())
    }

    #[test]
    fn no_request_reaches_outside_the_store() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::create_dir_all(outside.join("9.9/lib64")).unwrap();
        fs::write(outside.join("9.9/lib64/keep"), "x").unwrap();
        let store = VolumeStore::open(d.path().join("store")).unwrap();
        store
            .create("nvidia_driver_1.0", &inventory("1.0"))
            .unwrap();
        // A link planted in the store: not a volume, never followed.
        std::os::unix::fs::symlink(
            outside.join("9.9"),
            d.path().join("store/nvidia_driver/9.9"),
        )
        .unwrap();
        assert_eq!(
            store.path("nvidia_driver_9.9").unwrap_err().to_string(),
            "no such volume: nvidia_driver_9.9"
        );
        assert_eq!(
            store.list().unwrap(),
            [(
                "nvidia_driver_1.0".to_owned(),
                d.path().join("store/nvidia_driver/1.0")
            )]
        );
        store.remove("nvidia_driver_9.9").unwrap();
        assert!(outside.join("9.9/lib64/keep").exists());
        assert!(fs::symlink_metadata(d.path().join("store/nvidia_driver/9.9")).is_err());
        for bad in ["nvidia_driver_..", "nvidia_driver_."] {
            assert!(store.path(bad).is_err());
            assert!(store.remove(bad).is_err());
            assert!(store.create(bad, &inventory("1.0")).is_err());
        }
        assert!(store.path("nvidia_driver_1.0").is_ok());
        // `nvidia_driver` itself a link out of the store: refused.
        let store2 = VolumeStore::open(d.path().join("store2")).unwrap();
        std::os::unix::fs::symlink(&outside, d.path().join("store2/nvidia_driver")).unwrap();
        assert!(store2.path("nvidia_driver_9.9").is_err());
        assert!(store2.remove("nvidia_driver_9.9").is_err());
        assert!(store2
            .create("nvidia_driver_1.0", &inventory("1.0"))
            .is_err());
        assert!(!outside.join("1.0").exists());
        assert!(outside.join("9.9/lib64/keep").exists());
    }

    #[test]
    fn stems() {
        assert_eq!(lib_stem("libGL.so.1.7.0"), Some("GL"));
        assert_eq!(lib_stem("libnvidia-tls.so.375.66"), Some("nvidia-tls"));
        assert_eq!(lib_stem("libGLX_nvidia.so.0"), Some("GLX_nvidia"));
        assert_eq!(lib_stem("nvidia-smi"), None);
        assert_eq!(lib_stem("libfoo.so.1a"), None);
    }

    #[test]
    fn copy_fallback_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("a");
        fs::write(&src, b"x").unwrap();
        link_or_copy(&src, &d.path().join("b")).unwrap();
        assert!(link_or_copy(&d.path().join("missing"), &d.path().join("c")).is_err());
        // /dev/shm is another file system on this kind of machine: copy.
        if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
            link_or_copy(&src, &shm.path().join("a")).unwrap();
            assert_eq!(fs::read(shm.path().join("a")).unwrap(), b"x");
        }
    }
}
