//! Learning docker's flags from `docker <command> --help`, cached per docker
//! binary (its path, size and mtime) under `$XDG_CACHE_HOME/nvidia-docker`
//! (else `~/.cache/nvidia-docker`), so a new docker release is asked once.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Finds `program` on `PATH` (or as given when it has a slash).
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|f| f.is_file())
    })
}

fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|d| d.join("nvidia-docker"))
}

fn cache_key(docker: &[String], verb: &str) -> String {
    let mut h = DefaultHasher::new();
    docker.hash(&mut h);
    verb.hash(&mut h);
    if let Some(meta) = docker
        .iter()
        .find(|w| w.contains("docker"))
        .or(docker.first())
        .and_then(|p| which(p))
        .and_then(|p| std::fs::metadata(p).ok())
    {
        (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// docker's `--help` for `verb` (`""` for the global flags), from the cache
/// or by running docker; `None` when docker cannot say.
pub fn docker_help(docker: &[String], verb: &str) -> Option<String> {
    let key = cache_key(docker, verb);
    let file = cache_dir().map(|d| d.join(format!("help-{key}.txt")));
    if let Some(text) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        return Some(text);
    }
    let (program, prefix) = docker.split_first()?;
    let mut cmd = Command::new(program);
    cmd.args(prefix);
    if !verb.is_empty() {
        cmd.arg(verb);
    }
    let out = cmd
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !text.contains("--") {
        return None;
    }
    if let Some(f) = file {
        if let Some(d) = f.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        // Written whole then renamed: a concurrent reader never sees half.
        let tmp = f.with_extension(format!("tmp-{}", std::process::id()));
        if std::fs::write(&tmp, &text).is_ok() {
            let _ = std::fs::rename(&tmp, &f);
        }
    }
    Some(text)
}
