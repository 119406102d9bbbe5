//! NVIDIA's real driver files through the other front ends (see
//! `real_driver.rs` for runc with the prestart hook): `docker run --gpus`
//! (the hook as `nvidia-container-runtime-hook` on a private dockerd's
//! `PATH`), the runc wrapper (`nvidia-docker-runtime`, spec edits only) and
//! Podman with the CDI spec `nvidia-docker setup cdi` writes. In each, the
//! probe loads the real `libcuda.so.1` and NVML by soname and gets the real
//! driver's answers, and the real `nvidia-smi` prints its no-driver line.
use std::path::Path;
use std::time::Duration;

use e2e::hook::hook_binary;
use e2e::process::{run_timeout, unique_name};
use e2e::real::{probe, probe_values, RealHost};
use e2e::{require, Bundle, CgroupVersion, Dockerd, Podman, Prereq, Variant};
use fixtures::real_driver::{DriverLayout, Series};

use crate::config_common::{setup_binary, wrapped_runc_run_with, RemoveOnDrop};

/// What building a real driver root needs.
const BUILD: [Prereq; 3] = [
    Prereq::Root,
    Prereq::Tool("apt-get"),
    Prereq::Tool("dpkg-deb"),
];

/// The script run in each container (the probe is at `/gpu-probe`).
const SCRIPT: &str = "/gpu-probe; echo probe.exit=$?; nvidia-smi; echo smi.exit=$?";

/// The real driver's answers, whatever the front end.
#[track_caller]
fn assert_real(host: &RealHost, out: &e2e::Output, context: &str) {
    assert!(out.success(), "{context}\n{out}");
    let v = probe_values(&out.stdout);
    let get = |k: &str| v.get(k).map(String::as_str).unwrap_or("<missing>");
    assert_eq!(get("libcuda"), "loaded", "{context}\n{out}");
    assert!(
        get("libcuda.path").ends_with("/libcuda.so.1"),
        "{context}\n{out}"
    );
    assert_eq!(
        get("cuDriverGetVersion"),
        host.driver.series.cuda_driver_version().to_string(),
        "{context}\n{out}"
    );
    assert_eq!(get("cuInit"), "100", "{context}\n{out}");
    assert_eq!(get("libnvidia-ml"), "loaded", "{context}\n{out}");
    assert_eq!(get("nvmlInit"), "9", "{context}\n{out}");
    assert!(
        out.stdout.contains(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        ),
        "{context}\n{out}"
    );
    assert_eq!(get("smi.exit"), "9", "{context}\n{out}");
}

#[test]
fn docker_run_gpus_real_535() {
    require!(
        BUILD[0],
        BUILD[1],
        BUILD[2],
        Prereq::Dockerd,
        Prereq::Tool("gcc")
    );
    let host = RealHost::new(Series::R535, DriverLayout::Installer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exe = probe(dir.path(), false).unwrap();
    let mut builder = Dockerd::builder().path_prepend(host.sim.toolkit_bin_dir().unwrap());
    for (k, v) in host.env() {
        builder = builder.env(k, v);
    }
    let dockerd = builder.start().unwrap();
    let image = "e2e/real-debian";
    dockerd
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let mount = format!("{}:/gpu-probe:ro", exe.display());
    let out = dockerd
        .run_docker(&[
            "run", "--rm", "--gpus", "all", "-v", &mount, image, "/bin/sh", "-c", SCRIPT,
        ])
        .unwrap();
    let context = format!("--- dockerd log ---\n{}", dockerd.log_tail(20));
    assert_real(&host, &out, &context);
}

#[test]
fn runc_wrapper_real_470() {
    require!(
        BUILD[0],
        BUILD[1],
        BUILD[2],
        Prereq::Runc,
        Prereq::CgroupV2,
        Prereq::Tool("gcc")
    );
    let host = RealHost::new(Series::Tesla470, DriverLayout::Debian).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exe = probe(dir.path(), false).unwrap();
    let bundle = Bundle::builder(Variant::Debian)
        .sh(SCRIPT)
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .env("NVIDIA_DRIVER_CAPABILITIES", "compute,utility")
        .build()
        .unwrap();
    std::fs::copy(&exe, bundle.rootfs().join("gpu-probe")).unwrap();
    let out = wrapped_runc_run_with(&host.sim, host.env(), &bundle, CgroupVersion::V2).unwrap();
    assert_real(&host, &out, "runc wrapper");
}

#[test]
fn podman_cdi_real_535() {
    require!(
        BUILD[0],
        BUILD[1],
        BUILD[2],
        Prereq::Podman,
        Prereq::Tool("gcc")
    );
    let host = RealHost::new(Series::R535, DriverLayout::Installer).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exe = probe(dir.path(), false).unwrap();
    let unique = unique_name("e2e");
    let vendor = format!("{unique}.example.com");
    let file = std::path::PathBuf::from(format!("/var/run/cdi/{unique}.json"));
    let guard = RemoveOnDrop(file.clone());
    let mut setup = e2e::process::command(setup_binary().unwrap());
    setup
        .arg("setup")
        .args([
            "cdi",
            "--vendor",
            &vendor,
            "--format",
            "json",
            "--hook-path",
        ])
        .arg(hook_binary().unwrap())
        .arg("--output-file")
        .arg(&file)
        .envs(host.env());
    run_timeout(&mut setup, Duration::from_secs(60))
        .unwrap()
        .check()
        .unwrap();
    let spec = std::fs::read_to_string(&guard.0).unwrap();
    assert!(
        spec.contains(&format!("libcuda.so.{}", host.driver.version)),
        "the spec names the real libcuda:\n{spec}"
    );
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/real-cdi";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let mount = format!("{}:/gpu-probe:ro", exe.display());
    let device = format!("{vendor}/gpu=all");
    let out = podman
        .run_podman(&[
            "run", "--rm", "--device", &device, "-v", &mount, image, "/bin/sh", "-c", SCRIPT,
        ])
        .unwrap();
    assert_real(&host, &out, &format!("podman --device {device}"));
    assert!(Path::new(&guard.0).exists());
}
