//! The hook registered in runc's `config.json` (`hooks.prestart`), on a
//! simulated 4-GPU host, under cgroup v1 and v2, Debian-like and lib64
//! rootfs: `NVIDIA_VISIBLE_DEVICES=all`, `1`, a UUID and `none` give exactly
//! the expected nodes (ENXIO on open: allowed), the stand-in lists exactly
//! the selected GPUs, the libraries are read-only in the flavour's library
//! directory, `ldconfig -p` knows them, and `/proc/driver/nvidia/gpus` lists
//! only the selected GPUs. Refusals stop the container with the rules' line.
use e2e::hook::{inside_script, lib_dir, Inside, SimHost};
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Prereq, Variant};

fn run(variant: Variant, cgroup: CgroupVersion, visible: &str, indexes: &[usize]) {
    require!(Prereq::Runc, cgroup.prereq());
    let host = SimHost::synthetic(4).unwrap();
    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
    let bundle = Bundle::builder(variant)
        .sh(&inside_script(&lib))
        .env("NVIDIA_VISIBLE_DEVICES", visible)
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, cgroup).unwrap();
    out.assert_success();
    Inside::parse(&out.stdout).assert_gpus(&host, indexes, &out);
}

/// The UUID of GPU 2 of the synthetic host, in lower case (ids are matched
/// ignoring case).
fn uuid_of_2() -> String {
    let desc = fixtures::host_desc::HostDescription::synthetic(4, "535.104.05", "12.2");
    desc.gpus[2].uuid.to_ascii_lowercase()
}

#[test]
fn all_debian_v1() {
    run(Variant::Debian, CgroupVersion::V1, "all", &[0, 1, 2, 3]);
}

#[test]
fn all_lib64_v2() {
    run(Variant::Lib64, CgroupVersion::V2, "all", &[0, 1, 2, 3]);
}

#[test]
fn index_lib64_v1() {
    run(Variant::Lib64, CgroupVersion::V1, "1", &[1]);
}

#[test]
fn index_debian_v2() {
    run(Variant::Debian, CgroupVersion::V2, "1", &[1]);
}

#[test]
fn uuid_debian_v1() {
    run(Variant::Debian, CgroupVersion::V1, &uuid_of_2(), &[2]);
}

#[test]
fn uuid_lib64_v2() {
    run(Variant::Lib64, CgroupVersion::V2, &uuid_of_2(), &[2]);
}

#[test]
fn none_lib64_v1() {
    run(Variant::Lib64, CgroupVersion::V1, "none", &[]);
}

#[test]
fn none_debian_v2() {
    run(Variant::Debian, CgroupVersion::V2, "none", &[]);
}

#[test]
fn two_gpus_by_index_v2() {
    run(Variant::Debian, CgroupVersion::V2, "3,0", &[0, 3]);
}

/// No GPU asked for: the hook does nothing (no node, no mount) and the
/// container starts.
#[test]
fn no_gpu_container_is_untouched() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    for visible in [None, Some("void"), Some("")] {
        let mut b = Bundle::builder(Variant::Debian)
            .sh("ls /dev; ls /usr/lib/x86_64-linux-gnu | grep -c nvidia; true")
            .hook(HookStage::Prestart, &host.prestart_hook().unwrap());
        if let Some(v) = visible {
            b = b.env("NVIDIA_VISIBLE_DEVICES", v);
        }
        let out = runc_run(&b.build().unwrap(), CgroupVersion::V1).unwrap();
        out.assert_success();
        assert!(!out.stdout.contains("nvidia"), "{out}");
        assert!(out.stdout.lines().any(|l| l == "0"), "{out}");
    }
    // It never looked at the inventory.
    assert!(!host.dir().join("cache").exists());
}

/// A spec the runc wrapper already handled (its `nvidia-docker.plan`
/// annotation) is left alone by the prestart hook, even though it asks for
/// GPUs: `docker run --gpus` with `--runtime=nvidia` registers both.
#[test]
fn spec_written_by_the_runc_wrapper_is_left_alone() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    let bundle = Bundle::builder(Variant::Debian)
        .sh("ls /dev; ls /usr/lib/x86_64-linux-gnu | grep -c nvidia; true")
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .annotation("nvidia-docker.plan", "applied")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    assert!(!out.stdout.contains("nvidia"), "{out}");
    assert!(out.stdout.lines().any(|l| l == "0"), "{out}");
    assert!(
        !host.dir().join("cache").exists(),
        "the hook read the inventory"
    );
}

fn refused(bundle: Bundle, expected: &[&str]) {
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_failure();
    for part in expected {
        assert!(out.stderr.contains(part), "stderr lacks {part:?}:\n{out}");
    }
    assert!(!out.stdout.contains("started"), "{out}");
}

/// A CUDA-too-new image fails to start with the rules' line, whether the
/// requirement is the v1 label (as an annotation) or `NVIDIA_REQUIRE_CUDA`;
/// `NVIDIA_DISABLE_REQUIRE=true` lets both start.
#[test]
fn cuda_too_new_is_refused_unless_disabled() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(1).unwrap();
    let hook = host.prestart_hook().unwrap();
    let base = || {
        Bundle::builder(Variant::Debian)
            .sh("echo started")
            .env("NVIDIA_VISIBLE_DEVICES", "all")
            .hook(HookStage::Prestart, &hook)
    };
    let label = || base().annotation("com.nvidia.cuda.version", "13.0");
    let env = || base().env("NVIDIA_REQUIRE_CUDA", "cuda>=12.4");
    refused(
        label().build().unwrap(),
        &["unsupported CUDA version: driver 12.2 < image 13.0"],
    );
    refused(
        env().build().unwrap(),
        &[
            "CUDA 12.4 needs driver >=",
            "535.104.05",
            "NVIDIA_DISABLE_REQUIRE",
        ],
    );
    for b in [label(), env()] {
        let out = runc_run(
            &b.env("NVIDIA_DISABLE_REQUIRE", "true").build().unwrap(),
            CgroupVersion::V1,
        )
        .unwrap();
        out.assert_success();
        assert_eq!(out.stdout, "started\n", "{out}");
    }
}

/// An unknown GPU and a bad capability are refused with one line.
#[test]
fn bad_requests_are_refused() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    let hook = host.prestart_hook().unwrap();
    let b = |k: &str, v: &str| {
        Bundle::builder(Variant::Debian)
            .sh("echo started")
            .env("NVIDIA_VISIBLE_DEVICES", "all")
            .env(k, v)
            .hook(HookStage::Prestart, &hook)
            .build()
            .unwrap()
    };
    refused(b("NVIDIA_VISIBLE_DEVICES", "7"), &["7"]);
    refused(b("NVIDIA_DRIVER_CAPABILITIES", "compute,warp"), &["warp"]);
}

/// `poststart` and `poststop` are accepted no-ops.
#[test]
fn poststart_and_poststop_are_no_ops() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(1).unwrap();
    let mut post = host.prestart_hook().unwrap();
    post.args = vec!["nvidia-docker-hook".into(), "poststart".into()];
    let mut stop = post.clone();
    stop.args[1] = "poststop".into();
    let bundle = Bundle::builder(Variant::Debian)
        .sh("echo started")
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .hook(HookStage::Poststart, &post)
        .hook(HookStage::Poststop, &stop)
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    assert_eq!(out.stdout, "started\n");
}

/// A v1-labelled image gets `/usr/local/nvidia/{bin,lib64}` with v1's
/// soname links, in addition to the modern layout.
#[test]
fn v1_image_gets_usr_local_nvidia() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    let bundle = Bundle::builder(Variant::Lib64)
        .sh("ls /usr/local/nvidia/bin /usr/local/nvidia/lib64; LD_LIBRARY_PATH=/usr/local/nvidia/lib64 /usr/local/nvidia/bin/nvidia-smi -L")
        .annotation("com.nvidia.volumes.needed", "nvidia_driver")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    for name in [
        "nvidia-smi",
        "libcuda.so.1",
        "libcuda.so",
        "libnvidia-ml.so.1",
    ] {
        assert!(out.stdout.lines().any(|l| l == name), "{name}:\n{out}");
    }
    assert!(
        out.stdout
            .contains(&host.expected_listing(&[0, 1]).join("\n")),
        "{out}"
    );
}

/// The toolkit's name and calling convention (`nvidia-container-runtime-hook
/// -debug prestart`) work from `config.json` too.
#[test]
fn toolkit_name_in_config_json() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    let mut hook = host.prestart_hook().unwrap();
    hook.path = host
        .toolkit_bin_dir()
        .unwrap()
        .join(e2e::hook::TOOLKIT_HOOK_NAME);
    hook.args = vec![
        e2e::hook::TOOLKIT_HOOK_NAME.into(),
        "-config".into(),
        host.config_path().to_string_lossy().into_owned(),
        "prestart".into(),
    ];
    let lib = format!("{}/{}", lib_dir(Variant::Debian), host.libcuda());
    let bundle = Bundle::builder(Variant::Debian)
        .sh(&inside_script(&lib))
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .hook(HookStage::Prestart, &hook)
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    Inside::parse(&out.stdout).assert_gpus(&host, &[0], &out);
}

/// A container with its own user namespace (root mapped to 100000, the
/// rootfs owned by it): `mknod` is refused there, so the hook binds the
/// host's nodes onto empty files, as the container's root.
#[test]
fn user_namespace_binds_host_nodes_v1() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(4).unwrap();
    let variant = Variant::Debian;
    let lib = format!("{}/{}", lib_dir(variant), host.libcuda());
    let bundle = Bundle::builder(variant)
        .sh(&format!(
            "{}stat -c 'owner %u:%g' {}/libcuda.so.1",
            inside_script(&lib),
            lib_dir(variant)
        ))
        .env("NVIDIA_VISIBLE_DEVICES", "0,2")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .user_namespace(100000)
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    let mut inside = Inside::parse(&out.stdout);
    // The library's owner (host root) is unmapped here: the permission check
    // refuses the write before the read-only mount would.
    assert_eq!(inside.write, "Permission denied", "{out}");
    inside.write = "Read-only file system".into();
    inside.assert_gpus(&host, &[0, 2], &out);
    assert!(out.stdout.contains("owner 0:0"), "{out}");
}

/// CUDA forward compatibility (docs/cuda.md §1.5): on the 535.104.05 host
/// (CUDA 12.2), a `cuda>=12.9` image is refused, unless it carries the
/// compat `libcuda.so.575.57.08` whose `.note.cuda.fwd_compatibility` says
/// CUDA 12.9 for driver branches 535..575. Then it starts, and the linker
/// cache lists the compat directory's `libcuda.so.1` (the link `ldconfig`
/// made there) before the host driver's. Nothing of the image is mounted.
#[test]
fn cuda_compat_library_lets_a_newer_cuda_image_start() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(1).unwrap();
    let hook = host.prestart_hook().unwrap();
    let script = r#"ldconfig -p | grep -E '^[[:space:]]*libcuda\.so\.1 ' | sed 's/^[[:space:]]*/ldconfig /'
echo "link $(readlink /usr/local/cuda/compat/libcuda.so.1)"
echo "mounts $(grep -c compat /proc/self/mountinfo)"
echo started"#;
    let build = || {
        Bundle::builder(Variant::Debian)
            .sh(script)
            .env("NVIDIA_VISIBLE_DEVICES", "all")
            .env("NVIDIA_REQUIRE_CUDA", "cuda>=12.9")
            .hook(HookStage::Prestart, &hook)
            .build()
            .unwrap()
    };
    refused(build(), &["CUDA 12.9 needs driver >=", "535.104.05"]);

    let bundle = build();
    let compat = bundle.rootfs().join("usr/local/cuda/compat");
    std::fs::create_dir_all(&compat).unwrap();
    let lib = fixtures::elf::SharedObject::new(fixtures::elf::Arch::X86_64, "libcuda.so.1")
        .with_note(
            ".note.cuda.fwd_compatibility",
            "NVIDIA Corporation",
            1,
            br#"{"format":1,"CUDA version":"12.9","driver":[535,550,560,565,570,575],"device":[1,2,7,8,9,10,11,12,13,14]}"#,
        )
        .to_bytes()
        .unwrap();
    std::fs::write(compat.join("libcuda.so.575.57.08"), lib).unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    let ldconfig: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ldconfig "))
        .collect();
    assert_eq!(ldconfig.len(), 2, "compat and host libcuda.so.1:\n{out}");
    assert!(
        ldconfig[0].ends_with("=> /usr/local/cuda/compat/libcuda.so.1"),
        "the compat library comes first:\n{out}"
    );
    assert!(
        ldconfig[1].ends_with(&format!("=> {}/libcuda.so.1", lib_dir(Variant::Debian))),
        "{out}"
    );
    assert!(out.stdout.contains("link libcuda.so.575.57.08\n"), "{out}");
    assert!(out.stdout.contains("mounts 0\n"), "{out}");
    assert!(out.stdout.ends_with("started\n"), "{out}");
}

/// The IPC paths of a host running nvidia-persistenced, nv-fabricmanager
/// and MPS are bind-mounted writable but `nosuid,nodev,noexec` (utility for
/// the sockets, compute for the MPS pipe directory), and the graphics
/// capability gets the application profile limiting EGL to the selected
/// GPUs.
#[test]
fn ipc_paths_and_graphics_app_profile_v1() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let desc = fixtures::host_desc::HostDescription::synthetic(2, "535.104.05", "12.2");
    let host = SimHost::generate_with(desc, |o| o.ipc = true).unwrap();
    let bundle = Bundle::builder(Variant::Debian)
        .sh("grep -E 'nvidia-persistenced|nvidia-fabricmanager|nvidia-mps' /proc/mounts | cut -d' ' -f2,4; \
             echo ---; cat /etc/nvidia/nvidia-application-profiles-rc.d/10-container.conf")
        .env("NVIDIA_VISIBLE_DEVICES", "1")
        .env("NVIDIA_DRIVER_CAPABILITIES", "utility,compute,graphics")
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    let (mounts, profile) = out.stdout.split_once("---\n").expect("two parts");
    for path in [
        "/run/nvidia-persistenced/socket",
        "/run/nvidia-fabricmanager/socket",
        "/tmp/nvidia-mps",
    ] {
        let line = mounts
            .lines()
            .find(|l| l.split(' ').next().is_some_and(|p| p.ends_with(path)))
            .unwrap_or_else(|| panic!("{path} is not mounted:\n{out}"));
        let opts: Vec<&str> = line.split(' ').nth(1).unwrap_or("").split(',').collect();
        for want in ["rw", "nosuid", "nodev", "noexec"] {
            assert!(opts.contains(&want), "{path} lacks {want}: {line}\n{out}");
        }
    }
    // GPU 1 only: the EGL device mask has its bit (minor 1) alone.
    assert!(
        profile.contains(r#"["EGLVisibleDGPUDevices", 0x2]"#),
        "{out}"
    );
}
