//! The issue 6 benchmarks (ignored by default; run alone, release build):
//!
//! ```text
//! cargo build --release --workspace
//! cargo test --release -p e2e --test integration v1_bench -- --ignored --nocapture
//! ```
//!
//! - `nvidia-docker run --rm img true` vs `docker run --rm <the same
//!   options> img true` (whole process, hyperfine, median of each; the
//!   shim's added median must be at most 10 ms);
//! - `nvidia-docker cli-options` from a warm inventory (under 5 ms);
//! - the REST API under `wrk` over loopback: `/gpu/info/json` at least
//!   20,000 requests/s and `/gpu/status/json` at least 5,000, p99 reported.

use std::process::Command;

use crate::v1_docker::V1Setup;

fn hyperfine(commands: &[String], runs: u32, env: &[(String, String)]) -> Vec<(f64, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("h.json");
    let mut cmd = Command::new("hyperfine");
    cmd.args([
        "-N",
        "--warmup",
        "5",
        "--runs",
        &runs.to_string(),
        "--export-json",
    ])
    .arg(&json)
    .args(commands);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("hyperfine");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["median"].as_f64().unwrap() * 1e3,
                r["mean"].as_f64().unwrap() * 1e3,
            )
        })
        .collect()
}

/// (requests/s, p99 latency text) from `wrk --latency`.
fn wrk(url: &str) -> (f64, String) {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", "-d10s", "--latency", url])
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let non2xx = text.lines().find(|l| l.contains("Non-2xx"));
    assert!(non2xx.is_none(), "{text}");
    (rps, p99)
}

#[test]
#[ignore = "benchmark: run alone with --release --ignored"]
fn v1_bench() {
    let Some(s) = V1Setup::start() else {
        return;
    };
    let img = "v1e2e/cuda:8.0";
    // Create the volume once, so both sides mount an existing volume.
    let o = s.run(&["run", "--rm", img, "true"], &[]);
    assert_eq!(o.code, Some(0), "{}", s.context(&o));

    // The options the shim injects, for plain docker.
    let o = s.run(&["cli-options"], &[]);
    assert_eq!(o.code, Some(0), "{}", s.context(&o));
    let opts: Vec<String> = o
        .stdout
        .split(' ')
        .filter(|w| !w.starts_with("--volume-driver"))
        .map(str::to_owned)
        .collect();
    let env: Vec<(String, String)> = s
        .command(&s.shim)
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    let shim = format!("{} run --rm {img} true", s.shim.display());
    let docker = format!("docker run --rm {} {img} true", opts.join(" "));
    let r = hyperfine(&[shim.clone(), docker.clone()], 30, &env);
    let added = r[0].0 - r[1].0;
    println!("BENCH run: nvidia-docker median {:.1} ms (mean {:.1}); docker median {:.1} ms (mean {:.1}); added median {added:.1} ms", r[0].0, r[0].1, r[1].0, r[1].1);

    let cli = format!("{} cli-options", s.shim.display());
    let r2 = hyperfine(&[cli], 200, &env);
    println!(
        "BENCH cli-options: median {:.2} ms (mean {:.2})",
        r2[0].0, r2[0].1
    );

    let (info_rps, info_p99) = wrk(&format!("http://{}/gpu/info/json", s.addr));
    println!("BENCH /gpu/info/json: {info_rps:.0} req/s, p99 {info_p99}");
    let (status_rps, status_p99) = wrk(&format!("http://{}/gpu/status/json", s.addr));
    println!("BENCH /gpu/status/json: {status_rps:.0} req/s, p99 {status_p99}");

    assert!(added <= 10.0, "shim adds {added:.1} ms");
    assert!(r2[0].0 < 5.0, "cli-options {:.2} ms", r2[0].0);
    assert!(info_rps >= 20_000.0, "/gpu/info/json {info_rps:.0} req/s");
    assert!(
        status_rps >= 5_000.0,
        "/gpu/status/json {status_rps:.0} req/s"
    );
}
