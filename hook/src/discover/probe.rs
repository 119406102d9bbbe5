//! Running NVML in a child process, bounded by a timeout.
//!
//! Why a child: NVML creates threads and can block for seconds, and the hook
//! must stay single-threaded to `setns(CLONE_NEWNS)` into a container
//! (setns(2): `EINVAL` when the caller shares its file-system state with
//! other threads). Forking the (possibly multi-threaded: the plugin daemon,
//! a test harness) caller and then `dlopen`ing in the child is not safe
//! either, so the child is a fresh process: [`ProbeCommand`] (by default the
//! running binary, `/proc/self/exe inventory --nvml-probe <lib>`). Any binary
//! can serve as the probe by calling [`run_nvml_probe`] from a hidden
//! subcommand or flag of its own.
//!
//! Protocol: the child writes one JSON [`ProbeReply`] on stdout and exits 0.
//! The parent reads stdout on a helper thread (joined before returning, so
//! the caller is single-threaded again), waits up to the timeout, and kills
//! the child when it runs out. The child's stderr is the parent's.
//!
//! Environment: the child inherits the caller's environment unchanged, plus
//! [`ProbeCommand::env`]; nothing else is set or removed (see
//! [`crate::config::ProbeCommand`]).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::nvml::{self, NvmlError, NvmlFacts};
use crate::config::ProbeCommand;

/// Largest reply accepted from a probe child (a host with thousands of GPUs
/// fits easily).
pub const MAX_REPLY: u64 = 16 << 20;

/// What the probe child prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeReply {
    /// NVML answered.
    Facts(NvmlFacts),
    /// NVML failed.
    Error(NvmlError),
}

/// Why NVML discovery through a child failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The child could not be started.
    #[error("cannot start the NVML probe {}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The child did not answer in time and was killed.
    #[error("NVML discovery timed out after {} (library {}); NVML may be initialising a GPU without persistence mode: enable nvidia-persistenced or raise nvml-timeout in [host]", humanize(*timeout), lib.display())]
    Timeout {
        /// The library.
        lib: PathBuf,
        /// The bound.
        timeout: Duration,
    },
    /// NVML failed in the child.
    #[error(transparent)]
    Nvml(NvmlError),
    /// The child exited without a reply (it crashed, or is not a probe).
    #[error("the NVML probe {} (library {}) exited with {status} without an answer", program.display(), lib.display())]
    NoReply {
        /// The program.
        program: PathBuf,
        /// The library.
        lib: PathBuf,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// NVML killed the child with a signal (a crash inside the library).
    #[error("NVML crashed with {signal} while discovering the GPUs (library {}): the driver's user-space libraries do not match the loaded kernel module or are damaged; check that nvidia-smi works on the host, and reinstall the driver if it does not", lib.display())]
    Crashed {
        /// The library.
        lib: PathBuf,
        /// The signal's name (`SIGSEGV`).
        signal: String,
    },
    /// The reply is not a [`ProbeReply`].
    #[error("the NVML probe {} (library {}) answered something that is not a probe reply", program.display(), lib.display())]
    BadReply {
        /// The program.
        program: PathBuf,
        /// The library.
        lib: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Reading the child's output or waiting for it failed.
    #[error("cannot read the NVML probe's answer ({})", program.display())]
    Io {
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// The child side: queries NVML from `lib` in this process and writes the
/// [`ProbeReply`] to `out`. Returns whether NVML answered; the caller should
/// exit 0 either way (the reply carries the error).
pub fn run_nvml_probe(lib: &Path, out: &mut dyn Write) -> std::io::Result<bool> {
    let reply = match nvml::query(lib) {
        Ok(facts) => ProbeReply::Facts(facts),
        Err(e) => ProbeReply::Error(e),
    };
    serde_json::to_writer(&mut *out, &reply).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(matches!(reply, ProbeReply::Facts(_)))
}

/// A started probe; [`RunningProbe::wait`] collects its answer. Dropping it
/// kills and reaps the child.
#[derive(Debug)]
pub struct RunningProbe {
    child: Option<Child>,
    reader: Option<std::thread::JoinHandle<()>>,
    rx: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    program: PathBuf,
    lib: PathBuf,
    deadline: Instant,
    timeout: Duration,
}

/// Starts the probe for `lib`; the timeout runs from now.
pub fn start(
    cmd: &ProbeCommand,
    lib: &Path,
    timeout: Duration,
) -> Result<RunningProbe, ProbeError> {
    let start = Instant::now();
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .arg(lib)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            program: cmd.program.clone(),
            source,
        })?;
    let (tx, rx) = mpsc::channel();
    let reader = child.stdout.take().map(|stdout| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let r = stdout.take(MAX_REPLY).read_to_end(&mut buf).map(|_| buf);
            // The receiver may have given up (timeout); nothing to do then.
            let _ = tx.send(r);
        })
    });
    Ok(RunningProbe {
        child: Some(child),
        reader,
        rx,
        program: cmd.program.clone(),
        lib: lib.to_path_buf(),
        deadline: start + timeout,
        timeout,
    })
}

/// `SIGSEGV` for 11; the number for a signal without a name here.
fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

impl RunningProbe {
    /// Waits for the answer until the deadline; kills the child on timeout.
    pub fn wait(mut self) -> Result<NvmlFacts, ProbeError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let got = self.rx.recv_timeout(left);
        let bytes = match got {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.kill();
                return Err(ProbeError::Timeout {
                    lib: self.lib.clone(),
                    timeout: self.timeout,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(Vec::new()),
        };
        // stdout is closed: the child is exiting; reap it (bounded by the
        // deadline too, in case it closed stdout and kept running).
        let status = self.reap()?;
        let bytes = bytes.map_err(|source| ProbeError::Io {
            program: self.program.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let line = text.lines().rev().find(|l| !l.trim().is_empty());
        let Some(line) = line else {
            return Err(match status {
                Some(status) if status.signal().is_some() => ProbeError::Crashed {
                    lib: self.lib.clone(),
                    signal: signal_name(status.signal().unwrap_or_default()),
                },
                Some(status) => ProbeError::NoReply {
                    program: self.program.clone(),
                    lib: self.lib.clone(),
                    status,
                },
                None => ProbeError::Timeout {
                    lib: self.lib.clone(),
                    timeout: self.timeout,
                },
            });
        };
        match serde_json::from_str::<ProbeReply>(line) {
            Ok(ProbeReply::Facts(facts)) => Ok(facts),
            Ok(ProbeReply::Error(e)) => Err(ProbeError::Nvml(e)),
            Err(source) => Err(ProbeError::BadReply {
                program: self.program.clone(),
                lib: self.lib.clone(),
                source,
            }),
        }
    }

    /// Waits for the child's exit until the deadline; `None` if it had to
    /// be killed.
    fn reap(&mut self) -> Result<Option<std::process::ExitStatus>, ProbeError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let mut pause = Duration::from_micros(50);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    self.join_reader();
                    return Ok(Some(status));
                }
                Ok(None) if Instant::now() < self.deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                Ok(None) => {
                    self.kill();
                    return Ok(None);
                }
                Err(source) => {
                    return Err(ProbeError::Io {
                        program: self.program.clone(),
                        source,
                    })
                }
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine; we only need it gone.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.join_reader();
    }

    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            // The pipe is closed once the child is gone, so this returns.
            let _ = reader.join();
        }
    }
}

impl Drop for RunningProbe {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the probe for `lib` and waits for its answer.
pub fn probe(cmd: &ProbeCommand, lib: &Path, timeout: Duration) -> Result<NvmlFacts, ProbeError> {
    start(cmd, lib, timeout)?.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_names_nvml_the_signal_and_the_remedy() {
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(6), "SIGABRT");
        assert_eq!(signal_name(99), "signal 99");
        let e = ProbeError::Crashed {
            lib: PathBuf::from("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"),
            signal: signal_name(11),
        };
        assert_eq!(
            e.to_string(),
            "NVML crashed with SIGSEGV while discovering the GPUs (library \
             /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1): the driver's user-space libraries do not \
             match the loaded kernel module or are damaged; check that nvidia-smi works on the host, \
             and reinstall the driver if it does not"
        );
    }
}
