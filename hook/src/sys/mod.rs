//! Every syscall the hook makes, and the only place `unsafe` is allowed.
//!
//! Wrappers take `impl AsFd` plus a relative path where a path is involved,
//! and their errors record every argument.
//!
//! (in progress: issue 5.)
pub mod bpf;
pub mod child;
pub mod process;
