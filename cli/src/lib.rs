//! The nvidia-docker 1.0 compatible front ends: the `nvidia-docker` shim, its own
//! verbs, the `nvidia-docker-plugin` daemon and the renderers.
//!
//! - [`v1`]: v1's data and formats (`/gpu/info`, `/gpu/status`, `/docker/cli`,
//!   `/mesos/cli`), pure except the daemon's NVML queries.
//! - [`host`]: the configuration and the inventory.
//!
//! What it must never do: decide policy itself (device selection, CUDA checks
//! and volume contents come from `rules`), or load NVML on the shim's path.
#![forbid(unsafe_code)]

pub mod cmd;
pub mod host;
pub mod logfmt;
pub mod plugin;
pub mod setup;
pub mod shim;
pub mod v1;
