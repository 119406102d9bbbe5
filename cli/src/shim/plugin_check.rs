//! Is the `nvidia-docker` volume plugin there for dockerd to use?
//!
//! Without it, `docker run --volume-driver=nvidia-docker` fails in a way
//! that misleads: dockerd's "volume plugin not found" reaches the docker
//! client as a not-found, which it takes for a missing image
//! (`Unable to find image '<image>' locally`, then a failed pull). So the
//! shim looks first, where dockerd looks for legacy plugins
//! (docs.docker.com "plugin discovery"): a socket
//! `/run/docker/plugins/nvidia-docker.sock` (or
//! `/run/docker/plugins/nvidia-docker/nvidia-docker.sock`), else a spec file
//! `nvidia-docker.spec` or `.json` in `/etc/docker/plugins` or
//! `/usr/lib/docker/plugins` naming a `unix://` or `tcp://` address; it
//! must accept a connection.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::v1::cli_options::VOLUME_DRIVER;

/// The directories dockerd searches (sockets, then specs).
#[derive(Debug, Clone)]
pub struct PluginDirs {
    /// Where sockets are (`/run/docker/plugins`).
    pub sockets: PathBuf,
    /// Where spec files are, in dockerd's order.
    pub specs: Vec<PathBuf>,
}

impl Default for PluginDirs {
    fn default() -> PluginDirs {
        PluginDirs {
            sockets: PathBuf::from("/run/docker/plugins"),
            specs: vec![
                PathBuf::from("/etc/docker/plugins"),
                PathBuf::from("/usr/lib/docker/plugins"),
            ],
        }
    }
}

/// The plugin is not reachable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PluginMissing {
    /// No socket or spec anywhere.
    #[error("the {VOLUME_DRIVER} volume plugin is not running (no {} and no {VOLUME_DRIVER}.spec in {}): start nvidia-docker-plugin (systemctl start nvidia-docker-plugin), or let a registered hook give the GPUs (NV_DOCKER_HOOK=runtime=nvidia or NV_DOCKER_HOOK=gpus)", socket.display(), dirs.join(" or "))]
    Absent {
        /// The socket looked for.
        socket: PathBuf,
        /// The spec directories looked in.
        dirs: Vec<String>,
    },
    /// Found but nobody answers (a stale socket, a stopped daemon).
    #[error("the {VOLUME_DRIVER} volume plugin at {address} (from {}) does not answer: start nvidia-docker-plugin (systemctl start nvidia-docker-plugin), or let a registered hook give the GPUs (NV_DOCKER_HOOK=runtime=nvidia or NV_DOCKER_HOOK=gpus)", from.display())]
    NotAnswering {
        /// The address tried.
        address: String,
        /// The socket or spec file it came from.
        from: PathBuf,
    },
}

/// Where dockerd would reach the plugin: `(address, found in)`.
fn locate(dirs: &PluginDirs) -> Option<(String, PathBuf)> {
    for sock in [
        dirs.sockets.join(format!("{VOLUME_DRIVER}.sock")),
        dirs.sockets
            .join(VOLUME_DRIVER)
            .join(format!("{VOLUME_DRIVER}.sock")),
    ] {
        if sock.exists() {
            return Some((format!("unix://{}", sock.display()), sock));
        }
    }
    for dir in &dirs.specs {
        for ext in ["spec", "json"] {
            let file = dir.join(format!("{VOLUME_DRIVER}.{ext}"));
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let address = if ext == "json" {
                serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["Addr"].as_str().map(str::to_owned))
                    .unwrap_or_default()
            } else {
                text.trim().to_owned()
            };
            return Some((address, file));
        }
    }
    None
}

fn answers(address: &str) -> bool {
    const TIMEOUT: Duration = Duration::from_secs(2);
    if let Some(path) = address.strip_prefix("unix://") {
        return std::os::unix::net::UnixStream::connect(Path::new(path)).is_ok();
    }
    let hostport = address.strip_prefix("tcp://").unwrap_or(address);
    let hostport = hostport.trim_end_matches('/');
    use std::net::ToSocketAddrs;
    hostport.to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| std::net::TcpStream::connect_timeout(&a, TIMEOUT).is_ok())
    })
}

/// `Ok` when dockerd can reach the plugin.
pub fn check(dirs: &PluginDirs) -> Result<(), PluginMissing> {
    match locate(dirs) {
        None => Err(PluginMissing::Absent {
            socket: dirs.sockets.join(format!("{VOLUME_DRIVER}.sock")),
            dirs: dirs.specs.iter().map(|d| d.display().to_string()).collect(),
        }),
        Some((address, from)) if !answers(&address) => {
            Err(PluginMissing::NotAnswering { address, from })
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> PluginDirs {
        PluginDirs {
            sockets: root.join("run"),
            specs: vec![root.join("etc"), root.join("lib")],
        }
    }

    #[test]
    fn absent_stale_and_running() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirs(tmp.path());
        let e = check(&d).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the nvidia-docker volume plugin is not running (no {0}/run/nvidia-docker.sock and no nvidia-docker.spec in {0}/etc or {0}/lib): start nvidia-docker-plugin (systemctl start nvidia-docker-plugin), or let a registered hook give the GPUs (NV_DOCKER_HOOK=runtime=nvidia or NV_DOCKER_HOOK=gpus)",
                tmp.path().display()
            )
        );
        // A spec naming a socket nobody listens on.
        std::fs::create_dir_all(tmp.path().join("lib")).unwrap();
        let sock = tmp.path().join("p.sock");
        std::fs::write(
            tmp.path().join("lib/nvidia-docker.spec"),
            format!("unix://{}\n", sock.display()),
        )
        .unwrap();
        assert!(matches!(
            check(&d).unwrap_err(),
            PluginMissing::NotAnswering { .. }
        ));
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        check(&d).unwrap();
        // A socket in the sockets directory comes first; a stale one fails.
        std::fs::create_dir_all(tmp.path().join("run")).unwrap();
        let stale = tmp.path().join("run/nvidia-docker.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let e = check(&d).unwrap_err();
        assert!(e.to_string().contains("does not answer"), "{e}");
        // A JSON spec with a TCP address.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std::fs::remove_file(&stale).unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/nvidia-docker.json"),
            format!(
                r#"{{"Name":"nvidia-docker","Addr":"tcp://{}"}}"#,
                tcp.local_addr().unwrap()
            ),
        )
        .unwrap();
        check(&d).unwrap();
    }
}
