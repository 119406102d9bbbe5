//! Discovering what the host has, piece by piece (the inventory module puts
//! the pieces together and caches them):
//!
//! - [`nvml`] — the driver, CUDA and GPU facts, through `nvml-wrapper`;
//!   [`probe`] runs it in a child process under a timeout.
//! - [`driver_files`] — the driver's libraries (from the driver root's
//!   `ld.so.cache`), binaries (from the driver root's `PATH`), GSP firmware
//!   and IPC endpoints, following docs/toolkit.md §2 "Driver discovery"
//!   and docs/v1.md §3; the names come from `rules::files` so the
//!   planner and discovery cannot disagree.
//! - [`device_majors`], [`control_nodes`] — `/proc/devices` and `/dev`.
//! - [`kernel_driver_version`] — `/proc/driver/nvidia/version`.
//!
//! Every file in the driver root is reached through [`root::Resolver`],
//! which refuses symlinks that lead out of the root.
#![forbid(unsafe_code)]

pub mod drm;
pub mod elf;
pub mod extra;
pub mod loader;
pub mod mig;
pub mod nvml;
pub mod probe;
pub mod root;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rules::files::{
    binary_spec, driver_versioned, is_driver_file, library_spec, LibrarySpec, BINARIES, LIBRARIES,
};
use rules::{DriverFile, ElfClass, FileKind, HostPath, Machine};

use crate::ldcache::{self, LdCache, LdCacheError};
use root::{ResolveError, Resolver};

/// Largest `ld.so.cache` read (real ones are a few hundred KiB).
pub const MAX_LD_CACHE: u64 = 64 << 20;

/// The NVML library's soname, looked up in the driver root's cache.
pub const NVML_SONAME: &str = "libnvidia-ml.so.1";

/// Why a piece of the host could not be discovered.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// A host file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The linker cache is larger than any real one.
    #[error("{} is {size} bytes, larger than any ld.so.cache ({MAX_LD_CACHE} bytes at most)", path.display())]
    LdCacheTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The linker cache is malformed.
    #[error("invalid linker cache {}", path.display())]
    LdCache {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: LdCacheError,
    },
    /// `/proc/devices` has no NVIDIA major: the kernel module is not loaded.
    #[error("the NVIDIA kernel module is not loaded: {} lists no \"nvidia\" or \"nvidia-frontend\" character device", path.display())]
    NoNvidiaMajor {
        /// `/proc/devices`.
        path: PathBuf,
    },
    /// `/proc/driver/nvidia/version` does not name a version.
    #[error("{} does not contain an NVRM version", path.display())]
    NoKernelVersion {
        /// The file.
        path: PathBuf,
    },
    /// `libnvidia-ml.so.1` is not in the driver root's cache.
    #[error("{NVML_SONAME} is not in the driver root's linker cache {}; is the driver installed? (or set nvml-lib in [host])", ld_cache.display())]
    NvmlNotInCache {
        /// The cache.
        ld_cache: PathBuf,
    },
    /// The cache's NVML entry does not resolve inside the driver root.
    #[error("cannot resolve {NVML_SONAME} ({value}) inside the driver root")]
    NvmlResolve {
        /// The cache value.
        value: String,
        /// The cause.
        #[source]
        source: ResolveError,
    },
}

/// Reads and parses the linker cache at `path`.
pub fn read_ld_cache(path: &Path) -> Result<LdCache, DiscoverError> {
    use std::io::Read;
    let read_err = |source| DiscoverError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    if size > MAX_LD_CACHE {
        return Err(DiscoverError::LdCacheTooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_LD_CACHE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    ldcache::parse(&bytes).map_err(|source| DiscoverError::LdCache {
        path: path.to_path_buf(),
        source,
    })
}

/// The machine this binary runs on (the hook runs on the host's
/// architecture).
pub fn host_machine() -> Machine {
    if cfg!(target_arch = "aarch64") {
        Machine::Aarch64
    } else if cfg!(target_arch = "powerpc64") {
        Machine::Ppc64le
    } else {
        Machine::X86_64
    }
}

/// `ELFCLASS64` on every machine this project supports.
fn native_class() -> ElfClass {
    ElfClass::Elf64
}

/// The NVML library: the cache's 64-bit `libnvidia-ml.so.1`, resolved
/// inside the driver root, as a host path.
pub fn find_nvml(
    resolver: &mut Resolver,
    cache: &LdCache,
    ld_cache: &Path,
) -> Result<PathBuf, DiscoverError> {
    let entry = cache
        .lookup(NVML_SONAME, host_machine(), native_class())
        .ok_or_else(|| DiscoverError::NvmlNotInCache {
            ld_cache: ld_cache.to_path_buf(),
        })?;
    resolver
        .resolve(&entry.value)
        .map(|r| r.host)
        .map_err(|source| DiscoverError::NvmlResolve {
            value: entry.value.clone(),
            source,
        })
}

/// The NVRM version in `<proc>/driver/nvidia/version` (`NVRM version: NVIDIA
/// UNIX x86_64 Kernel Module  535.104.05  <date>`).
pub fn kernel_driver_version(proc_root: &Path) -> Result<String, DiscoverError> {
    let path = proc_root.join("driver/nvidia/version");
    let text = std::fs::read_to_string(&path).map_err(|source| DiscoverError::Read {
        path: path.clone(),
        source,
    })?;
    parse_kernel_version(&text).ok_or(DiscoverError::NoKernelVersion { path })
}

/// The version word of the `NVRM version:` line: the first token after
/// "Kernel Module" (or, failing that, the first dotted number).
pub fn parse_kernel_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    let is_version = |w: &&str| {
        w.contains('.')
            && w.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let after = line
        .split_once("Kernel Module")
        .map(|(_, rest)| rest)
        .unwrap_or(line);
    after
        .split_whitespace()
        .find(is_version)
        .or_else(|| line.split_whitespace().find(is_version))
        .map(str::to_owned)
}

/// Device majors from `<proc>/devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Majors {
    /// `nvidia` (or `nvidia-frontend`).
    pub nvidia: u32,
    /// `nvidia-uvm`.
    pub uvm: Option<u32>,
    /// `nvidia-caps`.
    pub caps: Option<u32>,
}

/// Reads the character-device majors from `<proc>/devices`.
pub fn device_majors(proc_root: &Path) -> Result<Majors, DiscoverError> {
    let path = proc_root.join("devices");
    let text = std::fs::read_to_string(&path).map_err(|source| DiscoverError::Read {
        path: path.clone(),
        source,
    })?;
    parse_devices(&text).ok_or(DiscoverError::NoNvidiaMajor { path })
}

/// Parses `/proc/devices`' "Character devices:" section.
pub fn parse_devices(text: &str) -> Option<Majors> {
    let mut found: BTreeMap<&str, u32> = BTreeMap::new();
    let mut in_char = false;
    for line in text.lines() {
        let line = line.trim();
        if line.ends_with(':') {
            in_char = line == "Character devices:";
            continue;
        }
        if !in_char {
            continue;
        }
        let mut words = line.split_whitespace();
        if let (Some(num), Some(name)) = (words.next(), words.next()) {
            if let Ok(major) = num.parse() {
                found.entry(name).or_insert(major);
            }
        }
    }
    let nvidia = found
        .get("nvidia")
        .or_else(|| found.get("nvidia-frontend"))
        .copied()?;
    Some(Majors {
        nvidia,
        uvm: found.get("nvidia-uvm").copied(),
        caps: found.get("nvidia-caps").copied(),
    })
}

/// Which control nodes exist under the dev root (by `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlNodes {
    /// `nvidia-uvm-tools`.
    pub uvm_tools: bool,
    /// `nvidia-modeset`.
    pub modeset: bool,
}

/// Checks the control nodes under `dev_root`.
pub fn control_nodes(dev_root: &Path) -> ControlNodes {
    ControlNodes {
        uvm_tools: dev_root.join("nvidia-uvm-tools").exists(),
        modeset: dev_root.join("nvidia-modeset").exists(),
    }
}

/// Where to look for driver files, besides the caches and roots.
#[derive(Debug, Clone)]
pub struct FileSearch<'a> {
    /// The driver (RM) version the libraries must be versioned with.
    pub driver_version: &'a str,
    /// The machine (selects the cache's architecture bits).
    pub machine: Machine,
    /// `PATH` inside the driver root.
    pub binary_path: &'a [String],
    /// The MPS pipe directory inside the driver root.
    pub mps_pipe_dir: &'a str,
}

/// A library found through the cache (or beside it), before the version
/// rules are applied.
#[derive(Debug, Clone)]
struct Candidate {
    inside: String,
    spec: &'static LibrarySpec,
    class: ElfClass,
    info: elf::ElfInfo,
}

/// GLVND front ends that Mesa and other vendors also ship: kept only when
/// they dispatch to NVIDIA (v1's blacklist; docs/v1.md §3).
const GLVND_CHECKED: &[&str] = &["libGL", "libEGL", "libGLESv1_CM", "libGLESv2"];
/// What such a front end must need (a `DT_NEEDED` prefix) to be NVIDIA's or
/// GLVND's rather than Mesa's.
pub const GLVND_NEEDS: &[&str] = &[
    "libnvidia-glcore.so",
    "libnvidia-eglcore.so",
    "libGLdispatch.so",
];
/// Subdirectories of a library directory that `ldconfig` does not scan but
/// the driver installs into.
const UNCACHED_SUBDIRS: &[&str] = &["vdpau"];

/// Collects the driver's files.
pub struct FileFinder<'r> {
    resolver: &'r mut Resolver,
    warned: HashSet<String>,
}

impl<'r> FileFinder<'r> {
    /// A finder resolving through `resolver`.
    pub fn new(resolver: &'r mut Resolver) -> FileFinder<'r> {
        FileFinder {
            resolver,
            warned: HashSet::new(),
        }
    }

    /// Resolves, logging a refused symlink once (a warning naming it) and
    /// anything else at debug level.
    fn resolve(&mut self, path: &str) -> Option<root::Resolved> {
        match self.resolver.resolve(path) {
            Ok(r) => Some(r),
            Err(e @ ResolveError::Escapes { .. }) => {
                let msg = e.to_string();
                if self.warned.insert(msg.clone()) {
                    log::warn!("{msg}");
                }
                None
            }
            Err(e) => {
                log::debug!("skipping {path}: {e}");
                None
            }
        }
    }

    /// Library candidates from the cache: entries whose key names a known
    /// library, resolved inside the root, de-duplicated by resolved path,
    /// with their ELF facts. The version rules come later
    /// ([`FileFinder::select_libraries`]), once the driver version is known.
    fn cache_candidates(&mut self, cache: &LdCache, machine: Machine) -> Vec<Candidate> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (entry, class) in cache.entries_for(machine) {
            let Some(spec) = library_spec(&entry.key) else {
                continue;
            };
            let Some(resolved) = self.resolve(&entry.value) else {
                continue;
            };
            if !resolved.meta.is_file() || !seen.insert(resolved.inside.clone()) {
                continue;
            }
            match elf::inspect(&resolved.host) {
                Ok(info) if info.class == class => out.push(Candidate {
                    inside: resolved.inside,
                    spec,
                    class,
                    info,
                }),
                Ok(info) => log::debug!(
                    "skipping {}: the cache says {class:?}, the file is {:?}",
                    resolved.inside,
                    info.class
                ),
                Err(e) => log::debug!("skipping {}: {e}", resolved.inside),
            }
        }
        out
    }

    /// Versioned driver libraries the cache misses, looked for beside the
    /// ones it has: `<dir>/<stem>.so.<version>` and `<dir>/vdpau/...` for
    /// each directory holding a versioned driver library of that class
    /// (`ldconfig` does not scan `vdpau/`; the toolkit's CDI locator finds
    /// `libvdpau_nvidia` there).
    fn uncached_candidates(&mut self, found: &[Candidate], version: &str) -> Vec<Candidate> {
        let suffix = format!(".so.{version}");
        let mut dirs: BTreeSet<(ElfClass, String)> = BTreeSet::new();
        for c in found {
            if c.inside.ends_with(&suffix) {
                if let Some((dir, _)) = c.inside.rsplit_once('/') {
                    dirs.insert((
                        c.class,
                        if dir.is_empty() {
                            "/".into()
                        } else {
                            dir.to_owned()
                        },
                    ));
                }
            }
        }
        let have: HashSet<(ElfClass, &str)> =
            found.iter().map(|c| (c.class, c.spec.stem)).collect();
        let mut out = Vec::new();
        for spec in LIBRARIES.iter().filter(|s| s.toolkit) {
            for (class, dir) in &dirs {
                if have.contains(&(*class, spec.stem))
                    || out
                        .iter()
                        .any(|c: &Candidate| c.class == *class && c.spec.stem == spec.stem)
                {
                    continue;
                }
                let name = format!("{}{suffix}", spec.stem);
                let places = std::iter::once(dir.clone())
                    .chain(UNCACHED_SUBDIRS.iter().map(|s| format!("{dir}/{s}")));
                for place in places {
                    let path = format!("{place}/{name}");
                    let Ok(resolved) = self.resolver.resolve(&path) else {
                        continue;
                    };
                    if !resolved.meta.is_file() {
                        continue;
                    }
                    if let Ok(info) = elf::inspect(&resolved.host) {
                        if info.class == *class {
                            out.push(Candidate {
                                inside: resolved.inside,
                                spec,
                                class: *class,
                                info,
                            });
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Applies the rules to the candidates: a library the toolkit mounts
    /// must be named `*.so.<driver version>` or be one of the real driver's
    /// unversioned files (`rules::files::UNVERSIONED_FILES`; `libnvidia-tls` also needs the
    /// new TLS ABI tag); a v1-only GLVND front end (`libGL`, `libEGL`,
    /// `libGLES*`) must need `libGLdispatch` or an NVIDIA core library
    /// (Mesa's copies are skipped).
    fn select_libraries(candidates: Vec<Candidate>, version: &str) -> Vec<DriverFile> {
        let mut out = Vec::new();
        for c in candidates {
            let keep = if c.spec.toolkit {
                let file_name = c.inside.rsplit('/').next().unwrap_or("");
                let versioned =
                    is_driver_file(file_name, version) || !driver_versioned(c.spec.stem);
                let tls_ok = c.spec.stem != "libnvidia-tls" || c.info.has_new_tls_abi();
                if !versioned {
                    log::debug!("skipping {}: not versioned with driver {version}", c.inside);
                } else if !tls_ok {
                    log::debug!("skipping {}: no new-TLS ABI tag", c.inside);
                }
                versioned && tls_ok
            } else if GLVND_CHECKED.contains(&c.spec.stem) {
                let nvidia = c.info.needs_any(GLVND_NEEDS);
                if !nvidia {
                    log::debug!(
                        "skipping {}: not a GLVND/NVIDIA build (DT_NEEDED {:?})",
                        c.inside,
                        c.info.needed
                    );
                }
                nvidia
            } else {
                true
            };
            if !keep {
                continue;
            }
            let Ok(path) = HostPath::new(c.inside.clone()) else {
                continue;
            };
            out.push(DriverFile {
                path,
                kind: FileKind::Library,
                class: c.class,
                soname: c.info.soname,
            });
        }
        out
    }

    /// Binaries: the first `<dir>/<name>` on the driver root's `PATH` that
    /// resolves to an executable regular file. The path recorded is the
    /// resolved one when it keeps the name, else the one found on `PATH`.
    fn binaries(&mut self, path: &[String]) -> Vec<DriverFile> {
        let mut out = Vec::new();
        for spec in BINARIES {
            for dir in path {
                let lookup = format!("{}/{}", dir.trim_end_matches('/'), spec.name);
                let Ok(resolved) = self.resolver.resolve(&lookup) else {
                    continue;
                };
                if !resolved.meta.is_file() || resolved.meta.permissions().mode() & 0o111 == 0 {
                    continue;
                }
                let keeps_name = resolved.inside.rsplit('/').next() == Some(spec.name);
                let chosen = if keeps_name { resolved.inside } else { lookup };
                if let Ok(path) = HostPath::new(chosen) {
                    debug_assert!(binary_spec(spec.name).is_some());
                    out.push(DriverFile {
                        path,
                        kind: FileKind::Binary,
                        class: native_class(),
                        soname: None,
                    });
                }
                break;
            }
        }
        out
    }

    /// GSP firmware: `gsp*.bin` in `/lib/firmware/nvidia/<version>` (or
    /// `/usr/lib/firmware/...`), recorded at that path (it is mounted at
    /// the same path in the container).
    fn firmware(&mut self, version: &str) -> Vec<DriverFile> {
        for base in ["/lib/firmware/nvidia", "/usr/lib/firmware/nvidia"] {
            let dir = format!("{base}/{version}");
            let Some(resolved) = self.resolve(&dir) else {
                continue;
            };
            if !resolved.meta.is_dir() {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&resolved.host) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("gsp") && n.ends_with(".bin"))
                .collect();
            names.sort();
            let mut out = Vec::new();
            for name in names {
                let path = format!("{dir}/{name}");
                let Some(file) = self.resolve(&path) else {
                    continue;
                };
                if !file.meta.is_file() {
                    continue;
                }
                if let Ok(path) = HostPath::new(path) {
                    out.push(DriverFile {
                        path,
                        kind: FileKind::Firmware,
                        class: native_class(),
                        soname: None,
                    });
                }
            }
            return out;
        }
        Vec::new()
    }

    /// The persistenced and fabric-manager sockets (`/run/...` or
    /// `/var/run/...`) and the MPS pipe directory, when present.
    fn ipc(&mut self, mps_pipe_dir: &str) -> Vec<DriverFile> {
        let mut out = Vec::new();
        for daemon in ["nvidia-persistenced", "nvidia-fabricmanager"] {
            for run in ["/run", "/var/run"] {
                let path = format!("{run}/{daemon}/socket");
                let Ok(resolved) = self.resolver.resolve(&path) else {
                    continue;
                };
                let t = resolved.meta.file_type();
                // A socket; an empty placeholder file where a socket path
                // was too long to bind (the simulated host) is accepted too.
                if !(t.is_socket() || t.is_file()) {
                    continue;
                }
                if let Ok(path) = HostPath::new(path) {
                    out.push(DriverFile {
                        path,
                        kind: FileKind::IpcSocket,
                        class: native_class(),
                        soname: None,
                    });
                }
                break;
            }
        }
        if let Ok(resolved) = self.resolver.resolve(mps_pipe_dir) {
            if resolved.meta.is_dir() {
                if let Ok(path) = HostPath::new(mps_pipe_dir) {
                    out.push(DriverFile {
                        path,
                        kind: FileKind::MpsPipeDir,
                        class: native_class(),
                        soname: None,
                    });
                }
            }
        }
        out
    }
}

/// Library candidates, gathered before the driver version is known (so the
/// work overlaps the NVML probe).
#[derive(Debug, Clone)]
pub struct LibraryCandidates(Vec<Candidate>);

impl LibraryCandidates {
    /// The driver versions the candidate `libcuda` and `libnvidia-ml` files
    /// are named with (`535.309.01` of `libcuda.so.535.309.01`), with one
    /// file name of each: what the files say the driver is, to hold against
    /// NVML's answer.
    pub fn file_versions(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for c in &self.0 {
            if !matches!(c.spec.stem, "libcuda" | "libnvidia-ml") {
                continue;
            }
            let name = c.inside.rsplit('/').next().unwrap_or("");
            let Some(version) = name
                .strip_prefix(c.spec.stem)
                .and_then(|r| r.strip_prefix(".so."))
            else {
                continue;
            };
            if version.contains('.')
                && version
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                // `libcuda` names the example when there is one.
                let entry = out
                    .entry(version.to_owned())
                    .or_insert_with(|| name.to_owned());
                if c.spec.stem == "libcuda" {
                    *entry = name.to_owned();
                }
            }
        }
        out
    }
}

/// Gathers library candidates from the cache.
pub fn library_candidates(
    resolver: &mut Resolver,
    cache: &LdCache,
    machine: Machine,
) -> LibraryCandidates {
    LibraryCandidates(FileFinder::new(resolver).cache_candidates(cache, machine))
}

/// Every driver file: libraries (from the candidates and the uncached
/// directories), binaries, firmware and IPC endpoints, in that order.
pub fn driver_files(
    resolver: &mut Resolver,
    candidates: LibraryCandidates,
    search: &FileSearch<'_>,
) -> Vec<DriverFile> {
    let mut finder = FileFinder::new(resolver);
    let mut all = candidates.0;
    let extra = finder.uncached_candidates(&all, search.driver_version);
    all.extend(extra);
    let mut files = FileFinder::select_libraries(all, search.driver_version);
    // 64-bit first, then by path: a stable order for snapshots and output.
    files.sort_by(|a, b| (a.class, a.path.as_str()).cmp(&(b.class, b.path.as_str())));
    files.extend(finder.binaries(search.binary_path));
    files.extend(finder.firmware(search.driver_version));
    files.extend(finder.ipc(search.mps_pipe_dir));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_devices() {
        let text = "Character devices:\n  1 mem\n195 nvidia-frontend\n508 nvidia-uvm\n509 nvidia-caps\n\nBlock devices:\n195 nvidia\n";
        assert_eq!(
            parse_devices(text),
            Some(Majors {
                nvidia: 195,
                uvm: Some(508),
                caps: Some(509)
            })
        );
        let modern = "Character devices:\n195 nvidia\n195 nvidia-modeset\n";
        assert_eq!(
            parse_devices(modern).map(|m| (m.nvidia, m.uvm)),
            Some((195, None))
        );
        assert_eq!(parse_devices("Character devices:\n  1 mem\n"), None);
    }

    #[test]
    fn nvrm_version_line() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n";
        assert_eq!(parse_kernel_version(text).as_deref(), Some("535.104.05"));
        let open =
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.26  Release Build\n";
        assert_eq!(parse_kernel_version(open).as_deref(), Some("570.26"));
        assert_eq!(parse_kernel_version("GCC version: 12.2\n"), None);
    }
}
