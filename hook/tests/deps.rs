//! The hook never links an async runtime or an HTTP stack (DESIGN.md): it is
//! synchronous and single-threaded, on the container-start path. And it never
//! depends on the CLI. Checked with `cargo tree` on its normal dependencies.
use std::process::Command;

/// Async runtimes, HTTP stacks and the crates above the hook.
const DENY: &[&str] = &[
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
];

#[test]
fn hook_has_no_async_or_http_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--manifest-path",
            manifest,
            "-p",
            "hook",
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
    assert_eq!(
        crates.first(),
        Some(&"hook"),
        "unexpected cargo tree output:\n{tree}"
    );
    let bad: Vec<&str> = crates
        .iter()
        .copied()
        .filter(|c| DENY.contains(c))
        .collect();
    assert!(bad.is_empty(), "hook depends on {bad:?}:\n{tree}");
    // rules is the only workspace crate below the hook.
    assert!(
        crates.contains(&"rules"),
        "hook does not depend on rules?\n{tree}"
    );
}
