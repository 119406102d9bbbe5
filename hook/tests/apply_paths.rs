//! Path handling inside a hostile container root (pathrs-style adversarial
//! tree: escaping `..` chains, links to `/`, to `/proc/self/root`, to host
//! paths, dangling chains, loops), then the whole apply step on such a
//! root in a private mount namespace.
//!
//! Resolution tests run unprivileged. Tests that mount or `mknod` need
//! root: they run in a forked child that unshares its mount namespace, and
//! skip (printing `SKIP`) when not root, failing instead when `CI` is set.
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hook::apply::root::{ContainerRoot, RootError};
use hook::apply::{apply_in_root, enter_and_apply, Prepared, Target};
use hook::config::HostPaths;
use hook::sys::child::run_in_child;
use nix::errno::Errno;
use rules::{ContainerPath, FileName};

fn cp(s: &str) -> ContainerPath {
    ContainerPath::new(s).unwrap()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skips locally, fails under CI.
macro_rules! require_root {
    () => {
        if !is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "this test needs root and CI is set"
            );
            eprintln!("SKIP: needs root");
            return;
        }
    };
}

/// `<tmp>/outside/{sentinel,etc/passwd}` (the "host") and `<tmp>/root`
/// (the container root) full of hostile links.
struct Tree {
    _tmp: tempfile::TempDir,
    outside: PathBuf,
    root: PathBuf,
}

fn hostile_tree() -> Tree {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    let root = tmp.path().join("root");
    fs::create_dir_all(outside.join("etc")).unwrap();
    fs::write(outside.join("sentinel"), "host").unwrap();
    fs::write(outside.join("etc/passwd"), "host passwd").unwrap();
    for d in ["etc", "usr/lib", "dev", "target"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let outside_abs = outside.to_str().unwrap();
    let links: &[(&str, String)] = &[
        ("escape-dotdot", "../../../../../../target".into()),
        ("escape-dotdot-missing", "../../../../../../nope".into()),
        ("root-link", "/".into()),
        ("root-dotdot", "/../../../../..".into()),
        ("proc-root", "/proc/self/root".into()),
        ("host-abs", outside_abs.to_owned()),
        ("host-etc", "/etc".into()),
        ("dangling1", "dangling2".into()),
        ("dangling2", "/dangling3".into()),
        ("dangling3", "/missing/dir".into()),
        ("loop1", "loop2".into()),
        ("loop2", "loop1".into()),
        ("file-link", "/etc/hostname".into()),
        ("usr/lib/x86_64-linux-gnu", "../../../../../..".into()),
        ("usr/lib/escape-file", format!("{outside_abs}/sentinel")),
    ];
    fs::write(root.join("etc/hostname"), "container").unwrap();
    for (link, target) in links {
        symlink(target, root.join(link)).unwrap();
    }
    Tree {
        _tmp: tmp,
        outside,
        root,
    }
}

fn assert_host_untouched(t: &Tree) {
    assert_eq!(
        fs::read_to_string(t.outside.join("sentinel")).unwrap(),
        "host"
    );
    assert_eq!(
        fs::read_to_string(t.outside.join("etc/passwd")).unwrap(),
        "host passwd"
    );
    let mut names: Vec<_> = fs::read_dir(&t.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["etc", "sentinel"], "nothing new outside the root");
}

#[test]
fn lookups_stay_inside_the_root() {
    let t = hostile_tree();
    let root = ContainerRoot::open(&t.root).unwrap();
    // `..` chains and absolute links resolve against the root.
    assert!(root.exists(&cp("/escape-dotdot")).unwrap());
    assert!(root.exists(&cp("/root-link/etc/hostname")).unwrap());
    assert!(root.exists(&cp("/root-dotdot/etc/hostname")).unwrap());
    // The host path is looked up inside the root, where it does not exist.
    assert!(!root.exists(&cp("/host-abs/sentinel")).unwrap());
    // A magic link (here: no procfs in the root, so it dangles).
    assert!(!root.exists(&cp("/proc-root/etc")).unwrap());
    // Dangling chains and loops.
    assert!(!root.exists(&cp("/dangling1")).unwrap());
    let e = root.exists(&cp("/loop1/x")).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::ELOOP), "{e}");
    assert_host_untouched(&t);
}

#[test]
fn mkdir_all_creates_inside_or_refuses() {
    let t = hostile_tree();
    let root = ContainerRoot::open(&t.root).unwrap();
    // Through an escaping `..` link that resolves inside: created inside.
    root.mkdir_all(&cp("/escape-dotdot/a/b")).unwrap();
    assert!(t.root.join("target/a/b").is_dir());
    // Through `/`-links.
    root.mkdir_all(&cp("/root-dotdot/made/here")).unwrap();
    assert!(t.root.join("made/here").is_dir());
    // The library directory is a link to `../../../../..`: it is the root.
    root.mkdir_all(&cp("/usr/lib/x86_64-linux-gnu/sub"))
        .unwrap();
    assert!(t.root.join("sub").is_dir());
    // Dangling links (a host path dangles inside the root): refused,
    // nothing created through them.
    for p in [
        "/host-abs/x",
        "/dangling1/x",
        "/escape-dotdot-missing/x",
        "/proc-root/x",
        "/dangling3",
    ] {
        let e = root.mkdir_all(&cp(p)).unwrap_err();
        assert!(matches!(e, RootError::UnresolvedLink { .. }), "{p}: {e:?}");
        assert!(
            e.to_string().contains("is a symlink that does not resolve"),
            "{e}"
        );
    }
    assert!(!t.root.join("missing").exists());
    assert!(!t.root.join("nope").exists());
    // Loops and files in the way: refused.
    assert_eq!(
        root.mkdir_all(&cp("/loop1/x")).unwrap_err().errno(),
        Some(Errno::ELOOP)
    );
    assert!(matches!(
        root.mkdir_all(&cp("/file-link/x")).unwrap_err(),
        RootError::NotDirectory { .. }
    ));
    assert_host_untouched(&t);
}

#[test]
fn files_replace_links_and_never_follow_them() {
    let t = hostile_tree();
    let root = ContainerRoot::open(&t.root).unwrap();
    // The mount point is an image symlink to a host file: replaced.
    root.create_file(&cp("/usr/lib/escape-file"), 0o644)
        .unwrap();
    let meta = fs::symlink_metadata(t.root.join("usr/lib/escape-file")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.len(), 0);
    // Through the `..` link: lands in the root itself.
    root.create_file(&cp("/usr/lib/x86_64-linux-gnu/libcuda.so.1"), 0o644)
        .unwrap();
    assert!(t.root.join("libcuda.so.1").is_file());
    // An existing file is kept as it is.
    root.create_file(&cp("/etc/hostname"), 0o644).unwrap();
    assert_eq!(
        fs::read_to_string(t.root.join("etc/hostname")).unwrap(),
        "container"
    );
    // A directory in the way is refused.
    assert!(matches!(
        root.create_file(&cp("/etc"), 0o644).unwrap_err(),
        RootError::IsDirectory { .. }
    ));
    // Links: made atomically, replacing what was there, target one name.
    let target = FileName::new("libcuda.so.535.104.05").unwrap();
    root.symlink(&cp("/host-etc/passwd"), &target).unwrap();
    assert_eq!(
        fs::read_link(t.root.join("etc/passwd")).unwrap(),
        Path::new("libcuda.so.535.104.05")
    );
    root.symlink(&cp("/usr/lib/escape-file"), &target).unwrap();
    assert!(fs::symlink_metadata(t.root.join("usr/lib/escape-file"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Idempotent.
    root.symlink(&cp("/usr/lib/escape-file"), &target).unwrap();
    // A directory where the link goes: refused.
    assert!(root.symlink(&cp("/usr/lib"), &target).is_err());
    // No temporary names left behind.
    for dir in ["etc", "usr/lib"] {
        for e in fs::read_dir(t.root.join(dir)).unwrap() {
            let name = e.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with(".nvidia-docker-link"),
                "{name:?}"
            );
        }
    }
    assert_host_untouched(&t);
}

/// Runs `f` as root in a forked child with a private mount namespace.
fn in_private_mount_ns(f: impl FnOnce() -> Result<(), String>) {
    run_in_child("test", Duration::from_secs(30), || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| e.to_string())?;
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| e.to_string())?;
        f()
    })
    .unwrap();
}

/// A small simulated host: driver root with two files, a proc root with
/// two GPUs' entries, and no device nodes (the plan's mode is used).
struct Host {
    _tmp: tempfile::TempDir,
    paths: HostPaths,
    inv: rules::Inventory,
}

const BUS: [&str; 2] = ["0000:07:00.0", "0000:0b:00.0"];

fn host() -> Host {
    let tmp = tempfile::tempdir().unwrap();
    let driver = tmp.path().join("driver");
    let lib = driver.join("usr/lib/x86_64-linux-gnu");
    fs::create_dir_all(&lib).unwrap();
    fs::create_dir_all(driver.join("usr/bin")).unwrap();
    fs::write(lib.join("libcuda.so.535.104.05"), "libcuda").unwrap();
    fs::write(lib.join("libnvidia-ml.so.535.104.05"), "libnvidia-ml").unwrap();
    fs::write(driver.join("usr/bin/nvidia-smi"), "#!/bin/sh\n").unwrap();
    let proc = tmp.path().join("proc/driver/nvidia");
    for bus in BUS {
        fs::create_dir_all(proc.join("gpus").join(bus)).unwrap();
        fs::write(proc.join("gpus").join(bus).join("information"), bus).unwrap();
    }
    fs::write(proc.join("params"), "Mobile: 0\nModifyDeviceFiles: 1\n").unwrap();
    fs::write(proc.join("version"), "NVRM version: 535.104.05\n").unwrap();
    let paths = HostPaths {
        driver_root: driver.clone(),
        dev_root: tmp.path().join("dev"),
        proc_root: tmp.path().join("proc"),
        ..HostPaths::default()
    };
    let json = serde_json::json!({
        "driver_version": "535.104.05",
        "cuda_version": "12.2",
        "driver_root": driver,
        "devices": { "nvidia_major": 195, "uvm_major": 508, "uvm_tools": true, "modeset": true },
        "gpus": BUS.iter().enumerate().map(|(i, bus)| serde_json::json!({
            "index": i, "minor": i, "uuid": format!("GPU-0000000{i}-0000-0000-0000-000000000000"),
            "bus_id": bus, "brand": "Tesla", "arch": "8.0", "model": "A100"
        })).collect::<Vec<_>>(),
        "files": [
            { "path": "/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05", "kind": "library", "soname": "libcuda.so.1" },
            { "path": "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.535.104.05", "kind": "library", "soname": "libnvidia-ml.so.1" },
            { "path": "/usr/bin/nvidia-smi", "kind": "binary" }
        ]
    });
    let inv: rules::Inventory = serde_json::from_value(json).unwrap();
    Host {
        _tmp: tmp,
        paths,
        inv,
    }
}

fn plan(host: &Host, visible: &str, flavor: rules::RootfsFlavor) -> rules::Plan {
    let env = rules::Env::from_oci([format!("NVIDIA_VISIBLE_DEVICES={visible}")]);
    let req = rules::Request::from_container(
        &env,
        &BTreeMap::new(),
        true,
        flavor,
        &rules::Config::default(),
    )
    .unwrap();
    rules::plan(&host.inv, &req, &rules::Config::default()).unwrap()
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

#[test]
fn apply_in_a_hostile_root_stays_inside() {
    require_root!();
    let t = hostile_tree();
    let h = host();
    // /dev and /usr/bin are links escaping upwards: both
    // resolve inside the root.
    fs::remove_dir(t.root.join("dev")).unwrap();
    symlink("/../../../target", t.root.join("dev")).unwrap();
    fs::create_dir_all(t.root.join("usr")).unwrap();
    symlink("/../../../etc", t.root.join("usr/bin")).unwrap();
    let plan = plan(&h, "1", rules::RootfsFlavor::DebianLike);
    let root_dir = t.root.clone();
    let outside = t.outside.clone();
    in_private_mount_ns(|| {
        let prepared = Prepared::collect(&h.paths, &plan, false).map_err(|e| format!("{e:?}"))?;
        let root = ContainerRoot::open(&root_dir).map_err(|e| e.to_string())?;
        apply_in_root(&root, &plan, prepared).map_err(|e| format!("{e:?}"))?;
        // /dev -> /../../../target is the root's /target.
        let node =
            fs::symlink_metadata(root_dir.join("target/nvidia1")).map_err(|e| e.to_string())?;
        check(node.file_type().is_char_device(), || {
            "nvidia1 is a char device".into()
        })?;
        check(node.rdev() == nix::sys::stat::makedev(195, 1), || {
            "195:1".into()
        })?;
        check(node.permissions().mode() & 0o7777 == 0o666, || {
            format!("mode {:o}", node.permissions().mode())
        })?;
        check(!root_dir.join("target/nvidia0").exists(), || {
            "no node for GPU 0".into()
        })?;
        check(root_dir.join("target/nvidiactl").exists(), || {
            "nvidiactl".into()
        })?;
        // The library dir is a link to `../../..`: the libraries land in the root.
        let lib = root_dir.join("libcuda.so.535.104.05");
        check(
            fs::read_to_string(&lib).ok().as_deref() == Some("libcuda"),
            || format!("{lib:?} is the host's libcuda"),
        )?;
        let write = fs::OpenOptions::new().write(true).open(&lib);
        check(
            write.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EROFS),
            || format!("writing the library fails with EROFS: {write:?}"),
        )?;
        check(
            fs::read_link(root_dir.join("libcuda.so.1")).ok()
                == Some(PathBuf::from("libcuda.so.535.104.05")),
            || "soname link".into(),
        )?;
        // /usr/bin -> /../../../etc: nvidia-smi is in the root's /etc.
        let smi = root_dir.join("etc/nvidia-smi");
        check(smi.exists(), || format!("{smi:?} exists"))?;
        check(!outside.join("etc/nvidia-smi").exists(), || {
            "host untouched".into()
        })?;
        // /proc/driver/nvidia: a read-only tmpfs with GPU 1 only.
        let nv = root_dir.join("proc/driver/nvidia");
        let gpus: Vec<_> = fs::read_dir(nv.join("gpus"))
            .map_err(|e| e.to_string())?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        check(gpus == [BUS[1]], || format!("gpus: {gpus:?}"))?;
        let params = fs::read_to_string(nv.join("params")).map_err(|e| e.to_string())?;
        check(params.contains("ModifyDeviceFiles: 0"), || params.clone())?;
        check(fs::write(nv.join("x"), "x").is_err(), || {
            "mask is read-only".into()
        })?;
        Ok(())
    });
    assert_host_untouched(&t);
}

#[test]
fn apply_refuses_a_dangling_library_dir() {
    require_root!();
    let t = hostile_tree();
    let h = host();
    fs::remove_dir_all(t.root.join("usr/lib")).unwrap();
    symlink("/nowhere/lib", t.root.join("usr/lib")).unwrap();
    let plan = plan(&h, "0", rules::RootfsFlavor::DebianLike);
    let root_dir = t.root.clone();
    in_private_mount_ns(|| {
        let prepared = Prepared::collect(&h.paths, &plan, false).map_err(|e| format!("{e:?}"))?;
        let root = ContainerRoot::open(&root_dir).map_err(|e| e.to_string())?;
        let err = apply_in_root(&root, &plan, prepared).expect_err("refused");
        let line = hook::apply::error_chain(&err);
        check(
            line.contains("/usr/lib in the container is a symlink that does not resolve"),
            || line.clone(),
        )?;
        check(!root_dir.join("nowhere").exists(), || {
            "nothing created".into()
        })
    });
    assert_host_untouched(&t);
}

#[test]
fn magic_links_are_refused() {
    require_root!();
    let t = hostile_tree();
    let root_dir = t.root.clone();
    in_private_mount_ns(|| {
        // A real procfs in the root: /proc-root -> /proc/self/root is now a
        // magic link, which RESOLVE_NO_MAGICLINKS refuses.
        fs::create_dir_all(root_dir.join("proc")).map_err(|e| e.to_string())?;
        nix::mount::mount(
            Some("proc"),
            &root_dir.join("proc"),
            Some("proc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| e.to_string())?;
        let root = ContainerRoot::open(&root_dir).map_err(|e| e.to_string())?;
        let e = root
            .exists(&cp("/proc-root/etc/passwd"))
            .expect_err("refused");
        check(e.errno() == Some(Errno::ELOOP), || format!("{e:?}"))?;
        let e = root
            .mkdir_all(&cp("/proc/self/root/tmp/x"))
            .expect_err("refused");
        check(e.errno() == Some(Errno::ELOOP), || format!("{e:?}"))?;
        Ok(())
    });
    assert_host_untouched(&t);
}

/// The whole child step against a real process's mount namespace: a
/// sleeping `unshare -m` process stands for the container's init.
#[test]
fn enter_and_apply_joins_the_namespace() {
    require_root!();
    let h = host();
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/debian_version"), "12\n").unwrap();
    let mut init = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "30"])
        .spawn()
        .unwrap();
    // Wait until the sleeper is in its own mount namespace.
    let own = fs::read_link("/proc/self/ns/mnt").unwrap();
    let pid = init.id() as i32;
    for _ in 0..200 {
        if fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().as_ref() != Some(&own) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let plan = plan(&h, "all", rules::RootfsFlavor::DebianLike);
    let target = Target {
        pid,
        rootfs: rootfs.clone(),
    };
    let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
    run_in_child("apply", Duration::from_secs(30), || {
        enter_and_apply(&h.paths, &target, &plan).map_err(|e| hook::apply::error_chain(&e))
    })
    .unwrap();
    let after = fs::read_to_string("/proc/self/mountinfo").unwrap();
    // Seen from the container's namespace: mounted; from ours: nothing.
    let inside = std::process::Command::new("nsenter")
        .arg(format!("--mount=/proc/{pid}/ns/mnt"))
        .arg("cat")
        .arg(rootfs.join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.535.104.05"))
        .output()
        .unwrap();
    let _ = init.kill();
    let _ = init.wait();
    assert_eq!(String::from_utf8_lossy(&inside.stdout), "libnvidia-ml");
    assert_eq!(
        fs::metadata(rootfs.join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.535.104.05"))
            .unwrap()
            .len(),
        0,
        "on the host side the mount point is an empty file"
    );
    assert_eq!(before, after, "the host's mount table is unchanged");
}
