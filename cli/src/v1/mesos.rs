//! `GET /mesos/cli` (docs/v1.md §6):
//! `--attributes=gpus:<A> --resources=gpus:{<uuid>,...}` with no trailing
//! newline, `<A>` the exact `/gpu/info/json` body (trailing `\n` included),
//! zlib-compressed at the default level and URL-safe base64 without padding.
//!
//! The compressed bytes are not Go's bit for bit (Go's deflate and miniz
//! choose different matches); what decodes is identical.

use std::io::Write;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::info::GpuInfo;

/// The `/mesos/cli` body for an info document and its JSON body.
pub fn render(info: &GpuInfo, info_json: &[u8]) -> String {
    let mut z = ZlibEncoder::new(Vec::with_capacity(info_json.len()), Compression::default());
    // Writing into a Vec cannot fail.
    let compressed = z
        .write_all(info_json)
        .and_then(|()| z.finish())
        .unwrap_or_default();
    let uuids: Vec<&str> = info
        .devices
        .iter()
        .flatten()
        .map(|d| d.uuid.as_str())
        .collect();
    format!(
        "--attributes=gpus:{} --resources=gpus:{{{}}}",
        URL_SAFE_NO_PAD.encode(compressed),
        uuids.join(",")
    )
}
