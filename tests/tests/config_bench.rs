//! Benchmark (ignored by default): `runc run` through the wrapper vs plain
//! runc given the very spec the wrapper writes (the same devices, rules,
//! mounts and `createRuntime` fix-ups, "done by hand"), on a simulated
//! 8-GPU host with `NVIDIA_VISIBLE_DEVICES=all`. The difference of the
//! medians is what the wrapper adds: reading the bundle, the inventory
//! snapshot, the plan, the rewrite and one more `exec`. Printed, never
//! asserted (timings depend on the machine). A second measure isolates the
//! wrapper: `create` with `/bin/true` as the real runtime vs `/bin/true`.
//!
//! `cargo test -p e2e --test integration config_bench -- --ignored --nocapture`
//! (add `E2E_HOOK_BINARY=target/release/nvidia-docker-hook` after
//! `cargo build --release -p hook` for release binaries; the wrapper is
//! taken from beside the hook).
use std::time::Duration;

use e2e::hook::SimHost;
use e2e::stats::{median, ms};
use e2e::{require, runc_run, Bundle, CgroupVersion, Prereq, Variant};

use crate::config_common::wrapped_runc_run;

const ROUNDS: usize = 60;

/// The median of `v` in milliseconds.
fn median_ms(v: &[Duration]) -> f64 {
    median(&v.iter().copied().map(ms).collect::<Vec<_>>())
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn wrapper_overhead_8_gpus() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(8).unwrap();
    let mut bundle = Bundle::builder(Variant::Debian)
        .args(&["/bin/true"])
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .build()
        .unwrap();
    let original = std::fs::read(bundle.config_path()).unwrap();
    // Warm-up: the inventory snapshot is written, page cache filled; the
    // spec it leaves is the "by hand" one.
    wrapped_runc_run(&host, &bundle, CgroupVersion::V1)
        .unwrap()
        .assert_success();
    let edited = std::fs::read(bundle.config_path()).unwrap();
    let mut by_hand = Bundle::builder(Variant::Debian).build().unwrap();
    by_hand
        .edit_config(|c| *c = serde_json::from_slice(&edited).unwrap())
        .unwrap();

    let (mut wrapped, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        std::fs::write(bundle.config_path(), &original).unwrap();
        let out = wrapped_runc_run(&host, &bundle, CgroupVersion::V1).unwrap();
        out.assert_success();
        assert_ne!(
            std::fs::read(bundle.config_path()).unwrap(),
            original,
            "the wrapper rewrote the spec"
        );
        wrapped.push(out.elapsed);
        let out = runc_run(&by_hand, CgroupVersion::V1).unwrap();
        out.assert_success();
        plain.push(out.elapsed);
    }
    bundle
        .edit_config(|c| *c = serde_json::from_slice(&original).unwrap())
        .unwrap();
    // The wrapper alone: `create` on the same bundle with /bin/true as the
    // "real runtime", vs /bin/true itself (no runc noise).
    let (mut alone, mut tru) = (Vec::new(), Vec::new());
    let env = crate::config_common::wrapper_env(&host).unwrap();
    for _ in 0..ROUNDS {
        std::fs::write(bundle.config_path(), &original).unwrap();
        let mut cmd = e2e::process::command(crate::config_common::wrapper_binary().unwrap());
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .env("NVIDIA_DOCKER_RUNTIMES", "/bin/true")
            .args(["create", "--bundle"])
            .arg(bundle.path())
            .arg("bench");
        let out = e2e::process::run_timeout(&mut cmd, Duration::from_secs(20)).unwrap();
        out.assert_success();
        alone.push(out.elapsed);
        let mut cmd = e2e::process::command("/bin/true");
        let out = e2e::process::run_timeout(&mut cmd, Duration::from_secs(20)).unwrap();
        tru.push(out.elapsed);
    }
    let (a, t) = (median_ms(&alone), median_ms(&tru));
    println!(
        "config_bench: wrapper create alone (exec /bin/true) median {a:.2} ms vs /bin/true {t:.2} ms: added {:.2} ms",
        a - t
    );
    let (w, p) = (median_ms(&wrapped), median_ms(&plain));
    println!(
        "config_bench: runc run, 8 GPUs, {ROUNDS} rounds: wrapper median {w:.2} ms, plain runc (same spec) median {p:.2} ms, added {:.2} ms, ratio {:.3}",
        w - p,
        w / p
    );
}
