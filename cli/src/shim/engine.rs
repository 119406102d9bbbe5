//! A small HTTP/1.1 client (hyper over a unix socket or TCP, on a
//! current-thread tokio runtime: cheap to start, nothing hand-rolled) for
//! the Docker Engine API and for a remote plugin's REST API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};

/// v1's remote timeout, also used for the engine.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl Endpoint {
    /// The Docker daemon: `-H`, else `DOCKER_HOST`, else
    /// `/var/run/docker.sock` (`unix://` and `tcp://`, without TLS).
    pub fn docker(host: Option<&str>) -> Endpoint {
        match host {
            Some(h) if h.starts_with("unix://") => {
                Endpoint::Unix(PathBuf::from(&h["unix://".len()..]))
            }
            Some(h) if h.starts_with("tcp://") => {
                Endpoint::Tcp(h["tcp://".len()..].trim_end_matches('/').to_owned())
            }
            _ => Endpoint::Unix(PathBuf::from("/var/run/docker.sock")),
        }
    }
}

/// A request that did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The runtime.
    #[error("could not start the HTTP client")]
    Runtime(#[source] std::io::Error),
    /// Connecting.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// Where.
        endpoint: Endpoint,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exchange.
    #[error("GET {path} on {endpoint}")]
    Http {
        /// Where.
        endpoint: Endpoint,
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// A bad request line (a name with odd characters).
    #[error("GET {path}: invalid request")]
    Request {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: hyper::http::Error,
    },
    /// No answer in time.
    #[error("GET {path} on {endpoint}: no answer after {TIMEOUT:?}")]
    Timeout {
        /// Where.
        endpoint: Endpoint,
        /// The path.
        path: String,
    },
    /// A body that is not what the API documents.
    #[error("GET {path}: unexpected answer")]
    Decode {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// An HTTP client bound to one endpoint.
pub struct Client {
    rt: tokio::runtime::Runtime,
    endpoint: Endpoint,
}

async fn exchange<I>(io: I, req: Request<Empty<Bytes>>) -> Result<(StatusCode, Bytes), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

impl Client {
    /// A client for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Result<Client, EngineError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(EngineError::Runtime)?;
        Ok(Client { rt, endpoint })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET path` (path and query, already encoded).
    pub fn get(&self, path: &str) -> Result<(StatusCode, Bytes), EngineError> {
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "localhost".to_owned(),
            Endpoint::Tcp(a) => a.clone(),
        };
        let req = Request::get(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, "nvidia-docker")
            .body(Empty::<Bytes>::new())
            .map_err(|source| EngineError::Request {
                path: path.to_owned(),
                source,
            })?;
        let endpoint = self.endpoint.clone();
        let fut = async move {
            let connect_err = |source| EngineError::Connect {
                endpoint: endpoint.clone(),
                source,
            };
            let r = match &endpoint {
                Endpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p)
                        .await
                        .map_err(connect_err)?;
                    exchange(s, req).await
                }
                Endpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a.as_str())
                        .await
                        .map_err(connect_err)?;
                    exchange(s, req).await
                }
            };
            r.map_err(|source| EngineError::Http {
                endpoint: endpoint.clone(),
                path: path.to_owned(),
                source,
            })
        };
        self.rt
            .block_on(async { tokio::time::timeout(TIMEOUT, fut).await })
            .map_err(|_| EngineError::Timeout {
                endpoint: self.endpoint.clone(),
                path: path.to_owned(),
            })?
    }
}

/// Percent-encodes a name for a path segment of the Engine API (image
/// references keep `/` and `:`, which the API's router accepts).
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the shim needs of an image (`GET /images/{name}/json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `Config.Env`.
    pub env: Vec<String>,
}

#[derive(Deserialize)]
struct ImageInspect {
    #[serde(rename = "Config", default)]
    config: Option<InspectConfig>,
}

#[derive(Deserialize)]
struct InspectConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
}

/// An unexpected Engine API status.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct EngineStatus {
    /// What was asked.
    pub what: String,
    /// Docker's message.
    pub message: String,
}

/// Docker's `{"message": ...}` or the raw body.
pub fn docker_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct M {
        message: String,
    }
    serde_json::from_slice::<M>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_owned())
}

/// The engine calls of the shim.
pub struct Engine {
    client: Client,
}

/// An engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineCallError {
    /// No answer.
    #[error(transparent)]
    Transport(#[from] EngineError),
    /// An error status.
    #[error(transparent)]
    Status(#[from] EngineStatus),
}

impl Engine {
    /// The engine at `endpoint`.
    pub fn new(endpoint: Endpoint) -> Result<Engine, EngineError> {
        Ok(Engine {
            client: Client::new(endpoint)?,
        })
    }

    /// The image's labels and environment; `None` when it is not there.
    pub fn image(&self, name: &str) -> Result<Option<ImageConfig>, EngineCallError> {
        let path = format!("/images/{}/json", path_segment(name));
        let (status, body) = self.client.get(&path)?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(EngineStatus {
                what: format!("inspect {name}"),
                message: docker_message(&body),
            }
            .into());
        }
        let i: ImageInspect =
            serde_json::from_slice(&body).map_err(|source| EngineError::Decode { path, source })?;
        let c = i.config.unwrap_or(InspectConfig {
            labels: None,
            env: None,
        });
        Ok(Some(ImageConfig {
            labels: c.labels.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
        }))
    }

    /// True when the volume exists (any driver).
    pub fn volume_exists(&self, name: &str) -> Result<bool, EngineCallError> {
        let (status, body) = self
            .client
            .get(&format!("/volumes/{}", path_segment(name)))?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(EngineStatus {
                what: format!("inspect volume {name}"),
                message: docker_message(&body),
            }
            .into()),
        }
    }

    /// The daemon's API version (`1.43` for Docker 24).
    pub fn api_version(&self) -> Result<(u32, u32), EngineCallError> {
        #[derive(Deserialize)]
        struct V {
            #[serde(rename = "ApiVersion")]
            api: String,
        }
        let (status, body) = self.client.get("/version")?;
        if !status.is_success() {
            return Err(EngineStatus {
                what: "version".to_owned(),
                message: docker_message(&body),
            }
            .into());
        }
        let v: V = serde_json::from_slice(&body).map_err(|source| EngineError::Decode {
            path: "/version".to_owned(),
            source,
        })?;
        let (a, b) = v.api.split_once('.').unwrap_or((&v.api, "0"));
        Ok((a.parse().unwrap_or(0), b.parse().unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_paths() {
        assert_eq!(
            Endpoint::docker(Some("unix:///tmp/d.sock")),
            Endpoint::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            Endpoint::docker(Some("tcp://1.2.3.4:2375")),
            Endpoint::Tcp("1.2.3.4:2375".into())
        );
        assert_eq!(
            Endpoint::docker(None),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(path_segment("nvidia/cuda:8.0"), "nvidia/cuda:8.0");
        assert_eq!(path_segment("a b?#"), "a%20b%3F%23");
        assert_eq!(
            docker_message(br#"{"message":"no such image"}"#),
            "no such image"
        );
    }
}
