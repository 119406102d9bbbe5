//! Test support: a simulated host, its inventory, the plugin daemon as a
//! child process, and a minimal HTTP/1.1 client for loopback and unix
//! sockets (test code only).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::driver_root::{self, Layout, Options};
use fixtures::host_desc::HostDescription;
use rules::{
    DeviceInfo, DriverFile, ElfClass, FileKind, Gpu, HostPath, Inventory, PciBusId, Version,
};

/// A generated host and the inventory file describing it.
pub struct SimHost {
    pub dir: tempfile::TempDir,
    pub layout: Layout,
    pub desc: HostDescription,
    pub inventory: PathBuf,
}

/// The golden host description (`tests/golden/host.json`).
pub fn golden_desc() -> HostDescription {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/host.json");
    HostDescription::load(&path).unwrap()
}

/// The inventory the hook would discover for a generated host.
pub fn inventory_of(desc: &HostDescription, layout: &Layout) -> Inventory {
    let mut inv = Inventory::new(Version::parse(&desc.driver_version).unwrap());
    inv.cuda_version = Some(Version::parse(&desc.cuda_version).unwrap());
    inv.driver_root = HostPath::new(layout.driver_root.to_str().unwrap()).unwrap();
    inv.devices = DeviceInfo {
        nvidia_major: desc.nvidia_major,
        uvm_major: Some(desc.uvm_major),
        caps_major: Some(desc.caps_major),
        uvm_tools: true,
        modeset: true,
    };
    inv.gpus = desc
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| Gpu {
            index: i as u32,
            minor: g.minor,
            uuid: g.uuid.clone(),
            bus_id: PciBusId::parse(&g.pci.bus_id).unwrap(),
            brand: format!("{:?}", g.brand),
            arch: Version::parse(&g.compute_capability).unwrap(),
            model: g.name.clone(),
            mig_enabled: false,
            mig: vec![],
        })
        .collect();
    let m = &layout.manifest;
    for l in &m.libraries {
        inv.files.push(DriverFile {
            path: HostPath::new(l.path.as_str()).unwrap(),
            kind: FileKind::Library,
            class: match l.arch {
                fixtures::elf::Arch::X86_64 => ElfClass::Elf64,
                fixtures::elf::Arch::I386 => ElfClass::Elf32,
            },
            soname: Some(l.soname.clone()),
        });
    }
    for b in &m.binaries {
        inv.files.push(DriverFile {
            path: HostPath::new(b.path.as_str()).unwrap(),
            kind: FileKind::Binary,
            class: ElfClass::Elf64,
            soname: None,
        });
    }
    inv
}

/// Generates `desc` into a temporary directory (under `base` when given)
/// and writes its inventory JSON.
pub fn sim_host_in(desc: HostDescription, base: Option<&Path>) -> SimHost {
    let dir = match base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let opts = Options::locate().expect("build the workspace first (mock NVML, nvidia-smi)");
    let layout = driver_root::generate(&desc, &dir.path().join("host"), &opts).unwrap();
    let inv = inventory_of(&desc, &layout);
    let inventory = dir.path().join("inventory.json");
    std::fs::write(&inventory, serde_json::to_vec_pretty(&inv).unwrap()).unwrap();
    SimHost {
        dir,
        layout,
        desc,
        inventory,
    }
}

pub fn sim_host(desc: HostDescription) -> SimHost {
    sim_host_in(desc, None)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The plugin daemon, killed on drop.
pub struct Plugin {
    pub child: Child,
    pub addr: String,
    pub socket_dir: PathBuf,
    pub volume_dir: PathBuf,
    pub log: PathBuf,
}

impl Plugin {
    /// Starts `nvidia-docker-plugin` on `host` with dev root `dev_root`
    /// (the `NVIDIA_DOCKER_DEV_ROOT` for the `--device` options).
    pub fn start(host: &SimHost, dev_root: &Path, socket_dir: &Path) -> Plugin {
        Plugin::launch(
            host.dir.path(),
            socket_dir,
            &[
                ("NVIDIA_DOCKER_INVENTORY", host.inventory.as_os_str()),
                ("NVIDIA_DOCKER_DEV_ROOT", dev_root.as_os_str()),
                ("NVIDIA_DOCKER_NVML_LIB", host.layout.nvml_lib.as_os_str()),
                ("NVML_MOCK_DEV_ROOT", host.layout.dev_root.as_os_str()),
            ],
        )
    }

    /// Starts `nvidia-docker-plugin` with volumes and its log under `dir`,
    /// its sockets in `socket_dir`, and only `PATH`, an empty configuration
    /// and `env` in its environment; waits until it listens.
    pub fn launch(dir: &Path, socket_dir: &Path, env: &[(&str, &OsStr)]) -> Plugin {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let volume_dir = dir.join("volumes");
        let log = dir.join("plugin.log");
        let child = Command::new(env!("CARGO_BIN_EXE_nvidia-docker-plugin"))
            .args(["-l", &addr, "-s"])
            .arg(socket_dir)
            .arg("-d")
            .arg(&volume_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NVIDIA_DOCKER_CONFIG", "/dev/null")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut p = Plugin {
            child,
            addr,
            socket_dir: socket_dir.to_path_buf(),
            volume_dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&p.addr).is_err() {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("plugin exited ({status}):\n{}", p.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "plugin not ready:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn socket(&self) -> PathBuf {
        self.socket_dir.join("nvidia-docker.sock")
    }

    /// GET over loopback.
    pub fn get(&self, path: &str) -> HttpReply {
        http(
            TcpStream::connect(&self.addr).unwrap(),
            "GET",
            path,
            &[],
            "",
        )
    }

    /// POST to the plugin socket with Docker's Accept header.
    pub fn post(&self, path: &str, body: &str) -> HttpReply {
        http(
            UnixStream::connect(self.socket()).unwrap(),
            "POST",
            path,
            &[("Accept", "application/vnd.docker.plugins.v1.2+json")],
            body,
        )
    }

    /// Sends SIGTERM and waits.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s, self.log_text());
            }
            assert!(Instant::now() < deadline, "plugin did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 exchange with `Connection: close`.
pub fn http<S: Read + Write>(
    mut s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked")
    {
        body = dechunk(&body);
    }
    HttpReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// A golden file.
pub fn golden(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
