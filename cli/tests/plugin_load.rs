//! The daemon under load: many requests over keep-alive connections on
//! loopback and on the plugin socket, a fifth of them malformed (garbage
//! request lines, bad query strings, unknown paths, broken JSON, volume
//! names with `..`). Every request gets an answer, the daemon stays up, and
//! its resident memory and open descriptors stay flat (measured after a
//! warm-up and at the end).
//!
//! `load_small` runs always (20,000 requests); `load_million` is the
//! 10^6-request run, `#[ignore]`d for CI time:
//! `cargo test -p cli --test integration plugin_load::load_million -- --ignored --nocapture`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{golden_desc, sim_host, Plugin};

/// One keep-alive connection; reconnects when the server closed it.
struct Conn<S: Read + Write> {
    connect: Box<dyn Fn() -> S>,
    stream: Option<BufReader<S>>,
}

impl<S: Read + Write> Conn<S> {
    fn new(connect: impl Fn() -> S + 'static) -> Self {
        Conn {
            connect: Box::new(connect),
            stream: None,
        }
    }

    /// Sends `req` (a whole HTTP/1.1 request), returns the status code.
    fn exchange(&mut self, req: &[u8]) -> u16 {
        for attempt in 0..2 {
            let stream = self
                .stream
                .get_or_insert_with(|| BufReader::new((self.connect)()));
            match Self::once(stream, req) {
                Ok((status, close)) => {
                    if close {
                        self.stream = None;
                    }
                    return status;
                }
                // A connection the server closed after its previous
                // answer: retry once on a fresh one.
                Err(e) => {
                    self.stream = None;
                    assert!(attempt == 0, "request failed twice: {e}");
                }
            }
        }
        unreachable!()
    }

    fn once(stream: &mut BufReader<S>, req: &[u8]) -> std::io::Result<(u16, bool)> {
        stream.get_mut().write_all(req)?;
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let (mut len, mut close) = (0usize, false);
        loop {
            line.clear();
            stream.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    len = v.parse().unwrap_or(0);
                } else if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body)?;
        Ok((status, close))
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

/// A POST with Docker's plugin `Accept` header.
fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `VmRSS` in KiB and the number of open descriptors of `pid`.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

fn load(total: usize) {
    let host = sim_host(golden_desc());
    let sockets = host.dir.path().join("plugins");
    let p = Plugin::start(&host, Path::new("/dev"), &sockets);
    let pid = p.child.id();
    // Requests by kind; every fifth is malformed.
    let tcp_requests: Vec<(Vec<u8>, u16)> = vec![
        (get("/v1.0/gpu/info/json"), 200),
        (get("/v1.0/docker/cli?dev=0&vol=nvidia_driver"), 200),
        (get("/docker/cli/json?dev=0+0&vol=nvidia_driver"), 200),
        (get("/v1.0/gpu/info"), 200),
        (get("/v1.0/docker/cli?dev=%ZZ%%&&=&vol=..%2f..&dev=0"), 0),
        (get("/v1.0/nope/../../etc/passwd"), 404),
        (get("/v1.0/docker/cli?dev=999999999999999999999"), 0),
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (get("/v1.0/mesos/cli"), 200),
        (
            format!(
                "GET /v1.0/gpu/info?{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a=b&".repeat(2000)
            )
            .into_bytes(),
            0,
        ),
    ];
    let unix_requests: Vec<(Vec<u8>, u16)> = vec![
        (post("/Plugin.Activate", ""), 200),
        (post("/VolumeDriver.List", "{}"), 200),
        (
            post("/VolumeDriver.Get", "{\"Name\":\"nvidia_driver_..\"}"),
            0,
        ),
        (post("/VolumeDriver.Get", "{\"Name\":"), 0),
        (post("/VolumeDriver.Path", "[1,2,3]"), 0),
        (
            b"POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            406,
        ),
    ];
    let addr = p.addr.clone();
    let socket = p.socket();
    let warmup = total / 10;
    let start = Instant::now();
    let threads = 4;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (addr, socket) = (addr.clone(), socket.clone());
                let (tcp_requests, unix_requests) = (&tcp_requests, &unix_requests);
                s.spawn(move || {
                    let mut tcp = Conn::new(move || TcpStream::connect(&addr).unwrap());
                    let mut unix = Conn::new(move || UnixStream::connect(&socket).unwrap());
                    let mut i = t;
                    while i < warmup {
                        send(&mut tcp, &mut unix, tcp_requests, unix_requests, i);
                        i += threads;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let (rss0, fds0) = usage(pid);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (addr, socket) = (addr.clone(), socket.clone());
                let (tcp_requests, unix_requests) = (&tcp_requests, &unix_requests);
                s.spawn(move || {
                    let mut tcp = Conn::new(move || TcpStream::connect(&addr).unwrap());
                    let mut unix = Conn::new(move || UnixStream::connect(&socket).unwrap());
                    let mut i = warmup + t;
                    while i < total {
                        send(&mut tcp, &mut unix, tcp_requests, unix_requests, i);
                        i += threads;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let took = start.elapsed();
    // Idle connections the server still holds are closed by the clients'
    // drops above; give it a moment to notice.
    std::thread::sleep(Duration::from_millis(200));
    let (rss1, fds1) = usage(pid);
    eprintln!(
        "plugin load: {total} requests in {took:.1?} ({:.0}/s); RSS {rss0} kB after warm-up, {rss1} kB at the end; open descriptors {fds0} and {fds1}",
        total as f64 / took.as_secs_f64()
    );
    assert!(p.get("/v1.0/gpu/info/json").status == 200, "still serving");
    assert!(
        rss1 <= rss0 + 8 * 1024,
        "RSS grew from {rss0} kB to {rss1} kB"
    );
    assert!(fds1 <= fds0 + 2, "descriptors grew from {fds0} to {fds1}");
    let log = p.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

fn send(
    tcp: &mut Conn<TcpStream>,
    unix: &mut Conn<UnixStream>,
    tcp_requests: &[(Vec<u8>, u16)],
    unix_requests: &[(Vec<u8>, u16)],
    i: usize,
) {
    let (req, want, got) = if i % 3 == 2 {
        let (req, want) = &unix_requests[i / 3 % unix_requests.len()];
        (req, *want, unix.exchange(req))
    } else {
        let (req, want) = &tcp_requests[i % tcp_requests.len()];
        (req, *want, tcp.exchange(req))
    };
    assert!(
        (100..600).contains(&got) && (want == 0 || got == want),
        "{:?}: status {got}, wanted {want}",
        String::from_utf8_lossy(&req[..req.len().min(80)])
    );
}

#[test]
fn load_small() {
    load(20_000);
}

#[test]
#[ignore = "10^6 requests: run on purpose (see the module doc)"]
fn load_million() {
    load(1_000_000);
}
