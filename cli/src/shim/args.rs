//! Finding the command and the image in docker's argv without v1's
//! per-version table (docs/v1.md §1, §7).
//!
//! The scanner knows docker's current global and `run`/`create` flags
//! (boolean vs valued, long and short, clusters such as `-it` or `-itv x`,
//! `-p8080:80`, `--flag=value`, `--`). When it meets a flag it does not know
//! (a newer docker), it asks docker itself: `docker <command> --help` is
//! parsed once and cached per docker binary (path, size and mtime), so
//! a new Docker release is learned, not a reason to fail.

use std::collections::BTreeSet;

/// Global boolean flags (docker 28: `docker --help`).
const GLOBAL_BOOL: &[&str] = &[
    "D",
    "debug",
    "tls",
    "tlsverify",
    "v",
    "version",
    "h",
    "help",
];
/// Global valued flags.
const GLOBAL_VALUED: &[&str] = &[
    "config",
    "c",
    "context",
    "H",
    "host",
    "l",
    "log-level",
    "tlscacert",
    "tlscert",
    "tlskey",
];
/// `run`/`create` boolean flags (docker 28.2 `docker run --help`; `create`
/// has the same set without `--detach` and `--sig-proxy`).
const RUN_BOOL: &[&str] = &[
    "d",
    "detach",
    "disable-content-trust",
    "help",
    "init",
    "i",
    "interactive",
    "no-healthcheck",
    "oom-kill-disable",
    "privileged",
    "P",
    "publish-all",
    "q",
    "quiet",
    "read-only",
    "rm",
    "sig-proxy",
    "t",
    "tty",
    "use-api-socket",
];
/// `run`/`create` valued flags.
const RUN_VALUED: &[&str] = &[
    "add-host",
    "annotation",
    "a",
    "attach",
    "blkio-weight",
    "blkio-weight-device",
    "cap-add",
    "cap-drop",
    "cgroup-parent",
    "cgroupns",
    "cidfile",
    "cpu-count",
    "cpu-percent",
    "cpu-period",
    "cpu-quota",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "c",
    "cpu-shares",
    "cpus",
    "cpuset-cpus",
    "cpuset-mems",
    "detach-keys",
    "device",
    "device-cgroup-rule",
    "device-read-bps",
    "device-read-iops",
    "device-write-bps",
    "device-write-iops",
    "dns",
    "dns-option",
    "dns-search",
    "domainname",
    "entrypoint",
    "e",
    "env",
    "env-file",
    "expose",
    "gpus",
    "group-add",
    "health-cmd",
    "health-interval",
    "health-retries",
    "health-start-interval",
    "health-start-period",
    "health-timeout",
    "h",
    "hostname",
    "io-maxbandwidth",
    "io-maxiops",
    "ip",
    "ip6",
    "ipc",
    "isolation",
    "kernel-memory",
    "l",
    "label",
    "label-file",
    "link",
    "link-local-ip",
    "log-driver",
    "log-opt",
    "mac-address",
    "m",
    "memory",
    "memory-reservation",
    "memory-swap",
    "memory-swappiness",
    "mount",
    "name",
    "network",
    "network-alias",
    "oom-score-adj",
    "pid",
    "pids-limit",
    "platform",
    "p",
    "publish",
    "pull",
    "restart",
    "runtime",
    "security-opt",
    "shm-size",
    "stop-signal",
    "stop-timeout",
    "storage-opt",
    "sysctl",
    "tmpfs",
    "ulimit",
    "u",
    "user",
    "userns",
    "uts",
    "v",
    "volume",
    "volume-driver",
    "volumes-from",
    "w",
    "workdir",
    // Older docker releases (still accepted by some): keep them valued.
    "net",
    "net-alias",
    "link-local-ip",
    "memory-swappiness",
    "oom-score-adj",
];

/// What a flag is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// Takes no value.
    Bool,
    /// Takes a value (inline after `=`, glued to a short flag, or the next
    /// argument).
    Valued,
}

/// Flag knowledge for one command.
pub trait Flags {
    /// The kind of a flag (name without dashes), `None` when unknown.
    fn kind(&mut self, name: &str) -> Option<FlagKind>;
}

/// A static table plus what docker's `--help` taught.
#[derive(Debug, Clone, Default)]
pub struct FlagTable {
    /// Boolean flags.
    pub bools: BTreeSet<String>,
    /// Valued flags.
    pub valued: BTreeSet<String>,
}

impl FlagTable {
    /// From name lists.
    pub fn new(bools: &[&str], valued: &[&str]) -> FlagTable {
        FlagTable {
            bools: bools.iter().map(|s| (*s).to_owned()).collect(),
            valued: valued.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// docker's global flags.
    pub fn global() -> FlagTable {
        FlagTable::new(GLOBAL_BOOL, GLOBAL_VALUED)
    }

    /// `run` and `create` flags.
    pub fn run() -> FlagTable {
        FlagTable::new(RUN_BOOL, RUN_VALUED)
    }

    /// Adds what `docker <cmd> --help` printed: lines such as
    /// `  -a, --attach list   Attach to ...` (valued: a type word follows)
    /// and `      --rm   Automatically ...` (boolean).
    pub fn learn_help(&mut self, help: &str) {
        for line in help.lines() {
            let t = line.trim_start();
            if !t.starts_with('-') || line.len() == t.len() {
                continue;
            }
            let head = t.split("  ").next().unwrap_or_default();
            let words: Vec<&str> = head.split_whitespace().collect();
            let mut names = Vec::new();
            let mut typed = false;
            for w in &words {
                if let Some(n) = w.trim_end_matches(',').strip_prefix("--") {
                    names.push(n.to_owned());
                } else if let Some(n) = w.trim_end_matches(',').strip_prefix('-') {
                    names.push(n.to_owned());
                } else {
                    typed = true;
                }
            }
            for n in names.into_iter().filter(|n| !n.is_empty()) {
                if typed {
                    self.valued.insert(n);
                } else {
                    self.bools.insert(n);
                }
            }
        }
    }
}

impl Flags for FlagTable {
    fn kind(&mut self, name: &str) -> Option<FlagKind> {
        if self.bools.contains(name) {
            Some(FlagKind::Bool)
        } else if self.valued.contains(name) {
            Some(FlagKind::Valued)
        } else {
            None
        }
    }
}

/// A flag docker does not know either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown flag: {0}")]
pub struct UnknownFlag(pub String);

/// The index of the first operand (non-flag argument) of `args[start..]`,
/// or `None` when there is none.
///
/// `--` ends the flags (the next argument is the operand); `-` alone is an
/// operand; `--name=value` is one argument; a valued long flag consumes the
/// next argument; in a short cluster (`-it`, `-itv x`, `-p8080:80`) the
/// first valued letter takes the rest of the cluster, or the next argument
/// when it is last.
pub fn first_operand(
    args: &[String],
    start: usize,
    flags: &mut dyn Flags,
) -> Result<Option<usize>, UnknownFlag> {
    let mut i = start;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            return Ok((i + 1 < args.len()).then_some(i + 1));
        }
        if a == "-" || !a.starts_with('-') {
            return Ok(Some(i));
        }
        if let Some(long) = a.strip_prefix("--") {
            if long.contains('=') {
                i += 1;
                continue;
            }
            match flags.kind(long) {
                Some(FlagKind::Bool) => i += 1,
                Some(FlagKind::Valued) => i += 2,
                None => return Err(UnknownFlag(a.to_owned())),
            }
            continue;
        }
        // A short cluster.
        let cluster = &a[1..];
        let mut consumed_next = false;
        for (pos, c) in cluster.char_indices() {
            if c == '=' {
                break;
            }
            match flags.kind(&c.to_string()) {
                Some(FlagKind::Bool) => {}
                Some(FlagKind::Valued) => {
                    // The rest of the cluster is the value, if any.
                    consumed_next = pos + c.len_utf8() == cluster.len();
                    break;
                }
                None => return Err(UnknownFlag(format!("-{c}"))),
            }
        }
        i += if consumed_next { 2 } else { 1 };
    }
    Ok(None)
}

/// Where the command and the image are in `docker` argv (without argv0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Index of the command word (`run`, `create`, `ps`, ...).
    pub command: Option<usize>,
    /// The command (`container run` reads as `run`).
    pub verb: Option<String>,
    /// Index of the image for `run`/`create`.
    pub image: Option<usize>,
}

/// The value of global `-H`/`--host` if given (the daemon to ask).
pub fn global_host(args: &[String], command: Option<usize>) -> Option<String> {
    let end = command.unwrap_or(args.len());
    let mut host = None;
    let mut i = 0;
    while i < end {
        let a = &args[i];
        if let Some(v) = a.strip_prefix("--host=").or_else(|| a.strip_prefix("-H=")) {
            host = Some(v.to_owned());
        } else if a == "-H" || a == "--host" {
            host = args.get(i + 1).cloned();
            i += 1;
        } else if let Some(v) = a.strip_prefix("-H") {
            host = Some(v.to_owned());
        }
        i += 1;
    }
    host
}

/// Finds the command, and the image of `run`/`create`.
pub fn locate(
    args: &[String],
    global: &mut dyn Flags,
    run: &mut dyn Flags,
) -> Result<Located, UnknownFlag> {
    let Some(mut cmd) = first_operand(args, 0, global)? else {
        return Ok(Located {
            command: None,
            verb: None,
            image: None,
        });
    };
    let mut verb = args[cmd].clone();
    if verb == "container" {
        match args.get(cmd + 1) {
            Some(v) => {
                cmd += 1;
                verb = v.clone();
            }
            None => {
                return Ok(Located {
                    command: Some(cmd),
                    verb: Some(verb),
                    image: None,
                })
            }
        }
    }
    let image = if verb == "run" || verb == "create" {
        first_operand(args, cmd + 1, run)?
    } else {
        None
    };
    Ok(Located {
        command: Some(cmd),
        verb: Some(verb),
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn image_of(s: &str) -> Option<String> {
        let a = v(s);
        let l = locate(&a, &mut FlagTable::global(), &mut FlagTable::run()).unwrap();
        l.image.map(|i| a[i].clone())
    }

    #[test]
    fn finds_the_image() {
        assert_eq!(image_of("run img"), Some("img".into()));
        assert_eq!(image_of("run -it --rm -v /a:/b img sh"), Some("img".into()));
        assert_eq!(image_of("run -itv /a:/b img"), Some("img".into()));
        assert_eq!(image_of("run -p8080:80 img"), Some("img".into()));
        assert_eq!(image_of("run -e=A=1 img"), Some("img".into()));
        assert_eq!(image_of("run --name=x -e A=1 img"), Some("img".into()));
        assert_eq!(image_of("run --rm -- img"), Some("img".into()));
        assert_eq!(
            image_of("-D -H unix:///x container run -d img"),
            Some("img".into())
        );
        assert_eq!(
            image_of("--log-level debug create --init img"),
            Some("img".into())
        );
        assert_eq!(image_of("ps -a"), None);
        assert_eq!(image_of("run --rm"), None);
        assert_eq!(image_of("container"), None);
        assert_eq!(image_of("run --sig-proxy img"), Some("img".into()));
    }

    #[test]
    fn unknown_flags_and_learning() {
        let a = v("run --future-flag x img");
        let err = locate(&a, &mut FlagTable::global(), &mut FlagTable::run()).unwrap_err();
        assert_eq!(err, UnknownFlag("--future-flag".into()));
        let mut run = FlagTable::run();
        run.learn_help(
            "Options:\n      --future-flag string   Something new\n  -Z, --zz   A bool\n",
        );
        let l = locate(&a, &mut FlagTable::global(), &mut run).unwrap();
        assert_eq!(l.image, Some(3));
        assert_eq!(run.kind("Z"), Some(FlagKind::Bool));
        assert_eq!(run.kind("zz"), Some(FlagKind::Bool));
    }

    #[test]
    fn host_flag() {
        let a = v("-H unix:///tmp/d.sock run img");
        assert_eq!(
            global_host(&a, Some(2)).as_deref(),
            Some("unix:///tmp/d.sock")
        );
        let a = v("--host=tcp://x:1 run img");
        assert_eq!(global_host(&a, Some(1)).as_deref(), Some("tcp://x:1"));
        assert_eq!(global_host(&v("run img"), Some(0)), None);
    }
}
