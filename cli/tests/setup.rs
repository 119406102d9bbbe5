//! `nvidia-docker setup` through the library (`cli::setup::run_with`), on
//! temporary files and a simulated host's inventory: idempotent `--write`
//! with one backup, `--dry-run` diffs, refusal of a malformed file, and a
//! deterministic CDI spec.
use std::path::Path;

use clap::Parser;
use cli::setup::{self, cdi, SetupArgs};
use hook::runtime::fixups::Fixups;
use serde_json::Value;

use crate::support::{golden_desc, sim_host};

#[derive(Parser)]
#[command(name = "setup")]
struct Cli {
    #[command(flatten)]
    setup: SetupArgs,
}

/// Runs `setup <args>` with `env`; (stdout, notes).
fn setup(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(String, String)> {
    let cli = Cli::try_parse_from(std::iter::once("setup").chain(args.iter().copied()))?;
    let lookup = |k: &str| {
        env.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| (*v).to_owned())
    };
    let (mut out, mut note) = (Vec::new(), Vec::new());
    setup::run_with(&cli.setup, &lookup, &mut out, &mut note)?;
    Ok((
        String::from_utf8(out).unwrap(),
        String::from_utf8(note).unwrap(),
    ))
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn docker_write_twice_changes_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.json");
    std::fs::write(&path, "{\n\t\"log-level\": \"warn\"\n}\n").unwrap();
    let p = path.to_str().unwrap();
    let (out, _) = setup(&["docker", "--config", p, "--dry-run"], &[]).unwrap();
    assert!(out.contains("+  \"runtimes\": {"), "{out}");
    assert_eq!(
        files(dir.path()),
        ["daemon.json"],
        "--dry-run wrote nothing"
    );

    let (_, note) = setup(
        &["docker", "--config", p, "--set-as-default", "--write"],
        &[],
    )
    .unwrap();
    assert!(
        note.starts_with(&format!("wrote {p} (previous content in {p}.bak-")),
        "{note}"
    );
    let first = std::fs::read(&path).unwrap();
    let v: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(v["log-level"], "warn");
    assert_eq!(v["default-runtime"], "nvidia");
    assert_eq!(
        v["runtimes"]["nvidia"]["path"],
        "/usr/bin/nvidia-docker-runtime"
    );
    assert_eq!(files(dir.path()).len(), 2);

    let (_, note) = setup(
        &["docker", "--config", p, "--set-as-default", "--write"],
        &[],
    )
    .unwrap();
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(lines[0], format!("{p}: already up to date"));
    assert!(
        lines[1].starts_with("mode: wrapper (default-runtime \"nvidia\"), as asked ("),
        "{note}"
    );
    assert_eq!(lines.len(), 2, "{note}");
    assert_eq!(std::fs::read(&path).unwrap(), first);
    assert_eq!(files(dir.path()).len(), 2, "no second backup");
    let (out, note) = setup(
        &["docker", "--config", p, "--set-as-default", "--dry-run"],
        &[],
    )
    .unwrap();
    assert_eq!(
        (out.as_str(), note.lines().next()),
        ("", Some(format!("{p}: no changes").as_str()))
    );
}

#[test]
fn malformed_daemon_json_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.json");
    let bad = "{\n  \"log-level\": \"warn\"\n  \"debug\": true\n}\n";
    std::fs::write(&path, bad).unwrap();
    let p = path.to_str().unwrap();
    for mode in ["--write", "--dry-run"] {
        let err = setup(&["docker", "--config", p, mode], &[]).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("cannot update {p}: it is not valid JSON (line 3, column 3: expected `,` or `}}`): fix or remove it first")
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        assert_eq!(files(dir.path()), ["daemon.json"]);
    }
}

#[test]
fn engines_and_hooks_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "containerd".into(),
            "--config".into(),
            d.join("c2.toml").display().to_string(),
        ],
        vec![
            "containerd".into(),
            "--config-version".into(),
            "3".into(),
            "--cdi".into(),
            "--containerd-version".into(),
            "2.1.0".into(),
            "--config".into(),
            d.join("c3.toml").display().to_string(),
        ],
        vec![
            "crio".into(),
            "--engine-root".into(),
            d.join("host").display().to_string(),
            "--config".into(),
            d.join("crio.d/99-nvidia.toml").display().to_string(),
        ],
        vec![
            "hooks".into(),
            "--engine-root".into(),
            d.join("host").display().to_string(),
            "--output-file".into(),
            d.join("hooks.d/nv.json").display().to_string(),
        ],
    ];
    for case in cases {
        let mut args: Vec<&str> = case.iter().map(String::as_str).collect();
        let (printed, _) = setup(&args, &[("NVIDIA_DOCKER_DEV_ROOT", "/sim/dev")]).unwrap();
        args.push("--write");
        let env = [("NVIDIA_DOCKER_DEV_ROOT", "/sim/dev")];
        let (_, note) = setup(&args, &env).unwrap();
        assert!(note.starts_with("wrote "), "{case:?}: {note}");
        let file = Path::new(case.last().unwrap());
        assert_eq!(std::fs::read_to_string(file).unwrap(), printed, "{case:?}");
        let (_, note) = setup(&args, &env).unwrap();
        let lines: Vec<&str> = note.lines().collect();
        assert!(
            lines[lines.len() - 2].ends_with(": already up to date"),
            "{case:?}: {note}"
        );
        assert!(
            lines[lines.len() - 1].starts_with("mode: "),
            "{case:?}: {note}"
        );
    }
    let hooks: Value =
        serde_json::from_slice(&std::fs::read(d.join("hooks.d/nv.json")).unwrap()).unwrap();
    assert_eq!(
        hooks["hook"]["env"],
        serde_json::json!([
            hook::runtime::HOOK_PATH_ENV,
            "NVIDIA_DOCKER_DEV_ROOT=/sim/dev"
        ])
    );
    let c3 = std::fs::read_to_string(d.join("c3.toml")).unwrap();
    assert!(
        c3.contains(
            "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.nvidia.options]"
        ),
        "{c3}"
    );
}

#[test]
fn cdi_spec_is_deterministic_minimal_and_complete() {
    let host = sim_host(golden_desc());
    let inv = host.inventory.to_str().unwrap().to_owned();
    let dev = host.layout.dev_root.to_str().unwrap().to_owned();
    let env = [
        ("NVIDIA_DOCKER_INVENTORY", inv.as_str()),
        ("NVIDIA_DOCKER_DEV_ROOT", dev.as_str()),
    ];
    let env = &env[..];
    let (json, _) = setup(
        &["cdi", "--format", "json", "--rootfs-flavor", "debian"],
        env,
    )
    .unwrap();
    let (again, _) = setup(
        &["cdi", "--format", "json", "--rootfs-flavor", "debian"],
        env,
    )
    .unwrap();
    assert_eq!(json, again, "same inventory, same bytes");
    let spec: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(spec["cdiVersion"], "0.5.0");
    assert_eq!(spec["kind"], "nvidia.com/gpu");
    let names: Vec<&str> = spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let desc = golden_desc();
    let mut expected: Vec<String> = Vec::new();
    for (i, g) in desc.gpus.iter().enumerate() {
        expected.push(i.to_string());
        expected.push(g.uuid.clone());
    }
    expected.push("all".into());
    assert_eq!(names, expected);
    // Device 0: its node only, with the simulated host path.
    let d0 = &spec["devices"][0]["containerEdits"]["deviceNodes"];
    let minor0 = desc.gpus[0].minor;
    assert_eq!(d0.as_array().unwrap().len(), 1);
    assert_eq!(d0[0]["path"], format!("/dev/nvidia{minor0}"));
    assert_eq!(d0[0]["hostPath"], format!("{dev}/nvidia{minor0}"));
    assert_eq!(d0[0]["permissions"], "rw");
    // `all` has every GPU node.
    let all = spec["devices"].as_array().unwrap().last().unwrap();
    assert_eq!(
        all["containerEdits"]["deviceNodes"]
            .as_array()
            .unwrap()
            .len(),
        desc.gpus.len()
    );
    // Common edits: control nodes, driver mounts, void, one hook.
    let common = &spec["containerEdits"];
    let control: Vec<&str> = common["deviceNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert_eq!(control[0], "/dev/nvidiactl");
    assert!(common["env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("NVIDIA_VISIBLE_DEVICES=void")));
    let libcuda = common["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["containerPath"]
                .as_str()
                .unwrap()
                .starts_with("/usr/lib/x86_64-linux-gnu/libcuda.so.")
        })
        .expect("libcuda is mounted");
    assert_eq!(libcuda["type"], "bind");
    assert_eq!(
        libcuda["options"],
        serde_json::json!(["rbind", "rprivate", "ro", "nosuid", "nodev"])
    );
    let hooks = common["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["hookName"], "createContainer");
    assert_eq!(hooks[0]["timeout"], 30);
    assert_eq!(
        hooks[0]["env"],
        serde_json::json!([
            hook::runtime::HOOK_PATH_ENV,
            format!("NVIDIA_DOCKER_DEV_ROOT={dev}")
        ])
    );
    let args: Vec<String> = hooks[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args[..2], ["nvidia-docker-hook", "create-container"]);
    let fixups = Fixups::parse(&args[2..]).unwrap();
    assert!(!fixups.ldconfig_dirs.is_empty());
    assert!(fixups.proc_mask.is_some());
    // The forward-compatibility step, against this driver (issue 12).
    assert_eq!(
        fixups.cuda_compat_host_driver.map(|v| v.to_string()),
        Some(desc.driver_version.clone())
    );

    // YAML carries the same document.
    let (yaml, _) = setup(&["cdi", "--rootfs-flavor", "debian"], env).unwrap();
    assert!(
        yaml.starts_with("cdiVersion: \"0.5.0\"\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n"),
        "{yaml}"
    );

    // --output-file writes atomically; again: unchanged.
    let out = host.dir.path().join("cdi/nvidia.json");
    let o = out.to_str().unwrap();
    let (_, note) = setup(
        &["cdi", "--rootfs-flavor", "debian", "--output-file", o],
        env,
    )
    .unwrap();
    assert!(note.starts_with("wrote "), "{note}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), json);
    let (_, note) = setup(
        &["cdi", "--rootfs-flavor", "debian", "--output-file", o],
        env,
    )
    .unwrap();
    assert!(note.ends_with("already up to date\n"), "{note}");
}

#[test]
fn cdi_minimum_version_follows_the_fields() {
    let spec = |names: &[&str], host_path: bool, typed: bool, kind: &str| cdi::Spec {
        cdi_version: String::new(),
        kind: kind.into(),
        devices: names
            .iter()
            .map(|n| cdi::Device {
                name: (*n).into(),
                container_edits: cdi::ContainerEdits {
                    device_nodes: vec![cdi::CdiDeviceNode {
                        path: "/dev/x".into(),
                        host_path: host_path.then(|| "/h/x".into()),
                        kind: Some("c".into()),
                        major: Some(1),
                        minor: Some(1),
                        file_mode: 0o666,
                        permissions: "rw".into(),
                        uid: 0,
                        gid: 0,
                    }],
                    ..Default::default()
                },
            })
            .collect(),
        container_edits: cdi::ContainerEdits {
            mounts: vec![cdi::CdiMount {
                host_path: "/a".into(),
                container_path: "/a".into(),
                kind: typed.then(|| "bind".into()),
                options: vec![],
            }],
            ..Default::default()
        },
    };
    assert_eq!(
        cdi::min_version(&spec(&["gpu0"], false, false, "v.com/gpu")),
        "0.3.0"
    );
    assert_eq!(
        cdi::min_version(&spec(&["gpu0"], false, true, "v.com/gpu")),
        "0.4.0"
    );
    assert_eq!(
        cdi::min_version(&spec(&["0"], false, false, "v.com/gpu")),
        "0.5.0"
    );
    assert_eq!(
        cdi::min_version(&spec(&["gpu0"], true, false, "v.com/gpu")),
        "0.5.0"
    );
    assert_eq!(
        cdi::min_version(&spec(&["gpu0"], false, false, "v.com/g.pu")),
        "0.6.0"
    );
}

/// The CDI library's rules for a loadable spec (`pkg/cdi/spec.go`,
/// `device.go`): at least one device, none with empty edits.
fn assert_loadable(spec: &Value) {
    let devices = spec["devices"].as_array().expect("devices");
    assert!(!devices.is_empty(), "invalid spec, no devices: {spec:#}");
    for d in devices {
        let edits = d["containerEdits"].as_object().expect("containerEdits");
        assert!(
            edits
                .values()
                .any(|v| v.as_array().is_some_and(|a| !a.is_empty())),
            "device {}: invalid device, empty device edits",
            d["name"]
        );
    }
}

/// Issue 12: a host without GPUs got a device `all` with empty edits,
/// which the CDI library refuses (and with it every device of the kind).
#[test]
fn cdi_spec_for_a_host_without_gpus_is_loadable() {
    let mut desc = golden_desc();
    desc.gpus.clear();
    desc.links.clear();
    let host = sim_host(desc);
    let inv = host.inventory.to_str().unwrap().to_owned();
    let env = [("NVIDIA_DOCKER_INVENTORY", inv.as_str())];
    let (json, _) = setup(&["cdi", "--format", "json"], &env).unwrap();
    let spec: Value = serde_json::from_str(&json).unwrap();
    assert_loadable(&spec);
    assert_eq!(spec["devices"].as_array().unwrap().len(), 1);
    let all = &spec["devices"][0];
    assert_eq!(all["name"], "all");
    let nodes: Vec<&str> = all["containerEdits"]["deviceNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert!(nodes.contains(&"/dev/nvidiactl"), "{nodes:?}");
    assert!(all["containerEdits"]["mounts"].as_array().unwrap().len() > 1);
    assert!(spec
        .get("containerEdits")
        .is_none_or(|e| e.as_object().unwrap().is_empty()));

    // The golden host's spec is loadable too.
    let host = sim_host(golden_desc());
    let inv = host.inventory.to_str().unwrap().to_owned();
    let env = [("NVIDIA_DOCKER_INVENTORY", inv.as_str())];
    let (json, _) = setup(&["cdi", "--format", "json"], &env).unwrap();
    assert_loadable(&serde_json::from_str(&json).unwrap());
}

/// Issue 12: device nodes were written with fixed type/major/minor, so a
/// spec went stale when `nvidia-uvm`'s dynamic major changed. Now a node is
/// its path and host path (the runtime stats the host node), even with the
/// default dev root.
#[test]
fn cdi_device_nodes_leave_type_and_numbers_to_the_runtime() {
    let host = sim_host(golden_desc());
    let inv = host.inventory.to_str().unwrap().to_owned();
    let env = [("NVIDIA_DOCKER_INVENTORY", inv.as_str())];
    let (json, _) = setup(&["cdi", "--format", "json"], &env).unwrap();
    let spec: Value = serde_json::from_str(&json).unwrap();
    let mut nodes: Vec<&Value> = spec["containerEdits"]["deviceNodes"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    for d in spec["devices"].as_array().unwrap() {
        nodes.extend(d["containerEdits"]["deviceNodes"].as_array().unwrap());
    }
    assert!(nodes
        .iter()
        .any(|n| n["path"] == "/dev/nvidia-uvm" && n["hostPath"] == "/dev/nvidia-uvm"));
    for n in nodes {
        let keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["fileMode", "gid", "hostPath", "path", "permissions", "uid"],
            "{n}"
        );
    }
    assert_eq!(spec["cdiVersion"], "0.5.0", "hostPath needs 0.5.0");
}

/// Issue 12: `setup cdi --write` goes to /var/run/cdi/nvidia.yaml (a spec
/// regenerated with the driver, never outliving it); `--static` to /etc/cdi.
#[test]
fn cdi_write_defaults_to_var_run_cdi() {
    let host = sim_host(golden_desc());
    let inv = host.inventory.to_str().unwrap().to_owned();
    let env = [("NVIDIA_DOCKER_INVENTORY", inv.as_str())];
    let (diff, note) = setup(&["cdi", "--dry-run"], &env).unwrap();
    let head = diff.lines().take(2).collect::<Vec<_>>().join("\n");
    assert!(head.contains("/var/run/cdi/nvidia.yaml"), "{head}{note}");
    let (diff, note) = setup(&["cdi", "--dry-run", "--static"], &env).unwrap();
    let head = diff.lines().take(2).collect::<Vec<_>>().join("\n");
    assert!(head.contains("/etc/cdi/nvidia.yaml"), "{head}{note}");
}

/// Issue 11: `setup cdi --write` writes a spec per kind of device the host
/// has (IMEX channels and GDS here, no MOFED): `nvidia.yaml`,
/// `nvidia-imex-channel.yaml`, `nvidia-gds.yaml`; `--mode` picks one.
#[test]
fn cdi_write_gives_each_kind_its_own_file() {
    let host = sim_host(golden_desc());
    let mut inv: Value = serde_json::from_slice(&std::fs::read(&host.inventory).unwrap()).unwrap();
    inv["extra_devices"] = serde_json::json!({
        "imex_major": 238,
        "imex_channels": [0, 1],
        "nodes": [{"path": "/dev/nvidia-fs0", "major": 239, "minor": 0}],
    });
    std::fs::write(&host.inventory, serde_json::to_vec(&inv).unwrap()).unwrap();
    let inv = host.inventory.to_str().unwrap().to_owned();
    let env = [("NVIDIA_DOCKER_INVENTORY", inv.as_str())];
    let (diff, note) = setup(&["cdi", "--dry-run"], &env).unwrap();
    let files: Vec<&str> = diff
        .lines()
        .filter_map(|l| l.strip_prefix("+++ "))
        .collect();
    assert_eq!(
        files,
        [
            "/var/run/cdi/nvidia.yaml (new)",
            "/var/run/cdi/nvidia-imex-channel.yaml (new)",
            "/var/run/cdi/nvidia-gds.yaml (new)"
        ],
        "{diff}{note}"
    );
    assert!(diff.contains("+kind: nvidia.com/imex-channel\n"), "{diff}");
    let (yaml, _) = setup(&["cdi", "--mode", "gds"], &env).unwrap();
    assert!(
        yaml.starts_with("cdiVersion: \"0.5.0\"\nkind: nvidia.com/gds\ndevices:\n- name: all\n"),
        "{yaml}"
    );
    let err = setup(&["cdi", "--mode", "mofed"], &env).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("this host has no /dev/infiniband/*"),
        "{err:#}"
    );
}

/// Issue 12: `setup containerd --cdi` wrote `enable_cdi` for containerd
/// 1.6, which ignores it; the version is asked and an old one refused.
#[test]
fn containerd_cdi_needs_a_containerd_that_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let f = file.to_str().unwrap();
    let err = setup(
        &[
            "containerd",
            "--config",
            f,
            "--cdi",
            "--containerd-version",
            "1.6.20",
        ],
        &[],
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").starts_with("containerd 1.6.20 does not read enable_cdi"),
        "{err:#}"
    );
    let (out, _) = setup(
        &[
            "containerd",
            "--config",
            f,
            "--cdi",
            "--containerd-version",
            "1.7.0",
        ],
        &[],
    )
    .unwrap();
    assert!(out.contains("enable_cdi = true"), "{out}");
    let err = setup(
        &[
            "containerd",
            "--config",
            f,
            "--cdi",
            "--containerd-binary",
            "/nonexistent/containerd",
        ],
        &[],
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").starts_with(
            "cannot tell which containerd this is (/nonexistent/containerd --version: "
        ),
        "{err:#}"
    );
    // Without --cdi the version is not asked.
    let (out, _) = setup(
        &[
            "containerd",
            "--config",
            f,
            "--containerd-binary",
            "/nonexistent/containerd",
        ],
        &[],
    )
    .unwrap();
    assert!(!out.contains("enable_cdi"), "{out}");
    // The installed containerd (Debian's 1.6 here) is asked by default.
    if let Ok(o) = std::process::Command::new("containerd")
        .arg("--version")
        .output()
    {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (v, _) = cli::setup::engines::parse_containerd_version(&text).unwrap();
        let r = setup(&["containerd", "--config", f, "--cdi"], &[]);
        assert_eq!(r.is_ok(), (v.0, v.1) >= (1, 7), "{text}: {r:?}");
    }
}

/// Issue 12: `setup docker --runtime-name runc` wrote a daemon.json dockerd
/// refuses to start with.
#[test]
fn docker_reserved_runtime_name_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daemon.json");
    let f = file.to_str().unwrap();
    let err = setup(
        &["docker", "--config", f, "--runtime-name", "runc", "--write"],
        &[],
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").starts_with("--runtime-name \"runc\" is reserved by dockerd"),
        "{err:#}"
    );
    assert!(!file.exists());
}

/// Issue 13: an engine on the systemd cgroup manager gets wrapper mode (the
/// wrapper as its default runtime), with the reason on one line; `--mode
/// hook` keeps hook mode and says what it costs.
#[test]
fn hooks_choose_wrapper_mode_when_an_engine_uses_the_systemd_cgroup_manager() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("host");
    let out = d.join("hooks.d/nv.json");
    let dropin = root.join("etc/containers/containers.conf.d/99-nvidia.conf");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "hooks".to_owned(),
            "--output-file".to_owned(),
            out.display().to_string(),
            "--engine-root".to_owned(),
            root.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        setup(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]).unwrap()
    };
    std::fs::create_dir_all(root.join("etc/containers")).unwrap();
    let (_, note) = run(&["--write"]);
    assert_eq!(
        note.lines().last(),
        Some(
            "mode: hook (default runtime unchanged): podman uses the cgroupfs cgroup driver (the default on \
             a host without systemd), which keeps devices a hook allowed; --mode wrapper to make the wrapper \
             the default runtime"
        ),
        "{note}"
    );
    assert!(out.exists());
    assert!(!dropin.exists());
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    let (printed, _) = run(&[]);
    assert!(
        printed.starts_with(&format!("# {}\n{{", out.display())),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "# {}\n[engine]\nruntime = \"nvidia\"\n",
            dropin.display()
        )),
        "{printed}"
    );
    let (_, note) = run(&["--write"]);
    assert_eq!(
        note.lines().last(),
        Some(
            format!(
                "mode: wrapper (engine.runtime \"nvidia\" in {}): podman uses the systemd cgroup driver (the \
                 default on a host running systemd), and systemctl daemon-reload drops devices a hook allowed \
                 (\"Failed to initialize NVML: Unknown Error\"); --mode hook to leave the default runtime alone",
                dropin.display()
            )
            .as_str()
        ),
        "{note}"
    );
    assert_eq!(
        std::fs::read_to_string(&dropin).unwrap(),
        "[engine]\nruntime = \"nvidia\"\n\n[engine.runtimes]\nnvidia = [\"/usr/bin/nvidia-docker-runtime\"]\n"
    );
    // The hook file is written all the same: containers the wrapper handled
    // carry its annotation and the hook leaves them alone.
    assert!(out.exists());
    std::fs::remove_file(&dropin).unwrap();
    let (_, note) = run(&["--write", "--mode", "hook"]);
    assert!(
        note.lines()
            .last()
            .unwrap()
            .starts_with("mode: hook (default runtime unchanged), as asked; warning: podman uses the systemd cgroup driver"),
        "{note}"
    );
    assert!(!dropin.exists());
    // CRI-O, installed, defaults to systemd.
    std::fs::create_dir_all(root.join("etc/crio")).unwrap();
    let (_, note) = run(&["--write"]);
    let crio = root.join("etc/crio/crio.conf.d/99-nvidia.toml");
    let text = std::fs::read_to_string(&crio).unwrap();
    assert!(text.contains("default_runtime = \"nvidia\""), "{text}");
    assert!(
        note.contains("CRI-O uses the systemd cgroup driver (CRI-O's default)"),
        "{note}"
    );
}

/// Issue 13: `setup docker|containerd|crio` make the wrapper the default
/// runtime when the engine uses the systemd cgroup driver.
#[test]
fn engines_on_the_systemd_cgroup_driver_get_the_wrapper_as_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("host");
    std::fs::create_dir_all(&root).unwrap();
    let r = root.to_str().unwrap();
    let none = format!("unix://{}/none.sock", d.display());
    let dj = d.join("daemon.json");
    let dj = dj.to_str().unwrap();
    std::fs::write(dj, r#"{"exec-opts": ["native.cgroupdriver=systemd"]}"#).unwrap();
    let (out, note) = setup(
        &[
            "docker",
            "--config",
            dj,
            "--docker-host",
            &none,
            "--engine-root",
            r,
        ],
        &[],
    )
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["default-runtime"], "nvidia", "{out}");
    assert!(
        note.starts_with(&format!(
            "mode: wrapper (default-runtime \"nvidia\"): docker uses the systemd cgroup driver (exec-opts native.cgroupdriver=systemd in {dj})"
        )),
        "{note}"
    );
    let (out, note) = setup(
        &[
            "docker",
            "--config",
            dj,
            "--docker-host",
            &none,
            "--engine-root",
            r,
            "--mode",
            "hook",
        ],
        &[],
    )
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.get("default-runtime"), None, "{out}");
    assert!(
        note.contains("warning: docker uses the systemd cgroup driver"),
        "{note}"
    );

    let c = d.join("config.toml");
    let c = c.to_str().unwrap();
    std::fs::write(
        c,
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = true\n",
    )
    .unwrap();
    let (out, note) = setup(&["containerd", "--config", c], &[]).unwrap();
    let t: toml_edit::DocumentMut = out.parse().unwrap();
    let cri = &t["plugins"]["io.containerd.grpc.v1.cri"]["containerd"];
    assert_eq!(
        cri["default_runtime_name"].as_str(),
        Some("nvidia"),
        "{out}"
    );
    assert_eq!(
        cri["runtimes"]["nvidia"]["options"]["SystemdCgroup"].as_bool(),
        Some(true)
    );
    assert!(note.starts_with("mode: wrapper (default_runtime_name \"nvidia\"): containerd uses the systemd cgroup driver (SystemdCgroup = true in plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options in "), "{note}");
    std::fs::write(c, "version = 2\n").unwrap();
    let (out, note) = setup(&["containerd", "--config", c], &[]).unwrap();
    assert!(!out.contains("default_runtime_name"), "{out}");
    assert!(note.starts_with("mode: hook"), "{note}");

    let crio = d.join("crio.toml");
    let crio_args = [
        "crio",
        "--config",
        crio.to_str().unwrap(),
        "--engine-root",
        r,
    ];
    let (out, note) = setup(&crio_args, &[]).unwrap();
    assert!(out.contains("default_runtime = \"nvidia\""), "{out}");
    assert!(note.starts_with("mode: wrapper (default_runtime \"nvidia\"): CRI-O uses the systemd cgroup driver (CRI-O's default)"), "{note}");
    std::fs::create_dir_all(root.join("etc/crio/crio.conf.d")).unwrap();
    std::fs::write(
        root.join("etc/crio/crio.conf.d/10-cg.conf"),
        "[crio.runtime]\ncgroup_manager = \"cgroupfs\"\n",
    )
    .unwrap();
    let (out, _) = setup(&crio_args, &[]).unwrap();
    assert!(!out.contains("default_runtime"), "{out}");
}

#[test]
fn kubernetes_node_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let main = d.join("config.toml");
    std::fs::write(&main, "version = 2\n").unwrap();
    let drop_in = d.join("conf.d/99-nvidia.toml");
    let args = [
        "containerd",
        "--config",
        main.to_str().unwrap(),
        "--drop-in",
        drop_in.to_str().unwrap(),
        "--write",
    ];
    let (_, note) = setup(&args, &[]).unwrap();
    assert_eq!(note.matches("wrote ").count(), 2, "{note}");
    let m = std::fs::read_to_string(&main).unwrap();
    assert_eq!(
        m,
        format!(
            "version = 2\nimports = [{:?}]\n",
            drop_in.display().to_string()
        )
    );
    let text = std::fs::read_to_string(&drop_in).unwrap();
    assert!(
        text.contains("BinaryName = \"/usr/bin/nvidia-docker-runtime\""),
        "{text}"
    );
    assert!(
        text.contains("container_annotations = [\"cdi.k8s.io/*\"]"),
        "{text}"
    );
    let (_, note) = setup(&args, &[]).unwrap();
    assert_eq!(note.matches("already up to date").count(), 2, "{note}");

    let (systemd, udev) = (d.join("systemd"), d.join("udev"));
    let args = [
        "cdi-refresh",
        "--systemd-dir",
        systemd.to_str().unwrap(),
        "--udev-dir",
        udev.to_str().unwrap(),
        "--write",
    ];
    let (_, note) = setup(&args, &[]).unwrap();
    assert_eq!(note.matches("wrote ").count(), 3, "{note}");
    assert!(
        note.contains("systemctl enable --now nvidia-docker-cdi-refresh.path"),
        "{note}"
    );
    assert_eq!(
        files(&systemd),
        [
            "nvidia-docker-cdi-refresh.path",
            "nvidia-docker-cdi-refresh.service"
        ]
    );
    assert_eq!(files(&udev), ["60-nvidia-docker-cdi-refresh.rules"]);
    let (_, note) = setup(&args, &[]).unwrap();
    assert_eq!(note.matches("already up to date").count(), 3, "{note}");

    let (out, _) = setup(&["kubernetes", "--runtime-name", "gpu"], &[]).unwrap();
    assert!(
        out.ends_with("kind: RuntimeClass\nmetadata:\n  name: gpu\nhandler: gpu\n"),
        "{out}"
    );
}
