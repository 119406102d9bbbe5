//! The Debian packages (`scripts/build-debs`, cargo-deb) in a fresh Debian
//! root made by `mmdebstrap` from Debian's archive: `dpkg -i` installs both
//! with their maintainer scripts (which register nothing), every file is
//! owned by a package (`dpkg -S`), the hook *from its installed path* gives
//! a real runc container its GPUs on the simulated host, `systemd-analyze
//! verify` accepts the units, and `dpkg --purge` leaves the root exactly
//! as it was (a file listing before and after, `dpkg -S` finds nothing).
//!
//! The packages come from `$E2E_DEB_DIR` (default `target/debian`, where
//! `scripts/build-debs` writes them; `scripts/test-all` runs it first). The
//! Debian root (bookworm, variant `apt` plus `systemd`, whose units
//! `systemd-analyze verify --root` resolves the service's dependencies
//! against) is cached as `target/deb-e2e/bookworm-systemd.tar` (one download).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::hook::{inside_script, lib_dir, Inside, SimHost};
use e2e::process::{command, run_timeout};
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Output, Prereq, Variant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The two packages, newest build.
fn debs() -> Option<Vec<PathBuf>> {
    let dir = std::env::var_os("E2E_DEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debian"));
    let find = |prefix: &str| {
        std::fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
            })
            .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
    };
    Some(vec![find("nvidia-docker-hook_")?, find("nvidia-docker_")?])
}

fn sh(cmd: &mut std::process::Command, secs: u64) -> Output {
    run_timeout(cmd, Duration::from_secs(secs)).unwrap()
}

fn chroot(root: &Path, args: &[&str]) -> Output {
    let mut cmd = command("chroot");
    cmd.arg(root)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive");
    sh(&mut cmd, 300)
}

/// Every path under `root`, relative, skipping dpkg's own database and logs.
fn listing(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if [
                "var/lib/dpkg",
                "var/log",
                "var/cache/debconf",
                "tmp",
                "proc",
            ]
            .iter()
            .any(|skip| rel == *skip || rel.starts_with(&format!("{skip}/")))
            {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
            out.insert(rel);
        }
    }
    out
}

/// A fresh bookworm root (variant `apt`, with systemd), from the cached
/// tarball.
fn debian_root(into: &Path) {
    let cache = workspace().join("target/deb-e2e/bookworm-systemd.tar");
    if !cache.exists() {
        std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
        let partial = cache.with_extension("tar.partial");
        let mut mm = command("mmdebstrap");
        mm.args([
            "--variant=apt",
            "--include=systemd",
            "--quiet",
            "--format=tar",
            "bookworm",
        ])
        .arg(&partial)
        .arg("http://deb.debian.org/debian");
        sh(&mut mm, 900).assert_success();
        std::fs::rename(&partial, &cache).unwrap();
    }
    let mut tar = command("tar");
    tar.arg("-xf").arg(&cache).arg("-C").arg(into);
    sh(&mut tar, 300).assert_success();
}

#[test]
fn debs_install_run_verify_and_purge_clean() {
    require!(
        Prereq::Root,
        Prereq::Runc,
        Prereq::CgroupV2,
        Prereq::Tool("mmdebstrap"),
        Prereq::Tool("systemd-analyze"),
        Prereq::Tool("chroot")
    );
    let Some(debs) = debs() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no packages in target/debian: scripts/build-debs builds them"
        );
        eprintln!("SKIP packages: no .deb in target/debian (run scripts/build-debs)");
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("e2e-deb-")
        .tempdir()
        .unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    debian_root(&root);
    let before = listing(&root);

    // Install.
    let mut names = Vec::new();
    for deb in &debs {
        let name = deb.file_name().unwrap().to_str().unwrap().to_owned();
        std::fs::copy(deb, root.join("tmp").join(&name)).unwrap();
        names.push(format!("/tmp/{name}"));
    }
    let mut args = vec!["dpkg", "-i"];
    args.extend(names.iter().map(String::as_str));
    let install = chroot(&root, &args);
    install.assert_success();
    for said in [
        "nothing is registered with a container engine",
        "nvidia-docker setup docker --write",
        "systemctl enable --now nvidia-docker-plugin",
    ] {
        assert!(
            install.stdout.contains(said),
            "postinst lacks {said:?}:\n{install}"
        );
    }

    // Every installed file is the packages'; nothing was registered.
    let added: Vec<String> = listing(&root).difference(&before).cloned().collect();
    assert!(!added.is_empty());
    for path in &added {
        let owner = chroot(&root, &["dpkg", "-S", &format!("/{path}")]);
        assert!(
            owner.success(),
            "/{path} is owned by no package (a maintainer script made it?):\n{owner}"
        );
    }
    for expected in [
        "usr/bin/nvidia-docker-hook",
        "usr/bin/nvidia-docker-runtime",
        "usr/bin/nvidia-docker",
        "usr/bin/nvidia-docker-plugin",
        "etc/nvidia-docker/config.toml",
        "usr/lib/systemd/system/nvidia-docker-plugin.service",
        "usr/share/man/man1/nvidia-docker-hook.1.gz",
        "usr/share/man/man1/nvidia-docker-plugin.1.gz",
        "usr/share/bash-completion/completions/nvidia-docker",
        "usr/share/zsh/vendor-completions/_nvidia-docker-hook",
        "usr/share/fish/vendor_completions.d/nvidia-docker-plugin.fish",
        "usr/share/nvidia-docker/oci-hooks.d/oci-nvidia-docker-hook.json",
    ] {
        assert!(
            added.contains(&expected.to_owned()),
            "{expected} not installed: {added:?}"
        );
    }
    let link = root.join("usr/bin/nvidia-container-runtime-hook");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("nvidia-docker-hook")
    );
    assert!(!root
        .join("etc/systemd/system/multi-user.target.wants")
        .join("nvidia-docker-plugin.service")
        .exists());
    assert!(!root.join("usr/share/containers/oci/hooks.d").exists());
    let conf = chroot(
        &root,
        &[
            "dpkg-query",
            "--showformat=${Conffiles}",
            "--show",
            "nvidia-docker-hook",
        ],
    );
    assert!(
        conf.stdout.contains("/etc/nvidia-docker/config.toml"),
        "{conf}"
    );

    // The installed hook gives a runc container its GPUs.
    let host = SimHost::synthetic(2).unwrap();
    let mut hook = host.prestart_hook().unwrap();
    hook.path = root.join("usr/bin/nvidia-docker-hook");
    let lib = format!("{}/{}", lib_dir(Variant::Debian), host.libcuda());
    let bundle = Bundle::builder(Variant::Debian)
        .sh(&inside_script(&lib))
        .env("NVIDIA_VISIBLE_DEVICES", "all")
        .hook(HookStage::Prestart, &hook)
        .build()
        .unwrap();
    let run = runc_run(&bundle, CgroupVersion::V2).unwrap();
    run.assert_success();
    Inside::parse(&run.stdout).assert_gpus(&host, &[0, 1], &run);
    let version = command(root.join("usr/bin/nvidia-docker-hook"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("(commit "));

    // The units.
    let mut verify = command("systemd-analyze");
    verify
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("--man=no")
        .arg("/usr/lib/systemd/system/nvidia-docker-plugin.service");
    let v = sh(&mut verify, 60);
    v.assert_success();
    assert_eq!(v.stderr.trim(), "", "systemd-analyze verify:\n{v}");

    // Purge: the root is as before.
    let purge = chroot(
        &root,
        &["dpkg", "--purge", "nvidia-docker", "nvidia-docker-hook"],
    );
    purge.assert_success();
    for name in &names {
        std::fs::remove_file(root.join(name.trim_start_matches('/'))).unwrap();
    }
    let after = listing(&root);
    let left: Vec<&String> = after.difference(&before).collect();
    let lost: Vec<&String> = before.difference(&after).collect();
    assert!(
        left.is_empty() && lost.is_empty(),
        "left {left:?}, lost {lost:?}"
    );
    let search = chroot(&root, &["dpkg", "-S", "nvidia-docker"]);
    assert!(!search.success(), "{search}");
}
