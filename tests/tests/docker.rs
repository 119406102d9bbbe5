//! The harness against a real, private dockerd: imported test images run, and
//! their v1 labels and modern `NVIDIA_REQUIRE_CUDA` survive the import.
use e2e::{require, require_cuda_env, v1_labels, Dockerd, Prereq, Variant};

#[test]
fn docker_runs_imported_debian_image() {
    require!(Prereq::Dockerd);
    let dockerd = Dockerd::shared().unwrap();
    let image = "e2e/debian:v1-volume";
    dockerd
        .import(
            Variant::Debian,
            image,
            &["LABEL com.nvidia.volumes.needed=nvidia_driver"],
        )
        .unwrap();
    let out = dockerd
        .run_docker(&["run", "--rm", image, "/bin/sh", "-c", "echo hi"])
        .unwrap();
    assert!(
        out.success() && out.stdout == "hi\n",
        "{out}\n--- dockerd log ---\n{}",
        dockerd.log_tail(20)
    );
    let out = dockerd
        .run_docker(&["inspect", "--format", "{{json .Config.Labels}}", image])
        .unwrap();
    out.assert_success();
    let labels: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        labels["com.nvidia.volumes.needed"], "nvidia_driver",
        "{out}"
    );
}

#[test]
fn docker_images_carry_v1_labels_and_modern_env() {
    require!(Prereq::Dockerd);
    let dockerd = Dockerd::shared().unwrap();
    let plain = "e2e/debian:plain";
    let v1 = "e2e/debian:v1-cuda-8.0";
    let modern = "e2e/lib64:cuda-12.2";
    dockerd
        .import(Variant::Debian, plain, &[] as &[&str])
        .unwrap();
    dockerd
        .import(Variant::Debian, v1, &v1_labels("8.0"))
        .unwrap();
    dockerd
        .import(
            Variant::Lib64,
            modern,
            &[require_cuda_env(
                "cuda>=12.2 brand=tesla,driver>=470,driver<471",
            )],
        )
        .unwrap();
    let inspect = |image: &str| -> serde_json::Value {
        let out = dockerd
            .run_docker(&["inspect", "--format", "{{json .Config}}", image])
            .unwrap();
        out.assert_success();
        serde_json::from_str(&out.stdout).unwrap()
    };
    let config = inspect(plain);
    assert!(
        config["Labels"].as_object().map_or(true, |l| l.is_empty()),
        "{config}"
    );
    let config = inspect(v1);
    assert_eq!(
        config["Labels"]["com.nvidia.volumes.needed"],
        "nvidia_driver"
    );
    assert_eq!(config["Labels"]["com.nvidia.cuda.version"], "8.0");
    let config = inspect(modern);
    let env: Vec<&str> = config["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        env.contains(&"NVIDIA_REQUIRE_CUDA=cuda>=12.2 brand=tesla,driver>=470,driver<471"),
        "{config}"
    );
    // The env reaches the container process.
    let out = dockerd
        .run_docker(&[
            "run",
            "--rm",
            modern,
            "/bin/sh",
            "-c",
            "echo \"$NVIDIA_REQUIRE_CUDA\"",
        ])
        .unwrap();
    out.assert_success();
    assert_eq!(
        out.stdout,
        "cuda>=12.2 brand=tesla,driver>=470,driver<471\n"
    );
}

/// A private daemon with options: `--add-runtime` naming a wrapper that is
/// found only on the extra `PATH` given to dockerd (as a later suite puts
/// `nvidia-container-runtime-hook` there).
#[test]
fn private_dockerd_finds_a_runtime_on_its_path() {
    require!(Prereq::Dockerd);
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("calls.log");
    let wrapper = bin.path().join("e2e-runc-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec runc \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let dockerd = Dockerd::builder()
        .path_prepend(bin.path())
        .arg("--add-runtime=e2e-wrapped=e2e-runc-wrapper")
        .start()
        .unwrap();
    let image = "e2e/debian:plain";
    dockerd
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let out = dockerd
        .run_docker(&[
            "run",
            "--rm",
            "--runtime",
            "e2e-wrapped",
            image,
            "/bin/sh",
            "-c",
            "echo wrapped",
        ])
        .unwrap();
    assert!(
        out.success() && out.stdout == "wrapped\n",
        "{out}\n--- dockerd log ---\n{}",
        dockerd.log_tail(20)
    );
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(calls.contains("create"), "wrapper not used: {calls:?}");
}
