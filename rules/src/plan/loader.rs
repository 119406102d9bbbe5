//! Planning the [`LoaderFile`]s of [`crate::loader_files`]: JSON files,
//! X server modules, GBM and VDPAU modules, mounted read-only where the
//! loaders look.

use crate::capability::Capabilities;
use crate::files::RootfsFlavor;
use crate::loader_files::{loader_dir, loader_spec, LoaderFile};

use crate::path::ContainerPath;

use super::{fname, Builder, MountFlags, MountKind};

impl Builder<'_> {
    /// Mounts one loader file when `lib_caps` (the capabilities after
    /// [`crate::files::library_capabilities`]) bring it, with its link.
    pub(super) fn loader_file(
        &mut self,
        f: &LoaderFile,
        rootfs: RootfsFlavor,
        lib_caps: Capabilities,
    ) {
        let Some(spec) = loader_spec(&f.name) else {
            return;
        };
        if !lib_caps.contains(spec.capability) {
            return;
        }
        let (Some(file), Some(dir)) = (
            fname(&f.name),
            loader_dir(spec.dest, rootfs, self.inv.machine),
        ) else {
            return;
        };
        // As `cpath`, without copying the string.
        let dir = ContainerPath::new(dir).unwrap_or_else(|_| ContainerPath::root());
        if let Some(link) = spec.link {
            self.link(&dir, link, &file);
        }
        self.mount(
            self.source(&f.path),
            dir.join(&file),
            MountKind::File,
            MountFlags::DRIVER,
        );
    }
}
