//! nvidia-docker 1.0 against a real, private dockerd (issue 6): the plugin
//! daemon serves the driver volume and the REST API on a simulated host
//! (mock NVML, generated driver root, real device nodes), and the
//! `nvidia-docker` shim runs containers through it.
//!
//! dockerd finds legacy plugins only in `/run/docker/plugins/*.sock` and
//! `/etc/docker/plugins/*.spec`, machine-wide. The test writes
//! `/etc/docker/plugins/nvidia-docker.spec` pointing at its own plugin socket
//! (a temporary directory), starts its own dockerd, and removes the spec at
//! the end; it refuses to run if a spec or socket of that name already
//! exists (a real installation). Everything runs in one test function, so
//! one plugin serves one dockerd.
//!
//! The inventory is discovered by the hook's code from the simulated
//! host's roots (`NVIDIA_DOCKER_DRIVER_ROOT`, ...), as on a real host. The
//! simulated nodes live in `<sim>/dev`; the shim and the plugin map them with `--device=<sim>/dev/nvidia0:/dev/nvidia0` (`NVIDIA_DOCKER_DEV_ROOT`).
//! The binaries come from the workspace build (`target/<profile>/`, beside
//! this test's `deps/`), or `E2E_CLI_BIN_DIR`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{require_all, v1_labels, Dockerd, Prereq, Variant};
use fixtures::driver_root::{self, Options};
use fixtures::host_desc::HostDescription;

const SPEC: &str = "/etc/docker/plugins/nvidia-docker.spec";
const SOCKET: &str = "/run/docker/plugins/nvidia-docker.sock";

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("E2E_CLI_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Removes the spec file and stops the plugin.
struct PluginGuard {
    child: Child,
    log: PathBuf,
}

impl PluginGuard {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PluginGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(SPEC);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Serializes the tests that own the machine-wide plugin name (and those,
/// in other modules, that need it absent).
pub(crate) static PLUGIN_NAME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A simulated host, the plugin registered with a private dockerd, and the
/// test images `v1e2e/cuda:8.0` (v1 labels, `PATH`/`LD_LIBRARY_PATH` of the
/// official images), `v1e2e/plain` and `v1e2e/cuda:99.0`.
pub struct V1Setup {
    pub desc: HostDescription,
    /// The simulated host's roots, given as `NVIDIA_DOCKER_*_ROOT`.
    pub roots: Roots,
    /// The plugin's REST address.
    pub addr: String,
    pub shim: PathBuf,
    pub dockerd: Dockerd,
    plugin: PluginGuard,
    _work: tempfile::TempDir,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl V1Setup {
    /// Starts everything; `None` when a prerequisite is missing (skipped
    /// locally, failed under CI by `require_all`).
    pub fn start() -> Option<V1Setup> {
        if !require_all(&[Prereq::Root, Prereq::Dockerd]) {
            return None;
        }
        let lock = PLUGIN_NAME.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            !Path::new(SPEC).exists() && !Path::new(SOCKET).exists(),
            "an nvidia-docker plugin is installed on this machine ({SPEC} or {SOCKET}); \
             this test needs the name for its own plugin"
        );
        let bins = bin_dir();
        let shim = bins.join("nvidia-docker");
        let plugin_bin = bins.join("nvidia-docker-plugin");
        assert!(
            shim.is_file() && plugin_bin.is_file(),
            "build the workspace first (cargo build --workspace): {} missing",
            shim.display()
        );

        // The simulated host: 2 GPUs, driver 535.104.05 (CUDA 12.2).
        let work = tempfile::Builder::new()
            .prefix("e2e-v1-")
            .tempdir()
            .unwrap();
        let desc = HostDescription::synthetic(2, "535.104.05", "12.2");
        let layout = driver_root::generate(
            &desc,
            &work.path().join("host"),
            &Options::locate().unwrap(),
        )
        .unwrap();
        assert!(layout.char_devices, "device nodes must be real (root)");
        let roots = Roots {
            driver: layout.driver_root.clone(),
            dev: layout.dev_root.clone(),
            proc: layout.proc_root.clone(),
            cache: work.path().join("cache"),
        };

        // The plugin.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let sockets = work.path().join("plugins");
        let log = work.path().join("plugin.log");
        let mut cmd = Command::new(&plugin_bin);
        cmd.args(["-l", &addr, "-s"])
            .arg(&sockets)
            .arg("-d")
            .arg(work.path().join("volumes"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        host_env(&mut cmd, &roots);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let plugin = PluginGuard { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "plugin not up:\n{}",
                plugin.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::create_dir_all("/etc/docker/plugins").unwrap();
        std::fs::write(
            SPEC,
            format!("unix://{}\n", sockets.join("nvidia-docker.sock").display()),
        )
        .unwrap();

        let dockerd = Dockerd::builder().start().unwrap();
        let path_with_nvidia = "PATH=/usr/local/nvidia/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        let mut cuda8 = v1_labels("8.0");
        cuda8.push(format!("ENV {path_with_nvidia}"));
        cuda8.push("ENV LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64".to_owned());
        dockerd
            .import(Variant::Debian, "v1e2e/cuda:8.0", &cuda8)
            .unwrap();
        dockerd
            .import(Variant::Debian, "v1e2e/plain", &[] as &[&str])
            .unwrap();
        dockerd
            .import(Variant::Debian, "v1e2e/cuda:99.0", &v1_labels("99.0"))
            .unwrap();
        Some(V1Setup {
            desc,
            roots,
            addr,
            shim,
            dockerd,
            plugin,
            _work: work,
            _lock: lock,
        })
    }

    /// A command with the daemon's client environment and the host's
    /// `NVIDIA_DOCKER_*` variables.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dockerd.dir().join("home"))
            .env("DOCKER_CONFIG", self.dockerd.dir().join("client"))
            .env("DOCKER_HOST", self.dockerd.host())
            .stdin(Stdio::null());
        host_env(&mut cmd, &self.roots);
        cmd
    }

    /// Runs the shim.
    pub fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Out {
        let mut cmd = self.command(&self.shim);
        cmd.args(args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Logs for a failure message.
    pub fn context(&self, o: &Out) -> String {
        format!(
            "{o}\n--- plugin ---\n{}\n--- dockerd ---\n{}",
            self.plugin.log(),
            self.dockerd.log_tail(15)
        )
    }
}

/// Where the simulated host is.
pub struct Roots {
    pub driver: PathBuf,
    pub dev: PathBuf,
    pub proc: PathBuf,
    /// The inventory snapshot's directory.
    pub cache: PathBuf,
}

/// The host as the hook's configuration sees it: the inventory is
/// discovered (NVML in a child, the driver root's linker cache) and cached
/// like on a real host.
fn host_env(cmd: &mut Command, roots: &Roots) {
    cmd.env("NVIDIA_DOCKER_CONFIG", "/dev/null")
        .env("NVIDIA_DOCKER_DRIVER_ROOT", &roots.driver)
        .env("NVIDIA_DOCKER_DEV_ROOT", &roots.dev)
        .env("NVIDIA_DOCKER_PROC_ROOT", &roots.proc)
        .env("NVIDIA_DOCKER_CACHE_DIR", &roots.cache)
        .env("NVML_MOCK_DEV_ROOT", &roots.dev);
}

#[test]
fn v1_nvidia_docker_with_dockerd() {
    let Some(s) = V1Setup::start() else {
        return;
    };
    let desc = &s.desc;
    let addr = s.addr.clone();
    let shim = s.shim.clone();
    let run = |args: &[&str], extra: &[(&str, &str)]| s.run(args, extra);
    let ctx = |o: &Out| s.context(o);
    let smi = [
        "run",
        "--rm",
        "v1e2e/cuda:8.0",
        "sh",
        "-c",
        "command -v nvidia-smi && nvidia-smi -L",
    ];
    let gpu_lines = |o: &Out| o.stdout.lines().filter(|l| l.starts_with("GPU ")).count();

    // All GPUs, through --device and the driver volume.
    let o = run(&smi, &[]);
    assert_eq!(o.code, Some(0), "{}", ctx(&o));
    assert!(
        o.stdout.starts_with("/usr/local/nvidia/bin/nvidia-smi\n"),
        "{}",
        ctx(&o)
    );
    assert_eq!(gpu_lines(&o), 2, "{}", ctx(&o));
    assert!(o.stdout.contains(&desc.gpus[0].uuid) && o.stdout.contains(&desc.gpus[1].uuid));

    // NV_GPU narrows it to one (the volume now exists: plain --volume).
    let o = run(&smi, &[("NV_GPU", "1")]);
    assert_eq!(o.code, Some(0), "{}", ctx(&o));
    assert_eq!(gpu_lines(&o), 1, "{}", ctx(&o));
    assert!(o.stdout.contains(&desc.gpus[1].uuid), "{}", ctx(&o));

    // An unlabelled image gets nothing; exit codes pass through.
    let o = run(
        &[
            "run",
            "--rm",
            "v1e2e/plain",
            "sh",
            "-c",
            "ls /dev | grep -c nvidia; test -e /usr/local/nvidia && echo volume; exit 3",
        ],
        &[],
    );
    assert_eq!(o.code, Some(3), "{}", ctx(&o));
    assert_eq!(o.stdout, "0\n", "{}", ctx(&o));

    // A too-new com.nvidia.cuda.version fails with v1's message, exit 1.
    let o = run(&["run", "--rm", "v1e2e/cuda:99.0", "true"], &[]);
    assert_eq!(o.code, Some(1), "{}", ctx(&o));
    let line = o.stderr.trim_end();
    let (argv0, rest) = line
        .split_once(" | ")
        .unwrap_or_else(|| panic!("{}", ctx(&o)));
    assert_eq!(argv0, shim.to_str().unwrap());
    assert_eq!(
        &rest[19..],
        " Error: unsupported CUDA version: driver 12.2 < image 99.0",
        "{}",
        ctx(&o)
    );

    // docker volume ls shows the driver volume; other commands pass through.
    let o = run(&["volume", "ls"], &[]);
    assert_eq!(o.code, Some(0), "{}", ctx(&o));
    assert!(
        o.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["nvidia-docker", "nvidia_driver_535.104.05"]),
        "{}",
        ctx(&o)
    );
    let o = run(&["ps", "-a"], &[]);
    assert_eq!(o.code, Some(0), "{}", ctx(&o));
    assert!(o.stdout.starts_with("CONTAINER ID"), "{}", ctx(&o));
    let o = run(&["version", "--format", "{{.Client.Os}}"], &[]);
    assert_eq!(
        o.stdout,
        format!("NVIDIA Docker: {}\n\nlinux\n", env!("CARGO_PKG_VERSION")),
        "{}",
        ctx(&o)
    );

    // Remote mode against the plugin on loopback: the same result.
    let o = run(&smi, &[("NV_HOST", &addr)]);
    assert_eq!(o.code, Some(0), "{}", ctx(&o));
    assert_eq!(gpu_lines(&o), 2, "{}", ctx(&o));
    let o = run(&smi, &[("NV_HOST", &addr), ("NV_GPU", "GPU-nope")]);
    assert_eq!(o.code, Some(1), "{}", ctx(&o));
    assert!(
        o.stderr
            .trim_end()
            .ends_with("Error: invalid device: GPU-nope"),
        "{}",
        ctx(&o)
    );
    let o = run(
        &["run", "--rm", "v1e2e/cuda:99.0", "true"],
        &[("NV_HOST", &addr)],
    );
    assert_eq!(o.code, Some(1), "{}", ctx(&o));
    assert!(
        o.stderr
            .trim_end()
            .ends_with("Error: unsupported CUDA version: driver 12.2 < image 99.0"),
        "{}",
        ctx(&o)
    );
}
