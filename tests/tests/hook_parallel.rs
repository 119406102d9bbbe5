//! 32 containers started at once with the hook (runc, cgroup v1 and v2
//! alternating), on one simulated host whose snapshot cache starts empty:
//! every one comes up with exactly its GPUs.
use std::thread;

use e2e::hook::{inside_script, lib_dir, Inside, SimHost};
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Prereq, Variant};

#[test]
fn thirty_two_containers_in_parallel() {
    require!(Prereq::Runc, Prereq::CgroupV1, Prereq::CgroupV2);
    let host = SimHost::synthetic(4).unwrap();
    let hook = host.prestart_hook().unwrap();
    let selections: [(&str, &[usize]); 4] = [
        ("all", &[0, 1, 2, 3]),
        ("0", &[0]),
        ("2,3", &[2, 3]),
        ("none", &[]),
    ];
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (visible, indexes) = selections[i % selections.len()];
                let variant = if i % 3 == 0 {
                    Variant::Lib64
                } else {
                    Variant::Debian
                };
                let cgroup = if i % 2 == 0 {
                    CgroupVersion::V1
                } else {
                    CgroupVersion::V2
                };
                let (host, hook) = (&host, &hook);
                s.spawn(move || {
                    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
                    let bundle = Bundle::builder(variant)
                        .sh(&inside_script(&lib))
                        .env("NVIDIA_VISIBLE_DEVICES", visible)
                        .hook(HookStage::Prestart, hook)
                        .build()
                        .unwrap();
                    let out = runc_run(&bundle, cgroup).unwrap();
                    (i, indexes, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, indexes, out) in &results {
        let context = format!("container {i}\n{out}");
        assert!(out.success(), "{context}");
        Inside::parse(&out.stdout).assert_gpus(&host, indexes, &context);
    }
}
