//! Capability sets of the calling thread: one `capget`, one `capset`, one
//! `PR_CAP_AMBIENT_CLEAR_ALL` and, to seal, one `PR_SET_NO_NEW_PRIVS` (the
//! `caps` crate's per-set calls cost three times as many syscalls on the
//! create path). Which step keeps what is decided in `apply::caps`.
use caps::Capability;
use nix::errno::Errno;
use rustix::thread::{CapabilitySet, CapabilitySets};

/// Changing a capability set failed.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// `capget(2)` or `capset(2)`.
    #[error("{call} (effective {effective:#x}, permitted {permitted:#x})")]
    Capset {
        /// Which call.
        call: &'static str,
        /// Effective set asked for.
        effective: u64,
        /// Permitted set asked for.
        permitted: u64,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS | PR_CAP_AMBIENT, ...)`.
    #[error("prctl({call}, {cap})")]
    Prctl {
        /// Which operation.
        call: &'static str,
        /// The capability (0 for ambient clear-all and no_new_privs).
        cap: u8,
        /// The cause.
        #[source]
        source: Errno,
    },
}

fn mask(caps: &[Capability]) -> u64 {
    caps.iter().fold(0, |m, c| m | (1u64 << c.index()))
}

/// Keeps `effective` in the effective set and `permitted` in the permitted
/// set (each intersected with what the thread has; `effective` is cut to
/// `permitted`), empties the inheritable and ambient sets and, with
/// `seal`, sets `no_new_privs`: from then on no program this process or a
/// child executes gets more than the permitted set it had (not by being
/// root, nor by file capabilities or set-user-ID bits; capabilities(7),
/// "Capabilities and execution of programs by root"). That is what cutting
/// the bounding set to `permitted` gave, in one `prctl` instead of one per
/// capability dropped (each a new set of credentials: 27 of them took
/// 184 µs measured from Python, call overhead included,
/// `docs/start-cost.md`).
pub fn limit(
    effective: &[Capability],
    permitted: &[Capability],
    seal: bool,
) -> Result<(), CapsError> {
    let (want_eff, want_perm) = (mask(effective), mask(permitted));
    let err = |call| {
        move |source| CapsError::Capset {
            call,
            effective: want_eff,
            permitted: want_perm,
            source,
        }
    };
    let errno = |e: rustix::io::Errno| Errno::from_raw(e.raw_os_error());
    let have = rustix::thread::capabilities(None)
        .map_err(|e| err("capget")(errno(e)))?
        .permitted
        .bits();
    if seal {
        rustix::thread::set_no_new_privs(true).map_err(|e| CapsError::Prctl {
            call: "PR_SET_NO_NEW_PRIVS",
            cap: 0,
            source: errno(e),
        })?;
    }
    rustix::thread::clear_ambient_capability_set().map_err(|e| CapsError::Prctl {
        call: "PR_CAP_AMBIENT_CLEAR_ALL",
        cap: 0,
        source: errno(e),
    })?;
    let perm = have & want_perm;
    let eff = perm & want_eff;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::from_bits_retain(eff),
            permitted: CapabilitySet::from_bits_retain(perm),
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| err("capset")(errno(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask(&[Capability::CAP_CHOWN]), 1);
        assert_eq!(mask(&[Capability::CAP_BPF]), 1 << 39);
    }

    #[test]
    fn limit_in_a_child() {
        // In a child: the test process keeps its capabilities.
        crate::sys::child::run_in_child("caps", std::time::Duration::from_secs(5), || {
            limit(
                &[Capability::CAP_CHOWN],
                &[Capability::CAP_CHOWN, Capability::CAP_MKNOD],
                true,
            )
            .map_err(|e| e.to_string())?;
            let eff = caps::read(None, caps::CapSet::Effective).map_err(|e| e.to_string())?;
            let perm = caps::read(None, caps::CapSet::Permitted).map_err(|e| e.to_string())?;
            if rustix::thread::no_new_privs() != Ok(true) {
                return Err("no_new_privs is not set".to_owned());
            }
            let root = nix::unistd::geteuid().is_root();
            let ok = if root {
                eff.len() == 1 && perm.len() == 2
            } else {
                eff.is_empty() && perm.is_empty()
            };
            if ok {
                Ok(())
            } else {
                Err(format!("effective {eff:?}, permitted {perm:?}"))
            }
        })
        .unwrap();
    }
}
