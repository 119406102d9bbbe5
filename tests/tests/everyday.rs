//! The everyday interface of the four binaries: `--version` names the git
//! commit (the same one in every binary, a commit of this repository),
//! shell completions and man pages come from the clap definitions and are
//! valid (bash -n, groff), `-v` raises the log level as `RUST_LOG` does, and
//! a failure is one line on stderr with the documented exit code.
use std::path::PathBuf;
use std::time::Duration;

use e2e::hook::hook_binary;
use e2e::process::{command, run_timeout};
use e2e::Output;

fn bin(name: &str) -> PathBuf {
    hook_binary().unwrap().parent().unwrap().join(name)
}

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(bin(name));
    cmd.args(args).envs(env.iter().copied());
    run_timeout(&mut cmd, Duration::from_secs(30)).unwrap()
}

/// `<name> <version> (commit <c>)` on the first line: the commit.
fn commit_of(out: &Output, name: &str) -> String {
    let first = out.stdout.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix(&format!("{name} {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{name}: unexpected version line:\n{out}"));
    rest.strip_suffix(')').unwrap().to_owned()
}

#[test]
fn version_names_the_same_commit_everywhere() {
    let hook = run("nvidia-docker-hook", &["--version"], &[]);
    hook.assert_success();
    let commit = commit_of(&hook, "nvidia-docker-hook");
    for name in [
        "nvidia-docker-plugin",
        "nvidia-docker-runtime",
        "nvidia-docker",
    ] {
        let out = run(name, &["--version"], &[]);
        out.assert_success();
        assert_eq!(commit_of(&out, name), commit, "{name}");
    }
    if commit != "unknown" {
        assert!(
            commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "{commit}"
        );
        let mut git = command("git");
        git.args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        let known = run_timeout(&mut git, Duration::from_secs(10)).unwrap();
        // A build from a tarball has no repository to ask.
        if known.stderr.contains("not a git repository") {
            return;
        }
        known.assert_success();
    }
}

#[test]
fn completions_are_valid_shell_and_name_the_subcommands() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "nvidia-docker-hook",
            &["completions"],
            &["explain", "inventory", "prestart", "verbose"],
        ),
        (
            "nvidia-docker",
            &["completions"],
            &["explain", "cli-options", "setup"],
        ),
        ("nvidia-docker-plugin", &["--completions"], &["verbose"]),
    ];
    for (name, verb, words) in cases {
        for shell in ["bash", "zsh", "fish"] {
            let mut args = verb.to_vec();
            args.push(shell);
            let out = run(name, &args, &[]);
            out.assert_success();
            for w in *words {
                assert!(out.stdout.contains(w), "{name} {shell} lacks {w}:\n{out}");
            }
            if shell == "bash" {
                let dir = tempfile::tempdir().unwrap();
                let script = dir.path().join("c.bash");
                std::fs::write(&script, &out.stdout).unwrap();
                let mut check = command("bash");
                check.arg("-n").arg(&script);
                run_timeout(&mut check, Duration::from_secs(10))
                    .unwrap()
                    .assert_success();
            }
        }
    }
}

#[test]
fn man_pages_render() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("nvidia-docker-hook", &["man"], "explain"),
        ("nvidia-docker", &["man"], "cli\\-options"),
        ("nvidia-docker-plugin", &["--man"], "\\-\\-verbose"),
        (
            "nvidia-docker-runtime",
            &["--man"],
            "NVIDIA_DOCKER_RUNTIMES",
        ),
    ];
    for (name, args, word) in cases {
        let out = run(name, args, &[]);
        out.assert_success();
        assert!(
            out.stdout.contains(&format!(".TH {name} 1 ")),
            "{name}:\n{out}"
        );
        assert!(out.stdout.contains(word), "{name} lacks {word}:\n{out}");
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("page.1");
        std::fs::write(&page, &out.stdout).unwrap();
        if e2e::process::which("groff").is_some() {
            let mut groff = command("groff");
            groff.args(["-man", "-Tutf8", "-ww", "-z"]).arg(&page);
            let r = run_timeout(&mut groff, Duration::from_secs(10)).unwrap();
            r.assert_success();
            assert_eq!(r.stderr, "", "{name}: groff warnings:\n{r}");
        }
    }
}

/// `-v` raises the level one step, as `RUST_LOG` sets it: the hook's
/// inventory command logs its snapshot decision at debug level.
#[test]
fn verbose_and_rust_log_agree() {
    let args = ["inventory", "--driver-root", "/nonexistent-driver-root"];
    let quiet = run("nvidia-docker-hook", &args, &[]);
    let vv = run(
        "nvidia-docker-hook",
        &["-vv", args[0], args[1], args[2]],
        &[],
    );
    let env = run("nvidia-docker-hook", &args, &[("RUST_LOG", "debug")]);
    assert!(!quiet.stderr.contains("DEBUG"), "{quiet}");
    assert!(vv.stderr.contains("DEBUG"), "{vv}");
    assert!(env.stderr.contains("DEBUG"), "{env}");
    // A failure is one line on stderr, exit 1.
    assert_eq!(quiet.code(), Some(1), "{quiet}");
    assert_eq!(quiet.stderr.lines().count(), 1, "{quiet}");
    assert!(quiet.stderr.starts_with("nvidia-docker-hook: "), "{quiet}");
}

/// Usage errors are clap's, exit 2, for every binary that parses flags.
#[test]
fn usage_errors_exit_2() {
    for (name, args) in [
        ("nvidia-docker-hook", &["--no-such-flag"][..]),
        ("nvidia-docker-plugin", &["--no-such-flag"][..]),
        ("nvidia-docker", &["explain"][..]),
    ] {
        let out = run(name, args, &[]);
        assert_eq!(out.code(), Some(2), "{name}:\n{out}");
    }
}
