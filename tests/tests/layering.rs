//! The layering the design rests on, checked on the crates' normal
//! dependency trees (`cargo tree -e normal`):
//!
//! - `rules` does no I/O: none of its dependencies is a crate whose purpose
//!   is I/O, system calls, NVML or a network (its `clippy.toml` also bans
//!   `std::fs`, `std::env`, `std::process` and `std::net` in its code);
//! - `hook` never links an async runtime or an HTTP stack (it is on the
//!   container-start path, synchronous and single-threaded), and never
//!   depends on `cli`.
use std::process::Command;

/// The crate names in `package`'s normal dependency tree, itself first.
fn normal_dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(cargo)
        .args(["tree", "--manifest-path", manifest, "-p", package])
        .args(["-e", "normal", "--prefix", "none", "--offline"])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf-8");
    let crates: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        crates.first().map(String::as_str),
        Some(package),
        "unexpected cargo tree output:\n{tree}"
    );
    crates
}

fn assert_none_of(package: &str, deny: &[&str], why: &str) {
    let crates = normal_dependencies(package);
    let bad: Vec<&String> = crates
        .iter()
        .filter(|c| deny.contains(&c.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "{package} depends on {bad:?}, {why}:\n{crates:?}"
    );
}

#[test]
fn rules_has_no_io_dependency() {
    assert_none_of(
        "rules",
        &[
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
            "hook",
            "cli",
        ],
        "crates that do I/O, wrap syscalls or talk to NVML or a network",
    );
}

#[test]
fn hook_has_no_async_or_http_dependency() {
    assert_none_of(
        "hook",
        &[
            "tokio",
            "async-std",
            "smol",
            "futures",
            "mio",
            "hyper",
            "hyper-util",
            "h2",
            "http",
            "reqwest",
            "ureq",
            "axum",
            "tower",
            "bollard",
            "cli",
        ],
        "an async runtime, an HTTP stack or the CLI",
    );
    assert!(
        normal_dependencies("hook").iter().any(|c| c == "rules"),
        "hook does not depend on rules?"
    );
}
