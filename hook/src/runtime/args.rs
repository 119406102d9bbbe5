//! runc's command line, read only as far as the wrapper needs: the command,
//! its `--bundle` and the global `--log`/`--log-format` (where runc's
//! callers look for the error of a failed `create`).
//!
//! runc parses with Go's `flag` rules (urfave/cli): `-flag`, `--flag`,
//! `-flag=value`, `--flag value`; global flags come before the command.
//! Unknown global flags are taken as booleans (the value-taking ones are
//! listed), so `runc --root create create` still finds the command. The
//! bundle may be spelled `--bundle`, `-bundle`, `-b`, `--b`, with `=` or a
//! separate value, anywhere after the command (until `--`); the last wins,
//! as with `flag`. Without one, runc uses the current directory.
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// runc's global flags that take a value.
const GLOBAL_VALUE_FLAGS: &[&str] = &["root", "log", "log-format", "criu", "rootless"];

/// Flags of `create` and `run` that take a value (other than the bundle).
const COMMAND_VALUE_FLAGS: &[&str] =
    &["console-socket", "pidfd-socket", "pid-file", "preserve-fds"];

/// What a runc command line asks for, as far as the wrapper cares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// The command (`create`, `start`, `state`, ...), if any.
    pub command: Option<String>,
    /// The `--bundle` value, when given.
    pub bundle: Option<PathBuf>,
    /// The global `--log` file.
    pub log: Option<PathBuf>,
    /// The global `--log-format` (`text` or `json`).
    pub log_format: Option<String>,
    /// `--bundle` was the last argument, without its value (runc itself
    /// reports it; the wrapper passes the command through).
    pub bundle_missing_value: bool,
}

impl Invocation {
    /// True for the commands that create a container from a bundle:
    /// `create`, and `run` (create then start).
    pub fn creates(&self) -> bool {
        matches!(self.command.as_deref(), Some("create" | "run"))
    }
}

/// `-x`, `--x`, `-x=v`, `--x=v` → `(x, Some(v))`; `None` for a non-flag
/// (including `-` alone) and for `--`.
fn flag(arg: &OsStr) -> Option<(&str, Option<&OsStr>)> {
    let bytes = arg.as_bytes();
    let rest = bytes
        .strip_prefix(b"--")
        .or_else(|| bytes.strip_prefix(b"-"))?;
    if rest.is_empty() || rest.starts_with(b"-") {
        return None;
    }
    let (name, value) = match rest.iter().position(|b| *b == b'=') {
        Some(i) => (&rest[..i], Some(OsStr::from_bytes(&rest[i + 1..]))),
        None => (rest, None),
    };
    Some((std::str::from_utf8(name).ok()?, value))
}

/// Reads `args` (without argv\[0\]).
pub fn parse(args: &[OsString]) -> Invocation {
    let mut inv = Invocation::default();
    let mut i = 0;
    // Global flags, up to the command.
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        match flag(arg) {
            Some((name, inline)) => {
                let takes_value = GLOBAL_VALUE_FLAGS.contains(&name);
                let value = if takes_value && inline.is_none() {
                    i += 1;
                    args.get(i).map(OsString::as_os_str)
                } else {
                    inline
                };
                match name {
                    "log" => inv.log = value.map(PathBuf::from),
                    "log-format" => {
                        inv.log_format = value.map(|v| v.to_string_lossy().into_owned())
                    }
                    _ => {}
                }
                i += 1;
            }
            None => break,
        }
    }
    let Some(command) = args.get(i) else {
        return inv;
    };
    inv.command = Some(command.to_string_lossy().into_owned());
    i += 1;
    // The command's arguments: find the bundle, skipping other flags' values.
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            break;
        }
        if let Some((name, inline)) = flag(arg) {
            if name == "bundle" || name == "b" {
                match inline {
                    Some(v) => inv.bundle = Some(PathBuf::from(v)),
                    None => match args.get(i + 1) {
                        Some(v) => {
                            inv.bundle = Some(PathBuf::from(v));
                            i += 1;
                        }
                        None => inv.bundle_missing_value = true,
                    },
                }
            } else if inline.is_none() && COMMAND_VALUE_FLAGS.contains(&name) {
                i += 1;
            }
        }
        i += 1;
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Invocation {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn containerd_shim_create() {
        let inv = p(&[
            "--root",
            "/run/containerd/runc/moby",
            "--log",
            "/run/x/log.json",
            "--log-format",
            "json",
            "--systemd-cgroup",
            "create",
            "--bundle",
            "/run/b",
            "--pid-file",
            "/run/b/init.pid",
            "abc",
        ]);
        assert_eq!(inv.command.as_deref(), Some("create"));
        assert!(inv.creates());
        assert_eq!(inv.bundle, Some(PathBuf::from("/run/b")));
        assert_eq!(inv.log, Some(PathBuf::from("/run/x/log.json")));
        assert_eq!(inv.log_format.as_deref(), Some("json"));
    }

    #[test]
    fn every_bundle_spelling() {
        for args in [
            &["create", "--bundle", "/b", "id"][..],
            &["create", "--bundle=/b", "id"],
            &["create", "-bundle", "/b", "id"],
            &["create", "-bundle=/b", "id"],
            &["create", "-b", "/b", "id"],
            &["create", "-b=/b", "id"],
            &["create", "--b", "/b", "id"],
            &["create", "id", "-b", "/b"],
            &["create", "-b", "/a", "--bundle", "/b", "id"],
            &["run", "-d", "--bundle", "/b", "id"],
        ] {
            let inv = p(args);
            assert_eq!(inv.bundle, Some(PathBuf::from("/b")), "{args:?}");
            assert!(inv.creates(), "{args:?}");
        }
    }

    #[test]
    fn values_are_not_commands_or_bundles() {
        // A root directory named "create" is not the command.
        let inv = p(&["--root", "create", "state", "id"]);
        assert_eq!(inv.command.as_deref(), Some("state"));
        assert!(!inv.creates());
        // A pid file named "-b" is not the bundle flag.
        let inv = p(&["create", "--pid-file", "-b", "id"]);
        assert_eq!(inv.bundle, None);
        // A bundle directory named "create".
        let inv = p(&["create", "--bundle", "create", "id"]);
        assert_eq!(inv.bundle, Some(PathBuf::from("create")));
        // After "--" nothing is a flag.
        let inv = p(&["create", "id", "--", "-b", "/x"]);
        assert_eq!(inv.bundle, None);
    }

    #[test]
    fn no_command_and_missing_values() {
        assert_eq!(p(&[]).command, None);
        assert_eq!(p(&["--version"]).command, None);
        assert_eq!(p(&["--root"]).command, None);
        let inv = p(&["create", "id", "--bundle"]);
        assert!(inv.bundle_missing_value);
        assert_eq!(inv.bundle, None);
        for other in ["start", "delete", "kill", "state", "exec", "ps", "features"] {
            assert!(!p(&[other, "id"]).creates(), "{other}");
        }
    }
}
