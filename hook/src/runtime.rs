//! The runc wrapper: writes the GPU plan into a bundle's spec on `create`, then execs the real runtime (in progress: issue 7).
#![forbid(unsafe_code)]
