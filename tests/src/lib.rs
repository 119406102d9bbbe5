//! End-to-end test support: real runc, dockerd and podman on this machine.
//!
//! Used by the one integration binary (`tests/tests.rs`) and nothing else.
//!
//! - [`prereq`]: [`require!`] skips a test locally and fails it under `CI`
//!   when root, a runtime or a cgroup version is missing.
//! - [`bundle`]: OCI bundles (private rootfs copy + `config.json`).
//! - [`runc`]: `runc run` under cgroup v1 or v2, with a timeout and cleanup.
//! - [`docker`]: a private `dockerd` per test process, image import.
//! - [`podman`]: `podman` with private storage, image import, hooks dir.
//! - [`containerd`]: a private containerd driven through its CRI (gRPC).
//! - [`process`]: commands with deadlines; [`mounts`]: the mount table.
//!
//! Everything has a timeout: a hung runtime fails its test instead of
//! hanging CI. Children get a cleared environment plus `PATH`; no process-wide
//! state (cwd, umask, environment) is changed.

pub mod bundle;
pub mod containerd;
pub mod docker;
pub mod gpu;
pub mod hook;
pub mod mounts;
pub mod podman;
pub mod prereq;
pub mod process;
pub mod real;
pub mod runc;
pub mod stats;
pub mod systemd;

pub use bundle::{Bundle, BundleBuilder, Hook, HookStage};
pub use docker::{Dockerd, DockerdBuilder};
pub use fixtures::rootfs::Variant;
pub use podman::{Podman, PodmanBuilder};
pub use prereq::{require, require_all, Prereq};
pub use process::Output;
pub use runc::{runc_run, runc_run_timeout, runtime_run_timeout, CgroupVersion, Runtime};

/// `LABEL` changes for `docker import --change` making an image a v1
/// nvidia-docker image: `com.nvidia.volumes.needed=nvidia_driver` and
/// `com.nvidia.cuda.version=<cuda>`.
pub fn v1_labels(cuda: &str) -> Vec<String> {
    vec![
        "LABEL com.nvidia.volumes.needed=nvidia_driver".to_owned(),
        format!("LABEL com.nvidia.cuda.version={cuda}"),
    ]
}

/// The `ENV` change for a modern CUDA image: `NVIDIA_REQUIRE_CUDA=<expr>`
/// (e.g. `"cuda>=12.2 brand=tesla,driver>=470"`).
pub fn require_cuda_env(expr: &str) -> String {
    format!("ENV NVIDIA_REQUIRE_CUDA=\"{expr}\"")
}
