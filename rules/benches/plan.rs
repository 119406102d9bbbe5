//! `cargo bench -p rules`: the cost of `plan()` for 1, 8 and 64 GPUs with
//! every capability (the hook pays it on every container create). Prints
//! figures; asserts nothing. The budget is < 50 µs at 8 GPUs, growing at most
//! linearly. Without `--bench` (e.g. `cargo test --all-targets`) it only
//! checks that each case plans.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use rules::{plan, Config, RootfsFlavor};

const SAMPLES: usize = 101;
const SAMPLE_TARGET: Duration = Duration::from_millis(4);

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let config = Config::default();
    let env = [
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("NVIDIA_DRIVER_CAPABILITIES", "all"),
        (
            "NVIDIA_REQUIRE_CUDA",
            "cuda>=12.2 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471",
        ),
    ];
    let req = common::request_with(&env, &[], RootfsFlavor::DebianLike, &config);
    let mut per_gpu = Vec::new();
    for n in [1u32, 8, 64] {
        let inv = common::host(n);
        let p = plan(&inv, &req, &config).expect("plans");
        if !bench {
            println!(
                "plan/{n} GPUs: ok ({} mounts, {} device nodes)",
                p.mounts.len(),
                p.device_nodes.len()
            );
            continue;
        }
        // Calibrate the iterations per sample.
        let mut iters = 1u32;
        loop {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(plan(black_box(&inv), black_box(&req), black_box(&config)).ok());
            }
            if t.elapsed() >= SAMPLE_TARGET || iters >= 1 << 20 {
                break;
            }
            iters *= 2;
        }
        let mut samples: Vec<f64> = (0..SAMPLES)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(plan(black_box(&inv), black_box(&req), black_box(&config)).ok());
                }
                t.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let median = samples[SAMPLES / 2];
        println!(
            "plan/{n:>2} GPUs, all capabilities: median {median:8.2} µs/iter  (min {:.2}, max {:.2}; {SAMPLES} samples x {iters} iters; {} mounts, {} symlinks, {} device nodes)",
            samples[0],
            samples[SAMPLES - 1],
            p.mounts.len(),
            p.symlinks.len(),
            p.device_nodes.len(),
        );
        per_gpu.push((n, median));
    }
    if let [(_, one), (_, eight), (_, sixty_four)] = per_gpu[..] {
        println!(
            "growth: 1->8 GPUs x{:.2}, 8->64 GPUs x{:.2} (linear would be at most x8.00); marginal cost per GPU {:.3} µs",
            eight / one,
            sixty_four / eight,
            (sixty_four - eight) / 56.0
        );
    }
}
