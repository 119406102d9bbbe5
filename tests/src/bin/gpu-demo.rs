//! `gpu-demo`: runs a GPU container on the simulated host and shows what it
//! sees. Started by `scripts/demo`.
//!
//! It generates a 4-GPU host, gives a real runc container GPUs 0 and 2
//! through its `config.json` (device nodes, device-cgroup rules, the driver's
//! files mounted read-only), refreshes the container's linker cache and runs
//! the `nvidia-smi` stand-in inside it.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use e2e::gpu::{library_dir, with_gpus, GpuAccess};
use e2e::{runc_run, Bundle, CgroupVersion, Variant};
use fixtures::driver_root::{generate, Options};
use fixtures::host_desc::HostDescription;

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
            "gpu-demo: run a GPU container on the simulated host (needs root and runc).\n\n\
             Usage: gpu-demo [OUT_DIR]   (default: a temporary directory)\n\n\
             Example:\n  sudo target/debug/gpu-demo /tmp/gpu-demo"
        );
        return Ok(());
    }
    let tmp = tempfile::tempdir().context("create a temporary directory")?;
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());

    let desc = HostDescription::synthetic(4, "535.104.05", "12.2");
    let opts = Options {
        overwrite: true,
        ..Options::locate().context("build the workspace first: cargo build --workspace")?
    };
    let layout =
        generate(&desc, &out.join("host"), &opts).context("generate the simulated host")?;
    println!(
        "Simulated host: {} GPUs, driver {}, CUDA {}",
        desc.gpus.len(),
        desc.driver_version,
        desc.cuda_version
    );
    println!("  driver root  {}", layout.driver_root.display());
    println!("  dev root     {}", layout.dev_root.display());
    println!("  NVML         {}", layout.nvml_lib.display());

    let variant = Variant::Debian;
    let access = GpuAccess::allowed(&[0, 2]);
    let script = format!(
        "echo '$ ls -l /dev/nvidia*'; ls -l /dev/nvidia*; \
         ldconfig {dir}; \
         echo; echo '$ ldconfig -p | grep nvidia-ml'; ldconfig -p | grep nvidia-ml; \
         echo; echo '$ nvidia-smi -L'; nvidia-smi -L; \
         echo; echo '$ nvidia-smi'; nvidia-smi",
        dir = library_dir(variant)
    );
    let bundle = with_gpus(
        Bundle::builder(variant).sh(&script),
        variant,
        &layout,
        &access,
    )
    .build()
    .context("write the bundle")?;
    let config = bundle.config();
    println!(
        "\nContainer config.json ({}):",
        bundle.config_path().display()
    );
    for dev in config["linux"]["devices"].as_array().into_iter().flatten() {
        println!(
            "  device  {} c {}:{}",
            dev["path"].as_str().unwrap_or("?"),
            dev["major"],
            dev["minor"]
        );
    }
    for rule in config["linux"]["resources"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if rule["allow"] == true {
            println!(
                "  allow   c {}:{} {}",
                rule["major"],
                rule["minor"],
                rule["access"].as_str().unwrap_or("")
            );
        }
    }
    let binds = config["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "bind")
        .count();
    println!("  mounts  {binds} driver files, read-only");

    println!("\nrunc run (cgroup v1), GPUs 0 and 2 of 4:\n");
    let run = runc_run(&bundle, CgroupVersion::V1).context("run the container")?;
    print!("{}", run.stdout);
    if !run.status.success() {
        anyhow::bail!("the container failed:\n{run}");
    }
    Ok(())
}
