//! Which driver files belong to which capability, and where they go.
//!
//! The lists follow libnvidia-container's `nvc_info.c` (docs/toolkit.md
//! §2 "Files per capability") and, for the v1 driver volume, nvidia-docker
//! 1.0's `volumes.go` (docs/v1.md §3). The hook's discovery uses them
//! to know what to look for; the planner uses them to pick what to mount, so
//! the two cannot disagree.

use serde::{Deserialize, Serialize};

use crate::capability::{Capabilities, Capability};

/// One driver library, named by its stem (`libcuda` for `libcuda.so.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibrarySpec {
    /// The name before `.so`.
    pub stem: &'static str,
    /// The capability that brings it.
    pub capability: Capability,
    /// Mounted by the modern (toolkit) layout.
    pub toolkit: bool,
    /// Part of the v1 `nvidia_driver` volume.
    pub v1: bool,
}

const fn lib(stem: &'static str, capability: Capability, toolkit: bool, v1: bool) -> LibrarySpec {
    LibrarySpec {
        stem,
        capability,
        toolkit,
        v1,
    }
}

use Capability::{Compute, Graphics, Ngx, Utility, Video};

/// Every driver library this project knows.
///
/// GLVND front-ends (`libGL`, `libEGL`, `libGLdispatch`, ...) belong to the
/// distribution, so the modern layout leaves the image's copies alone; v1's
/// volume carried them (`toolkit: false, v1: true`).
pub const LIBRARIES: &[LibrarySpec] = &[
    // utility
    lib("libnvidia-ml", Utility, true, true),
    lib("libnvidia-cfg", Utility, true, false),
    lib("libnvidia-nscq", Utility, true, false),
    // compute
    lib("libcuda", Compute, true, true),
    lib("libcudadebugger", Compute, true, false),
    lib("libnvidia-opencl", Compute, true, true),
    lib("libnvidia-gpucomp", Compute, true, false),
    lib("libnvidia-ptxjitcompiler", Compute, true, true),
    lib("libnvidia-fatbinaryloader", Compute, true, true),
    lib("libnvidia-allocator", Compute, true, false),
    lib("libnvidia-compiler", Compute, true, true),
    lib("libnvidia-pkcs11", Compute, true, false),
    lib("libnvidia-pkcs11-openssl3", Compute, true, false),
    lib("libnvidia-nvvm", Compute, true, false),
    lib("libnvidia-tileiras", Compute, true, false),
    // video
    lib("libvdpau_nvidia", Video, true, true),
    lib("libnvidia-encode", Video, true, true),
    lib("libnvidia-opticalflow", Video, true, false),
    lib("libnvcuvid", Video, true, true),
    // graphics
    lib("libnvidia-eglcore", Graphics, true, true),
    lib("libnvidia-glcore", Graphics, true, true),
    lib("libnvidia-tls", Graphics, true, true),
    lib("libnvidia-glsi", Graphics, true, true),
    lib("libnvidia-fbc", Graphics, true, true),
    lib("libnvidia-ifr", Graphics, true, true),
    lib("libnvidia-rtcore", Graphics, true, false),
    lib("libnvoptix", Graphics, true, false),
    lib("libGLX_nvidia", Graphics, true, true),
    lib("libEGL_nvidia", Graphics, true, true),
    lib("libGLESv2_nvidia", Graphics, true, true),
    lib("libGLESv1_CM_nvidia", Graphics, true, true),
    lib("libnvidia-glvkspirv", Graphics, true, false),
    lib("libnvidia-cbl", Graphics, true, false),
    // The real driver (535, Tesla 470) ships these; libnvidia-container's
    // list predates them, the toolkit's CDI mounts every `*.so.<RM>`.
    lib("libnvidia-vulkan-producer", Graphics, true, false),
    lib("libnvidia-api", Graphics, true, false),
    // graphics, v1 volume only
    lib("libGL", Graphics, false, true),
    lib("libGLX", Graphics, false, true),
    lib("libOpenGL", Graphics, false, true),
    lib("libGLESv1_CM", Graphics, false, true),
    lib("libGLESv2", Graphics, false, true),
    lib("libEGL", Graphics, false, true),
    lib("libGLdispatch", Graphics, false, true),
    lib("libnvidia-egl-wayland", Graphics, true, true),
    // graphics: EGL external platforms (own version numbers, see
    // `driver_versioned`)
    lib("libnvidia-egl-gbm", Graphics, true, false),
    lib("libnvidia-egl-xcb", Graphics, true, false),
    lib("libnvidia-egl-xlib", Graphics, true, false),
    // ngx
    lib("libnvidia-ngx", Ngx, true, false),
];

/// Driver libraries whose real file is not named `<stem>.so.<driver version>`
/// (checked against Debian's 535.309.01 and Tesla 470.256.02 packages):
/// NVAPI's `libnvidia-api.so.1` (535) and Tesla 470's
/// `libnvidia-nvvm.so.4.0.0` (535 names it `libnvidia-nvvm.so.535.309.01`).
/// Discovery keeps them although they do not carry the driver version.
pub const UNVERSIONED_FILES: &[&str] = &["libnvidia-api.so.1", "libnvidia-nvvm.so.4.0.0"];

/// Whether `file_name` is a driver library file of driver `version`: named
/// `*.so.<version>`, or one of [`UNVERSIONED_FILES`].
pub fn is_driver_file(file_name: &str, version: &str) -> bool {
    file_name
        .strip_suffix(version)
        .is_some_and(|rest| rest.ends_with(".so."))
        || UNVERSIONED_FILES.contains(&file_name)
}

/// One driver binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinarySpec {
    /// The file name.
    pub name: &'static str,
    /// The capability that brings it.
    pub capability: Capability,
    /// Part of the v1 `nvidia_driver` volume.
    pub v1: bool,
}

/// Every driver binary this project knows.
pub const BINARIES: &[BinarySpec] = &[
    BinarySpec {
        name: "nvidia-smi",
        capability: Utility,
        v1: true,
    },
    BinarySpec {
        name: "nvidia-debugdump",
        capability: Utility,
        v1: true,
    },
    BinarySpec {
        name: "nvidia-persistenced",
        capability: Utility,
        v1: true,
    },
    BinarySpec {
        name: "nv-fabricmanager",
        capability: Utility,
        v1: false,
    },
    BinarySpec {
        name: "nvidia-ngx-updater",
        capability: Ngx,
        v1: false,
    },
    BinarySpec {
        name: "nvidia-cuda-mps-control",
        capability: Compute,
        v1: true,
    },
    BinarySpec {
        name: "nvidia-cuda-mps-server",
        capability: Compute,
        v1: true,
    },
];

/// The library spec a file name belongs to: the name must be `<stem>.so`
/// or `<stem>.so.<anything>` (so `libnvidia-pkcs11.so.1` is not
/// `libnvidia-pkcs11-openssl3`, and `libEGL_nvidia.so.0` is not `libEGL`).
pub fn library_spec(file_name: &str) -> Option<&'static LibrarySpec> {
    // A byte search: `str::find` with a string pattern sets up a
    // two-way searcher per call, for names of a few dozen bytes.
    let so = file_name.as_bytes().windows(3).position(|w| w == b".so")?;
    let (stem, rest) = file_name.split_at(so);
    let rest = &rest[3..];
    if !(rest.is_empty() || rest.starts_with('.')) {
        return None;
    }
    LIBRARIES.iter().find(|l| l.stem == stem)
}

/// The EGL external platform libraries: the toolkit mounts them, but they
/// carry their own version (`libnvidia-egl-wayland.so.1.1.13`), not the
/// driver's.
pub const EGL_PLATFORM_LIBRARIES: &[&str] = &[
    "libnvidia-egl-wayland",
    "libnvidia-egl-gbm",
    "libnvidia-egl-xcb",
    "libnvidia-egl-xlib",
];

/// Whether the toolkit wants a library's file named `<stem>.so.<driver
/// version>` (all but the EGL platform libraries).
pub fn driver_versioned(stem: &str) -> bool {
    !EGL_PLATFORM_LIBRARIES.contains(&stem)
}

/// The binary spec of a file name.
pub fn binary_spec(file_name: &str) -> Option<&'static BinarySpec> {
    BINARIES.iter().find(|b| b.name == file_name)
}

/// The capabilities whose libraries a request needs: video brings the compute
/// libraries and display the graphics libraries (libnvidia-container's
/// `OPT_COMPUTE_LIBS`/`OPT_GRAPHICS_LIBS`).
pub fn library_capabilities(requested: Capabilities) -> Capabilities {
    let mut caps = requested;
    if requested.contains(Capability::Video) {
        caps.insert(Capability::Compute);
    }
    if requested.contains(Capability::Display) {
        caps.insert(Capability::Graphics);
    }
    caps
}

/// ELF class of a library.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum ElfClass {
    /// 64-bit.
    #[default]
    Elf64,
    /// 32-bit (mounted with `compat32`).
    Elf32,
}

/// What a driver file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A shared library.
    Library,
    /// An executable.
    Binary,
    /// GSP firmware (`/lib/firmware/nvidia/<RM>/gsp*.bin`).
    Firmware,
    /// A daemon's socket: `nvidia-persistenced` or `nvidia-fabricmanager` (utility).
    IpcSocket,
    /// The MPS pipe directory (compute).
    MpsPipeDir,
}

/// The root file system's library layout. The planner takes it as input; the
/// hook decides it by looking at the rootfs (`/etc/debian_version`, and
/// whether `/usr/lib` is a separate directory from `/usr/lib64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RootfsFlavor {
    /// `/etc/debian_version` exists: `/usr/lib/<triplet>` (32-bit: `/usr/lib/i386-linux-gnu`).
    DebianLike,
    /// Anything else where `/usr/lib` is its own directory (Fedora, RHEL,
    /// SUSE): `/usr/lib64`, 32-bit `/usr/lib`.
    #[default]
    Lib64,
    /// Anything else where `/usr/lib` is `/usr/lib64` (Arch): `/usr/lib64`,
    /// 32-bit `/usr/lib32`.
    Lib64Lib32,
}

/// The host's machine architecture (selects the Debian triplet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Machine {
    /// x86-64.
    #[default]
    X86_64,
    /// 64-bit ARM.
    Aarch64,
    /// 64-bit POWER, little endian.
    Ppc64le,
}

/// The library directory for `class` in a rootfs of `flavor`, or `None`
/// where there is no 32-bit flavour of the machine.
pub fn library_dir(
    flavor: RootfsFlavor,
    machine: Machine,
    class: ElfClass,
) -> Option<&'static str> {
    match (class, flavor) {
        (ElfClass::Elf64, RootfsFlavor::DebianLike) => Some(match machine {
            Machine::X86_64 => "/usr/lib/x86_64-linux-gnu",
            Machine::Aarch64 => "/usr/lib/aarch64-linux-gnu",
            Machine::Ppc64le => "/usr/lib/powerpc64le-linux-gnu",
        }),
        (ElfClass::Elf64, _) => Some("/usr/lib64"),
        (ElfClass::Elf32, _) if machine != Machine::X86_64 => None,
        (ElfClass::Elf32, RootfsFlavor::DebianLike) => Some("/usr/lib/i386-linux-gnu"),
        (ElfClass::Elf32, RootfsFlavor::Lib64) => Some("/usr/lib"),
        (ElfClass::Elf32, RootfsFlavor::Lib64Lib32) => Some("/usr/lib32"),
    }
}

/// Where binaries go.
pub const BINARY_DIR: &str = "/usr/bin";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names_match_by_stem() {
        assert_eq!(
            library_spec("libcuda.so.535.104.05").unwrap().stem,
            "libcuda"
        );
        assert_eq!(library_spec("libcuda.so").unwrap().stem, "libcuda");
        assert_eq!(library_spec("libcuda.so.1").unwrap().stem, "libcuda");
        assert_eq!(
            library_spec("libcudadebugger.so.535.104.05").unwrap().stem,
            "libcudadebugger"
        );
        assert_eq!(
            library_spec("libnvidia-pkcs11.so.535").unwrap().stem,
            "libnvidia-pkcs11"
        );
        assert_eq!(
            library_spec("libnvidia-pkcs11-openssl3.so.535")
                .unwrap()
                .stem,
            "libnvidia-pkcs11-openssl3"
        );
        assert_eq!(
            library_spec("libEGL_nvidia.so.0").unwrap().stem,
            "libEGL_nvidia"
        );
        assert_eq!(library_spec("libEGL.so.1.1.0").unwrap().stem, "libEGL");
        assert_eq!(
            library_spec("libGLX_nvidia.so.535.104.05")
                .unwrap()
                .capability,
            Graphics
        );
        assert_eq!(library_spec("libcudart.so.12"), None);
        assert_eq!(library_spec("libcuda.sox"), None);
        assert_eq!(library_spec("libcuda"), None);
        assert_eq!(library_spec(""), None);
        for l in LIBRARIES {
            assert_eq!(library_spec(&format!("{}.so.1", l.stem)), Some(l));
            assert!(l.toolkit || l.v1, "{} is used by nothing", l.stem);
        }
    }

    #[test]
    fn driver_file_names() {
        assert!(is_driver_file("libcuda.so.535.309.01", "535.309.01"));
        assert!(!is_driver_file("libcuda.so.535.309.01", "470.256.02"));
        assert!(!is_driver_file("libcuda.so.1", "535.309.01"));
        assert!(!is_driver_file("libcuda.so.1535.309.01", "535.309.01"));
        assert!(is_driver_file("libnvidia-api.so.1", "535.309.01"));
        assert!(is_driver_file("libnvidia-nvvm.so.4.0.0", "470.256.02"));
        for f in UNVERSIONED_FILES {
            assert!(library_spec(f).is_some(), "{f} has no catalogue entry");
        }
    }

    #[test]
    fn binaries() {
        assert_eq!(binary_spec("nvidia-smi").unwrap().capability, Utility);
        assert_eq!(
            binary_spec("nvidia-cuda-mps-server").unwrap().capability,
            Compute
        );
        assert_eq!(binary_spec("nvidia-settings"), None);
    }

    #[test]
    fn implied_library_capabilities() {
        let video: Capabilities = [Video].into_iter().collect();
        assert_eq!(library_capabilities(video).to_string(), "compute,video");
        let display: Capabilities = [Capability::Display].into_iter().collect();
        assert_eq!(
            library_capabilities(display).to_string(),
            "graphics,display"
        );
    }

    #[test]
    fn destinations() {
        use ElfClass::*;
        use RootfsFlavor::*;
        let m = Machine::X86_64;
        assert_eq!(
            library_dir(DebianLike, m, Elf64),
            Some("/usr/lib/x86_64-linux-gnu")
        );
        assert_eq!(
            library_dir(DebianLike, m, Elf32),
            Some("/usr/lib/i386-linux-gnu")
        );
        assert_eq!(library_dir(Lib64, m, Elf64), Some("/usr/lib64"));
        assert_eq!(library_dir(Lib64, m, Elf32), Some("/usr/lib"));
        assert_eq!(library_dir(Lib64Lib32, m, Elf32), Some("/usr/lib32"));
        assert_eq!(
            library_dir(DebianLike, Machine::Aarch64, Elf64),
            Some("/usr/lib/aarch64-linux-gnu")
        );
        assert_eq!(
            library_dir(DebianLike, Machine::Ppc64le, Elf64),
            Some("/usr/lib/powerpc64le-linux-gnu")
        );
        assert_eq!(library_dir(DebianLike, Machine::Aarch64, Elf32), None);
    }
}
