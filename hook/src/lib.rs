//! The host side of nvidia-docker: discovering what the host has (the
//! inventory and its snapshot) and applying a plan inside a container.
//!
//! It must never: link an async runtime or an HTTP stack; run NVML in a
//! process that will `setns` into a container; resolve a path inside a
//! container root to a string and reuse it; execute or mount a file from the
//! image with host privileges; inherit its environment from the image.
//!
//! Modules:
//! - [`about`]: version with the git commit, verbosity, exit codes.
//! - [`config`]: `HostPaths` and the hook's configuration file.
//! - [`ldcache`], [`discover`], [`snapshot`], [`inventory`]: the inventory.
//! - [`diagnose`]: why NVML answers but shows no GPU (one warning line).
//! - [`sys`]: every syscall (the only module allowed `unsafe`).
//! - [`state`], [`container`]: the OCI state on stdin and the bundle's spec.
//! - [`compat`]: the image's CUDA forward-compatibility library, read
//!   inside the container root.
//! - [`apply`], [`cgroup`], [`ldconfig`]: executing a plan in a container.
//! - [`explain`]: the decision for a container, applied nowhere, for people.

pub mod about;
pub mod apply;
pub mod cgroup;
pub mod compat;
pub mod config;
pub mod container;
pub mod deadline;
pub mod diagnose;
pub mod discover;
pub mod explain;
pub mod inventory;
pub mod ldcache;
pub mod ldcache_write;
pub mod ldconfig;
pub mod ldconfig_conf;
pub mod runtime;
pub mod snapshot;
pub mod state;
pub mod sys;
