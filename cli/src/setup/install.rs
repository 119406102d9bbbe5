//! Installing a generated file: idempotently, atomically, with a backup of
//! what it replaces, or as a diff (`--dry-run`).
//!
//! - Same bytes as on disk: nothing is written, no backup.
//! - Otherwise the old file is copied to `<file>.bak-<UTC timestamp>`, the
//!   new content written to `<file>.tmp-<pid>` (the old file's mode, else
//!   `0644`), synced and renamed over the file; missing parent directories
//!   are created (`0755`).
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file could not be read or installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The existing file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The existing file is not UTF-8 text.
    #[error("cannot update {}: it is not UTF-8 text; fix or remove it first", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// Writing (backup, temporary file, rename, directory) failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The file already had this content.
    Unchanged,
    /// The file was written; the backup of the old one, if there was one.
    Written {
        /// `<file>.bak-<timestamp>`.
        backup: Option<PathBuf>,
    },
}

/// The current content of `path`, `None` when it does not exist.
pub fn read_existing(path: &Path) -> Result<Option<String>, InstallError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| InstallError::NotText {
                path: path.to_path_buf(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InstallError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A unified diff from `old` (absent: empty) to `new`, labelled with
/// `path`; empty when they are equal.
pub fn diff(path: &Path, old: Option<&str>, new: &str) -> String {
    let old = old.unwrap_or("");
    if old == new {
        return String::new();
    }
    let shown = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{shown} (current)"), &format!("{shown} (new)"))
        .to_string()
}

fn timestamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Installs `new` at `path` (module docs). `old` is the content read with
/// [`read_existing`] (compared, and backed up when it differs).
pub fn install(path: &Path, old: Option<&str>, new: &str) -> Result<Installed, InstallError> {
    if old == Some(new) {
        return Ok(Installed::Unchanged);
    }
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |source| InstallError::Write { path: p, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(werr(parent))?;
    }
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let backup = match old {
        Some(old) => {
            let stamp = timestamp();
            let mut n = 0;
            let backup = loop {
                let mut name = path.as_os_str().to_owned();
                name.push(format!(".bak-{stamp}"));
                if n > 0 {
                    name.push(format!(".{n}"));
                }
                let candidate = PathBuf::from(name);
                if !candidate.exists() {
                    break candidate;
                }
                n += 1;
            };
            write_new(&backup, old.as_bytes(), mode).map_err(werr(&backup))?;
            Some(backup)
        }
        None => None,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let result = write_new(&tmp, new.as_bytes(), mode)
        .map_err(werr(&tmp))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(werr(path)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| Installed::Written { backup })
}

/// Creates `path` (never following or reusing an existing name) with `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_with_one_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/daemon.json");
        assert_eq!(read_existing(&path).unwrap(), None);
        assert_eq!(
            install(&path, None, "a\n").unwrap(),
            Installed::Written { backup: None }
        );
        let old = read_existing(&path).unwrap();
        assert_eq!(
            install(&path, old.as_deref(), "a\n").unwrap(),
            Installed::Unchanged
        );
        let Installed::Written {
            backup: Some(backup),
        } = install(&path, old.as_deref(), "b\n").unwrap()
        else {
            panic!("no backup")
        };
        assert_eq!(std::fs::read_to_string(backup).unwrap(), "a\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            2
        );
    }

    #[test]
    fn diffs() {
        let p = Path::new("/etc/x.json");
        assert_eq!(diff(p, Some("a\n"), "a\n"), "");
        let d = diff(p, Some("a\nb\n"), "a\nc\n");
        assert!(
            d.starts_with("--- /etc/x.json (current)\n+++ /etc/x.json (new)\n"),
            "{d}"
        );
        assert!(d.contains("-b\n+c\n"), "{d}");
    }
}
