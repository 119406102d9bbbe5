//! The Docker volume plugin protocol (docs/v1.md §3, docs/v1.md §3):
//! POST only (else 404), `Accept` must be a `application/vnd.docker.plugins.v1*`
//! JSON type (moby sends `…v1.2+json`; v1 also accepted `…v1.1+json`) else
//! 406; replies are `application/vnd.docker.plugins.v1+json`. Logical
//! errors are HTTP 200 with `{"Err":"<msg>: <name>"}`; file-system failures
//! a 500 with the cause logged.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::v1::render_json::to_go_json;

use super::rest::{INTERNAL_ERROR, NOT_FOUND};
use super::state::State;
use super::volumes_store::VolumeError;

/// The reply type.
pub const PLUGIN_MIME: &str = "application/vnd.docker.plugins.v1+json";
/// Request bodies are small; anything bigger is refused.
const MAX_BODY: usize = 64 * 1024;

/// True for the `Accept` values Docker sends.
pub fn accept_ok(accept: &str) -> bool {
    accept.split(',').any(|a| {
        let a = a.split(';').next().unwrap_or_default().trim();
        a.strip_prefix("application/vnd.docker.plugins.v1")
            .is_some_and(|rest| rest.ends_with("+json"))
    })
}

#[derive(Debug, Default, Deserialize)]
struct NameRequest {
    #[serde(rename = "Name", default)]
    name: String,
}

#[derive(Serialize)]
struct ErrReply {
    #[serde(rename = "Err")]
    err: Option<String>,
}

#[derive(Serialize)]
struct MountReply {
    #[serde(rename = "Mountpoint")]
    mountpoint: Option<String>,
    #[serde(rename = "Err")]
    err: Option<String>,
}

#[derive(Serialize)]
struct VolumeEntry {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Mountpoint")]
    mountpoint: String,
}

#[derive(Serialize)]
struct GetReply {
    #[serde(rename = "Volume")]
    volume: Option<VolumeEntry>,
    #[serde(rename = "Err")]
    err: Option<String>,
}

#[derive(Serialize)]
struct ListReply {
    #[serde(rename = "Volumes")]
    volumes: Option<Vec<VolumeEntry>>,
    #[serde(rename = "Err")]
    err: Option<String>,
}

fn reply<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = to_go_json(value).unwrap_or_else(|_| b"{}\n".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PLUGIN_MIME));
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// A logical error as `{"Err":..}` (200), a failure as a 500.
fn failed<T: Serialize>(
    err: VolumeError,
    what: &str,
    logical: impl FnOnce(String) -> T,
) -> Response<Full<Bytes>> {
    if err.is_logical() {
        return reply(StatusCode::OK, &logical(err.to_string()));
    }
    let mut msg = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    log::error!("{what}: {msg}");
    plain(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(f).await
}

/// Serves one plugin request.
pub async fn handle<B>(
    state: Arc<State>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_owned();
    let known = matches!(
        path.as_str(),
        "/Plugin.Activate"
            | "/VolumeDriver.Create"
            | "/VolumeDriver.Remove"
            | "/VolumeDriver.Mount"
            | "/VolumeDriver.Path"
            | "/VolumeDriver.Unmount"
            | "/VolumeDriver.Get"
            | "/VolumeDriver.List"
            | "/VolumeDriver.Capabilities"
    );
    if !known || req.method() != Method::POST {
        return Ok(plain(StatusCode::NOT_FOUND, NOT_FOUND));
    }
    let accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !accept_ok(&accept) {
        log::warn!("Unsupported plugin API {accept}");
        return Ok(plain(
            StatusCode::NOT_ACCEPTABLE,
            "unsupported plugin API\n",
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                &ErrReply {
                    err: Some("request body too large or unreadable".to_owned()),
                },
            ))
        }
    };
    let name = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        match serde_json::from_slice::<NameRequest>(&body) {
            Ok(r) => r.name,
            Err(e) => {
                return Ok(reply(
                    StatusCode::BAD_REQUEST,
                    &ErrReply {
                        err: Some(format!("invalid request: {e}")),
                    },
                ))
            }
        }
    };
    let st = Arc::clone(&state);
    Ok(match path.as_str() {
        "/Plugin.Activate" => {
            log::info!("Received activate request");
            log::info!("Plugins activated [VolumeDriver]");
            #[derive(Serialize)]
            struct Activate {
                #[serde(rename = "Implements")]
                implements: [&'static str; 1],
            }
            reply(
                StatusCode::OK,
                &Activate {
                    implements: ["VolumeDriver"],
                },
            )
        }
        "/VolumeDriver.Capabilities" => {
            #[derive(Serialize)]
            struct Scope {
                #[serde(rename = "Scope")]
                scope: &'static str,
            }
            #[derive(Serialize)]
            struct Caps {
                #[serde(rename = "Capabilities")]
                capabilities: Scope,
            }
            reply(
                StatusCode::OK,
                &Caps {
                    capabilities: Scope { scope: "local" },
                },
            )
        }
        "/VolumeDriver.Create" => {
            log::info!("Received create request for volume '{name}'");
            let r = blocking(move || {
                let snap = st.snapshot();
                let wanted_other = super::volumes_store::parse_name(&name)
                    .is_ok_and(|n| n.version != snap.inv.driver_version.as_str());
                if wanted_other {
                    // A driver upgrade: pick it up now, not at the next poll.
                    if let Err(e) = st.refresh() {
                        log::warn!("could not re-read the inventory: {e}");
                    }
                }
                st.volumes.create(&name, &st.snapshot().inv)
            })
            .await;
            match r {
                Ok(Ok(_)) => reply(StatusCode::OK, &ErrReply { err: None }),
                Ok(Err(e)) => failed(e, "VolumeDriver.Create", |m| ErrReply { err: Some(m) }),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR),
            }
        }
        "/VolumeDriver.Remove" => {
            log::info!("Received remove request for volume '{name}'");
            match blocking(move || st.volumes.remove(&name)).await {
                Ok(Ok(())) => reply(StatusCode::OK, &ErrReply { err: None }),
                Ok(Err(e)) => failed(e, "VolumeDriver.Remove", |m| ErrReply { err: Some(m) }),
                Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR),
            }
        }
        "/VolumeDriver.Mount" | "/VolumeDriver.Path" => {
            log::info!("Received mount request for volume '{name}'");
            match st.volumes.path(&name) {
                Ok(p) => reply(
                    StatusCode::OK,
                    &MountReply {
                        mountpoint: Some(show(&p)),
                        err: None,
                    },
                ),
                Err(e) => failed(e, "VolumeDriver.Mount", |m| MountReply {
                    mountpoint: None,
                    err: Some(m),
                }),
            }
        }
        "/VolumeDriver.Unmount" => {
            log::info!("Received unmount request for volume '{name}'");
            match super::volumes_store::parse_name(&name) {
                Ok(_) => reply(StatusCode::OK, &ErrReply { err: None }),
                Err(e) => failed(e, "VolumeDriver.Unmount", |m| ErrReply { err: Some(m) }),
            }
        }
        "/VolumeDriver.Get" => match st.volumes.path(&name) {
            Ok(p) => reply(
                StatusCode::OK,
                &GetReply {
                    volume: Some(VolumeEntry {
                        name,
                        mountpoint: show(&p),
                    }),
                    err: None,
                },
            ),
            Err(e) => failed(e, "VolumeDriver.Get", |m| GetReply {
                volume: None,
                err: Some(m),
            }),
        },
        _ => match blocking(move || st.volumes.list()).await {
            Ok(Ok(list)) => {
                let volumes: Vec<VolumeEntry> = list
                    .into_iter()
                    .map(|(name, p)| VolumeEntry {
                        name,
                        mountpoint: show(&p),
                    })
                    .collect();
                reply(
                    StatusCode::OK,
                    &ListReply {
                        volumes: (!volumes.is_empty()).then_some(volumes),
                        err: None,
                    },
                )
            }
            Ok(Err(e)) => failed(e, "VolumeDriver.List", |m| ListReply {
                volumes: None,
                err: Some(m),
            }),
            Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_values() {
        assert!(accept_ok("application/vnd.docker.plugins.v1.2+json"));
        assert!(accept_ok("application/vnd.docker.plugins.v1.1+json"));
        assert!(accept_ok("application/vnd.docker.plugins.v1+json"));
        assert!(!accept_ok("application/json"));
        assert!(!accept_ok(""));
    }
}
