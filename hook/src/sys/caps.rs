//! Capability sets of the calling thread: one `capget`, one `capset`, one
//! `PR_CAP_AMBIENT_CLEAR_ALL`, and a `PR_CAPBSET_DROP` per dropped bounding
//! capability (the `caps` crate's per-set calls cost three times as many
//! syscalls on the create path). Which step keeps what is decided in
//! `apply::caps`.
use caps::Capability;
use nix::errno::Errno;

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
    /// `prctl(PR_CAPBSET_DROP | PR_CAP_AMBIENT, ...)`.
    #[error("prctl({call}, {cap})")]
    Prctl {
        /// Which operation.
        call: &'static str,
        /// The capability (0 for ambient clear-all).
        cap: u8,
        /// The cause.
        #[source]
        source: Errno,
    },
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn mask(caps: &[Capability]) -> u64 {
    caps.iter().fold(0, |m, c| m | (1u64 << c.index()))
}

fn split(bits: u64) -> [u32; 2] {
    [(bits & 0xffff_ffff) as u32, (bits >> 32) as u32]
}

/// Keeps `effective` in the effective set and `permitted` in the permitted
/// set (each intersected with what the thread has; `effective` is cut to
/// `permitted`), empties the inheritable and ambient sets and, with
/// `bounding`, cuts the bounding set to `permitted` (needs `CAP_SETPCAP`,
/// which is used before it goes; without it the bounding set is left).
pub fn limit(
    effective: &[Capability],
    permitted: &[Capability],
    bounding: bool,
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
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(cap_user_header_t, cap_user_data_t) with a version-3
    // header and the two data structs version 3 requires, both live.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc < 0 {
        return Err(err("capget")(Errno::last()));
    }
    let have = u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32);
    if bounding && have & (1 << Capability::CAP_SETPCAP.index()) != 0 {
        for cap in caps::all() {
            if want_perm & (1 << cap.index()) != 0 {
                continue;
            }
            // SAFETY: prctl(PR_CAPBSET_DROP, cap) takes integers only.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAPBSET_DROP,
                    libc::c_ulong::from(cap.index()),
                    0,
                    0,
                    0,
                )
            };
            // EINVAL: a capability this kernel does not know.
            if rc < 0 && Errno::last() != Errno::EINVAL {
                return Err(CapsError::Prctl {
                    call: "PR_CAPBSET_DROP",
                    cap: cap.index(),
                    source: Errno::last(),
                });
            }
        }
    }
    // SAFETY: prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL) takes integers.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc < 0 {
        return Err(CapsError::Prctl {
            call: "PR_CAP_AMBIENT_CLEAR_ALL",
            cap: 0,
            source: Errno::last(),
        });
    }
    let perm = have & want_perm;
    let eff = perm & want_eff;
    let (e, p) = (split(eff), split(perm));
    let data = [
        CapData {
            effective: e[0],
            permitted: p[0],
            inheritable: 0,
        },
        CapData {
            effective: e[1],
            permitted: p[1],
            inheritable: 0,
        },
    ];
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset(cap_user_header_t, const cap_user_data_t) with a
    // version-3 header and two data structs, both live for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc < 0 {
        return Err(err("capset")(Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask(&[Capability::CAP_CHOWN]), 1);
        assert_eq!(mask(&[Capability::CAP_BPF]), 1 << 39);
        assert_eq!(split(1 << 39 | 1), [1, 1 << 7]);
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
