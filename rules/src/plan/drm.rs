//! DRM nodes for `graphics` and `display`: each whole selected GPU's
//! `/dev/dri/card<N>` and `renderD<N>` as the inventory found them in sysfs
//! by bus id (never guessed from indexes or minors), and udev's
//! `/dev/dri/by-path/pci-<bus id>-{card,render}` links to them. A GPU
//! without DRM nodes (no `nvidia-drm` module) gets none.

use serde::{Deserialize, Serialize};

use crate::inventory::DrmNode;
use crate::path::{ContainerPath, FileName};

use super::text::push_hex;
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
        // The nodes by bus id, in inventory order within a GPU: one sort
        // instead of a scan of every node for each GPU.
        let mut drm: Vec<&DrmNode> = self.inv.drm.iter().collect();
        drm.sort_by_key(|d| d.bus_id);
        let by_path = cpath(BY_PATH_DIR);
        for g in gpus.iter().filter(|g| g.whole) {
            let mut bus = None;
            let first = drm.partition_point(|d| d.bus_id < g.bus_id);
            for d in drm[first..].iter().take_while(|d| d.bus_id == g.bus_id) {
                let (Some(kind), Some(node)) = (d.by_path_kind(), fname(&d.name)) else {
                    continue;
                };
                let mut path = String::with_capacity(DRI_DIR.len() + 1 + node.as_str().len());
                path.push_str(DRI_DIR);
                path.push('/');
                path.push_str(node.as_str());
                self.node_owned(path, d.major, d.minor, NodeRole::Drm { index: g.index });
                // `pci-<domain:04x>:<bus:02x>:<device:02x>.<function:x>-<kind>`
                // (the first of `PciBusId::proc_names`).
                let bus = bus.get_or_insert_with(|| {
                    let b = g.bus_id;
                    let mut s = String::with_capacity(16);
                    s.push_str("pci-");
                    push_hex(&mut s, b.domain, 4);
                    s.push(':');
                    push_hex(&mut s, b.bus.into(), 2);
                    s.push(':');
                    push_hex(&mut s, b.device.into(), 2);
                    s.push('.');
                    push_hex(&mut s, b.function.into(), 1);
                    s.push('-');
                    s
                });
                let mut name = String::with_capacity(bus.len() + kind.len());
                name.push_str(bus);
                name.push_str(kind);
                if let Ok(name) = FileName::new(name) {
                    links.push(DevLink {
                        link: by_path.join(&name),
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
