//! Property-based fuzzing of the policy's parsers of untrusted text: the
//! spec's environment (`NVIDIA_*`, swarm variables) and annotations, every
//! `NVIDIA_REQUIRE_*`, `NV_GPU` and image labels, the REST query values,
//! versions, device ids, volume names and the compat note's JSON. No input
//! may panic. `PROPTEST_CASES` cases per target (default 256); `scripts/fuzz`
//! runs them with large counts.
use std::collections::BTreeMap;

use proptest::prelude::*;
use rules::{Config, Env, Request, Requirement, RootfsFlavor};

/// proptest's defaults (`PROPTEST_CASES` cases, 256 unless set), without
/// regression files written into the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Values that look like what the variables hold, and anything at all.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "(all|none|void|[0-9]{1,3}|GPU-[0-9a-f-]{0,40}|MIG-[0-9a-f/-]{0,30}|[0-9]:[0-9]|0000:[0-9a-f:.]{0,12})([ ,]{0,2}(all|[0-9]{1,3}|GPU-[0-9a-f]{0,8}))*",
        "((cuda|driver|arch|brand)[<>=!]{1,2}[0-9.a-z]{0,12} ?){0,4}",
        "(compute|utility|graphics|video|display|compat32|all)(,[a-z0-9]{0,10}){0,4}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("NVIDIA_VISIBLE_DEVICES".to_owned()),
        Just("NVIDIA_DRIVER_CAPABILITIES".to_owned()),
        Just("NVIDIA_REQUIRE_CUDA".to_owned()),
        Just("NVIDIA_REQUIRE_DRIVER".to_owned()),
        Just("NVIDIA_DISABLE_REQUIRE".to_owned()),
        Just("NVIDIA_MIG_CONFIG_DEVICES".to_owned()),
        Just("NVIDIA_MIG_MONITOR_DEVICES".to_owned()),
        Just("NVIDIA_IMEX_CHANNELS".to_owned()),
        Just("CUDA_VERSION".to_owned()),
        Just("DOCKER_RESOURCE_GPU".to_owned()),
        "NVIDIA_REQUIRE_[A-Z0-9_]{0,8}",
        "\\PC{0,12}",
    ]
}

fn annotation_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("com.nvidia.volumes.needed".to_owned()),
        Just("com.nvidia.cuda.version".to_owned()),
        Just("cdi.k8s.io/nvidia".to_owned()),
        "(com\\.nvidia\\.|nvidia\\.com/)[a-z./-]{0,16}",
        "\\PC{0,16}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn spec_env_and_annotations(
        env in proptest::collection::vec((key(), value(), any::<bool>()), 0..8),
        annotations in proptest::collection::btree_map(annotation_key(), value(), 0..4),
        privileged in any::<bool>(),
        raw in proptest::collection::vec("\\PC{0,30}", 0..4),
    ) {
        let mut entries: Vec<String> = env
            .iter()
            .map(|(k, v, eq)| if *eq { format!("{k}={v}") } else { format!("{k}{v}") })
            .collect();
        entries.extend(raw);
        let env = Env::from_oci(&entries);
        let mut cfg = Config {
            swarm_resource: vec!["DOCKER_RESOURCE_GPU".to_owned()],
            ..Config::default()
        };
        let _ = Request::from_container(&env, &annotations, privileged, RootfsFlavor::default(), &cfg);
        cfg.disable_require = true;
        let _ = Request::from_container(&env, &annotations, privileged, RootfsFlavor::default(), &cfg);
    }

    #[test]
    fn require_expressions(variable in key(), text in value()) {
        let _ = Requirement::parse(&variable, &text);
        let _ = rules::require::parse_disable_require(&text);
        let _ = rules::require::parse_v1_cuda_label(&text);
    }

    #[test]
    fn nv_gpu_and_labels(
        nv_gpu in proptest::option::of(value()),
        labels in proptest::collection::btree_map(annotation_key(), value(), 0..4),
    ) {
        let _ = Request::from_nv_gpu(nv_gpu.as_deref(), &labels, &Config::default());
        let mut labels = labels;
        labels.insert("com.nvidia.volumes.needed".to_owned(), "nvidia_driver".to_owned());
        let _ = Request::from_nv_gpu(nv_gpu.as_deref(), &labels, &Config::default());
    }

    #[test]
    fn rest_query_values(dev in proptest::option::of(value()), vol in proptest::option::of(value())) {
        let _ = Request::from_v1_query(dev.as_deref(), vol.as_deref(), &Config::default());
    }

    #[test]
    fn small_parsers(text in value()) {
        let _ = rules::Version::parse(&text);
        let _ = rules::DeviceSelector::parse(&text);
        let _ = rules::PciBusId::parse(&text);
        let _ = rules::DeviceId::parse(&text);
        let _ = rules::v1::parse_docker_volume_name(&text);
        let _ = rules::v1::V1Volume::from_name(&text);
        let _ = rules::Capability::from_name(&text);
        let _ = rules::Capabilities::parse(&text, Config::default().supported_capabilities);
    }

    #[test]
    fn compat_note_json(text in prop_oneof![
        "\\PC{0,80}",
        "\\{\"(cuda|driver|version)[a-z_]{0,6}\":(\"[0-9.]{0,10}\"|[0-9]{0,12}|null|\\[\\]),?\\}",
    ]) {
        let _ = rules::CompatNote::from_json(&text);
    }
}

#[test]
fn one_real_request_parses() {
    let env = Env::from_oci(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=11.0"]);
    let req = Request::from_container(
        &env,
        &BTreeMap::new(),
        false,
        RootfsFlavor::default(),
        &Config::default(),
    )
    .unwrap();
    assert!(req.is_gpu());
}
