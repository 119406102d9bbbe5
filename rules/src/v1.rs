//! nvidia-docker 1.0's driver volume (docs/v1.md §3).
//!
//! One volume, `nvidia_driver`, mounted read-only at `/usr/local/nvidia`,
//! named `nvidia_driver_<driver version>` in Docker, laid out as
//! `{bin,lib,lib64}`: binaries in `bin`, 64-bit libraries in `lib64`, 32-bit
//! in `lib`. Each library with a `DT_SONAME` gets a relative link
//! `soname -> file`; a `libcuda*` soname also gets `libcuda.so -> file`
//! (the soname with its trailing digits and dots stripped), and a
//! `libGLX_nvidia*` soname `libGLX_indirect.so.0 -> file`.
//!
//! [`v1_layout`] is that layout as data: the plugin populates its volume
//! directory from it and the hook bind-mounts it for v1-labelled images.

use serde::{Deserialize, Serialize};

use crate::files::{binary_spec, library_spec, ElfClass, FileKind};
use crate::inventory::Inventory;
use crate::path::{FileName, HostPath};
use crate::version::Version;

/// Where v1 mounted the volume.
pub const V1_MOUNTPOINT: &str = "/usr/local/nvidia";

/// A volume v1 knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum V1Volume {
    /// `nvidia_driver`.
    NvidiaDriver,
}

impl V1Volume {
    /// Every known volume.
    pub const ALL: [V1Volume; 1] = [V1Volume::NvidiaDriver];

    /// The name used in labels and queries.
    pub fn name(self) -> &'static str {
        match self {
            V1Volume::NvidiaDriver => "nvidia_driver",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<V1Volume> {
        V1Volume::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The Docker volume name for a driver: `nvidia_driver_375.66`.
    pub fn docker_name(self, driver: &Version) -> String {
        format!("{}_{}", self.name(), driver)
    }

    /// v1's `--volume` value: `nvidia_driver_375.66:/usr/local/nvidia:ro`.
    pub fn docker_volume_option(self, driver: &Version) -> String {
        format!("{}:{V1_MOUNTPOINT}:ro", self.docker_name(driver))
    }
}

/// Splits a Docker volume name as the plugin's `^([a-zA-Z0-9_.-]+)_([0-9.]+)$`
/// does: `nvidia_driver_375.66` is (`nvidia_driver`, `375.66`), except that
/// the version is digits with single dots between digits (v1's `[0-9.]+`
/// let `..` through, a path out of the volume's directory).
pub fn parse_docker_volume_name(name: &str) -> Option<(&str, &str)> {
    let (volume, version) = name.rsplit_once('_')?;
    let volume_ok = !volume.is_empty()
        && volume
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let version_ok = version
        .split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    (volume_ok && version_ok).then_some((volume, version))
}

/// A sub-directory of the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum V1Dir {
    /// `bin`.
    Bin,
    /// `lib` (32-bit libraries).
    Lib,
    /// `lib64`.
    Lib64,
}

impl V1Dir {
    /// Every directory (v1 created all three, even empty).
    pub const ALL: [V1Dir; 3] = [V1Dir::Bin, V1Dir::Lib, V1Dir::Lib64];

    /// The directory name.
    pub fn name(self) -> &'static str {
        match self {
            V1Dir::Bin => "bin",
            V1Dir::Lib => "lib",
            V1Dir::Lib64 => "lib64",
        }
    }
}

/// A file of the volume.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct V1File {
    /// Its directory.
    pub dir: V1Dir,
    /// Its name (the resolved file's name).
    pub name: FileName,
    /// The host file (driver root applied).
    pub source: HostPath,
    /// Its soname (a library that has one), the name the linker cache
    /// records it under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soname: Option<FileName>,
}

/// A relative symlink of the volume, `dir/link -> target`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct V1Link {
    /// Its directory.
    pub dir: V1Dir,
    /// The link's name.
    pub link: FileName,
    /// What it points to, in the same directory.
    pub target: FileName,
}

/// The volume's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Layout {
    /// Files, sorted by directory and name.
    pub files: Vec<V1File>,
    /// Links, sorted by directory and name.
    pub links: Vec<V1Link>,
}

/// `libcuda.so.1` -> `libcuda.so`.
fn strip_version_suffix(soname: &str) -> &str {
    soname.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
}

/// The v1 volume's content for this host.
pub fn v1_layout(inv: &Inventory) -> V1Layout {
    let mut layout = V1Layout::default();
    for f in &inv.files {
        let Some(name) = f.path.file_name() else {
            continue;
        };
        let dir = match f.kind {
            FileKind::Binary if binary_spec(name.as_str()).is_some_and(|b| b.v1) => V1Dir::Bin,
            FileKind::Library if library_spec(name.as_str()).is_some_and(|l| l.v1) => match f.class
            {
                ElfClass::Elf64 => V1Dir::Lib64,
                ElfClass::Elf32 => V1Dir::Lib,
            },
            _ => continue,
        };
        if let Some(soname) = f.soname.as_deref() {
            let mut link = |l: &str| {
                if let Ok(l) = FileName::new(l) {
                    if l != name {
                        layout.links.push(V1Link {
                            dir,
                            link: l,
                            target: name.clone(),
                        });
                    }
                }
            };
            link(soname);
            if soname.starts_with("libcuda") {
                link(strip_version_suffix(soname));
            }
            if soname.starts_with("libGLX_nvidia") {
                link("libGLX_indirect.so.0");
            }
        }
        let source = inv.driver_root.under(&f.path);
        let soname = f.soname.as_deref().and_then(|s| FileName::new(s).ok());
        layout.files.push(V1File {
            dir,
            name,
            source,
            soname,
        });
    }
    layout.files.sort();
    layout
        .files
        .dedup_by(|a, b| a.dir == b.dir && a.name == b.name);
    layout.links.sort();
    layout
        .links
        .dedup_by(|a, b| a.dir == b.dir && a.link == b.link);
    let files = &layout.files;
    layout
        .links
        .retain(|l| !files.iter().any(|f| f.dir == l.dir && f.name == l.link));
    layout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::DriverFile;

    fn file(path: &str, kind: FileKind, class: ElfClass, soname: Option<&str>) -> DriverFile {
        DriverFile {
            path: HostPath::new(path).unwrap(),
            kind,
            class,
            soname: soname.map(str::to_owned),
        }
    }

    #[test]
    fn names() {
        let d = Version::parse("375.66").unwrap();
        assert_eq!(
            V1Volume::NvidiaDriver.docker_name(&d),
            "nvidia_driver_375.66"
        );
        assert_eq!(
            V1Volume::NvidiaDriver.docker_volume_option(&d),
            "nvidia_driver_375.66:/usr/local/nvidia:ro"
        );
        assert_eq!(
            V1Volume::from_name("nvidia_driver"),
            Some(V1Volume::NvidiaDriver)
        );
        assert_eq!(V1Volume::from_name("nvidia"), None);
        assert_eq!(
            parse_docker_volume_name("nvidia_driver_375.66"),
            Some(("nvidia_driver", "375.66"))
        );
        assert_eq!(parse_docker_volume_name("nvidia_driver_"), None);
        assert_eq!(parse_docker_volume_name("nvidia_driver_1a"), None);
        for bad in ["..", ".", "1..2", ".1", "1.", "..."] {
            assert_eq!(
                parse_docker_volume_name(&format!("nvidia_driver_{bad}")),
                None
            );
        }
        assert_eq!(
            parse_docker_volume_name("nvidia_driver_1.2.3"),
            Some(("nvidia_driver", "1.2.3"))
        );
        assert_eq!(parse_docker_volume_name("_375"), None);
        assert_eq!(parse_docker_volume_name("a b_1"), None);
    }

    #[test]
    fn layout_like_v1() {
        let mut inv = Inventory::new(Version::parse("375.66").unwrap());
        inv.driver_root = HostPath::new("/run/nvidia/driver").unwrap();
        inv.files = vec![
            file(
                "/usr/lib/x86_64-linux-gnu/libcuda.so.375.66",
                FileKind::Library,
                ElfClass::Elf64,
                Some("libcuda.so.1"),
            ),
            file(
                "/usr/lib/i386-linux-gnu/libcuda.so.375.66",
                FileKind::Library,
                ElfClass::Elf32,
                Some("libcuda.so.1"),
            ),
            file(
                "/usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.375.66",
                FileKind::Library,
                ElfClass::Elf64,
                Some("libGLX_nvidia.so.0"),
            ),
            file(
                "/usr/lib/x86_64-linux-gnu/libnvidia-cfg.so.375.66",
                FileKind::Library,
                ElfClass::Elf64,
                Some("libnvidia-cfg.so.1"),
            ),
            file(
                "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.375.66",
                FileKind::Library,
                ElfClass::Elf64,
                None,
            ),
            file(
                "/usr/bin/nvidia-smi",
                FileKind::Binary,
                ElfClass::Elf64,
                None,
            ),
            file(
                "/usr/bin/nv-fabricmanager",
                FileKind::Binary,
                ElfClass::Elf64,
                None,
            ),
            file(
                "/lib/firmware/nvidia/375.66/gsp.bin",
                FileKind::Firmware,
                ElfClass::Elf64,
                None,
            ),
        ];
        let l = v1_layout(&inv);
        let files: Vec<String> = l
            .files
            .iter()
            .map(|f| format!("{}/{} <- {}", f.dir.name(), f.name, f.source))
            .collect();
        assert_eq!(
            files,
            [
                "bin/nvidia-smi <- /run/nvidia/driver/usr/bin/nvidia-smi",
                "lib/libcuda.so.375.66 <- /run/nvidia/driver/usr/lib/i386-linux-gnu/libcuda.so.375.66",
                "lib64/libGLX_nvidia.so.375.66 <- /run/nvidia/driver/usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.375.66",
                "lib64/libcuda.so.375.66 <- /run/nvidia/driver/usr/lib/x86_64-linux-gnu/libcuda.so.375.66",
                "lib64/libnvidia-ml.so.375.66 <- /run/nvidia/driver/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.375.66",
            ]
        );
        let links: Vec<String> = l
            .links
            .iter()
            .map(|k| format!("{}/{} -> {}", k.dir.name(), k.link, k.target))
            .collect();
        assert_eq!(
            links,
            [
                "lib/libcuda.so -> libcuda.so.375.66",
                "lib/libcuda.so.1 -> libcuda.so.375.66",
                "lib64/libGLX_indirect.so.0 -> libGLX_nvidia.so.375.66",
                "lib64/libGLX_nvidia.so.0 -> libGLX_nvidia.so.375.66",
                "lib64/libcuda.so -> libcuda.so.375.66",
                "lib64/libcuda.so.1 -> libcuda.so.375.66",
            ]
        );
    }
}
