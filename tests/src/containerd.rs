//! A private containerd driven through its CRI, as a kubelet drives it.
//!
//! [`Containerd::start`] runs Debian's `containerd` with its own root, state,
//! socket and `opt` directories and a config holding the CRI plugin: a
//! sandbox image built here from the test rootfs (`busybox sleep`) and
//! imported with `ctr`, an empty CNI directory (pods use the host's network,
//! so no CNI plugin is needed), and the runtime handlers given by the test
//! (`runc`, and e.g. `nvidia` whose `BinaryName` is the runc wrapper). The
//! daemon's environment is cleared to `PATH` plus the test's variables; its
//! runc shims inherit it.
//!
//! [`Cri`] is the CRI v1 `RuntimeService` client (`k8s-cri`, generated with
//! tonic) over the unix socket, on a current-thread tokio runtime used only
//! here. [`Cri::run_pod`] does what a kubelet does for a one-container pod:
//! `RunPodSandbox` (host network), `CreateContainer`, `StartContainer`,
//! waits for it to exit, reads its log (the CRI log format, one
//! `<time> <stream> <tag> <line>` per line), then `StopPodSandbox` and
//! `RemovePodSandbox`.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use serde_json::json;
use tonic::transport::Channel;

use crate::mounts::unmount_under;
use crate::process::{display_command, path_env, run_timeout, signal, unique_name};
use crate::Variant;

/// The sandbox image's name.
pub const SANDBOX_IMAGE: &str = "localhost/e2e/pause:1";
/// The workload image's name (the same Debian test rootfs).
pub const WORKLOAD_IMAGE: &str = "localhost/e2e/debian:1";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A private containerd; stopped, its shims killed and its directory
/// unmounted and removed on drop.
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    sock: PathBuf,
    log: PathBuf,
}

impl Containerd {
    /// Starts containerd with the runtime handlers `handlers` (name, runc
    /// binary for the runc v2 shim; `None`: runc on `PATH`) and `env` added
    /// to its environment, and imports the two test images.
    pub fn start(
        handlers: &[(&str, Option<&Path>)],
        env: &[(String, String)],
    ) -> anyhow::Result<Containerd> {
        Containerd::start_with(handlers, env, |_| Ok(()))
    }

    /// [`Containerd::start`], with `configure` called on the written
    /// `config.toml` before the daemon starts (e.g. `nvidia-docker setup
    /// containerd` adding a runtime).
    pub fn start_with(
        handlers: &[(&str, Option<&Path>)],
        env: &[(String, String)],
        configure: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Containerd> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-containerd-")
            .tempdir()
            .context("cannot create a containerd directory")?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("cni/bin"))?;
        std::fs::create_dir_all(d.join("cni/conf"))?;
        let sock = d.join("containerd.sock");
        let mut config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  # The sandbox asks for oom_score_adj -998: not below the test's own
  # (a test run inside a container may not lower it).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = sock.display(),
            d = d.display(),
        );
        for (name, binary) in handlers {
            config.push_str(&format!(
                "    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name:?}]\n      runtime_type = \"io.containerd.runc.v2\"\n"
            ));
            if let Some(b) = binary {
                config.push_str(&format!(
                    "      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name:?}.options]\n        BinaryName = {:?}\n",
                    b.display().to_string()
                ));
            }
        }
        let config_path = d.join("config.toml");
        std::fs::write(&config_path, config)?;
        configure(&config_path)?;
        let log = d.join("containerd.log");
        let mut cmd = Command::new("containerd");
        cmd.env_clear()
            .env("PATH", path_env(&[]))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(&config_path);
        let line = display_command(&cmd);
        let out = File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let c = Containerd {
            child,
            dir,
            sock,
            log,
        };
        c.wait_ready()
            .with_context(|| format!("`{line}` did not come up:\n{}", c.log_tail()))?;
        for (tag, cmd) in [
            (SANDBOX_IMAGE, json!(["/bin/sleep", "3600"])),
            (WORKLOAD_IMAGE, json!(["/bin/sh"])),
        ] {
            c.import(tag, cmd)?;
        }
        Ok(c)
    }

    /// The CRI socket.
    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.sock.exists() {
                let mut ctr = self.ctr();
                ctr.args(["version"]);
                if run_timeout(&mut ctr, Duration::from_secs(10))?.success() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "no answer on {} after {START_TIMEOUT:?}",
            self.sock.display()
        )
    }

    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.env_clear()
            .env("PATH", path_env(&[]))
            .arg("--address")
            .arg(&self.sock)
            .args(["--namespace", "k8s.io"]);
        cmd
    }

    /// Imports the Debian test rootfs as image `tag` with command `cmd`: a
    /// docker-archive (one uncompressed layer) written here, `ctr images
    /// import`ed (and unpacked) into the CRI namespace.
    fn import(&self, tag: &str, cmd: serde_json::Value) -> anyhow::Result<()> {
        let rootfs = fixtures::rootfs::tarball(Variant::Debian)?;
        let work = self.dir.path().join(unique_name("image"));
        std::fs::create_dir(&work)?;
        std::fs::copy(&rootfs, work.join("layer.tar"))?;
        let digest = sha256(&work.join("layer.tar"))?;
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
        });
        std::fs::write(work.join("config.json"), serde_json::to_vec(&config)?)?;
        let manifest =
            json!([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]);
        std::fs::write(work.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
        let archive = work.join("image.tar");
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&work).arg("-cf").arg(&archive).args([
            "manifest.json",
            "config.json",
            "layer.tar",
        ]);
        run_timeout(&mut tar, Duration::from_secs(60))?.check()?;
        let mut ctr = self.ctr();
        ctr.args(["images", "import"]).arg(&archive);
        run_timeout(&mut ctr, Duration::from_secs(120))?
            .check()
            .with_context(|| format!("ctr images import of {tag}"))?;
        std::fs::remove_dir_all(&work)?;
        Ok(())
    }

    /// A CRI client for this daemon.
    pub fn cri(&self) -> anyhow::Result<Cri> {
        Cri::connect(&self.sock, self.dir.path().join("pods"))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Shims outlive the daemon: end those of this daemon (their
        // command line names its socket), by pid.
        for pid in shims_of(&self.sock) {
            signal(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(200));
        unmount_under(self.dir.path());
    }
}

/// The pids of `containerd-shim*` processes started for `sock`.
fn shims_of(sock: &Path) -> Vec<u32> {
    let want = sock.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.first().is_some_and(|a| a.contains("containerd-shim"))
                && args.iter().any(|a| a.starts_with(&want))
        })
        .collect()
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path);
    let out = run_timeout(&mut cmd, Duration::from_secs(60))?.check()?;
    out.stdout
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .context("sha256sum printed nothing")
}

/// One container of a pod, as a kubelet would create it.
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    /// The runtime handler (RuntimeClass `handler`); empty: the default.
    pub handler: String,
    /// `/bin/sh -c <script>`.
    pub script: String,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// `(host path, container path)` read-only mounts.
    pub mounts: Vec<(String, String)>,
    /// Container annotations (what a device plugin's `Allocate` returns).
    pub annotations: Vec<(String, String)>,
    /// CRI `CDIDevices` names.
    pub cdi_devices: Vec<String>,
    /// Privileged container.
    pub privileged: bool,
    /// Called once the container started (e.g. `UpdateContainerResources`).
    pub after_start: Option<fn(&mut Cri, &str) -> anyhow::Result<()>>,
}

/// What a pod's container did.
#[derive(Debug, Clone)]
pub struct PodRun {
    /// Exit code.
    pub exit_code: i32,
    /// Its output lines (stdout and stderr, in order), from the CRI log.
    pub lines: Vec<String>,
    /// `CreateContainer`'s error, when it failed.
    pub create_error: Option<String>,
}

impl std::fmt::Display for PodRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit code {}", self.exit_code)?;
        if let Some(e) = &self.create_error {
            writeln!(f, "CreateContainer failed: {e}")?;
        }
        for l in &self.lines {
            writeln!(f, "| {l}")?;
        }
        Ok(())
    }
}

/// The CRI `RuntimeService` client.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    logs: PathBuf,
}

impl Cri {
    fn connect(sock: &Path, logs: PathBuf) -> anyhow::Result<Cri> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let path = sock.to_path_buf();
        let channel = rt.block_on(async move {
            tonic::transport::Endpoint::try_from("http://[::1]:50051")?
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
        })?;
        std::fs::create_dir_all(&logs)?;
        Ok(Cri {
            rt,
            client: RuntimeServiceClient::new(channel),
            logs,
        })
    }

    fn call<T>(
        &mut self,
        what: &str,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> anyhow::Result<T> {
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, f).await })
            .with_context(|| format!("{what}: no answer after {CALL_TIMEOUT:?}"))?;
        r.map(tonic::Response::into_inner)
            .map_err(|s| anyhow::anyhow!("{what}: {}", s.message()))
    }

    /// The runtime's name and version (`Version`).
    pub fn version(&mut self) -> anyhow::Result<String> {
        let mut c = self.client.clone();
        let v = self.call(
            "Version",
            c.version(cri::VersionRequest {
                version: "v1".into(),
            }),
        )?;
        Ok(format!("{} {}", v.runtime_name, v.runtime_version))
    }

    /// `UpdateContainerResources` with new CPU shares and quota.
    pub fn update_resources(&mut self, container_id: &str) -> anyhow::Result<()> {
        let mut c = self.client.clone();
        self.call(
            "UpdateContainerResources",
            c.update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: container_id.to_owned(),
                linux: Some(cri::LinuxContainerResources {
                    cpu_shares: 512,
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        )?;
        Ok(())
    }

    /// Runs a one-container pod (module docs) and removes it.
    pub fn run_pod(&mut self, spec: &PodSpec) -> anyhow::Result<PodRun> {
        let name = unique_name("pod");
        let log_dir = self.logs.join(&name);
        std::fs::create_dir_all(&log_dir)?;
        let sandbox_config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.clone(),
                uid: name.clone(),
                namespace: "e2e".into(),
                attempt: 0,
            }),
            // Host network: no UTS namespace, so no hostname (runc refuses one).
            log_directory: log_dir.display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    // A privileged container needs a privileged sandbox.
                    privileged: spec.privileged,
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        pid: cri::NamespaceMode::Pod as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = self.client.clone();
        let pod = self
            .call(
                "RunPodSandbox",
                c.run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(sandbox_config.clone()),
                    runtime_handler: spec.handler.clone(),
                }),
            )?
            .pod_sandbox_id;
        let result = self.run_container(&pod, &sandbox_config, spec);
        let mut c = self.client.clone();
        let stopped = self.call(
            "StopPodSandbox",
            c.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            }),
        );
        let mut c = self.client.clone();
        let removed = self.call(
            "RemovePodSandbox",
            c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod,
            }),
        );
        let run = result?;
        stopped?;
        removed?;
        Ok(run)
    }

    fn run_container(
        &mut self,
        pod: &str,
        sandbox_config: &cri::PodSandboxConfig,
        spec: &PodSpec,
    ) -> anyhow::Result<PodRun> {
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "main".into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: WORKLOAD_IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["/bin/sh".into(), "-c".into(), spec.script.clone()],
            envs: spec
                .env
                .iter()
                .map(|(k, v)| cri::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            mounts: spec
                .mounts
                .iter()
                .map(|(host, ctr)| cri::Mount {
                    host_path: host.clone(),
                    container_path: ctr.clone(),
                    readonly: true,
                    ..Default::default()
                })
                .collect(),
            annotations: spec.annotations.iter().cloned().collect(),
            cdi_devices: spec
                .cdi_devices
                .iter()
                .map(|n| cri::CdiDevice { name: n.clone() })
                .collect(),
            log_path: "main.log".into(),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    privileged: spec.privileged,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = self.client.clone();
        let created = self.call(
            "CreateContainer",
            c.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.to_owned(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            }),
        );
        let id = match created {
            Ok(r) => r.container_id,
            Err(e) => {
                return Ok(PodRun {
                    exit_code: -1,
                    lines: Vec::new(),
                    create_error: Some(format!("{e:#}")),
                })
            }
        };
        let mut c = self.client.clone();
        self.call(
            "StartContainer",
            c.start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            }),
        )?;
        if let Some(f) = spec.after_start {
            f(self, &id)?;
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            let mut c = self.client.clone();
            let status = self
                .call(
                    "ContainerStatus",
                    c.container_status(cri::ContainerStatusRequest {
                        container_id: id.clone(),
                        verbose: false,
                    }),
                )?
                .status
                .context("ContainerStatus without a status")?;
            if status.state == cri::ContainerState::ContainerExited as i32 {
                break status;
            }
            if Instant::now() > deadline {
                bail!("container {id} still running after {EXIT_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = std::fs::read_to_string(&status.log_path)
            .with_context(|| format!("cannot read the container log {}", status.log_path))?;
        // `<time> <stream> <P|F> <content>`.
        let lines = text
            .lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_owned))
            .collect();
        Ok(PodRun {
            exit_code: status.exit_code,
            lines,
            create_error: None,
        })
    }
}
