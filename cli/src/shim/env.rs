//! The shim's environment (docs/v1.md §1): `NV_DOCKER`, `NV_GPU`,
//! `NV_HOST`/`DOCKER_HOST`, and the setting that hands GPUs to a registered
//! hook instead (`NV_DOCKER_HOOK`). Parsed before anything else, as v1 did.

/// `NV_DOCKER`.
pub const ENV_NV_DOCKER: &str = "NV_DOCKER";
/// `NV_GPU`.
pub const ENV_NV_GPU: &str = "NV_GPU";
/// `NV_HOST`.
pub const ENV_NV_HOST: &str = "NV_HOST";
/// `DOCKER_HOST`.
pub const ENV_DOCKER_HOST: &str = "DOCKER_HOST";
/// `NV_DOCKER_HOOK`: `runtime=<name>` or `gpus`.
pub const ENV_NV_DOCKER_HOOK: &str = "NV_DOCKER_HOOK";

/// v1's default REST port.
pub const DEFAULT_HTTP_PORT: u16 = 3476;

/// A bad variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// v1's message for a host that does not match the grammar.
    #[error("invalid remote host URI")]
    InvalidHost,
    /// `NV_DOCKER` is empty after splitting.
    #[error("NV_DOCKER is empty")]
    EmptyDocker,
    /// `NV_DOCKER_HOOK` has an unknown value.
    #[error("invalid NV_DOCKER_HOOK={0:?}: expected runtime=<name> or gpus")]
    BadHookMode(String),
}

/// Where the REST API of a remote plugin is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// `http://host:port`.
    Http {
        /// Host (brackets kept for IPv6).
        host: String,
        /// Port.
        port: u16,
    },
    /// v1's SSH tunnel: `ssh` to `host:ssh_port` as `user`, then
    /// `localhost:http_port`.
    Ssh {
        /// The SSH user (`$USER` by default).
        user: Option<String>,
        /// Host.
        host: String,
        /// SSH port (22).
        ssh_port: u16,
        /// The plugin's port on the remote host.
        http_port: u16,
    },
}

/// How GPUs are given when a hook is registered with the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookMode {
    /// `--runtime=<name>` plus `NVIDIA_VISIBLE_DEVICES`.
    Runtime(String),
    /// `--gpus` (the hook on dockerd's `PATH`).
    Gpus,
}

/// The parsed environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimEnv {
    /// The docker command and its prefix arguments (`NV_DOCKER`, `docker`).
    pub docker: Vec<String>,
    /// `NV_GPU` ids (spaces and/or commas; empty fields dropped); `None`
    /// when unset.
    pub nv_gpu: Option<String>,
    /// Remote mode.
    pub remote: Option<Remote>,
    /// `NV_DOCKER_HOOK`.
    pub hook: Option<HookMode>,
    /// Warnings to print (v1's `NV_HOST is set but DOCKER_HOST is not`).
    pub warnings: Vec<String>,
}

fn port(s: &str) -> Result<u16, EnvError> {
    s.parse().map_err(|_| EnvError::InvalidHost)
}

/// v1's host grammar `[(http|ssh)://][<user>@][<host>][:<ssh-port>]:[<http-port>]`
/// (regex `^(\[[0-9a-f.:]+\]|[0-9A-Za-z.\-_]+)?(:\d+)?:(\d+)?$`, the colon
/// mandatory), `tcp://` when no scheme; `from_docker_host` forces the HTTP
/// port to 3476. `Ok(None)`: a `unix://` host, i.e. local mode.
pub fn parse_host(uri: &str, from_docker_host: bool) -> Result<Option<Remote>, EnvError> {
    let (scheme, rest) = match uri.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("tcp", uri),
    };
    if scheme == "unix" {
        return Ok(None);
    }
    let (user, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) if scheme == "ssh" => (Some(u.to_owned()), h),
        Some(_) => return Err(EnvError::InvalidHost),
        None => (None, rest),
    };
    // Host: `[v6]` or `[0-9A-Za-z._-]+`, optional.
    let (host, tail) = if let Some(r) = hostpart.strip_prefix('[') {
        let end = r.find(']').ok_or(EnvError::InvalidHost)?;
        let inner = &r[..end];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'.' || b == b':')
        {
            return Err(EnvError::InvalidHost);
        }
        (&hostpart[..end + 2], &r[end + 1..])
    } else {
        let end = hostpart
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
            .unwrap_or(hostpart.len());
        (&hostpart[..end], &hostpart[end..])
    };
    // Tail: `(:\d+)?:(\d+)?` exactly.
    let tail = tail.strip_prefix(':').ok_or(EnvError::InvalidHost)?;
    let parts: Vec<&str> = tail.split(':').collect();
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let (first, http) = match parts.as_slice() {
        [http] => (None, *http),
        [first, http] if !first.is_empty() => (Some(*first), *http),
        _ => return Err(EnvError::InvalidHost),
    };
    if !all_digits(http) || first.is_some_and(|f| !all_digits(f)) {
        return Err(EnvError::InvalidHost);
    }
    let host = if host.is_empty() { "localhost" } else { host }.to_owned();
    let http_port = if http.is_empty() || from_docker_host {
        DEFAULT_HTTP_PORT
    } else {
        port(http)?
    };
    match scheme {
        "tcp" | "http" => Ok(Some(Remote::Http {
            host,
            port: http_port,
        })),
        "ssh" => Ok(Some(Remote::Ssh {
            user,
            host,
            ssh_port: first.map_or(Ok(22), port)?,
            http_port,
        })),
        _ => Err(EnvError::InvalidHost),
    }
}

impl ShimEnv {
    /// Parses the environment through `get`.
    pub fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<ShimEnv, EnvError> {
        let docker: Vec<String> = match get(ENV_NV_DOCKER) {
            Some(v) if !v.trim().is_empty() => v.split_whitespace().map(str::to_owned).collect(),
            Some(_) => return Err(EnvError::EmptyDocker),
            None => vec!["docker".to_owned()],
        };
        let mut warnings = Vec::new();
        let nv_host = get(ENV_NV_HOST).filter(|v| !v.is_empty());
        let docker_host = get(ENV_DOCKER_HOST).filter(|v| !v.is_empty());
        if nv_host.is_some() && docker_host.is_none() {
            warnings.push("NV_HOST is set but DOCKER_HOST is not".to_owned());
        }
        let remote = match (nv_host, docker_host) {
            (Some(h), _) => parse_host(&h, false)?,
            (None, Some(h)) => parse_host(&h, true)?,
            (None, None) => None,
        };
        let hook = match get(ENV_NV_DOCKER_HOOK).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) if v == "gpus" => Some(HookMode::Gpus),
            Some(v) => match v.strip_prefix("runtime=") {
                Some(name) if !name.is_empty() => Some(HookMode::Runtime(name.to_owned())),
                _ => return Err(EnvError::BadHookMode(v)),
            },
        };
        Ok(ShimEnv {
            docker,
            nv_gpu: get(ENV_NV_GPU),
            remote,
            hook,
            warnings,
        })
    }

    /// `NV_GPU` split as v1 did (spaces and/or commas, empty fields dropped).
    pub fn gpu_ids(&self) -> Vec<String> {
        self.nv_gpu
            .as_deref()
            .unwrap_or_default()
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(host: &str, port: u16) -> Option<Remote> {
        Some(Remote::Http {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn v1_verified_examples() {
        // docs/v1.md §1 "Verified".
        assert_eq!(
            parse_host("tcp://10.0.0.1:2376", true),
            Ok(http("10.0.0.1", 3476))
        );
        assert_eq!(parse_host("10.0.0.1:", true), Ok(http("10.0.0.1", 3476)));
        assert_eq!(parse_host("10.0.0.1", true), Err(EnvError::InvalidHost));
        assert_eq!(
            parse_host("http://10.0.0.1", false),
            Err(EnvError::InvalidHost)
        );
        assert_eq!(
            parse_host("10.0.0.1:1234", false),
            Ok(http("10.0.0.1", 1234))
        );
        assert_eq!(
            parse_host("ssh://foo@10.0.0.1:22:80", false),
            Ok(Some(Remote::Ssh {
                user: Some("foo".into()),
                host: "10.0.0.1".into(),
                ssh_port: 22,
                http_port: 80
            }))
        );
        assert_eq!(
            parse_host("ssh://ubuntu@1.2.3.4:", false),
            Ok(Some(Remote::Ssh {
                user: Some("ubuntu".into()),
                host: "1.2.3.4".into(),
                ssh_port: 22,
                http_port: 3476
            }))
        );
        assert_eq!(parse_host("unix:///var/run/docker.sock", true), Ok(None));
        assert_eq!(parse_host(":", false), Ok(http("localhost", 3476)));
        assert_eq!(parse_host("[::1]:3477", false), Ok(http("[::1]", 3477)));
        assert_eq!(parse_host("ftp://x:1", false), Err(EnvError::InvalidHost));
        assert_eq!(parse_host("a b:1", false), Err(EnvError::InvalidHost));
    }

    #[test]
    fn environment() {
        let e = ShimEnv::parse(&|k| match k {
            "NV_DOCKER" => Some("sudo docker -D".into()),
            "NV_GPU" => Some("0, 1 ,,2".into()),
            "NV_HOST" => Some("localhost:3477".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(e.docker, ["sudo", "docker", "-D"]);
        assert_eq!(e.gpu_ids(), ["0", "1", "2"]);
        assert_eq!(e.remote, http("localhost", 3477));
        assert_eq!(e.warnings, ["NV_HOST is set but DOCKER_HOST is not"]);
        let e =
            ShimEnv::parse(&|k| (k == "NV_DOCKER_HOOK").then(|| "runtime=nvidia".into())).unwrap();
        assert_eq!(e.hook, Some(HookMode::Runtime("nvidia".into())));
        assert_eq!(e.docker, ["docker"]);
        assert!(ShimEnv::parse(&|k| (k == "DOCKER_HOST").then(|| "10.0.0.1".into())).is_err());
    }
}
