//! The nvidia-docker 1.0 compatible front ends: the `nvidia-docker` shim, its own
//! verbs, the `nvidia-docker-plugin` daemon and the renderers.
#![forbid(unsafe_code)]
