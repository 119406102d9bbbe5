//! The container the hook was called for: its bundle's `config.json`, what
//! it asks for (`rules::Request`), and where its root is.
//!
//! Reading is in two steps so that a container that asks for no GPU costs
//! one read of `config.json` and a small parse ([`Bundle::load`] then
//! [`Bundle::request`]): only the fields the decision needs are read
//! (`process.env`, `process.capabilities.bounding`, `annotations`,
//! `root.path`), leniently, so that a field this hook does not know can
//! never break a container that does not use it. A GPU container's
//! `config.json` is then parsed as a whole `oci_spec` [`Spec`]
//! ([`Bundle::spec`]).
//!
//! The rootfs flavour (where libraries go) is decided here, by looking into
//! the rootfs with `openat2(RESOLVE_IN_ROOT)` ([`detect_flavor`]); `rules`
//! never looks. So is the image's CUDA forward-compatibility library
//! ([`crate::compat`]). [`complete_request`] does both, for the prestart
//! hook and the runc wrapper alike, so that both give `rules::plan` the
//! same request.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDeviceCgroup, Spec};
use rules::{ContainerPath, Env, Refusal, Request, RootfsFlavor};
use serde::Deserialize;

use crate::apply::root::ContainerRoot;
use crate::state::State;

/// The most the hook reads of a `config.json`.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Why the container's configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// `config.json` could not be read.
    #[error("cannot read the container's {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is larger than [`MAX_CONFIG_BYTES`].
    #[error("the container's {path:?} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// `config.json` is not JSON of the expected shape.
    #[error("the container's {path:?} is not a valid OCI runtime configuration")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Neither the state nor `config.json` names a root file system.
    #[error("the container's {path:?} has no \"root\": {{\"path\": ...}}")]
    NoRoot {
        /// The file.
        path: PathBuf,
    },
}

/// `process.capabilities`: an object of lists, or (runtime-spec 1.0.0-rc1
/// to rc4) one flat list, which was the bounding set.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawCaps {
    Sets {
        #[serde(default)]
        bounding: Option<Vec<String>>,
    },
    Flat(Vec<String>),
}

#[derive(Deserialize, Default)]
struct RawProcess {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    capabilities: Option<RawCaps>,
}

#[derive(Deserialize)]
struct RawRoot {
    #[serde(default)]
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    process: Option<RawProcess>,
    #[serde(default)]
    root: Option<RawRoot>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    // Read leniently: only entries with string `source` and `destination`
    // matter here, and a spec of the wrong shape is named by whoever edits
    // its mounts.
    #[serde(default)]
    mounts: Option<serde_json::Value>,
}

/// A container's bundle, read for the hook.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// `<bundle>/config.json`.
    pub config_path: PathBuf,
    /// The container's environment (`process.env`).
    pub env: Env,
    /// The state's annotations overlaid with `config.json`'s (the image
    /// labels a runtime records).
    pub annotations: BTreeMap<String, String>,
    /// The spec's mounts (source and destination), for the device plugin's
    /// volume-mounts strategy (`rules::sources`).
    pub mounts: Vec<rules::sources::OciMount>,
    /// `CAP_SYS_ADMIN` in the bounding set (the toolkit's "privileged",
    /// [`rules::is_privileged`]).
    pub privileged: bool,
    /// The root file system, absolute (crun's state `root` when given, else
    /// `root.path`; joined to the bundle when relative, then cleaned
    /// lexically as runc does: [`clean_path`]), as the runtime sees it: the
    /// path is the runtime's, never the image's.
    pub rootfs: PathBuf,
    bytes: Vec<u8>,
}

impl Bundle {
    /// Reads `<state.bundle>/config.json` (one read) and the fields the
    /// GPU decision needs.
    pub fn load(state: &State) -> Result<Bundle, ContainerError> {
        let config_path = state.bundle.join("config.json");
        let bytes = read_limited(&config_path)?;
        let raw: RawConfig =
            serde_json::from_slice(&bytes).map_err(|source| ContainerError::Json {
                path: config_path.clone(),
                source,
            })?;
        let process = raw.process.unwrap_or_default();
        let env = Env::from_oci(process.env.unwrap_or_default());
        let bounding = match process.capabilities {
            Some(RawCaps::Sets { bounding }) => bounding.unwrap_or_default(),
            Some(RawCaps::Flat(list)) => list,
            None => Vec::new(),
        };
        let mut annotations = state.annotations.clone();
        annotations.extend(raw.annotations.unwrap_or_default());
        let mounts = raw
            .mounts
            .as_ref()
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some(rules::sources::OciMount {
                    source: m.get("source")?.as_str()?.to_owned(),
                    destination: m.get("destination")?.as_str()?.to_owned(),
                })
            })
            .collect();
        // crun's state `root` wins; it is the spec's `root.path` as written
        // (crun 1.8: "rootfs", relative to the bundle like the spec's).
        let rootfs = match state.root.clone().or(raw.root.and_then(|r| r.path)) {
            Some(p) if p.is_absolute() => clean_path(&p),
            Some(p) if !p.as_os_str().is_empty() => clean_path(&state.bundle.join(p)),
            _ => return Err(ContainerError::NoRoot { path: config_path }),
        };
        Ok(Bundle {
            config_path,
            env,
            annotations,
            mounts,
            privileged: rules::is_privileged(&bounding),
            rootfs,
            bytes,
        })
    }

    /// What the container asks for, with the rootfs flavour `flavor` (pass
    /// any flavour to decide whether it is a GPU container at all: the
    /// flavour only places libraries).
    ///
    /// CDI annotations are not read: the prestart hook leaves them to the
    /// engine, as the toolkit's hook does ([`Bundle::request_with`]).
    pub fn request(
        &self,
        flavor: RootfsFlavor,
        config: &rules::Config,
    ) -> Result<Request, Refusal> {
        self.request_with(flavor, config, false)
    }

    /// [`Bundle::request`], reading CDI names (annotations, and
    /// `nvidia.com/gpu=<name>` in the variables) when `cdi_names`: the runc
    /// wrapper in its `jit-cdi` mode.
    pub fn request_with(
        &self,
        flavor: RootfsFlavor,
        config: &rules::Config,
        cdi_names: bool,
    ) -> Result<Request, Refusal> {
        let input = rules::request::ContainerInput {
            env: &self.env,
            annotations: &self.annotations,
            mounts: &self.mounts,
            privileged: self.privileged,
            cdi_names,
        };
        Request::from_input(&input, flavor, config)
    }

    /// The spec's device cgroup rules (`linux.resources.devices`), read as
    /// `oci_spec` types without parsing the rest of the spec.
    pub fn device_rules(&self) -> Result<Vec<LinuxDeviceCgroup>, ContainerError> {
        #[derive(Deserialize)]
        struct Resources {
            #[serde(default)]
            devices: Option<Vec<LinuxDeviceCgroup>>,
        }
        #[derive(Deserialize)]
        struct Linux {
            #[serde(default)]
            resources: Option<Resources>,
        }
        #[derive(Deserialize)]
        struct Config {
            #[serde(default)]
            linux: Option<Linux>,
        }
        let c: Config =
            serde_json::from_slice(&self.bytes).map_err(|source| ContainerError::Json {
                path: self.config_path.clone(),
                source,
            })?;
        Ok(c.linux
            .and_then(|l| l.resources)
            .and_then(|r| r.devices)
            .unwrap_or_default())
    }

    /// The whole `config.json` as a JSON value (the bytes read by
    /// [`Bundle::load`], not read again), for edits that keep every field.
    pub fn value(&self) -> Result<serde_json::Value, ContainerError> {
        serde_json::from_slice(&self.bytes).map_err(|source| ContainerError::Json {
            path: self.config_path.clone(),
            source,
        })
    }

    /// The whole `config.json` as an OCI runtime spec.
    pub fn spec(&self) -> Result<Spec, ContainerError> {
        serde_json::from_slice(&self.bytes).map_err(|source| ContainerError::Json {
            path: self.config_path.clone(),
            source,
        })
    }
}

/// The spec's device cgroup rules (`linux.resources.devices`).
pub fn spec_device_rules(spec: &Spec) -> Vec<LinuxDeviceCgroup> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default()
}

/// `path` cleaned lexically, as Go's `filepath.Clean` does (what runc
/// applies to `root.path` before it mounts the root): `.` components
/// dropped, each `..` removes the component before it, `..` at `/` stays at
/// `/`. No symlink is followed: `rootfs/usr/..` is `rootfs` even when
/// `rootfs/usr` is a link elsewhere, because that is the root the container
/// runs in.
pub fn clean_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

fn read_limited(path: &Path) -> Result<Vec<u8>, ContainerError> {
    use std::io::Read;
    let err = |source| ContainerError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::with_capacity(16 << 10);
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ContainerError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn cpath(s: &str) -> ContainerPath {
    ContainerPath::new(s).unwrap_or_else(|_| ContainerPath::root())
}

/// The rootfs flavour, looked up inside the root: `/etc/debian_version`
/// present is Debian-like (`/usr/lib/<triplet>`); else `/usr/lib` and
/// `/usr/lib64` being one directory (Arch) is [`RootfsFlavor::Lib64Lib32`];
/// else [`RootfsFlavor::Lib64`]. A lookup the image makes fail (a symlink
/// loop) counts as absent.
pub fn detect_flavor(root: &ContainerRoot) -> RootfsFlavor {
    let present = |p: &str| match root.exists(&cpath(p)) {
        Ok(found) => found,
        Err(e) => {
            log::debug!("rootfs flavour: {p}: {e}");
            false
        }
    };
    if present("/etc/debian_version") {
        return RootfsFlavor::DebianLike;
    }
    let id = |p: &str| {
        let fd = root
            .resolve(
                &cpath(p),
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            )
            .ok()?;
        let st = crate::sys::fs::fstat(&fd).ok()?;
        (SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
            .then_some((st.st_dev, st.st_ino))
    };
    match (id("/usr/lib"), id("/usr/lib64")) {
        (Some(a), Some(b)) if a == b => RootfsFlavor::Lib64Lib32,
        _ => RootfsFlavor::Lib64,
    }
}

/// A GPU container's request completed from its root: the rootfs flavour
/// ([`detect_flavor`]) and, when the plan would consider one
/// ([`rules::compat::compat_considered`]: compute, `cuda-compat-mode` not
/// `disabled`), the image's CUDA forward-compatibility library
/// ([`crate::compat::find_compat_lib_or_warn`]: a malformed one is logged
/// and ignored, never a reason to refuse the container).
pub fn complete_request(request: Request, root: &ContainerRoot, config: &rules::Config) -> Request {
    let request = Request {
        rootfs: detect_flavor(root),
        ..request
    };
    if !rules::compat::compat_considered(&request, config) {
        return request;
    }
    match crate::compat::find_compat_lib_or_warn(root) {
        Some(lib) => {
            log::debug!(
                "CUDA forward compatibility: the image has libcuda.so.{} ({})",
                lib.version,
                match &lib.note {
                    Some(n) => format!("CUDA {}, driver branches {:?}", n.cuda, n.drivers),
                    None => "no note".to_owned(),
                }
            );
            request.with_compat(lib)
        }
        None => request,
    }
}

impl Bundle {
    /// The runc wrapper already wrote the GPU plan into this spec (its
    /// annotation [`crate::runtime::spec::ANNOTATION_PLAN`]): a hook also
    /// registered for the container (`docker run --gpus` with
    /// `--runtime=nvidia`) must not apply it a second time.
    pub fn plan_applied(&self) -> bool {
        use crate::runtime::spec::{ANNOTATION_PLAN, PLAN_APPLIED};
        self.annotations.get(ANNOTATION_PLAN).map(String::as_str) == Some(PLAN_APPLIED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: &str, state_extra: &str) -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let state = State::parse(
            format!(
                r#"{{"pid":1,"bundle":{:?}{state_extra}}}"#,
                dir.path().to_str().unwrap()
            )
            .as_bytes(),
        )
        .unwrap();
        (dir, state)
    }

    #[test]
    fn no_gpu_container_is_decided_from_env() {
        let (_d, state) = bundle(
            r#"{"ociVersion":"1.0.2","process":{"env":["PATH=/bin"]},"root":{"path":"rootfs"}}"#,
            "",
        );
        let b = Bundle::load(&state).unwrap();
        let req = b
            .request(RootfsFlavor::default(), &rules::Config::default())
            .unwrap();
        assert!(!req.is_gpu());
        assert_eq!(b.rootfs, state.bundle.join("rootfs"));
        assert!(!b.privileged);
    }

    #[test]
    fn root_path_is_cleaned_lexically_like_runc() {
        for (given, want) in [
            ("rootfs", "B/rootfs"),
            ("rootfs/usr/..", "B/rootfs"),
            ("./rootfs/./", "B/rootfs"),
            ("rootfs/a/b/../../", "B/rootfs"),
            ("../../../../x", "/x"),
            ("/abs//root/link/..", "/abs/root"),
            ("/..", "/"),
        ] {
            let (d, state) = bundle(&format!(r#"{{"root":{{"path":{given:?}}}}}"#), "");
            let want = want.replacen('B', d.path().to_str().unwrap(), 1);
            let want = clean_path(Path::new(&want));
            assert_eq!(Bundle::load(&state).unwrap().rootfs, want, "{given}");
        }
        assert_eq!(clean_path(Path::new("a/../..")), PathBuf::from(".."));
        assert_eq!(clean_path(Path::new("a/..")), PathBuf::from("."));
    }

    #[test]
    fn root_through_a_link_then_dotdot_is_the_lexical_one() {
        // `rootfs/link/..` with `rootfs/link` -> elsewhere: the physical
        // path is elsewhere's parent; runc runs the container in `rootfs`.
        let (d, state) = bundle(r#"{"root":{"path":"rootfs/link/.."}}"#, "");
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(elsewhere.path().join("sub")).unwrap();
        std::fs::create_dir_all(d.path().join("rootfs")).unwrap();
        std::fs::write(d.path().join("rootfs/marker"), "").unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("sub"), d.path().join("rootfs/link"))
            .unwrap();
        let b = Bundle::load(&state).unwrap();
        assert_eq!(b.rootfs, d.path().join("rootfs"));
        let root = ContainerRoot::open(&b.rootfs).unwrap();
        assert!(root.exists(&cpath("/marker")).unwrap());
    }

    #[test]
    fn a_root_that_is_not_a_directory_is_refused() {
        let (d, state) = bundle(r#"{"root":{"path":"rootfs"}}"#, "");
        std::fs::write(d.path().join("rootfs"), "a file").unwrap();
        let b = Bundle::load(&state).unwrap();
        let e = ContainerRoot::open(&b.rootfs).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the container root {:?} is not a directory; the bundle's \"root\": {{\"path\": ...}} must name the root file system's directory",
                d.path().join("rootfs")
            )
        );
    }

    #[test]
    fn gpu_request_and_privilege() {
        let (_d, state) = bundle(
            r#"{"ociVersion":"1.0.2","process":{"env":["NVIDIA_VISIBLE_DEVICES=all","X=1"],
                "capabilities":{"bounding":["CAP_SYS_ADMIN"]}},
                "root":{"path":"/abs/root"},"annotations":{"k":"v"},"unknownField":{"x":1}}"#,
            r#","annotations":{"k":"state","s":"1"}"#,
        );
        let b = Bundle::load(&state).unwrap();
        assert!(b.privileged);
        assert_eq!(b.rootfs, PathBuf::from("/abs/root"));
        assert_eq!(b.annotations["k"], "v");
        assert_eq!(b.annotations["s"], "1");
        let req = b
            .request(RootfsFlavor::DebianLike, &rules::Config::default())
            .unwrap();
        assert!(req.is_gpu());
    }

    #[test]
    fn crun_root_wins_and_flat_caps() {
        let (_d, state) = bundle(
            r#"{"process":{"env":[],"capabilities":["CAP_SYS_ADMIN"]},"root":{"path":"rootfs"}}"#,
            r#","root":"/run/crun/merged""#,
        );
        let b = Bundle::load(&state).unwrap();
        assert_eq!(b.rootfs, PathBuf::from("/run/crun/merged"));
        assert!(b.privileged);
    }

    #[test]
    fn a_relative_crun_root_is_the_bundles() {
        // crun 1.8 passes the spec's root.path as written.
        let (_d, state) = bundle(
            r#"{"process":{"env":[]},"root":{"path":"other"}}"#,
            r#","root":"rootfs/usr/..""#,
        );
        let b = Bundle::load(&state).unwrap();
        assert_eq!(b.rootfs, state.bundle.join("rootfs"));
    }

    #[test]
    fn v1_label_annotation_is_a_gpu_container() {
        let (_d, state) = bundle(
            r#"{"process":{"env":[]},"root":{"path":"r"},
                "annotations":{"com.nvidia.volumes.needed":"nvidia_driver"}}"#,
            "",
        );
        let b = Bundle::load(&state).unwrap();
        assert!(b
            .request(RootfsFlavor::default(), &rules::Config::default())
            .unwrap()
            .is_gpu());
    }

    #[test]
    fn errors_name_the_file() {
        let (_d, state) = bundle("{not json", "");
        let e = Bundle::load(&state).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
        assert!(e
            .to_string()
            .ends_with("is not a valid OCI runtime configuration"));
        let (_d, state) = bundle(r#"{"process":{}}"#, "");
        let e = Bundle::load(&state).unwrap_err();
        assert!(e.to_string().contains("has no \"root\""), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let state = State::parse(
            format!(r#"{{"pid":1,"bundle":{:?}}}"#, dir.path().join("gone")).as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            Bundle::load(&state).unwrap_err(),
            ContainerError::Read { .. }
        ));
    }

    #[test]
    fn spec_rules_are_read() {
        let (_d, state) = bundle(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},
                "root":{"path":"rootfs"},
                "linux":{"resources":{"devices":[{"allow":false,"access":"rwm"},
                   {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}}}"#,
            "",
        );
        let b = Bundle::load(&state).unwrap();
        let spec = b.spec().unwrap();
        assert_eq!(spec_device_rules(&spec), b.device_rules().unwrap());
        assert_eq!(b.device_rules().unwrap().len(), 2);
    }

    #[test]
    fn complete_request_finds_the_compat_library_only_when_the_plan_would_use_it() {
        use fixtures::elf::{Arch, SharedObject};
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/debian_version"), "12\n").unwrap();
        std::fs::create_dir_all(r.join("usr/local/cuda/compat")).unwrap();
        let lib = SharedObject::new(Arch::X86_64, "libcuda.so.1")
            .with_note(
                crate::compat::NOTE_SECTION,
                crate::compat::NOTE_OWNER,
                1,
                br#"{"format":1,"CUDA version":"12.9","driver":[535,575]}"#,
            )
            .to_bytes()
            .unwrap();
        std::fs::write(r.join("usr/local/cuda/compat/libcuda.so.575.57.08"), lib).unwrap();
        let root = ContainerRoot::open(r).unwrap();
        let request = |env: &[&str], cfg: &rules::Config| {
            let env = Env::from_oci(env.iter().map(|s| (*s).to_owned()));
            let req =
                Request::from_container(&env, &BTreeMap::new(), false, RootfsFlavor::Lib64, cfg)
                    .unwrap();
            complete_request(req, &root, cfg)
        };
        let cfg = rules::Config::default();
        let req = request(&["NVIDIA_VISIBLE_DEVICES=all"], &cfg);
        assert_eq!(req.rootfs, RootfsFlavor::DebianLike);
        let compat = req.compat.expect("compute is a default capability");
        assert_eq!(compat.version.to_string(), "575.57.08");
        assert_eq!(compat.note.unwrap().drivers, [535, 575]);
        // Video implies compute libraries.
        let video = &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=video",
        ];
        assert!(request(video, &cfg).compat.is_some());
        // Not looked for: no compute, or the mode is disabled.
        let utility = &[
            "NVIDIA_VISIBLE_DEVICES=0",
            "NVIDIA_DRIVER_CAPABILITIES=utility",
        ];
        assert_eq!(request(utility, &cfg).compat, None);
        let disabled = rules::Config {
            cuda_compat: rules::CudaCompatMode::Disabled,
            ..rules::Config::default()
        };
        let req = request(&["NVIDIA_VISIBLE_DEVICES=all"], &disabled);
        assert_eq!(req.compat, None);
        assert_eq!(req.rootfs, RootfsFlavor::DebianLike);
    }

    #[test]
    fn flavours() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        let root = ContainerRoot::open(r).unwrap();
        assert_eq!(detect_flavor(&root), RootfsFlavor::Lib64);
        std::os::unix::fs::symlink("lib", r.join("usr/lib64")).unwrap();
        assert_eq!(detect_flavor(&root), RootfsFlavor::Lib64Lib32);
        std::fs::create_dir_all(r.join("etc")).unwrap();
        // An escaping link is resolved inside the root: /etc/debian_version
        // -> /../../etc/hostname is the root's /etc/hostname, absent here.
        std::os::unix::fs::symlink("/../../etc/hostname", r.join("etc/debian_version")).unwrap();
        assert_eq!(detect_flavor(&root), RootfsFlavor::Lib64Lib32);
        std::fs::remove_file(r.join("etc/debian_version")).unwrap();
        std::fs::write(r.join("etc/debian_version"), "12.0\n").unwrap();
        assert_eq!(detect_flavor(&root), RootfsFlavor::DebianLike);
    }
}
