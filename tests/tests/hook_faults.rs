//! Faults around the hook (runc, cgroup v1 and v2): the hook killed at
//! any moment of a start, NVML that hangs, a cache directory read-only or
//! full, corrupt or truncated snapshots, a container that dies while its
//! hooks run. A start either fails (the container never runs, nothing of
//! the host changes: driver files, device nodes, mounts) or gives the
//! container exactly its GPUs.
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::hook::{hook_binary, host_mounts_mentioning, inside_script, lib_dir, Inside, SimHost};
use e2e::{require, runc_run, Bundle, CgroupVersion, Hook, HookStage, Prereq, Variant};
use host_desc::HostDescription;

/// What the host holds under the simulated driver, device and proc roots
/// (paths, types, modes, sizes, link targets and file contents), less the
/// `/dev/char` links the hook may add, plus the host mounts that mention
/// the simulated host: must not change when a start fails.
fn host_state(host: &SimHost) -> (BTreeMap<PathBuf, String>, Vec<String>) {
    let mut out = BTreeMap::new();
    for root in [
        &host.layout.driver_root,
        &host.layout.dev_root,
        &host.layout.proc_root,
    ] {
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path == host.layout.dev_root.join("char") {
                    continue;
                }
                let Ok(meta) = path.symlink_metadata() else {
                    continue;
                };
                let what = if meta.file_type().is_symlink() {
                    format!("link {:?}", std::fs::read_link(&path).ok())
                } else if meta.is_dir() {
                    stack.push(path.clone());
                    format!("dir {:o}", meta.mode())
                } else if meta.is_file() {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    format!("file {:o} {} {:x}", meta.mode(), meta.len(), fnv(&bytes))
                } else {
                    format!("other {:o} {}", meta.mode(), meta.rdev())
                };
                out.insert(path, what);
            }
        }
    }
    let mounts = host_mounts_mentioning(&host.dir().to_string_lossy())
        .into_iter()
        .collect();
    (out, mounts)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn gpu_bundle(host: &SimHost, hooks: &[Hook]) -> Bundle {
    let lib = format!("{}/{}", lib_dir(Variant::Debian), host.libcuda());
    let mut b = Bundle::builder(Variant::Debian)
        .sh(&inside_script(&lib))
        .env("NVIDIA_VISIBLE_DEVICES", "0,1");
    for hook in hooks {
        b = b.hook(HookStage::Prestart, hook);
    }
    b.build().unwrap()
}

/// The hook, run by a shell that SIGKILLs it `delay` seconds after it
/// starts (the hook's stdin, the container state, passed through); the
/// shell exits with the hook's status, 137 when it was killed.
fn killed_hook(host: &SimHost, delay: &str) -> Hook {
    let script = host.dir().join("kill-after.sh");
    if !script.exists() {
        std::fs::write(
            &script,
            "#!/bin/sh\ndelay=$1; shift\nexec 3<&0\n\"$@\" <&3 3<&- &\np=$!\nsleep \"$delay\"\nkill -9 \"$p\" 2>/dev/null\nwait \"$p\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let hook_bin = hook_binary().unwrap();
    let mut hook = Hook::new(
        &script,
        &["kill-after", delay, hook_bin.to_str().unwrap(), "prestart"],
    )
    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in host.env() {
        hook = hook.env(k, v);
    }
    hook
}

/// A failed start: the container printed nothing, the host is unchanged.
#[track_caller]
fn failed_cleanly(
    out: &e2e::Output,
    host: &SimHost,
    before: &(BTreeMap<PathBuf, String>, Vec<String>),
    context: &str,
) {
    assert!(!out.success(), "{context}\n{out}");
    assert!(
        out.stdout.trim().is_empty(),
        "{context}: the container ran\n{out}"
    );
    let after = host_state(host);
    assert_eq!(&after.1, &before.1, "{context}: host mounts changed\n{out}");
    let changed: Vec<_> = after
        .0
        .iter()
        .filter(|(p, v)| before.0.get(*p) != Some(v))
        .map(|(p, _)| p.display().to_string())
        .chain(
            before
                .0
                .keys()
                .filter(|p| !after.0.contains_key(*p))
                .map(|p| format!("{} (removed)", p.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "{context}: host files changed: {changed:?}\n{out}"
    );
}

#[test]
fn hook_killed_at_any_moment_leaves_the_host_as_it_was() {
    require!(Prereq::Runc, Prereq::CgroupV1, Prereq::CgroupV2);
    let host = SimHost::synthetic(2).unwrap();
    let before = host_state(&host);
    let cache = host.dir().join("cache");
    let delays = [
        "0", "0.001", "0.002", "0.004", "0.006", "0.008", "0.012", "0.016", "0.024", "0.032",
        "0.048", "0.064", "0.1", "0.2", "0.5", "3",
    ];
    let (mut killed, mut finished) = (0, 0);
    for (i, delay) in delays.iter().enumerate() {
        for cold in [true, false] {
            if cold {
                let _ = std::fs::remove_dir_all(&cache);
            }
            let cgroup = if i % 2 == 0 {
                CgroupVersion::V1
            } else {
                CgroupVersion::V2
            };
            let bundle = gpu_bundle(&host, &[killed_hook(&host, delay)]);
            let out = runc_run(&bundle, cgroup).unwrap();
            let context = format!("killed after {delay} s ({cgroup:?}, cold cache: {cold})");
            if out.success() {
                finished += 1;
                Inside::parse(&out.stdout).assert_gpus(
                    &host,
                    &[0, 1],
                    &format!("{context}\n{out}"),
                );
            } else {
                killed += 1;
                failed_cleanly(&out, &host, &before, &context);
            }
        }
    }
    eprintln!("hook killed: {killed} starts failed cleanly, {finished} finished first");
    assert!(killed > 0, "no start was interrupted");
    // Whatever a killed hook left in the cache, the next start is right.
    let bundle = gpu_bundle(&host, &[host.prestart_hook().unwrap()]);
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    out.assert_success();
    Inside::parse(&out.stdout).assert_gpus(&host, &[0, 1], &out);
}

#[test]
fn nvml_that_hangs_fails_the_start_at_the_timeout() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let mut desc = HostDescription::synthetic(2, "535.104.05", "12.2");
    desc.faults.init_delay_ms = 120_000;
    let host = SimHost::generate(desc).unwrap();
    host.write_config("[host]\nnvml-timeout = 1\n").unwrap();
    let before = host_state(&host);
    let bundle = gpu_bundle(&host, &[host.prestart_hook().unwrap()]);
    let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
    failed_cleanly(&out, &host, &before, "NVML hangs");
    assert!(
        out.stderr.contains("NVML discovery timed out after 1 s"),
        "{out}"
    );
    assert!(out.elapsed < Duration::from_secs(20), "{out}");
}

/// A tmpfs mounted over the cache directory, unmounted on drop.
struct TmpfsCache(PathBuf);

impl TmpfsCache {
    fn mount(dir: &Path, options: &str) -> TmpfsCache {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "nvd-fault-cache"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        TmpfsCache(dir.to_path_buf())
    }
}

impl Drop for TmpfsCache {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn cache_dir_read_only_or_full_still_starts_with_the_gpus() {
    require!(Prereq::Runc, Prereq::CgroupV1, Prereq::Root);
    let host = SimHost::synthetic(2).unwrap();
    let cache = host.dir().join("cache");
    for (what, options) in [("read-only", "ro,size=1m"), ("full", "size=8k")] {
        let mount = TmpfsCache::mount(&cache, options);
        if what == "full" {
            // Fill it: the snapshot cannot be written.
            let _ = std::fs::write(cache.join("filler"), vec![0u8; 64 * 1024]);
        }
        for round in 0..2 {
            let bundle = gpu_bundle(&host, &[host.prestart_hook().unwrap()]);
            let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
            let context = format!("cache {what}, start {round}\n{out}");
            assert!(out.success(), "{context}");
            Inside::parse(&out.stdout).assert_gpus(&host, &[0, 1], &context);
        }
        drop(mount);
    }
}

#[test]
fn corrupt_or_truncated_snapshots_are_rediscovered() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    let cache = host.dir().join("cache");
    let start = |context: &str| {
        let bundle = gpu_bundle(&host, &[host.prestart_hook().unwrap()]);
        let out = runc_run(&bundle, CgroupVersion::V1).unwrap();
        let context = format!("{context}\n{out}");
        assert!(out.success(), "{context}");
        Inside::parse(&out.stdout).assert_gpus(&host, &[0, 1], &context);
    };
    start("cold");
    type Damage = fn(&[u8]) -> Vec<u8>;
    let damages: [(&str, Damage); 5] = [
        ("truncated to half", |b| b[..b.len() / 2].to_vec()),
        ("empty", |_| Vec::new()),
        ("one byte flipped", |b| {
            let mut b = b.to_vec();
            let mid = b.len() / 2;
            if let Some(x) = b.get_mut(mid) {
                *x ^= 0x55;
            }
            b
        }),
        ("garbage", |b| vec![0xff; b.len()]),
        ("doubled", |b| [b, b].concat()),
    ];
    for (what, damage) in damages {
        let files: Vec<PathBuf> = std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        assert!(!files.is_empty(), "the first start wrote a snapshot");
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            std::fs::write(file, damage(&bytes)).unwrap();
        }
        start(what);
    }
}

#[test]
fn container_that_dies_during_the_hooks() {
    require!(Prereq::Runc, Prereq::CgroupV1, Prereq::CgroupV2);
    let host = SimHost::synthetic(2).unwrap();
    let before = host_state(&host);
    // A hook before ours that kills the container's init (pid from the
    // state on stdin).
    let killer = Hook::new(
        "/bin/sh",
        &[
            "sh",
            "-c",
            r#"pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'); kill -9 "$pid""#,
        ],
    );
    for cgroup in CgroupVersion::ALL {
        let bundle = gpu_bundle(&host, &[killer.clone(), host.prestart_hook().unwrap()]);
        let out = runc_run(&bundle, cgroup).unwrap();
        let context = format!("container killed before the hook ({cgroup:?})");
        failed_cleanly(&out, &host, &before, &context);
        assert!(!out.stderr.contains("panicked"), "{context}\n{out}");
        // runc can notice the death itself before it runs our hook (it
        // then fails with "read init-p: connection reset by peer"); when it
        // does not, our hook must say what happened.
        let runc_noticed = out.stderr.contains("init-p");
        if cgroup == CgroupVersion::V2 && !runc_noticed {
            // (v1 reaches the linker cache step first, with its own line.)
            assert!(
                out.stderr
                    .contains("has exited: the container stopped before its GPUs were set up"),
                "{context}\n{out}"
            );
        }
    }
}

#[test]
fn sixty_four_containers_in_parallel_on_a_cold_cache() {
    require!(Prereq::Runc, Prereq::CgroupV1, Prereq::CgroupV2);
    let host = SimHost::synthetic(4).unwrap();
    let hook = host.prestart_hook().unwrap();
    let selections: [(&str, &[usize]); 4] = [
        ("all", &[0, 1, 2, 3]),
        ("1", &[1]),
        ("0,3", &[0, 3]),
        ("none", &[]),
    ];
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let (visible, indexes) = selections[i % selections.len()];
                let cgroup = if i % 2 == 0 {
                    CgroupVersion::V2
                } else {
                    CgroupVersion::V1
                };
                let (host, hook) = (&host, &hook);
                s.spawn(move || {
                    let lib = format!("{}/{}", lib_dir(Variant::Debian), host.libcuda());
                    let bundle = Bundle::builder(Variant::Debian)
                        .sh(&inside_script(&lib))
                        .env("NVIDIA_VISIBLE_DEVICES", visible)
                        .hook(HookStage::Prestart, hook)
                        .build()
                        .unwrap();
                    let out =
                        e2e::runc_run_timeout(&bundle, cgroup, Duration::from_secs(240)).unwrap();
                    (i, indexes, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut slowest = Duration::ZERO;
    for (i, indexes, out) in &results {
        let context = format!("container {i}\n{out}");
        assert!(out.success(), "{context}");
        Inside::parse(&out.stdout).assert_gpus(&host, indexes, &context);
        slowest = slowest.max(out.elapsed);
    }
    eprintln!("64 parallel starts: slowest {slowest:?}");
}

/// Issue 13: NVML that crashes (SIGSEGV in `nvmlInit`, abort in a device
/// query) kills the hook's probe child, not the hook: the start fails with
/// one line naming NVML and what to do, the container never runs, the host
/// is unchanged. With a fresh snapshot NVML is not asked at all and the
/// container starts with its GPUs.
#[test]
fn nvml_that_crashes_fails_the_start_with_one_line() {
    require!(Prereq::Runc, Prereq::CgroupV1);
    let host = SimHost::synthetic(2).unwrap();
    let before = host_state(&host);
    let cache = host.dir().join("cache");
    let crashing = |name: &str, edit: &dyn Fn(&mut host_desc::Faults)| {
        let mut desc = host.desc.clone();
        edit(&mut desc.faults);
        let file = host.dir().join(format!("{name}.json"));
        std::fs::write(&file, desc.to_json()).unwrap();
        host.prestart_hook()
            .unwrap()
            .env(host_desc::ENV_HOST_FILE, file.to_str().unwrap())
    };
    let cases: [(&str, Hook, &str); 2] = [
        (
            "init_crash",
            crashing("init-crash", &|f| {
                f.init_crash = Some(host_desc::Crash::Segv)
            }),
            "SIGSEGV",
        ),
        (
            "device_crash",
            crashing("device-crash", &|f| {
                f.device_crash = Some(host_desc::Crash::Abort)
            }),
            "SIGABRT",
        ),
    ];
    for (name, hook, signal) in &cases {
        let _ = std::fs::remove_dir_all(&cache);
        let out = runc_run(
            &gpu_bundle(&host, std::slice::from_ref(hook)),
            CgroupVersion::V1,
        )
        .unwrap();
        failed_cleanly(&out, &host, &before, name);
        let lib = host
            .layout
            .driver_root
            .join("usr/lib/x86_64-linux-gnu/libnvidia-ml.so.535.104.05");
        assert!(
            out.stderr.contains(&format!(
                "nvidia-docker-hook: NVML crashed with {signal} while discovering the GPUs (library {}): \
                 the driver's user-space libraries do not match the loaded kernel module or are damaged; \
                 check that nvidia-smi works on the host, and reinstall the driver if it does not",
                lib.display()
            )),
            "{name}: {out}"
        );
        assert!(
            !cache.join("inventory.json").exists(),
            "{name}: a snapshot was written"
        );
    }
    // A fresh snapshot first: NVML is not asked, its crash does not matter.
    let out = runc_run(
        &gpu_bundle(&host, &[host.prestart_hook().unwrap()]),
        CgroupVersion::V1,
    )
    .unwrap();
    out.assert_success();
    for (name, hook, _) in &cases {
        let out = runc_run(
            &gpu_bundle(&host, std::slice::from_ref(hook)),
            CgroupVersion::V1,
        )
        .unwrap();
        assert!(out.success(), "{name} with a fresh snapshot: {out}");
        Inside::parse(&out.stdout).assert_gpus(&host, &[0, 1], &format!("{name}\n{out}"));
    }
}
