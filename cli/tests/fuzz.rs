//! Property-based fuzzing of what the daemon reads from the network: REST
//! paths and query strings, and the volume plugin's JSON bodies, sent to one
//! running `nvidia-docker-plugin` over loopback and its socket; plus the
//! `NV_HOST`/`DOCKER_HOST` grammar. Every request gets an HTTP answer and
//! the daemon never panics. `PROPTEST_CASES` cases per target (default 256);
//! `scripts/fuzz` runs them with large counts.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;

use proptest::prelude::*;

use crate::support::{golden_desc, sim_host, Plugin};

/// proptest's defaults (`PROPTEST_CASES` cases, 256 unless set), without
/// regression files written into the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `check` on `cases` inputs of `strategy` against one daemon started
/// for the target (and stopped after it), then checks the daemon is alive
/// and logged no panic.
fn against_daemon<S: Strategy>(
    strategy: S,
    check: impl Fn(&Plugin, S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let host = sim_host(golden_desc());
    let sockets = host.dir.path().join("plugins");
    let p = Plugin::start(&host, Path::new("/dev"), &sockets);
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let result = runner.run(&strategy, |v| check(&p, v));
    assert_eq!(p.get("/v1.0/gpu/info/json").status, 200, "{}", p.log_text());
    assert!(!p.log_text().contains("panicked"), "{}", p.log_text());
    if let Err(e) = result {
        panic!("{e}\n{}", p.log_text());
    }
}

/// Sends raw bytes, returns the status of the answer (`None`: the daemon
/// closed without one, which only garbage below the HTTP layer may get).
fn send<S: Read + Write>(mut s: S, req: &[u8]) -> Option<u16> {
    s.write_all(req).ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let line = String::from_utf8_lossy(&raw);
    line.split(' ').nth(1)?.parse().ok()
}

fn query_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,4}=[^ #\\r\\n]{0,30}(&[a-z]{0,4}=[^ #\\r\\n]{0,20}){0,4}",
        "(dev|vol)=(%[0-9A-Fa-f]{0,2}|%|\\+|[0-9]|all|\\*|nvidia_driver|\\.\\.|/|GPU-[0-9a-f]{0,4}|&|=){0,12}(&(dev|vol)=[0-9a-z+%]{0,10}){0,3}",
    ]
}

#[test]
fn rest_paths_and_queries() {
    let route = prop_oneof![
        Just("/v1.0/docker/cli"),
        Just("/v1.0/docker/cli/json"),
        Just("/docker/cli"),
        Just("/v1.0/gpu/info/json"),
        Just("/v1.0/mesos/cli"),
        Just("/v1.0/x"),
    ];
    against_daemon((route, query_text()), |p, (route, query)| {
        let req = format!("GET {route}?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let status = send(TcpStream::connect(&p.addr).unwrap(), req.as_bytes());
        prop_assert!(
            matches!(status, Some(200 | 400 | 404 | 406)),
            "{req:?}: {status:?}"
        );
        Ok(())
    });
}

#[test]
fn rest_raw_request_lines() {
    against_daemon("[^\\r\\n]{0,80}", |p, line| {
        let req = format!("{line}\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = send(TcpStream::connect(&p.addr).unwrap(), req.as_bytes());
        Ok(())
    });
}

#[test]
fn volume_json_bodies() {
    let endpoint = prop_oneof![
        Just("Create"),
        Just("Remove"),
        Just("Mount"),
        Just("Unmount"),
        Just("Path"),
        Just("Get"),
        Just("List"),
        Just("Capabilities"),
    ];
    let body = prop_oneof![
        "\\PC{0,60}",
        "\\{\"Name\":\"(nvidia_driver_|nvidia_|x_)?[0-9.]{0,8}(\\.\\.|/|%2e){0,2}[0-9.]{0,6}\"(,\"(ID|Opts)\":(\\{\\}|\"[a-z]{0,4}\"|null|[0-9]{1,3}))?\\}",
        "\\[[0-9,]{0,10}\\]|null|true|\"[a-z]{0,8}\"|[0-9e.+-]{0,12}",
    ];
    // The volume store is the simulated host's own directory.
    against_daemon((endpoint, body), |p, (endpoint, body)| {
        let req = format!(
            "POST /VolumeDriver.{endpoint} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let status = send(UnixStream::connect(p.socket()).unwrap(), req.as_bytes());
        prop_assert!(matches!(status, Some(200..=499)), "{req:?}: {status:?}");
        Ok(())
    });
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn nv_host_grammar(uri in "\\PC{0,40}", from_docker in any::<bool>()) {
        let _ = cli::shim::env::parse_host(&uri, from_docker);
    }
}
