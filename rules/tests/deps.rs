//! `rules` does no I/O, so none of its normal dependencies may be a crate
//! whose purpose is I/O, system calls or NVML. Checked with `cargo tree`.
//! (Tests may do I/O; the crate's clippy.toml bans it, so allow it here.)
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::Command;

/// Crates that do I/O, wrap syscalls or talk to NVML or a network.
const DENY: &[&str] = &[
    "libc",
    "nix",
    "rustix",
    "linux-raw-sys",
    "nvml-wrapper",
    "nvml-wrapper-sys",
    "libloading",
    "caps",
    "pathrs",
    "oci-spec",
    "tempfile",
    "walkdir",
    "glob",
    "memmap2",
    "tokio",
    "mio",
    "socket2",
    "hyper",
    "reqwest",
    "ureq",
    "env_logger",
    "log",
    "tracing",
    "anyhow",
];

#[test]
fn rules_has_no_io_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--manifest-path",
            manifest,
            "-p",
            "rules",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf-8");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.first() == Some(&"rules"),
        "unexpected cargo tree output:\n{tree}"
    );
    let bad: Vec<&str> = crates
        .iter()
        .copied()
        .filter(|c| DENY.contains(c))
        .collect();
    assert!(
        bad.is_empty(),
        "rules depends on I/O crates {bad:?}:\n{tree}"
    );
}
