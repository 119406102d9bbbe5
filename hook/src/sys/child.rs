//! Running a step in a forked child: how the hook gets a single-threaded
//! process that may `setns` into a container's mount namespace, or drop
//! privileges, without affecting the hook itself.
//!
//! The child runs a closure and reports its one-line error (if any) back
//! through a pipe; the parent waits, with a deadline after which the child is
//! killed.
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};

/// A child step that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// `pipe(2)` or `fork(2)` failed.
    #[error("cannot start a child process for {step}")]
    Spawn {
        /// The step.
        step: &'static str,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// The step reported an error (its one-line message).
    #[error("{0}")]
    Failed(String),
    /// The child died without reporting (signal or unexpected exit).
    #[error("{step} died: {status}")]
    Died {
        /// The step.
        step: &'static str,
        /// What `waitpid` said.
        status: String,
    },
    /// The child ran past its deadline and was killed.
    #[error("{step} ran past {timeout:?} and was killed")]
    Timeout {
        /// The step.
        step: &'static str,
        /// The deadline.
        timeout: Duration,
    },
}

/// Runs `f` in a forked child and returns its outcome. `f`'s error is sent
/// back as its `{:#}` text (one line).
///
/// The caller must be single-threaded (the hook is): after `fork` only the
/// calling thread exists in the child, so locks held by other threads would
/// never be released.
pub fn run_in_child<E: std::fmt::Display>(
    step: &'static str,
    timeout: Duration,
    f: impl FnOnce() -> Result<(), E>,
) -> Result<(), ChildError> {
    // Close-on-exec from creation: an exec in the child (ldconfig) must not
    // inherit the report pipe.
    let (read_end, write_end) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| ChildError::Spawn { step, source })?;
    // The closure owns the write end: the parent's copy closes when `fork`
    // returns, so the parent sees end-of-file once the child is gone. The
    // child's copy of the read end is close-on-exec and goes with it.
    let child = super::process::fork(move || match f() {
        Ok(()) => 0,
        Err(err) => {
            let mut w = std::fs::File::from(write_end);
            let _ = write!(w, "{err:#}");
            1
        }
    })
    .map_err(|e| ChildError::Spawn {
        step,
        source: e.errno,
    })?;
    wait_child(step, child, read_end, timeout)
}

fn wait_child(
    step: &'static str,
    child: Pid,
    read_end: OwnedFd,
    timeout: Duration,
) -> Result<(), ChildError> {
    let deadline = Instant::now() + timeout;
    let mut message = Vec::new();
    let mut file = std::fs::File::from(read_end);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            return Err(ChildError::Timeout { step, timeout });
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&file),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {
                let mut buf = [0u8; 4096];
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => message.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            Err(_) => break,
        }
    }
    let _ = file.as_raw_fd();
    let status = loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    match status {
        Ok(WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(WaitStatus::Exited(_, _)) if !message.is_empty() => Err(ChildError::Failed(
            String::from_utf8_lossy(&message).into_owned(),
        )),
        Ok(other) => Err(ChildError::Died {
            step,
            status: format!("{other:?}"),
        }),
        Err(e) => Err(ChildError::Died {
            step,
            status: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_child_aborts_instead_of_unwinding_into_the_parent() {
        let marker = tempfile::NamedTempFile::new().unwrap();
        let path = marker.path().to_owned();
        let outcome = std::panic::catch_unwind(|| {
            run_in_child("panicking step", Duration::from_secs(5), || {
                if true {
                    panic!("boom");
                }
                Ok::<(), String>(())
            })
        });
        // Only the parent gets here: an unwinding child would have run this
        // too (and written the marker) before `_exit`.
        let result = outcome.unwrap_or_else(|_| {
            std::fs::write(&path, "unwound").unwrap();
            unreachable!("the panic reached the caller's frames");
        });
        let err = result.unwrap_err().to_string();
        assert!(err.contains("SIGABRT") || err.contains("signal"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn every_descriptor_the_child_holds_is_close_on_exec() {
        // Descriptors the test process inherited (a jobserver, the shell's)
        // are not ours to judge.
        let fds = || -> Vec<i32> {
            std::fs::read_dir("/proc/self/fd")
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let inherited = fds();
        run_in_child("descriptor check", Duration::from_secs(5), || {
            let mut leaks = Vec::new();
            for e in std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())? {
                let Ok(n) = e
                    .map_err(|e| e.to_string())?
                    .file_name()
                    .to_string_lossy()
                    .parse::<i32>()
                else {
                    continue;
                };
                if n <= 2 || inherited.contains(&n) {
                    continue;
                }
                // `flags:` in fdinfo is octal; O_CLOEXEC is 0o2000000.
                let info =
                    std::fs::read_to_string(format!("/proc/self/fdinfo/{n}")).unwrap_or_default();
                let flags = info
                    .lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok());
                if let Some(f) = flags {
                    if f & 0o2000000 == 0 {
                        leaks.push(n);
                    }
                }
            }
            if leaks.is_empty() {
                Ok(())
            } else {
                Err(format!("inheritable descriptors: {leaks:?}"))
            }
        })
        .unwrap();
    }

    #[test]
    fn ok_error_and_timeout() {
        run_in_child("ok step", Duration::from_secs(5), || Ok::<(), String>(())).unwrap();
        let err = run_in_child("bad step", Duration::from_secs(5), || {
            Err("it broke: because".to_owned())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "it broke: because");
        let err = run_in_child("slow step", Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(5));
            Ok::<(), String>(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "slow step ran past 200ms and was killed");
    }
}
