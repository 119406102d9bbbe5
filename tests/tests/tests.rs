//! One integration binary for every end-to-end suite: real runc (cgroup v1
//! and v2), a private dockerd and podman, on this machine.
//!
//! Privileged tests skip locally (printing `SKIP <test>: ...`) and fail under
//! `CI` when root, a runtime or a cgroup version is missing; see
//! `e2e::prereq`. Run one suite with a filter:
//! `cargo test -p e2e --test integration runc::`.

mod cdi_extra;
mod cgroup_systemd;
mod cli_explain;
mod config_bench;
mod config_common;
mod config_docker;
mod config_podman;
mod config_runc;
mod cri_containerd;
mod crun;
mod docker;
mod driver_drm;
mod driver_extra;
mod driver_graphics;
mod driver_mig;
mod driver_params;
mod everyday;
mod gpu_check;
mod hook_bench;
mod hook_docker;
mod hook_explain;
mod hook_faults;
mod hook_hostile;
mod hook_ldcache;
mod hook_parallel;
mod hook_podman;
mod hook_runc;
mod k8s_node;
mod k8s_runc;
mod layering;
mod ldcache_bench;
mod no_gpu_warning;
mod packages;
mod podman;
mod real_driver;
mod real_driver_runtimes;
mod runc;
mod setup_mode;
mod simulated_gpus;
mod v1_bench;
mod v1_docker;
