//! Process syscalls: namespaces, rlimits, exec from a descriptor (in progress).
