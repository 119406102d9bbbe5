//! Whole-process benchmark of `nvidia-docker-hook inventory` on the
//! simulated host (issue 4's targets), all in one run:
//!
//! - warm snapshot vs cold discovery with the mock's `init_delay_ms` = 2000:
//!   warm under 5 ms wall and at least 100x faster;
//! - cold discovery (`--refresh`) without delay for 64 GPUs under 50 ms.
//!
//! Run: `cargo build --release -p mock-nvml -p fixtures && cargo bench -p hook --bench inventory`
//! (the mock is found beside the bench binary, or through `SIMHOST_MOCK_NVML`
//! and `SIMHOST_NVIDIA_SMI`). Exits 1 when a target is missed.
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use fixtures::artifacts::Artifacts;
use fixtures::driver_root::{self, Options};
use fixtures::host_desc::HostDescription;

const HOOK: &str = env!("CARGO_BIN_EXE_nvidia-docker-hook");

struct Host {
    _dir: tempfile::TempDir,
    config: PathBuf,
    dev_root: PathBuf,
    init_log: PathBuf,
}

impl Host {
    fn new(artifacts: &Artifacts, gpus: usize, init_delay_ms: u64) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut desc = HostDescription::synthetic(gpus, "535.104.05", "12.2");
        desc.faults.init_delay_ms = init_delay_ms;
        let mut opts = Options::new(artifacts);
        opts.ipc = true;
        let layout =
            driver_root::generate(&desc, &dir.path().join("host"), &opts).expect("generate");
        let config = dir.path().join("config.toml");
        let text = format!(
            "[nvidia-container-cli]\nroot = {:?}\n[host]\ndev-root = {:?}\nproc-root = {:?}\ncache-dir = {:?}\nnvml-timeout = 30\n",
            layout.driver_root.display().to_string(),
            layout.dev_root.display().to_string(),
            layout.proc_root.display().to_string(),
            dir.path().join("cache").display().to_string(),
        );
        std::fs::write(&config, text).expect("config");
        Host {
            config,
            dev_root: layout.dev_root.clone(),
            init_log: dir.path().join("init.log"),
            _dir: dir,
        }
    }

    fn inits(&self) -> usize {
        std::fs::read_to_string(&self.init_log)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// One `nvidia-docker-hook inventory [extra]` process: its wall time.
    fn run(&self, extra: &[&str]) -> Duration {
        let mut cmd = Command::new(HOOK);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("NVML_MOCK_DEV_ROOT", &self.dev_root)
            .env("NVML_MOCK_INIT_LOG", &self.init_log)
            .arg("--config")
            .arg(&self.config)
            .arg("inventory")
            .args(extra);
        let start = Instant::now();
        let out = cmd.output().expect("run the hook");
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "{HOOK} inventory {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }

    fn runs(&self, n: usize, extra: &[&str]) -> Stats {
        Stats::of((0..n).map(|_| self.run(extra)).collect())
    }
}

struct Stats {
    runs: usize,
    min: Duration,
    median: Duration,
    p95: Duration,
}

impl Stats {
    fn of(mut v: Vec<Duration>) -> Stats {
        v.sort();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Stats {
            runs: v.len(),
            min: v[0],
            median: at(0.5),
            p95: at(0.95),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn main() -> ExitCode {
    let artifacts = match Artifacts::locate() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n(cargo build --release -p mock-nvml -p fixtures)");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "inventory benchmark: whole process, `nvidia-docker-hook inventory` on the simulated host"
    );

    // Warm vs cold with a 2 s NVML init delay (a GPU without persistence mode).
    let slow = Host::new(&artifacts, 8, 2000);
    let cold = slow.runs(2, &["--refresh"]);
    let before = slow.inits();
    slow.run(&[]); // first warm run: page cache, dynamic loader
    let warm = slow.runs(200, &[]);
    let warm_inits = slow.inits() - before;
    let ratio = cold.median.as_secs_f64() / warm.median.as_secs_f64();
    println!(
        "cold discovery, 8 GPUs, init delay 2 s: median {} (min {}, {} runs)",
        ms(cold.median),
        ms(cold.min),
        cold.runs
    );
    println!(
        "warm snapshot, 8 GPUs:                  median {} (min {}, p95 {}, {} runs, NVML inits {warm_inits})",
        ms(warm.median),
        ms(warm.min),
        ms(warm.p95),
        warm.runs
    );
    let warm_ok = warm.median < Duration::from_millis(5) && ratio >= 100.0 && warm_inits == 0;
    println!(
        "ratio cold/warm: {ratio:.0}x  [target: warm < 5 ms, >= 100x, no NVML] {}",
        verdict(warm_ok)
    );

    // Cold discovery, 64 GPUs, no delay.
    let big = Host::new(&artifacts, 64, 0);
    big.run(&["--refresh"]);
    let cold64 = big.runs(30, &["--refresh"]);
    let warm64 = big.runs(50, &[]);
    let cold64_ok = cold64.median < Duration::from_millis(50);
    println!(
        "cold discovery, 64 GPUs, no delay:      median {} (min {}, p95 {}, {} runs)  [target < 50 ms] {}",
        ms(cold64.median),
        ms(cold64.min),
        ms(cold64.p95),
        cold64.runs,
        verdict(cold64_ok)
    );
    println!(
        "warm snapshot, 64 GPUs:                 median {} (min {}, p95 {}, {} runs)",
        ms(warm64.median),
        ms(warm64.min),
        ms(warm64.p95),
        warm64.runs
    );
    if warm_ok && cold64_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
