//! Issue 12's proof through the CRI: a private containerd (Debian's, its CRI
//! plugin on, its own root, state and socket, host networking so no CNI, a
//! sandbox image built here and imported) driven over its gRPC API as a
//! kubelet drives it (`e2e::containerd`), on a simulated 4-GPU host, with
//! the node set up the secure way: the `nvidia` runtime handler is the runc
//! wrapper, registered by `nvidia-docker setup containerd --drop-in` (a
//! `conf.d/99-nvidia.toml` imported from the daemon's config, as the GPU
//! Operator writes it), `accept-nvidia-visible-devices-envvar-when-unprivileged
//! = false` and `accept-nvidia-visible-devices-as-volume-mounts = true`.
//!
//! One daemon serves every step (each step is one pod, created, started,
//! read through its CRI log and removed):
//! - two pods, each given a different GPU by the device plugin's
//!   volume-mounts strategy (and one by a `cdi.k8s.io/` annotation);
//! - an unprivileged pod that sets `NVIDIA_VISIBLE_DEVICES=all` itself gets
//!   no GPU; a privileged one gets them all;
//! - a GPU is kept after `UpdateContainerResources` (the selected node
//!   still opens with ENXIO, allowed, not EPERM);
//! - the runtime handler is selected by name: the same pod under `runc`
//!   (no GPU support) has no GPU.
//!
//! Not covered: the CRI `CDIDevices` field (`cdi-cri`): containerd 1.6
//! ignores it (CDI arrived in containerd 1.7).
use e2e::containerd::{Containerd, Cri, PodRun, PodSpec};
use e2e::hook::{inside_script, lib_dir, Inside, SimHost};
use e2e::{require, Prereq, Variant};

use crate::config_common::{run_setup, wrapper_binary, wrapper_env};

const SECURE: &str = "accept-nvidia-visible-devices-envvar-when-unprivileged = false\n\
accept-nvidia-visible-devices-as-volume-mounts = true\n";

fn device_mount(id: &str) -> (String, String) {
    (
        "/dev/null".to_owned(),
        format!("/var/run/nvidia-container-devices/{id}"),
    )
}

fn inside(run: &PodRun) -> Inside {
    Inside::parse(&run.lines.join("\n"))
}

#[track_caller]
fn assert_gpus(host: &SimHost, run: &PodRun, indexes: &[usize], step: &str) {
    assert_eq!(run.exit_code, 0, "{step}:\n{run}");
    let got = inside(run);
    if indexes.is_empty() {
        assert!(got.done, "{step}:\n{run}");
        assert!(got.nodes.is_empty(), "{step}: no GPU expected:\n{run}");
    } else {
        got.assert_gpus(host, indexes, &format!("{step}:\n{run}"));
    }
}

/// Called right after `StartContainer`, while the script sleeps.
fn update(cri: &mut Cri, id: &str) -> anyhow::Result<()> {
    cri.update_resources(id)
}

#[test]
fn cri_device_plugin_contracts() {
    require!(Prereq::Containerd);
    let host = SimHost::synthetic(4).unwrap();
    host.write_config(SECURE).unwrap();
    let wrapper = wrapper_binary().unwrap();
    let daemon =
        Containerd::start_with(&[("runc", None)], &wrapper_env(&host).unwrap(), |config| {
            let drop_in = config.with_file_name("conf.d/99-nvidia.toml");
            run_setup(
                &host,
                &[
                    "containerd",
                    "--config",
                    config.to_str().unwrap(),
                    "--drop-in",
                    drop_in.to_str().unwrap(),
                    "--runtime-path",
                    wrapper.to_str().unwrap(),
                    "--write",
                ],
                &[],
            )?;
            Ok(())
        })
        .unwrap();
    let mut cri = daemon.cri().unwrap();
    let mut run = |spec: PodSpec| {
        cri.run_pod(&spec)
            .unwrap_or_else(|e| panic!("{e:#}\ncontainerd log:\n{}", daemon.log_tail()))
    };
    let lib = format!("{}/{}", lib_dir(Variant::Debian), host.libcuda());
    let script = inside_script(&lib);
    let pod = |edit: &dyn Fn(&mut PodSpec)| {
        let mut spec = PodSpec {
            handler: "nvidia".into(),
            script: script.clone(),
            ..PodSpec::default()
        };
        edit(&mut spec);
        spec
    };
    let volume_env = || {
        vec![(
            "NVIDIA_VISIBLE_DEVICES".to_owned(),
            "/var/run/nvidia-container-devices".to_owned(),
        )]
    };

    // Two pods, each with its own GPU (volume-mounts strategy, by UUID and
    // by index).
    let uuid1 = host.desc.gpus[1].uuid.clone();
    let a = run(pod(&|s| {
        s.env = volume_env();
        s.mounts = vec![device_mount(&uuid1)];
    }));
    assert_gpus(&host, &a, &[1], "pod A (volume mount GPU 1)");
    let b = run(pod(&|s| {
        s.env = volume_env();
        s.mounts = vec![device_mount("3")];
    }));
    assert_gpus(&host, &b, &[3], "pod B (volume mount GPU 3)");

    // cdi-annotations: answered from the inventory by the wrapper.
    let c = run(pod(&|s| {
        s.annotations = vec![(
            "cdi.k8s.io/nvidia-device-plugin_main".into(),
            "nvidia.com/gpu=2".into(),
        )];
    }));
    assert_gpus(&host, &c, &[2], "pod C (cdi.k8s.io annotation GPU 2)");

    // An unprivileged pod asking for every GPU itself: ignored.
    let all = || vec![("NVIDIA_VISIBLE_DEVICES".to_owned(), "all".to_owned())];
    let d = run(pod(&|s| s.env = all()));
    assert_gpus(&host, &d, &[], "unprivileged NVIDIA_VISIBLE_DEVICES=all");
    let e = run(pod(&|s| {
        s.env = all();
        s.privileged = true;
    }));
    assert_eq!(e.exit_code, 0, "{e}");
    assert_eq!(
        inside(&e).smi,
        host.expected_listing(&[0, 1, 2, 3]),
        "privileged NVIDIA_VISIBLE_DEVICES=all:\n{e}"
    );

    // The GPU is kept after UpdateContainerResources.
    let f = run(pod(&|s| {
        s.env = volume_env();
        s.mounts = vec![device_mount("0")];
        // The new CPU quota shows the update reached the cgroup (v1, or v2's
        // cpu.max).
        s.script = format!(
            "sleep 3\necho quota $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max)\n{script}"
        );
        s.after_start = Some(update);
    }));
    assert!(
        f.lines.iter().any(|l| l == "quota 50000"),
        "the update did not reach the container:\n{f}"
    );
    assert_gpus(&host, &f, &[0], "after UpdateContainerResources");

    // The handler is selected by name: plain runc gives no GPU.
    let g = run(pod(&|s| {
        s.handler = "runc".into();
        s.env = volume_env();
        s.mounts = vec![device_mount("0")];
    }));
    assert_gpus(&host, &g, &[], "handler runc");
}
