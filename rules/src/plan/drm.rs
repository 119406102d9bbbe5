//! DRM nodes for `graphics` and `display`: each whole selected GPU's
//! `/dev/dri/card<N>` and `renderD<N>` as the inventory found them in sysfs
//! by bus id (never guessed from indexes or minors), and udev's
//! `/dev/dri/by-path/pci-<bus id>-{card,render}` links to them. A GPU
//! without DRM nodes (no `nvidia-drm` module) gets none.

use serde::{Deserialize, Serialize};

use crate::path::{ContainerPath, FileName};

use super::{cpath, fname, Builder, NodeRole, PlannedGpu};

/// The directory of the DRM nodes.
pub const DRI_DIR: &str = "/dev/dri";
/// The directory of udev's links by PCI path.
pub const BY_PATH_DIR: &str = "/dev/dri/by-path";

/// A link to a device node in its parent directory: `link -> ../<node>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DevLink {
    /// The link (`/dev/dri/by-path/pci-0000:07:00.0-card`).
    pub link: ContainerPath,
    /// The node's file name in the link directory's parent (`card1`).
    pub node: FileName,
}

impl DevLink {
    /// The link's target, relative: `../card1`.
    pub fn target(&self) -> String {
        format!("../{}", self.node)
    }
}

impl Builder<'_> {
    /// Adds the DRM nodes of the whole GPUs in `gpus` and returns their
    /// `by-path` links, sorted.
    pub(super) fn drm_nodes(&mut self, gpus: &[PlannedGpu]) -> Vec<DevLink> {
        let mut links = Vec::new();
        let inv = self.inv;
        for g in gpus.iter().filter(|g| g.whole) {
            let mut bus = None;
            for d in inv.drm.iter().filter(|d| d.bus_id == g.bus_id) {
                let (Some(kind), Some(node)) = (d.by_path_kind(), fname(&d.name)) else {
                    continue;
                };
                self.node(
                    &format!("{DRI_DIR}/{node}"),
                    d.major,
                    d.minor,
                    NodeRole::Drm { index: g.index },
                );
                let bus = bus.get_or_insert_with(|| {
                    let [bus16, _] = g.bus_id.proc_names();
                    bus16
                });
                if let Some(name) = fname(&format!("pci-{bus}-{kind}")) {
                    links.push(DevLink {
                        link: cpath(BY_PATH_DIR).join(&name),
                        node,
                    });
                }
            }
        }
        links.sort();
        links.dedup_by(|a, b| a.link == b.link);
        links
    }
}
