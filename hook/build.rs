//! Records the git commit the binaries are built from, for `--version`:
//! `NVIDIA_DOCKER_GIT_COMMIT` is `git rev-parse --short=12 HEAD`, or the
//! variable of that name when set (a packaging build from a tarball), or
//! `unknown` when neither git nor the repository is there. Every binary
//! reads it through `hook::about::VERSION`.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=NVIDIA_DOCKER_GIT_COMMIT");
    let commit = std::env::var("NVIDIA_DOCKER_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
    for path in ["HEAD", "packed-refs"]
        .into_iter()
        .map(str::to_owned)
        .chain(git(&["symbolic-ref", "-q", "HEAD"]))
    {
        if let Some(p) = git(&["rev-parse", "--git-path", &path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rustc-env=NVIDIA_DOCKER_GIT_COMMIT={commit}");
}
