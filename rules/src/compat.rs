//! CUDA forward compatibility (`cuda-compat`, docs/cuda.md §1.5).
//!
//! An image may carry `/usr/local/cuda/compat/libcuda.so.<driver>` from a
//! newer driver branch, which lets a newer CUDA run on an older host driver
//! (data-center GPUs only). Its ELF note `.note.cuda.fwd_compatibility` holds
//! a JSON description. The hook finds the library inside the rootfs (I/O) and
//! passes what it found as a [`CompatLib`]; this module decides.
//!
//! The decision is NVIDIA's `enable-cuda-compat` rule: with the note, use the
//! compat library iff the host driver's major is listed in the note's
//! `driver` array and the library is newer than the host driver; if only the
//! host CUDA version is known, iff the note's CUDA is newer. Without a note,
//! iff the host major is lower than the library's major.
//!
//! The library is never mounted from the image (CVE-2024-0132): only its
//! directory is given to the container's `ldconfig`.

use serde::{Deserialize, Serialize};

use crate::capability::Capability;
use crate::config::{Config, CudaCompatMode};
use crate::files::library_capabilities;
use crate::path::ContainerPath;
use crate::request::Request;
use crate::version::Version;

/// Where images keep the compat libraries.
pub const COMPAT_DIR: &str = "/usr/local/cuda/compat";

/// The parsed `.note.cuda.fwd_compatibility` description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatNote {
    /// `"CUDA version"`: the CUDA version the library provides.
    pub cuda: Version,
    /// `"driver"`: host driver branches (majors) it may run on.
    pub drivers: Vec<u64>,
}

/// Why a note's JSON was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// The description is not the expected JSON object.
    #[error("invalid CUDA forward-compatibility note")]
    Json(#[source] serde_json::Error),
    /// `"CUDA version"` is not a version.
    #[error("invalid CUDA forward-compatibility note: \"CUDA version\" {0:?} is not a version")]
    CudaVersion(String),
}

#[derive(Deserialize)]
struct RawNote {
    #[serde(rename = "CUDA version")]
    cuda: String,
    #[serde(default)]
    driver: Vec<u64>,
}

impl CompatNote {
    /// Parses the note's JSON description, e.g.
    /// `{"format":1,"CUDA version":"12.9","driver":[535,550,560,565,570,575],"device":[1,2]}`.
    /// Unknown keys are ignored.
    pub fn from_json(desc: &str) -> Result<CompatNote, CompatError> {
        // The note is NUL-padded in the ELF file.
        let desc = desc.trim_end_matches('\0');
        let raw: RawNote = serde_json::from_str(desc).map_err(CompatError::Json)?;
        let cuda =
            Version::parse(&raw.cuda).map_err(|_| CompatError::CudaVersion(raw.cuda.clone()))?;
        Ok(CompatNote {
            cuda,
            drivers: raw.driver,
        })
    }
}

/// A compat `libcuda` found in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatLib {
    /// The driver version in its file name (`libcuda.so.575.57.08`).
    pub version: Version,
    /// Its ELF note, when it has one.
    pub note: Option<CompatNote>,
}

/// The forward-compatibility decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompatDecision {
    /// Use the compat library.
    Use,
    /// The host is at least as new; the host driver serves.
    HostNewer,
    /// The note does not list the host driver's branch.
    BranchNotCovered,
    /// Nothing is known about the host to compare with.
    Unknown,
}

/// Whether a plan for `req` under `cfg` looks at a compat library at all:
/// a GPU container whose libraries include compute (asked for, or implied
/// by video), with `cuda-compat-mode` not `disabled`. Callers look into the
/// image only then; [`crate::plan()`] asks the same question.
pub fn compat_considered(req: &Request, cfg: &Config) -> bool {
    req.is_gpu()
        && cfg.cuda_compat == CudaCompatMode::Ldconfig
        && library_capabilities(req.capabilities).contains(Capability::Compute)
}

/// Decides whether the image's compat library should be used.
pub fn forward_compat(
    lib: &CompatLib,
    host_driver: Option<&Version>,
    host_cuda: Option<&Version>,
) -> CompatDecision {
    match (&lib.note, host_driver, host_cuda) {
        (Some(note), Some(driver), _) => {
            if !note.drivers.contains(&driver.major()) {
                CompatDecision::BranchNotCovered
            } else if lib.version > *driver {
                CompatDecision::Use
            } else {
                CompatDecision::HostNewer
            }
        }
        (Some(note), None, Some(cuda)) => {
            if note.cuda > *cuda {
                CompatDecision::Use
            } else {
                CompatDecision::HostNewer
            }
        }
        (None, Some(driver), _) => {
            if driver.major() < lib.version.major() {
                CompatDecision::Use
            } else {
                CompatDecision::HostNewer
            }
        }
        _ => CompatDecision::Unknown,
    }
}

/// The compat directory as a container path.
pub fn compat_dir() -> ContainerPath {
    // A constant that satisfies the invariants.
    ContainerPath::new(COMPAT_DIR).unwrap_or_else(|_| ContainerPath::root())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    const NOTE_575: &str = r#"{"format":1,"CUDA version":"12.9","driver":[535,550,560,565,570,575],"device":[1,2,7,8,9,10,11,12,13,14]}"#;
    const NOTE_590: &str = r#"{"CUDA version":"13.1","driver":[535,550,570,575,580,590]}"#;

    #[test]
    fn parses_notes() {
        let n = CompatNote::from_json(NOTE_575).unwrap();
        assert_eq!(n.cuda, v("12.9"));
        assert_eq!(n.drivers, [535, 550, 560, 565, 570, 575]);
        let padded = format!("{NOTE_590}\0\0\0");
        assert_eq!(CompatNote::from_json(&padded).unwrap().cuda, v("13.1"));
        assert!(CompatNote::from_json("{}").is_err());
        assert!(CompatNote::from_json(r#"{"CUDA version":"x"}"#).is_err());
        assert!(CompatNote::from_json("not json").is_err());
    }

    #[test]
    fn considered_for_gpu_compute_unless_disabled() {
        use crate::request::Env;
        let req = |env: &[&str], cfg: &Config| {
            Request::from_container(
                &Env::from_oci(env),
                &Default::default(),
                false,
                Default::default(),
                cfg,
            )
            .unwrap()
        };
        let on = Config::default();
        let off = Config {
            cuda_compat: CudaCompatMode::Disabled,
            ..Config::default()
        };
        for (env, cfg, expected) in [
            (&["NVIDIA_VISIBLE_DEVICES=all"][..], &on, true),
            (&["NVIDIA_VISIBLE_DEVICES=all"][..], &off, false),
            (&["NVIDIA_VISIBLE_DEVICES=void"][..], &on, false),
            (
                &[
                    "NVIDIA_VISIBLE_DEVICES=0",
                    "NVIDIA_DRIVER_CAPABILITIES=video",
                ][..],
                &on,
                true,
            ),
            (
                &[
                    "NVIDIA_VISIBLE_DEVICES=0",
                    "NVIDIA_DRIVER_CAPABILITIES=utility",
                ][..],
                &on,
                false,
            ),
        ] {
            assert_eq!(compat_considered(&req(env, cfg), cfg), expected, "{env:?}");
        }
    }

    #[test]
    fn decisions() {
        let with_note = CompatLib {
            version: v("575.57.08"),
            note: Some(CompatNote::from_json(NOTE_575).unwrap()),
        };
        assert_eq!(
            forward_compat(&with_note, Some(&v("535.104.05")), None),
            CompatDecision::Use
        );
        assert_eq!(
            forward_compat(&with_note, Some(&v("575.57.08")), None),
            CompatDecision::HostNewer
        );
        assert_eq!(
            forward_compat(&with_note, Some(&v("580.65.06")), None),
            CompatDecision::BranchNotCovered
        );
        assert_eq!(
            forward_compat(&with_note, Some(&v("525.60.13")), None),
            CompatDecision::BranchNotCovered
        );
        assert_eq!(
            forward_compat(&with_note, None, Some(&v("12.2"))),
            CompatDecision::Use
        );
        assert_eq!(
            forward_compat(&with_note, None, Some(&v("12.9"))),
            CompatDecision::HostNewer
        );
        assert_eq!(
            forward_compat(&with_note, None, None),
            CompatDecision::Unknown
        );

        let bare = CompatLib {
            version: v("575.57.08"),
            note: None,
        };
        assert_eq!(
            forward_compat(&bare, Some(&v("535.104.05")), None),
            CompatDecision::Use
        );
        assert_eq!(
            forward_compat(&bare, Some(&v("575.20")), None),
            CompatDecision::HostNewer
        );
        assert_eq!(
            forward_compat(&bare, None, Some(&v("12.2"))),
            CompatDecision::Unknown
        );
        assert_eq!(compat_dir().as_str(), COMPAT_DIR);
    }
}
