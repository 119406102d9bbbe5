//! The image's `ld.so.conf` checked before the sealed `ldconfig` reads it
//! (issue 13, finding 4): `ldconfig` opens each configuration file with a
//! blocking `fopen` and follows `include` lines without loop detection, so
//! an image whose `/etc/ld.so.conf` (or a file it includes) is a FIFO would
//! hold the start until the step's timeout, and an include loop would burn
//! its CPU limit and end in a line of thousands of repeated warnings.
//!
//! [`check`] walks the same files `ldconfig` would (`include` patterns,
//! relative to the including file's directory, `*` and `?` globs, names
//! starting with `.` only for patterns that do), each resolved inside the
//! root and opened non-blocking, and refuses with one line naming the
//! file: something other than a regular file, a file that includes itself
//! (directly or not), includes deeper than [`MAX_DEPTH`], a file larger
//! than [`MAX_CONF_BYTES`]. Only this path (`linker-cache = "ldconfig"`)
//! reads these files; the in-process writer never does.
#![forbid(unsafe_code)]

use std::io::Read;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use rules::ContainerPath;

use crate::apply::root::{ContainerRoot, RootError};
use crate::sys::fs;

/// The configuration file `ldconfig -f` is given.
pub const CONF: &str = "/etc/ld.so.conf";
/// Deepest chain of `include`s followed.
pub const MAX_DEPTH: usize = 16;
/// Largest configuration file read.
pub const MAX_CONF_BYTES: u64 = 1 << 20;
/// Most configuration files visited in all.
pub const MAX_FILES: usize = 4096;

/// Why the image's linker configuration would hold or break `ldconfig`.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// A FIFO, device, socket or directory where a file is read.
    #[error("{path} in the container is {what}, not a regular file: ldconfig would wait on it; remove it from the image or set linker-cache = \"hook\"")]
    NotRegular {
        /// The file.
        path: ContainerPath,
        /// "a FIFO", "a character device", ...
        what: &'static str,
    },
    /// An include loop.
    #[error("{path} in the container includes itself (through {via}): ldconfig would loop; fix the image's include lines or set linker-cache = \"hook\"")]
    Loop {
        /// The file included again.
        path: ContainerPath,
        /// The file whose `include` line reached it.
        via: ContainerPath,
    },
    /// Includes nested too deep, or too many files.
    #[error("{path} in the container is included {MAX_DEPTH} levels deep or after {MAX_FILES} files: refusing to follow ldconfig's include lines further")]
    TooDeep {
        /// The file.
        path: ContainerPath,
    },
    /// A file too large.
    #[error("{path} in the container is larger than {MAX_CONF_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: ContainerPath,
    },
    /// A lookup the image made fail (a symlink loop).
    #[error(transparent)]
    Resolve(#[from] RootError),
}

fn kind(mode: u32) -> Option<&'static str> {
    match SFlag::from_bits_truncate(mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => None,
        SFlag::S_IFIFO => Some("a FIFO"),
        SFlag::S_IFCHR => Some("a character device"),
        SFlag::S_IFBLK => Some("a block device"),
        SFlag::S_IFSOCK => Some("a socket"),
        SFlag::S_IFDIR => Some("a directory"),
        _ => Some("not a file"),
    }
}

fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

struct Walk<'a> {
    root: &'a ContainerRoot,
    /// (dev, ino) of the files being read, outermost first.
    stack: Vec<(u64, u64)>,
    visited: usize,
}

/// Checks the image's `ld.so.conf` and what it includes (module docs).
/// `Ok` when there is no `/etc/ld.so.conf`.
pub fn check(root: &ContainerRoot) -> Result<(), ConfError> {
    let conf = ContainerPath::new(CONF).unwrap_or_else(|_| ContainerPath::root());
    let mut walk = Walk {
        root,
        stack: Vec::new(),
        visited: 0,
    };
    walk.file(&conf, &conf, true)
}

impl Walk<'_> {
    fn open(&self, path: &ContainerPath) -> Result<Option<OwnedFd>, ConfError> {
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        match self.root.resolve(path, flags) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(None),
            // ldconfig would get EACCES/ENXIO too and go on.
            Err(e) if matches!(e.errno(), Some(Errno::EACCES | Errno::ENXIO)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn file(
        &mut self,
        path: &ContainerPath,
        via: &ContainerPath,
        top: bool,
    ) -> Result<(), ConfError> {
        let Some(fd) = self.open(path)? else {
            return Ok(());
        };
        let st = fs::fstat(&fd).map_err(|source| {
            ConfError::Resolve(RootError::Resolve {
                path: path.clone(),
                source: Box::new(source),
            })
        })?;
        if let Some(what) = kind(st.st_mode) {
            // ldconfig skips a directory named by a glob; the top file it
            // cannot read at all.
            if what == "a directory" && !top {
                return Ok(());
            }
            return Err(ConfError::NotRegular {
                path: path.clone(),
                what,
            });
        }
        #[allow(clippy::useless_conversion)] // dev_t/ino_t widths differ by target
        let id = (u64::from(st.st_dev), u64::from(st.st_ino));
        if self.stack.contains(&id) {
            return Err(ConfError::Loop {
                path: path.clone(),
                via: via.clone(),
            });
        }
        self.visited += 1;
        if self.stack.len() >= MAX_DEPTH || self.visited > MAX_FILES {
            return Err(ConfError::TooDeep { path: path.clone() });
        }
        let mut text = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_CONF_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| {
                ConfError::Resolve(RootError::Resolve {
                    path: path.clone(),
                    source: Box::new(fs::FsError::Write {
                        fd: -1,
                        len: 0,
                        source: e,
                    }),
                })
            })?;
        if text.len() as u64 > MAX_CONF_BYTES {
            return Err(ConfError::TooLarge { path: path.clone() });
        }
        self.stack.push(id);
        let dir = path.parent().unwrap_or_else(ContainerPath::root);
        for line in String::from_utf8_lossy(&text).lines() {
            let line = line.split('#').next().unwrap_or("").trim_start();
            let Some(rest) = line
                .strip_prefix("include")
                .filter(|r| r.starts_with([' ', '\t']))
            else {
                continue;
            };
            for pattern in rest.split([' ', '\t']).filter(|p| !p.is_empty()) {
                self.include(&dir, pattern, path)?;
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn include(
        &mut self,
        dir: &ContainerPath,
        pattern: &str,
        from: &ContainerPath,
    ) -> Result<(), ConfError> {
        let full = if pattern.starts_with('/') {
            pattern.to_owned()
        } else {
            format!("{}/{pattern}", dir.as_str().trim_end_matches('/'))
        };
        // `..` in an include is cleaned lexically (ContainerPath holds no
        // `..`); every lookup still resolves inside the root.
        let full = crate::container::clean_path(std::path::Path::new(&full));
        let full = full.to_string_lossy();
        let (pdir, name) = full.rsplit_once('/').unwrap_or(("", &full));
        let pdir = if pdir.is_empty() { "/" } else { pdir };
        let (Ok(pdir), false) = (ContainerPath::new(pdir), name.is_empty()) else {
            return Ok(());
        };
        if !name.contains(['*', '?']) {
            return match rules::FileName::new(name) {
                Ok(n) => self.file(&pdir.join(&n), from, false),
                Err(_) => Ok(()),
            };
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        let dfd = match self.root.resolve(&pdir, flags) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.errno(),
                    Some(Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES)
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e.into()),
        };
        let mut names = Vec::new();
        let _ = fs::read_dir(&dfd, |n| {
            if let Some(n) = n.to_str() {
                if (!n.starts_with('.') || name.starts_with('.'))
                    && glob_match(name.as_bytes(), n.as_bytes())
                {
                    names.push(n.to_owned());
                }
            }
        });
        names.sort();
        for n in names {
            if let Ok(n) = rules::FileName::new(n) {
                self.file(&pdir.join(&n), from, false)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(files: &[(&str, &str)]) -> (tempfile::TempDir, ContainerRoot) {
        let d = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = d.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let root = ContainerRoot::open(d.path()).unwrap();
        (d, root)
    }

    #[test]
    fn debian_like_configuration_passes() {
        let (_d, root) = root_with(&[
            ("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n"),
            ("/etc/ld.so.conf.d/libc.conf", "/usr/local/lib\n"),
            (
                "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n",
            ),
            (
                "/etc/ld.so.conf.d/.hidden.conf",
                "include /etc/ld.so.conf\n",
            ),
        ]);
        check(&root).unwrap();
        let (_d, root) = root_with(&[]);
        check(&root).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_naming_it() {
        let (d, root) = root_with(&[("/etc/ld.so.conf", "include ld.so.conf.d/*.conf\n")]);
        std::fs::create_dir_all(d.path().join("etc/ld.so.conf.d")).unwrap();
        nix::unistd::mkfifo(
            &d.path().join("etc/ld.so.conf.d/a.conf"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let e = check(&root).unwrap_err();
        assert!(started.elapsed().as_secs() < 2);
        assert_eq!(
            e.to_string(),
            "/etc/ld.so.conf.d/a.conf in the container is a FIFO, not a regular file: ldconfig would wait on it; remove it from the image or set linker-cache = \"hook\""
        );
        let (d, root) = root_with(&[]);
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        nix::unistd::mkfifo(
            &d.path().join("etc/ld.so.conf"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert!(matches!(check(&root), Err(ConfError::NotRegular { .. })));
    }

    #[test]
    fn include_loops_are_refused_naming_the_file() {
        let (_d, root) = root_with(&[("/etc/ld.so.conf", "include /etc/ld.so.conf\n")]);
        assert_eq!(
            check(&root).unwrap_err().to_string(),
            "/etc/ld.so.conf in the container includes itself (through /etc/ld.so.conf): ldconfig would loop; fix the image's include lines or set linker-cache = \"hook\""
        );
        let (_d, root) = root_with(&[
            ("/etc/ld.so.conf", "include a/*.conf\n"),
            ("/etc/a/1.conf", "include ../b.conf\n"),
            ("/etc/b.conf", "include /etc/a/?.conf\n"),
        ]);
        let e = check(&root).unwrap_err();
        assert!(matches!(e, ConfError::Loop { .. }), "{e}");
        // The same file included twice side by side is no loop.
        let (_d, root) = root_with(&[
            ("/etc/ld.so.conf", "include x.conf x.conf\n"),
            ("/etc/x.conf", "/opt/lib\n"),
        ]);
        check(&root).unwrap();
    }

    #[test]
    fn symlink_loops_and_devices() {
        let (d, root) = root_with(&[("/etc/x", "")]);
        std::os::unix::fs::symlink("/etc/ld.so.conf", d.path().join("etc/ld.so.conf")).unwrap();
        assert!(matches!(check(&root), Err(ConfError::Resolve(_))));
        std::fs::remove_file(d.path().join("etc/ld.so.conf")).unwrap();
        std::fs::write(d.path().join("etc/ld.so.conf"), "include /dev/zero\n").unwrap();
        std::fs::create_dir_all(d.path().join("dev")).unwrap();
        // A character device that never ends (`/dev/zero`), where mknod is
        // allowed (root, no user namespace).
        let zero = d.path().join("dev/zero");
        let made = nix::sys::stat::mknod(
            &zero,
            SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 5),
        );
        if made.is_ok() {
            assert_eq!(
                check(&root).unwrap_err().to_string(),
                "/dev/zero in the container is a character device, not a regular file: ldconfig would wait on it; remove it from the image or set linker-cache = \"hook\""
            );
        }
        // A magic link is not followed out of the root: absent here.
        let _ = std::fs::remove_file(&zero);
        std::os::unix::fs::symlink("/proc/self/root/dev/zero", &zero).unwrap();
        check(&root).unwrap();
    }
}
