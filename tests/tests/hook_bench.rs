//! The hook's cost on the create path (ignored by default; run with
//! `cargo test -p e2e --test integration -- --ignored hook_bench --nocapture`,
//! with `E2E_HOOK_BINARY=target/release/nvidia-docker-hook` for release
//! figures, `E2E_BENCH_RUNS` to change the number of runs).
//!
//! Whole process, one run: `runc run` of a trivial container (`/bin/true`,
//! Debian rootfs, cgroup v1) at 1, 8 and 64 GPUs, four bundles interleaved
//! so that all see the same machine:
//!
//! - **no-op**: `NVIDIA_VISIBLE_DEVICES=all`, prestart hook `/bin/true`;
//! - **hook**: the same with the hook;
//! - **hook, no ldconfig**: the same image without `/etc/ld.so.conf`, where
//!   the linker-cache step ends before running `ldconfig` (what is left of
//!   it is a fork, a `setns` and a `chroot`);
//! - **fast path**: the hook, no `NVIDIA_VISIBLE_DEVICES` (not a GPU
//!   container: one read of `config.json`).
//!
//! Every prestart hook (the no-op too) runs under a `bash` wrapper that
//! records the hook process's wall time (`$EPOCHREALTIME` before and after
//! fork, exec, run, exit and reaping). Two tables:
//!
//! 1. `runc run` wall time, medians, ratio hook / no-op and the difference.
//!    (The steps of about 10 ms once seen here were the harness's own
//!    10 ms `try_wait` poll, not runc: `docs/start-cost.md`.)
//! 2. The hook process's wall time, medians: the added time (hook minus
//!    the no-op `/bin/true`), `ldconfig`'s share (hook minus hook without
//!    `ldconfig`), the added time without it, and the fast path's.
//!
//! Then, from a few more runs with the debug log on (which slows the hook),
//! the hook's own step timings. Nothing is asserted: timings on a shared
//! machine are for reading, not for failing.
use std::collections::BTreeMap;
use std::path::Path;

use e2e::hook::SimHost;
use e2e::stats::{median, ms};
use e2e::{require, runc_run, Bundle, CgroupVersion, Hook, HookStage, Prereq, Variant};

/// `timing: <step> <us> us` lines of the hook's debug log, per step, in ms.
fn step_timings(log: &str) -> BTreeMap<String, Vec<f64>> {
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("timing: ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let [step, us, "us"] = f[..] {
            if let Ok(us) = us.parse::<f64>() {
                steps.entry(step.to_owned()).or_default().push(us / 1000.0);
            }
        }
    }
    steps
}

fn time(bundle: &Bundle) -> f64 {
    let out = runc_run(bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    ms(out.elapsed)
}

/// Wraps `hook` so that its process wall time is appended to `log`.
fn timed(hook: &Hook, log: &Path) -> Hook {
    const SCRIPT: &str = r#"a=$EPOCHREALTIME; "$@"; rc=$?; b=$EPOCHREALTIME; echo "$a $b" >> "$E2E_BENCH_LOG"; exit $rc"#;
    let mut args = vec!["bash", "-c", SCRIPT, "--"];
    let path = hook.path.to_string_lossy().into_owned();
    args.push(&path);
    args.extend(hook.args.iter().skip(1).map(String::as_str));
    let mut wrapped = Hook::new("/bin/bash", &args);
    wrapped.env = hook.env.clone();
    wrapped.env("E2E_BENCH_LOG", log.to_string_lossy())
}

/// The durations (ms) recorded by [`timed`].
fn process_times(log: &Path) -> Vec<f64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((b.parse::<f64>().ok()? - a.parse::<f64>().ok()?) * 1000.0)
        })
        .collect()
}

#[test]
#[ignore = "benchmark: prints figures, asserts nothing"]
fn hook_bench() {
    require!(Prereq::Runc, Prereq::CgroupV1, Prereq::Tool("bash"));
    let runs: usize = std::env::var("E2E_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let binary = e2e::hook::hook_binary().unwrap();
    println!(
        "hook benchmark: `runc run` of /bin/true (Debian rootfs, cgroup v1, NVIDIA_VISIBLE_DEVICES=all), \
         {runs} runs of each bundle, interleaved; medians in ms\nhook: {}",
        binary.display()
    );
    let mut runc_table = vec![format!(
        "{:>4}  {:>7}  {:>7}  {:>6}  {:>6}",
        "GPUs", "no-op", "hook", "ratio", "added"
    )];
    let mut process_table = vec![format!(
        "{:>4}  {:>6}  {:>6}  {:>6}  {:>6}  {:>8}  {:>14}  {:>9}  {:>10}",
        "GPUs",
        "no-op",
        "hook",
        "ratio",
        "added",
        "ldconfig",
        "added-ldconfig",
        "fast-path",
        "fast-added"
    )];
    let mut steps_table = Vec::new();
    for gpus in [1, 8, 64] {
        let host = SimHost::synthetic(gpus).unwrap();
        let logs = tempfile::tempdir().unwrap();
        let log = |name: &str| logs.path().join(name);
        let gpu = || {
            Bundle::builder(Variant::Debian)
                .args(&["/bin/true"])
                .env("NVIDIA_VISIBLE_DEVICES", "all")
        };
        let hook = host.prestart_hook().unwrap();
        let no_op = gpu()
            .hook(
                HookStage::Prestart,
                &timed(&Hook::new("/bin/true", &["true"]), &log("no-op")),
            )
            .build()
            .unwrap();
        let with_hook = gpu()
            .hook(HookStage::Prestart, &timed(&hook, &log("hook")))
            .build()
            .unwrap();
        let no_ld = gpu()
            .hook(HookStage::Prestart, &timed(&hook, &log("no-ld")))
            .build()
            .unwrap();
        std::fs::remove_file(no_ld.rootfs().join("etc/ld.so.conf")).unwrap();
        let fast = Bundle::builder(Variant::Debian)
            .args(&["/bin/true"])
            .hook(HookStage::Prestart, &timed(&hook, &log("fast")))
            .build()
            .unwrap();
        let bundles = [&no_op, &with_hook, &no_ld, &fast];
        // Warm up (the first hook run discovers and writes the snapshot),
        // then forget the warm-up's process times.
        for b in bundles {
            time(b);
            time(b);
        }
        for name in ["no-op", "hook", "no-ld", "fast"] {
            std::fs::write(log(name), "").unwrap();
        }
        let mut t: [Vec<f64>; 4] = Default::default();
        for _ in 0..runs {
            for (i, b) in bundles.into_iter().enumerate() {
                t[i].push(time(b));
            }
        }
        let [noop, hook_ms] = [&t[0], &t[1]].map(|v| median(v));
        runc_table.push(format!(
            "{gpus:>4}  {noop:>7.2}  {hook_ms:>7.2}  {:>6.3}  {:>6.2}",
            hook_ms / noop,
            hook_ms - noop
        ));
        let [p_noop, p_hook, p_no_ld, p_fast] =
            ["no-op", "hook", "no-ld", "fast"].map(|n| median(&process_times(&log(n))));
        process_table.push(format!(
            "{gpus:>4}  {p_noop:>6.2}  {p_hook:>6.2}  {:>6.2}  {:>6.2}  {:>8.2}  {:>14.2}  {p_fast:>9.2}  {:>10.2}",
            p_hook / p_noop,
            p_hook - p_noop,
            p_hook - p_no_ld,
            p_no_ld - p_noop,
            p_fast - p_noop,
        ));
        // The hook's own view, with the debug log on (which slows it).
        host.enable_debug_log().unwrap();
        for _ in 0..7 {
            time(&with_hook);
        }
        let steps = step_timings(&std::fs::read_to_string(host.debug_log()).unwrap());
        let m = |name: &str| steps.get(name).map_or(f64::NAN, |v| median(v));
        steps_table.push(format!(
            "{gpus:>4}  read {:.2}  inventory {:.2}  plan {:.2}  cgroup {:.2}  apply {:.2}  ldconfig {:.2}  total {:.2}",
            m("read"),
            m("inventory"),
            m("plan"),
            m("cgroup"),
            m("apply"),
            m("ldconfig"),
            m("total")
        ));
    }
    println!("`runc run` wall time:");
    runc_table.iter().for_each(|l| println!("{l}"));
    println!("the prestart hook process's wall time (no-op = /bin/true; ldconfig = hook minus hook in an image without /etc/ld.so.conf):");
    process_table.iter().for_each(|l| println!("{l}"));
    println!("the hook's own step timings (debug log on, 7 runs):");
    steps_table.iter().for_each(|l| println!("{l}"));
}
