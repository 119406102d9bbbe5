//! The GPUs' DRM nodes, from sysfs: `<sys>/bus/pci/devices/<bus id>/drm/`
//! lists `card<N>` and `renderD<N>`, each with a `dev` file `major:minor`
//! (what udev makes `/dev/dri/<name>` from). Numbers are never guessed: a
//! GPU whose directory is missing (no `nvidia-drm` module) has no nodes.

use std::path::Path;

use rules::{DrmNode, Gpu};

/// Largest `dev` file read.
const MAX_DEV_FILE: usize = 64;

/// Parses a sysfs `dev` file: `226:1\n`.
pub fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The DRM nodes of `gpus` under `sys_root`, by GPU then name.
pub fn drm_nodes(sys_root: &Path, gpus: &[Gpu]) -> Vec<DrmNode> {
    let mut out = Vec::new();
    for g in gpus {
        let [name16, _] = g.bus_id.proc_names();
        let dir = sys_root.join("bus/pci/devices").join(name16).join("drm");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut found = Vec::new();
        for e in entries.filter_map(Result::ok) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let node = DrmNode {
                bus_id: g.bus_id,
                name,
                major: 0,
                minor: 0,
            };
            if node.by_path_kind().is_none() {
                continue;
            }
            let dev = dir.join(&node.name).join("dev");
            match std::fs::read_to_string(&dev) {
                Ok(text) if text.len() <= MAX_DEV_FILE => match parse_dev(&text) {
                    Some((major, minor)) => found.push(DrmNode {
                        major,
                        minor,
                        ..node
                    }),
                    None => log::warn!("{}: not major:minor: {text:?}", dev.display()),
                },
                Ok(_) => log::warn!("{}: longer than a device number", dev.display()),
                Err(e) => log::debug!("skipping {}: {e}", dev.display()),
            }
        }
        found.sort();
        out.extend(found);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_files() {
        assert_eq!(parse_dev("226:1\n"), Some((226, 1)));
        assert_eq!(parse_dev("226:128"), Some((226, 128)));
        assert_eq!(parse_dev("226"), None);
        assert_eq!(parse_dev("a:1"), None);
    }
}
