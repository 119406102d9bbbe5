//! Docker's `daemon.json`: the wrapper as a runtime, merged into what is
//! there.
//!
//! Sets `runtimes.<name>.path` (other keys of that entry, such as
//! `runtimeArgs`, are kept), and on request `default-runtime` and
//! `features.cdi`. Every other key stays, in its place. A file whose
//! content already says all that is returned byte for byte, so `--write`
//! twice changes nothing. A file that is not a JSON object is refused with
//! its line and column, and never touched.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::doc::Doc;

/// Where dockerd reads its configuration.
pub const DEFAULT_DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// Runtime names dockerd keeps for itself: a `daemon.json` that
/// registers one of them makes dockerd refuse to start (`runtime name
/// 'runc' is reserved`).
pub const RESERVED_RUNTIME_NAMES: &[&str] = &[
    "runc",
    "io.containerd.runc.v1",
    "io.containerd.runc.v2",
    "io.containerd.runtime.v1.linux",
];

/// The existing `daemon.json` cannot be merged into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// Not JSON.
    #[error("cannot update {}: it is not valid JSON (line {line}, column {column}: {message}): fix or remove it first", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message, without its position.
        message: String,
    },
    /// The runtime name is one dockerd reserves.
    #[error("--runtime-name {name:?} is reserved by dockerd (it would refuse to start with it in {}): choose another name, e.g. --runtime-name nvidia, and --set-as-default to use it for every container", path.display())]
    ReservedName {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// JSON, but the top level or a key to edit is not an object.
    #[error("cannot update {}: {what} is not a JSON object: fix or remove it first", path.display())]
    NotObject {
        /// The file.
        path: PathBuf,
        /// `the top level`, `"runtimes"`, ...
        what: String,
    },
}

/// What to put into `daemon.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerOptions {
    /// The runtime's name (`docker run --runtime=<name>`).
    pub runtime_name: String,
    /// The wrapper's path.
    pub runtime_path: String,
    /// Also make it `default-runtime`.
    pub set_default: bool,
    /// Also turn on `features.cdi` (`docker run --device nvidia.com/gpu=0`).
    pub cdi: bool,
}

/// Parses `text` as a [`Doc`], with the position of an error.
pub fn parse_json(path: &Path, text: &str) -> Result<Doc, DockerError> {
    serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        DockerError::NotJson {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: full.strip_suffix(&suffix).unwrap_or(&full).to_owned(),
        }
    })
}

/// The new content of `path` (currently `existing`, `None` when absent).
pub fn merge(
    path: &Path,
    existing: Option<&str>,
    opts: &DockerOptions,
) -> Result<String, DockerError> {
    let not_object = |what: &str| DockerError::NotObject {
        path: path.to_path_buf(),
        what: what.to_owned(),
    };
    if opts.runtime_name.is_empty() || RESERVED_RUNTIME_NAMES.contains(&opts.runtime_name.as_str())
    {
        return Err(DockerError::ReservedName {
            path: path.to_path_buf(),
            name: opts.runtime_name.clone(),
        });
    }
    let original = match existing.filter(|t| !t.trim().is_empty()) {
        Some(text) => Some(parse_json(path, text)?),
        None => None,
    };
    let mut doc = original.clone().unwrap_or_else(Doc::object);
    if !matches!(doc, Doc::Object(_)) {
        return Err(not_object("the top level"));
    }
    let runtimes = doc
        .entry("runtimes", Doc::object)
        .filter(|d| matches!(d, Doc::Object(_)))
        .ok_or_else(|| not_object("\"runtimes\""))?;
    let entry = runtimes
        .entry(&opts.runtime_name, Doc::object)
        .filter(|d| matches!(d, Doc::Object(_)))
        .ok_or_else(|| not_object(&format!("\"runtimes\".{:?}", opts.runtime_name)))?;
    entry.set("path", Doc::string(&opts.runtime_path));
    if opts.set_default {
        doc.set("default-runtime", Doc::string(&opts.runtime_name));
    }
    if opts.cdi {
        let features = doc
            .entry("features", Doc::object)
            .filter(|d| matches!(d, Doc::Object(_)))
            .ok_or_else(|| not_object("\"features\""))?;
        features.set("cdi", Doc::Bool(true));
    }
    match (existing, original) {
        (Some(text), Some(orig)) if orig == doc => Ok(text.to_owned()),
        _ => Ok(doc.to_json_pretty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DockerOptions {
        DockerOptions {
            runtime_name: "nvidia".into(),
            runtime_path: "/usr/bin/nvidia-docker-runtime".into(),
            set_default: false,
            cdi: false,
        }
    }

    #[test]
    fn new_file() {
        let out = merge(Path::new("/d.json"), None, &opts()).unwrap();
        assert_eq!(
            out,
            "{\n  \"runtimes\": {\n    \"nvidia\": {\n      \"path\": \"/usr/bin/nvidia-docker-runtime\"\n    }\n  }\n}\n"
        );
    }

    #[test]
    fn merge_keeps_other_keys_in_order() {
        let existing = r#"{"log-driver": "journald", "runtimes": {"other": {"path": "/x"}, "nvidia": {"path": "/old", "runtimeArgs": ["--debug"]}}, "features": {"buildkit": true}}"#;
        let o = DockerOptions {
            set_default: true,
            cdi: true,
            ..opts()
        };
        let out = merge(Path::new("/d.json"), Some(existing), &o).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["log-driver"], "journald");
        assert_eq!(v["runtimes"]["other"]["path"], "/x");
        assert_eq!(
            v["runtimes"]["nvidia"]["path"],
            "/usr/bin/nvidia-docker-runtime"
        );
        assert_eq!(v["runtimes"]["nvidia"]["runtimeArgs"][0], "--debug");
        assert_eq!(v["default-runtime"], "nvidia");
        assert_eq!(
            v["features"],
            serde_json::json!({"buildkit": true, "cdi": true})
        );
        assert!(out.find("log-driver").unwrap() < out.find("runtimes").unwrap());
        // Merging again returns the same bytes, whatever their formatting.
        assert_eq!(merge(Path::new("/d.json"), Some(&out), &o).unwrap(), out);
        let tabbed = out.replace("  ", "\t");
        assert_eq!(
            merge(Path::new("/d.json"), Some(&tabbed), &o).unwrap(),
            tabbed
        );
    }

    /// Issue 12: `--runtime-name runc` wrote a file dockerd refuses to
    /// start with.
    #[test]
    fn reserved_runtime_names_are_refused() {
        for name in ["runc", "io.containerd.runc.v2", ""] {
            let o = DockerOptions {
                runtime_name: name.into(),
                ..opts()
            };
            let err = merge(Path::new("/etc/docker/daemon.json"), Some("{}"), &o).unwrap_err();
            assert!(matches!(err, DockerError::ReservedName { .. }), "{name}");
        }
        let o = DockerOptions {
            runtime_name: "runc".into(),
            ..opts()
        };
        assert_eq!(
            merge(Path::new("/etc/docker/daemon.json"), None, &o)
                .unwrap_err()
                .to_string(),
            "--runtime-name \"runc\" is reserved by dockerd (it would refuse to start with it in /etc/docker/daemon.json): choose another name, e.g. --runtime-name nvidia, and --set-as-default to use it for every container"
        );
    }

    #[test]
    fn malformed_is_refused_with_position() {
        let err = merge(
            Path::new("/etc/docker/daemon.json"),
            Some("{\n  \"a\": 1,\n  }\n"),
            &opts(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot update /etc/docker/daemon.json: it is not valid JSON (line 3, column 3: trailing comma): fix or remove it first"
        );
        let err = merge(Path::new("/d.json"), Some("[1]"), &opts()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot update /d.json: the top level is not a JSON object: fix or remove it first"
        );
        let err = merge(Path::new("/d.json"), Some(r#"{"runtimes": []}"#), &opts()).unwrap_err();
        assert!(err
            .to_string()
            .contains("\"runtimes\" is not a JSON object"));
    }
}
