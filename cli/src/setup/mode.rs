//! Hook mode or wrapper mode: which one `setup` configures, and why.
//!
//! A GPU container gets its devices one of two ways:
//! - **hook mode**: the prestart hook (`docker run --gpus`, Podman's and
//!   CRI-O's `hooks.d`) creates the nodes and allows them in the container's
//!   device cgroup after the runtime has set it up. The spec never names them.
//! - **wrapper mode**: the runc wrapper (`nvidia-docker-runtime`) writes the
//!   devices and their allow rules into the spec before runc reads it.
//!
//! With the **systemd cgroup driver** each container runs in a systemd scope
//! whose `DeviceAllow=` list runc builds from the spec. systemd re-applies
//! that list whenever it reloads (`systemctl daemon-reload`; package upgrades
//! run it), replacing the scope's device program: devices a hook allowed are
//! denied from then on, and CUDA reports "Failed to initialize NVML: Unknown
//! Error" hours after the start. Devices in the spec are in `DeviceAllow=`
//! and survive. So with that driver `setup` chooses wrapper mode: the wrapper
//! becomes the engine's default runtime, and GPU requests that would have
//! gone through the hook (`--gpus`, `NVIDIA_VISIBLE_DEVICES`) go through the
//! wrapper instead (the hook then leaves the container alone: it carries the
//! wrapper's annotation). A container that asks for no GPU passes through
//! the wrapper untouched. `--mode hook|wrapper` overrides the choice.
//!
//! Where the driver is read:
//! - Docker: the Engine API's `GET /info` `CgroupDriver` on the daemon's
//!   socket, and `exec-opts` `native.cgroupdriver=...` in `daemon.json`
//!   (what dockerd runs with after the restart `setup` asks for); either
//!   saying systemd is enough. Neither: dockerd's default, systemd on a
//!   cgroup v2 host running systemd, else cgroupfs.
//! - containerd: `SystemdCgroup = true` in the `options` of a runtime of the
//!   CRI plugin (config versions 1 to 3), or version 1's `systemd_cgroup`.
//! - CRI-O and Podman: their `cgroup_manager` ([`super::cgroup_manager`]).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{DocumentMut, Item};

use super::cgroup_manager;

/// How long the Engine API may take to answer `GET /info`.
pub const ENGINE_API_TIMEOUT: Duration = Duration::from_secs(5);
/// dockerd's socket when neither `--docker-host` nor `DOCKER_HOST` names one.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ModeChoice {
    /// Wrapper mode when the engine uses the systemd cgroup driver, else hook mode.
    #[default]
    Auto,
    /// GPU containers through the prestart hook (`--gpus`, hooks.d); the
    /// wrapper registered under its name only.
    Hook,
    /// The wrapper as the engine's default runtime.
    Wrapper,
}

/// A cgroup driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// systemd scopes (`DeviceAllow=` re-applied at daemon-reload).
    Systemd,
    /// Plain cgroupfs writes (a hook's grants stay).
    Cgroupfs,
}

impl CgroupDriver {
    fn parse(s: &str) -> CgroupDriver {
        if s.trim() == "systemd" {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        }
    }

    fn name(self) -> &'static str {
        match self {
            CgroupDriver::Systemd => "systemd",
            CgroupDriver::Cgroupfs => "cgroupfs",
        }
    }
}

/// An engine's cgroup driver and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// `docker`, `containerd`, `CRI-O`, `podman`.
    pub engine: &'static str,
    /// The driver.
    pub driver: CgroupDriver,
    /// Where it came from (`CgroupDriver "systemd" from the Engine API at ...`).
    pub because: String,
}

/// The mode chosen, and the one line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Wrapper mode: make the wrapper the default runtime.
    pub wrapper: bool,
    /// The line `setup` prints (no newline).
    pub line: String,
}

/// The mode for `detected` under `choice`; `default_setting` names what
/// wrapper mode sets (`default-runtime "nvidia"` in daemon.json).
pub fn decide(choice: ModeChoice, detected: &Detected, default_setting: &str) -> Decision {
    let Detected {
        engine,
        driver,
        because,
    } = detected;
    let drv = driver.name();
    let (wrapper, line) = match (choice, driver) {
        (ModeChoice::Auto, CgroupDriver::Systemd) => (
            true,
            format!(
                "mode: wrapper ({default_setting}): {engine} uses the systemd cgroup driver ({because}), and \
                 systemctl daemon-reload drops devices a hook allowed (\"Failed to initialize NVML: Unknown \
                 Error\"); --mode hook to leave the default runtime alone"
            ),
        ),
        (ModeChoice::Auto, CgroupDriver::Cgroupfs) => (
            false,
            format!(
                "mode: hook (default runtime unchanged): {engine} uses the cgroupfs cgroup driver ({because}), \
                 which keeps devices a hook allowed; --mode wrapper to make the wrapper the default runtime"
            ),
        ),
        (ModeChoice::Wrapper, _) => (
            true,
            format!("mode: wrapper ({default_setting}), as asked ({engine} uses the {drv} cgroup driver: {because})"),
        ),
        (ModeChoice::Hook, CgroupDriver::Cgroupfs) => (
            false,
            format!("mode: hook (default runtime unchanged), as asked ({engine} uses the cgroupfs cgroup driver: {because})"),
        ),
        (ModeChoice::Hook, CgroupDriver::Systemd) => (
            false,
            format!(
                "mode: hook (default runtime unchanged), as asked; warning: {engine} uses the systemd \
                 cgroup driver ({because}): GPU containers not started with the wrapper lose their devices at \
                 the next systemctl daemon-reload (\"Failed to initialize NVML: Unknown Error\")"
            ),
        ),
    };
    Decision { wrapper, line }
}

/// The socket named by `--docker-host` or `DOCKER_HOST` (`unix://PATH` or a
/// path), else [`DEFAULT_DOCKER_SOCKET`]; `None` for a TCP host (not asked).
pub fn docker_socket(host: Option<&str>) -> Option<PathBuf> {
    match host.map(str::trim).filter(|h| !h.is_empty()) {
        None => Some(PathBuf::from(DEFAULT_DOCKER_SOCKET)),
        Some(h) => match h.strip_prefix("unix://") {
            Some(p) => Some(PathBuf::from(p)),
            None if h.starts_with('/') => Some(PathBuf::from(h)),
            None => None,
        },
    }
}

/// Asks the Engine API at `socket` for `GET /info` and returns its
/// `CgroupDriver` (HTTP/1.0, so the daemon answers without chunking and
/// closes the connection).
pub fn engine_api_cgroup_driver(socket: &Path) -> std::io::Result<String> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(ENGINE_API_TIMEOUT))?;
    s.set_write_timeout(Some(ENGINE_API_TIMEOUT))?;
    s.write_all(b"GET /info HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(4 << 20).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no HTTP header".into()))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(bad(format!("answered {status:?}")));
    }
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| bad(format!("GET /info: {e}")))?;
    v.get("CgroupDriver")
        .and_then(|d| d.as_str())
        .map(str::to_owned)
        .ok_or_else(|| bad("GET /info has no CgroupDriver".into()))
}

/// Docker's cgroup driver (module docs). `socket`: the Engine API to ask
/// (`None`: not asked); `daemon_json`: the file and its content; `root`: the
/// host root for dockerd's default (`/`).
pub fn docker(socket: Option<&Path>, daemon_json: (&Path, Option<&str>), root: &Path) -> Detected {
    let mut found: Vec<(CgroupDriver, String)> = Vec::new();
    if let Some(sock) = socket {
        match engine_api_cgroup_driver(sock) {
            Ok(d) => found.push((
                CgroupDriver::parse(&d),
                format!(
                    "CgroupDriver {d:?} from the Engine API at {}",
                    sock.display()
                ),
            )),
            Err(e) => log::debug!("Engine API at {}: {e}", sock.display()),
        }
    }
    let (path, text) = daemon_json;
    let opts: Option<serde_json::Value> = text.and_then(|t| serde_json::from_str(t).ok());
    let exec_opt = opts
        .as_ref()
        .and_then(|v| v.get("exec-opts"))
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .rev()
        .filter_map(|o| o.as_str())
        .find_map(|o| {
            let (k, v) = o.split_once('=')?;
            (k.trim() == "native.cgroupdriver").then(|| v.trim().to_owned())
        });
    if let Some(d) = exec_opt {
        found.push((
            CgroupDriver::parse(&d),
            format!("exec-opts native.cgroupdriver={d} in {}", path.display()),
        ));
    }
    let pick = found
        .iter()
        .find(|(d, _)| *d == CgroupDriver::Systemd)
        .or(found.first())
        .cloned();
    let (driver, because) = pick.unwrap_or_else(|| {
        let v2 = root.join("sys/fs/cgroup/cgroup.controllers").exists();
        let systemd = root.join("run/systemd/system").is_dir();
        if v2 && systemd {
            (
                CgroupDriver::Systemd,
                "dockerd's default on a cgroup v2 host running systemd".to_owned(),
            )
        } else {
            (
                CgroupDriver::Cgroupfs,
                "dockerd's default on a host without cgroup v2 and systemd".to_owned(),
            )
        }
    });
    Detected {
        engine: "docker",
        driver,
        because,
    }
}

/// containerd's cgroup driver, from its configuration files (the main file
/// and a drop-in), each `(path, content)`.
pub fn containerd(files: &[(&Path, Option<&str>)]) -> Detected {
    for (path, text) in files {
        let Some(doc) = text.and_then(|t| t.parse::<DocumentMut>().ok()) else {
            continue;
        };
        if let Some(found) = containerd_systemd(&doc) {
            return Detected {
                engine: "containerd",
                driver: CgroupDriver::Systemd,
                because: format!("{found} in {}", path.display()),
            };
        }
    }
    let shown: Vec<String> = files
        .iter()
        .filter(|(_, t)| t.is_some())
        .map(|(p, _)| p.display().to_string())
        .collect();
    let because = if shown.is_empty() {
        "no configuration file: containerd's default".to_owned()
    } else {
        format!(
            "no runtime sets SystemdCgroup = true in {}: containerd's default",
            shown.join(", ")
        )
    };
    Detected {
        engine: "containerd",
        driver: CgroupDriver::Cgroupfs,
        because,
    }
}

/// The first setting in `doc` that puts containerd's runc on systemd, as text.
fn containerd_systemd(doc: &DocumentMut) -> Option<String> {
    let plugins = doc.get("plugins")?;
    for plugin in [
        "cri",
        "io.containerd.grpc.v1.cri",
        "io.containerd.cri.v1.runtime",
    ] {
        let Some(cri) = plugins.get(plugin) else {
            continue;
        };
        if plugin == "cri" && cri.get("systemd_cgroup").and_then(Item::as_bool) == Some(true) {
            return Some("systemd_cgroup = true in plugins.cri".to_owned());
        }
        let Some(runtimes) = cri
            .get("containerd")
            .and_then(|c| c.get("runtimes"))
            .and_then(Item::as_table_like)
        else {
            continue;
        };
        for (name, rt) in runtimes.iter() {
            if rt
                .get("options")
                .and_then(|o| o.get("SystemdCgroup"))
                .and_then(Item::as_bool)
                == Some(true)
            {
                return Some(format!(
                    "SystemdCgroup = true in plugins.{plugin:?}.containerd.runtimes.{name}.options"
                ));
            }
        }
    }
    None
}

/// CRI-O's cgroup manager under `root`.
pub fn crio(root: &Path) -> Detected {
    let (value, because) = cgroup_manager::crio_setting(root);
    Detected {
        engine: "CRI-O",
        driver: CgroupDriver::parse(&value),
        because,
    }
}

/// Podman's cgroup manager under `root`.
pub fn podman(root: &Path) -> Detected {
    let (value, because) = cgroup_manager::podman_setting(root);
    Detected {
        engine: "podman",
        driver: CgroupDriver::parse(&value),
        because,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_engine_api(answer: &'static str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = listener.accept() {
                let mut req = [0u8; 1024];
                let n = c.read(&mut req).unwrap_or(0);
                assert!(req[..n].starts_with(b"GET /info HTTP/1.0\r\n"));
                let _ = c.write_all(answer.as_bytes());
            }
        });
        (dir, sock)
    }

    #[test]
    fn docker_from_the_engine_api() {
        let (_d, sock) = fake_engine_api(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ID\":\"x\",\"CgroupDriver\":\"systemd\",\"CgroupVersion\":\"2\"}\n",
        );
        let root = tempfile::tempdir().unwrap();
        let d = docker(Some(&sock), (Path::new("/d.json"), None), root.path());
        assert_eq!(d.driver, CgroupDriver::Systemd);
        assert_eq!(
            d.because,
            format!(
                "CgroupDriver \"systemd\" from the Engine API at {}",
                sock.display()
            )
        );
        let (_d, sock) = fake_engine_api("HTTP/1.0 200 OK\r\n\r\n{\"CgroupDriver\":\"cgroupfs\"}");
        let d = docker(Some(&sock), (Path::new("/d.json"), None), root.path());
        assert_eq!(d.driver, CgroupDriver::Cgroupfs);
        // The file says systemd: that is what dockerd runs with after its restart.
        let (_d, sock) = fake_engine_api("HTTP/1.0 200 OK\r\n\r\n{\"CgroupDriver\":\"cgroupfs\"}");
        let d = docker(
            Some(&sock),
            (
                Path::new("/d.json"),
                Some(r#"{"exec-opts": ["native.cgroupdriver=systemd"]}"#),
            ),
            root.path(),
        );
        assert_eq!(
            (d.driver, d.because.as_str()),
            (
                CgroupDriver::Systemd,
                "exec-opts native.cgroupdriver=systemd in /d.json"
            )
        );
    }

    #[test]
    fn engine_api_errors() {
        let (_d, sock) = fake_engine_api("HTTP/1.0 500 Internal Server Error\r\n\r\n{}");
        let e = engine_api_cgroup_driver(&sock).unwrap_err();
        assert_eq!(
            e.to_string(),
            "answered \"HTTP/1.0 500 Internal Server Error\""
        );
        let (_d, sock) = fake_engine_api("HTTP/1.0 200 OK\r\n\r\n{\"ID\":\"x\"}");
        let e = engine_api_cgroup_driver(&sock).unwrap_err();
        assert_eq!(e.to_string(), "GET /info has no CgroupDriver");
        assert!(engine_api_cgroup_driver(Path::new("/nonexistent/docker.sock")).is_err());
    }

    #[test]
    fn docker_defaults() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let none = (Path::new("/d.json"), None);
        let d = docker(Some(&r.join("absent.sock")), none, r);
        assert_eq!(d.driver, CgroupDriver::Cgroupfs);
        std::fs::create_dir_all(r.join("sys/fs/cgroup")).unwrap();
        std::fs::write(r.join("sys/fs/cgroup/cgroup.controllers"), "devices\n").unwrap();
        assert_eq!(docker(None, none, r).driver, CgroupDriver::Cgroupfs);
        std::fs::create_dir_all(r.join("run/systemd/system")).unwrap();
        let d = docker(None, none, r);
        assert_eq!(
            (d.driver, d.because.as_str()),
            (
                CgroupDriver::Systemd,
                "dockerd's default on a cgroup v2 host running systemd"
            )
        );
        let file = (
            Path::new("/d.json"),
            Some(r#"{"exec-opts": ["native.cgroupdriver = cgroupfs"]}"#),
        );
        assert_eq!(docker(None, file, r).driver, CgroupDriver::Cgroupfs);
    }

    #[test]
    fn docker_sockets() {
        assert_eq!(
            docker_socket(None),
            Some(PathBuf::from(DEFAULT_DOCKER_SOCKET))
        );
        assert_eq!(
            docker_socket(Some("unix:///run/d.sock")),
            Some(PathBuf::from("/run/d.sock"))
        );
        assert_eq!(docker_socket(Some("tcp://10.0.0.1:2375")), None);
    }

    #[test]
    fn containerd_settings() {
        let p = Path::new("/etc/containerd/config.toml");
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n    SystemdCgroup = true\n";
        let d = containerd(&[(p, Some(v2))]);
        assert_eq!(
            (d.driver, d.because.as_str()),
            (
                CgroupDriver::Systemd,
                "SystemdCgroup = true in plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options in /etc/containerd/config.toml"
            )
        );
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\nSystemdCgroup = true\n";
        assert_eq!(containerd(&[(p, Some(v3))]).driver, CgroupDriver::Systemd);
        let v1 = "[plugins.cri]\nsystemd_cgroup = true\n";
        assert_eq!(containerd(&[(p, Some(v1))]).driver, CgroupDriver::Systemd);
        let off = v2.replace("true", "false");
        let d = containerd(&[(p, Some(&off)), (Path::new("/d.toml"), None)]);
        assert_eq!(
            (d.driver, d.because.as_str()),
            (
                CgroupDriver::Cgroupfs,
                "no runtime sets SystemdCgroup = true in /etc/containerd/config.toml: containerd's default"
            )
        );
        // A drop-in can carry it.
        let d = containerd(&[(p, Some(&off)), (Path::new("/d.toml"), Some(v3))]);
        assert!(d.because.ends_with(" in /d.toml"), "{}", d.because);
    }

    #[test]
    fn decisions_say_why_in_one_line() {
        let sd = Detected {
            engine: "docker",
            driver: CgroupDriver::Systemd,
            because: "exec-opts native.cgroupdriver=systemd in /etc/docker/daemon.json".into(),
        };
        let what = "default-runtime \"nvidia\"";
        let d = decide(ModeChoice::Auto, &sd, what);
        assert!(d.wrapper);
        assert_eq!(
            d.line,
            "mode: wrapper (default-runtime \"nvidia\"): docker uses the systemd cgroup driver (exec-opts \
             native.cgroupdriver=systemd in /etc/docker/daemon.json), and systemctl daemon-reload drops \
             devices a hook allowed (\"Failed to initialize NVML: Unknown Error\"); --mode hook to leave the \
             default runtime alone"
        );
        let d = decide(ModeChoice::Hook, &sd, what);
        assert!(!d.wrapper);
        assert!(
            d.line
                .contains("warning: docker uses the systemd cgroup driver"),
            "{}",
            d.line
        );
        let fs = Detected {
            driver: CgroupDriver::Cgroupfs,
            because: "dockerd's default on a host without cgroup v2 and systemd".into(),
            ..sd
        };
        let d = decide(ModeChoice::Auto, &fs, what);
        assert!(!d.wrapper);
        assert_eq!(
            d.line,
            "mode: hook (default runtime unchanged): docker uses the cgroupfs cgroup driver (dockerd's \
             default on a host without cgroup v2 and systemd), which keeps devices a hook allowed; --mode \
             wrapper to make the wrapper the default runtime"
        );
        assert!(decide(ModeChoice::Wrapper, &fs, what).wrapper);
        for c in [ModeChoice::Auto, ModeChoice::Hook, ModeChoice::Wrapper] {
            for det in [&sd, &fs] {
                assert!(!decide(c, det, what).line.contains('\n'));
            }
        }
    }
}
