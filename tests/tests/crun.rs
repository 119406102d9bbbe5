//! crun (Debian's 1.8) as the runtime, under cgroup v2 (crun refuses this
//! machine's hybrid layout for v1), on a simulated 4-GPU host: the prestart
//! hook, and the runc wrapper with crun as the real runtime, whose
//! `createRuntime` step makes the driver mounts, links and linker cache.
//! crun runs `createRuntime` entries at the point where it runs `prestart`
//! ones (after the container's mounts, before `pivot_root`), and puts the
//! spec's `root.path` as written (`rootfs`, relative to the bundle) in the
//! state's `root`. These suites show both ways give the container exactly
//! its GPUs (nodes, ENXIO on open and EPERM for an unselected GPU's node,
//! the stand-in `nvidia-smi`, read-only libraries, `ldconfig -p`, `/proc`).
use e2e::hook::{inside_script, lib_dir, selection_probe, Inside, SimHost, SELECTION_ONLY};
use e2e::{require, Bundle, CgroupVersion, Output, Prereq, Runtime, Variant};

use crate::config_common::Via;

/// `crun run` of `bundle` under cgroup v2, through the wrapper or not.
fn start(via: Via, host: &SimHost, bundle: &Bundle) -> Output {
    via.run(Runtime::Crun, host, bundle, CgroupVersion::V2)
        .unwrap()
}

fn run(via: Via, variant: Variant, visible: &str, indexes: &[usize]) {
    require!(Prereq::Crun, Prereq::CgroupV2);
    let host = SimHost::synthetic(4).unwrap();
    // crun does not pass on a failing hook's stderr: its log says why.
    host.enable_debug_log().unwrap();
    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
    let builder = Bundle::builder(variant)
        .sh(&inside_script(&lib))
        .env("NVIDIA_VISIBLE_DEVICES", visible);
    let bundle = via.register(&host, builder).build().unwrap();
    let out = start(via, &host, &bundle);
    if !out.status.success() {
        let log = std::fs::read_to_string(host.debug_log()).unwrap_or_default();
        panic!("{out}\nthe hook's log:\n{log}");
    }
    Inside::parse(&out.stdout).assert_gpus(&host, indexes, &out);
}

#[test]
fn prestart_all_debian() {
    run(Via::Prestart, Variant::Debian, "all", &[0, 1, 2, 3]);
}

#[test]
fn prestart_index_lib64() {
    run(Via::Prestart, Variant::Lib64, "1", &[1]);
}

#[test]
fn wrapper_all_debian() {
    run(Via::Wrapper, Variant::Debian, "all", &[0, 1, 2, 3]);
}

#[test]
fn wrapper_two_lib64() {
    run(Via::Wrapper, Variant::Lib64, "3,0", &[0, 3]);
}

/// The device program crun attaches, with the hook's rules added (prestart)
/// or built by crun from the spec's rules (wrapper): the selected GPU's node
/// opens with ENXIO (allowed, no driver), a node of an unselected GPU,
/// created by the bundle without a rule, fails with EPERM (denied).
#[test]
fn rules_allow_only_the_selection() {
    require!(Prereq::Crun, Prereq::CgroupV2);
    for via in [Via::Prestart, Via::Wrapper] {
        let host = SimHost::synthetic(4).unwrap();
        let builder = selection_probe(&host, 2, 0);
        let bundle = via.register(&host, builder).build().unwrap();
        let out = start(via, &host, &bundle);
        out.assert_success();
        assert_eq!(out.stdout, SELECTION_ONLY, "{via:?}\n{out}");
    }
}
