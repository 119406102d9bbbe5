//! OCI bundles for runc: a private writable rootfs plus a `config.json`.
use std::path::{Path, PathBuf};

use anyhow::Context;
use fixtures::rootfs::{self, Variant};
use serde_json::{json, Value};

/// The capabilities Docker gives a container by default.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The `PATH` a container process gets unless a test sets another.
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An OCI hook stage (runtime-spec `hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStage {
    /// `prestart` (deprecated in the spec, still what runc and Docker use).
    Prestart,
    /// `createRuntime`.
    CreateRuntime,
    /// `createContainer`.
    CreateContainer,
    /// `startContainer`.
    StartContainer,
    /// `poststart`.
    Poststart,
    /// `poststop`.
    Poststop,
}

impl HookStage {
    /// The key in `config.json`.
    pub fn key(self) -> &'static str {
        match self {
            HookStage::Prestart => "prestart",
            HookStage::CreateRuntime => "createRuntime",
            HookStage::CreateContainer => "createContainer",
            HookStage::StartContainer => "startContainer",
            HookStage::Poststart => "poststart",
            HookStage::Poststop => "poststop",
        }
    }
}

/// One hook entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Absolute path of the program (on the host).
    pub path: PathBuf,
    /// Full argv, argv\[0\] included (as execv(3)).
    pub args: Vec<String>,
    /// Its whole environment (`KEY=value`); runc passes nothing else.
    pub env: Vec<String>,
    /// Seconds before runc kills it.
    pub timeout: Option<u32>,
}

impl Hook {
    /// A hook running `path` with `args` (argv\[0\] first), no environment
    /// and no timeout.
    pub fn new(path: impl Into<PathBuf>, args: &[&str]) -> Hook {
        Hook {
            path: path.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Vec::new(),
            timeout: None,
        }
    }

    /// Adds `KEY=value` to its environment.
    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Hook {
        self.env.push(format!("{key}={}", value.as_ref()));
        self
    }

    /// Sets its timeout in seconds.
    pub fn timeout(mut self, seconds: u32) -> Hook {
        self.timeout = Some(seconds);
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({ "path": self.path, "args": self.args, "env": self.env });
        if let Some(t) = self.timeout {
            v["timeout"] = json!(t);
        }
        v
    }
}

/// Builds a [`Bundle`] (owned builder: each method takes and returns it).
#[derive(Debug, Clone)]
pub struct BundleBuilder {
    variant: Variant,
    config: Value,
    /// The host uid/gid the rootfs is given to (user-namespaced containers).
    rootfs_owner: Option<u32>,
}

impl BundleBuilder {
    /// A sane minimal Docker-like config: pid/ipc/uts/mount/network
    /// namespaces, `/proc`, `/dev` (tmpfs), `/dev/pts`, `/dev/shm`,
    /// `/dev/mqueue`, `/sys` (ro) and `/sys/fs/cgroup` (ro) mounts, Docker's
    /// default capabilities, no terminal, a writable root, every device
    /// denied (runc adds its defaults: null, zero, tty, ...), and
    /// `/bin/true` as the process.
    pub fn new(variant: Variant) -> BundleBuilder {
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": { "uid": 0, "gid": 0 },
                "args": ["/bin/true"],
                "env": [format!("PATH={CONTAINER_PATH}"), "HOME=/root"],
                "cwd": "/",
                "capabilities": {
                    "bounding": DEFAULT_CAPS,
                    "effective": DEFAULT_CAPS,
                    "permitted": DEFAULT_CAPS,
                },
                "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
                "noNewPrivileges": false
            },
            "root": { "path": "rootfs", "readonly": false },
            "hostname": "e2e",
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                  "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
                { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                  "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
                { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                  "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
                { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                  "options": ["nosuid", "noexec", "nodev"] },
                { "destination": "/sys", "type": "sysfs", "source": "sysfs",
                  "options": ["nosuid", "noexec", "nodev", "ro"] },
                { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                  "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
            ],
            "annotations": {},
            "linux": {
                "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
                "namespaces": [
                    { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                    { "type": "uts" }, { "type": "mount" }
                ],
                "maskedPaths": [
                    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                    "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
                ],
                "readonlyPaths": [
                    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
                ]
            }
        });
        BundleBuilder {
            variant,
            config,
            rootfs_owner: None,
        }
    }

    /// The container process's argv.
    pub fn args(mut self, args: &[&str]) -> BundleBuilder {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Shorthand for `args(["/bin/sh", "-c", script])`.
    pub fn sh(self, script: &str) -> BundleBuilder {
        self.args(&["/bin/sh", "-c", script])
    }

    /// Sets `KEY=value` in the process environment (replacing `KEY`).
    pub fn env(mut self, key: &str, value: &str) -> BundleBuilder {
        let env = self.config["process"]["env"]
            .as_array_mut()
            .expect("process.env is an array");
        let prefix = format!("{key}=");
        env.retain(|e| !e.as_str().is_some_and(|e| e.starts_with(&prefix)));
        env.push(json!(format!("{key}={value}")));
        self
    }

    /// Adds a character device node to `linux.devices` (mode 0666, root),
    /// which runc creates; the device cgroup is separate ([`Self::device_rule`]).
    pub fn char_device(mut self, path: &str, major: i64, minor: i64) -> BundleBuilder {
        let devices = self.config["linux"]
            .as_object_mut()
            .expect("linux is an object")
            .entry("devices")
            .or_insert_with(|| json!([]));
        devices
            .as_array_mut()
            .expect("linux.devices is an array")
            .push(json!({
                "path": path, "type": "c", "major": major, "minor": minor,
                "fileMode": 0o666, "uid": 0, "gid": 0
            }));
        self
    }

    /// Appends a `linux.resources.devices` rule. `kind` is `"c"`, `"b"` or
    /// `"a"`; `None` for major or minor means any (`*`); `access` is a subset
    /// of `"rwm"`. Rules apply in order after the initial deny-all.
    pub fn device_rule(
        mut self,
        allow: bool,
        kind: &str,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> BundleBuilder {
        let mut rule = json!({ "allow": allow, "type": kind, "access": access });
        if let Some(major) = major {
            rule["major"] = json!(major);
        }
        if let Some(minor) = minor {
            rule["minor"] = json!(minor);
        }
        self.config["linux"]["resources"]["devices"]
            .as_array_mut()
            .expect("linux.resources.devices is an array")
            .push(rule);
        self
    }

    /// Adds a bind mount of the host's `source` at `destination`.
    pub fn bind_mount(
        mut self,
        source: impl AsRef<Path>,
        destination: &str,
        readonly: bool,
    ) -> BundleBuilder {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        if readonly {
            options.push("ro");
        }
        self.mounts().push(json!({
            "destination": destination, "type": "bind",
            "source": source.as_ref(), "options": options
        }));
        self
    }

    /// Adds any `mounts` entry.
    pub fn mount(mut self, mount: Value) -> BundleBuilder {
        self.mounts().push(mount);
        self
    }

    fn mounts(&mut self) -> &mut Vec<Value> {
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts is an array")
    }

    /// Appends a hook at `stage`.
    pub fn hook(mut self, stage: HookStage, hook: &Hook) -> BundleBuilder {
        let hooks = self
            .config
            .as_object_mut()
            .expect("config is an object")
            .entry("hooks")
            .or_insert_with(|| json!({}));
        let list = hooks
            .as_object_mut()
            .expect("hooks is an object")
            .entry(stage.key())
            .or_insert_with(|| json!([]));
        list.as_array_mut()
            .expect("hook stage is an array")
            .push(hook.to_json());
        self
    }

    /// Sets an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> BundleBuilder {
        self.config["annotations"][key] = json!(value);
        self
    }

    /// Makes the root file system read-only (default: writable).
    pub fn readonly_root(mut self, readonly: bool) -> BundleBuilder {
        self.config["root"]["readonly"] = json!(readonly);
        self
    }

    /// Runs the container in its own user namespace, its root (and 65535
    /// ids after it) mapped to `host_id`; the rootfs copy is given to
    /// `host_id`, and `/sys/fs/cgroup` is not mounted (cgroup v1 cannot be
    /// mounted from a user namespace).
    pub fn user_namespace(mut self, host_id: u32) -> BundleBuilder {
        let mapping = json!([{ "containerID": 0, "hostID": host_id, "size": 65536 }]);
        let linux = &mut self.config["linux"];
        linux["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces is an array")
            .push(json!({ "type": "user" }));
        linux["uidMappings"] = mapping.clone();
        linux["gidMappings"] = mapping;
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts is an array")
            .retain(|m| m["destination"] != "/sys/fs/cgroup");
        self.rootfs_owner = Some(host_id);
        self
    }

    /// Edits the config directly, for anything the methods above lack.
    pub fn with_config(mut self, edit: impl FnOnce(&mut Value)) -> BundleBuilder {
        edit(&mut self.config);
        self
    }

    /// The config as it stands.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Creates the bundle directory: a private copy of the rootfs and
    /// `config.json`.
    pub fn build(self) -> anyhow::Result<Bundle> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-bundle-")
            .tempdir()
            .context("cannot create a bundle directory")?;
        let rootfs = dir.path().join("rootfs");
        rootfs::copy_to(self.variant, &rootfs)
            .with_context(|| format!("cannot copy the {} rootfs", self.variant))?;
        if let Some(id) = self.rootfs_owner {
            let owner = format!("{id}:{id}");
            let chown = std::process::Command::new("chown")
                .args(["-R", "-h", &owner])
                .arg(&rootfs)
                .status()
                .context("cannot run chown")?;
            anyhow::ensure!(
                chown.success(),
                "chown -R {owner} {} failed",
                rootfs.display()
            );
        }
        let bundle = Bundle {
            dir,
            variant: self.variant,
            config: self.config,
        };
        bundle.write_config()?;
        Ok(bundle)
    }
}

/// A runc bundle in a temporary directory (removed on drop).
#[derive(Debug)]
pub struct Bundle {
    dir: tempfile::TempDir,
    variant: Variant,
    config: Value,
}

impl Bundle {
    /// Starts a bundle of `variant`; see [`BundleBuilder::new`].
    pub fn builder(variant: Variant) -> BundleBuilder {
        BundleBuilder::new(variant)
    }

    /// The bundle directory (what `runc --bundle` takes).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The bundle's private rootfs.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Its `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// The config as written.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The rootfs variant it was made from.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Edits the config and writes it again (between two runs).
    pub fn edit_config(&mut self, edit: impl FnOnce(&mut Value)) -> anyhow::Result<()> {
        edit(&mut self.config);
        self.write_config()
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let path = self.config_path();
        let text = serde_json::to_string_pretty(&self.config).context("serialise config.json")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}
