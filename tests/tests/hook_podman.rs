//! Podman with the shipped `packaging/oci-hooks.d` file (a copy with the
//! built hook's path and the simulated host's variables added to its `env`;
//! `when` and `stages` as shipped): the same checks as under runc.
//!
//! The shipped file says `"when": {"always": true}`: `hooks.d` conditions
//! can see annotations, the command and bind mounts, never the process
//! environment, so "only containers with `NVIDIA_VISIBLE_DEVICES`" cannot be
//! expressed; the hook itself returns at once for a container that asks for
//! no GPU (one read of `config.json`).
use e2e::hook::{inside_script, lib_dir, Inside, SimHost};
use e2e::{require, Podman, Prereq, Variant};

#[test]
fn podman_with_hooks_d() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(4).unwrap();
    let podman = Podman::builder()
        .hooks_dir(host.hooks_dir().unwrap())
        .build()
        .unwrap();
    let cases: &[(Variant, &str, &[usize])] = &[
        (Variant::Debian, "all", &[0, 1, 2, 3]),
        (Variant::Lib64, "3", &[3]),
        (Variant::Debian, "none", &[]),
    ];
    for &(variant, visible, indexes) in cases {
        let image = format!("localhost/e2e/hook-{variant}");
        podman.import(variant, &image, &[] as &[&str]).unwrap();
        let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
        let env = format!("NVIDIA_VISIBLE_DEVICES={visible}");
        let out = podman
            .run_podman(&[
                "run",
                "--rm",
                "--env",
                &env,
                &image,
                "/bin/sh",
                "-c",
                &inside_script(&lib),
            ])
            .unwrap();
        let context = format!("{env} ({variant})\n{out}");
        assert!(out.success(), "{context}");
        Inside::parse(&out.stdout).assert_gpus(&host, indexes, &context);
    }
    // A container without the variable: untouched.
    let out = podman
        .run_podman(&[
            "run",
            "--rm",
            "localhost/e2e/hook-debian",
            "/bin/sh",
            "-c",
            "ls /dev",
        ])
        .unwrap();
    out.assert_success();
    assert!(!out.stdout.contains("nvidia"), "{out}");
}
