//! The hook against hostile images (runc, cgroup v1), as a prestart hook
//! and as the runc wrapper's `createRuntime` step: image-controlled
//! symlinks at every place the hook writes (`/dev`, the library directory,
//! `/usr/bin`, `/usr/local/nvidia`, `/proc/driver`, `/etc/ld.so.conf.d`,
//! `/etc/ld.so.cache`, parents of each; links to `/`, to `..`, to
//! `/proc/self/root`, to host paths), an `LD_PRELOAD` and an `ldconfig`
//! planted in the image. For each: the host stays untouched (sentinel files
//! and the host's mount table, before and after), and the hook either
//! succeeds inside the root or refuses with one clear line.
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use e2e::hook::{host_mounts_mentioning, SimHost};
use e2e::{require, Bundle, BundleBuilder, CgroupVersion, Prereq, Runtime, Variant};
use serde_json::Value;

use crate::config_common::Via;

/// Host files an escaping hook would touch.
struct Sentinels {
    dir: tempfile::TempDir,
}

impl Sentinels {
    fn new() -> Sentinels {
        let dir = tempfile::Builder::new()
            .prefix("e2e-sentinel-")
            .tempdir()
            .unwrap();
        fs::create_dir_all(dir.path().join("lib")).unwrap();
        fs::write(dir.path().join("file"), "sentinel").unwrap();
        fs::write(dir.path().join("lib/libc.so.6"), "sentinel lib").unwrap();
        Sentinels { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every file under the directory with its content.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    stack.push(p.clone());
                    out.push((p, Vec::new()));
                } else {
                    out.push((p.clone(), fs::read(&p).unwrap_or_default()));
                }
            }
        }
        out.sort();
        out
    }
}

/// What happened to one hostile image.
#[derive(Debug)]
enum Outcome {
    Started,
    Refused(#[allow(dead_code)] String),
}

/// Changes to an image, given its rootfs and the sentinel directory.
type ImageEdit<'a> = Box<dyn Fn(&Path, &Path) + 'a>;
/// Changes to a bundle's configuration.
type ConfigEdit<'a> = Box<dyn Fn(BundleBuilder) -> BundleBuilder + 'a>;

struct Case<'a> {
    name: &'a str,
    /// Changes to the image (its rootfs), given the rootfs and the sentinels.
    image: ImageEdit<'a>,
    /// Changes to the bundle config.
    config: ConfigEdit<'a>,
    /// What must not exist inside the rootfs afterwards.
    absent_inside: &'a [&'a str],
}

fn replace_with_link(rootfs: &Path, at: &str, target: &str) {
    let p = rootfs.join(at.trim_start_matches('/'));
    if let Ok(meta) = fs::symlink_metadata(&p) {
        if meta.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    symlink(target, &p).unwrap();
}

fn without_mount(destination: &'static str) -> impl Fn(BundleBuilder) -> BundleBuilder {
    move |b: BundleBuilder| {
        b.with_config(|c: &mut Value| {
            c["mounts"].as_array_mut().unwrap().retain(|m| {
                m["destination"] != destination
                    && !m["destination"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with(&format!("{destination}/"))
            });
        })
    }
}

fn run_case(host: &SimHost, sentinels: &Sentinels, case: &Case<'_>, via: Via) -> Outcome {
    let builder = Bundle::builder(Variant::Debian)
        .sh("echo started")
        .env("NVIDIA_VISIBLE_DEVICES", "all");
    let builder = (case.config)(via.register(host, builder));
    let bundle = builder.build().unwrap();
    (case.image)(&bundle.rootfs(), sentinels.path());
    let files_before = sentinels.snapshot();
    let bundle_dir = bundle.path().to_string_lossy().into_owned();
    let mounts_before = (
        host_mounts_mentioning("nvidia"),
        host_mounts_mentioning(&bundle_dir),
        host_mounts_mentioning(&sentinels.path().to_string_lossy()),
    );
    let out = via
        .run(Runtime::Runc, host, &bundle, CgroupVersion::V1)
        .unwrap();
    let mounts_after = (
        host_mounts_mentioning("nvidia"),
        host_mounts_mentioning(&bundle_dir),
        host_mounts_mentioning(&sentinels.path().to_string_lossy()),
    );
    assert_eq!(
        files_before,
        sentinels.snapshot(),
        "{}: host sentinels changed\n{out}",
        case.name
    );
    assert_eq!(
        mounts_before, mounts_after,
        "{}: host mount table changed\n{out}",
        case.name
    );
    for p in case.absent_inside {
        assert!(
            !bundle.rootfs().join(p.trim_start_matches('/')).exists(),
            "{}: {p} exists in the rootfs\n{out}",
            case.name
        );
    }
    if out.success() {
        assert_eq!(out.stdout, "started\n", "{}\n{out}", case.name);
        Outcome::Started
    } else {
        // runc: `... error running hook #0: error running hook: exit status
        // N, stdout: , stderr: <the hook's one line>`; or the wrapper's own
        // line, before runc runs.
        let line = out
            .stderr
            .lines()
            .find_map(|l| {
                l.split_once("stderr: ")
                    .map(|(_, r)| r.trim())
                    .or_else(|| l.starts_with("nvidia-docker-runtime: ").then_some(l))
            })
            .map(|r| r.trim_end_matches('"').trim_end_matches("\\n").to_owned())
            .unwrap_or_default();
        assert!(
            (line.starts_with("nvidia-docker-hook: ")
                || (via == Via::Wrapper && line.starts_with("nvidia-docker-runtime: ")))
                && !line.contains('\n'),
            "{} ({via:?}): not a clear refusal from the hook\n{out}",
            case.name
        );
        Outcome::Refused(line)
    }
}

fn evil_so(dir: &Path, sentinel: &Path) -> PathBuf {
    let src = dir.join("evil.c");
    let so = dir.join("evil.so");
    fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void evil(void) {{ FILE *f = fopen(\"{}\", \"w\"); if (f) {{ fputs(\"preloaded\", f); fclose(f); }} }}\n",
            sentinel.display()
        ),
    )
    .unwrap();
    let st = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "gcc failed");
    so
}

#[test]
fn hostile_images_cannot_reach_the_host() {
    hostile_images(Via::Prestart);
}

#[test]
fn hostile_images_cannot_reach_the_host_through_the_wrapper() {
    hostile_images(Via::Wrapper);
}

fn hostile_images(via: Via) {
    require!(Prereq::Runc, Prereq::CgroupV1, Prereq::Tool("gcc"));
    let host = SimHost::synthetic(2).unwrap();
    let sentinels = Sentinels::new();
    let lib = "/usr/lib/x86_64-linux-gnu";
    let preload_dir = tempfile::Builder::new()
        .prefix("e2e-preload-")
        .tempdir()
        .unwrap();
    let preloaded = sentinels.path().join("preloaded-by-hook");
    let evil = evil_so(preload_dir.path(), &preloaded);
    let evil_str = evil.to_string_lossy().into_owned();
    let same = |b: BundleBuilder| b;
    let cases: Vec<Case<'_>> = vec![
        Case {
            name: "library dir -> /",
            image: Box::new(move |r, _| replace_with_link(r, lib, "/")),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "library dir -> ../../../../..",
            image: Box::new(move |r, _| replace_with_link(r, lib, "../../../../../../..")),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "library dir -> /proc/self/root/...",
            image: Box::new(move |r, _| {
                replace_with_link(r, lib, "/proc/self/root/usr/lib/x86_64-linux-gnu")
            }),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "library dir -> host path",
            image: Box::new(|r, s| replace_with_link(r, lib, &format!("{}/lib", s.display()))),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "/usr/lib parent -> host path",
            image: Box::new(|r, s| replace_with_link(r, "/usr/lib", &s.display().to_string())),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "library file -> host file",
            image: Box::new(|r, s| {
                replace_with_link(
                    r,
                    &format!("{lib}/libcuda.so.535.104.05"),
                    &format!("{}/file", s.display()),
                );
                replace_with_link(
                    r,
                    &format!("{lib}/libcuda.so.1"),
                    &format!("{}/file", s.display()),
                );
            }),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "/usr/bin -> /",
            image: Box::new(|r, _| {
                // Keep a shell: /bin is usr/bin (merged /usr).
                fs::rename(r.join("usr/bin"), r.join("usr/realbin")).unwrap();
                symlink("/", r.join("usr/bin")).unwrap();
                symlink("/usr/realbin/busybox", r.join("sh")).unwrap();
            }),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "/usr/local/nvidia -> host path (v1 image)",
            image: Box::new(|r, s| {
                replace_with_link(r, "/usr/local/nvidia", &s.display().to_string())
            }),
            config: Box::new(|b| b.annotation("com.nvidia.volumes.needed", "nvidia_driver")),
            absent_inside: &[],
        },
        Case {
            name: "/usr/local/nvidia -> .. (v1 image)",
            image: Box::new(|r, _| replace_with_link(r, "/usr/local/nvidia", "../../..")),
            config: Box::new(|b| b.annotation("com.nvidia.volumes.needed", "nvidia_driver")),
            absent_inside: &[],
        },
        Case {
            name: "/dev -> / (no /dev tmpfs)",
            image: Box::new(|r, _| replace_with_link(r, "/dev", "/")),
            config: Box::new(without_mount("/dev")),
            absent_inside: &[],
        },
        Case {
            name: "/dev/nvidia* -> host files (no /dev tmpfs)",
            image: Box::new(|r, s| {
                for n in ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"] {
                    replace_with_link(r, &format!("/dev/{n}"), &format!("{}/file", s.display()));
                }
                replace_with_link(r, "/dev/nvidia-caps", &s.display().to_string());
            }),
            config: Box::new(without_mount("/dev")),
            absent_inside: &[],
        },
        Case {
            name: "/proc/driver -> host path (no /proc mount)",
            image: Box::new(|r, s| replace_with_link(r, "/proc/driver", &s.display().to_string())),
            config: Box::new(without_mount("/proc")),
            absent_inside: &[],
        },
        Case {
            name: "/etc/ld.so.conf.d and /etc/ld.so.cache -> host paths",
            image: Box::new(|r, s| {
                replace_with_link(r, "/etc/ld.so.conf.d", &s.display().to_string());
                replace_with_link(r, "/etc/ld.so.cache", &format!("{}/file", s.display()));
            }),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "/etc -> host path",
            image: Box::new(|r, s| {
                let etc = r.join("etc");
                fs::rename(&etc, r.join("etc.real")).unwrap();
                symlink(s, &etc).unwrap();
            }),
            config: Box::new(same),
            absent_inside: &[],
        },
        Case {
            name: "planted ldconfig",
            image: Box::new(|r, _| {
                for p in ["sbin/ldconfig", "sbin/ldconfig.real", "usr/sbin/ldconfig"] {
                    let path = r.join(p);
                    let _ = fs::remove_file(&path);
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                    fs::write(&path, "#!/bin/sh\necho ran > /image-ldconfig-ran\n").unwrap();
                    let mut perm = fs::metadata(&path).unwrap().permissions();
                    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
                    fs::set_permissions(&path, perm).unwrap();
                }
            }),
            config: Box::new(same),
            absent_inside: &["/image-ldconfig-ran"],
        },
        Case {
            name: "LD_PRELOAD and NVIDIA_DOCKER_* in the image's environment",
            image: Box::new(|r, _| {
                let inside = r.join(evil_str.trim_start_matches('/'));
                fs::create_dir_all(inside.parent().unwrap()).unwrap();
                fs::copy(&evil, inside).unwrap();
            }),
            config: Box::new(|b| {
                b.env("LD_PRELOAD", &evil_str)
                    .env("NVIDIA_DOCKER_DRIVER_ROOT", "/nonexistent")
                    .env("NVIDIA_DOCKER_LDCONFIG", "/bin/sh")
            }),
            absent_inside: &[],
        },
    ];
    let mut report = Vec::new();
    for case in &cases {
        let outcome = run_case(&host, &sentinels, case, via);
        eprintln!("{:<60} {via:?} {outcome:?}", case.name);
        report.push((case.name, outcome));
    }
    assert!(
        !preloaded.exists(),
        "the image's LD_PRELOAD ran on the host"
    );
    // The benign-but-odd layouts must still work.
    for (name, outcome) in &report {
        if [
            "library dir -> /",
            "library dir -> ../../../../..",
            "/usr/bin -> /",
            "planted ldconfig",
            "LD_PRELOAD and NVIDIA_DOCKER_* in the image's environment",
        ]
        .contains(name)
        {
            assert!(
                matches!(outcome, Outcome::Started),
                "{name} ({via:?}): {outcome:?}"
            );
        }
    }
}

/// Issue 13, finding 1: `root.path` through an image symlink and then `..`
/// (`rootfs/link/..`, `rootfs/link` -> a host directory) names, for runc,
/// the lexically cleaned `rootfs`; the hook must work there, not in the
/// host directory the link's parent physically is.
#[test]
fn root_path_through_a_link_then_dotdot_stays_in_the_runtimes_root() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    let sentinels = Sentinels::new();
    fs::create_dir_all(sentinels.path().join("sub")).unwrap();
    let case = Case {
        name: "root.path rootfs/link/.., link -> host directory",
        image: Box::new(|r, s| symlink(s.join("sub"), r.join("link")).unwrap()),
        // The GPU's node and the driver library are where the container
        // sees them (the sentinels prove they are not on the host).
        config: Box::new(|b| {
            b.sh("test -c /dev/nvidia0 && test -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 && echo started")
                .with_config(|c: &mut Value| c["root"]["path"] = "rootfs/link/..".into())
        }),
        absent_inside: &[],
    };
    let outcome = run_case(&host, &sentinels, &case, Via::Prestart);
    assert!(matches!(outcome, Outcome::Started), "{outcome:?}");
}
