//! The `nvidia-docker` shim's own verbs, one file each.
pub mod cli_options;
pub mod explain;
