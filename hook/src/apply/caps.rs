//! Capabilities per step: each step keeps only what it needs, dropped
//! before it touches the container.
//!
//! | step | where | keeps | why |
//! |---|---|---|---|
//! | [`Step::Hook`] | the hook, once the container is a GPU container | `CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER KILL MKNOD SETGID SETUID SETPCAP SYS_ADMIN SYS_CHROOT SYS_PTRACE SYS_RESOURCE BPF` | the union of the steps below and of the device-cgroup (`SYS_ADMIN BPF SYS_RESOURCE DAC_OVERRIDE`) and ldconfig children (`SYS_ADMIN SYS_CHROOT SYS_PTRACE SETUID SETGID SETPCAP KILL DAC_OVERRIDE`); `no_new_privs` is set, so nothing executed later can gain more than it (not as root, nor by file capabilities or set-user-ID bits) |
//! | [`Step::ApplyHost`] | the apply child, host side | `SYS_ADMIN SYS_CHROOT SYS_PTRACE DAC_OVERRIDE DAC_READ_SEARCH` effective (`MKNOD CHOWN FOWNER` stay permitted, not effective, for the next step) | open `/proc/<pid>/ns/*` of runc's non-dumpable init (`SYS_PTRACE`), read driver files and clone them as detached mounts (`SYS_ADMIN`), `setns` (`SYS_ADMIN SYS_CHROOT`) |
//! | [`Step::ApplyContainer`] | the apply child, in the container's namespaces | `SYS_ADMIN MKNOD CHOWN FOWNER DAC_OVERRIDE` | attach mounts and make tmpfs (`SYS_ADMIN`), device nodes (`MKNOD`, then `CHOWN FOWNER` for owner and mode), create in directories of the image whoever owns them (`DAC_OVERRIDE`) |
//!
//! Joining a user namespace grants every capability in it again (setns(2)),
//! so [`Step::ApplyContainer`] is applied after the last `setns`.
#![forbid(unsafe_code)]

use caps::Capability;

use crate::sys::caps as sys_caps;

/// A step of the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The hook process once it knows it has work.
    Hook,
    /// The apply child before it enters the container.
    ApplyHost,
    /// The apply child inside the container's namespaces.
    ApplyContainer,
}

impl Step {
    /// The capabilities the step keeps.
    pub fn keeps(self) -> &'static [Capability] {
        use Capability::*;
        match self {
            Step::Hook => &[
                CAP_CHOWN,
                CAP_DAC_OVERRIDE,
                CAP_DAC_READ_SEARCH,
                CAP_FOWNER,
                CAP_KILL,
                CAP_MKNOD,
                CAP_SETGID,
                CAP_SETUID,
                CAP_SETPCAP,
                CAP_SYS_ADMIN,
                CAP_SYS_CHROOT,
                CAP_SYS_PTRACE,
                CAP_SYS_RESOURCE,
                CAP_BPF,
            ],
            Step::ApplyHost => &[
                CAP_SYS_ADMIN,
                CAP_SYS_CHROOT,
                CAP_SYS_PTRACE,
                CAP_DAC_OVERRIDE,
                CAP_DAC_READ_SEARCH,
            ],
            Step::ApplyContainer => &[
                CAP_SYS_ADMIN,
                CAP_MKNOD,
                CAP_CHOWN,
                CAP_FOWNER,
                CAP_DAC_OVERRIDE,
            ],
        }
    }

    /// What the step must keep permitted: its own capabilities and those of
    /// the steps that follow it in the same process (the permitted set only
    /// shrinks).
    fn permits(self) -> Vec<Capability> {
        let mut caps = self.keeps().to_vec();
        if self == Step::ApplyHost {
            caps.extend_from_slice(Step::ApplyContainer.keeps());
        }
        caps
    }

    fn name(self) -> &'static str {
        match self {
            Step::Hook => "the hook",
            Step::ApplyHost => "the apply step (host side)",
            Step::ApplyContainer => "the apply step (in the container)",
        }
    }
}

/// Capabilities could not be dropped.
#[derive(Debug, thiserror::Error)]
#[error("cannot drop capabilities for {step}")]
pub struct CapsError {
    step: &'static str,
    #[source]
    source: sys_caps::CapsError,
}

/// Keeps only `step`'s capabilities in the calling thread's effective set
/// (and, for [`Step::Hook`], seals it with `no_new_privs`), and in its permitted set those
/// of the step and of the steps after it in the same process; clears the
/// inheritable and ambient sets. Capabilities the thread does not have are
/// not asked for (an unprivileged test run keeps nothing).
pub fn keep(step: Step) -> Result<(), CapsError> {
    sys_caps::limit(step.keeps(), &step.permits(), step == Step::Hook).map_err(|source| {
        CapsError {
            step: step.name(),
            source,
        }
    })?;
    log::debug!("capabilities for {}: {:?}", step.name(), step.keeps());
    Ok(())
}
