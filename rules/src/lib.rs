//! Pure policy for GPU containers.
//!
//! `rules` decides everything and touches nothing: no file, no syscall, no NVML,
//! no environment. The hook, the runc wrapper, the CDI generator, `cli-options`
//! and the REST API all call it, so they can never disagree.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
