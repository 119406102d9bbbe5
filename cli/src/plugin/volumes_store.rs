//! The driver volumes on disk (nvidia-docker-v1.md §3):
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
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hook::discover::{elf, GLVND_NEEDS};
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

/// The volumes under `-d`.
pub struct VolumeStore {
    dir: PathBuf,
    create: Mutex<()>,
}

impl VolumeStore {
    /// The store at `dir`.
    pub fn new(dir: PathBuf) -> VolumeStore {
        VolumeStore {
            dir,
            create: Mutex::new(()),
        }
    }

    /// `-d`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a volume lives.
    pub fn mountpoint(&self, name: &VolumeName) -> PathBuf {
        self.dir.join(name.volume.name()).join(&name.version)
    }

    /// The mountpoint of an existing volume (any version).
    pub fn path(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let n = parse_name(name)?;
        let mp = self.mountpoint(&n);
        if mp.is_dir() {
            Ok(mp)
        } else {
            Err(VolumeError::NoSuch(name.to_owned()))
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
        if mp.is_dir() {
            return Ok(mp);
        }
        let parent = self.dir.join(n.volume.name());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&parent)
            .map_err(io_err("create directory", &parent))?;
        let tmp = parent.join(format!(".{}.tmp-{}", n.version, std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err("remove", &tmp))?;
        }
        let layout = filter_blacklisted(v1_layout(inv));
        let result = populate(&tmp, &layout)
            .and_then(|()| fs::rename(&tmp, &mp).map_err(io_err("rename into place", &mp)));
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result.map(|()| mp)
    }

    /// Removes a volume (any version); removing a missing one is no error.
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let n = parse_name(name)?;
        let mp = self.mountpoint(&n);
        let _one_at_a_time = self.create.lock();
        match fs::remove_dir_all(&mp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &mp)(e)),
        }
    }

    /// Every volume on disk: (Docker name, mountpoint), sorted.
    pub fn list(&self) -> Result<Vec<(String, PathBuf)>, VolumeError> {
        let mut out = Vec::new();
        for volume in V1Volume::ALL {
            let dir = self.dir.join(volume.name());
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read directory", &dir)(e)),
            };
            for e in entries {
                let e = e.map_err(io_err("read directory", &dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !e.path().is_dir() {
                    continue;
                }
                out.push((format!("{}_{name}", volume.name()), e.path()));
            }
        }
        out.sort();
        Ok(out)
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

/// v1's blacklist (nvidia-docker-v1.md §3) on the layout's files.
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
