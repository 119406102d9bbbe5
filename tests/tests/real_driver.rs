//! NVIDIA's real driver (Debian's 535 and Tesla 470 packages, both layouts;
//! `fixtures::real_driver`) judging the project:
//!
//! - the catalogue: the hook's `inventory` (mock NVML, real files) finds
//!   every real driver file by its real name, and `rules::files` gives each
//!   the capability of the tables below, one row per file, for both series
//!   and both layouts;
//! - runc containers (cgroup v1 and v2) given the real files by the hook:
//!   `tests/probe/gpu-probe.c` loads the real `libcuda.so.1` through the
//!   container's linker cache (`cuDriverGetVersion` is the series' CUDA
//!   version, `cuInit` fails with no kernel module), the real NVML fails
//!   with `NVML_ERROR_DRIVER_NOT_LOADED`, the real `nvidia-smi` prints its
//!   no-driver line;
//! - CUDA compatibility with the real versions;
//! - a containerised driver root (`/run/nvidia/driver`).
//!
//! The first run downloads the packages (about 530 MB) into
//! `target/nvidia-driver`; later runs use the cache.
use std::collections::BTreeSet;
use std::path::Path;

use e2e::real::{probe, probe_values, RealHost};
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Prereq, Variant};
use fixtures::real_driver::{DriverLayout, Series};
use rules::files::{binary_spec, library_spec};

/// What building a real driver root needs.
const BUILD: [Prereq; 3] = [
    Prereq::Root,
    Prereq::Tool("apt-get"),
    Prereq::Tool("dpkg-deb"),
];

/// The files of the 535 series the inventory finds, by capability
/// (`compat32 <cap>` for the i386 copies), `{v}` standing for the driver
/// version. Every name is a file of Debian's 535 packages.
const TABLE_535: &[(&str, &str)] = &[
    ("compat32 compute", "libcuda.so.{v}"),
    ("compat32 compute", "libnvidia-allocator.so.{v}"),
    ("compat32 compute", "libnvidia-nvvm.so.{v}"),
    ("compat32 compute", "libnvidia-opencl.so.{v}"),
    ("compat32 compute", "libnvidia-ptxjitcompiler.so.{v}"),
    ("compat32 graphics", "libEGL_nvidia.so.{v}"),
    ("compat32 graphics", "libGLESv1_CM_nvidia.so.{v}"),
    ("compat32 graphics", "libGLESv2_nvidia.so.{v}"),
    ("compat32 graphics", "libGLX_nvidia.so.{v}"),
    ("compat32 graphics", "libnvidia-eglcore.so.{v}"),
    ("compat32 graphics", "libnvidia-fbc.so.{v}"),
    ("compat32 graphics", "libnvidia-glcore.so.{v}"),
    ("compat32 graphics", "libnvidia-glsi.so.{v}"),
    ("compat32 graphics", "libnvidia-glvkspirv.so.{v}"),
    ("compat32 graphics", "libnvidia-tls.so.{v}"),
    ("compat32 utility", "libnvidia-ml.so.{v}"),
    ("compat32 video", "libnvcuvid.so.{v}"),
    ("compat32 video", "libnvidia-encode.so.{v}"),
    ("compat32 video", "libnvidia-opticalflow.so.{v}"),
    ("compat32 video", "libvdpau_nvidia.so.{v}"),
    ("compute", "libcuda.so.{v}"),
    ("compute", "libcudadebugger.so.{v}"),
    ("compute", "libnvidia-allocator.so.{v}"),
    ("compute", "libnvidia-nvvm.so.{v}"),
    ("compute", "libnvidia-opencl.so.{v}"),
    ("compute", "libnvidia-pkcs11-openssl3.so.{v}"),
    ("compute", "libnvidia-ptxjitcompiler.so.{v}"),
    ("compute", "nvidia-cuda-mps-control"),
    ("compute", "nvidia-cuda-mps-server"),
    ("firmware", "gsp_ga10x.bin"),
    ("firmware", "gsp_tu10x.bin"),
    ("graphics", "libEGL_nvidia.so.{v}"),
    ("graphics", "libGLESv1_CM_nvidia.so.{v}"),
    ("graphics", "libGLESv2_nvidia.so.{v}"),
    ("graphics", "libGLX_nvidia.so.{v}"),
    ("graphics", "libnvidia-api.so.1"),
    ("graphics", "libnvidia-eglcore.so.{v}"),
    ("graphics", "libnvidia-fbc.so.{v}"),
    ("graphics", "libnvidia-glcore.so.{v}"),
    ("graphics", "libnvidia-glsi.so.{v}"),
    ("graphics", "libnvidia-glvkspirv.so.{v}"),
    ("graphics", "libnvidia-rtcore.so.{v}"),
    ("graphics", "libnvidia-tls.so.{v}"),
    ("graphics", "libnvidia-vulkan-producer.so.{v}"),
    ("graphics", "libnvoptix.so.{v}"),
    ("ngx", "libnvidia-ngx.so.{v}"),
    ("utility", "libnvidia-cfg.so.{v}"),
    ("utility", "libnvidia-ml.so.{v}"),
    ("utility", "nvidia-debugdump"),
    ("utility", "nvidia-persistenced"),
    ("utility", "nvidia-smi"),
    ("video", "libnvcuvid.so.{v}"),
    ("video", "libnvidia-encode.so.{v}"),
    ("video", "libnvidia-opticalflow.so.{v}"),
    ("video", "libvdpau_nvidia.so.{v}"),
];

/// The same for Tesla 470: no MPS, no GSP firmware package, no
/// `libcudadebugger`, `libnvidia-api` or `libnvidia-pkcs11-openssl3`; its
/// own `libnvidia-compiler`, `libnvidia-ifr`, `libnvidia-cbl`, and an
/// NVVM named `libnvidia-nvvm.so.4.0.0`.
const TABLE_470: &[(&str, &str)] = &[
    ("compat32 compute", "libcuda.so.{v}"),
    ("compat32 compute", "libnvidia-allocator.so.{v}"),
    ("compat32 compute", "libnvidia-compiler.so.{v}"),
    ("compat32 compute", "libnvidia-opencl.so.{v}"),
    ("compat32 compute", "libnvidia-ptxjitcompiler.so.{v}"),
    ("compat32 graphics", "libEGL_nvidia.so.{v}"),
    ("compat32 graphics", "libGLESv1_CM_nvidia.so.{v}"),
    ("compat32 graphics", "libGLESv2_nvidia.so.{v}"),
    ("compat32 graphics", "libGLX_nvidia.so.{v}"),
    ("compat32 graphics", "libnvidia-eglcore.so.{v}"),
    ("compat32 graphics", "libnvidia-fbc.so.{v}"),
    ("compat32 graphics", "libnvidia-glcore.so.{v}"),
    ("compat32 graphics", "libnvidia-glsi.so.{v}"),
    ("compat32 graphics", "libnvidia-glvkspirv.so.{v}"),
    ("compat32 graphics", "libnvidia-ifr.so.{v}"),
    ("compat32 graphics", "libnvidia-tls.so.{v}"),
    ("compat32 utility", "libnvidia-ml.so.{v}"),
    ("compat32 video", "libnvcuvid.so.{v}"),
    ("compat32 video", "libnvidia-encode.so.{v}"),
    ("compat32 video", "libnvidia-opticalflow.so.{v}"),
    ("compat32 video", "libvdpau_nvidia.so.{v}"),
    ("compute", "libcuda.so.{v}"),
    ("compute", "libnvidia-allocator.so.{v}"),
    ("compute", "libnvidia-compiler.so.{v}"),
    ("compute", "libnvidia-nvvm.so.4.0.0"),
    ("compute", "libnvidia-opencl.so.{v}"),
    ("compute", "libnvidia-ptxjitcompiler.so.{v}"),
    ("graphics", "libEGL_nvidia.so.{v}"),
    ("graphics", "libGLESv1_CM_nvidia.so.{v}"),
    ("graphics", "libGLESv2_nvidia.so.{v}"),
    ("graphics", "libGLX_nvidia.so.{v}"),
    ("graphics", "libnvidia-cbl.so.{v}"),
    ("graphics", "libnvidia-eglcore.so.{v}"),
    ("graphics", "libnvidia-fbc.so.{v}"),
    ("graphics", "libnvidia-glcore.so.{v}"),
    ("graphics", "libnvidia-glsi.so.{v}"),
    ("graphics", "libnvidia-glvkspirv.so.{v}"),
    ("graphics", "libnvidia-ifr.so.{v}"),
    ("graphics", "libnvidia-rtcore.so.{v}"),
    ("graphics", "libnvidia-tls.so.{v}"),
    ("graphics", "libnvidia-vulkan-producer.so.{v}"),
    ("graphics", "libnvoptix.so.{v}"),
    ("ngx", "libnvidia-ngx.so.{v}"),
    ("utility", "libnvidia-cfg.so.{v}"),
    ("utility", "libnvidia-ml.so.{v}"),
    ("utility", "nvidia-debugdump"),
    ("utility", "nvidia-persistenced"),
    ("utility", "nvidia-smi"),
    ("video", "libnvcuvid.so.{v}"),
    ("video", "libnvidia-encode.so.{v}"),
    ("video", "libnvidia-opticalflow.so.{v}"),
    ("video", "libvdpau_nvidia.so.{v}"),
];

/// Real driver files that are not in the inventory's file list: the X
/// server's driver and GLX module are loader files (`rules::loader_files`),
/// mounted at the X server's module paths with `display` (see
/// [`loader_mounts`]).
const NOT_MOUNTED: &[&str] = &["nvidia_drv.so", "libglxserver_nvidia.so.{v}"];

/// The loader files a container asking `caps` gets under `/usr/lib`, as
/// `64 <name>`: the GBM backend (535 only; a link to `libnvidia-allocator`)
/// with the graphics libraries, the X server's driver and GLX module with
/// `display`.
fn loader_mounts(series: Series, version: &str, caps: &[&str]) -> BTreeSet<String> {
    let has = |c: &str| caps.contains(&c);
    let mut out = BTreeSet::new();
    if series == Series::R535 && (has("graphics") || has("display")) {
        out.insert("64 nvidia-drm_gbm.so".to_owned());
    }
    if has("display") {
        out.insert("64 nvidia_drv.so".to_owned());
        out.insert(format!("64 libglxserver_nvidia.so.{version}"));
    }
    out
}

fn table(series: Series) -> &'static [(&'static str, &'static str)] {
    match series {
        Series::R535 => TABLE_535,
        Series::Tesla470 => TABLE_470,
    }
}

/// The capability label of an inventory file, from `rules::files`.
fn label(file: &serde_json::Value) -> String {
    let path = file["path"].as_str().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let cap = match file["kind"].as_str() {
        Some("library") => library_spec(name)
            .map(|s| s.capability.to_string())
            .unwrap_or_else(|| format!("unknown library {path}")),
        Some("binary") => binary_spec(name)
            .map(|s| s.capability.to_string())
            .unwrap_or_else(|| format!("unknown binary {path}")),
        Some(kind) => kind.to_owned(),
        None => "no kind".to_owned(),
    };
    if file["class"] == "elf32" {
        format!("compat32 {cap}")
    } else {
        cap
    }
}

/// Regular files of the tree that are ELF objects or firmware, by name.
fn real_files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let mut magic = [0u8; 4];
                let elf = std::fs::File::open(e.path())
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                    .is_ok()
                    && magic == *b"\x7fELF";
                let firmware = e.path().starts_with(root.join("lib/firmware"));
                if elf || firmware {
                    out.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    out
}

fn catalogue(series: Series, layout: DriverLayout) {
    require!(BUILD[0], BUILD[1], BUILD[2]);
    let host = RealHost::new(series, layout).unwrap();
    let v = host.driver.version.clone();
    let inv = host.inventory_json().unwrap();
    assert_eq!(inv["driver_version"], v.as_str(), "{inv}");
    let files = inv["files"].as_array().unwrap();
    let found: BTreeSet<(String, String)> = files
        .iter()
        .map(|f| {
            let name = f["path"].as_str().unwrap().rsplit('/').next().unwrap();
            (label(f), name.replace(&v, "{v}"))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = table(series)
        .iter()
        .map(|(c, n)| ((*c).to_owned(), (*n).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{series:?} {layout:?}: not found {missing:?}; not in the table {extra:?}"
    );
    // Every file the hook records is the real one at a real path.
    for f in files {
        let path = f["path"].as_str().unwrap();
        assert!(host.driver.path(path).is_file(), "{path} is not a file");
    }
    // Every real ELF file (and firmware) is found, bar the X server's.
    let names: BTreeSet<String> = found.iter().map(|(_, n)| n.replace("{v}", &v)).collect();
    let skipped: BTreeSet<String> = real_files(&host.driver.root)
        .difference(&names)
        .cloned()
        .collect();
    let expected_skipped: BTreeSet<String> =
        NOT_MOUNTED.iter().map(|n| n.replace("{v}", &v)).collect();
    assert_eq!(skipped, expected_skipped, "{series:?} {layout:?}");
}

#[test]
fn catalogue_535_debian() {
    catalogue(Series::R535, DriverLayout::Debian);
}

#[test]
fn catalogue_535_installer() {
    catalogue(Series::R535, DriverLayout::Installer);
}

#[test]
fn catalogue_470_debian() {
    catalogue(Series::Tesla470, DriverLayout::Debian);
}

#[test]
fn catalogue_470_installer() {
    catalogue(Series::Tesla470, DriverLayout::Installer);
}

/// The probe and the real `nvidia-smi` in a runc container given all GPUs
/// (compute, utility) by the hook.
fn probe_in_runc(host: &RealHost, cgroup: CgroupVersion) -> e2e::Output {
    let dir = tempfile::tempdir().unwrap();
    let exe = probe(dir.path(), false).unwrap();
    let bundle = Bundle::builder(Variant::Debian)
        .sh(concat!(
            "/gpu-probe; echo probe.exit=$?; nvidia-smi; echo smi.exit=$?\n",
            "f=$(readlink -f /usr/lib/x86_64-linux-gnu/libcuda.so.1); echo libcuda.file=$f\n",
            "echo libcuda.md5=$(md5sum $f | cut -d' ' -f1)\n",
            "ldconfig -p | grep -q 'libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1' && echo cache.libcuda=yes\n",
        ))
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .env("NVIDIA_DRIVER_CAPABILITIES", "compute,utility")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    std::fs::copy(&exe, bundle.rootfs().join("gpu-probe")).unwrap();
    runc_run(&bundle, cgroup).unwrap()
}

/// `md5sum` of a host file.
fn md5(path: &Path) -> String {
    let out = std::process::Command::new("md5sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "md5sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The real driver's answers without a kernel module.
#[track_caller]
fn assert_real_answers(host: &RealHost, out: &e2e::Output) {
    out.assert_success();
    let v = probe_values(&out.stdout);
    let get = |k: &str| v.get(k).map(String::as_str).unwrap_or("<missing>");
    let series = host.driver.series;
    assert_eq!(get("libcuda"), "loaded", "{out}");
    // Loaded by soname through the container's cache, which the hook
    // refreshed; the file behind it is the real one, byte for byte.
    assert_eq!(
        get("libcuda.path"),
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "{out}"
    );
    assert_eq!(get("cache.libcuda"), "yes", "{out}");
    assert_eq!(
        get("libcuda.file"),
        format!(
            "/usr/lib/x86_64-linux-gnu/libcuda.so.{}",
            host.driver.version
        ),
        "{out}"
    );
    let real = host.driver.path(&format!(
        "/usr/lib/x86_64-linux-gnu/{}libcuda.so.{}",
        match host.driver.layout {
            DriverLayout::Debian => format!("nvidia/{}/", series.flavour()),
            DriverLayout::Installer => String::new(),
        },
        host.driver.version
    ));
    assert_eq!(get("libcuda.md5"), md5(&real), "{out}");
    assert_eq!(
        get("cuDriverGetVersion"),
        series.cuda_driver_version().to_string(),
        "{out}"
    );
    assert_eq!(get("cuInit"), "100", "{out}");
    assert_eq!(get("libnvidia-ml"), "loaded", "{out}");
    assert_eq!(
        get("libnvidia-ml.path"),
        "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        "{out}"
    );
    assert_eq!(get("nvmlInit"), "9", "{out}");
    assert_eq!(get("probe.exit"), "0", "{out}");
    assert!(
        out.stdout.contains(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
        ),
        "{out}"
    );
    assert_eq!(get("smi.exit"), "9", "{out}");
}

/// The probe in a runc container of `version` on a real driver root.
fn probe_case(series: Series, layout: DriverLayout, version: CgroupVersion) {
    let cgroup = match version {
        CgroupVersion::V1 => Prereq::CgroupV1,
        CgroupVersion::V2 => Prereq::CgroupV2,
    };
    require!(
        BUILD[0],
        BUILD[1],
        BUILD[2],
        Prereq::Runc,
        cgroup,
        Prereq::Tool("gcc")
    );
    let host = RealHost::new(series, layout).unwrap();
    let out = probe_in_runc(&host, version);
    assert_real_answers(&host, &out);
}

#[test]
fn probe_535_debian_v1() {
    probe_case(Series::R535, DriverLayout::Debian, CgroupVersion::V1);
}

#[test]
fn probe_535_installer_v2() {
    probe_case(Series::R535, DriverLayout::Installer, CgroupVersion::V2);
}

#[test]
fn probe_470_installer_v1() {
    probe_case(Series::Tesla470, DriverLayout::Installer, CgroupVersion::V1);
}

#[test]
fn probe_470_debian_v2() {
    probe_case(Series::Tesla470, DriverLayout::Debian, CgroupVersion::V2);
}

/// A half-finished upgrade: NVML (the running driver) says 535.309.01, the
/// files are Tesla 470's. The inventory says so in one line instead of
/// listing no file.
#[test]
fn nvml_and_files_disagree() {
    require!(BUILD[0], BUILD[1], BUILD[2]);
    let driver = fixtures::real_driver::ensure(Series::Tesla470, DriverLayout::Debian).unwrap();
    let host = RealHost::with_nvml_version(driver, Some("535.309.01")).unwrap();
    let out = host.inventory().unwrap();
    out.assert_failure();
    let expected = format!(
        "nvidia-docker-hook: driver version mismatch: NVML ({}) reports driver 535.309.01 \
         but the driver files in {} are version {} (libcuda.so.{}); finish the driver \
         upgrade and reboot (or reload the nvidia kernel module) so that both are the same \
         version\n",
        host.sim.layout.nvml_lib.display(),
        host.driver.root.display(),
        host.driver.version,
        host.driver.version,
    );
    assert_eq!(out.stderr, expected, "{out}");
}

/// A runc container asking `cuda>=<want>` on a real host, and whether it
/// started (its stderr otherwise).
fn require_cuda(host: &RealHost, want: &str, disable: bool) -> e2e::Output {
    let mut b = Bundle::builder(Variant::Debian)
        .sh("echo started")
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .env("NVIDIA_REQUIRE_CUDA", &format!("cuda>={want}"))
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap());
    if disable {
        b = b.env("NVIDIA_DISABLE_REQUIRE", "true");
    }
    runc_run(&b.build().unwrap(), CgroupVersion::V1).unwrap()
}

/// CUDA compatibility with the real versions: a Tesla 470 host (CUDA 11.4)
/// refuses a `cuda>=12.0` image with the table's line and starts it with
/// `NVIDIA_DISABLE_REQUIRE`; a 535 host (CUDA 12.2) starts `cuda>=12.2` and
/// refuses `cuda>=12.4`.
#[test]
fn cuda_requirements_against_real_versions() {
    require!(BUILD[0], BUILD[1], BUILD[2], Prereq::Runc, Prereq::CgroupV1);
    let old = RealHost::new(Series::Tesla470, DriverLayout::Installer).unwrap();
    let out = require_cuda(&old, "12.0", false);
    out.assert_failure();
    for part in [
        "CUDA 12.0 needs driver >=",
        &old.driver.version,
        "NVIDIA_DISABLE_REQUIRE",
    ] {
        assert!(out.stderr.contains(part), "stderr lacks {part:?}:\n{out}");
    }
    assert!(!out.stdout.contains("started"), "{out}");
    let out = require_cuda(&old, "12.0", true);
    out.assert_success();
    assert_eq!(out.stdout, "started\n", "{out}");

    let new = RealHost::new(Series::R535, DriverLayout::Debian).unwrap();
    let out = require_cuda(&new, "12.2", false);
    out.assert_success();
    assert_eq!(out.stdout, "started\n", "{out}");
    let out = require_cuda(&new, "12.4", false);
    out.assert_failure();
    for part in [
        "CUDA 12.4 needs driver >=",
        &new.driver.version,
        "NVIDIA_DISABLE_REQUIRE",
    ] {
        assert!(out.stderr.contains(part), "stderr lacks {part:?}:\n{out}");
    }
}

/// A containerised driver: the 535 Debian tree bind-mounted read-only at
/// `<host>/run/nvidia/driver` (the GPU Operator's place) and given to the
/// hook as `NVIDIA_DOCKER_DRIVER_ROOT`. The inventory records that root,
/// and the container loads the real libraries from it.
#[test]
fn containerised_driver_root() {
    require!(
        BUILD[0],
        BUILD[1],
        BUILD[2],
        Prereq::Runc,
        Prereq::CgroupV2,
        Prereq::Tool("gcc")
    );
    let host = RealHost::containerised(Series::R535, DriverLayout::Debian).unwrap();
    assert!(host.driver_root.ends_with("run/nvidia/driver"));
    let inv = host.inventory_json().unwrap();
    assert_eq!(
        inv["driver_root"],
        host.driver_root.to_string_lossy().as_ref(),
        "{inv}"
    );
    let out = probe_in_runc(&host, CgroupVersion::V2);
    assert_real_answers(&host, &out);
}

/// The i386 glibc files the `-m32` probe and the real i386 libraries need
/// (`libc6-i386`, pulled in by `gcc-multilib`), copied into the container's
/// `/usr/lib/i386-linux-gnu`, with the loader at `/lib/ld-linux.so.2`: the
/// test root file systems are 64-bit only.
const I386_GLIBC: &[&str] = &[
    "ld-linux.so.2",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
];

/// compat32: the probe built `-m32` loads the real i386 `libcuda.so.1` and
/// `libnvidia-ml.so.1` the hook mounted into `/usr/lib/i386-linux-gnu`.
fn compat32(series: Series, layout: DriverLayout) {
    require!(
        BUILD[0],
        BUILD[1],
        BUILD[2],
        Prereq::Runc,
        Prereq::CgroupV1,
        Prereq::Tool("gcc")
    );
    if !Path::new("/usr/lib32/libc.so.6").exists() {
        let why = "no i386 glibc in /usr/lib32: install gcc-multilib (scripts/install-deps)";
        assert!(!e2e::prereq::under_ci(), "{why}");
        eprintln!("SKIP compat32 {series:?} {layout:?}: {why}");
        return;
    }
    let host = RealHost::new(series, layout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exe = probe(dir.path(), true).unwrap();
    let bundle = Bundle::builder(Variant::Debian)
        .sh("/gpu-probe32; echo probe.exit=$?")
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .env("NVIDIA_DRIVER_CAPABILITIES", "compute,utility,compat32")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let root = bundle.rootfs();
    let lib32 = root.join("usr/lib/i386-linux-gnu");
    std::fs::create_dir_all(&lib32).unwrap();
    for name in I386_GLIBC {
        std::fs::copy(Path::new("/usr/lib32").join(name), lib32.join(name)).unwrap();
    }
    std::os::unix::fs::symlink(
        "/usr/lib/i386-linux-gnu/ld-linux.so.2",
        root.join("usr/lib/ld-linux.so.2"),
    )
    .unwrap();
    // An image with i386 glibc lists it in its own linker cache (Debian's
    // libc6:i386 ships this ld.so.conf.d entry); the hook only adds the
    // driver's libraries to the image's cache, it does not rescan the image.
    std::fs::write(
        root.join("etc/ld.so.conf.d/i386-linux-gnu.conf"),
        "/usr/lib/i386-linux-gnu\n",
    )
    .unwrap();
    let ldconfig = std::process::Command::new("ldconfig")
        .arg("-X")
        .arg("-r")
        .arg(&root)
        .status()
        .unwrap();
    assert!(
        ldconfig.success(),
        "ldconfig -r {}: {ldconfig}",
        root.display()
    );
    std::fs::copy(&exe, root.join("gpu-probe32")).unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    let v = probe_values(&out.stdout);
    let get = |k: &str| v.get(k).map(String::as_str).unwrap_or("<missing>");
    assert_eq!(get("probe.bits"), "32", "{out}");
    assert_eq!(get("libcuda"), "loaded", "{out}");
    assert_eq!(
        get("libcuda.path"),
        "/usr/lib/i386-linux-gnu/libcuda.so.1",
        "{out}"
    );
    assert_eq!(
        get("cuDriverGetVersion"),
        series.cuda_driver_version().to_string(),
        "{out}"
    );
    assert_eq!(get("libnvidia-ml"), "loaded", "{out}");
    assert_eq!(
        get("libnvidia-ml.path"),
        "/usr/lib/i386-linux-gnu/libnvidia-ml.so.1",
        "{out}"
    );
    assert_eq!(get("nvmlInit"), "9", "{out}");
}

#[test]
fn compat32_535_debian() {
    compat32(Series::R535, DriverLayout::Debian);
}

#[test]
fn compat32_470_installer() {
    compat32(Series::Tesla470, DriverLayout::Installer);
}

/// What a container asking `caps` must get of a series' table: the rows
/// (as `64 <name>` / `32 <name>`) of its libraries (video brings compute's,
/// display graphics'; the i386 rows with `compat32`), its binaries, and the
/// firmware (always).
fn expected_mounts(series: Series, version: &str, caps: &[&str]) -> BTreeSet<String> {
    let has = |c: &str| caps.contains(&c);
    let lib_cap =
        |c: &str| has(c) || (c == "compute" && has("video")) || (c == "graphics" && has("display"));
    let mut out = BTreeSet::new();
    for (label, name) in table(series) {
        let name = name.replace("{v}", version);
        let (bits, cap) = match label.strip_prefix("compat32 ") {
            Some(cap) => ("32", cap),
            None => ("64", *label),
        };
        let wanted = if cap == "firmware" {
            true
        } else if name.contains(".so") {
            lib_cap(cap) && (bits == "64" || has("compat32"))
        } else {
            has(cap)
        };
        if wanted {
            out.insert(format!("{bits} {name}"));
        }
    }
    out
}

/// Capability sets select the right real files: for each set, a runc
/// container's driver mounts (`/proc/self/mountinfo` under `/usr/lib`,
/// `/usr/bin`, `/lib/firmware`) are exactly the table's rows for it.
fn capability_sets(series: Series) {
    require!(BUILD[0], BUILD[1], BUILD[2], Prereq::Runc, Prereq::CgroupV1);
    let script = "awk '{print $5}' /proc/self/mountinfo | grep -E '^/(usr/)?(lib|bin)/' \
                  | while read m; do case $m in /usr/lib/i386-linux-gnu/*) b=32;; *) b=64;; esac; \
                  echo \"mount $b ${m##*/}\"; done";
    for layout in DriverLayout::ALL {
        let host = RealHost::new(series, layout).unwrap();
        let hook = host.prestart_hook().unwrap();
        for caps in [
            "utility",
            "compute",
            "video",
            "graphics",
            "display",
            "ngx",
            "utility,compute,compat32",
            "graphics,video,compat32",
        ] {
            let bundle = Bundle::builder(Variant::Debian)
                .sh(script)
                .env("NVIDIA_VISIBLE_DEVICES", "all")
                .env("NVIDIA_DRIVER_CAPABILITIES", caps)
                .hook(HookStage::Prestart, &hook)
                .build()
                .unwrap();
            let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
            out.assert_success();
            let got: BTreeSet<String> = out
                .stdout
                .lines()
                .filter_map(|l| l.strip_prefix("mount "))
                .map(str::to_owned)
                .collect();
            let list: Vec<&str> = caps.split(',').collect();
            let mut expected = expected_mounts(series, &host.driver.version, &list);
            expected.extend(loader_mounts(series, &host.driver.version, &list));
            let missing: Vec<_> = expected.difference(&got).collect();
            let extra: Vec<_> = got.difference(&expected).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{series:?} {layout:?} {caps}: missing {missing:?}, unexpected {extra:?}\n{out}"
            );
        }
    }
}

#[test]
fn capability_sets_535() {
    capability_sets(Series::R535);
}

#[test]
fn capability_sets_470() {
    capability_sets(Series::Tesla470);
}

/// The cache: once the roots exist, building them again downloads and
/// unpacks nothing (the package lists, the `.deb` files and the trees are
/// left as they are) and takes well under a second per root.
#[test]
fn second_run_uses_the_cache() {
    require!(BUILD[0], BUILD[1], BUILD[2]);
    for series in Series::ALL {
        for layout in DriverLayout::ALL {
            fixtures::real_driver::ensure(series, layout).unwrap();
        }
    }
    let cache = fixtures::real_driver::cache_dir();
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let watched: Vec<std::path::PathBuf> = Series::ALL
        .iter()
        .flat_map(|s| {
            let d = cache.join(s.name());
            [
                d.join("debs/stamp"),
                d.join("debs"),
                d.join("extracted/stamp"),
                d.join("debian/stamp"),
                d.join("installer/stamp"),
            ]
        })
        .chain([cache.join("apt/lists")])
        .collect();
    let before: Vec<_> = watched.iter().map(|p| mtime(p)).collect();
    let start = std::time::Instant::now();
    for series in Series::ALL {
        for layout in DriverLayout::ALL {
            fixtures::real_driver::ensure(series, layout).unwrap();
        }
    }
    let elapsed = start.elapsed();
    let after: Vec<_> = watched.iter().map(|p| mtime(p)).collect();
    assert_eq!(before, after, "the cache was rebuilt: {watched:?}");
    assert!(
        elapsed < std::time::Duration::from_secs(4),
        "four cached roots took {elapsed:?}"
    );
}
