//! The GPU hook (`nvidia-docker-hook`) on a simulated host: where its binary
//! is, a simulated host per test ([`SimHost`]) with the environment that
//! points the hook at it, the three ways to register it (runc `config.json`
//! [`SimHost::prestart_hook`], Podman/CRI-O `hooks.d`
//! [`SimHost::hooks_dir`], `docker run --gpus` [`SimHost::toolkit_bin_dir`]),
//! and what a container sees of its GPUs ([`Inside`]).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fixtures::driver_root::{generate, Layout, Options};
use fixtures::host_desc::HostDescription;
use serde_json::Value;

use crate::bundle::{BundleBuilder, Hook};
use crate::Variant;

/// The hook binary's file name.
pub const HOOK_FILE: &str = "nvidia-docker-hook";
/// The name `docker run --gpus` looks for on dockerd's `PATH`.
pub const TOOLKIT_HOOK_NAME: &str = "nvidia-container-runtime-hook";
/// Environment variable overriding the hook binary's path.
pub const ENV_HOOK_BINARY: &str = "E2E_HOOK_BINARY";

/// The shipped hooks.d file (with `/usr/bin/nvidia-docker-hook`).
pub fn shipped_hooks_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/oci-hooks.d/oci-nvidia-docker-hook.json")
}

/// The built hook: `$E2E_HOOK_BINARY`, else `nvidia-docker-hook` beside the
/// running test binary (`target/<profile>/`, the test being in `deps/`).
pub fn hook_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(ENV_HOOK_BINARY) {
        // A relative path is taken from the workspace root (tests run in
        // tests/, and runtimes run hooks from elsewhere): it must be
        // absolute in a config.json.
        let p = PathBuf::from(p);
        let p = if p.is_relative() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
        } else {
            p
        };
        return std::fs::canonicalize(&p)
            .with_context(|| format!("{ENV_HOOK_BINARY}={} does not exist", p.display()));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(HOOK_FILE);
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate);
    }
    anyhow::bail!(
        "{HOOK_FILE} not found (looked for {tried:?}); build the workspace first \
         (cargo build --workspace) or set {ENV_HOOK_BINARY}"
    )
}

/// A simulated GPU host in a temporary directory, with the hook's
/// configuration file and snapshot cache of its own.
#[derive(Debug)]
pub struct SimHost {
    dir: tempfile::TempDir,
    /// The host description.
    pub desc: HostDescription,
    /// Where everything is.
    pub layout: Layout,
}

impl SimHost {
    /// Generates `desc` (see `fixtures::driver_root::generate`).
    pub fn generate(desc: HostDescription) -> anyhow::Result<SimHost> {
        SimHost::generate_with(desc, |_| ())
    }

    /// Generates `desc` with generator options changed by `edit` (e.g. the
    /// IPC sockets of `Options::ipc`).
    pub fn generate_with(
        desc: HostDescription,
        edit: impl FnOnce(&mut Options),
    ) -> anyhow::Result<SimHost> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-simhost-")
            .tempdir()
            .context("cannot create a simulated host directory")?;
        let mut opts = Options::locate().context("build the workspace first")?;
        edit(&mut opts);
        let layout = generate(&desc, &dir.path().join("host"), &opts)
            .context("cannot generate the simulated host")?;
        let host = SimHost { dir, desc, layout };
        host.write_config("")?;
        Ok(host)
    }

    /// `n` synthetic A100s (driver 535.104.05, CUDA 12.2) whose minors are
    /// the indexes reversed, so that a mix-up of index and minor shows.
    pub fn synthetic(n: usize) -> anyhow::Result<SimHost> {
        let mut desc = HostDescription::synthetic(n, "535.104.05", "12.2");
        let count = u32::try_from(desc.gpus.len()).unwrap_or(0);
        for (i, gpu) in desc.gpus.iter_mut().enumerate() {
            gpu.minor = count - 1 - u32::try_from(i).unwrap_or(0);
        }
        SimHost::generate(desc)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The hook's configuration file (`NVIDIA_DOCKER_CONFIG`).
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.toml")
    }

    /// The hook's debug log, once [`SimHost::enable_debug_log`] was called.
    pub fn debug_log(&self) -> PathBuf {
        self.dir().join("hook.log")
    }

    /// Rewrites the configuration file with `toml`.
    pub fn write_config(&self, toml: &str) -> anyhow::Result<()> {
        std::fs::write(self.config_path(), toml).context("cannot write the hook's config.toml")
    }

    /// Turns on the debug log file ([`SimHost::debug_log`]).
    pub fn enable_debug_log(&self) -> anyhow::Result<()> {
        self.write_config(&format!(
            "[nvidia-container-cli]\ndebug = {:?}\n",
            self.debug_log()
        ))
    }

    /// The variables pointing the hook (and the mock NVML it starts) at this
    /// host.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let s = |p: &Path| p.to_string_lossy().into_owned();
        vec![
            ("NVIDIA_DOCKER_CONFIG", s(&self.config_path())),
            ("NVIDIA_DOCKER_DRIVER_ROOT", s(&self.layout.driver_root)),
            ("NVIDIA_DOCKER_DEV_ROOT", s(&self.layout.dev_root)),
            ("NVIDIA_DOCKER_PROC_ROOT", s(&self.layout.proc_root)),
            ("NVIDIA_DOCKER_SYS_ROOT", s(&self.layout.sys_root)),
            ("NVIDIA_DOCKER_CACHE_DIR", s(&self.dir().join("cache"))),
            ("NVML_MOCK_DEV_ROOT", s(&self.layout.dev_root)),
        ]
    }

    /// The runc `config.json` registration: `hooks.prestart` running the
    /// hook with [`SimHost::env`] (and a `PATH`) as its whole environment.
    pub fn prestart_hook(&self) -> anyhow::Result<Hook> {
        prestart_hook_with(self.env())
    }

    /// A directory holding `nvidia-container-runtime-hook`, a symlink to
    /// the hook: put first on dockerd's `PATH` for `docker run --gpus`.
    pub fn toolkit_bin_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.dir().join("bin");
        let link = dir.join(TOOLKIT_HOOK_NAME);
        if !link.exists() {
            std::fs::create_dir_all(&dir)?;
            std::os::unix::fs::symlink(hook_binary()?, &link)
                .with_context(|| format!("cannot link {}", link.display()))?;
        }
        Ok(dir)
    }

    /// A `hooks.d` directory holding the shipped file with the hook's path
    /// replaced by the built one and [`SimHost::env`] added to its `env`;
    /// everything else (`when`, `stages`) exactly as shipped.
    pub fn hooks_dir(&self) -> anyhow::Result<PathBuf> {
        let shipped = shipped_hooks_file();
        let text = std::fs::read_to_string(&shipped)
            .with_context(|| format!("cannot read {}", shipped.display()))?;
        let mut json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", shipped.display()))?;
        json["hook"]["path"] = Value::String(hook_binary()?.to_string_lossy().into_owned());
        let env = json["hook"]["env"]
            .as_array_mut()
            .context("the shipped hook has an env list")?;
        for (k, v) in self.env() {
            env.push(Value::String(format!("{k}={v}")));
        }
        let dir = self.dir().join("hooks.d");
        std::fs::create_dir_all(&dir)?;
        let name = shipped.file_name().context("file name")?;
        std::fs::write(dir.join(name), serde_json::to_string_pretty(&json)?)?;
        Ok(dir)
    }

    /// The 64-bit `libcuda.so.<driver>` name.
    pub fn libcuda(&self) -> String {
        format!("libcuda.so.{}", self.desc.driver_version)
    }

    /// The device nodes a container given the GPUs at `indexes` should have,
    /// with compute and utility (the default capabilities): path to
    /// `(major, minor)`.
    pub fn expected_nodes(&self, indexes: &[usize]) -> BTreeMap<String, (u32, u32)> {
        let nv = self.desc.nvidia_major;
        let uvm = self.desc.uvm_major;
        let mut nodes = BTreeMap::from([
            ("/dev/nvidiactl".to_owned(), (nv, 255)),
            ("/dev/nvidia-uvm".to_owned(), (uvm, 0)),
            ("/dev/nvidia-uvm-tools".to_owned(), (uvm, 1)),
        ]);
        for &i in indexes {
            let minor = self.desc.gpus[i].minor;
            nodes.insert(format!("/dev/nvidia{minor}"), (nv, minor));
        }
        nodes
    }

    /// `nvidia-smi -L` lines for `indexes`, numbered as NVML numbers the
    /// GPUs visible in the container.
    pub fn expected_listing(&self, indexes: &[usize]) -> Vec<String> {
        indexes
            .iter()
            .enumerate()
            .map(|(i, &index)| {
                let gpu = &self.desc.gpus[index];
                format!("GPU {i}: {} (UUID: {})", gpu.name, gpu.uuid)
            })
            .collect()
    }

    /// `/proc/driver/nvidia/gpus` entries for `indexes`.
    pub fn expected_proc_gpus(&self, indexes: &[usize]) -> BTreeSet<String> {
        indexes
            .iter()
            .filter_map(|&i| fixtures::driver_root::kernel_bus_id(&self.desc.gpus[i].pci.bus_id))
            .collect()
    }
}

/// What the container of [`selection_probe`] prints when exactly the
/// selected GPU is allowed.
pub const SELECTION_ONLY: &str = "sel No such device or address\nother Operation not permitted\n";

/// A Debian bundle asking for GPU `selected` of `host` whose container
/// opens that GPU's node and a node of GPU `other` that the bundle itself
/// creates without an allow rule (`/dev/nvidia<minor>-x`), printing
/// `sel <error>` and `other <error>`: ENXIO is allowed (no driver), EPERM
/// denied. Register a hook (or not) before building.
pub fn selection_probe(host: &SimHost, selected: usize, other: usize) -> BundleBuilder {
    let sel = host.desc.gpus[selected].minor;
    let other = host.desc.gpus[other].minor;
    crate::Bundle::builder(Variant::Debian)
        .sh(&format!(
            "cat /dev/nvidia{sel} 2>&1 | sed 's/.*: /sel /'; cat /dev/nvidia{other}-x 2>&1 | sed 's/.*: /other /'"
        ))
        .env("NVIDIA_VISIBLE_DEVICES", &selected.to_string())
        .char_device(&format!("/dev/nvidia{other}-x"), 195, i64::from(other))
}

/// A shell script (busybox) printing what a container has of its GPUs,
/// one fact per line, for [`Inside::parse`]. `lib` is the versioned
/// `libcuda` in the flavour's library directory.
pub fn inside_script(lib: &str) -> String {
    format!(
        r#"for n in /dev/nvidia* /dev/nvidia-caps/*; do [ -c "$n" ] && echo "node $n $(stat -c '%t %T' "$n")"; done
for n in /dev/nvidia[0-9]*; do [ -c "$n" ] && echo "open $n $(cat "$n" 2>&1 >/dev/null | sed 's/.*: //')"; done
echo "write $( (echo x >> {lib}) 2>&1 | sed 's/.*: //')"
grep " {lib} " /proc/self/mountinfo | awk '{{print "libmount", $6}}'

nvidia-smi -L 2>&1 | sed 's/^/smi /'
ldconfig -p | grep -oE '^[[:space:]]*(libcuda\.so\.1|libnvidia-ml\.so\.1) ' | sed 's/^[[:space:]]*/ldconfig /'
ls /proc/driver/nvidia/gpus 2>&1 | sed 's/^/procgpu /'
echo done
"#
    )
}

/// What [`inside_script`] printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inside {
    /// Character devices under `/dev/nvidia*`: path to (major, minor).
    pub nodes: BTreeMap<String, (u32, u32)>,
    /// `open()` of each GPU node: path to the error text.
    pub open: BTreeMap<String, String>,
    /// What appending to the driver library said.
    pub write: String,
    /// The library's mount options (`/proc/self/mountinfo`).
    pub lib_mount: String,
    /// `nvidia-smi -L` lines.
    pub smi: Vec<String>,
    /// Sonames `ldconfig -p` lists.
    pub ldconfig: BTreeSet<String>,
    /// `/proc/driver/nvidia/gpus` entries.
    pub proc_gpus: BTreeSet<String>,
    /// The script ran to its end.
    pub done: bool,
}

impl Inside {
    /// Parses [`inside_script`]'s output.
    pub fn parse(stdout: &str) -> Inside {
        let mut inside = Inside::default();
        for line in stdout.lines() {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "node" => {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    if let [path, major, minor] = f[..] {
                        let hex = |s: &str| u32::from_str_radix(s, 16).unwrap_or(u32::MAX);
                        inside
                            .nodes
                            .insert(path.to_owned(), (hex(major), hex(minor)));
                    }
                }
                "open" => {
                    let (path, err) = rest.split_once(' ').unwrap_or((rest, ""));
                    inside.open.insert(path.to_owned(), err.to_owned());
                }
                "write" => inside.write = rest.to_owned(),
                "libmount" => inside.lib_mount = rest.to_owned(),
                "smi" => inside.smi.push(rest.to_owned()),
                "ldconfig" => {
                    inside.ldconfig.insert(rest.trim().to_owned());
                }
                "procgpu" => {
                    inside.proc_gpus.insert(rest.to_owned());
                }
                "done" => inside.done = true,
                _ => {}
            }
        }
        inside
    }

    /// Asserts the "Done when" list: exactly the expected nodes, `ENXIO` on
    /// each GPU node (allowed by the device cgroup, no driver behind it),
    /// the stand-in lists exactly the selected GPUs, the library is
    /// read-only, the linker cache knows `libcuda.so.1` and
    /// `libnvidia-ml.so.1`, `/proc/driver/nvidia/gpus` lists only the
    /// selected GPUs.
    #[track_caller]
    pub fn assert_gpus(&self, host: &SimHost, indexes: &[usize], context: &dyn std::fmt::Display) {
        assert!(self.done, "the check script did not finish:\n{context}");
        assert_eq!(
            self.nodes,
            host.expected_nodes(indexes),
            "device nodes\n{context}"
        );
        for (path, _) in self.nodes.iter().filter(|(p, _)| {
            p.strip_prefix("/dev/nvidia")
                .is_some_and(|r| r.bytes().all(|b| b.is_ascii_digit()))
        }) {
            assert_eq!(
                self.open.get(path).map(String::as_str),
                Some("No such device or address"),
                "open({path}) must fail with ENXIO (allowed, no driver)\n{context}"
            );
        }
        if indexes.is_empty() {
            assert_eq!(self.smi, ["No devices were found"], "nvidia-smi\n{context}");
        } else {
            assert_eq!(
                self.smi,
                host.expected_listing(indexes),
                "nvidia-smi\n{context}"
            );
        }
        assert_eq!(
            self.write, "Read-only file system",
            "library write\n{context}"
        );
        assert_eq!(
            self.ldconfig,
            BTreeSet::from(["libcuda.so.1".to_owned(), "libnvidia-ml.so.1".to_owned()]),
            "ldconfig -p\n{context}"
        );
        assert_eq!(
            self.proc_gpus,
            host.expected_proc_gpus(indexes),
            "/proc/driver/nvidia/gpus\n{context}"
        );
    }
}

/// The library directory the hook uses for a rootfs variant.
pub fn lib_dir(variant: Variant) -> &'static str {
    crate::gpu::library_dir(variant)
}

/// Mount table lines (`/proc/self/mountinfo` without the ids) that mention
/// `needle` in their mount point or root.
pub fn host_mounts_mentioning(needle: &str) -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect()
}

/// The built hook as a `hooks.prestart` entry whose whole environment is
/// `env` and a `PATH`.
pub fn prestart_hook_with(env: Vec<(&'static str, String)>) -> anyhow::Result<Hook> {
    let mut hook = Hook::new(hook_binary()?, &[HOOK_FILE, "prestart"])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        hook = hook.env(k, v);
    }
    Ok(hook)
}
