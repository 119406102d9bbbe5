//! The v1 driver volume (`nvidia_driver_<version>`) and `/docker/cli` built
//! from NVIDIA's real driver files (Debian's 535 packages in both layouts,
//! `fixtures::real_driver`): the daemon discovers the inventory itself from
//! the real driver root (the hook's code, with the mock NVML reporting the
//! real version), and the volume holds the real binaries and libraries,
//! byte for byte, in v1's `bin`, `lib64` and `lib` (i386) layout.
//!
//! Building a real driver root needs root, `apt-get` and `dpkg-deb`; the
//! test skips without them, and fails when `CI` is set.
use std::path::Path;
use std::process::{Command, Stdio};

use fixtures::host_desc::HostDescription;
use fixtures::real_driver::{self, DriverLayout, Series};

use crate::support::{sim_host, Plugin};

/// Whether the real driver root can be built here (else: skip, or fail
/// under `CI`).
fn can_build(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false);
    let tools = ["apt-get", "dpkg-deb"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if root && tools {
        return true;
    }
    let why = "needs root, apt-get and dpkg-deb (scripts/install-deps)";
    assert!(std::env::var_os("CI").is_none(), "{test}: {why}");
    eprintln!("SKIP {test}: {why}");
    false
}

/// The daemon on a simulated host whose driver root is the real tree (no
/// inventory file: it discovers).
fn start_plugin(dir: &Path, root: &Path, host: &crate::support::SimHost) -> Plugin {
    let cache = dir.join("cache");
    // The real libcuda must not run on this host: without a GPU it creates
    // /dev/nvidiactl here. The simulated host's mock answers.
    let cuda = host.layout.lib_dir.join("libcuda.so.1");
    Plugin::launch(
        dir,
        &dir.join("plugins"),
        &[
            ("NVIDIA_DOCKER_DRIVER_ROOT", root.as_os_str()),
            ("NVIDIA_DOCKER_DEV_ROOT", host.layout.dev_root.as_os_str()),
            ("NVIDIA_DOCKER_PROC_ROOT", host.layout.proc_root.as_os_str()),
            ("NVIDIA_DOCKER_CACHE_DIR", cache.as_os_str()),
            ("NVIDIA_DOCKER_NVML_LIB", host.layout.nvml_lib.as_os_str()),
            ("NVIDIA_DOCKER_CUDA_LIB", cuda.as_os_str()),
            ("NVML_MOCK_DEV_ROOT", host.layout.dev_root.as_os_str()),
        ],
    )
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).ok() == std::fs::read(b).ok()
}

fn real_volume(layout: DriverLayout) {
    let test = format!("real_volume_{layout:?}");
    if !can_build(&test) {
        return;
    }
    let driver = real_driver::ensure(Series::R535, layout).unwrap();
    let v = driver.version.clone();
    // No real driver library may run on this GPU-less host: the real
    // libcuda and NVML create /dev/nvidiactl when they initialise.
    let nvidiactl = Path::new("/dev/nvidiactl");
    let had_nvidiactl = nvidiactl.exists();
    let host = sim_host(HostDescription::synthetic(
        2,
        &v,
        Series::R535.cuda_version(),
    ));
    let p = start_plugin(host.dir.path(), &driver.root, &host);
    let name = format!("nvidia_driver_{v}");

    // /docker/cli names the real driver's volume.
    let r = p.get("/docker/cli");
    assert_eq!(r.status, 200, "{}", p.log_text());
    assert!(
        r.text()
            .contains(&format!("--volume={name}:/usr/local/nvidia:ro")),
        "{}",
        r.text()
    );

    let r = p.post(
        "/VolumeDriver.Create",
        &format!("{{\"Name\":\"{name}\",\"Opts\":{{}}}}"),
    );
    assert_eq!(r.text(), "{\"Err\":null}\n", "{}", p.log_text());
    let r = p.post(
        "/VolumeDriver.Mount",
        &format!("{{\"Name\":\"{name}\",\"ID\":\"x\"}}"),
    );
    assert!(r.text().contains("\"Err\":null"), "{}", r.text());
    let mp = p.volume_dir.join(format!("nvidia_driver/{v}"));

    let lib64 = |f: &str| match layout {
        DriverLayout::Installer => format!("/usr/lib/x86_64-linux-gnu/{f}"),
        DriverLayout::Debian => format!("/usr/lib/x86_64-linux-gnu/nvidia/current/{f}"),
    };
    let lib32 = |f: &str| match layout {
        DriverLayout::Installer => format!("/usr/lib/i386-linux-gnu/{f}"),
        DriverLayout::Debian => format!("/usr/lib/i386-linux-gnu/nvidia/current/{f}"),
    };
    let smi = match layout {
        DriverLayout::Installer => "/usr/bin/nvidia-smi",
        DriverLayout::Debian => "/usr/lib/nvidia/current/nvidia-smi",
    };
    // The real files, byte for byte.
    for (in_volume, real) in [
        ("bin/nvidia-smi".to_owned(), smi.to_owned()),
        (
            format!("lib64/libcuda.so.{v}"),
            lib64(&format!("libcuda.so.{v}")),
        ),
        (
            format!("lib64/libnvidia-ml.so.{v}"),
            lib64(&format!("libnvidia-ml.so.{v}")),
        ),
        (
            format!("lib64/libnvidia-glcore.so.{v}"),
            format!("/usr/lib/x86_64-linux-gnu/libnvidia-glcore.so.{v}"),
        ),
        (
            format!("lib/libcuda.so.{v}"),
            lib32(&format!("libcuda.so.{v}")),
        ),
    ] {
        let got = mp.join(&in_volume);
        assert!(got.is_file(), "{in_volume} missing");
        assert!(
            same_bytes(&got, &driver.path(&real)),
            "{in_volume} is not {real}"
        );
    }
    assert!(mp.join("bin/nvidia-cuda-mps-server").is_file());
    assert_eq!(
        std::fs::read_link(mp.join("lib64/libcuda.so.1")).unwrap(),
        Path::new(&format!("libcuda.so.{v}"))
    );
    // v1's volume has no libnvidia-cfg and no NGX.
    assert!(!mp.join(format!("lib64/libnvidia-cfg.so.{v}")).exists());
    assert!(!mp.join(format!("lib64/libnvidia-ngx.so.{v}")).exists());
    drop(p);
    assert!(
        had_nvidiactl || !nvidiactl.exists(),
        "a real driver library ran on this host and created /dev/nvidiactl"
    );
}

#[test]
fn real_volume_installer() {
    real_volume(DriverLayout::Installer);
}

#[test]
fn real_volume_debian() {
    real_volume(DriverLayout::Debian);
}
