//! An exclusive `flock(2)` on a file in a directory, waited for with a
//! bound (the inventory cache's rediscovery lock).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

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
        source: Errno,
    },
}

/// A held lock; released when dropped (the descriptor is closed).
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] Flock<std::fs::File>);

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
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => return Ok(Held(held)),
            Err((f, Errno::EWOULDBLOCK)) if Instant::now() < until => {
                file = f;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((_, source)) => {
                return Err(LockError::Flock {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}
