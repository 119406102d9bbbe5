//! The simulated GPU host inside real runc containers (cgroup v1 and v2): with
//! the simulated devices, cgroup rules and driver files passed through
//! `config.json`, the `nvidia-smi` stand-in lists exactly the GPUs whose nodes
//! are present and allowed; a GPU whose node the device cgroup denies is not
//! listed.
use e2e::gpu::{library_dir, with_gpus, GpuAccess};
use e2e::{require, runc_run, Bundle, CgroupVersion, Prereq, Variant};
use fixtures::driver_root::{generate, Layout, Options};
use fixtures::host_desc::HostDescription;

/// A 4-GPU host whose minors differ from the indexes, so that a mix-up of
/// index and minor shows.
fn host(dir: &std::path::Path) -> (HostDescription, Layout) {
    let mut desc = HostDescription::synthetic(4, "535.104.05", "12.2");
    for (gpu, minor) in desc.gpus.iter_mut().zip([2, 0, 3, 1]) {
        gpu.minor = minor;
    }
    let opts = Options::locate().expect("build the workspace first");
    let layout = generate(&desc, &dir.join("host"), &opts).expect("generate the simulated host");
    (desc, layout)
}

/// `nvidia-smi -L` lines for `indexes` of `desc`, numbered as NVML numbers
/// the GPUs visible in the container.
fn expected_listing(desc: &HostDescription, indexes: &[usize]) -> String {
    indexes
        .iter()
        .enumerate()
        .map(|(i, &index)| {
            let gpu = &desc.gpus[index];
            format!("GPU {i}: {} (UUID: {})\n", gpu.name, gpu.uuid)
        })
        .collect()
}

fn run(variant: Variant, cgroup: CgroupVersion, access: GpuAccess, visible: &[usize]) {
    require!(Prereq::Runc, cgroup.prereq());
    let tmp = tempfile::tempdir().unwrap();
    let (desc, layout) = host(tmp.path());
    let script = format!("ldconfig {} && nvidia-smi -L", library_dir(variant));
    let bundle = with_gpus(
        Bundle::builder(variant).sh(&script),
        variant,
        &layout,
        &access,
    )
    .build()
    .unwrap();
    let out = runc_run(&bundle, cgroup).unwrap();
    out.assert_success();
    assert_eq!(out.stdout, expected_listing(&desc, visible), "{out}");
}

#[test]
fn all_gpus_present_and_allowed_v1() {
    run(
        Variant::Debian,
        CgroupVersion::V1,
        GpuAccess::allowed(&[0, 1, 2, 3]),
        &[0, 1, 2, 3],
    );
}

#[test]
fn denied_gpu_is_not_listed_v1() {
    let access = GpuAccess {
        nodes: [0, 1, 2, 3].into(),
        allowed: [0, 1, 3].into(),
    };
    run(Variant::Debian, CgroupVersion::V1, access, &[0, 1, 3]);
}

#[test]
fn denied_gpu_is_not_listed_v2() {
    let access = GpuAccess {
        nodes: [0, 1, 2, 3].into(),
        allowed: [0, 2, 3].into(),
    };
    run(Variant::Debian, CgroupVersion::V2, access, &[0, 2, 3]);
}

#[test]
fn absent_gpus_are_not_listed_v2() {
    run(
        Variant::Debian,
        CgroupVersion::V2,
        GpuAccess::allowed(&[1, 2]),
        &[1, 2],
    );
}

#[test]
fn lib64_rootfs_v1() {
    let access = GpuAccess {
        nodes: [0, 1, 2, 3].into(),
        allowed: [3].into(),
    };
    run(Variant::Lib64, CgroupVersion::V1, access, &[3]);
}

#[test]
fn no_allowed_gpu_lists_none() {
    require!(Prereq::Runc, CgroupVersion::V1.prereq());
    let tmp = tempfile::tempdir().unwrap();
    let (_desc, layout) = host(tmp.path());
    let access = GpuAccess {
        nodes: [0, 1].into(),
        allowed: [].into(),
    };
    let bundle = with_gpus(
        Bundle::builder(Variant::Debian).sh("ldconfig /usr/lib/x86_64-linux-gnu && nvidia-smi -L"),
        Variant::Debian,
        &layout,
        &access,
    )
    .build()
    .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    assert_eq!(out.status.code(), Some(6), "{out}");
    assert_eq!(out.stdout.trim(), "No devices were found", "{out}");
}
