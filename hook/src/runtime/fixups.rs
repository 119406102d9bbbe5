//! The part of a plan that no OCI spec or CDI edit can express, carried to
//! the hook's `create-container` mode on its command line.
//!
//! A spec can give a container device nodes, cgroup rules, bind mounts and
//! environment; it cannot make symlinks inside the image, refresh the
//! image's linker cache, or mask `/proc/driver/nvidia`. The runc wrapper and
//! the CDI generator therefore add one hook entry (`createRuntime` with
//! `--enter` in a wrapped spec, `createContainer` in a CDI spec) whose
//! arguments say exactly what to do ([`Fixups::to_args`]); the hook parses
//! them back ([`Fixups::parse`]) and needs neither the inventory nor the
//! container's environment. The same strings are written by both renderers,
//! so a CDI spec and a wrapped `config.json` run the same step.
//!
//! Arguments (after `create-container`), each repeatable:
//! - `--link <target>::<link>`: the symlink `<link> -> <target>`, target a
//!   file name in the link's directory (the toolkit's `create-symlinks
//!   --link` spelling);
//! - `--ldconfig-dir <dir>`: a directory for the container's linker cache;
//! - `--ld-cache <machine>:<class>:<path>`: an entry the in-process cache
//!   writer adds (`rules::LdCacheEntry`, key the path's file name, e.g.
//!   `x86_64:elf64:/usr/lib/x86_64-linux-gnu/libcuda.so.1`); when every
//!   `--ldconfig-dir` kept is covered by them, the step writes the cache
//!   itself instead of running `ldconfig` (`docs/linker-cache.md`);
//! - `--mask-proc`, with `--proc-gpu <bus id>` and `--mig-access <path>`:
//!   mask `/proc/driver/nvidia`, keeping those GPUs and MIG access files;
//! - `--app-profile`, with `--app-profile-minor <n>`: write the graphics
//!   application profile for those GPU minors;
//! - `--cuda-compat-host-driver <version>`: the CUDA forward-compatibility
//!   step, for a spec written before the image is known (CDI): look for the
//!   image's `/usr/local/cuda/compat/libcuda.so.*` and, when
//!   `rules::compat::forward_compat` says to use it against this host
//!   driver, put its directory first in the linker cache (the toolkit's
//!   `enable-cuda-compat --host-driver-version`). The runc wrapper decides
//!   this in its plan and does not write it.
//! - `--dev-link <node>::<link>`: the link `<link> -> ../<node>` to a device
//!   node (`/dev/dri/by-path`);
//! - `--mount <kind>[,<flag>...]:<source>::<destination>`: a bind mount of
//!   the host file or directory `<source>` (`<kind>` `file` or `dir`, flags
//!   `ro`, `nosuid`, `nodev`, `noexec`), made as the prestart hook makes
//!   its mounts. Only the runc wrapper writes these (see
//!   `hook::runtime::spec` for why), always with `--enter`: the sources
//!   are host paths. A CDI spec keeps its mounts in its container edits, as
//!   the CDI format wants;
//! - `--enter`: the entry runs in the runtime's namespaces (the runc
//!   wrapper's `createRuntime` entry), so the step first enters the
//!   container's, found through the state's `pid`, as the prestart hook
//!   does. Without it the step runs where a `createContainer` entry runs: in
//!   the container's mount namespace already (the CDI spec's entries).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use rules::{
    AppProfile, ContainerPath, DevLink, ElfClass, FileName, HostPath, LdCacheEntry, Machine,
    MountFlags, MountKind, MountOp, PciBusId, Plan, ProcMask, Symlink, Version,
};

/// The hook subcommand the fix-ups run under.
pub const SUBCOMMAND: &str = "create-container";

/// A fix-up argument the hook does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixupArgError {
    /// `--dev-link` without `<node>::<link>`.
    #[error("--dev-link {0:?}: expected <node>::<link>, the node a file name and the link an absolute, normalised container path")]
    DevLink(String),
    /// `--link` without `<target>::<link>`.
    #[error("--link {0:?}: expected <target>::<link>, the target a file name and the link an absolute, normalised container path")]
    Link(String),
    /// A directory or file path that is not an absolute, normalised path.
    #[error("{flag} {value:?}: expected an absolute, normalised container path")]
    Path {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
    },
    /// `--proc-gpu` that is not a PCI bus id.
    #[error("--proc-gpu {0:?}: expected a PCI bus id such as 00000000:07:00.0")]
    BusId(String),
    /// `--app-profile-minor` that is not a number.
    #[error("--app-profile-minor {0:?}: expected a device minor number")]
    Minor(String),
    /// `--ld-cache` that is not `<machine>:<class>:<path>`.
    #[error("--ld-cache {0:?}: expected <machine>:<class>:<path>, such as x86_64:elf64:/usr/lib64/libcuda.so.1")]
    LdCache(String),
    /// `--mount` that is not `<kind>[,<flag>...]:<source>::<destination>`.
    #[error("--mount {0:?}: expected <kind>[,<flag>...]:<source>::<destination>, the kind file or dir, the flags ro, nosuid, nodev or noexec, both paths absolute and normalised")]
    Mount(String),
    /// `--cuda-compat-host-driver` that is not a version.
    #[error("--cuda-compat-host-driver {0:?}: expected a driver version such as 535.104.05")]
    HostDriver(String),
    /// `--mount` without `--enter`: the sources are host paths, which a
    /// step already in the container's mount namespace cannot reach.
    #[error("--mount needs --enter: the mount sources are host paths, reachable only from the runtime's namespaces (a createRuntime entry)")]
    MountWithoutEnter,
    /// A flag this mode does not know.
    #[error("unknown argument {0:?} (create-container accepts --link, --ldconfig-dir, --ld-cache, --mask-proc, --proc-gpu, --mig-access, --app-profile, --app-profile-minor, --cuda-compat-host-driver, --dev-link, --mount, --enter, --debug)")]
    Unknown(String),
    /// A flag given without its value.
    #[error("{0} needs a value")]
    MissingValue(String),
}

/// What the `create-container` step does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fixups {
    /// Symlinks to make, by link path.
    pub symlinks: Vec<Symlink>,
    /// Directories for the linker cache (none: no refresh).
    pub ldconfig_dirs: Vec<ContainerPath>,
    /// The entries the in-process writer adds for the driver libraries.
    pub ld_cache: Vec<LdCacheEntry>,
    /// `/proc/driver/nvidia` masking.
    pub proc_mask: Option<ProcMask>,
    /// The graphics application profile.
    pub app_profile: Option<AppProfile>,
    /// The forward-compatibility step against this host driver.
    pub cuda_compat_host_driver: Option<Version>,
    /// Links to device nodes.
    pub dev_links: Vec<DevLink>,
    /// Bind mounts (the runc wrapper's; empty from [`Fixups::from_plan`]).
    pub mounts: Vec<MountOp>,
    /// `--enter`: run from the runtime's namespaces, entering the
    /// container's first.
    pub enter: bool,
    /// `--debug` was given.
    pub debug: bool,
}

impl Fixups {
    /// The fix-ups of `plan`, its mounts left to the spec (a CDI spec's
    /// container edits).
    pub fn from_plan(plan: &Plan) -> Fixups {
        Fixups {
            symlinks: plan.symlinks.clone(),
            ldconfig_dirs: plan.ldconfig_dirs.clone(),
            ld_cache: plan.ld_cache.clone(),
            proc_mask: plan.proc_mask.clone(),
            app_profile: plan.app_profile.clone(),
            cuda_compat_host_driver: None,
            dev_links: plan.dev_links.clone(),
            mounts: Vec::new(),
            enter: false,
            debug: false,
        }
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.symlinks.is_empty()
            && self.ldconfig_dirs.is_empty()
            && self.ld_cache.is_empty()
            && self.proc_mask.is_none()
            && self.app_profile.is_none()
            && self.cuda_compat_host_driver.is_none()
            && self.dev_links.is_empty()
            && self.mounts.is_empty()
    }

    /// The arguments after the subcommand, in a fixed order (links by link
    /// path, directories in plan order), so equal fix-ups give equal bytes.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.enter {
            args.push("--enter".to_owned());
        }
        let mut links: Vec<&Symlink> = self.symlinks.iter().collect();
        links.sort();
        for l in links {
            args.push("--link".to_owned());
            args.push(format!("{}::{}", l.target, l.link));
        }
        for d in &self.ldconfig_dirs {
            args.push("--ldconfig-dir".to_owned());
            args.push(d.to_string());
        }
        for e in &self.ld_cache {
            args.push("--ld-cache".to_owned());
            args.push(format!(
                "{}:{}:{}",
                machine_name(e.machine),
                class_name(e.class),
                e.path
            ));
        }
        if let Some(mask) = &self.proc_mask {
            args.push("--mask-proc".to_owned());
            for g in &mask.gpus {
                args.push("--proc-gpu".to_owned());
                args.push(g.to_string());
            }
            for m in &mask.mig_access {
                args.push("--mig-access".to_owned());
                args.push(m.to_string());
            }
        }
        if let Some(profile) = &self.app_profile {
            args.push("--app-profile".to_owned());
            for m in &profile.minors {
                args.push("--app-profile-minor".to_owned());
                args.push(m.to_string());
            }
        }
        if let Some(v) = &self.cuda_compat_host_driver {
            args.push("--cuda-compat-host-driver".to_owned());
            args.push(v.to_string());
        }
        let mut dev_links: Vec<&DevLink> = self.dev_links.iter().collect();
        dev_links.sort();
        for l in dev_links {
            args.push("--dev-link".to_owned());
            args.push(format!("{}::{}", l.node, l.link));
        }
        for m in &self.mounts {
            let mut options = vec![match m.kind {
                MountKind::File => "file",
                MountKind::Directory => "dir",
            }];
            options.extend(m.flags.options());
            args.push("--mount".to_owned());
            args.push(format!(
                "{}:{}::{}",
                options.join(","),
                m.source,
                m.destination
            ));
        }
        if self.debug {
            args.push("--debug".to_owned());
        }
        args
    }

    /// Parses the arguments after the subcommand (`--flag value` or
    /// `--flag=value`).
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Fixups, FixupArgError> {
        let mut f = Fixups::default();
        let mut mask = false;
        let mut gpus = Vec::new();
        let mut mig = Vec::new();
        let mut profile = false;
        let mut minors = Vec::new();
        let mut it = args.iter().map(AsRef::as_ref);
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (arg, None),
            };
            let mut value = |name: &str| -> Result<String, FixupArgError> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .map(str::to_owned)
                        .ok_or_else(|| FixupArgError::MissingValue(name.to_owned())),
                }
            };
            match flag {
                "--link" => f.symlinks.push(parse_link(&value(flag)?)?),
                "--ldconfig-dir" => f
                    .ldconfig_dirs
                    .push(parse_path("--ldconfig-dir", &value(flag)?)?),
                "--ld-cache" => f.ld_cache.push(parse_ld_cache(&value(flag)?)?),
                "--mask-proc" => mask = true,
                "--proc-gpu" => {
                    let v = value(flag)?;
                    gpus.push(PciBusId::parse(&v).ok_or(FixupArgError::BusId(v))?);
                }
                "--mig-access" => mig.push(parse_path("--mig-access", &value(flag)?)?),
                "--app-profile" => profile = true,
                "--app-profile-minor" => {
                    let v = value(flag)?;
                    minors.push(v.parse().map_err(|_| FixupArgError::Minor(v))?);
                }
                "--cuda-compat-host-driver" => {
                    let v = value(flag)?;
                    f.cuda_compat_host_driver =
                        Some(Version::parse(&v).map_err(|_| FixupArgError::HostDriver(v))?);
                }
                "--dev-link" => f.dev_links.push(parse_dev_link(&value(flag)?)?),
                "--mount" => f.mounts.push(parse_mount(&value(flag)?)?),
                "--enter" => f.enter = true,
                "--debug" => f.debug = true,
                other => return Err(FixupArgError::Unknown(other.to_owned())),
            }
        }
        if mask || !gpus.is_empty() || !mig.is_empty() {
            f.proc_mask = Some(ProcMask {
                gpus,
                mig_access: mig,
            });
        }
        if profile || !minors.is_empty() {
            f.app_profile = Some(AppProfile { minors });
        }
        if !f.mounts.is_empty() && !f.enter {
            return Err(FixupArgError::MountWithoutEnter);
        }
        Ok(f)
    }

    /// A plan holding only these fix-ups and mounts (no nodes or rules),
    /// for `hook::apply`.
    pub fn to_plan(&self) -> Plan {
        Plan {
            gpu_container: true,
            driver_version: rules::Version::major_minor(0, 0),
            cuda_version: None,
            capabilities: rules::Capabilities::empty(),
            cuda_compat: None,
            gpus: Vec::new(),
            device_nodes: Vec::new(),
            device_rules: Vec::new(),
            mounts: self.mounts.clone(),
            symlinks: self.symlinks.clone(),
            ldconfig_dirs: self.ldconfig_dirs.clone(),
            env: BTreeMap::new(),
            proc_mask: self.proc_mask.clone(),
            app_profile: self.app_profile.clone(),
            v1_volumes: Vec::new(),
            ld_cache: self.ld_cache.clone(),
            dev_links: self.dev_links.clone(),
        }
    }
}

fn parse_path(flag: &'static str, value: &str) -> Result<ContainerPath, FixupArgError> {
    ContainerPath::new(value).map_err(|_| FixupArgError::Path {
        flag,
        value: value.to_owned(),
    })
}

fn machine_name(m: Machine) -> &'static str {
    match m {
        Machine::X86_64 => "x86_64",
        Machine::Aarch64 => "aarch64",
        Machine::Ppc64le => "ppc64le",
    }
}

fn class_name(c: ElfClass) -> &'static str {
    match c {
        ElfClass::Elf64 => "elf64",
        ElfClass::Elf32 => "elf32",
    }
}

fn parse_ld_cache(value: &str) -> Result<LdCacheEntry, FixupArgError> {
    let bad = || FixupArgError::LdCache(value.to_owned());
    let mut parts = value.splitn(3, ':');
    let (Some(machine), Some(class), Some(path)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let machine = [Machine::X86_64, Machine::Aarch64, Machine::Ppc64le]
        .into_iter()
        .find(|m| machine_name(*m) == machine)
        .ok_or_else(bad)?;
    let class = [ElfClass::Elf64, ElfClass::Elf32]
        .into_iter()
        .find(|c| class_name(*c) == class)
        .ok_or_else(bad)?;
    let path = ContainerPath::new(path).map_err(|_| bad())?;
    let key = path.file_name().ok_or_else(bad)?;
    Ok(LdCacheEntry {
        key,
        path,
        class,
        machine,
    })
}

fn parse_dev_link(value: &str) -> Result<DevLink, FixupArgError> {
    let bad = || FixupArgError::DevLink(value.to_owned());
    let at = value.find("::/").ok_or_else(bad)?;
    let (node, link) = (&value[..at], &value[at + 2..]);
    Ok(DevLink {
        link: ContainerPath::new(link).map_err(|_| bad())?,
        node: FileName::new(node).map_err(|_| bad())?,
    })
}

fn parse_mount(value: &str) -> Result<MountOp, FixupArgError> {
    let bad = || FixupArgError::Mount(value.to_owned());
    let (options, paths) = value.split_once(':').ok_or_else(bad)?;
    // Both paths are absolute: the separator is the first "::" followed by '/'.
    let at = paths.find("::/").ok_or_else(bad)?;
    let (source, destination) = (&paths[..at], &paths[at + 2..]);
    let mut words = options.split(',');
    let kind = match words.next() {
        Some("file") => MountKind::File,
        Some("dir") => MountKind::Directory,
        _ => return Err(bad()),
    };
    let mut flags = MountFlags::default();
    for w in words {
        let flag = match w {
            "ro" => &mut flags.read_only,
            "nosuid" => &mut flags.nosuid,
            "nodev" => &mut flags.nodev,
            "noexec" => &mut flags.noexec,
            _ => return Err(bad()),
        };
        *flag = true;
    }
    Ok(MountOp {
        source: HostPath::new(source).map_err(|_| bad())?,
        destination: ContainerPath::new(destination).map_err(|_| bad())?,
        kind,
        flags,
    })
}

fn parse_link(value: &str) -> Result<Symlink, FixupArgError> {
    let bad = || FixupArgError::Link(value.to_owned());
    // The link is absolute, so the separator is the first "::" followed by '/'.
    let at = value.find("::/").ok_or_else(bad)?;
    let (target, link) = (&value[..at], &value[at + 2..]);
    Ok(Symlink {
        link: ContainerPath::new(link).map_err(|_| bad())?,
        target: FileName::new(target).map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ContainerPath {
        ContainerPath::new(s).unwrap()
    }

    #[test]
    fn round_trip() {
        let f = Fixups {
            symlinks: vec![
                Symlink {
                    link: p("/usr/lib/x/libcuda.so"),
                    target: FileName::new("libcuda.so.1").unwrap(),
                },
                Symlink {
                    link: p("/usr/lib/x/libcuda.so.1"),
                    target: FileName::new("libcuda.so.535.104.05").unwrap(),
                },
            ],
            ldconfig_dirs: vec![p("/usr/lib/x"), p("/usr/lib/y")],
            ld_cache: vec![
                LdCacheEntry {
                    key: FileName::new("libcuda.so.1").unwrap(),
                    path: p("/usr/lib/x/libcuda.so.1"),
                    class: ElfClass::Elf64,
                    machine: Machine::X86_64,
                },
                LdCacheEntry {
                    key: FileName::new("libcuda.so").unwrap(),
                    path: p("/usr/lib/y/libcuda.so"),
                    class: ElfClass::Elf32,
                    machine: Machine::X86_64,
                },
            ],
            proc_mask: Some(ProcMask {
                gpus: vec![PciBusId::parse("00000000:07:00.0").unwrap()],
                mig_access: vec![p("/proc/driver/nvidia/capabilities/gpu0/mig/gi1/access")],
            }),
            app_profile: Some(AppProfile { minors: vec![0, 3] }),
            cuda_compat_host_driver: Some(Version::parse("535.104.05").unwrap()),
            dev_links: vec![DevLink {
                link: p("/dev/dri/by-path/pci-0000:07:00.0-card"),
                node: FileName::new("card1").unwrap(),
            }],
            mounts: vec![
                MountOp {
                    source: HostPath::new("/run/nvidia/driver/usr/lib/x/libcuda.so.535").unwrap(),
                    destination: p("/usr/lib/x/libcuda.so.535"),
                    kind: MountKind::File,
                    flags: MountFlags::DRIVER,
                },
                MountOp {
                    source: HostPath::new("/run/nvidia-persistenced").unwrap(),
                    destination: p("/run/nvidia-persistenced"),
                    kind: MountKind::Directory,
                    flags: MountFlags::IPC,
                },
            ],
            enter: true,
            debug: true,
        };
        let args = f.to_args();
        assert_eq!(
            args[0..3],
            ["--enter", "--link", "libcuda.so.1::/usr/lib/x/libcuda.so"]
        );
        assert!(args.windows(2).any(|w| w
            == [
                "--mount",
                "file,ro,nosuid,nodev:/run/nvidia/driver/usr/lib/x/libcuda.so.535::/usr/lib/x/libcuda.so.535"
            ]));
        assert_eq!(Fixups::parse(&args).unwrap(), f);
        assert_eq!(f.to_plan().mounts, f.mounts);
        assert!(Fixups::parse::<&str>(&[]).unwrap().is_empty());
        let masked = Fixups::parse(&["--mask-proc"]).unwrap();
        assert_eq!(masked.proc_mask.unwrap().gpus, []);
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = |a: &[&str]| Fixups::parse(a).unwrap_err().to_string();
        assert!(e(&["--link", "a/b::/x"]).contains("--link \"a/b::/x\""));
        assert!(e(&["--link", "libx::rel"]).contains("expected <target>::<link>"));
        assert_eq!(
            e(&["--ldconfig-dir=/a/../b"]),
            "--ldconfig-dir \"/a/../b\": expected an absolute, normalised container path"
        );
        assert!(e(&["--proc-gpu", "zz"]).contains("PCI bus id"));
        assert_eq!(
            e(&["--ld-cache", "x86_64:elf16:/usr/lib64/libcuda.so.1"]),
            "--ld-cache \"x86_64:elf16:/usr/lib64/libcuda.so.1\": expected <machine>:<class>:<path>, such as x86_64:elf64:/usr/lib64/libcuda.so.1"
        );
        assert!(e(&["--ld-cache", "x86_64:elf64:/"]).starts_with("--ld-cache"));
        assert!(e(&["--ld-cache", "x86_64:elf64"]).starts_with("--ld-cache"));
        assert_eq!(e(&["--ldconfig-dir"]), "--ldconfig-dir needs a value");
        assert!(e(&["--bogus"]).starts_with("unknown argument \"--bogus\""));
        for bad in [
            "file,ro:/a",
            "file,ro:/a::b",
            "socket:/a::/b",
            "file,rw:/a::/b",
            "file:a::/b",
            "file:/a/../b::/b",
            "/a::/b",
        ] {
            assert!(
                e(&["--mount", bad]).starts_with(&format!("--mount {bad:?}: expected <kind>")),
                "{bad}"
            );
        }
        assert_eq!(
            e(&["--mount", "dir:/a::/b"]),
            "--mount needs --enter: the mount sources are host paths, reachable only from the runtime's namespaces (a createRuntime entry)"
        );
        assert!(Fixups::parse(&["--enter", "--mount", "dir:/a::/b"])
            .unwrap()
            .mounts[0]
            .flags
            .options()
            .is_empty());
        assert_eq!(
            e(&["--cuda-compat-host-driver", "x"]),
            "--cuda-compat-host-driver \"x\": expected a driver version such as 535.104.05"
        );
    }
}
