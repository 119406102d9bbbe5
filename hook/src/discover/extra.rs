//! IMEX channels and the gated families' device nodes
//! ([`rules::extra_devices`]): the `nvidia-caps-imex-channels` major from
//! `<proc>/devices`, and the character devices under the dev root
//! (`nvidia-caps-imex-channels/channel<N>`, `nvidia-fs*`, `infiniband/*`,
//! `gdrdrv`, `nvidia-nvswitch*`, `nvidia-nvlink`), with their numbers as the
//! host has them (never assumed).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rules::extra_devices::{ExtraDevices, Gated, HostNode};

/// The major named `name` in `/proc/devices`' character section.
pub fn char_major(devices: &str, name: &str) -> Option<u32> {
    let mut in_char = false;
    for line in devices.lines() {
        let line = line.trim();
        if line.ends_with(':') {
            in_char = line == "Character devices:";
            continue;
        }
        let mut words = line.split_whitespace();
        if let (true, Some(num), Some(n)) = (in_char, words.next(), words.next()) {
            if n == name {
                return num.parse().ok();
            }
        }
    }
    None
}

/// `(major, minor)` of a character device at `path` (not followed).
fn char_dev(path: &Path) -> Option<(u32, u32)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_char_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((
        u32::try_from(nix::sys::stat::major(rdev)).ok()?,
        u32::try_from(nix::sys::stat::minor(rdev)).ok()?,
    ))
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// The host's extra devices.
pub fn extra_devices(proc_root: &Path, dev_root: &Path) -> ExtraDevices {
    let devices = std::fs::read_to_string(proc_root.join("devices")).unwrap_or_default();
    let imex_major = char_major(&devices, "nvidia-caps-imex-channels");
    let imex_dir = dev_root.join("nvidia-caps-imex-channels");
    let mut imex_channels: Vec<u32> = names(&imex_dir)
        .iter()
        .filter_map(|n| {
            let c: u32 = n.strip_prefix("channel")?.parse().ok()?;
            let (major, minor) = char_dev(&imex_dir.join(n))?;
            (Some(major) == imex_major && minor == c).then_some(c)
        })
        .collect();
    imex_channels.sort_unstable();
    let mut nodes = Vec::new();
    let candidates = names(dev_root)
        .into_iter()
        .map(|n| format!("/dev/{n}"))
        .chain(
            names(&dev_root.join("infiniband"))
                .into_iter()
                .map(|n| format!("/dev/infiniband/{n}")),
        );
    for path in candidates {
        if Gated::of_path(&path).is_none() {
            continue;
        }
        let host = dev_root.join(path.trim_start_matches("/dev/"));
        if let Some((major, minor)) = char_dev(&host) {
            nodes.push(HostNode { path, major, minor });
        }
    }
    nodes.sort();
    let mig = proc_root.join("driver/nvidia/capabilities/mig");
    ExtraDevices {
        imex_major,
        imex_channels,
        nodes,
        mig_config_minor: device_file_minor(&mig.join("config")),
        mig_monitor_minor: device_file_minor(&mig.join("monitor")),
    }
}

/// `DeviceFileMinor: <n>` of a capability access file.
fn device_file_minor(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("DeviceFileMinor:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors() {
        let text = "Character devices:\n195 nvidia\n238 nvidia-caps-imex-channels\n\nBlock devices:\n239 nvidia-fs\n";
        assert_eq!(char_major(text, "nvidia-caps-imex-channels"), Some(238));
        assert_eq!(char_major(text, "nvidia-fs"), None);
    }
}
