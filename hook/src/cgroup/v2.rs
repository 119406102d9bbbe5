//! cgroup v2: widen each device program the runtime attached to the
//! container's cgroup by the planned devices, and by nothing else.
//!
//! Steps (the cgroup directory is held open throughout):
//!
//! 1. If the spec's `linux.resources.devices` already allow every planned
//!    access (CDI, `--device`), stop: every runtime's program allows them.
//! 2. `BPF_PROG_QUERY` the programs attached to the cgroup for
//!    `BPF_CGROUP_DEVICE`, and take a descriptor for each
//!    (`BPF_PROG_GET_FD_BY_ID`). If none is attached, stop: nothing at this
//!    level denies the devices (and attaching one would take access away).
//! 3. For each attached program: read its instructions back
//!    (`BPF_OBJ_GET_INFO_BY_FD`), load a program that runs the planned
//!    allow blocks and then those instructions unchanged
//!    ([`program::prepend_allow`]; license `Apache`, `RLIMIT_MEMLOCK`
//!    raised for kernels before 5.11 only if the load needs it), attach it
//!    with `BPF_F_ALLOW_MULTI`, then detach the old one. Until the old one is
//!    gone both are attached and all must allow, so the container never has
//!    more access than either program gives. If a detach fails, the new
//!    program is detached again and the error returned.
//!
//! The container keeps exactly what its runtime attached (runc, crun,
//! whichever version: their default device lists differ), plus the planned
//! devices. A program systemd attached for `DeviceAllow=` at this level is
//! widened the same way; programs of parent cgroups still apply.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::LinuxDeviceCgroup;

use super::program::{self, Rule, Ruleset};
use super::{CgroupError, RuleList};
use crate::sys::bpf::{self, BpfError};

/// The kernel-visible name of the program (`bpftool prog` shows it).
pub const PROGRAM_NAME: &str = "nvidia_devices";

/// The planned rules as program rules, and whether the spec's own device
/// rules already allow every planned access.
pub fn planned_rules(
    spec_rules: &[LinuxDeviceCgroup],
    planned: &[rules::DeviceRule],
) -> Result<(Vec<Rule>, bool), program::ProgramError> {
    let spec = spec_rules
        .iter()
        .enumerate()
        .map(|(i, r)| program::from_spec(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = Ruleset::fold(&spec)?;
    let ours = planned
        .iter()
        .map(program::from_planned)
        .collect::<Result<Vec<_>, _>>()?;
    let covered = ours.iter().all(|r| spec.covers(r));
    Ok((ours, covered))
}

/// Widens the device programs of the cgroup directory `cgroup` by the
/// planned rules (module doc).
pub fn allow(
    cgroup: &Path,
    planned: &[rules::DeviceRule],
    spec_rules: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    let rules = RuleList::of(planned);
    let (ours, covered) =
        planned_rules(spec_rules, planned).map_err(|source| CgroupError::Rules {
            rules: rules.clone(),
            cgroup: cgroup.to_path_buf(),
            source,
        })?;
    if covered {
        log::debug!(
            "{}: the spec's device rules already allow {rules}: program left alone",
            cgroup.display()
        );
        return Ok(());
    }
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

    for (id, fd) in &old {
        let with_id = |e: BpfError| {
            bpf_err(BpfError {
                call: format!("{} (program id {id})", e.call),
                ..e
            })
        };
        let original = bpf::program_instructions(fd).map_err(with_id)?;
        let insns =
            program::prepend_allow(&ours, &original).map_err(|source| CgroupError::Rules {
                rules: rules.clone(),
                cgroup: cgroup.to_path_buf(),
                source,
            })?;
        let new = bpf::with_memlock_retry(|| {
            bpf::load_cgroup_device_program(&insns, program::LICENSE, PROGRAM_NAME)
        })
        .map_err(with_id)?;
        bpf::attach(
            dir.as_fd(),
            new.as_fd(),
            bpf::ATTACH_CGROUP_DEVICE,
            bpf::F_ALLOW_MULTI,
        )
        .map_err(with_id)?;
        if let Err(e) = bpf::detach(dir.as_fd(), fd.as_fd(), bpf::ATTACH_CGROUP_DEVICE) {
            if e.errno == Errno::ENOENT {
                // Someone else detached it meanwhile.
                continue;
            }
            let _ = bpf::detach(dir.as_fd(), new.as_fd(), bpf::ATTACH_CGROUP_DEVICE);
            return Err(with_id(e));
        }
        log::debug!(
            "{}: device program {id} ({} instructions) now allows {rules} first",
            cgroup.display(),
            original.len()
        );
    }
    Ok(())
}
