//! Running host commands with a deadline, and cleaning up after them.
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Directories appended to `PATH` for the commands the harness runs (a
/// non-root shell's `PATH` often lacks the `sbin` ones, where `runc` and
/// `dockerd` live).
const STANDARD_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The `PATH` given to every command the harness runs: `extra` first, then
/// this process's `PATH`, then the standard directories it lacks.
pub fn path_env(extra: &[PathBuf]) -> OsString {
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for dir in STANDARD_PATH {
        if !dirs.iter().any(|d| d == Path::new(dir)) {
            dirs.push(PathBuf::from(dir));
        }
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| STANDARD_PATH.join(":").into())
}

/// Where `program` is on [`path_env`], if anywhere.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&path_env(&[]))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A command with an empty environment except `PATH` ([`path_env`]), so that
/// nothing from the test process leaks into runtimes and hooks.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("PATH", path_env(&[]));
    cmd
}

/// A name no other call in this process, or in another process, returns.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout (lossy UTF-8).
    pub stdout: String,
    /// Its stderr (lossy UTF-8).
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Output {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Its exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, printing everything, unless it exited with status 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Panics, printing everything, if it exited with status 0.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(!self.success(), "command unexpectedly succeeded:\n{self}");
        self
    }

    /// `Err` with everything printed, unless it exited with status 0.
    pub fn check(self) -> anyhow::Result<Self> {
        if self.success() {
            Ok(self)
        } else {
            bail!("command failed:\n{self}")
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => writeln!(f, "exit status {code} after {:?}", self.elapsed)?,
            (None, Some(sig)) => writeln!(f, "killed by signal {sig} after {:?}", self.elapsed)?,
            _ => writeln!(f, "{} after {:?}", self.status, self.elapsed)?,
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Shows a command line the way a shell user would type it (roughly).
pub fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$;&|".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` (stdin from /dev/null, stdout and stderr captured) in its own
/// process group; after `timeout` the whole group is killed and this returns
/// an error carrying what it printed so far. A non-zero exit is not an error
/// here: look at [`Output::status`].
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> anyhow::Result<Output> {
    let line = display_command(cmd);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run `{line}`"))?;
    let stdout = Capture::start(child.stdout.take());
    let stderr = Capture::start(child.stderr.take());
    // Waited for, not polled: a poll every 10 ms made every elapsed time a
    // multiple of the poll, and benchmarks saw a hook that added 1 ms cost
    // a whole 10 ms step, or nothing (docs/start-cost.md).
    let pid = child.id();
    let (exited, on_exit) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = exited.send(());
        status
    });
    let status = match on_exit.recv_timeout(timeout) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => Some(
            waiter
                .join()
                .map_err(|_| anyhow::anyhow!("the waiter of `{line}` panicked"))?
                .context("waitpid")?,
        ),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            kill_group(pid);
            let _ = waiter.join();
            None
        }
    };
    // A grandchild (a daemon, a container) may hold the pipes open: wait a
    // little for the rest of the output, never forever.
    let drain = Instant::now() + Duration::from_secs(if status.is_some() { 5 } else { 1 });
    let stdout = stdout.finish(drain);
    let stderr = stderr.finish(drain);
    let elapsed = start.elapsed();
    match status {
        Some(status) => Ok(Output {
            command: line,
            status,
            stdout,
            stderr,
            elapsed,
        }),
        None => bail!(
            "`{line}` timed out after {timeout:?} and was killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            stdout.trim_end(),
            stderr.trim_end()
        ),
    }
}

/// SIGKILL to the process group `pgid` (a child started with `process_group(0)`).
pub(crate) fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours;
        // the negative pid names the group our own child leads.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to the process `pid` (one of our own children).
pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Reads a pipe to its end on a thread, keeping what it read so far available.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    /// Disconnected (or sent to) when the reader reached the end.
    done: Option<mpsc::Receiver<()>>,
}

impl Capture {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let done = pipe.map(|mut pipe| {
            let (finished, done) = mpsc::channel();
            let buf = Arc::clone(&buf);
            thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => lock(&buf).extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = finished.send(());
            });
            done
        });
        Capture { buf, done }
    }

    fn finish(self, deadline: Instant) -> String {
        if let Some(done) = &self.done {
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let bytes = lock(&self.buf).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_kills_the_group_and_reports_output() {
        let err = run_timeout(
            command("sh").args(["-c", "echo started; sleep 30 & sleep 30"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("timed out"), "{msg}");
        assert!(msg.contains("started"), "{msg}");
    }

    #[test]
    fn captures_status_and_streams() {
        let out = run_timeout(
            command("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }
}
