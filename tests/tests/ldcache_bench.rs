//! Benchmark (ignored by default): what a GPU container's start costs with
//! the linker cache included, as same-run pairs on a simulated 8-GPU host
//! (Debian rootfs, cgroup v1, `NVIDIA_VISIBLE_DEVICES=all`, `/bin/true`).
//! Each round runs, interleaved:
//!
//! - **no-op**: `runc run` with `/bin/true` as the prestart hook;
//! - **hook**: the same with the hook (`linker-cache = "hook"`, the
//!   default: the cache written in-process);
//! - **hook, again**: the same bundle started again without restoring its
//!   cache, as `docker start` does: the cache is already the one to write
//!   and is left alone;
//! - **hook+ldconfig**: the hook with `linker-cache = "ldconfig"`;
//! - **wrapper**: `runc run` through the runc wrapper (no hook; the wrapper
//!   writes the devices and cgroup rules into the spec, its
//!   `createRuntime` step makes the driver mounts and writes the cache).
//!   The bundle's original spec is written back before each run, as an
//!   engine writes a new bundle for each container: a spec the wrapper
//!   already rewrote would be passed through without planning.
//!
//! The order of the variants is shuffled each round
//! ([`e2e::stats::round_order`]): a start pays part of the teardown of the
//! container before it, so no variant may always follow the same one. Before each run but the "again" one, the image's own
//! `/etc/ld.so.cache` is written back (in place, outside the timing), so
//! every other start is a first start that writes a new cache.
//!
//! Measured per run: wall time (`Output::elapsed`) and the CPU time (user +
//! system) of the whole `runc run` process tree, from `getrusage(
//! RUSAGE_CHILDREN)` before and after (every process of the tree is reaped
//! within it). Printed: total CPU of each variant and its ratio to the
//! no-op's, the median of the per-round CPU differences to the no-op,
//! median wall time and the median of the per-round wall differences.
//! Nothing is asserted.
//!
//! `cargo test -p e2e --test integration ldcache_bench -- --ignored --nocapture`
//! (`E2E_BENCH_RUNS` rounds, default 40; `E2E_HOOK_BINARY` for release
//! binaries).
use std::time::Duration;

use e2e::hook::SimHost;
use e2e::stats::{median, ms, round_order};
use e2e::{require, runc_run, Bundle, CgroupVersion, Hook, HookStage, Output, Prereq, Variant};

use crate::config_common::wrapped_runc_run;

fn children_cpu() -> Duration {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct it is
    // given; both outlive the call.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// (wall ms, CPU ms) of one run.
fn measure(run: impl FnOnce() -> anyhow::Result<Output>) -> (f64, f64) {
    let before = children_cpu();
    let out = run().unwrap();
    let cpu = children_cpu() - before;
    out.assert_success();
    (ms(out.elapsed), ms(cpu))
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn linker_cache_bench_8_gpus() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let runs: usize = std::env::var("E2E_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let in_process = SimHost::synthetic(8).unwrap();
    let sealed = SimHost::synthetic(8).unwrap();
    sealed
        .write_config("[nvidia-container-cli]\nlinker-cache = \"ldconfig\"\n")
        .unwrap();
    let gpu = || {
        Bundle::builder(Variant::Debian)
            .args(&["/bin/true"])
            .env("NVIDIA_VISIBLE_DEVICES", "all")
    };
    let no_op = gpu()
        .hook(HookStage::Prestart, &Hook::new("/bin/true", &["true"]))
        .build()
        .unwrap();
    let hook = gpu()
        .hook(HookStage::Prestart, &in_process.prestart_hook().unwrap())
        .build()
        .unwrap();
    let hook_ld = gpu()
        .hook(HookStage::Prestart, &sealed.prestart_hook().unwrap())
        .build()
        .unwrap();
    let again = gpu()
        .hook(HookStage::Prestart, &in_process.prestart_hook().unwrap())
        .build()
        .unwrap();
    let plain = gpu().build().unwrap();
    let cache = |b: &Bundle| b.rootfs().join("etc/ld.so.cache");
    let image_cache = std::fs::read(cache(&plain)).unwrap();
    // The image's cache back in place: the same inode, rewritten.
    let fresh = |b: &Bundle| std::fs::write(cache(b), &image_cache).unwrap();
    let spec = plain.path().join("config.json");
    let plain_spec = std::fs::read(&spec).unwrap();
    let names = ["no-op", "hook", "hook, again", "hook+ldconfig", "wrapper"];
    let run = |i: usize| match i {
        0 => measure(|| runc_run(&no_op, CgroupVersion::V1)),
        1 => {
            fresh(&hook);
            measure(|| runc_run(&hook, CgroupVersion::V1))
        }
        2 => measure(|| runc_run(&again, CgroupVersion::V1)),
        3 => {
            fresh(&hook_ld);
            measure(|| runc_run(&hook_ld, CgroupVersion::V1))
        }
        _ => {
            fresh(&plain);
            std::fs::write(&spec, &plain_spec).unwrap();
            measure(|| wrapped_runc_run(&in_process, &plain, CgroupVersion::V1))
        }
    };
    // Warm-up: snapshots written, page cache filled.
    for i in 0..names.len() {
        run(i);
        run(i);
    }
    let mut wall: [Vec<f64>; 5] = Default::default();
    let mut cpu: [Vec<f64>; 5] = Default::default();
    for round in 0..runs {
        for i in round_order(names.len(), round) {
            let (w, c) = run(i);
            wall[i].push(w);
            cpu[i].push(c);
        }
    }
    let total = |i: usize| cpu[i].iter().sum::<f64>();
    println!(
        "linker cache benchmark: 8 simulated GPUs, Debian rootfs, cgroup v1, /bin/true, {runs} rounds, same-run pairs"
    );
    println!(
        "{:<14} {:>12} {:>9} {:>15} {:>12} {:>10} {:>16}",
        "variant",
        "CPU total ms",
        "CPU/no-op",
        "median CPU diff",
        "median wall",
        "wall/no-op",
        "median wall diff"
    );
    // Per-round differences against the no-op of the same round: less
    // moved by one slow round than the totals are.
    let cpu_diff = |i: usize| {
        median(
            &cpu[i]
                .iter()
                .zip(&cpu[0])
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>(),
        )
    };
    for (i, name) in names.iter().enumerate() {
        let diffs: Vec<f64> = wall[i].iter().zip(&wall[0]).map(|(a, b)| a - b).collect();
        println!(
            "{name:<14} {:>12.1} {:>9.3} {:>15.2} {:>12.2} {:>10.3} {:>16.2}",
            total(i),
            total(i) / total(0),
            cpu_diff(i),
            median(&wall[i]),
            median(&wall[i]) / median(&wall[0]),
            median(&diffs)
        );
    }
    let diffs: Vec<f64> = wall[4].iter().zip(&wall[1]).map(|(a, b)| a - b).collect();
    println!(
        "wrapper vs hook: median wall {:.2} ms vs {:.2} ms, ratio {:.3}, median per-round difference {:.2} ms",
        median(&wall[4]),
        median(&wall[1]),
        median(&wall[4]) / median(&wall[1]),
        median(&diffs)
    );
}
