//! Resolving paths inside the driver root without ever leaving it.
//!
//! The driver root is host-trusted (it is `/`, or a containerised driver's
//! directory such as `/run/nvidia/driver`), but its symlinks are written for
//! its own view of the file system. So paths are walked one component at a
//! time with `lstat`/`readlink`, as if the root were `/`:
//!
//! - an absolute link target restarts at the driver root (libnvidia-container
//!   does the same in `do_path_resolve`);
//! - a `..` that would climb above the root is **refused**
//!   ([`ResolveError::Escapes`]), not clamped: such a link was not made for
//!   this root, and following it could pick up an unrelated host file;
//! - at most [`MAX_LINKS`] links are followed (`ELOOP`).
//!
//! The host prefix is never canonicalised. Resolved directories are
//! memoised, so resolving every library of a driver costs a few `lstat`s
//! each. The result is a string (the path inside the root) used as a mount
//! source on the host: that is acceptable for the driver root, which the
//! image does not control, and never done for container paths.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// Most symlinks followed while resolving one path (Linux's `MAXSYMLINKS`).
pub const MAX_LINKS: u32 = 40;

/// Why a path could not be resolved inside the root.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Some component does not exist.
    #[error("{path} does not exist in the driver root")]
    NotFound {
        /// The path inside the root.
        path: String,
    },
    /// A symlink leads out of the root.
    #[error("refusing symlink {link} -> {target} in the driver root {}: it leads outside the root", root.display())]
    Escapes {
        /// The driver root.
        root: PathBuf,
        /// The link, inside the root.
        link: String,
        /// Its target as written.
        target: String,
    },
    /// Too many symlinks.
    #[error("too many levels of symbolic links resolving {path} in the driver root")]
    TooManyLinks {
        /// The path inside the root.
        path: String,
    },
    /// A component that must be a directory is not one.
    #[error("{path} is not a directory in the driver root")]
    NotADirectory {
        /// The path inside the root.
        path: String,
    },
    /// `lstat` or `readlink` failed otherwise.
    #[error("cannot inspect {}", path.display())]
    Io {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A resolved path.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The path inside the root: absolute, normalised, no symlink in it.
    pub inside: String,
    /// The same file on the host.
    pub host: PathBuf,
    /// Its `lstat` (never a symlink).
    pub meta: Metadata,
}

/// Resolves paths inside one root, memoising directories.
#[derive(Debug)]
pub struct Resolver {
    root: PathBuf,
    dirs: HashMap<String, String>,
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

impl Resolver {
    /// A resolver for `root` (a host directory).
    pub fn new(root: &Path) -> Resolver {
        Resolver {
            root: root.to_path_buf(),
            dirs: HashMap::new(),
        }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of a resolved path inside the root.
    pub fn host(&self, inside: &str) -> PathBuf {
        let rel = inside.trim_start_matches('/');
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn lstat(&self, inside: &str) -> Result<Option<Metadata>, ResolveError> {
        let host = self.host(inside);
        match std::fs::symlink_metadata(&host) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
            Err(source) => Err(ResolveError::Io { path: host, source }),
        }
    }

    /// Resolves `path` (absolute, as seen inside the root; `.`, `..` and
    /// repeated slashes allowed) to the file it names.
    pub fn resolve(&mut self, path: &str) -> Result<Resolved, ResolveError> {
        let mut links = 0;
        let inside = self.walk(path, &mut links).map_err(|e| match e {
            // The path itself climbs out (no symlink to blame).
            ResolveError::Escapes { root, link, .. } if link.is_empty() => ResolveError::Escapes {
                root,
                link: path.to_owned(),
                target: path.to_owned(),
            },
            other => other,
        })?;
        let meta = self.lstat(&inside)?.ok_or_else(|| ResolveError::NotFound {
            path: path.to_owned(),
        })?;
        Ok(Resolved {
            host: self.host(&inside),
            inside,
            meta,
        })
    }

    /// Resolves a directory (memoised).
    fn walk_dir(&mut self, path: &str, links: &mut u32) -> Result<String, ResolveError> {
        if path.is_empty() || path == "/" {
            return Ok("/".to_owned());
        }
        if let Some(done) = self.dirs.get(path) {
            return Ok(done.clone());
        }
        let resolved = self.walk(path, links)?;
        if resolved != "/" {
            match self.lstat(&resolved)? {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    return Err(ResolveError::NotADirectory {
                        path: path.to_owned(),
                    })
                }
                None => {
                    return Err(ResolveError::NotFound {
                        path: path.to_owned(),
                    })
                }
            }
        }
        self.dirs.insert(path.to_owned(), resolved.clone());
        Ok(resolved)
    }

    /// The symlink-free path `path` names (the last component may not exist).
    fn walk(&mut self, path: &str, links: &mut u32) -> Result<String, ResolveError> {
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Ok("/".to_owned());
        }
        let (dir, name) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        let dir = self.walk_dir(dir, links)?;
        match name {
            "" | "." => return Ok(dir),
            ".." => {
                // Not attributed yet: the symlink whose target this is
                // (or `resolve`, for the input itself) fills in the names.
                return parent(&dir)
                    .map(str::to_owned)
                    .ok_or_else(|| ResolveError::Escapes {
                        root: self.root.clone(),
                        link: String::new(),
                        target: String::new(),
                    });
            }
            _ => {}
        }
        let candidate = join(&dir, name);
        let Some(meta) = self.lstat(&candidate)? else {
            return Err(ResolveError::NotFound { path: candidate });
        };
        if !meta.file_type().is_symlink() {
            return Ok(candidate);
        }
        *links += 1;
        if *links > MAX_LINKS {
            return Err(ResolveError::TooManyLinks { path: candidate });
        }
        let host = self.host(&candidate);
        let target = std::fs::read_link(&host).map_err(|source| ResolveError::Io {
            path: host.clone(),
            source,
        })?;
        let target = target.to_string_lossy().into_owned();
        let next = if target.starts_with('/') {
            target.clone()
        } else {
            join(&dir, &target)
        };
        self.walk(&next, links).map_err(|e| match e {
            // This link's target climbs out: name it, with its target as
            // written. A link further down the chain has named itself.
            ResolveError::Escapes { root, link, .. } if link.is_empty() => ResolveError::Escapes {
                root,
                link: candidate.clone(),
                target: target.clone(),
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// An adversarial tree (after libpathrs's `create_basic_tree`).
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("usr/lib/x86_64-linux-gnu/libcuda.so.535.1"), b"x").unwrap();
        std::fs::write(r.join("etc/passwd"), b"inside").unwrap();
        let lib = r.join("usr/lib/x86_64-linux-gnu");
        symlink("libcuda.so.535.1", lib.join("libcuda.so.1")).unwrap();
        symlink("libcuda.so.1", lib.join("libcuda.so")).unwrap();
        symlink("../../../etc/passwd", lib.join("rel-inside")).unwrap();
        symlink("/etc/passwd", lib.join("abs-inside")).unwrap();
        symlink("../../../../etc/passwd", lib.join("escape-link1")).unwrap();
        symlink("/../../../../..", lib.join("root-link")).unwrap();
        symlink("loop-b", lib.join("loop-a")).unwrap();
        symlink("loop-a", lib.join("loop-b")).unwrap();
        symlink("nowhere", lib.join("dangling")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("lib/x86_64-linux-gnu/libcuda.so.1", r.join("usr/notdir")).unwrap();
        dir
    }

    #[test]
    fn resolves_inside_and_refuses_escapes() {
        let dir = tree();
        let mut r = Resolver::new(dir.path());
        let lib = "/usr/lib/x86_64-linux-gnu";
        let got = r.resolve(&format!("{lib}/libcuda.so")).unwrap();
        assert_eq!(got.inside, format!("{lib}/libcuda.so.535.1"));
        assert_eq!(
            got.host,
            dir.path().join("usr/lib/x86_64-linux-gnu/libcuda.so.535.1")
        );
        assert!(got.meta.is_file());
        assert_eq!(
            r.resolve("/lib/x86_64-linux-gnu/libcuda.so.1")
                .unwrap()
                .inside,
            format!("{lib}/libcuda.so.535.1")
        );
        assert_eq!(
            r.resolve(&format!("{lib}/rel-inside")).unwrap().inside,
            "/etc/passwd"
        );
        assert_eq!(
            r.resolve(&format!("{lib}/abs-inside")).unwrap().inside,
            "/etc/passwd"
        );
        assert_eq!(
            r.resolve("/usr/./lib//../lib/x86_64-linux-gnu/libcuda.so.1")
                .unwrap()
                .inside,
            format!("{lib}/libcuda.so.535.1")
        );
        let err = r.resolve(&format!("{lib}/escape-link1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing symlink {lib}/escape-link1 -> ../../../../etc/passwd in the driver root {}: it leads outside the root",
                dir.path().display()
            )
        );
        assert!(matches!(
            r.resolve(&format!("{lib}/root-link/etc")),
            Err(ResolveError::Escapes { .. })
        ));
        match r.resolve("/../etc/passwd") {
            Err(ResolveError::Escapes { link, .. }) => assert_eq!(link, "/../etc/passwd"),
            other => panic!("{other:?}"),
        }
        symlink(
            "escape-link1",
            dir.path().join("usr/lib/x86_64-linux-gnu/via-escape"),
        )
        .unwrap();
        match r.resolve(&format!("{lib}/via-escape")) {
            Err(ResolveError::Escapes { link, target, .. }) => {
                assert_eq!(link, format!("{lib}/escape-link1"));
                assert_eq!(target, "../../../../etc/passwd");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.resolve(&format!("{lib}/loop-a")),
            Err(ResolveError::TooManyLinks { .. })
        ));
        assert!(matches!(
            r.resolve(&format!("{lib}/dangling")),
            Err(ResolveError::NotFound { .. })
        ));
        assert!(matches!(
            r.resolve("/usr/notdir/x"),
            Err(ResolveError::NotADirectory { .. })
        ));
        assert!(matches!(
            r.resolve("/nonexistent/x"),
            Err(ResolveError::NotFound { .. })
        ));
        assert_eq!(r.resolve("/").unwrap().inside, "/");
    }
}
