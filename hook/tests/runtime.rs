//! The runc wrapper on a simulated host: `hook::runtime::prepare` edits a
//! bundle's spec (or leaves it byte-identical), and the
//! `nvidia-docker-runtime` binary passes commands to a stand-in runtime
//! with the original arguments.
//!
//! Needs the mock NVML: `cargo build -p mock-nvml -p fixtures` first.
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use fixtures::artifacts::Artifacts;
use fixtures::driver_root::{self, Layout, Options};
use fixtures::host_desc::HostDescription;
use hook::config::{HookConfig, HostPaths, ProbeCommand};
use hook::runtime::fixups::Fixups;
use hook::runtime::spec::{ANNOTATION_PLAN, PLAN_APPLIED};
use hook::runtime::{self, Outcome, RuntimeError, Settings};
use serde_json::{json, Value};
use tempfile::TempDir;

const HOOK: &str = env!("CARGO_BIN_EXE_nvidia-docker-hook");
const WRAPPER: &str = env!("CARGO_BIN_EXE_nvidia-docker-runtime");

struct Sim {
    dir: TempDir,
    layout: Layout,
}

impl Sim {
    fn new(n: usize) -> Sim {
        let artifacts = Artifacts::locate()
            .expect("build the mock first: cargo build -p mock-nvml -p fixtures");
        let options = Options::new(&artifacts);
        let dir = TempDir::new().unwrap();
        let desc = HostDescription::synthetic(n, "535.104.05", "12.2");
        let layout = driver_root::generate(&desc, &dir.path().join("host"), &options).unwrap();
        Sim { dir, layout }
    }

    fn config(&self) -> HookConfig {
        let l = &self.layout;
        HookConfig {
            paths: HostPaths {
                dev_root: l.dev_root.clone(),
                proc_root: l.proc_root.clone(),
                cache_dir: self.dir.path().join("cache"),
                ..HostPaths::with_driver_root(&l.driver_root)
            },
            nvml_probe: ProbeCommand {
                program: HOOK.into(),
                args: vec!["inventory".into(), "--nvml-probe".into()],
                env: vec![("NVML_MOCK_DEV_ROOT".into(), l.dev_root.clone().into())],
            },
            ..HookConfig::default()
        }
    }

    /// The variables pointing a whole process at this host.
    fn env(&self) -> Vec<(&'static str, PathBuf)> {
        let l = &self.layout;
        let config = self.dir.path().join("config.toml");
        std::fs::write(&config, "").unwrap();
        vec![
            ("NVIDIA_DOCKER_CONFIG", config),
            ("NVIDIA_DOCKER_DRIVER_ROOT", l.driver_root.clone()),
            ("NVIDIA_DOCKER_DEV_ROOT", l.dev_root.clone()),
            ("NVIDIA_DOCKER_PROC_ROOT", l.proc_root.clone()),
            ("NVIDIA_DOCKER_CACHE_DIR", self.dir.path().join("cache")),
            ("NVML_MOCK_DEV_ROOT", l.dev_root.clone()),
        ]
    }
}

fn settings() -> Settings {
    Settings {
        runtimes: vec!["runc".into()],
        hook_path: PathBuf::from("/usr/bin/nvidia-docker-hook"),
        hook_env: vec![runtime::HOOK_PATH_ENV.to_owned(), "X=1".to_owned()],
    }
}

/// A bundle with a Debian-like rootfs and `env`, plus an unknown field and
/// a mount and device rule of the runtime's own.
fn bundle(env: &[&str]) -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/debian_version"), "12\n").unwrap();
    let mut envs = vec!["PATH=/bin".to_owned()];
    envs.extend(env.iter().map(|s| (*s).to_owned()));
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/", "env": envs, "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}},
        "x-unknown": {"kept": [1, 2, 3]}
    });
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, path)
}

fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn no_gpu_bundle_is_byte_identical_and_no_inventory_is_loaded() {
    for env in [
        &[][..],
        &["NVIDIA_VISIBLE_DEVICES=void"],
        &["NVIDIA_VISIBLE_DEVICES="],
    ] {
        let (dir, path) = bundle(env);
        let before = std::fs::read(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let out = runtime::prepare(dir.path(), &rules::Config::default(), &settings(), || {
            panic!("the inventory must not be loaded for a non-GPU container")
        })
        .unwrap();
        assert_eq!(out, Outcome::NotGpu);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    }
}

#[test]
fn gpu_bundle_gets_devices_rules_mounts_hook_and_annotation() {
    let sim = Sim::new(4);
    let cfg = sim.config();
    let (dir, path) = bundle(&["NVIDIA_VISIBLE_DEVICES=1,3"]);
    let inode = std::fs::metadata(&path).unwrap().ino();
    let out = runtime::prepare(dir.path(), &cfg.rules, &settings(), || {
        hook::inventory::discover(&cfg)
    })
    .unwrap();
    let Outcome::Rewritten(plan) = out else {
        panic!("not rewritten")
    };
    let spec = read(&path);
    // Unknown fields and the runtime's own entries survive.
    assert_eq!(spec["x-unknown"], json!({"kept": [1, 2, 3]}));
    assert_eq!(spec["mounts"][0]["destination"], "/proc");
    assert_eq!(
        spec["linux"]["resources"]["devices"][0],
        json!({"allow": false, "access": "rwm"})
    );
    // Device nodes and exactly the matching allow rules.
    let devices = spec["linux"]["devices"].as_array().unwrap();
    let paths: Vec<&str> = devices
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/nvidia-uvm-tools",
            "/dev/nvidia1",
            "/dev/nvidia3"
        ]
    );
    assert_eq!(
        devices[3],
        json!({"path": "/dev/nvidia1", "type": "c", "major": 195, "minor": 1, "fileMode": 438, "uid": 0, "gid": 0})
    );
    let rules: Vec<&Value> = spec["linux"]["resources"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .collect();
    assert_eq!(rules.len(), devices.len());
    for (rule, dev) in rules.iter().zip(devices) {
        assert_eq!(rule["allow"], true);
        assert_eq!(rule["access"], "rw");
        assert_eq!(rule["major"], dev["major"]);
        assert_eq!(rule["minor"], dev["minor"]);
    }
    // No driver mount in `mounts`: they are the createRuntime step's.
    assert_eq!(spec["mounts"].as_array().unwrap().len(), 1);
    // One createRuntime entry (none at createContainer) with an explicit
    // environment and a timeout, whose arguments parse back into the plan's
    // fix-ups, entering the container first.
    assert!(spec["hooks"].get("createContainer").is_none());
    let hooks = spec["hooks"]["createRuntime"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["path"], "/usr/bin/nvidia-docker-hook");
    assert_eq!(hooks[0]["timeout"], 30);
    assert_eq!(strings(&hooks[0]["env"]), [runtime::HOOK_PATH_ENV, "X=1"]);
    let args = strings(&hooks[0]["args"]);
    assert_eq!(
        args[..3],
        ["nvidia-docker-hook", "create-container", "--enter"]
    );
    let fixups = Fixups::parse(&args[2..]).unwrap();
    assert_eq!(
        fixups,
        Fixups {
            enter: true,
            mounts: plan.mounts.clone(),
            ..Fixups::from_plan(&plan)
        }
    );
    assert!(args
        .iter()
        .any(|a| a == "libcuda.so.1::/usr/lib/x86_64-linux-gnu/libcuda.so"));
    // Driver mounts: the simulated driver root is part of the source.
    let libcuda = args
        .iter()
        .find(|a| a.ends_with("::/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05"))
        .expect("libcuda is mounted in the Debian library directory");
    assert_eq!(
        libcuda.as_str(),
        format!(
            "file,ro,nosuid,nodev:{}/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05::/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05",
            sim.layout.driver_root.display()
        )
    );
    assert_eq!(spec["annotations"][ANNOTATION_PLAN], PLAN_APPLIED);
    // In place: the same inode, its mode kept, no other file made.
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.ino(), inode);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    let names: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["config.json".into(), "rootfs".into()])
    );

    // A second pass (the spec already carries the annotation) changes nothing.
    let before = std::fs::read(&path).unwrap();
    let again = runtime::prepare(dir.path(), &cfg.rules, &settings(), || {
        hook::inventory::discover(&cfg)
    })
    .unwrap();
    assert_eq!(again, Outcome::NotGpu);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn refusal_leaves_the_spec_untouched() {
    let sim = Sim::new(2);
    let cfg = sim.config();
    for env in [
        &["NVIDIA_VISIBLE_DEVICES=7"][..],
        &[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.4",
        ],
        &[
            "NVIDIA_VISIBLE_DEVICES=all",
            "NVIDIA_DRIVER_CAPABILITIES=compute,warp",
        ],
    ] {
        let (dir, path) = bundle(env);
        let before = std::fs::read(&path).unwrap();
        let err = runtime::prepare(dir.path(), &cfg.rules, &settings(), || {
            hook::inventory::discover(&cfg)
        })
        .unwrap_err();
        assert!(matches!(err, RuntimeError::Refused(_)), "{env:?}: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{env:?}");
    }
}

/// The image's CUDA forward-compatibility library (CUDA 12.9 for branches
/// 535..575) is found by the wrapper as by the prestart hook: on the 535
/// host (CUDA 12.2) a `cuda>=12.9` image is planned with the compat
/// directory first for the linker cache instead of being refused; without
/// the library, or with `cuda-compat-mode = "disabled"`, it is refused.
#[test]
fn compat_library_in_the_image_is_used() {
    use fixtures::elf::{Arch, SharedObject};
    let sim = Sim::new(1);
    let cfg = sim.config();
    let env = [
        "NVIDIA_VISIBLE_DEVICES=all",
        "NVIDIA_REQUIRE_CUDA=cuda>=12.9",
    ];
    let prepare = |dir: &Path, rules: &rules::Config| {
        runtime::prepare(dir, rules, &settings(), || hook::inventory::discover(&cfg))
    };

    let (dir, _) = bundle(&env);
    let err = prepare(dir.path(), &cfg.rules).unwrap_err();
    assert!(matches!(err, RuntimeError::Refused(_)), "{err}");

    let compat = dir.path().join("rootfs/usr/local/cuda/compat");
    std::fs::create_dir_all(&compat).unwrap();
    let lib = SharedObject::new(Arch::X86_64, "libcuda.so.1")
        .with_note(
            hook::compat::NOTE_SECTION,
            hook::compat::NOTE_OWNER,
            1,
            br#"{"format":1,"CUDA version":"12.9","driver":[535,550,560,565,570,575],"device":[1,2]}"#,
        )
        .to_bytes()
        .unwrap();
    std::fs::write(compat.join("libcuda.so.575.57.08"), lib).unwrap();

    let disabled = rules::Config {
        cuda_compat: rules::CudaCompatMode::Disabled,
        ..cfg.rules.clone()
    };
    let err = prepare(dir.path(), &disabled).unwrap_err();
    assert!(matches!(err, RuntimeError::Refused(_)), "{err}");

    let Outcome::Rewritten(plan) = prepare(dir.path(), &cfg.rules).unwrap() else {
        panic!("not rewritten")
    };
    assert_eq!(plan.cuda_compat, Some(rules::CompatDecision::Use));
    assert_eq!(plan.cuda_version.unwrap().to_string(), "12.9");
    assert_eq!(plan.ldconfig_dirs[0].as_str(), "/usr/local/cuda/compat");
    // The createRuntime step gives the compat directory to ldconfig first.
    let spec = read(&dir.path().join("config.json"));
    let args = strings(&spec["hooks"]["createRuntime"][0]["args"]);
    let dirs: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--ldconfig-dir")
        .map(|w| w[1].as_str())
        .collect();
    assert_eq!(dirs[0], "/usr/local/cuda/compat", "{args:?}");
    // Nothing of the image is mounted.
    assert!(
        !spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"].as_str().unwrap().contains("compat")),
        "{spec}"
    );
}

#[test]
fn a_spec_of_the_wrong_shape_is_named() {
    let sim = Sim::new(1);
    let cfg = sim.config();
    let (dir, path) = bundle(&["NVIDIA_VISIBLE_DEVICES=all"]);
    let mut spec = read(&path);
    spec["hooks"] = json!(["not", "an object"]);
    std::fs::write(&path, spec.to_string()).unwrap();
    let err = runtime::prepare(dir.path(), &cfg.rules, &settings(), || {
        hook::inventory::discover(&cfg)
    })
    .unwrap_err();
    let line = format!("{:#}", anyhow::Error::from(err));
    assert!(line.contains("config.json"), "{line}");
    assert!(line.ends_with("hooks is not a JSON object"), "{line}");
}

// ---------------------------------------------------------------------------
// The binary, with a stand-in runtime that records its arguments and the
// spec it was given.

fn fake_runtime(dir: &Path) -> PathBuf {
    let path = dir.join("fake-runc");
    std::fs::write(
        &path,
        "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > \"$FAKE_OUT\"\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn wrapper(sim: Option<&Sim>, fake: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(WRAPPER);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env(
            runtime::ENV_RUNTIMES,
            format!("/nonexistent/runc:{}", fake.display()),
        )
        .env(runtime::ENV_HOOK, HOOK)
        .env("FAKE_OUT", out);
    if let Some(sim) = sim {
        for (k, v) in sim.env() {
            cmd.env(k, v);
        }
    }
    cmd
}

fn recorded(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn other_commands_pass_through_untouched() {
    let tmp = TempDir::new().unwrap();
    let fake = fake_runtime(tmp.path());
    let out = tmp.path().join("out");
    let args = [
        "--root",
        "/run/x",
        "state",
        "--bundle",
        "/nonexistent",
        "id",
    ];
    let status = wrapper(None, &fake, &out).args(args).status().unwrap();
    assert!(status.success());
    let mut expected = vec![fake.to_string_lossy().into_owned()];
    expected.extend(args.iter().map(|s| (*s).to_owned()));
    assert_eq!(recorded(&out), expected);
}

#[test]
fn create_rewrites_then_execs_with_the_original_arguments() {
    let sim = Sim::new(2);
    let tmp = TempDir::new().unwrap();
    let fake = fake_runtime(tmp.path());
    let out = tmp.path().join("out");
    let (dir, path) = bundle(&["NVIDIA_VISIBLE_DEVICES=0"]);
    let bundle_arg: OsString = format!("--bundle={}", dir.path().display()).into();
    let args: Vec<OsString> = vec!["create".into(), bundle_arg, "ctr".into()];
    let output = wrapper(Some(&sim), &fake, &out)
        .args(&args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        recorded(&out)[1..],
        [
            "create".to_owned(),
            args[1].to_string_lossy().into_owned(),
            "ctr".to_owned()
        ]
    );
    let spec = read(&path);
    assert_eq!(spec["annotations"][ANNOTATION_PLAN], PLAN_APPLIED);
    assert_eq!(spec["linux"]["devices"].as_array().unwrap().len(), 4);
    let hook = &spec["hooks"]["createRuntime"][0];
    assert_eq!(hook["path"], HOOK);
    let env = strings(&hook["env"]);
    assert!(env.contains(&format!(
        "NVIDIA_DOCKER_PROC_ROOT={}",
        sim.layout.proc_root.display()
    )));
    assert!(!env
        .iter()
        .any(|e| e.starts_with("NVML_MOCK") || e.starts_with("FAKE_OUT")));

    // The default bundle is the current directory.
    let (dir2, path2) = bundle(&["NVIDIA_VISIBLE_DEVICES=1"]);
    let status = wrapper(Some(&sim), &fake, &out)
        .current_dir(dir2.path())
        .args(["create", "ctr2"])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        read(&path2)["linux"]["devices"].as_array().unwrap().len(),
        4
    );
}

#[test]
fn refusal_fails_create_with_the_rules_line_in_runc_log() {
    let sim = Sim::new(1);
    let tmp = TempDir::new().unwrap();
    let fake = fake_runtime(tmp.path());
    let out = tmp.path().join("out");
    let log = tmp.path().join("log.json");
    let (dir, path) = bundle(&[
        "NVIDIA_VISIBLE_DEVICES=all",
        "NVIDIA_REQUIRE_CUDA=cuda>=12.4",
    ]);
    let before = std::fs::read(&path).unwrap();
    let output = wrapper(Some(&sim), &fake, &out)
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "create", "-b"])
        .arg(dir.path())
        .arg("ctr")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CUDA 12.4 needs driver >="), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!out.exists(), "the runtime must not run");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"].as_str().unwrap(), stderr.trim_end());
}

#[test]
fn missing_runtime_is_one_line() {
    let tmp = TempDir::new().unwrap();
    let output = Command::new(WRAPPER)
        .env_clear()
        .env("PATH", tmp.path())
        .env(runtime::ENV_RUNTIMES, "no-such-runc")
        .args(["state", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "nvidia-docker-runtime: no OCI runtime found: tried no-such-runc (set NVIDIA_DOCKER_RUNTIMES to a runtime's name or absolute path)\n"
    );
}

#[test]
fn the_wrapper_never_finds_itself() {
    let tmp = TempDir::new().unwrap();
    let link = tmp.path().join("runc");
    std::fs::hard_link(WRAPPER, &link)
        .or_else(|_| std::fs::copy(WRAPPER, &link).map(|_| ()))
        .unwrap();
    // Copied, it is another file: only a hard link is the same inode.
    let same = std::fs::metadata(&link).unwrap();
    let me = std::fs::metadata(WRAPPER).unwrap();
    use std::os::unix::fs::MetadataExt;
    if (same.dev(), same.ino()) != (me.dev(), me.ino()) {
        return;
    }
    let err = runtime::find_runtime(
        &["runc".to_owned()],
        Some(tmp.path().as_os_str()),
        Some(Path::new(WRAPPER)),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("no OCI runtime found"), "{err}");
}
