//! The host side of nvidia-docker: discovering what the host has and applying a
//! plan inside a container. It never links an async runtime or an HTTP stack.
#![forbid(unsafe_code)]
