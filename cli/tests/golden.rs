//! Golden tests: every REST body, byte for byte, against files written by
//! hand from docs/v1.md (not from this program's output) for the
//! host in `golden/host.json`: GPUs 0 and 1 with P2P on one board (Tesla K80,
//! compute 3.7), GPU 2 without P2P (A100, compute 8.0, ECC off, two
//! processes, one name with `<>&`), GPU 3 (H100, compute 9.0, minor 7) with
//! NOT_SUPPORTED fields (cores, power, temperature, ECC, encoder, PCIe
//! generation, processes, P2P, topology) and no NUMA node.
//!
//! Which section each file follows:
//! - `gpu_info.txt`: §2 "Text endpoints" (`/gpu/info` rendered example and
//!   tabwriter runs: `CPU Affinity:  NUMA node<N>`; `P2P Available` with one
//!   `<BusID> - <link>` line per peer, or `:  None` joining the Clocks run;
//!   nil → `N/A`), values per §5 (Power = limit W, BAR1 MiB, PCIe
//!   `{3:985,4:1969,5:3938}×width`, memory bandwidth `2×MHz×bits/8`).
//! - `gpu_info.json`: §2 `/gpu/info/json` (field order of v1's structs,
//!   `null`s, `Topology` null without peers, `Link` integer 6 = `Same board`,
//!   trailing newline).
//! - `gpu_status.txt`, `gpu_status.json`: §2 `/gpu/status` and §5 Status
//!   (`<used> / <total>` only when both are known, ECC errors all null when
//!   L1 is not supported, `Processes` null/`None` when none, Go's `\u003c`
//!   escaping).
//! - `docker_cli*.txt|json`: §2 `/docker/cli` (volumes before devices,
//!   control devices first, no trailing newline in text).
//! - `mesos_resources.txt`: §6 (UUIDs in NVML index order); the attribute
//!   is checked by decoding (zlib bytes differ between Go and miniz).

use base64::Engine as _;
use std::io::Read;

use crate::support::{golden, golden_desc, sim_host, Plugin};

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_body(got: &[u8], file: &str) {
    let want = golden(file);
    assert!(
        got == want.as_slice(),
        "{file} differs\n--- got ---\n{}\n--- want ---\n{}",
        show(got),
        show(&want)
    );
}

#[test]
fn rest_bodies_match_the_golden_files() {
    let host = sim_host(golden_desc());
    let sockets = host.dir.path().join("plugins");
    let plugin = Plugin::start(&host, std::path::Path::new("/dev"), &sockets);

    for prefix in ["", "/v1.0"] {
        for (path, file, json) in [
            ("/gpu/info", "gpu_info.txt", false),
            ("/gpu/info/json", "gpu_info.json", true),
            ("/gpu/status", "gpu_status.txt", false),
            ("/gpu/status/json", "gpu_status.json", true),
            ("/docker/cli", "docker_cli.txt", false),
            ("/docker/cli/json", "docker_cli.json", true),
            (
                "/docker/cli?dev=1+GPU-00c0&vol=nvidia_driver",
                "docker_cli_dev.txt",
                false,
            ),
        ] {
            let r = plugin.get(&format!("{prefix}{path}"));
            assert_eq!(r.status, 200, "{prefix}{path}: {}", r.text());
            assert_body(&r.body, file);
            let ct = r.header("content-type").unwrap_or_default();
            if json {
                assert_eq!(ct, "application/json", "{path}");
            } else {
                assert_eq!(ct, "text/plain; charset=utf-8", "{path}");
            }
        }
    }

    // /mesos/cli: the attribute decodes to the exact /gpu/info/json body.
    let r = plugin.get("/mesos/cli");
    assert_eq!(r.status, 200);
    let text = r.text();
    let (attr, resources) = text.split_once(' ').unwrap();
    assert_eq!(
        resources.as_bytes(),
        golden("mesos_resources.txt").as_slice()
    );
    let b64 = attr.strip_prefix("--attributes=gpus:").unwrap();
    assert!(!b64.contains('=') && !b64.contains('+') && !b64.contains('/'));
    let z = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .unwrap();
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(&z[..])
        .read_to_end(&mut json)
        .unwrap();
    assert_body(&json, "gpu_info.json");
}

#[test]
fn rest_errors_are_v1s() {
    let host = sim_host(golden_desc());
    let sockets = host.dir.path().join("plugins");
    let plugin = Plugin::start(&host, std::path::Path::new("/dev"), &sockets);
    for (path, status, body) in [
        ("/docker/cli?dev=4", 400, "invalid device: 4\n"),
        (
            "/docker/cli/json?dev=0+GPU-ffff",
            400,
            "invalid device: GPU-ffff\n",
        ),
        (
            "/v1.0/docker/cli?vol=nvidia_foo",
            400,
            "invalid volume: nvidia_foo\n",
        ),
        ("/gpu/info/", 404, "404 page not found\n"),
        ("/v2.0/gpu/info", 404, "404 page not found\n"),
        ("/", 404, "404 page not found\n"),
    ] {
        let r = plugin.get(path);
        assert_eq!((r.status, r.text().as_str()), (status, body), "{path}");
    }
    let r = crate::support::http(
        std::net::TcpStream::connect(&plugin.addr).unwrap(),
        "POST",
        "/gpu/info",
        &[],
        "",
    );
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found\n"));
}
