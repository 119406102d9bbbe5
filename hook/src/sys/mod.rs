//! Every syscall the hook makes, and the only place `unsafe` is allowed.
//!
//! Wrappers take `impl AsFd` plus a relative path where a path is involved,
//! and their errors record every argument (pathrs `syscalls.rs`). Nothing
//! here decides anything: policy lives in `rules`, sequencing in `apply`.
//!
//! - [`fs`]: `openat2`, `mkdirat`, `mknodat`, `symlinkat`, `renameat`, ...
//!   on held directory descriptors.
//! - [`mount`]: the new mount API (`open_tree`, `move_mount`,
//!   `mount_setattr`, `fsopen`/`fsmount`). Bind sources are cloned on the
//!   host side *before* `setns` and attached inside the container's mount
//!   namespace afterwards: a classic `mount --bind /proc/self/fd/N` of a
//!   descriptor opened in another mount namespace fails with `EINVAL`
//!   (`check_mnt` in `fs/namespace.c`), a detached clone does not.
//! - [`ns`]: namespace descriptors, `setns`, and becoming root of a joined
//!   user namespace.
//! - [`caps`]: capability sets.
//! - [`child`]: a step in a forked, single-threaded child with a deadline.
//! - [`cuda`]: the CUDA driver API's device attributes (for v1's `/gpu/info`).
//! - [`nvml`]: a MIG device's instance ids (NVML calls `nvml-wrapper` lacks).
//! - `bpf`, `process`: the device cgroup's eBPF program and the ldconfig
//!   child (owned by the cgroup/ldconfig work).
//!
//! Kernel floor: 5.12 (`mount_setattr`); `openat2` needs 5.6.
//!
//! Syscalls go through rustix (or nix) wherever they wrap them; `unsafe` is
//! left only where neither does, each with its reason at the call:
//! `mount_setattr` ([`mount::set_attrs`]), `fchmodat2` ([`fs::chmod_fd`]),
//! `close_range` ([`process::cloexec_from`]), `fork` and `_exit`
//! ([`process::fork`], which [`child::run_in_child`] uses too), bpf(2)
//! (`bpf`), and loading the CUDA driver library ([`cuda`]).
pub mod bpf;
pub mod caps;
pub mod child;
pub mod cuda;
pub mod fs;
pub mod lock;
pub mod mount;
pub mod ns;
pub mod nvml;
pub mod process;
