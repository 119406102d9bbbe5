//! An exclusive `flock(2)` on a file in a directory, waited for with a
//! bound (the inventory cache's rediscovery lock).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened or created.
    #[error("cannot open the lock file {path:?}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `flock` failed, or another holder kept it past the wait.
    #[error("flock({path:?}, LOCK_EX)")]
    Flock {
        /// The file.
        path: PathBuf,
        /// The cause (`EWOULDBLOCK` after the wait).
        #[source]
        source: std::io::Error,
    },
}

/// A held lock; released when dropped (the descriptor is closed).
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] std::fs::File);

/// Opens (creating it, mode 0600, close-on-exec) `path` and takes an
/// exclusive lock on it, polling for at most `wait`.
pub fn exclusive(path: &Path, wait: Duration) -> Result<Held, LockError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let until = Instant::now() + wait;
    loop {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Held(file)),
            Err(Errno::WOULDBLOCK) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(Errno::INTR) => {}
            Err(e) => {
                return Err(LockError::Flock {
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_gives_up_and_gets_it_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = exclusive(&path, Duration::ZERO).unwrap();
        let start = Instant::now();
        let err = exclusive(&path, Duration::from_millis(50)).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(
            matches!(&err, LockError::Flock { source, .. }
                if source.kind() == std::io::ErrorKind::WouldBlock),
            "{err:?}"
        );
        assert_eq!(err.to_string(), format!("flock({path:?}, LOCK_EX)"));
        drop(held);
        exclusive(&path, Duration::ZERO).unwrap();
        // Not through a link.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            exclusive(&link, Duration::ZERO).unwrap_err(),
            LockError::Open { .. }
        ));
    }
}
