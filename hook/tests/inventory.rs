//! Inventory discovery and its snapshot, on the simulated host.
//!
//! Every test generates its own host (`fixtures::driver_root::generate`) in a
//! temp dir and points a `HookConfig` at it. NVML runs in the probe child
//! (`nvidia-docker-hook inventory --nvml-probe`, this package's binary) with
//! `NVML_MOCK_DEV_ROOT` and `NVML_MOCK_INIT_LOG` passed in the probe's own
//! environment, so tests never touch the process environment and run in
//! parallel.
//!
//! Needs the mock NVML: `cargo build -p mock-nvml -p fixtures` first.
use std::collections::BTreeSet;
use std::error::Error;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fixtures::artifacts::Artifacts;
use fixtures::driver_root::{self, Capability as FxCap, Layout, Options};
use fixtures::elf::Arch;
use fixtures::host_desc::{Field, HostDescription, NvmlError as Fault};
use fixtures::ldcache as fxcache;
use hook::config::{HookConfig, HostPaths, ProbeCommand};
use hook::discover::probe::ProbeError;
use hook::inventory::{self, InventoryError};
use hook::snapshot::{self, Change, SnapshotError};
use hook::{discover, ldcache};
use proptest::prelude::*;
use rules::files::library_spec;
use rules::{Capability, ElfClass, FileKind, Inventory, PciBusId, Version};
use tempfile::TempDir;

const DRIVER: &str = "535.104.05";
const CUDA: &str = "12.2";
const HOOK: &str = env!("CARGO_BIN_EXE_nvidia-docker-hook");

/// A generated host and a configuration pointing at it.
struct Sim {
    dir: TempDir,
    layout: Layout,
    desc: HostDescription,
}

impl Sim {
    fn new(desc: HostDescription) -> Sim {
        Sim::with(desc, |_| {})
    }

    fn with(desc: HostDescription, opts: impl FnOnce(&mut Options)) -> Sim {
        let artifacts = Artifacts::locate()
            .expect("build the mock first: cargo build -p mock-nvml -p fixtures");
        let mut options = Options::new(&artifacts);
        options.ipc = true;
        opts(&mut options);
        let dir = TempDir::new().unwrap();
        let layout = driver_root::generate(&desc, &dir.path().join("host"), &options).unwrap();
        Sim { dir, layout, desc }
    }

    fn gpus(n: usize) -> Sim {
        Sim::new(HostDescription::synthetic(n, DRIVER, CUDA))
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn init_log(&self) -> PathBuf {
        self.dir.path().join("nvml-init.log")
    }

    /// How many times NVML was initialised.
    fn inits(&self) -> usize {
        std::fs::read_to_string(self.init_log())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn probe_env(&self) -> Vec<(OsString, OsString)> {
        vec![
            (
                "NVML_MOCK_DEV_ROOT".into(),
                self.layout.dev_root.clone().into(),
            ),
            ("NVML_MOCK_INIT_LOG".into(), self.init_log().into()),
        ]
    }

    fn config(&self) -> HookConfig {
        let l = &self.layout;
        HookConfig {
            paths: HostPaths {
                dev_root: l.dev_root.clone(),
                proc_root: l.proc_root.clone(),
                sys_root: l.sys_root.clone(),
                cache_dir: self.cache_dir(),
                ..HostPaths::with_driver_root(&l.driver_root)
            },
            nvml_probe: ProbeCommand {
                program: HOOK.into(),
                args: vec!["inventory".into(), "--nvml-probe".into()],
                env: self.probe_env(),
            },
            ..HookConfig::default()
        }
    }

    /// A config whose NVML answers from `desc` (`NVML_MOCK_HOST`).
    fn config_with_desc(&self, desc: &HostDescription, name: &str) -> HookConfig {
        let file = self.dir.path().join(name);
        std::fs::write(&file, desc.to_json()).unwrap();
        let mut cfg = self.config();
        cfg.nvml_probe
            .env
            .push(("NVML_MOCK_HOST".into(), file.into()));
        cfg
    }

    /// The hook binary, run as a whole process against this host.
    fn hook(&self) -> Command {
        let l = &self.layout;
        let config = self.dir.path().join("config.toml");
        let text = format!(
            "[nvidia-container-cli]\nroot = {:?}\n[host]\ndev-root = {:?}\nproc-root = {:?}\nsys-root = {:?}\ncache-dir = {:?}\n",
            l.driver_root.display().to_string(),
            l.dev_root.display().to_string(),
            l.proc_root.display().to_string(),
            l.sys_root.display().to_string(),
            self.cache_dir().display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(HOOK);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(self.probe_env())
            .arg("--config")
            .arg(config);
        cmd
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn rules_cap(c: FxCap) -> Capability {
    match c {
        FxCap::Utility => Capability::Utility,
        FxCap::Compute => Capability::Compute,
        FxCap::Video => Capability::Video,
        FxCap::Graphics => Capability::Graphics,
        FxCap::Ngx => Capability::Ngx,
    }
}

fn class(arch: Arch) -> ElfClass {
    if arch.is_64() {
        ElfClass::Elf64
    } else {
        ElfClass::Elf32
    }
}

fn paths_of(inv: &Inventory, kind: FileKind) -> BTreeSet<String> {
    inv.files
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.path.to_string())
        .collect()
}

/// The inventory equals the host description and the generator's manifest:
/// every GPU field, the majors and control nodes, and the exact driver files
/// per capability and bitness, with every decoy skipped.
fn check_matches(sim: &Sim, inv: &Inventory) {
    let desc = &sim.desc;
    let m = &sim.layout.manifest;
    assert_eq!(inv.driver_version.to_string(), desc.driver_version);
    assert_eq!(
        inv.cuda_version,
        Some(Version::parse(&desc.cuda_version).unwrap())
    );
    assert_eq!(
        inv.driver_root.as_str(),
        sim.layout.driver_root.to_str().unwrap()
    );
    assert_eq!(inv.devices.nvidia_major, desc.nvidia_major);
    assert_eq!(inv.devices.uvm_major, Some(desc.uvm_major));
    assert_eq!(inv.devices.caps_major, Some(desc.caps_major));
    assert!(inv.devices.uvm_tools && inv.devices.modeset);

    assert_eq!(inv.gpus.len(), desc.gpus.len());
    for (i, (got, want)) in inv.gpus.iter().zip(&desc.gpus).enumerate() {
        assert_eq!(got.index as usize, i);
        assert_eq!(got.minor, want.minor, "GPU {i}");
        assert_eq!(got.uuid, want.uuid);
        assert_eq!(got.bus_id, PciBusId::parse(&want.pci.bus_id).unwrap());
        assert_eq!(got.bus_id.to_string(), want.pci.bus_id);
        assert_eq!(
            serde_json::to_value(want.brand).unwrap(),
            got.brand.as_str()
        );
        assert_eq!(got.arch, Version::parse(&want.compute_capability).unwrap());
        assert_eq!(got.model, want.name);
        assert_eq!(got.mig_enabled, want.mig.current);
    }
    // Every GPU node the manifest made for a GPU has its minor.
    for g in &inv.gpus {
        let node = format!("/dev/nvidia{}", g.minor);
        let n = m.device_nodes.iter().find(|d| d.path == node).unwrap();
        assert_eq!((n.major, n.minor), (inv.devices.nvidia_major, g.minor));
    }

    // Libraries per capability and bitness.
    let libs: Vec<_> = inv
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Library)
        .collect();
    for arch in Arch::ALL {
        for cap in FxCap::ALL {
            let want: BTreeSet<&str> = m
                .libraries_for(cap, arch)
                .map(|l| l.path.as_str())
                .collect();
            let got: BTreeSet<&str> = libs
                .iter()
                .filter(|f| f.class == class(arch))
                .filter(|f| {
                    library_spec(f.path.file_name_str().unwrap())
                        .is_some_and(|s| s.toolkit && s.capability == rules_cap(cap))
                })
                .map(|f| f.path.as_str())
                .collect();
            assert_eq!(got, want, "{cap:?} {arch:?}");
        }
        // nvidia-docker 1.0's GLVND front ends.
        let want: BTreeSet<&str> = m
            .libraries
            .iter()
            .filter(|l| l.arch == arch && l.capability.is_none())
            .map(|l| l.path.as_str())
            .collect();
        let got: BTreeSet<&str> = libs
            .iter()
            .filter(|f| f.class == class(arch))
            .filter(|f| library_spec(f.path.file_name_str().unwrap()).is_some_and(|s| !s.toolkit))
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(got, want, "GLVND {arch:?}");
    }
    // Nothing else, each once, with its soname.
    let all: BTreeSet<&str> = m.libraries.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(libs.len(), all.len());
    for f in &libs {
        let lib = m
            .libraries
            .iter()
            .find(|l| l.path == f.path.as_str())
            .unwrap();
        assert_eq!(
            f.soname.as_deref(),
            Some(lib.soname.as_str()),
            "{}",
            lib.path
        );
        assert_eq!(f.class, class(lib.arch));
    }
    for decoy in &m.decoys {
        assert!(
            inv.files.iter().all(|f| f.path.as_str() != decoy.path),
            "decoy {} ({})",
            decoy.path,
            decoy.why
        );
        for link in &decoy.links {
            assert!(inv.files.iter().all(|f| f.path.as_str() != link.path));
        }
    }
    let want: BTreeSet<String> = m.binaries.iter().map(|b| b.path.clone()).collect();
    assert_eq!(paths_of(inv, FileKind::Binary), want);
    let want: BTreeSet<String> = m.firmware.iter().cloned().collect();
    assert_eq!(paths_of(inv, FileKind::Firmware), want);
    // DRM nodes: each GPU's, by bus id, from sysfs (not the board's card0).
    let want: Vec<(String, String, u32)> = fixtures::driver_root::sysfs::drm_nodes(desc)
        .into_iter()
        .filter(|n| n.bus_id != fixtures::driver_root::sysfs::BOARD_VGA_BUS_ID)
        .map(|n| (n.bus_id, n.name, n.minor))
        .collect();
    let got: Vec<(String, String, u32)> = inv
        .drm
        .iter()
        .map(|d| {
            assert_eq!(d.major, 226);
            (d.bus_id.proc_names()[0].clone(), d.name.clone(), d.minor)
        })
        .collect();
    assert_eq!(got, want);
    // Loader files: every one the generator wrote, by the name the loader
    // uses, recorded at the file it resolves to.
    let want: BTreeSet<(String, String)> = m
        .loader_files
        .iter()
        .map(|l| (l.name.clone(), l.resolved.clone()))
        .collect();
    let got: BTreeSet<(String, String)> = inv
        .loader_files
        .iter()
        .map(|l| (l.name.clone(), l.path.as_str().to_owned()))
        .collect();
    assert_eq!(got, want);
    let sockets: BTreeSet<String> = m
        .ipc
        .iter()
        .filter(|i| i.kind != "directory")
        .map(|i| i.path.clone())
        .collect();
    assert_eq!(paths_of(inv, FileKind::IpcSocket), sockets);
    let dirs: BTreeSet<String> = m
        .ipc
        .iter()
        .filter(|i| i.kind == "directory")
        .map(|i| i.path.clone())
        .collect();
    assert_eq!(paths_of(inv, FileKind::MpsPipeDir), dirs);
    inv.validate().unwrap();
}

#[test]
fn one_gpu_matches_the_description() {
    let sim = Sim::gpus(1);
    let inv = inventory::discover(&sim.config()).unwrap();
    check_matches(&sim, &inv);
}

#[test]
fn eight_gpus_with_minors_unlike_indexes() {
    let mut desc = HostDescription::synthetic(8, "550.54.15", "12.4");
    for (i, g) in desc.gpus.iter_mut().enumerate() {
        g.minor = (7 - i as u32) * 2 + 1;
    }
    desc.gpus[3].mig.current = true;
    desc.nvidia_major = 196;
    desc.uvm_major = 511;
    let sim = Sim::new(desc);
    let inv = inventory::discover(&sim.config()).unwrap();
    check_matches(&sim, &inv);
    assert_eq!(inv.gpus[0].minor, 15);
    assert!(inv.gpus[3].mig_enabled);
}

#[test]
fn sixty_four_gpus_and_the_old_cache_format() {
    let sim = Sim::with(HostDescription::synthetic(64, DRIVER, CUDA), |o| {
        o.ldcache_format = fxcache::Format::Compat;
    });
    let inv = inventory::discover(&sim.config()).unwrap();
    check_matches(&sim, &inv);
}

#[test]
fn ld_cache_parses_like_the_manifest_in_both_formats() {
    let sim = Sim::gpus(1);
    let entries = &sim.layout.manifest.ld_cache;
    for format in [fxcache::Format::New, fxcache::Format::Compat] {
        let bytes = fxcache::to_bytes(entries, format, Some("test"));
        let cache = ldcache::parse(&bytes).unwrap();
        assert_eq!(cache.has_old_format, format == fxcache::Format::Compat);
        let got: Vec<_> = cache
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone(), e.flags))
            .collect();
        let mut want = entries.clone();
        fxcache::sort_entries(&mut want);
        let want: Vec<_> = want
            .into_iter()
            .map(|e| (e.key, e.value, e.flags))
            .collect();
        assert_eq!(got, want);
    }
    let on_disk = ldcache::parse(&std::fs::read(&sim.layout.ld_cache).unwrap()).unwrap();
    assert_eq!(on_disk.entries.len(), entries.len());
}

#[test]
fn hostile_ld_cache_gives_clear_errors() {
    let entries = vec![
        fxcache::Entry::new(
            "libcuda.so.1",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
            0x0303,
        ),
        fxcache::Entry::new(
            "libcuda.so.1",
            "/usr/lib/i386-linux-gnu/libcuda.so.1",
            0x0003,
        ),
    ];
    let good = fxcache::to_bytes(&entries, fxcache::Format::New, None);
    assert_eq!(ldcache::parse(&good).unwrap().entries.len(), 2);
    // Truncated at every length: an error, never a panic.
    for len in 0..good.len() {
        let err = ldcache::parse(&good[..len]).unwrap_err();
        assert!(!err.to_string().contains('\n'));
    }
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"garbage, not a cache at all".to_vec(),
            "not an ld.so.cache",
        ),
        (
            {
                let mut b = good.clone();
                b[20..24].copy_from_slice(&0x1000_0000u32.to_le_bytes());
                b
            },
            "the header claims 268435456 entries",
        ),
        (
            {
                let mut b = good.clone();
                b[48 + 8..48 + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
                b
            },
            "ld.so.cache entry 0: value string offset 4294967280 is outside the file",
        ),
        (
            {
                // The last string loses its NUL.
                let mut b = good.clone();
                let last = b.len() - 1;
                b[last] = b'x';
                b
            },
            "has no terminating NUL",
        ),
        (
            {
                let mut b = fxcache::to_bytes(&entries, fxcache::Format::Compat, None);
                b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
                b
            },
            "the old-format table claims 4294967295 entries",
        ),
    ];
    for (bytes, want) in cases {
        let err = ldcache::parse(&bytes).unwrap_err();
        assert!(err.to_string().contains(want), "{err} (wanted {want:?})");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn ld_cache_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ldcache::parse(&bytes);
        let mut with_magic = ldcache::MAGIC_NEW.to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = ldcache::parse(&with_magic);
        let mut old = ldcache::MAGIC_OLD.to_vec();
        old.extend_from_slice(&bytes);
        let _ = ldcache::parse(&old);
    }

    #[test]
    fn mutated_caches_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        compat in any::<bool>(),
    ) {
        let entries = vec![
            fxcache::Entry::new("libnvidia-ml.so.1", "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", 0x0303),
            fxcache::Entry::new("libGL.so.1", "/usr/lib/x86_64-linux-gnu/mesa/libGL.so.1", 0x0303),
            fxcache::Entry::new("libcuda.so", "/usr/lib/i386-linux-gnu/libcuda.so", 0x0003),
        ];
        let format = if compat { fxcache::Format::Compat } else { fxcache::Format::New };
        let mut bytes = fxcache::to_bytes(&entries, format, Some("gen"));
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let _ = ldcache::parse(&bytes);
        let len = cut.index(bytes.len() + 1);
        let _ = ldcache::parse(&bytes[..len]);
    }
}

#[test]
fn a_corrupt_cache_on_disk_is_an_error_naming_it() {
    let sim = Sim::gpus(1);
    let mut bytes = std::fs::read(&sim.layout.ld_cache).unwrap();
    bytes.truncate(100);
    std::fs::write(&sim.layout.ld_cache, &bytes).unwrap();
    let err = inventory::discover(&sim.config()).unwrap_err();
    let msg = chain(&err);
    assert!(
        msg.starts_with(&format!(
            "invalid linker cache {}: ld.so.cache is truncated",
            sim.layout.ld_cache.display()
        )),
        "{msg}"
    );
    assert_eq!(
        sim.inits(),
        0,
        "NVML is not started for a host it cannot describe"
    );
}

const FAULTS: &[&str] = &[
    "uninitialized",
    "invalid_argument",
    "not_supported",
    "no_permission",
    "not_found",
    "driver_not_loaded",
    "timeout",
    "irq_issue",
    "library_not_found",
    "gpu_is_lost",
    "lib_rm_version_mismatch",
    "unknown",
];

#[test]
fn each_nvml_fault_is_a_one_line_error_naming_it() {
    let sim = Sim::gpus(2);
    for name in FAULTS {
        let mut desc = sim.desc.clone();
        desc.faults.init_error =
            Some(serde_json::from_value::<Fault>(serde_json::json!(name)).unwrap());
        let cfg = sim.config_with_desc(&desc, &format!("fault-{name}.json"));
        let err = inventory::load_or_discover(&cfg).unwrap_err();
        assert!(
            matches!(err, InventoryError::Probe(ProbeError::Nvml(_))),
            "{err:?}"
        );
        let msg = chain(&err);
        let code = format!("NVML_ERROR_{}", name.to_uppercase());
        assert!(msg.contains(&code), "{msg} should name {code}");
        assert!(
            msg.contains(sim.layout.nvml_lib.to_str().unwrap()),
            "{msg} should name the library"
        );
        assert!(msg.contains("nvmlInit"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            !snapshot::path(&cfg.paths.cache_dir).exists(),
            "a failure is not cached"
        );
    }
}

#[test]
fn missing_library_names_the_path_tried() {
    let sim = Sim::gpus(1);
    let mut cfg = sim.config();
    cfg.paths.nvml_lib = Some(sim.dir.path().join("no-such-libnvidia-ml.so.1"));
    let lib = cfg.paths.nvml_lib.clone().unwrap();
    let msg = chain(&inventory::discover(&cfg).unwrap_err());
    assert!(
        msg.starts_with(&format!("cannot load NVML library {}: ", lib.display())),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

#[test]
fn not_supported_fields() {
    let sim = Sim::gpus(2);
    // Facts a container does not need become defaults.
    let mut desc = sim.desc.clone();
    desc.gpus[1].not_supported = vec![
        Field::Name,
        Field::Brand,
        Field::ComputeCapability,
        Field::Architecture,
        Field::MigMode,
    ];
    let inv = inventory::discover(&sim.config_with_desc(&desc, "soft.json")).unwrap();
    let g = &inv.gpus[1];
    assert_eq!((g.model.as_str(), g.brand.as_str()), ("Unknown", "Unknown"));
    assert_eq!(g.arch, Version::parse("0.0").unwrap());
    assert!(!g.mig_enabled);
    assert_eq!(inv.gpus[0].model, sim.desc.gpus[0].name);
    // Those it needs are errors naming the field.
    for (field, words) in [
        (Field::MinorNumber, "minor number"),
        (Field::Uuid, "UUID"),
        (Field::PciInfo, "PCI bus id"),
    ] {
        let mut desc = sim.desc.clone();
        desc.gpus[1].not_supported = vec![field];
        let cfg = sim.config_with_desc(&desc, &format!("hard-{words}.json"));
        let msg = chain(&inventory::discover(&cfg).unwrap_err());
        assert!(
            msg.starts_with(&format!("GPU 1: NVML ({})", sim.layout.nvml_lib.display())),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "does not report its {words} (NVML_ERROR_NOT_SUPPORTED)"
            )),
            "{msg}"
        );
    }
    // The facts themselves keep NOT_SUPPORTED as absent.
    let facts = hook::discover::probe::probe(
        &sim.config_with_desc(&desc, "soft2.json").nvml_probe,
        &sim.layout.nvml_lib,
        Duration::from_secs(10),
    )
    .unwrap();
    let g = &facts.gpus[1];
    assert_eq!(
        (g.name.as_deref(), g.brand.as_deref(), g.compute_capability),
        (None, None, None)
    );
    assert_eq!((g.architecture.as_deref(), g.mig_enabled), (None, None));
    assert_eq!(facts.gpus[0].architecture.as_deref(), Some("Ampere"));
    assert_eq!(facts.cuda_driver_version, Some(12020));
}

#[test]
fn init_delay_beyond_the_timeout_is_the_timeout_error() {
    let sim = Sim::gpus(1);
    let mut desc = sim.desc.clone();
    desc.faults.init_delay_ms = 5000;
    let mut cfg = sim.config_with_desc(&desc, "slow.json");
    cfg.nvml_timeout = Duration::from_millis(300);
    let start = Instant::now();
    let err = inventory::load_or_discover(&cfg).unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, InventoryError::Probe(ProbeError::Timeout { .. })),
        "{err:?}"
    );
    assert_eq!(
        chain(&err),
        format!(
            "NVML discovery timed out after 300 ms (library {}); NVML may be initialising a GPU without persistence mode: enable nvidia-persistenced or raise nvml-timeout in [host]",
            sim.layout.nvml_lib.display()
        )
    );
    assert!(
        took < Duration::from_secs(3),
        "the probe is killed at the deadline ({took:?})"
    );
    // Within the timeout, the delay is just slow.
    desc.faults.init_delay_ms = 200;
    let cfg = sim.config_with_desc(&desc, "slowish.json");
    inventory::discover(&cfg).unwrap();
}

/// Concurrent cold starts rediscover once: the first holds the cache
/// directory's lock while it discovers, the others wait and use the
/// snapshot it wrote (issue 13).
#[test]
fn concurrent_cold_starts_discover_once() {
    let sim = Sim::gpus(4);
    let cfg = sim.config();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| inventory::load_or_discover(&cfg).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(sim.inits(), 1, "eight cold starts, one discovery");
}

#[test]
fn warm_snapshot_never_loads_nvml() {
    let sim = Sim::gpus(4);
    let cfg = sim.config();
    let first = inventory::load_or_discover(&cfg).unwrap();
    assert_eq!(sim.inits(), 1);
    let path = snapshot::path(&cfg.paths.cache_dir);
    let meta = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let snap = snapshot::read(&path).unwrap();
    assert_eq!(snap.format, snapshot::FORMAT);
    assert_eq!(snap.fingerprint.kernel_version, DRIVER);
    assert_eq!(snap.fingerprint.nvml_lib, sim.layout.nvml_lib);
    for _ in 0..5 {
        assert_eq!(inventory::load_or_discover(&cfg).unwrap(), first);
    }
    assert_eq!(sim.inits(), 1, "served from the snapshot");
    check_matches(&sim, &first);
    // --refresh rediscovers.
    assert_eq!(inventory::refresh(&cfg).unwrap(), first);
    assert_eq!(sim.inits(), 2);
}

/// Discovers once, changes the host with `change`, and checks that the
/// snapshot is refused for the expected reason and rediscovered.
fn rediscovers_after(
    change: impl FnOnce(&Sim),
    why: impl Fn(&SnapshotError) -> bool,
) -> (Sim, Inventory) {
    let sim = Sim::gpus(2);
    let cfg = sim.config();
    inventory::load_or_discover(&cfg).unwrap();
    assert!(snapshot::load(&cfg).is_ok());
    change(&sim);
    let err = snapshot::load(&cfg).unwrap_err();
    assert!(why(&err), "{}", chain(&err));
    let inv = inventory::load_or_discover(&cfg).unwrap();
    assert_eq!(sim.inits(), 2, "rediscovered");
    assert!(snapshot::load(&cfg).is_ok(), "and the snapshot rewritten");
    (sim, inv)
}

#[test]
fn changed_driver_version_rediscovers() {
    rediscovers_after(
        |sim| {
            let path = sim.layout.proc_root.join("driver/nvidia/version");
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace(DRIVER, "550.54.15");
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, text).unwrap();
        },
        |e| {
            matches!(e, SnapshotError::Stale { change: Change::DriverVersion { was, now }, .. }
                if was == DRIVER && now == "550.54.15")
        },
    );
}

#[test]
fn added_gpu_node_rediscovers() {
    rediscovers_after(
        |sim| std::fs::write(sim.layout.dev_root.join("nvidia7"), b"").unwrap(),
        |e| matches!(e, SnapshotError::Stale { change: Change::DevNodes { detail }, .. } if detail == "nvidia7 appeared"),
    );
}

#[test]
fn removed_gpu_node_rediscovers() {
    let (_sim, inv) = rediscovers_after(
        |sim| std::fs::remove_file(sim.layout.dev_root.join("nvidia1")).unwrap(),
        |e| matches!(e, SnapshotError::Stale { change: Change::DevNodes { detail }, .. } if detail == "nvidia1 disappeared"),
    );
    // NVML no longer sees the GPU whose node is gone.
    assert_eq!(inv.gpus.len(), 1);
}

#[test]
fn replaced_nvml_library_rediscovers() {
    rediscovers_after(
        |sim| {
            let lib = &sim.layout.nvml_lib;
            let new = lib.with_extension("new");
            std::fs::copy(lib, &new).unwrap();
            std::fs::rename(&new, lib).unwrap();
        },
        |e| {
            matches!(
                e,
                SnapshotError::Stale {
                    change: Change::NvmlLib { .. },
                    ..
                }
            )
        },
    );
}

#[test]
fn rewritten_ld_cache_rediscovers() {
    rediscovers_after(
        |sim| {
            let bytes = std::fs::read(&sim.layout.ld_cache).unwrap();
            let tmp = sim.layout.ld_cache.with_extension("tmp");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, &sim.layout.ld_cache).unwrap();
        },
        |e| {
            matches!(
                e,
                SnapshotError::Stale {
                    change: Change::LdCache,
                    ..
                }
            )
        },
    );
}

#[test]
fn corrupt_snapshots_rediscover() {
    type Case = (&'static str, fn(&Path), fn(&SnapshotError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "garbage",
            |p| std::fs::write(p, b"\x00\x01 not json").unwrap(),
            |e| matches!(e, SnapshotError::Corrupt { .. }),
        ),
        (
            "truncated",
            |p| {
                let bytes = std::fs::read(p).unwrap();
                std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
            },
            |e| matches!(e, SnapshotError::Corrupt { .. }),
        ),
        (
            "other format",
            |p| {
                let text = std::fs::read_to_string(p).unwrap().replacen(
                    &format!("\"format\":{}", snapshot::FORMAT),
                    "\"format\":99",
                    1,
                );
                std::fs::write(p, text).unwrap();
            },
            |e| matches!(e, SnapshotError::Format { found: 99, .. }),
        ),
        (
            "inconsistent",
            |p| {
                let mut snap = snapshot::read(p).unwrap();
                let g = snap.inventory.gpus[0].clone();
                snap.inventory.gpus.push(g);
                snapshot::write(p.parent().unwrap(), &snap).unwrap();
            },
            |e| matches!(e, SnapshotError::Invalid { .. }),
        ),
        (
            // Still valid JSON: a path with one letter changed.
            "one byte changed",
            |p| {
                let text = std::fs::read_to_string(p).unwrap();
                let text = text.replacen("x86_64-linux-gnu", "x86_64-linu--gnu", 1);
                std::fs::write(p, text).unwrap();
            },
            |e| matches!(e, SnapshotError::Checksum { .. }),
        ),
        (
            "no checksum",
            |p| {
                let mut snap: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                snap.as_object_mut().unwrap().remove("checksum");
                std::fs::write(p, serde_json::to_vec(&snap).unwrap()).unwrap();
            },
            |e| matches!(e, SnapshotError::Checksum { .. }),
        ),
        (
            "writable by others",
            |p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
            },
            |e| matches!(e, SnapshotError::NotTrusted { .. }),
        ),
        (
            "a symlink",
            |p| {
                let real = p.with_extension("real");
                std::fs::rename(p, &real).unwrap();
                std::os::unix::fs::symlink(&real, p).unwrap();
            },
            |e| matches!(e, SnapshotError::Read { .. }),
        ),
        (
            "deleted",
            |p| std::fs::remove_file(p).unwrap(),
            |e| matches!(e, SnapshotError::Missing { .. }),
        ),
    ];
    let sim = Sim::gpus(1);
    let cfg = sim.config();
    let first = inventory::load_or_discover(&cfg).unwrap();
    let path = snapshot::path(&cfg.paths.cache_dir);
    for (n, (name, corrupt, why)) in cases.into_iter().enumerate() {
        corrupt(&path);
        let err = snapshot::load(&cfg).unwrap_err();
        assert!(why(&err), "{name}: {}", chain(&err));
        assert_eq!(inventory::load_or_discover(&cfg).unwrap(), first, "{name}");
        assert_eq!(sim.inits(), n + 2, "{name}: rediscovered");
        assert!(
            std::fs::symlink_metadata(&path).unwrap().is_file(),
            "{name}: rewritten"
        );
    }
    // Owned by someone else (root only can give a file away).
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        let err = snapshot::load(&cfg).unwrap_err();
        assert!(
            matches!(err, SnapshotError::NotTrusted { uid: 4242, .. }),
            "{}",
            chain(&err)
        );
        inventory::load_or_discover(&cfg).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().uid(), 0, "rewritten");
    }
}

#[test]
fn unwritable_cache_dir_still_returns_the_inventory() {
    let sim = Sim::gpus(1);
    let mut cfg = sim.config();
    let file = sim.dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    cfg.paths.cache_dir = file.join("cache");
    let inv = inventory::load_or_discover(&cfg).unwrap();
    check_matches(&sim, &inv);
    inventory::load_or_discover(&cfg).unwrap();
    assert_eq!(sim.inits(), 2, "nothing cached, so discovered each time");
}

#[test]
fn symlink_leaving_the_driver_root_is_refused() {
    let sim = Sim::gpus(1);
    let lib_dir = &sim.layout.lib_dir;
    let file = format!("libnvidia-ngx.so.{DRIVER}");
    // The library now lives outside the root; the soname link points there.
    let outside = sim.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::rename(lib_dir.join(&file), outside.join(&file)).unwrap();
    let link = lib_dir.join("libnvidia-ngx.so.1");
    std::fs::remove_file(&link).unwrap();
    let up = "../".repeat(
        lib_dir
            .strip_prefix(sim.dir.path())
            .unwrap()
            .components()
            .count(),
    );
    std::os::unix::fs::symlink(format!("{up}outside/{file}"), &link).unwrap();
    assert!(
        std::fs::metadata(&link).unwrap().is_file(),
        "the link works on the host"
    );
    // An absolute link is read inside the root: it points at nothing there.
    let abs = lib_dir.join("libnvidia-cfg.so.1");
    let cfg_file = format!("libnvidia-cfg.so.{DRIVER}");
    std::fs::rename(lib_dir.join(&cfg_file), outside.join(&cfg_file)).unwrap();
    std::fs::remove_file(&abs).unwrap();
    std::os::unix::fs::symlink(outside.join(&cfg_file), &abs).unwrap();

    let inv = inventory::discover(&sim.config()).unwrap();
    let names: BTreeSet<&str> = inv
        .files
        .iter()
        .filter_map(|f| f.path.file_name_str())
        .collect();
    assert!(
        !names.contains(file.as_str()),
        "followed a link out of the root"
    );
    assert!(!names.contains(cfg_file.as_str()));
    assert!(inv
        .files
        .iter()
        .all(|f| !f.path.as_str().contains("outside")));
    assert!(names.contains(format!("libcuda.so.{DRIVER}").as_str()));
}

#[test]
fn resolver_refuses_escapes_with_a_message_naming_the_link() {
    let sim = Sim::gpus(1);
    let lib_dir = &sim.layout.lib_dir;
    std::os::unix::fs::symlink("../../../../../../../etc/passwd", lib_dir.join("evil")).unwrap();
    let mut r = discover::root::Resolver::new(&sim.layout.driver_root);
    let err = r.resolve("/usr/lib/x86_64-linux-gnu/evil").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "refusing symlink /usr/lib/x86_64-linux-gnu/evil -> ../../../../../../../etc/passwd in the driver root {}: it leads outside the root",
            sim.layout.driver_root.display()
        )
    );
}

// ---------------------------------------------------------------------------
// The binary, as a whole process.

#[test]
fn hook_inventory_text_and_json() {
    let sim = Sim::gpus(2);
    let out = sim.hook().args(["inventory", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: Inventory = serde_json::from_slice(&out.stdout).unwrap();
    check_matches(&sim, &inv);
    assert_eq!(sim.inits(), 1);

    let out = sim.hook().arg("inventory").output().unwrap();
    assert!(out.status.success());
    assert_eq!(sim.inits(), 1, "the second run used the snapshot");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, inventory::render_text(&inv));
    let g = &sim.desc.gpus[1];
    let block = format!(
        "\nDevice Index:   1\nDevice Minor:   {}\nModel:          {}\nBrand:          Nvidia\nGPU UUID:       {}\nBus Location:   {}\nArchitecture:   8.0\n",
        g.minor, g.name, g.uuid, g.pci.bus_id
    );
    assert!(
        text.starts_with(&format!(
            "NVRM version:   {DRIVER}\nCUDA version:   {CUDA}\n\nDevice Index:   0\n"
        )),
        "{text}"
    );
    assert!(text.ends_with(&block), "{text}");

    let out = sim
        .hook()
        .args(["inventory", "--refresh"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(sim.inits(), 2, "--refresh rediscovers");
}

#[test]
fn hook_reports_faults_on_one_line() {
    let sim = Sim::gpus(1);
    let mut desc = sim.desc.clone();
    desc.faults.init_error = Some(Fault::DriverNotLoaded);
    let file = sim.dir.path().join("fault.json");
    std::fs::write(&file, desc.to_json()).unwrap();
    let out = sim
        .hook()
        .env("NVML_MOCK_HOST", &file)
        .arg("inventory")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("nvidia-docker-hook: NVML library "),
        "{err}"
    );
    assert!(
        err.contains("nvmlInit_v2 failed: NVML_ERROR_DRIVER_NOT_LOADED"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn hook_config_errors_name_file_line_and_key() {
    let sim = Sim::gpus(1);
    let bad = sim.dir.path().join("bad.toml");
    std::fs::write(&bad, "[host]\ncache-dir = \"/tmp\"\nnvml-timeot = 3\n").unwrap();
    let out = Command::new(HOOK)
        .env_clear()
        .args(["--config"])
        .arg(&bad)
        .arg("inventory")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("nvidia-docker-hook: invalid configuration file {}, line 3, key \"nvml-timeot\": unknown field `nvml-timeot`", bad.display())),
        "{err}"
    );
    let out = Command::new(HOOK)
        .env_clear()
        .env("NVIDIA_DOCKER_CONFIG", sim.dir.path().join("missing.toml"))
        .arg("inventory")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("nvidia-docker-hook: cannot read configuration file "),
        "{err}"
    );
}

#[test]
fn hook_flags_and_env_override_the_file() {
    let sim = Sim::gpus(1);
    let l = &sim.layout;
    // No file: everything from the environment and flags.
    let out = Command::new(HOOK)
        .env_clear()
        .envs(sim.probe_env())
        .env("NVIDIA_DOCKER_CONFIG", "")
        .env("NVIDIA_DOCKER_DRIVER_ROOT", &l.driver_root)
        .env("NVIDIA_DOCKER_DEV_ROOT", &l.dev_root)
        .env("NVIDIA_DOCKER_SYS_ROOT", &l.sys_root)
        .env("NVIDIA_DOCKER_CACHE_DIR", sim.cache_dir())
        .args(["inventory", "--json", "--proc-root"])
        .arg(&l.proc_root)
        .args(["--nvml-timeout", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: Inventory = serde_json::from_slice(&out.stdout).unwrap();
    check_matches(&sim, &inv);
    assert!(snapshot::path(&sim.cache_dir()).is_file());
}

/// A MIG-enabled GPU's MIG devices, with the caps minors read from the
/// access files; the GPU without MIG has none.
#[test]
fn mig_devices_are_discovered_with_their_caps_minors() {
    let sim = Sim::new(HostDescription::synthetic(2, DRIVER, CUDA).with_mig(0));
    let inv = inventory::discover(&sim.config()).unwrap();
    let gpu = &sim.desc.gpus[0];
    let got: Vec<(u32, String, u32, u32, u32, u32)> = inv.gpus[0]
        .mig
        .iter()
        .map(|m| {
            (
                m.index,
                m.uuid.clone(),
                m.gi,
                m.ci,
                m.gi_caps_minor,
                m.ci_caps_minor,
            )
        })
        .collect();
    let uuid = |k: usize| gpu.mig_devices()[k].ci.uuid.clone();
    // gpu0: gi1 is 3 + 9 = 12 (ci0 13, ci1 14), gi2 is 21 (ci0 22).
    assert_eq!(
        got,
        [
            (0, uuid(0), 1, 0, 12, 13),
            (1, uuid(1), 1, 1, 12, 14),
            (2, uuid(2), 2, 0, 21, 22),
        ]
    );
    assert!(inv.gpus[0].mig_enabled);
    assert!(!inv.gpus[1].mig_enabled && inv.gpus[1].mig.is_empty());
    assert_eq!(inv.devices.caps_major, Some(sim.desc.caps_major));
}

/// Minors come from the access files, not from the numbering scheme: a
/// file that says otherwise wins, and a missing one is an error naming it.
#[test]
fn mig_caps_minors_are_read_not_computed() {
    let sim = Sim::new(HostDescription::synthetic(1, DRIVER, CUDA).with_mig(0));
    let caps = sim
        .layout
        .proc_root
        .join("driver/nvidia/capabilities/gpu0/mig");
    let file = caps.join("gi2/ci0/access");
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "DeviceFileMinor: 99\nDeviceFileMode: 292\n").unwrap();
    let inv = inventory::discover(&sim.config()).unwrap();
    assert_eq!(inv.gpus[0].mig[2].ci_caps_minor, 99);
    std::fs::remove_file(&file).unwrap();
    let err = inventory::discover(&sim.config()).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "MIG device 0:2 ({}): cannot read its capability file {}: ",
            sim.desc.gpus[0].mig_devices()[2].ci.uuid,
            file.display()
        )),
        "{err}"
    );
}

/// A MIG instance created (or destroyed) after the snapshot: stale.
#[test]
fn changed_mig_instances_rediscover() {
    rediscovers_after(
        |sim| {
            let gi = sim
                .layout
                .proc_root
                .join("driver/nvidia/capabilities/gpu1/mig/gi3");
            std::fs::create_dir_all(gi.join("ci0")).unwrap();
        },
        |e| {
            matches!(
                e,
                SnapshotError::Stale {
                    change: Change::Mig,
                    ..
                }
            )
        },
    );
}
