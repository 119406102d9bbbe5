//! eBPF syscalls for the cgroup v2 device filter: load a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, list the programs attached to a
//! cgroup, attach and detach them, read a program's instructions back; plus
//! the `statfs` check that says whether a path is a cgroup2 mount.
//!
//! The kernel's `union bpf_attr` is passed as one `#[repr(C)]` struct per
//! command, holding only the fields that command reads; the size passed to
//! bpf(2) is that struct's, and the kernel treats the rest as zero.
//! Field layouts: `include/uapi/linux/bpf.h`.
//!
//! Every error records the command, its arguments and the errno.
use std::ffi::CStr;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` (attach type).
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: every attached program must allow an access.
pub const F_ALLOW_MULTI: u32 = 1 << 1;

const CMD_PROG_LOAD: libc::c_int = 5;
const CMD_PROG_ATTACH: libc::c_int = 8;
const CMD_PROG_DETACH: libc::c_int = 9;
const CMD_PROG_GET_FD_BY_ID: libc::c_int = 13;
const CMD_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const CMD_PROG_QUERY: libc::c_int = 16;

/// Size of the verifier log kept when a load is refused.
const LOG_SIZE: usize = 64 * 1024;

/// A bpf(2) call (or the `statfs`/`setrlimit` around it) that failed.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {}", errno.desc())]
pub struct BpfError {
    /// The call and its arguments, e.g.
    /// `BPF_PROG_QUERY(target_fd=5, attach_type=BPF_CGROUP_DEVICE)`.
    pub call: String,
    /// What the kernel said.
    pub errno: Errno,
    /// The verifier's log, when a load was refused (last lines only).
    pub verifier_log: Option<String>,
}

impl BpfError {
    fn new(call: String, errno: Errno) -> Self {
        BpfError {
            call,
            errno,
            verifier_log: None,
        }
    }
}

fn attach_flags_name(flags: u32) -> String {
    match flags {
        0 => "0".to_owned(),
        F_ALLOW_MULTI => "BPF_F_ALLOW_MULTI".to_owned(),
        other => format!("{other:#x}"),
    }
}

struct AttachTypeName(u32);

impl fmt::Display for AttachTypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == ATTACH_CGROUP_DEVICE {
            f.write_str("BPF_CGROUP_DEVICE")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// `struct bpf_insn` as the kernel reads it: 8 bytes. `regs` holds `dst` in
/// the low and `src` in the high nibble (little-endian bitfield order).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// `src << 4 | dst`.
    pub regs: u8,
    /// Jump offset or memory offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info` (the fields this module reads).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
}

/// Calls bpf(2) with `attr`; returns the (non-negative) result.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> Result<libc::c_long, Errno> {
    let size = u32::try_from(std::mem::size_of::<T>()).map_err(|_| Errno::E2BIG)?;
    // libbpf retries a load that fails with EAGAIN a few times; so do we.
    let mut again = 5;
    loop {
        // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` struct
        // laid out like the prefix of `union bpf_attr` that `cmd` reads, and
        // `size` is its exact size; every pointer stored in it (instruction,
        // license, log and id buffers) points into memory owned by the caller
        // that outlives this call, with the length stored beside it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T as *mut libc::c_void,
                size,
            )
        };
        if ret >= 0 {
            return Ok(ret);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            Errno::EAGAIN if cmd == CMD_PROG_LOAD && again > 0 => again -= 1,
            errno => return Err(errno),
        }
    }
}

fn owned_fd(ret: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = RawFd::try_from(ret).map_err(|_| Errno::EBADF)?;
    // SAFETY: bpf(2) returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn raw(fd: BorrowedFd<'_>) -> u32 {
    // A valid descriptor is never negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program.
///
/// `name` is the kernel-visible program name (at most 15 bytes of
/// `[A-Za-z0-9_.]`; longer names are cut). When the kernel refuses the
/// program, the load is retried with a verifier log, whose tail goes into the
/// error.
pub fn load_cgroup_device_program(
    insns: &[Insn],
    license: &CStr,
    name: &str,
) -> Result<OwnedFd, BpfError> {
    let call = || {
        format!(
            "BPF_PROG_LOAD(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt={}, license={license:?}, name={name:?})",
            insns.len()
        )
    };
    let insn_cnt = u32::try_from(insns.len()).map_err(|_| BpfError::new(call(), Errno::E2BIG))?;
    let mut prog_name = [0u8; 16];
    for (slot, b) in prog_name.iter_mut().take(15).zip(name.bytes()) {
        *slot = b;
    }
    let mut attr = ProgLoadAttr {
        prog_type: PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        ..ProgLoadAttr::default()
    };
    match bpf(CMD_PROG_LOAD, &mut attr) {
        Ok(fd) => owned_fd(fd).map_err(|e| BpfError::new(call(), e)),
        Err(errno @ (Errno::EINVAL | Errno::EACCES)) => {
            // Load again with the verifier's log, for the error.
            let mut log = vec![0u8; LOG_SIZE];
            let mut attr = ProgLoadAttr {
                log_level: 1,
                log_size: LOG_SIZE as u32,
                log_buf: log.as_mut_ptr() as u64,
                ..attr
            };
            if let Ok(fd) = bpf(CMD_PROG_LOAD, &mut attr) {
                // Loaded after all (a transient refusal).
                return owned_fd(fd).map_err(|e| BpfError::new(call(), e));
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(BpfError {
                call: call(),
                errno,
                verifier_log: (!tail.is_empty()).then(|| tail.join(" / ")),
            })
        }
        Err(errno) => Err(BpfError::new(call(), errno)),
    }
}

/// Runs `load` with `RLIMIT_MEMLOCK` raised to infinity when the first try
/// fails with `EPERM` (kernels before 5.11 charge BPF memory to that limit),
/// restoring the old limit afterwards. The hook is single-threaded, so the
/// temporary change is not seen by anything else.
pub fn with_memlock_retry<T>(mut load: impl FnMut() -> Result<T, BpfError>) -> Result<T, BpfError> {
    match load() {
        Err(err) if err.errno == Errno::EPERM => {
            let old = getrlimit(Resource::RLIMIT_MEMLOCK)
                .map_err(|e| BpfError::new("getrlimit(RLIMIT_MEMLOCK)".to_owned(), e))?;
            let inf = libc::RLIM_INFINITY;
            if setrlimit(Resource::RLIMIT_MEMLOCK, inf, inf).is_err() {
                // Not allowed to raise it: the original error stands.
                return Err(err);
            }
            let result = load();
            let _ = setrlimit(Resource::RLIMIT_MEMLOCK, old.0, old.1);
            result
        }
        other => other,
    }
}

/// The ids of the programs of `attach_type` attached directly to `cgroup`
/// (`BPF_PROG_QUERY` without `BPF_F_QUERY_EFFECTIVE`), in attach order.
pub fn query_programs(cgroup: BorrowedFd<'_>, attach_type: u32) -> Result<Vec<u32>, BpfError> {
    let call = || {
        format!(
            "BPF_PROG_QUERY(target_fd={}, attach_type={})",
            cgroup.as_raw_fd(),
            AttachTypeName(attach_type)
        )
    };
    let mut ids: Vec<u32> = Vec::new();
    loop {
        let mut attr = QueryAttr {
            target_fd: raw(cgroup),
            attach_type,
            prog_ids: if ids.is_empty() {
                0
            } else {
                ids.as_mut_ptr() as u64
            },
            prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            ..QueryAttr::default()
        };
        match bpf(CMD_PROG_QUERY, &mut attr) {
            Ok(_) => {
                let n = attr.prog_cnt as usize;
                if ids.is_empty() && n > 0 {
                    // First call only counted: fetch them.
                    ids = vec![0; n + 4];
                    continue;
                }
                ids.truncate(n.min(ids.len()));
                return Ok(ids);
            }
            // More were attached meanwhile.
            Err(Errno::ENOSPC) => ids = vec![0; attr.prog_cnt as usize + 4],
            Err(errno) => return Err(BpfError::new(call(), errno)),
        }
    }
}

/// A descriptor for the program with id `id` (`BPF_PROG_GET_FD_BY_ID`).
pub fn program_fd_by_id(id: u32) -> Result<OwnedFd, BpfError> {
    let mut attr = GetIdAttr {
        prog_id: id,
        ..GetIdAttr::default()
    };
    bpf(CMD_PROG_GET_FD_BY_ID, &mut attr)
        .and_then(owned_fd)
        .map_err(|e| BpfError::new(format!("BPF_PROG_GET_FD_BY_ID(prog_id={id})"), e))
}

/// Attaches `program` to `cgroup` (`BPF_PROG_ATTACH`).
pub fn attach(
    cgroup: BorrowedFd<'_>,
    program: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> Result<(), BpfError> {
    let mut attr = AttachAttr {
        target_fd: raw(cgroup),
        attach_bpf_fd: raw(program),
        attach_type,
        attach_flags: flags,
        ..AttachAttr::default()
    };
    bpf(CMD_PROG_ATTACH, &mut attr).map(drop).map_err(|e| {
        BpfError::new(
            format!(
                "BPF_PROG_ATTACH(target_fd={}, attach_bpf_fd={}, attach_type={}, attach_flags={})",
                cgroup.as_raw_fd(),
                program.as_raw_fd(),
                AttachTypeName(attach_type),
                attach_flags_name(flags)
            ),
            e,
        )
    })
}

/// Detaches `program` from `cgroup` (`BPF_PROG_DETACH`; with
/// `BPF_F_ALLOW_MULTI` the program must be named).
pub fn detach(
    cgroup: BorrowedFd<'_>,
    program: BorrowedFd<'_>,
    attach_type: u32,
) -> Result<(), BpfError> {
    let mut attr = AttachAttr {
        target_fd: raw(cgroup),
        attach_bpf_fd: raw(program),
        attach_type,
        ..AttachAttr::default()
    };
    bpf(CMD_PROG_DETACH, &mut attr).map(drop).map_err(|e| {
        BpfError::new(
            format!(
                "BPF_PROG_DETACH(target_fd={}, attach_bpf_fd={}, attach_type={})",
                cgroup.as_raw_fd(),
                program.as_raw_fd(),
                AttachTypeName(attach_type)
            ),
            e,
        )
    })
}

/// The kernel's id of a loaded program (`BPF_OBJ_GET_INFO_BY_FD`).
pub fn program_id(program: impl AsFd) -> Result<u32, BpfError> {
    let program = program.as_fd();
    let mut info = ProgInfo::default();
    get_info(program, &mut info)?;
    Ok(info.id)
}

/// The instructions of a loaded program as the kernel holds them after
/// verification ("xlated"; for a cgroup device program these are the loaded
/// ones). Needs `CAP_SYS_ADMIN` (or `CAP_PERFMON`). For diagnostics and tests.
pub fn program_instructions(program: impl AsFd) -> Result<Vec<Insn>, BpfError> {
    let program = program.as_fd();
    let mut info = ProgInfo::default();
    get_info(program, &mut info)?;
    let n = info.xlated_prog_len as usize / std::mem::size_of::<Insn>();
    let mut insns = vec![
        Insn {
            code: 0,
            regs: 0,
            off: 0,
            imm: 0
        };
        n
    ];
    let mut info = ProgInfo {
        xlated_prog_len: info.xlated_prog_len,
        xlated_prog_insns: insns.as_mut_ptr() as u64,
        ..ProgInfo::default()
    };
    get_info(program, &mut info)?;
    let got = info.xlated_prog_len as usize / std::mem::size_of::<Insn>();
    insns.truncate(got.min(n));
    Ok(insns)
}

fn get_info(program: BorrowedFd<'_>, info: &mut ProgInfo) -> Result<(), BpfError> {
    let mut attr = InfoAttr {
        bpf_fd: raw(program),
        info_len: std::mem::size_of::<ProgInfo>() as u32,
        info: info as *mut ProgInfo as u64,
    };
    bpf(CMD_OBJ_GET_INFO_BY_FD, &mut attr)
        .map(drop)
        .map_err(|e| {
            BpfError::new(
                format!("BPF_OBJ_GET_INFO_BY_FD(bpf_fd={})", program.as_raw_fd()),
                e,
            )
        })
}

/// True when `path` is the root of a cgroup2 file system mount, or any
/// directory in one (`statfs` magic `CGROUP2_SUPER_MAGIC`): how runc decides
/// that `/sys/fs/cgroup` means cgroup v2 ("unified mode").
pub fn is_cgroup2(path: &Path) -> Result<bool, BpfError> {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .map_err(|e| BpfError::new(format!("statfs({})", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernel() {
        // Offsets from include/uapi/linux/bpf.h.
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 64);
        assert_eq!(std::mem::size_of::<AttachAttr>(), 20);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 32);
        assert_eq!(std::mem::size_of::<GetIdAttr>(), 12);
        assert_eq!(std::mem::size_of::<InfoAttr>(), 16);
        assert_eq!(std::mem::size_of::<ProgInfo>(), 40);
    }

    #[test]
    fn error_names_the_call() {
        let err = BpfError::new(
            "BPF_PROG_QUERY(target_fd=5, attach_type=BPF_CGROUP_DEVICE)".to_owned(),
            Errno::EPERM,
        );
        assert_eq!(
            err.to_string(),
            "BPF_PROG_QUERY(target_fd=5, attach_type=BPF_CGROUP_DEVICE): Operation not permitted"
        );
    }
}
