//! What every binary says about itself: its version with the git commit it
//! was built from (`hook/build.rs`), and one rule for how chatty it is.
//!
//! Verbosity is the same everywhere: `RUST_LOG` (env_logger's syntax) wins
//! when set; otherwise each `-v`/`--verbose` raises the binary's default
//! level one step (warn -> info -> debug -> trace).
//!
//! Shell completions and man pages are generated from each binary's clap
//! definition ([`write_completions`], [`write_man`]), so they never drift
//! from the options the binary accepts.
#![forbid(unsafe_code)]

use log::LevelFilter;

/// `0.1.0 (commit 1a2b3c4d5e6f)`, or `(commit unknown)` when built without git.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NVIDIA_DOCKER_GIT_COMMIT"),
    ")"
);

/// The commit alone (`unknown` when built without git).
pub const COMMIT: &str = env!("NVIDIA_DOCKER_GIT_COMMIT");

/// `default` raised by `verbose` steps, at most `trace`.
pub fn level(default: LevelFilter, verbose: u8) -> LevelFilter {
    let order = [
        LevelFilter::Off,
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ];
    let at = order.iter().position(|l| *l == default).unwrap_or(2);
    order[(at + usize::from(verbose)).min(order.len() - 1)]
}

/// The env_logger filter: `RUST_LOG` when set, else [`level`].
pub fn filter(default: LevelFilter, verbose: u8) -> String {
    level(default, verbose).to_string().to_ascii_lowercase()
}

/// Writes the completion script of `cmd` for `shell` (bash, zsh, fish, ...).
/// Generated into memory first: clap_complete panics on a write error
/// (`| head`), this returns it.
pub fn write_completions(
    cmd: &mut clap::Command,
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let name = cmd.get_name().to_owned();
    let mut buf = Vec::new();
    clap_complete::generate(shell, cmd, name, &mut buf);
    out.write_all(&buf)?;
    out.flush()
}

/// Writes the man page (section 1, roff) of `cmd`, its subcommands listed.
pub fn write_man(cmd: &clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut cmd = cmd.clone().version(VERSION);
    cmd.build();
    clap_mangen::Man::new(cmd).render(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_steps() {
        assert_eq!(level(LevelFilter::Warn, 0), LevelFilter::Warn);
        assert_eq!(level(LevelFilter::Warn, 1), LevelFilter::Info);
        assert_eq!(level(LevelFilter::Warn, 2), LevelFilter::Debug);
        assert_eq!(level(LevelFilter::Info, 9), LevelFilter::Trace);
        assert_eq!(filter(LevelFilter::Info, 1), "debug");
    }

    #[test]
    fn version_names_the_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(VERSION.ends_with(&format!("(commit {COMMIT})")));
        assert!(!COMMIT.is_empty());
    }
}
