//! Remote mode (docs/v1.md §1): the plugin's REST API on another
//! host. `GET /gpu/info/json` for the CUDA check, then
//! `GET /docker/cli?vol=..&dev=..` whose body is split on spaces and
//! inserted verbatim. Unlike v1, the HTTP status is checked: a 400 body is
//! an error message, never options.

use serde::Deserialize;

use rules::request::LABEL_CUDA_VERSION;
use rules::require::{parse_v1_cuda_label, v1_cuda_supported};
use rules::Refusal;

use super::engine::{Client, Endpoint, EngineError, ImageConfig};

/// A remote call failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No answer.
    #[error(transparent)]
    Transport(#[from] EngineError),
    /// The plugin refused (its 4xx/5xx body).
    #[error("{message}")]
    Status {
        /// The body, trimmed.
        message: String,
    },
    /// The CUDA check.
    #[error(transparent)]
    Refusal(#[from] Refusal),
}

#[derive(Deserialize)]
struct Info {
    #[serde(rename = "Version")]
    version: VersionInfo,
}

#[derive(Deserialize)]
struct VersionInfo {
    #[serde(rename = "CUDA")]
    cuda: String,
}

fn get_ok(client: &Client, path: &str) -> Result<bytes::Bytes, RemoteError> {
    let (status, body) = client.get(path)?;
    if !status.is_success() {
        return Err(RemoteError::Status {
            message: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    Ok(body)
}

/// The options from the plugin at `host:port`.
pub fn options(
    addr: &str,
    image: &ImageConfig,
    gpu_ids: &[String],
) -> Result<Vec<String>, RemoteError> {
    let client = Client::new(Endpoint::Tcp(addr.to_owned()))?;
    if let Some(label) = image
        .labels
        .get(LABEL_CUDA_VERSION)
        .filter(|l| !l.is_empty())
    {
        let body = get_ok(&client, "/gpu/info/json")?;
        let info: Info = serde_json::from_slice(&body).map_err(|source| EngineError::Decode {
            path: "/gpu/info/json".to_owned(),
            source,
        })?;
        let have = parse_v1_cuda_label(&info.version.cuda).unwrap_or((0, 0));
        let want = parse_v1_cuda_label(label).ok_or_else(|| Refusal::BadCudaLabel {
            label: label.clone(),
        })?;
        if !v1_cuda_supported(want, have) {
            return Err(Refusal::V1CudaUnsupported {
                driver_cuda: format!("{}.{}", have.0, have.1),
                label: label.clone(),
            }
            .into());
        }
    }
    let vols: Vec<&str> = image
        .labels
        .get(rules::request::LABEL_VOLUMES_NEEDED)
        .map(|v| v.split_whitespace().collect())
        .filter(|v: &Vec<&str>| !v.is_empty())
        .unwrap_or_else(|| vec!["nvidia_driver"]);
    let enc = |s: String| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let path = format!(
        "/docker/cli?vol={}&dev={}",
        enc(vols.join(" ")),
        enc(gpu_ids.join(" "))
    );
    let body = get_ok(&client, &path)?;
    Ok(String::from_utf8_lossy(&body)
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}
