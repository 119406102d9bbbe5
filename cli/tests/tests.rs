//! The integration tests of the `cli` crate: one binary, one module per
//! suite. The daemon runs as a real child process on a simulated host
//! (the mock NVML and a generated driver root).

mod support;

mod fuzz;
mod golden;
mod plugin;
mod plugin_load;
mod real_volume;
mod setup;
