//! The runc wrapper (`nvidia-docker-runtime`) in front of the real runc,
//! on a simulated 4-GPU host, with no prestart hook registered: the spec
//! edits (devices, cgroup rules) plus the `createRuntime` step (driver
//! mounts and fix-ups) give the container its GPUs, under cgroup v1 and
//! v2; a bundle that asks for no GPU is left byte-identical.
use e2e::hook::{inside_script, lib_dir, selection_probe, Inside, SimHost};
use e2e::{require, Bundle, CgroupVersion, Prereq, Variant};
use serde_json::Value;

use crate::config_common::wrapped_runc_run;

fn gpu_bundle(variant: Variant, cgroup: CgroupVersion, visible: &str, indexes: &[usize]) {
    require!(Prereq::Runc, cgroup.prereq());
    let host = SimHost::synthetic(4).unwrap();
    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
    let bundle = Bundle::builder(variant)
        .sh(&inside_script(&lib))
        .env("NVIDIA_VISIBLE_DEVICES", visible)
        .build()
        .unwrap();
    let out = wrapped_runc_run(&host, &bundle, cgroup).unwrap();
    out.assert_success();
    Inside::parse(&out.stdout).assert_gpus(&host, indexes, &out);

    // The spec on disk carries the plan: nodes, exactly their rules, and
    // the step that mounts the driver files.
    let spec: Value =
        serde_json::from_slice(&std::fs::read(bundle.config_path()).unwrap()).unwrap();
    let nodes: Vec<(String, u64, u64)> = spec["linux"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_owned(),
                d["major"].as_u64().unwrap(),
                d["minor"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64, u64)> = host
        .expected_nodes(indexes)
        .into_iter()
        .map(|(p, (ma, mi))| (p, u64::from(ma), u64::from(mi)))
        .collect();
    let mut sorted = nodes.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    for (_, major, minor) in &nodes {
        let rules: Vec<&Value> = spec["linux"]["resources"]["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["major"] == *major && r["minor"] == *minor)
            .collect();
        assert_eq!(rules.len(), 1, "one rule for {major}:{minor}");
        assert_eq!(rules[0]["access"], "rw");
        assert_eq!(rules[0]["allow"], true);
    }
    // The driver mounts are the createRuntime step's, not spec mounts.
    assert!(!spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == lib.as_str()));
    let args = spec["hooks"]["createRuntime"][0]["args"]
        .as_array()
        .unwrap();
    assert!(
        args.iter().any(|a| a.as_str().is_some_and(
            |a| a.starts_with("file,ro,nosuid,nodev:") && a.ends_with(&format!("::{lib}"))
        )),
        "{args:?}"
    );
    assert_eq!(spec["annotations"]["nvidia-docker.plan"], "applied");
}

#[test]
fn wrapped_index_debian_v1() {
    gpu_bundle(Variant::Debian, CgroupVersion::V1, "1", &[1]);
}

#[test]
fn wrapped_two_lib64_v2() {
    gpu_bundle(Variant::Lib64, CgroupVersion::V2, "3,0", &[0, 3]);
}

#[test]
fn wrapped_all_debian_v2() {
    gpu_bundle(Variant::Debian, CgroupVersion::V2, "all", &[0, 1, 2, 3]);
}

/// No GPU asked for: `config.json` is byte-identical after the run, and no
/// inventory was looked at.
#[test]
fn wrapped_no_gpu_bundle_is_byte_identical() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    for visible in [None, Some("void")] {
        let mut b = Bundle::builder(Variant::Debian).sh("ls /dev; echo ok");
        if let Some(v) = visible {
            b = b.env("NVIDIA_VISIBLE_DEVICES", v);
        }
        let bundle = b.build().unwrap();
        let before = std::fs::read(bundle.config_path()).unwrap();
        let out = wrapped_runc_run(&host, &bundle, CgroupVersion::V1).unwrap();
        out.assert_success();
        assert!(out.stdout.ends_with("ok\n"), "{out}");
        assert!(!out.stdout.contains("nvidia"), "{out}");
        assert_eq!(std::fs::read(bundle.config_path()).unwrap(), before);
    }
    assert!(!host.dir().join("cache").exists());
}

/// The cgroup rules come from the spec alone: the selected GPU's node opens
/// with ENXIO (allowed, no driver) and a node of an unselected GPU, created
/// by the bundle without a rule, fails with EPERM (denied).
#[test]
fn wrapped_rules_allow_only_the_selection() {
    for cgroup in CgroupVersion::ALL {
        if !e2e::require_all(&[Prereq::Runc, cgroup.prereq()]) {
            continue;
        }
        let host = SimHost::synthetic(4).unwrap();
        let bundle = selection_probe(&host, 2, 0).build().unwrap();
        let out = wrapped_runc_run(&host, &bundle, cgroup).unwrap();
        out.assert_success();
        assert!(
            out.stdout.contains("sel No such device or address"),
            "{cgroup:?}\n{out}"
        );
        assert!(
            out.stdout.contains("other Operation not permitted"),
            "{cgroup:?}\n{out}"
        );
    }
}

/// A refusal fails `runc run` with the rules' line; the container never
/// starts.
#[test]
fn wrapped_refusal_fails_create() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(1).unwrap();
    let bundle = Bundle::builder(Variant::Debian)
        .sh("echo started")
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .env("NVIDIA_REQUIRE_CUDA", "cuda>=12.4")
        .build()
        .unwrap();
    let before = std::fs::read(bundle.config_path()).unwrap();
    let out = wrapped_runc_run(&host, &bundle, CgroupVersion::V1).unwrap();
    out.assert_failure();
    assert!(out.stderr.contains("CUDA 12.4 needs driver >="), "{out}");
    assert!(!out.stdout.contains("started"), "{out}");
    assert_eq!(std::fs::read(bundle.config_path()).unwrap(), before);
}
