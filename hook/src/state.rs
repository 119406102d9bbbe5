//! The OCI container state a runtime writes on the hook's stdin.
//!
//! Our own narrow struct, not `oci_spec::runtime::State`: that one fails on
//! a `status` outside the four the spec lists, and runtimes send others
//! (crun's `paused`, future ones). Read: `pid`, `bundle` (or the pre-17.06
//! Docker alias `bundlePath`), crun's non-standard `root` (the spec's
//! `root.path`), a lenient `status` and `annotations`; every other field is
//! ignored.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

/// The most the hook reads from stdin (a state is a few hundred bytes; the
/// annotations of a Kubernetes pod a few KiB).
pub const MAX_STATE_BYTES: u64 = 1 << 20;

/// Why the state on stdin was refused.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading stdin failed.
    #[error("cannot read the container state from stdin")]
    Read(#[source] std::io::Error),
    /// Stdin was empty.
    #[error("no container state on stdin: expected the OCI state JSON the runtime passes to hooks (is the hook registered as an OCI hook?)")]
    Empty,
    /// Stdin held more than [`MAX_STATE_BYTES`].
    #[error("the container state on stdin is larger than {MAX_STATE_BYTES} bytes")]
    TooLarge,
    /// Stdin was not a JSON object of the expected shape.
    #[error("the container state on stdin is not valid: expected a JSON object with \"pid\" (number) and \"bundle\" (path)")]
    Json(#[source] serde_json::Error),
    /// Neither `bundle` nor `bundlePath`.
    #[error("the container state on stdin has no \"bundle\" (nor \"bundlePath\")")]
    NoBundle,
    /// No `pid`, or not a positive one, where one is needed.
    #[error("the container state on stdin has no usable \"pid\" (status {status:?}); the prestart hook needs the container's init process")]
    NoPid {
        /// The status the runtime sent.
        status: String,
    },
}

#[derive(Deserialize)]
struct RawState {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    pid: Option<i64>,
    #[serde(default)]
    bundle: Option<PathBuf>,
    #[serde(default, rename = "bundlePath")]
    bundle_path: Option<PathBuf>,
    #[serde(default)]
    root: Option<PathBuf>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// The container state, as much of it as the hook uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The container id (empty when the runtime sent none).
    pub id: String,
    /// `creating`, `created`, ... as sent (not checked).
    pub status: String,
    /// The container's init process as seen from the hook (host pid for
    /// prestart), when the runtime sent one.
    pub pid: Option<i32>,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// crun's `root`, when present: the spec's `root.path` as written
    /// (relative to the bundle when not absolute).
    pub root: Option<PathBuf>,
    /// The state's annotations (runc: the config's).
    pub annotations: BTreeMap<String, String>,
}

impl State {
    /// Parses a state document.
    pub fn parse(bytes: &[u8]) -> Result<State, StateError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(StateError::Empty);
        }
        let raw: RawState = serde_json::from_slice(bytes).map_err(StateError::Json)?;
        let bundle = raw
            .bundle
            .filter(|b| !b.as_os_str().is_empty())
            .or(raw.bundle_path.filter(|b| !b.as_os_str().is_empty()))
            .ok_or(StateError::NoBundle)?;
        Ok(State {
            id: raw.id.unwrap_or_default(),
            status: raw.status.unwrap_or_default(),
            pid: raw
                .pid
                .and_then(|p| i32::try_from(p).ok())
                .filter(|p| *p > 0),
            bundle,
            root: raw.root.filter(|r| !r.as_os_str().is_empty()),
            annotations: raw.annotations.unwrap_or_default(),
        })
    }

    /// Reads and parses a state from `input` (stdin), at most
    /// [`MAX_STATE_BYTES`].
    pub fn read(input: impl Read) -> Result<State, StateError> {
        let mut buf = Vec::with_capacity(4096);
        input
            .take(MAX_STATE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(StateError::Read)?;
        if buf.len() as u64 > MAX_STATE_BYTES {
            return Err(StateError::TooLarge);
        }
        State::parse(&buf)
    }

    /// The container's init pid, required by the prestart hook.
    pub fn require_pid(&self) -> Result<i32, StateError> {
        self.pid.ok_or_else(|| StateError::NoPid {
            status: self.status.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_state() {
        let s = State::parse(
            br#"{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":4242,
                "bundle":"/run/b","rootfs":"/run/b/rootfs","created":"2024-01-01T00:00:00Z",
                "owner":"","annotations":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(s.id, "c1");
        assert_eq!(s.status, "creating");
        assert_eq!(s.pid, Some(4242));
        assert_eq!(s.bundle, PathBuf::from("/run/b"));
        assert_eq!(s.root, None);
        assert_eq!(s.annotations["a"], "b");
        assert_eq!(s.require_pid().unwrap(), 4242);
    }

    #[test]
    fn crun_extras_and_unknown_status() {
        let s = State::parse(
            br#"{"ociVersion":"1.0.0","id":"c","status":"paused","pid":7,"bundle":"/b",
                "root":"/b/merged","systemd-scope":"x","extra":{"nested":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(s.status, "paused");
        assert_eq!(s.root, Some(PathBuf::from("/b/merged")));
    }

    #[test]
    fn bundle_path_alias() {
        let s = State::parse(br#"{"id":"c","pid":1,"bundlePath":"/old"}"#).unwrap();
        assert_eq!(s.bundle, PathBuf::from("/old"));
        // `bundle` wins over the alias.
        let s = State::parse(br#"{"pid":1,"bundle":"/new","bundlePath":"/old"}"#).unwrap();
        assert_eq!(s.bundle, PathBuf::from("/new"));
    }

    #[test]
    fn missing_pid_is_reported_when_needed() {
        let s = State::parse(br#"{"status":"stopped","bundle":"/b"}"#).unwrap();
        assert_eq!(s.pid, None);
        assert_eq!(
            s.require_pid().unwrap_err().to_string(),
            "the container state on stdin has no usable \"pid\" (status \"stopped\"); the prestart hook needs the container's init process"
        );
        let s = State::parse(br#"{"pid":0,"bundle":"/b"}"#).unwrap();
        assert_eq!(s.pid, None);
    }

    #[test]
    fn malformed_input_names_stdin() {
        let e = State::read(&b""[..]).unwrap_err();
        assert!(
            e.to_string().starts_with("no container state on stdin"),
            "{e}"
        );
        let e = State::parse(b"not json").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the container state on stdin is not valid: expected a JSON object with \"pid\" (number) and \"bundle\" (path)"
        );
        let e = State::parse(br#"{"pid":"12","bundle":"/b"}"#).unwrap_err();
        assert!(matches!(e, StateError::Json(_)));
        let e = State::parse(br#"{"pid":12}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the container state on stdin has no \"bundle\" (nor \"bundlePath\")"
        );
        let big = vec![b' '; (MAX_STATE_BYTES + 10) as usize];
        assert!(matches!(
            State::read(&big[..]).unwrap_err(),
            StateError::TooLarge
        ));
    }
}
