//! `docker run --gpus` with the hook installed as
//! `nvidia-container-runtime-hook` on a private dockerd's `PATH` (dockerd
//! from the distribution; it passes its own environment to the hook, which
//! is how the simulated host's roots reach it): the same checks as under
//! runc for nodes, mounts, the linker cache and the stand-in.
use e2e::hook::{inside_script, lib_dir, Inside, SimHost};
use e2e::{require, Dockerd, Prereq, Variant};

#[test]
fn docker_run_gpus() {
    require!(Prereq::Dockerd);
    let host = SimHost::synthetic(4).unwrap();
    let mut builder = Dockerd::builder().path_prepend(host.toolkit_bin_dir().unwrap());
    for (k, v) in host.env() {
        builder = builder.env(k, v);
    }
    let dockerd = builder.start().unwrap();
    let cases: &[(Variant, &str, &[usize])] = &[
        (Variant::Debian, "all", &[0, 1, 2, 3]),
        (Variant::Lib64, "device=1", &[1]),
        (Variant::Debian, "2", &[0, 1]),
    ];
    for &(variant, gpus, indexes) in cases {
        let image = format!("e2e/hook-{variant}");
        dockerd.import(variant, &image, &[] as &[&str]).unwrap();
        let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
        let out = dockerd
            .run_docker(&[
                "run",
                "--rm",
                "--gpus",
                gpus,
                &image,
                "/bin/sh",
                "-c",
                &inside_script(&lib),
            ])
            .unwrap();
        let context = format!(
            "--gpus {gpus} ({variant})\n{out}\n--- dockerd log ---\n{}",
            dockerd.log_tail(20)
        );
        assert!(out.success(), "{context}");
        Inside::parse(&out.stdout).assert_gpus(&host, indexes, &context);
    }
    // Without --gpus: no hook at all, no GPU.
    let out = dockerd
        .run_docker(&["run", "--rm", "e2e/hook-debian", "/bin/sh", "-c", "ls /dev"])
        .unwrap();
    out.assert_success();
    assert!(!out.stdout.contains("nvidia"), "{out}");
}
