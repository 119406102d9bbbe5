//! The REST API (docs/v1.md §2): GET only, each route with and
//! without `/v1.0`; Go `ServeMux` exact paths, so anything else is
//! `404 page not found`; a failure is a 500 with v1's body, its cause
//! logged once here.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::v1::cli_options;
use crate::v1::{nvml, render_json, render_text};

use super::state::State;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// v1's 500 body.
pub const INTERNAL_ERROR: &str = "internal error, check logs for details\n";
/// Go's 404 body.
pub const NOT_FOUND: &str = "404 page not found\n";

/// The routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/gpu/info`.
    GpuInfo,
    /// `/gpu/info/json`.
    GpuInfoJson,
    /// `/gpu/status`.
    GpuStatus,
    /// `/gpu/status/json`.
    GpuStatusJson,
    /// `/docker/cli`.
    DockerCli,
    /// `/docker/cli/json`.
    DockerCliJson,
    /// `/mesos/cli`.
    MesosCli,
}

/// The route of a path, with or without the `/v1.0` prefix.
pub fn route(path: &str) -> Option<Route> {
    let path = path.strip_prefix("/v1.0").unwrap_or(path);
    Some(match path {
        "/gpu/info" => Route::GpuInfo,
        "/gpu/info/json" => Route::GpuInfoJson,
        "/gpu/status" => Route::GpuStatus,
        "/gpu/status/json" => Route::GpuStatusJson,
        "/docker/cli" => Route::DockerCli,
        "/docker/cli/json" => Route::DockerCliJson,
        "/mesos/cli" => Route::MesosCli,
        _ => return None,
    })
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn ok(content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, content_type, body)
}

fn internal_error(what: &str, err: &dyn std::error::Error) -> Response<Full<Bytes>> {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    log::error!("{what}: {msg}");
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        TEXT,
        Bytes::from_static(INTERNAL_ERROR.as_bytes()),
    )
}

/// `dev` and `vol` of a query (`+` and `%XX` decoded; first value wins, as
/// Go's `Values.Get`).
fn query(q: Option<&str>) -> (Option<String>, Option<String>) {
    let (mut dev, mut vol) = (None, None);
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "dev" if dev.is_none() => dev = Some(v.into_owned()),
            "vol" if vol.is_none() => vol = Some(v.into_owned()),
            _ => {}
        }
    }
    (dev, vol)
}

/// Serves one request.
pub async fn handle<B>(
    state: Arc<State>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(route) = route(req.uri().path()).filter(|_| req.method() == Method::GET) else {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            TEXT,
            Bytes::from_static(NOT_FOUND.as_bytes()),
        ));
    };
    let snap = state.snapshot();
    Ok(match route {
        Route::GpuInfo => ok(TEXT, snap.info_text.clone()),
        Route::GpuInfoJson => ok(JSON, snap.info_json.clone()),
        Route::MesosCli => ok(TEXT, snap.mesos.clone()),
        Route::GpuStatus | Route::GpuStatusJson => {
            let s = Arc::clone(&snap);
            let status = tokio::task::spawn_blocking(move || nvml::status(&s.nvml, &s.inv)).await;
            match status {
                Ok(Ok(status)) if route == Route::GpuStatus => {
                    ok(TEXT, Bytes::from(render_text::status(&status, &snap.info)))
                }
                Ok(Ok(status)) => match render_json::to_go_json(&status) {
                    Ok(body) => ok(JSON, Bytes::from(body)),
                    Err(e) => internal_error("/gpu/status/json", &e),
                },
                Ok(Err(e)) => internal_error("/gpu/status", &e),
                Err(e) => internal_error("/gpu/status", &e),
            }
        }
        Route::DockerCli | Route::DockerCliJson => {
            let json = route == Route::DockerCliJson;
            let (dev, vol) = query(req.uri().query());
            if dev.is_none() && vol.is_none() {
                return Ok(if json {
                    ok(JSON, snap.cli_json.clone())
                } else {
                    ok(TEXT, snap.cli_text.clone())
                });
            }
            let cfg = &state.config;
            match cli_options::docker_cli(
                &snap.inv,
                dev.as_deref(),
                vol.as_deref(),
                &cfg.rules,
                &cfg.paths.dev_root,
            ) {
                Ok(cli) if json => match render_json::to_go_json(&cli) {
                    Ok(body) => ok(JSON, Bytes::from(body)),
                    Err(e) => internal_error("/docker/cli/json", &e),
                },
                Ok(cli) => ok(TEXT, Bytes::from(cli_options::text(&cli))),
                Err(refusal) => respond(
                    StatusCode::BAD_REQUEST,
                    TEXT,
                    Bytes::from(format!("{refusal}\n")),
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/gpu/info"), Some(Route::GpuInfo));
        assert_eq!(route("/v1.0/gpu/info/json"), Some(Route::GpuInfoJson));
        assert_eq!(route("/v1.0/mesos/cli"), Some(Route::MesosCli));
        assert_eq!(route("/gpu/info/"), None);
        assert_eq!(route("/v1.0"), None);
        assert_eq!(route("/v1.1/gpu/info"), None);
    }

    #[test]
    fn query_values() {
        assert_eq!(
            query(Some("dev=0+1&vol=nvidia_driver&dev=2")),
            (Some("0 1".into()), Some("nvidia_driver".into()))
        );
        assert_eq!(query(Some("dev=%30")), (Some("0".into()), None));
        assert_eq!(query(None), (None, None));
    }
}
