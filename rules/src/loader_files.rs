//! Driver files that are not libraries in the linker's path: the JSON files
//! the GLVND, EGL, Vulkan and OpenCL loaders read, the X server's modules,
//! the GBM backend and VDPAU's module directory (`docs/toolkit.md` §3).
//!
//! Each entry says which capability brings it, where the host keeps it
//! (searched in order, relative to the driver root; `{lib}` stands for each
//! 64-bit directory holding the driver's libraries) and where the loader in
//! the container looks for it. Discovery records what it finds as a
//! [`LoaderFile`] (the name it was looked up by, and the file it resolves
//! to: Debian's are alternatives symlinks, `nvidia-drm_gbm.so` is a link
//! to `libnvidia-allocator`); the planner looks the entry up again by that
//! name, so the two cannot disagree.
//!
//! JSON and configuration files go to one directory per loader, the one
//! GPU images use (`nvidia/vulkan` ships `/etc/vulkan/icd.d`, `nvidia/opengl`
//! `/usr/share/glvnd/egl_vendor.d`), so the host's copy replaces the
//! image's instead of being listed twice; the loaders read both `/etc` and
//! `/usr/share`.

use serde::{Deserialize, Serialize};

use crate::capability::Capability;
use crate::files::{library_dir, ElfClass, Machine, RootfsFlavor};
use crate::path::HostPath;

/// A loader file the host has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderFile {
    /// The name it was found by (`nvidia_icd.json`,
    /// `libglxserver_nvidia.so.535.104.05`): its name in the container.
    pub name: String,
    /// The file it resolves to, relative to the driver root.
    pub path: HostPath,
}

/// Where a loader file goes in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoaderDest {
    /// This directory.
    Dir(&'static str),
    /// `<the rootfs's 64-bit library directory>/<subdir>/<name>`.
    LibSubdir(&'static str),
    /// `<the rootfs's X server module directory>/<subdir>/<name>`.
    XorgModules(&'static str),
}

/// One loader file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderFileSpec {
    /// Its file name; with `versioned`, the part before the driver version
    /// (`libglxserver_nvidia.so` for `libglxserver_nvidia.so.<RM>`).
    pub name: &'static str,
    /// Named `<name>.<driver version>`.
    pub versioned: bool,
    /// The capability that brings it (after
    /// [`library_capabilities`](crate::files::library_capabilities): display
    /// brings graphics', video compute's).
    pub capability: Capability,
    /// Host directories searched in order (`{lib}`: each library directory).
    pub dirs: &'static [&'static str],
    /// Where it goes in the container.
    pub dest: LoaderDest,
    /// A link in the destination directory the loader opens instead
    /// (`libglxserver_nvidia.so`, `libvdpau_nvidia.so.1`).
    pub link: Option<&'static str>,
}

/// A file found in `dirs` and mounted in `dest`.
const fn same(
    name: &'static str,
    capability: Capability,
    dirs: &'static [&'static str],
    dest: &'static str,
) -> LoaderFileSpec {
    LoaderFileSpec {
        name,
        versioned: false,
        capability,
        dirs,
        dest: LoaderDest::Dir(dest),
        link: None,
    }
}

const SHARE_EGL_VENDOR: &str = "/usr/share/glvnd/egl_vendor.d";
const SHARE_EGL_PLATFORM: &str = "/usr/share/egl/egl_external_platform.d";
const ETC_VULKAN_ICD: &str = "/etc/vulkan/icd.d";
const ETC_VULKAN_LAYER: &str = "/etc/vulkan/implicit_layer.d";
const SHARE_XORG_CONF: &str = "/usr/share/X11/xorg.conf.d";
const ETC_OPENCL: &str = "/etc/OpenCL/vendors";

use Capability::{Compute, Display, Graphics, Video};

const EGL_VENDOR: &[&str] = &["/etc/glvnd/egl_vendor.d", "/usr/share/glvnd/egl_vendor.d"];
const EGL_PLATFORM: &[&str] = &[
    "/etc/egl/egl_external_platform.d",
    "/usr/share/egl/egl_external_platform.d",
];
const VULKAN_ICD: &[&str] = &["/etc/vulkan/icd.d", "/usr/share/vulkan/icd.d"];
const VULKAN_LAYER: &[&str] = &[
    "/etc/vulkan/implicit_layer.d",
    "/usr/share/vulkan/implicit_layer.d",
];
const XORG_CONF: &[&str] = &["/etc/X11/xorg.conf.d", "/usr/share/X11/xorg.conf.d"];
const XORG_DRIVERS: &[&str] = &[
    "/usr/lib/xorg/modules/drivers",
    "/usr/lib64/xorg/modules/drivers",
    "{lib}/xorg/modules/drivers",
    "{lib}/nvidia/xorg",
    // Debian's own packages: an alternatives link in the ModulePath their
    // xorg.conf.d snippet adds.
    "/usr/lib/nvidia",
];
const XORG_EXTENSIONS: &[&str] = &[
    "/usr/lib/xorg/modules/extensions",
    "/usr/lib64/xorg/modules/extensions",
    "{lib}/xorg/modules/extensions",
    "{lib}/nvidia/xorg",
    // Debian's own packages: an alternatives link in the ModulePath their
    // xorg.conf.d snippet adds.
    "/usr/lib/nvidia",
];

/// Every loader file this project knows.
pub const LOADER_FILES: &[LoaderFileSpec] = &[
    // graphics: GLVND's EGL vendor file, EGL external platforms, Vulkan.
    same("10_nvidia.json", Graphics, EGL_VENDOR, SHARE_EGL_VENDOR),
    same(
        "10_nvidia_wayland.json",
        Graphics,
        EGL_PLATFORM,
        SHARE_EGL_PLATFORM,
    ),
    same(
        "15_nvidia_gbm.json",
        Graphics,
        EGL_PLATFORM,
        SHARE_EGL_PLATFORM,
    ),
    same(
        "20_nvidia_xcb.json",
        Graphics,
        EGL_PLATFORM,
        SHARE_EGL_PLATFORM,
    ),
    same(
        "20_nvidia_xlib.json",
        Graphics,
        EGL_PLATFORM,
        SHARE_EGL_PLATFORM,
    ),
    same("nvidia_icd.json", Graphics, VULKAN_ICD, ETC_VULKAN_ICD),
    same(
        "nvidia_layers.json",
        Graphics,
        VULKAN_LAYER,
        ETC_VULKAN_LAYER,
    ),
    LoaderFileSpec {
        dest: LoaderDest::LibSubdir("gbm"),
        ..same("nvidia-drm_gbm.so", Graphics, &["{lib}/gbm"], "")
    },
    // compute: the OpenCL ICD file.
    same("nvidia.icd", Compute, &[ETC_OPENCL], ETC_OPENCL),
    // video: VDPAU opens `<libdir>/vdpau/libvdpau_<driver>.so.1`.
    LoaderFileSpec {
        versioned: true,
        dest: LoaderDest::LibSubdir("vdpau"),
        link: Some("libvdpau_nvidia.so.1"),
        ..same("libvdpau_nvidia.so", Video, &["{lib}/vdpau", "{lib}"], "")
    },
    // display: the X server's driver and GLX modules, and its configuration.
    LoaderFileSpec {
        dest: LoaderDest::XorgModules("drivers"),
        ..same("nvidia_drv.so", Display, XORG_DRIVERS, "")
    },
    LoaderFileSpec {
        versioned: true,
        dest: LoaderDest::XorgModules("extensions"),
        link: Some("libglxserver_nvidia.so"),
        ..same("libglxserver_nvidia.so", Display, XORG_EXTENSIONS, "")
    },
    same("10-nvidia.conf", Display, XORG_CONF, SHARE_XORG_CONF),
    same(
        "nvidia-drm-outputclass.conf",
        Display,
        XORG_CONF,
        SHARE_XORG_CONF,
    ),
];

/// The loader file a file name belongs to (`versioned` names take any
/// version: discovery already required the driver's).
pub fn loader_spec(file_name: &str) -> Option<&'static LoaderFileSpec> {
    LOADER_FILES.iter().find(|s| {
        if s.versioned {
            file_name
                .strip_prefix(s.name)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|v| !v.is_empty())
        } else {
            file_name == s.name
        }
    })
}

/// The X server's module directory in a rootfs of `flavor` (Debian's
/// `xserver-xorg-core` and Fedora's `xorg-x11-server-Xorg`).
pub fn xorg_module_dir(flavor: RootfsFlavor) -> &'static str {
    match flavor {
        RootfsFlavor::DebianLike => "/usr/lib/xorg/modules",
        RootfsFlavor::Lib64 | RootfsFlavor::Lib64Lib32 => "/usr/lib64/xorg/modules",
    }
}

/// The container directory of a loader file with destination `dest`, or
/// `None` where the machine has no such directory.
pub fn loader_dir(dest: LoaderDest, flavor: RootfsFlavor, machine: Machine) -> Option<String> {
    match dest {
        LoaderDest::Dir(dir) => Some(dir.to_owned()),
        LoaderDest::LibSubdir(sub) => {
            library_dir(flavor, machine, ElfClass::Elf64).map(|d| format!("{d}/{sub}"))
        }
        LoaderDest::XorgModules(sub) => Some(format!("{}/{sub}", xorg_module_dir(flavor))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_by_version() {
        assert_eq!(loader_spec("nvidia_icd.json").unwrap().capability, Graphics);
        assert_eq!(loader_spec("nvidia.icd").unwrap().capability, Compute);
        assert_eq!(
            loader_spec("libglxserver_nvidia.so.535.104.05")
                .unwrap()
                .capability,
            Display
        );
        assert_eq!(loader_spec("libglxserver_nvidia.so"), None);
        assert_eq!(loader_spec("libglxserver_nvidia.so."), None);
        assert_eq!(loader_spec("nvidia_icd.json.bak"), None);
        assert_eq!(
            loader_spec("libvdpau_nvidia.so.535.104.05").unwrap().link,
            Some("libvdpau_nvidia.so.1")
        );
        for s in LOADER_FILES {
            let name = if s.versioned {
                format!("{}.1.2", s.name)
            } else {
                s.name.to_owned()
            };
            assert_eq!(loader_spec(&name), Some(s));
            assert!(!s.dirs.is_empty());
        }
    }

    #[test]
    fn destinations() {
        use RootfsFlavor::*;
        let m = Machine::X86_64;
        assert_eq!(
            loader_dir(LoaderDest::LibSubdir("gbm"), DebianLike, m).as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/gbm")
        );
        assert_eq!(
            loader_dir(LoaderDest::LibSubdir("vdpau"), Lib64, m).as_deref(),
            Some("/usr/lib64/vdpau")
        );
        assert_eq!(
            loader_dir(LoaderDest::XorgModules("drivers"), DebianLike, m).as_deref(),
            Some("/usr/lib/xorg/modules/drivers")
        );
        assert_eq!(
            loader_dir(LoaderDest::XorgModules("extensions"), Lib64Lib32, m).as_deref(),
            Some("/usr/lib64/xorg/modules/extensions")
        );
        assert_eq!(
            loader_dir(loader_spec("nvidia_icd.json").unwrap().dest, Lib64, m).as_deref(),
            Some("/etc/vulkan/icd.d")
        );
    }
}
