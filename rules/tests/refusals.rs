//! The exact text of refusals: product, not implementation detail.

mod common;

use std::collections::BTreeMap;

use common::*;
use rules::{plan, Config, Request, RootfsFlavor};

/// Builds the request and the plan on a 4-GPU host with driver 535.104.05 /
/// CUDA 12.2 and returns the refusal's text.
fn refused(env_pairs: &[(&str, &str)], annotations: &[(&str, &str)]) -> String {
    refused_on(&host(4), env_pairs, annotations)
}

fn refused_on(
    inv: &rules::Inventory,
    env_pairs: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> String {
    let ann: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = Config::default();
    let result = Request::from_container(
        &env(env_pairs),
        &ann,
        true,
        RootfsFlavor::DebianLike,
        &config,
    )
    .and_then(|r| plan(inv, &r, &config));
    match result {
        Ok(_) => panic!("not refused: {env_pairs:?}"),
        Err(e) => e.to_string(),
    }
}

/// (what, environment, annotations, expected text)
type Case<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    &'a str,
);

#[test]
fn refusal_texts() {
    let all = ("NVIDIA_VISIBLE_DEVICES", "all");
    let cases: &[Case] = &[
        (
            "too-new CUDA (the issue's example)",
            &[all, ("NVIDIA_REQUIRE_CUDA", "cuda>=12.4 brand=tesla,driver>=470,driver<471")],
            &[],
            "CUDA 12.4 needs driver >= 550.54.14 (minor-version compatible from 525.60.13); this host has 535.104.05 with CUDA 12.2: \
             upgrade the driver, use an image for CUDA <= 12.2, or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "too-new CUDA from a legacy image's CUDA_VERSION",
            &[("CUDA_VERSION", "12.4.1")],
            &[],
            "CUDA 12.4 needs driver >= 550.54.14 (minor-version compatible from 525.60.13); this host has 535.104.05 with CUDA 12.2: \
             upgrade the driver, use an image for CUDA <= 12.2, or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "too-new CUDA in another family (no minor-version compatibility)",
            &[all, ("NVIDIA_REQUIRE_CUDA", "cuda>=13.0")],
            &[],
            "CUDA 13.0 needs driver >= 580.65.06; this host has 535.104.05 with CUDA 12.2: \
             upgrade the driver, use an image for CUDA <= 12.2, or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "unknown GPU",
            &[("NVIDIA_VISIBLE_DEVICES", "0,7")],
            &[],
            "unknown GPU 7 in NVIDIA_VISIBLE_DEVICES; this host has 4 GPUs (indexes 0-3): \
             use an index, UUID or PCI bus id that nvidia-smi -L lists",
        ),
        (
            "unknown GPU by UUID",
            &[("NVIDIA_VISIBLE_DEVICES", "GPU-ffff")],
            &[],
            "unknown GPU GPU-ffff in NVIDIA_VISIBLE_DEVICES; this host has 4 GPUs (indexes 0-3): \
             use an index, UUID or PCI bus id that nvidia-smi -L lists",
        ),
        (
            "unparsable device id",
            &[("NVIDIA_VISIBLE_DEVICES", "gpu0")],
            &[],
            "invalid device \"gpu0\" in NVIDIA_VISIBLE_DEVICES: expected a comma list of all, none, void, \
             GPU indexes, GPU-/MIG- UUIDs, PCI bus ids or <gpu>:<mig>",
        ),
        (
            "MIG on a host without MIG",
            &[("NVIDIA_VISIBLE_DEVICES", "0:1")],
            &[],
            "MIG device 0:1 in NVIDIA_VISIBLE_DEVICES, but no GPU on this host has MIG mode enabled: select whole GPUs instead",
        ),
        (
            "bad capability",
            &[all, ("NVIDIA_DRIVER_CAPABILITIES", "compute,utilty")],
            &[],
            "unknown driver capability \"utilty\" in NVIDIA_DRIVER_CAPABILITIES=\"compute,utilty\": \
             expected a comma list of compute, compat32, graphics, utility, video, display, ngx, or all",
        ),
        (
            "bad expression: malformed",
            &[all, ("NVIDIA_REQUIRE_CUDA", "cuda>=12.x")],
            &[],
            "invalid NVIDIA_REQUIRE_CUDA=\"cuda>=12.x\": malformed condition \"cuda>=12.x\": \"12.x\" is not a version; \
             fix the image or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "bad expression: no operator",
            &[all, ("NVIDIA_REQUIRE_CUDA", "cuda12.2")],
            &[],
            "invalid NVIDIA_REQUIRE_CUDA=\"cuda12.2\": malformed condition \"cuda12.2\": expected <property><op><value> \
             with op one of = != < <= > >=; fix the image or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "bad expression: unknown property",
            &[all, ("NVIDIA_REQUIRE_GPU", "memory>=16")],
            &[],
            "invalid NVIDIA_REQUIRE_GPU=\"memory>=16\": unknown property \"memory\" in \"memory>=16\" \
             (expected cuda, driver, arch or brand); fix the image or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "bad expression: brand ordering",
            &[all, ("NVIDIA_REQUIRE_BRAND", "brand>tesla")],
            &[],
            "invalid NVIDIA_REQUIRE_BRAND=\"brand>tesla\": malformed condition \"brand>tesla\": brand takes = or != and a name; \
             fix the image or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "bad CUDA_VERSION",
            &[("CUDA_VERSION", "latest")],
            &[],
            "invalid CUDA_VERSION=\"latest\": expected a version such as 12.2.0; fix the image or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "driver condition",
            &[all, ("NVIDIA_REQUIRE_DRIVER", "driver>=550")],
            &[],
            "unsatisfied condition: driver>=550 (NVIDIA_REQUIRE_DRIVER); this host has driver 535.104.05: \
             use another driver or another image, or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "cuda upper bound",
            &[all, ("NVIDIA_REQUIRE_CUDA", "cuda<12")],
            &[],
            "unsatisfied condition: cuda<12 (NVIDIA_REQUIRE_CUDA); this host has CUDA 12.2 (driver 535.104.05): \
             use another driver or another image, or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "brand condition",
            &[("NVIDIA_VISIBLE_DEVICES", "2"), ("NVIDIA_REQUIRE_BRAND", "brand=geforce")],
            &[],
            "unsatisfied condition: brand=geforce (NVIDIA_REQUIRE_BRAND); GPU 2 (NVIDIA A100-SXM4-80GB) has brand Tesla: \
             select other GPUs with NVIDIA_VISIBLE_DEVICES, use another image, or set NVIDIA_DISABLE_REQUIRE=true",
        ),
        (
            "v1 label (v1's text)",
            &[],
            &[("com.nvidia.volumes.needed", "nvidia_driver"), ("com.nvidia.cuda.version", "13.0")],
            "unsupported CUDA version: driver 12.2 < image 13.0",
        ),
        (
            "v1 label that is no version",
            &[],
            &[("com.nvidia.volumes.needed", "nvidia_driver"), ("com.nvidia.cuda.version", "eight")],
            "invalid label com.nvidia.cuda.version=\"eight\": expected a CUDA version such as 8.0",
        ),
    ];
    for (what, env_pairs, ann, text) in cases {
        assert_eq!(refused(env_pairs, ann), *text, "{what}");
    }
}

#[test]
fn ambiguous_and_mig_texts() {
    let mut inv = host(2);
    inv.gpus[0].uuid = "GPU-8d8a3b52-0000-0000-0000-000000000000".into();
    inv.gpus[1].uuid = "GPU-8d9f0000-0000-0000-0000-000000000000".into();
    assert_eq!(
        refused_on(&inv, &[("NVIDIA_VISIBLE_DEVICES", "GPU-8d")], &[]),
        "ambiguous device GPU-8d in NVIDIA_VISIBLE_DEVICES: it matches both GPU-8d8a3b52-0000-0000-0000-000000000000 \
         and GPU-8d9f0000-0000-0000-0000-000000000000: give more of the UUID"
    );
    let mig = with_mig(host(2), 1);
    assert_eq!(
        refused_on(&mig, &[("NVIDIA_VISIBLE_DEVICES", "0:0")], &[]),
        "MIG device 0:0 in NVIDIA_VISIBLE_DEVICES, but GPU 0 does not have MIG mode enabled: select the whole GPU, or enable MIG mode on it"
    );
    assert_eq!(
        refused_on(&mig, &[("NVIDIA_VISIBLE_DEVICES", "1:4")], &[]),
        "unknown MIG device 1:4 in NVIDIA_VISIBLE_DEVICES; this host has 2 GPUs (indexes 0-1): \
         use a MIG-... UUID or <gpu>:<mig> index that nvidia-smi -L lists"
    );
    assert_eq!(
        refused_on(
            &mig,
            &[(
                "NVIDIA_VISIBLE_DEVICES",
                "MIG-cccccccc-0000-0000-0000-000000000000"
            )],
            &[]
        ),
        "unknown MIG device MIG-cccccccc-0000-0000-0000-000000000000 in NVIDIA_VISIBLE_DEVICES; this host has 2 GPUs (indexes 0-1): \
         use a MIG-... UUID or <gpu>:<mig> index that nvidia-smi -L lists"
    );
    assert_eq!(
        refused_on(
            &host(2),
            &[(
                "NVIDIA_VISIBLE_DEVICES",
                "MIG-aaaaaaaa-0000-0000-0000-000000000000"
            )],
            &[]
        ),
        "MIG device MIG-aaaaaaaa-0000-0000-0000-000000000000 in NVIDIA_VISIBLE_DEVICES, but no GPU on this host has MIG mode enabled: \
         select whole GPUs instead"
    );
    assert_eq!(
        refused_on(&host(0), &[("NVIDIA_VISIBLE_DEVICES", "0")], &[]),
        "unknown GPU 0 in NVIDIA_VISIBLE_DEVICES; this host has no GPU: use an index, UUID or PCI bus id that nvidia-smi -L lists"
    );
}

#[test]
fn v1_texts() {
    let config = Config::default();
    let inv = host(2);
    let mut labels = BTreeMap::new();
    labels.insert(
        "com.nvidia.volumes.needed".to_string(),
        "nvidia_driver".to_string(),
    );
    let nv_gpu = |ids: &str| {
        Request::from_nv_gpu(Some(ids), &labels, &config)
            .and_then(|r| plan(&inv, &r, &config))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(nv_gpu("0,2"), "invalid device: 2");
    assert_eq!(nv_gpu("GPU-ffff"), "invalid device: GPU-ffff");
    assert_eq!(nv_gpu("x"), "invalid device: x");
    assert_eq!(nv_gpu("0:1"), "invalid device: 0:1");
    let query = |dev: Option<&str>, vol: Option<&str>| {
        Request::from_v1_query(dev, vol, &config)
            .and_then(|r| plan(&inv, &r, &config))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(query(Some("0 5"), None), "invalid device: 5");
    assert_eq!(
        query(None, Some("nvidia_driver nvidia_foo")),
        "invalid volume: nvidia_foo"
    );
}

#[test]
fn the_unsupported_capability_text() {
    let config = Config {
        supported_capabilities: [rules::Capability::Utility, rules::Capability::Compute]
            .into_iter()
            .collect(),
        ..Config::default()
    };
    let err = Request::from_container(
        &env(&[
            ("NVIDIA_VISIBLE_DEVICES", "all"),
            ("NVIDIA_DRIVER_CAPABILITIES", "graphics"),
        ]),
        &BTreeMap::new(),
        true,
        RootfsFlavor::Lib64,
        &config,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "driver capability graphics in NVIDIA_DRIVER_CAPABILITIES is not enabled on this host \
         (supported-driver-capabilities: compute,utility): remove it or ask the administrator"
    );
}
