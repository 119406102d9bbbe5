//! cgroup v2: replace the container's device programs with one that allows
//! what runc's allowed plus the planned devices.
//!
//! Steps (the cgroup directory is held open throughout):
//!
//! 1. Fold the spec's rules, runc's defaults and the planned rules
//!    ([`super::program`]). If the spec's rules already allow every planned
//!    access (CDI, `--device`), stop: runc's program is fine as it is.
//! 2. `BPF_PROG_QUERY` the programs attached to the cgroup for
//!    `BPF_CGROUP_DEVICE`, and take a descriptor for each
//!    (`BPF_PROG_GET_FD_BY_ID`). If none is attached, stop: nothing at this
//!    level denies the devices (and attaching one would take access away).
//! 3. Load the new program (license `Apache`; `RLIMIT_MEMLOCK` raised for
//!    kernels before 5.11 only if the load needs it).
//! 4. Attach it with `BPF_F_ALLOW_MULTI`, then detach each old one. Until
//!    the old ones are gone both are attached, and all must allow, so the
//!    container never has more access than either program gives. If a
//!    detach fails, the new program is detached again and the error
//!    returned: the cgroup is left as runc set it up (less any old program
//!    that was detached before the failure, which the new one covers).
//!
//! Every program attached directly to the container's cgroup is replaced,
//! including one systemd attached for `DeviceAllow=` (runc's systemd driver
//! gives systemd the same rules); programs of parent cgroups still apply.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::LinuxDeviceCgroup;

use super::program::{self, Ruleset};
use super::{CgroupError, RuleList};
use crate::sys::bpf::{self, BpfError};

/// The kernel-visible name of the program (`bpftool prog` shows it).
pub const PROGRAM_NAME: &str = "nvidia_devices";

/// What runc's program enforces, and what the replacement must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rulesets {
    /// The spec's rules and runc's defaults, folded: runc's program is
    /// `runc.compile()`.
    pub runc: Ruleset,
    /// The same with the planned rules appended.
    pub with_planned: Ruleset,
    /// Whether `runc` already allows every planned access.
    pub already_allowed: bool,
}

/// Folds `spec_rules` (with runc's defaults) and then `planned`.
pub fn rulesets(
    spec_rules: &[LinuxDeviceCgroup],
    planned: &[rules::DeviceRule],
) -> Result<Rulesets, program::ProgramError> {
    let mut all = program::runc_rules(spec_rules)?;
    let runc = Ruleset::fold(&all)?;
    let ours = planned
        .iter()
        .map(program::from_planned)
        .collect::<Result<Vec<_>, _>>()?;
    let already_allowed = ours.iter().all(|r| runc.covers(r));
    all.extend(ours);
    let with_planned = Ruleset::fold(&all)?;
    Ok(Rulesets {
        runc,
        with_planned,
        already_allowed,
    })
}

/// Replaces the device programs of the cgroup directory `cgroup` (module doc).
pub fn allow(
    cgroup: &Path,
    planned: &[rules::DeviceRule],
    spec_rules: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    let rules = RuleList::of(planned);
    let sets = rulesets(spec_rules, planned).map_err(|source| CgroupError::Rules {
        rules: rules.clone(),
        cgroup: cgroup.to_path_buf(),
        source,
    })?;
    if sets.already_allowed {
        log::debug!(
            "{}: the spec's device rules already allow {rules}: program left alone",
            cgroup.display()
        );
        return Ok(());
    }
    let set = sets.with_planned;
    let bpf_err = |e: BpfError| CgroupError::V2 {
        rules: rules.clone(),
        cgroup: cgroup.to_path_buf(),
        call: e.call,
        errno: e.errno,
        verifier_log: e.verifier_log,
    };

    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(cgroup)
        .map_err(|e| CgroupError::V2 {
            rules: rules.clone(),
            cgroup: cgroup.to_path_buf(),
            call: "open".to_owned(),
            errno: e.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
            verifier_log: None,
        })?;
    let old_ids = bpf::query_programs(dir.as_fd(), bpf::ATTACH_CGROUP_DEVICE).map_err(bpf_err)?;
    let mut old: Vec<(u32, OwnedFd)> = Vec::with_capacity(old_ids.len());
    for id in old_ids {
        match bpf::program_fd_by_id(id) {
            Ok(fd) => old.push((id, fd)),
            // Detached and freed since the query.
            Err(e) if e.errno == Errno::ENOENT => {}
            Err(e) => return Err(bpf_err(e)),
        }
    }
    if old.is_empty() {
        log::debug!(
            "{}: no device program attached, nothing denies {rules}",
            cgroup.display()
        );
        return Ok(());
    }

    let insns = set.compile();
    let new = bpf::with_memlock_retry(|| {
        bpf::load_cgroup_device_program(&insns, program::LICENSE, PROGRAM_NAME)
    })
    .map_err(bpf_err)?;
    bpf::attach(
        dir.as_fd(),
        new.as_fd(),
        bpf::ATTACH_CGROUP_DEVICE,
        bpf::F_ALLOW_MULTI,
    )
    .map_err(bpf_err)?;
    for (id, fd) in &old {
        if let Err(e) = bpf::detach(dir.as_fd(), fd.as_fd(), bpf::ATTACH_CGROUP_DEVICE) {
            if e.errno == Errno::ENOENT {
                // Someone else detached it meanwhile.
                continue;
            }
            let _ = bpf::detach(dir.as_fd(), new.as_fd(), bpf::ATTACH_CGROUP_DEVICE);
            return Err(bpf_err(BpfError {
                call: format!("{} (program id {id})", e.call),
                ..e
            }));
        }
    }
    log::debug!(
        "{}: device programs {:?} replaced by one allowing {set}",
        cgroup.display(),
        old.iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    Ok(())
}
