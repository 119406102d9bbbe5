//! eBPF syscalls for the cgroup v2 device filter (in progress).
