//! nvidia-docker 1.0's data and formats (docs/v1.md §2, §5, §6):
//! the `/gpu/info` and `/gpu/status` models, their text and JSON renderings,
//! `/docker/cli` and `/mesos/cli`.
//!
//! Pure except [`nvml`] and [`cuda`], which query NVML and the CUDA driver
//! API for the daemon.

pub mod arch;
pub mod cli_options;
pub mod cuda;
pub mod info;
pub mod mesos;
pub mod nvml;
pub mod render_json;
pub mod render_text;
pub mod status;
