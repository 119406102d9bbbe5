//! `nvidia-docker setup ...`: the GPU plan rendered as configuration for
//! container engines, printed, diffed (`--dry-run`) or installed
//! (`--write`).
//!
//! | subcommand | file (default) | module |
//! |---|---|---|
//! | `docker` | `/etc/docker/daemon.json`: `runtimes.nvidia`, `default-runtime`, `features.cdi` | [`docker`] |
//! | `containerd` | `/etc/containerd/config.toml` (config versions 1, 2, 3); `--drop-in`: `/etc/containerd/conf.d/99-nvidia.toml` imported from it | [`engines`] |
//! | `crio` | `/etc/crio/crio.conf.d/99-nvidia.toml` | [`engines`] |
//! | `hooks` | `/usr/share/containers/oci/hooks.d/oci-nvidia-docker-hook.json` | [`hooks`] |
//! | `cdi` | stdout, or `/var/run/cdi/nvidia.yaml` (`--static`: `/etc/cdi`) | [`cdi`] |
//!
//! Without `--write` the would-be file is printed (a merge shows the whole
//! merged file). `--dry-run` prints a unified diff against the file on
//! disk instead. `--write` installs it ([`install`]): nothing is written
//! when the content is already there, otherwise the old file is kept as
//! `<file>.bak-<timestamp>` and the new one renamed into place. An
//! existing file that cannot be parsed is refused with its position and
//! left untouched. Engines are not restarted: the line printed after a
//! write says what to restart.
//!
//! `docker`, `containerd`, `crio` and `hooks` choose hook or wrapper mode
//! from the engine's cgroup driver and print one line saying which and why
//! ([`mode`]; `--mode` overrides it).
//!
//! The hook paths and the hook `env` written into hooks.d and CDI files
//! are the installed binaries' and `PATH` plus the `NVIDIA_DOCKER_*` host
//! roots set in `setup`'s own environment (so a simulated host is carried
//! into the hook); nothing else of the environment is copied.
#![forbid(unsafe_code)]

pub mod cdi;
pub mod cgroup_manager;
pub mod doc;
pub mod docker;
pub mod engines;
pub mod hooks;
pub mod install;
pub mod kubernetes;
pub mod mode;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use rules::RootfsFlavor;

/// The runc wrapper, installed.
pub const DEFAULT_RUNTIME_PATH: &str = "/usr/bin/nvidia-docker-runtime";
/// The hook, installed.
pub const DEFAULT_HOOK_PATH: &str = hook::runtime::DEFAULT_HOOK_PATH;

/// Write GPU support into container engines' configuration.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    nvidia-docker setup docker --write            # register the runtime, back up daemon.json\n  \
    nvidia-docker setup docker --set-as-default --dry-run\n  \
    nvidia-docker setup containerd --config-version 3 --write\n  \
    nvidia-docker setup hooks --write             # Podman / CRI-O prestart hook\n  \
    nvidia-docker setup cdi --write               # /var/run/cdi/nvidia.yaml\n  \
    nvidia-docker setup cdi-refresh --write       # regenerate it after driver changes\n  \
    nvidia-docker setup containerd --drop-in --write  # /etc/containerd/conf.d/99-nvidia.toml\n  \
    nvidia-docker setup kubernetes | kubectl apply -f -   # RuntimeClass nvidia\n  \
    podman run --device nvidia.com/gpu=0 ...")]
pub struct SetupArgs {
    /// What to configure.
    #[command(subcommand)]
    pub target: Target,
}

/// The engines and files `setup` writes.
#[derive(Debug, Subcommand)]
pub enum Target {
    /// Docker: daemon.json runtimes (docker run --runtime=nvidia).
    Docker(DockerArgs),
    /// containerd: the CRI plugin's runtime entry (BinaryName = the wrapper).
    Containerd(ContainerdArgs),
    /// CRI-O: a runtime drop-in.
    Crio(CrioArgs),
    /// Podman / CRI-O: the hooks.d file for the prestart hook.
    Hooks(HooksArgs),
    /// A CDI spec: nvidia.com/gpu=<index>|<uuid>|all.
    Cdi(CdiArgs),
    /// Kubernetes: print the RuntimeClass selecting the runtime handler.
    Kubernetes(KubernetesArgs),
    /// systemd units and a udev rule regenerating the CDI spec after driver changes.
    CdiRefresh(CdiRefreshArgs),
}

/// `setup kubernetes`.
#[derive(Debug, Args)]
pub struct KubernetesArgs {
    /// The runtime handler (as registered by setup containerd|crio).
    #[arg(long, default_value = "nvidia", value_name = "NAME")]
    pub runtime_name: String,
}

/// `setup cdi-refresh`.
#[derive(Debug, Args)]
pub struct CdiRefreshArgs {
    /// Where the units go.
    #[arg(long, default_value = "/etc/systemd/system", value_name = "DIR")]
    pub systemd_dir: PathBuf,
    /// Where the udev rule goes.
    #[arg(long, default_value = "/etc/udev/rules.d", value_name = "DIR")]
    pub udev_dir: PathBuf,
    /// The nvidia-docker binary the service runs.
    #[arg(long, default_value = kubernetes::INSTALLED_CLI, value_name = "PATH")]
    pub cli_path: String,
    #[command(flatten)]
    pub output: Output,
}

/// Printing, diffing or installing.
#[derive(Debug, Args, Clone, Default)]
pub struct Output {
    /// Install the file (idempotent; backs up what it replaces).
    #[arg(long, conflicts_with = "dry_run")]
    pub write: bool,
    /// Print the unified diff --write would apply, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Hook or wrapper mode ([`mode`]).
#[derive(Debug, Args, Clone)]
pub struct ModeArgs {
    /// hook: GPU containers through the prestart hook, the wrapper
    /// registered by name only; wrapper: the wrapper as the default runtime
    /// (devices in the spec, kept by systemd's daemon-reload); auto: wrapper
    /// when the engine uses the systemd cgroup driver.
    #[arg(long, value_enum, default_value_t = mode::ModeChoice::Auto)]
    pub mode: mode::ModeChoice,
    /// Where the engines' configuration is read from, to find their cgroup
    /// driver ([`mode`]).
    #[arg(long, default_value = "/", value_name = "DIR", hide = true)]
    pub engine_root: PathBuf,
}

impl ModeArgs {
    /// `--set-as-default` asks for wrapper mode.
    fn choice(&self, r: &RuntimeEntry) -> mode::ModeChoice {
        if r.set_as_default {
            mode::ModeChoice::Wrapper
        } else {
            self.mode
        }
    }
}

/// The runtime entry.
#[derive(Debug, Args, Clone)]
pub struct RuntimeEntry {
    /// The runtime's name.
    #[arg(long, default_value = "nvidia", value_name = "NAME")]
    pub runtime_name: String,
    /// The runc wrapper to register.
    #[arg(long, default_value = DEFAULT_RUNTIME_PATH, value_name = "PATH")]
    pub runtime_path: String,
    /// Also make it the default runtime.
    #[arg(long)]
    pub set_as_default: bool,
}

/// `setup docker`.
#[derive(Debug, Args)]
pub struct DockerArgs {
    /// The daemon.json to update.
    #[arg(long, default_value = docker::DEFAULT_DAEMON_JSON, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeEntry,
    /// Also turn on Docker's CDI support (features.cdi).
    #[arg(long)]
    pub cdi: bool,
    /// The Engine API asked for dockerd's cgroup driver (default: DOCKER_HOST,
    /// else unix:///var/run/docker.sock).
    #[arg(long, value_name = "URL")]
    pub docker_host: Option<String>,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub output: Output,
}

/// `setup containerd`.
#[derive(Debug, Args)]
pub struct ContainerdArgs {
    /// The config.toml to update.
    #[arg(long, default_value = engines::DEFAULT_CONTAINERD_CONFIG, value_name = "FILE")]
    pub config: PathBuf,
    /// Config layout (1, 2: containerd 1.x; 3: containerd 2.x); default: the file's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=3))]
    pub config_version: Option<i64>,
    #[command(flatten)]
    pub runtime: RuntimeEntry,
    /// Also set enable_cdi (containerd 1.7 or later: the version is asked).
    #[arg(long)]
    pub cdi: bool,
    /// The containerd release the file is for (default: `containerd --version`).
    #[arg(long, value_name = "VERSION")]
    pub containerd_version: Option<String>,
    /// The containerd binary asked for its version.
    #[arg(long, default_value = "containerd", value_name = "PATH")]
    pub containerd_binary: String,
    /// Write the runtime into a drop-in (default /etc/containerd/conf.d/99-nvidia.toml)
    /// and only add it to the main file's imports, as the GPU Operator does.
    #[arg(long, value_name = "FILE", num_args = 0..=1,
          default_missing_value = engines::DEFAULT_CONTAINERD_DROP_IN)]
    pub drop_in: Option<PathBuf>,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub output: Output,
}

/// The containerd release `a` is for, when `--cdi` needs it: the
/// `--containerd-version` given, else what `containerd --version` says.
fn containerd_cdi_check(a: &ContainerdArgs) -> Result<(), engines::EngineError> {
    let unknown = |reason: String| engines::EngineError::UnknownVersion {
        binary: a.containerd_binary.clone(),
        reason,
    };
    let output = match &a.containerd_version {
        // Parsed like the binary's own line.
        Some(v) => format!("containerd given {v}"),
        None => {
            let out = std::process::Command::new(&a.containerd_binary)
                .arg("--version")
                .env_clear()
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )
                .output()
                .map_err(|e| unknown(e.to_string()))?;
            if !out.status.success() {
                return Err(unknown(format!("exited with {}", out.status)));
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let (version, text) = engines::parse_containerd_version(&output)
        .ok_or_else(|| unknown(format!("unexpected output {:?}", output.trim())))?;
    engines::check_cdi_support(version, &text)
}

/// `setup crio`.
#[derive(Debug, Args)]
pub struct CrioArgs {
    /// The drop-in to write.
    #[arg(long, default_value = engines::DEFAULT_CRIO_CONFIG, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeEntry,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub output: Output,
}

/// `setup hooks`.
#[derive(Debug, Args)]
#[command(
    after_help = "hooks.d `when` cannot see a container's environment: `always` (default) \
runs the hook for every container and the hook decides from NVIDIA_VISIBLE_DEVICES itself (one \
config.json read for a non-GPU container); `annotations` runs it only for containers annotated \
com.nvidia.volumes.needed, and ignores GPU requests made by environment alone."
)]
pub struct HooksArgs {
    /// The hooks.d file.
    #[arg(long, default_value = hooks::DEFAULT_HOOKS_FILE, value_name = "FILE")]
    pub output_file: PathBuf,
    /// The hook binary.
    #[arg(long, default_value = DEFAULT_HOOK_PATH, value_name = "PATH")]
    pub hook_path: String,
    /// Which containers run the hook.
    #[arg(long, value_enum, default_value_t = hooks::When::Always)]
    pub when: hooks::When,
    /// hook: only the hooks.d file; wrapper: also make the wrapper Podman's
    /// (and CRI-O's, when installed) default runtime, under the engine root's
    /// etc/containers/containers.conf.d/99-nvidia.conf and
    /// etc/crio/crio.conf.d/99-nvidia.toml; auto: wrapper for an engine
    /// using the systemd cgroup manager.
    #[arg(long, value_enum, default_value_t = mode::ModeChoice::Auto)]
    pub mode: mode::ModeChoice,
    /// Where the engines' configuration is read from (and, in wrapper
    /// mode, written to) ([`mode`]).
    #[arg(long, default_value = "/", value_name = "DIR", hide = true)]
    pub engine_root: PathBuf,
    /// The wrapper made the default runtime in wrapper mode.
    #[arg(long, default_value = DEFAULT_RUNTIME_PATH, value_name = "PATH")]
    pub runtime_path: String,
    #[command(flatten)]
    pub output: Output,
}

/// Rootfs flavours for `--rootfs-flavor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// /usr/lib/<triplet> (Debian, Ubuntu).
    Debian,
    /// /usr/lib64 (RHEL, Fedora, SUSE).
    Lib64,
    /// /usr/lib64 and /usr/lib32 (Arch).
    Lib64Lib32,
}

impl From<Flavor> for RootfsFlavor {
    fn from(f: Flavor) -> RootfsFlavor {
        match f {
            Flavor::Debian => RootfsFlavor::DebianLike,
            Flavor::Lib64 => RootfsFlavor::Lib64,
            Flavor::Lib64Lib32 => RootfsFlavor::Lib64Lib32,
        }
    }
}

/// `setup cdi`.
#[derive(Debug, Args)]
pub struct CdiArgs {
    /// Write the spec to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
    /// With --write: /etc/cdi instead of /var/run/cdi (a spec that outlives
    /// reboots and driver reloads: regenerate it yourself after each).
    #[arg(long, conflicts_with = "dynamic")]
    pub r#static: bool,
    /// With --write: /var/run/cdi (the default; kept for scripts).
    #[arg(long, hide = true)]
    pub dynamic: bool,
    /// yaml or json (default: from the file name, else yaml).
    #[arg(long, value_enum)]
    pub format: Option<cdi::Format>,
    /// The kind's vendor.
    #[arg(long, default_value = "nvidia.com")]
    pub vendor: String,
    /// The kind's class (default: the mode's, `gpu`, `imex-channel`, ...).
    #[arg(long)]
    pub class: Option<String>,
    /// Which spec: the GPUs (default), or a kind of device beyond them, as
    /// `nvidia-ctk cdi generate --mode` names them. With --write and no
    /// --mode (and no --output-file): every spec the host has devices for,
    /// each in its own file (`nvidia.yaml`, `nvidia-imex-channel.yaml`, ...).
    #[arg(long, value_enum)]
    pub mode: Option<cdi::Mode>,
    /// The hook binary.
    #[arg(long, default_value = DEFAULT_HOOK_PATH, value_name = "PATH")]
    pub hook_path: PathBuf,
    /// Library directories in the container (default: the driver root's own layout).
    #[arg(long, value_enum)]
    pub rootfs_flavor: Option<Flavor>,
    #[command(flatten)]
    pub output: Output,
}

/// Runs `setup` with the process's environment, stdout and stderr.
pub fn run(args: &SetupArgs) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    run_with(
        args,
        &env,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// Runs `setup`: generated files and diffs go to `out`, what was done to
/// `note`; `env` is the environment (configuration, host roots,
/// `NVIDIA_DOCKER_INVENTORY`).
pub fn run_with(
    args: &SetupArgs,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    note: &mut dyn Write,
) -> anyhow::Result<()> {
    match &args.target {
        Target::Docker(a) => {
            let path = &a.config;
            let current = install::read_existing(path)?;
            let host = a.docker_host.clone().or_else(|| env("DOCKER_HOST"));
            let socket = mode::docker_socket(host.as_deref());
            let detected = mode::docker(
                socket.as_deref(),
                (path, current.as_deref()),
                &a.mode.engine_root,
            );
            let setting = format!("default-runtime {:?}", a.runtime.runtime_name);
            let decision = mode::decide(a.mode.choice(&a.runtime), &detected, &setting);
            let opts = docker::DockerOptions {
                runtime_name: a.runtime.runtime_name.clone(),
                runtime_path: a.runtime.runtime_path.clone(),
                set_default: decision.wrapper,
                cdi: a.cdi,
            };
            merge_file(path, &a.output, out, note, "restart dockerd", |old| {
                Ok(docker::merge(path, old, &opts)?)
            })?;
            writeln!(note, "{}", decision.line)?;
            Ok(())
        }
        Target::Containerd(a) => {
            if a.cdi {
                containerd_cdi_check(a)?;
            }
            let path = &a.config;
            let main_text = install::read_existing(path)?;
            let drop_text = match &a.drop_in {
                Some(d) => install::read_existing(d)?,
                None => None,
            };
            let mut files = vec![(path.as_path(), main_text.as_deref())];
            if let Some(d) = &a.drop_in {
                files.push((d.as_path(), drop_text.as_deref()));
            }
            let detected = mode::containerd(&files);
            let setting = format!("default_runtime_name {:?}", a.runtime.runtime_name);
            let decision = mode::decide(a.mode.choice(&a.runtime), &detected, &setting);
            let mut opts = engine_options(&a.runtime, a.cdi);
            opts.set_default = decision.wrapper;
            let result = containerd_files(a, &opts, out, note);
            writeln!(note, "{}", decision.line)?;
            result
        }
        Target::Crio(a) => {
            let detected = mode::crio(&a.mode.engine_root);
            let setting = format!("default_runtime {:?}", a.runtime.runtime_name);
            let decision = mode::decide(a.mode.choice(&a.runtime), &detected, &setting);
            let mut opts = engine_options(&a.runtime, false);
            opts.set_default = decision.wrapper;
            let path = &a.config;
            merge_file(path, &a.output, out, note, "restart crio", |old| {
                Ok(engines::merge_crio(path, old, &opts)?)
            })?;
            writeln!(note, "{}", decision.line)?;
            Ok(())
        }
        Target::Hooks(a) => run_hooks(a, env, out, note),
        Target::Cdi(a) => run_cdi(a, env, out, note),
        Target::Kubernetes(a) => {
            out.write_all(kubernetes::runtime_class(&a.runtime_name).as_bytes())?;
            writeln!(
                note,
                "apply with kubectl apply -f -; pods with runtimeClassName: {} run under the runc wrapper",
                a.runtime_name
            )?;
            Ok(())
        }
        Target::CdiRefresh(a) => {
            let files = kubernetes::refresh_files(&a.systemd_dir, &a.udev_dir, &a.cli_path);
            for (path, text) in files {
                if !a.output.write && !a.output.dry_run {
                    writeln!(out, "# {}", path.display())?;
                }
                merge_file(&path, &a.output, out, note, "then: systemctl daemon-reload; systemctl enable --now nvidia-docker-cdi-refresh.path nvidia-docker-cdi-refresh.service; udevadm control --reload", |_| Ok(text.clone()))?;
            }
            Ok(())
        }
    }
}

/// containerd's main file and, with `--drop-in`, the drop-in.
fn containerd_files(
    a: &ContainerdArgs,
    opts: &engines::RuntimeOptions,
    out: &mut dyn Write,
    note: &mut dyn Write,
) -> anyhow::Result<()> {
    let path = &a.config;
    if let Some(drop_in) = &a.drop_in {
        let main = install::read_existing(path)?;
        merge_file(drop_in, &a.output, out, note, "restart containerd", |old| {
            Ok(engines::merge_containerd_drop_in(
                drop_in,
                old,
                path,
                main.as_deref(),
                a.config_version,
                opts,
            )?)
        })?;
        return merge_file(path, &a.output, out, note, "restart containerd", |old| {
            Ok(engines::add_containerd_import(path, old, drop_in)?)
        });
    }
    merge_file(path, &a.output, out, note, "restart containerd", |old| {
        Ok(engines::merge_containerd(
            path,
            old,
            a.config_version,
            opts,
        )?)
    })
}

/// `setup hooks`: the hooks.d file, and in wrapper mode ([`mode`]) the
/// wrapper as Podman's (and an installed CRI-O's) default runtime.
fn run_hooks(
    a: &HooksArgs,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    note: &mut dyn Write,
) -> anyhow::Result<()> {
    let root = &a.engine_root;
    let mut engines = vec![mode::podman(root)];
    if root.join("etc/crio").is_dir() {
        engines.push(mode::crio(root));
    }
    let opts = engines::RuntimeOptions {
        runtime_name: "nvidia".to_owned(),
        runtime_path: a.runtime_path.clone(),
        set_default: true,
        cdi: false,
    };
    let decisions: Vec<(mode::Detected, mode::Decision)> = engines
        .into_iter()
        .map(|d| {
            let setting = match d.engine {
                "podman" => format!(
                    "engine.runtime \"nvidia\" in {}",
                    root.join(PODMAN_DROP_IN).display()
                ),
                _ => format!(
                    "default_runtime \"nvidia\" in {}",
                    root.join(CRIO_DROP_IN).display()
                ),
            };
            let decision = mode::decide(a.mode, &d, &setting);
            (d, decision)
        })
        .collect();
    let several = decisions.iter().any(|(_, d)| d.wrapper);
    let header = |out: &mut dyn Write, path: &Path| -> std::io::Result<()> {
        if several && !a.output.write && !a.output.dry_run {
            writeln!(out, "# {}", path.display())?;
        }
        Ok(())
    };
    let text = hooks::render(&a.hook_path, &hook::runtime::hook_env(env), a.when);
    header(out, &a.output_file)?;
    merge_file(
        &a.output_file,
        &a.output,
        out,
        note,
        "new containers use it",
        |_| Ok(text.clone()),
    )?;
    for (detected, decision) in &decisions {
        if decision.wrapper {
            if detected.engine == "podman" {
                let path = root.join(PODMAN_DROP_IN);
                header(out, &path)?;
                merge_file(
                    &path,
                    &a.output,
                    out,
                    note,
                    "new containers use it",
                    |old| Ok(engines::merge_podman(&path, old, &opts)?),
                )?;
            } else {
                let path = root.join(CRIO_DROP_IN);
                header(out, &path)?;
                merge_file(&path, &a.output, out, note, "restart crio", |old| {
                    Ok(engines::merge_crio(&path, old, &opts)?)
                })?;
            }
        }
        writeln!(note, "{}", decision.line)?;
    }
    Ok(())
}

/// Podman's drop-in in wrapper mode, under the engine root.
pub const PODMAN_DROP_IN: &str = "etc/containers/containers.conf.d/99-nvidia.conf";
/// CRI-O's drop-in in wrapper mode, under the engine root.
pub const CRIO_DROP_IN: &str = "etc/crio/crio.conf.d/99-nvidia.toml";

fn engine_options(r: &RuntimeEntry, cdi: bool) -> engines::RuntimeOptions {
    engines::RuntimeOptions {
        runtime_name: r.runtime_name.clone(),
        runtime_path: r.runtime_path.clone(),
        set_default: r.set_as_default,
        cdi,
    }
}

/// Print, diff or install the content `make` gives for the current file.
fn merge_file(
    path: &Path,
    output: &Output,
    out: &mut dyn Write,
    note: &mut dyn Write,
    then: &str,
    make: impl FnOnce(Option<&str>) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let old = install::read_existing(path)?;
    let new = make(old.as_deref())?;
    if output.dry_run {
        let d = install::diff(path, old.as_deref(), &new);
        if d.is_empty() {
            writeln!(note, "{}: no changes", path.display())?;
        } else {
            out.write_all(d.as_bytes())?;
        }
    } else if output.write {
        match install::install(path, old.as_deref(), &new)? {
            install::Installed::Unchanged => {
                writeln!(note, "{}: already up to date", path.display())?
            }
            install::Installed::Written { backup: Some(b) } => writeln!(
                note,
                "wrote {} (previous content in {}); {then}",
                path.display(),
                b.display()
            )?,
            install::Installed::Written { backup: None } => {
                writeln!(note, "wrote {}; {then}", path.display())?
            }
        }
    } else {
        out.write_all(new.as_bytes())?;
    }
    Ok(())
}

fn run_cdi(
    a: &CdiArgs,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    note: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut cfg = hook::config::HookConfig::load_with_env(None, env)?;
    cfg.nvml_probe.args = vec![crate::host::NVML_PROBE_ARG.into()];
    let inv = match env(crate::host::ENV_INVENTORY).filter(|v| !v.is_empty()) {
        Some(path) => crate::host::read_inventory(Path::new(&path))?,
        None => hook::inventory::load_or_discover(&cfg)
            .context("cannot read the host's GPUs for the CDI spec")?,
    };
    let flavor = match a.rootfs_flavor {
        Some(f) => f.into(),
        None => match hook::apply::root::ContainerRoot::open(&cfg.paths.driver_root) {
            Ok(root) => hook::container::detect_flavor(&root),
            Err(e) => {
                log::debug!("driver root flavour: {e}");
                RootfsFlavor::DebianLike
            }
        },
    };
    let mode = a.mode.unwrap_or(cdi::Mode::Gpu);
    let opts = cdi::CdiOptions {
        vendor: a.vendor.clone(),
        class: a.class.clone().unwrap_or_else(|| mode.class().to_owned()),
        hook_path: a.hook_path.clone(),
        hook_env: hook::runtime::hook_env(env),
        flavor,
        dev_root: cfg.paths.dev_root.clone(),
    };
    let to_dir = a.output_file.is_none() && (a.output.write || a.output.dry_run);
    let specs = if to_dir && a.mode.is_none() {
        cdi::generate_all(&inv, &cfg.rules, &opts)?
    } else {
        vec![(mode, cdi::generate_mode(&inv, &cfg.rules, &opts, mode)?)]
    };
    for (mode, spec) in specs {
        let target = match (&a.output_file, to_dir) {
            (Some(p), _) => Some(p.clone()),
            (None, true) => {
                // /var/run/cdi by default: regenerated at boot and after each
                // driver load (packaging/), it cannot outlive the inventory.
                let dir = if a.r#static {
                    cdi::STATIC_DIR
                } else {
                    cdi::DYNAMIC_DIR
                };
                let ext = match a.format {
                    Some(cdi::Format::Json) => "json",
                    _ => "yaml",
                };
                let stem = a.vendor.split('.').next().unwrap_or("nvidia");
                let name = match mode {
                    cdi::Mode::Gpu => format!("{stem}.{ext}"),
                    m => format!("{stem}-{}.{ext}", m.class()),
                };
                Some(Path::new(dir).join(name))
            }
            (None, false) => None,
        };
        let format = a.format.unwrap_or_else(|| match &target {
            Some(p) if p.extension().is_some_and(|e| e == "json") => cdi::Format::Json,
            _ => cdi::Format::Yaml,
        });
        let text = cdi::render(&spec, format);
        match target {
            None => out.write_all(text.as_bytes())?,
            Some(path) => {
                let output = Output {
                    write: !a.output.dry_run,
                    dry_run: a.output.dry_run,
                };
                merge_file(&path, &output, out, note, "new containers use it", |_| {
                    Ok(text)
                })?;
            }
        }
    }
    Ok(())
}
