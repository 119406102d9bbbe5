//! Podman with what `nvidia-docker setup` generates, on a simulated 4-GPU
//! host: a CDI spec (`setup cdi`, loaded by Podman's own CDI library from
//! `/var/run/cdi`) and the hooks.d file (`setup hooks`).
//!
//! Podman 4.3 reads CDI specs only from `/etc/cdi` and `/var/run/cdi` (no
//! `cdi_spec_dirs` yet), so each test writes a uniquely named spec there
//! with a unique vendor (`e2e-<pid>-<n>.example.com/gpu`) and removes it.
use std::collections::BTreeSet;

use e2e::hook::{hook_binary, inside_script, lib_dir, Inside, SimHost};
use e2e::process::unique_name;
use e2e::{require, Podman, Prereq, Variant};
use serde_json::Value;

use crate::config_common::{run_setup, RemoveOnDrop};

/// A CDI spec for `host` in `/var/run/cdi`: (kind, the file's guard).
pub(crate) fn cdi_spec(host: &SimHost, format: &str) -> (String, RemoveOnDrop) {
    let unique = unique_name("e2e");
    let vendor = format!("{unique}.example.com");
    let file = std::path::PathBuf::from(format!("/var/run/cdi/{unique}.{format}"));
    let hook = hook_binary().unwrap();
    run_setup(
        host,
        &[
            "cdi",
            "--vendor",
            &vendor,
            "--format",
            format,
            "--hook-path",
            hook.to_str().unwrap(),
            "--output-file",
            file.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    (format!("{vendor}/gpu"), RemoveOnDrop(file))
}

pub(crate) fn run_with_devices(
    podman: &Podman,
    image: &str,
    devices: &[String],
    script: &str,
) -> e2e::Output {
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    for d in devices {
        args.push("--device".into());
        args.push(d.clone());
    }
    args.extend([
        image.to_owned(),
        "/bin/sh".into(),
        "-c".into(),
        script.to_owned(),
    ]);
    podman.run_podman(&args).unwrap()
}

/// What the container must see with CDI: exactly the expected nodes, with
/// `/dev/nvidia-modeset` (the spec serves every capability) (ENXIO
/// on open: allowed), the stand-in lists exactly the selected GPUs, the
/// library is read-only, the linker cache knows it; `/proc/driver/nvidia`
/// is masked with every GPU kept (see `cli::setup::cdi`).
#[track_caller]
fn assert_cdi(inside: &Inside, host: &SimHost, indexes: &[usize], context: &str) {
    // Every capability: /dev/nvidia-modeset (display) too.
    let mut seen = inside.clone();
    seen.proc_gpus = host.expected_proc_gpus(indexes);
    assert_eq!(
        seen.nodes.remove("/dev/nvidia-modeset"),
        Some((host.desc.nvidia_major, 254)),
        "{context}"
    );
    seen.assert_gpus(host, indexes, &context);
    let all: Vec<usize> = (0..host.desc.gpus.len()).collect();
    assert_eq!(inside.proc_gpus, host.expected_proc_gpus(&all), "{context}");
}

#[test]
fn podman_cdi_by_index_uuid_and_all() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(4).unwrap();
    let (kind, guard) = cdi_spec(&host, "json");
    let spec: Value = serde_json::from_slice(&std::fs::read(&guard.0).unwrap()).unwrap();
    // The minimum its fields need: names starting with a digit and
    // hostPath (the simulated dev root) both need 0.5.0.
    assert_eq!(spec["cdiVersion"], "0.5.0");
    let podman = Podman::new().unwrap();
    let variant = Variant::Debian;
    let image = "localhost/e2e/cdi-debian";
    podman.import(variant, image, &[] as &[&str]).unwrap();
    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
    let uuid2 = host.desc.gpus[2].uuid.clone();
    let cases: Vec<(Vec<String>, Vec<usize>)> = vec![
        (vec![format!("{kind}=0")], vec![0]),
        (vec![format!("{kind}=all")], vec![0, 1, 2, 3]),
        (
            vec![format!("{kind}={uuid2}"), format!("{kind}=3")],
            vec![2, 3],
        ),
    ];
    for (devices, indexes) in cases {
        let out = run_with_devices(&podman, image, &devices, &inside_script(&lib));
        let context = format!("{devices:?}\n{out}");
        assert!(out.success(), "{context}");
        assert_cdi(&Inside::parse(&out.stdout), &host, &indexes, &context);
    }
}

/// The YAML rendering is loaded by Podman too, and a lib64 image gets the
/// libraries where the spec puts them (the driver root's layout) with a
/// linker cache that finds them.
#[test]
fn podman_cdi_yaml_lib64_image() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(2).unwrap();
    let (kind, _guard) = cdi_spec(&host, "yaml");
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-lib64";
    podman
        .import(Variant::Lib64, image, &[] as &[&str])
        .unwrap();
    let out = run_with_devices(
        &podman,
        image,
        &[format!("{kind}=1")],
        "nvidia-smi -L; ldconfig -p | grep -c 'libcuda.so.1 (libc6,x86-64)'; echo $NVIDIA_VISIBLE_DEVICES",
    );
    assert!(out.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..1], host.expected_listing(&[1])[..], "{out}");
    assert_eq!(lines[1..], ["1", "void"], "{out}");
}

/// Podman's own CDI library loads the generated spec and validates it: a
/// copy with a field the schema does not have is refused, and so is a
/// device the spec does not name. (Podman 4.3's library does not check the
/// minimum version itself; `cli::setup::cdi::min_version` follows its
/// rules and is unit-tested.)
#[test]
fn podman_validates_the_generated_spec() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(1).unwrap();
    let (kind, guard) = cdi_spec(&host, "json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&guard.0).unwrap()).unwrap();
    let bad_vendor = format!("{}-bad.example.com", unique_name("e2e"));
    spec["kind"] = Value::from(format!("{bad_vendor}/gpu"));
    spec["devices"][0]["containerEdits"]["deviceNodes"][0]["notAField"] = Value::from(1);
    let bad = RemoveOnDrop(guard.0.with_file_name(format!("{bad_vendor}.json")));
    std::fs::write(&bad.0, serde_json::to_vec(&spec).unwrap()).unwrap();
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-min";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let ok = run_with_devices(&podman, image, &[format!("{kind}=0")], "true");
    assert!(ok.success(), "{ok}");
    let bad_run = run_with_devices(&podman, image, &[format!("{bad_vendor}/gpu=0")], "true");
    assert!(
        !bad_run.success(),
        "a spec with an unknown field was accepted:\n{bad_run}"
    );
    let unknown = run_with_devices(&podman, image, &[format!("{kind}=9")], "true");
    assert!(!unknown.success(), "{unknown}");
}

/// Issue 12: the spec's device nodes are path and host path only, so the
/// runtime reads type and numbers from the host node when it creates the
/// container. `nvidia-uvm`'s major is given by the kernel at module load:
/// after a reload with another major, the same spec gives the new node.
#[test]
fn podman_cdi_nodes_follow_a_changed_uvm_major() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(1).unwrap();
    let (kind, _guard) = cdi_spec(&host, "json");
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-uvm";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let script = "stat -c '%t %T' /dev/nvidia-uvm";
    let before = run_with_devices(&podman, image, &[format!("{kind}=0")], script);
    assert!(before.success(), "{before}");
    let old = host.desc.uvm_major;
    assert_eq!(before.stdout.trim(), format!("{old:x} 0"), "{before}");
    // The module reloaded: the kernel gave it another major.
    let new = old + 7;
    let uvm = host.layout.dev_root.join("nvidia-uvm");
    std::fs::remove_file(&uvm).unwrap();
    let made = std::process::Command::new("mknod")
        .args([uvm.to_str().unwrap(), "c", &new.to_string(), "0"])
        .status()
        .unwrap();
    assert!(made.success());
    let after = run_with_devices(&podman, image, &[format!("{kind}=0")], script);
    assert!(after.success(), "{after}");
    assert_eq!(after.stdout.trim(), format!("{new:x} 0"), "{after}");
}

/// Issue 12: CDI specs had no CUDA forward-compatibility step while the
/// hook and the runc wrapper had one. The spec's hook now looks at the
/// image's compat library when the container is created: with a library
/// newer than the host driver (535) whose note lists its branch, the compat
/// `libcuda.so.1` comes first in the linker cache.
#[test]
fn podman_cdi_forward_compatibility() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(1).unwrap();
    let (kind, _guard) = cdi_spec(&host, "json");
    let compat = host.dir().join("compat");
    std::fs::create_dir_all(&compat).unwrap();
    let lib = fixtures::elf::SharedObject::new(fixtures::elf::Arch::X86_64, "libcuda.so.1")
        .with_note(
            ".note.cuda.fwd_compatibility",
            "NVIDIA Corporation",
            1,
            br#"{"format":1,"CUDA version":"12.9","driver":[535,550,560,565,570,575]}"#,
        )
        .to_bytes()
        .unwrap();
    std::fs::write(compat.join("libcuda.so.575.57.08"), lib).unwrap();
    std::os::unix::fs::symlink("libcuda.so.575.57.08", compat.join("libcuda.so.1")).unwrap();
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-compat";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let script = r#"ldconfig -p | grep -E '^[[:space:]]*libcuda\.so\.1 ' | sed 's/^[[:space:]]*/ldconfig /'"#;
    let run = |volume: bool| {
        let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
        if volume {
            args.push("-v".into());
            args.push(format!("{}:/usr/local/cuda/compat:ro", compat.display()));
        }
        args.extend([
            "--device".into(),
            format!("{kind}=0"),
            image.to_owned(),
            "/bin/sh".into(),
            "-c".into(),
            script.to_owned(),
        ]);
        podman.run_podman(&args).unwrap()
    };
    let out = run(true);
    assert!(out.success(), "{out}");
    // 64-bit: the spec also serves compat32.
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("x86-64"))
        .collect();
    assert_eq!(lines.len(), 2, "compat and host libcuda.so.1:\n{out}");
    assert!(
        lines[0].ends_with("=> /usr/local/cuda/compat/libcuda.so.1"),
        "the compat library comes first:\n{out}"
    );
    // Without a compat library in the image: the host's alone.
    let out = run(false);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout.lines().filter(|l| l.contains("x86-64")).count(),
        1,
        "{out}"
    );
    assert!(!out.stdout.contains("compat"), "{out}");
}

/// Issue 12: the spec for a host without GPUs was refused by the CDI
/// library (a device `all` with empty edits). Now Podman loads it and
/// `all` gives the driver: the control node and the stand-in `nvidia-smi`.
#[test]
fn podman_loads_the_spec_of_a_host_without_gpus() {
    require!(Prereq::Podman);
    let mut desc = fixtures::host_desc::HostDescription::synthetic(1, "535.104.05", "12.2");
    desc.gpus.clear();
    desc.links.clear();
    let host = SimHost::generate(desc).unwrap();
    let (kind, _guard) = cdi_spec(&host, "json");
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-nogpu";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    let out = run_with_devices(
        &podman,
        image,
        &[format!("{kind}=all")],
        "[ -c /dev/nvidiactl ] && echo ctl; ls /dev | grep -c '^nvidia[0-9]'; true",
    );
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim(), "ctl\n0", "{out}");
}

/// `setup hooks` (with the built hook's path; the simulated host's roots
/// are carried into the hook's `env`): Podman runs the hook.
#[test]
fn podman_with_generated_hooks_d() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(4).unwrap();
    let dir = host.dir().join("generated-hooks.d");
    let file = dir.join("oci-nvidia-docker-hook.json");
    let hook = hook_binary().unwrap();
    run_setup(
        &host,
        &[
            "hooks",
            "--hook-path",
            hook.to_str().unwrap(),
            "--output-file",
            file.to_str().unwrap(),
            // Hook mode whatever the host's Podman uses: nothing under /etc.
            "--mode",
            "hook",
            "--write",
        ],
        &[],
    )
    .unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let env: BTreeSet<String> = written["hook"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    assert!(
        env.iter().any(|e| e.starts_with("NVIDIA_DOCKER_DEV_ROOT=")),
        "{env:?}"
    );
    assert!(!env.iter().any(|e| e.starts_with("NVML_MOCK")), "{env:?}");
    // The mock NVML of the discovery child needs its dev root: the one
    // variable of the simulation that is not the hook's configuration.
    let mut json = written.clone();
    json["hook"]["env"]
        .as_array_mut()
        .unwrap()
        .push(Value::from(format!(
            "NVML_MOCK_DEV_ROOT={}",
            host.layout.dev_root.display()
        )));
    std::fs::write(&file, serde_json::to_vec_pretty(&json).unwrap()).unwrap();

    let podman = Podman::builder().hooks_dir(&dir).build().unwrap();
    podman_gives_gpu_1(&podman, &host, "localhost/e2e/hooks-debian");
}

/// Imports the Debian rootfs into `podman` as `image` and runs it with
/// `NVIDIA_VISIBLE_DEVICES=1`: the container sees exactly GPU 1 of `host`.
pub(crate) fn podman_gives_gpu_1(podman: &Podman, host: &SimHost, image: &str) {
    let variant = Variant::Debian;
    podman.import(variant, image, &[] as &[&str]).unwrap();
    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
    let out = podman
        .run_podman(&[
            "run",
            "--rm",
            "--env",
            "NVIDIA_VISIBLE_DEVICES=1",
            image,
            "/bin/sh",
            "-c",
            &inside_script(&lib),
        ])
        .unwrap();
    assert!(out.success(), "{out}");
    Inside::parse(&out.stdout).assert_gpus(host, &[1], &out);
}
