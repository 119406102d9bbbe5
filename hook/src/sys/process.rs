//! Process syscalls for running a locked-down helper (the host's `ldconfig`
//! inside a container): an executable copied into a sealed memfd, namespaces,
//! `chroot`, resource limits, capabilities, `no_new_privs`, descriptors, and
//! exec from a descriptor with an explicit environment.
//!
//! Everything here except [`sealed_memfd`] changes the calling process and
//! is meant for a forked child (`sys::child::run_in_child`, [`fork`]).
//! Errors record the call, its arguments and the errno.
use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

/// A process syscall that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {}", errno.desc())]
pub struct ProcessError {
    /// The call and its arguments, e.g. `chroot("/run/bundle/rootfs")`.
    pub call: String,
    /// What the kernel said.
    pub errno: Errno,
}

fn err(call: impl Into<String>) -> impl FnOnce(Errno) -> ProcessError {
    let call = call.into();
    move |errno| ProcessError { call, errno }
}

/// A memfd named `name` holding `data`, sealed against any change
/// (`F_SEAL_SEAL|SHRINK|GROW|WRITE`), close-on-exec. An executable in it can
/// be run with [`exec_fd`] without a path anyone could swap.
pub fn sealed_memfd(name: &CStr, data: &[u8]) -> Result<OwnedFd, ProcessError> {
    let call = || format!("memfd_create({name:?}, MFD_CLOEXEC|MFD_ALLOW_SEALING|MFD_EXEC)");
    use rustix::fs::MemfdFlags;
    let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    let create = |flags| {
        rustix::fs::memfd_create(name, flags).map_err(|e| Errno::from_raw(e.raw_os_error()))
    };
    // Kernels before 6.3 do not know MFD_EXEC (EINVAL; it lets the memfd be
    // executed even when `vm.memfd_noexec` makes memfds non-executable by
    // default); their memfds are executable anyway.
    let fd = match create(base | MemfdFlags::EXEC) {
        Err(Errno::EINVAL) => create(base),
        other => other,
    }
    .map_err(err(call()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data).map_err(|e| ProcessError {
        call: format!("write({} bytes to memfd {name:?})", data.len()),
        errno: e.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
    })?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    nix::fcntl::fcntl(&file, FcntlArg::F_ADD_SEALS(seals)).map_err(err(format!(
        "fcntl(memfd {name:?}, F_ADD_SEALS, SEAL|SHRINK|GROW|WRITE)"
    )))?;
    Ok(OwnedFd::from(file))
}

/// `setns(fd, CLONE_NEWNS)`: enter a mount namespace (the caller must be
/// single-threaded; root and cwd become the namespace's root).
pub fn enter_mount_namespace(ns: BorrowedFd<'_>) -> Result<(), ProcessError> {
    nix::sched::setns(ns, CloneFlags::CLONE_NEWNS)
        .map_err(err(format!("setns(fd {}, CLONE_NEWNS)", ns.as_raw_fd())))
}

/// `unshare(flags)`.
pub fn unshare(flags: CloneFlags) -> Result<(), ProcessError> {
    nix::sched::unshare(flags).map_err(err(format!("unshare({flags:?})")))
}

/// Makes every mount in the current namespace private (`MS_REC|MS_PRIVATE`
/// on `/`), so nothing done here propagates anywhere.
pub fn make_mounts_private() -> Result<(), ProcessError> {
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("mount(\"/\", MS_REC|MS_PRIVATE)"))
}

/// `chroot(root)` then `chdir("/")`.
pub fn chroot(root: &Path) -> Result<(), ProcessError> {
    nix::unistd::chroot(root).map_err(err(format!("chroot({root:?})")))?;
    nix::unistd::chdir("/").map_err(err("chdir(\"/\") after chroot"))
}

/// `setrlimit(resource, soft, hard)`.
pub fn set_rlimit(resource: Resource, soft: u64, hard: u64) -> Result<(), ProcessError> {
    nix::sys::resource::setrlimit(resource, soft, hard)
        .map_err(err(format!("setrlimit({resource:?}, {soft}, {hard})")))
}

/// Sets the signal this process gets when its parent dies.
pub fn set_parent_death_signal(signal: Signal) -> Result<(), ProcessError> {
    nix::sys::prctl::set_pdeathsig(signal)
        .map_err(err(format!("prctl(PR_SET_PDEATHSIG, {signal})")))
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: exec can never gain privileges.
pub fn set_no_new_privs() -> Result<(), ProcessError> {
    nix::sys::prctl::set_no_new_privs().map_err(err("prctl(PR_SET_NO_NEW_PRIVS, 1)"))
}

/// Limits the process to `keep`: every other capability leaves the
/// bounding set (all numbers up to 63, so capabilities newer than the
/// `caps` crate go too), the inheritable and ambient sets are emptied, and
/// the effective and permitted sets become `keep`. Needs `CAP_SETPCAP`.
///
/// A root process that execs with this keeps exactly `keep` (the kernel
/// gives root `inheritable | bounding` on exec).
pub fn restrict_capabilities(keep: &[caps::Capability]) -> Result<(), ProcessError> {
    let keep_bits: Vec<u8> = keep.iter().map(|c| c.index()).collect();
    for cap in 0..64u8 {
        if keep_bits.contains(&cap) {
            continue;
        }
        let set = rustix::thread::CapabilitySet::from_bits_retain(1 << cap);
        match rustix::thread::remove_capability_from_bounding_set(set) {
            Ok(()) => {}
            // Beyond the kernel's last capability.
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => {
                return Err(ProcessError {
                    call: format!("prctl(PR_CAPBSET_DROP, {cap})"),
                    errno: Errno::from_raw(e.raw_os_error()),
                })
            }
        }
    }
    let caps_err = |call: &str| {
        let call = call.to_owned();
        move |e: caps::errors::CapsError| ProcessError {
            call: format!("{call}: {e}"),
            errno: Errno::last(),
        }
    };
    let set: caps::CapsHashSet = keep.iter().copied().collect();
    caps::clear(None, caps::CapSet::Ambient).map_err(caps_err("clear ambient capabilities"))?;
    caps::clear(None, caps::CapSet::Inheritable)
        .map_err(caps_err("clear inheritable capabilities"))?;
    caps::set(None, caps::CapSet::Effective, &set)
        .map_err(caps_err("set effective capabilities"))?;
    caps::set(None, caps::CapSet::Permitted, &set)
        .map_err(caps_err("set permitted capabilities"))?;
    Ok(())
}

/// Makes `fd` the process's descriptor `target` (0, 1 or 2).
pub fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> Result<(), ProcessError> {
    let call = format!("dup2({}, {target})", fd.as_raw_fd());
    match target {
        0 => nix::unistd::dup2_stdin(fd),
        1 => nix::unistd::dup2_stdout(fd),
        2 => nix::unistd::dup2_stderr(fd),
        _ => Err(Errno::EBADF),
    }
    .map_err(err(call))
}

/// Marks every descriptor from `first` up close-on-exec:
/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)` (Linux 5.11, below the
/// hook's 5.12 floor, see [`crate::sys`]). Every descriptor the hook opens
/// is close-on-exec from its creation; this is for those it inherited.
///
/// Hand-written because no crate the project uses wraps `close_range`:
/// rustix 1.1 lists it as not implemented (`not_implemented::higher_level::
/// closefrom`), nix 0.32 has no binding, and a safe loop of `fcntl(F_SETFD)`
/// would need `BorrowedFd::borrow_raw` (itself `unsafe`) on every number.
pub fn cloexec_from(first: RawFd) -> Result<(), ProcessError> {
    let call = || format!("close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)");
    let first_u = libc::c_uint::try_from(first).map_err(|_| ProcessError {
        call: call(),
        errno: Errno::EBADF,
    })?;
    // SAFETY: close_range only changes flags of this process's descriptors;
    // with CLOSE_RANGE_CLOEXEC it closes none, so no owned fd is invalidated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first_u,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret != 0 {
        return Err(err(call())(Errno::last()));
    }
    Ok(())
}

/// `fexecve(fd, argv, env)`: runs the executable `fd` refers to (via
/// `execveat(fd, "", AT_EMPTY_PATH)`). Returns only on failure.
pub fn exec_fd(fd: BorrowedFd<'_>, argv: &[CString], env: &[CString]) -> ProcessError {
    match nix::unistd::fexecve(fd, argv, env) {
        Err(errno) => ProcessError {
            call: format!(
                "fexecve(fd {}, {argv:?}, {} environment variables)",
                fd.as_raw_fd(),
                env.len()
            ),
            errno,
        },
        Ok(never) => match never {},
    }
}

/// Forks; the child runs `child` and `_exit`s with its return value
/// (never returning here); a panic in it aborts the child. The caller must
/// be single-threaded. The parent drops `child` unrun.
///
/// The two `unsafe` blocks stay: `fork` is `unsafe` by nature (nix marks
/// it so; rustix's `kernel_fork` is an unstable, hidden runtime API that
/// skips libc's fork handlers), and `_exit` has no safe binding in nix 0.32
/// or in rustix outside that hidden runtime module (`exit_group`);
/// `std::process::exit` would run the parent's atexit handlers and flush
/// its buffers a second time.
pub fn fork(child: impl FnOnce() -> i32) -> Result<Pid, ProcessError> {
    // SAFETY: callers are single-threaded forked children (documented); the
    // new child only runs `child` and then `_exit`s, so nothing of the
    // parent's (destructors, atexit handlers, buffers) runs twice.
    match unsafe { nix::unistd::fork() }.map_err(err("fork()"))? {
        nix::unistd::ForkResult::Child => {
            // A panic must not unwind into the parent's stack frames (this
            // copy of them): abort instead.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child))
                .unwrap_or_else(|_| std::process::abort());
            // SAFETY: `_exit` ends the child immediately, as intended.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => Ok(child),
    }
}

/// Waits for `pid` to end (retrying on `EINTR`).
pub fn wait(pid: Pid) -> Result<WaitStatus, ProcessError> {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(status),
            Ok(_) => continue,
            Err(errno) => return Err(err(format!("waitpid({pid})"))(errno)),
        }
    }
}

/// The line [`Alarm`]'s handler prints (set once per process, before the
/// handler is installed).
static ALARM_LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

extern "C" fn on_alarm(_: libc::c_int) {
    // Async-signal-safe only: an atomic load, write(2), and raise(3) of a
    // signal whose disposition `SA_RESETHAND` has put back to the default
    // (terminate), with `SA_NODEFER` so that it is delivered at once.
    if let Some(line) = ALARM_LINE.get() {
        write_stderr(line);
    }
    let _ = nix::sys::signal::raise(Signal::SIGALRM);
}

/// A deadline for a step that runs in this process and cannot be given to a
/// child (it ends in another namespace): when it passes, `line` goes to
/// standard error and the process ends by `SIGALRM`. Dropping the value
/// cancels it. One per process: a second one keeps the first one's line.
#[derive(Debug)]
pub struct Alarm(());

impl Alarm {
    /// Arms the alarm `after` from now, rounded up to whole seconds (at
    /// least one).
    pub fn set(after: std::time::Duration, line: String) -> Result<Alarm, ProcessError> {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
        let _ = ALARM_LINE.set(line);
        let action = SigAction::new(
            SigHandler::Handler(on_alarm),
            SaFlags::SA_RESETHAND | SaFlags::SA_NODEFER,
            SigSet::empty(),
        );
        // SAFETY: the handler calls only async-signal-safe functions
        // (write(2), raise(3)) and reads a `OnceLock` that is set before it is
        // installed and never changes afterwards.
        unsafe { sigaction(Signal::SIGALRM, &action) }.map_err(err("sigaction(SIGALRM)"))?;
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        nix::unistd::alarm::set(u32::try_from(secs.max(1)).unwrap_or(u32::MAX));
        Ok(Alarm(()))
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        nix::unistd::alarm::cancel();
    }
}

/// Writes `text` to descriptor 2 without taking std's stderr lock (safe in
/// a child forked from a multi-threaded process). Best effort.
pub fn write_stderr(text: &str) {
    let _ = nix::unistd::write(std::io::stderr(), text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn alarm_prints_its_line_and_ends_the_process() {
        use crate::sys::child::{run_in_child, ChildError};
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let result = run_in_child("alarm", Duration::from_secs(20), move || {
            dup_onto(std::os::fd::AsFd::as_fd(&write_end), 2).map_err(|e| e.to_string())?;
            let _alarm = Alarm::set(Duration::from_millis(10), "deadline passed\n".to_owned())
                .map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(10));
            Err("still alive after the alarm".to_owned())
        });
        match result {
            Err(ChildError::Died { status, .. }) => assert!(status.contains("SIGALRM"), "{status}"),
            other => panic!("expected death by SIGALRM, got {other:?}"),
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(read_end), &mut text).unwrap();
        assert_eq!(text, "deadline passed\n");
    }

    #[test]
    fn a_dropped_alarm_never_fires() {
        crate::sys::child::run_in_child("alarm", Duration::from_secs(20), || {
            drop(
                Alarm::set(Duration::from_millis(1), "fired\n".to_owned())
                    .map_err(|e| e.to_string())?,
            );
            std::thread::sleep(Duration::from_millis(1500));
            Ok::<(), String>(())
        })
        .unwrap();
    }

    /// Whether descriptor `fd` of this process is close-on-exec (fdinfo's
    /// `flags:` is octal; `O_CLOEXEC` is 0o2000000).
    fn is_cloexec(fd: RawFd) -> bool {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .unwrap();
        flags & 0o2000000 != 0
    }

    #[test]
    fn cloexec_from_marks_inherited_descriptors() {
        // In a child: the flag is process-wide, and other tests exec.
        crate::sys::child::run_in_child("cloexec", Duration::from_secs(5), || {
            // A descriptor opened without O_CLOEXEC, as one inherited from a
            // runtime would be.
            let fd = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDONLY,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| e.to_string())?;
            let n = fd.as_raw_fd();
            if is_cloexec(n) {
                return Err("opened close-on-exec already".to_owned());
            }
            cloexec_from(n).map_err(|e| e.to_string())?;
            if !is_cloexec(n) {
                return Err(format!("descriptor {n} is still inheritable"));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            cloexec_from(-1).unwrap_err().to_string(),
            "close_range(-1, ~0, CLOSE_RANGE_CLOEXEC): Bad file number"
        );
    }
}
