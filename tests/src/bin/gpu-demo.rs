//! `gpu-demo`: runs a GPU container on the simulated host and shows what it
//! sees. Started by `scripts/demo`.
//!
//! It generates a 4-GPU host, starts a real runc container whose
//! `config.json` registers `nvidia-docker-hook` as its prestart hook and asks
//! for GPUs 0 and 2 (`NVIDIA_VISIBLE_DEVICES=0,2`), and shows from inside:
//! the device nodes, the driver files mounted read-only, the refreshed linker
//! cache, `/proc/driver/nvidia/gpus`, and the `nvidia-smi` stand-in's output.
use std::process::ExitCode;

use anyhow::Context;
use e2e::hook::{lib_dir, SimHost};
use e2e::{runc_run, Bundle, CgroupVersion, HookStage, Variant};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gpu-demo: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "gpu-demo: run a GPU container on the simulated host (needs root, runc and a\n\
             workspace build).\n\n\
             Usage: gpu-demo\n\n\
             Example:\n  cargo build --workspace && sudo target/debug/gpu-demo"
        );
        return Ok(());
    }
    let host = SimHost::synthetic(4).context("generate the simulated host")?;
    let desc = &host.desc;
    println!(
        "Simulated host: {} GPUs, driver {}, CUDA {}",
        desc.gpus.len(),
        desc.driver_version,
        desc.cuda_version
    );
    println!("  driver root  {}", host.layout.driver_root.display());
    println!("  dev root     {}", host.layout.dev_root.display());

    let variant = Variant::Debian;
    let lib = lib_dir(variant);
    let libcuda = host.libcuda();
    let script = format!(
        "echo '$ ls -l /dev/nvidia*'; ls -l /dev/nvidia*; \
         echo; echo '# driver mounts, from /proc/mounts:'; grep -E 'nvidia|cuda' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1-4 | sort; \
         echo; echo '$ ldconfig -p | grep -E \"libcuda|libnvidia-ml\"'; ldconfig -p | grep -E 'libcuda|libnvidia-ml'; \
         echo; echo '$ ls /proc/driver/nvidia/gpus'; ls /proc/driver/nvidia/gpus; \
         echo; echo '$ echo >> {lib}/{libcuda}'; {{ echo >> {lib}/{libcuda}; }} 2>&1; \
         echo; echo '$ nvidia-smi -L'; nvidia-smi -L; \
         echo; echo '$ nvidia-smi'; nvidia-smi"
    );
    let bundle = Bundle::builder(variant)
        .sh(&script)
        .env("NVIDIA_VISIBLE_DEVICES", "0,2")
        .env("NVIDIA_DRIVER_CAPABILITIES", "compute,utility")
        .hook(HookStage::Prestart, &host.prestart_hook()?)
        .build()
        .context("write the bundle")?;
    println!("\nContainer: {}", bundle.config_path().display());
    println!(
        "  process.env  NVIDIA_VISIBLE_DEVICES=0,2 NVIDIA_DRIVER_CAPABILITIES=compute,utility"
    );
    println!("  hooks        prestart: nvidia-docker-hook prestart");
    println!("\nrunc run (cgroup v1):\n");
    let run = runc_run(&bundle, CgroupVersion::V1).context("run the container")?;
    print!("{}", run.stdout);
    if !run.status.success() {
        anyhow::bail!("the container failed:\n{run}");
    }
    Ok(())
}
