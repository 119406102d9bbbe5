//! Which cgroup manager Podman and CRI-O use, for `setup hooks`.
//!
//! With the systemd cgroup manager, each container runs in a systemd scope
//! whose `DeviceAllow=` list is made from the container's spec. systemd
//! re-applies that list whenever it reloads (`systemctl daemon-reload`,
//! package upgrades do it), replacing the scope's device program: devices a
//! prestart hook allowed after the fact are then denied, and CUDA reports
//! "Failed to initialize NVML: Unknown Error" hours after the start. The
//! runc wrapper (`nvidia-docker-runtime`) writes the GPUs into the spec
//! before runc reads it, so they are in `DeviceAllow=` and survive. So for
//! such an engine `setup hooks` chooses wrapper mode ([`super::mode`]).
//!
//! Where the setting is read (later files win, as the engines read them):
//! - Podman: `cgroup_manager` in `[engine]` of
//!   `/usr/share/containers/containers.conf`, `/etc/containers/containers.conf`
//!   and `/etc/containers/containers.conf.d/*.conf`; without one, `systemd`
//!   when the host runs systemd (`/run/systemd/system` exists), else
//!   `cgroupfs`.
//! - CRI-O (only when `/etc/crio` exists): `cgroup_manager` in
//!   `[crio.runtime]` of `/etc/crio/crio.conf` and `/etc/crio/crio.conf.d/*`;
//!   without one, `systemd` (CRI-O's default).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// Podman's cgroup manager under `root`, and where it came from.
pub fn podman_setting(root: &Path) -> (String, String) {
    let podman_files = config_files(
        root,
        &[
            "usr/share/containers/containers.conf",
            "etc/containers/containers.conf",
        ],
        "etc/containers/containers.conf.d",
    );
    match last_setting(&podman_files, &["engine"]) {
        Some((value, file)) => (
            value.clone(),
            format!("cgroup_manager = {value:?} in {}", file.display()),
        ),
        None if root.join("run/systemd/system").is_dir() => (
            "systemd".to_owned(),
            "the default on a host running systemd".to_owned(),
        ),
        None => (
            "cgroupfs".to_owned(),
            "the default on a host without systemd".to_owned(),
        ),
    }
}

/// CRI-O's cgroup manager under `root`, and where it came from.
pub fn crio_setting(root: &Path) -> (String, String) {
    let files = config_files(root, &["etc/crio/crio.conf"], "etc/crio/crio.conf.d");
    match last_setting(&files, &["crio", "runtime"]) {
        Some((value, file)) => (
            value.clone(),
            format!("cgroup_manager = {value:?} in {}", file.display()),
        ),
        None => ("systemd".to_owned(), "CRI-O's default".to_owned()),
    }
}

fn config_files(root: &Path, files: &[&str], dropin_dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let mut dropins: Vec<PathBuf> = std::fs::read_dir(root.join(dropin_dir))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dropins.sort();
    out.extend(dropins);
    out
}

/// The last `cgroup_manager` string under `table` (a dotted path) in
/// `files`, with the file it came from. Unreadable or malformed files are
/// skipped (the engine itself would refuse them).
fn last_setting<'a>(files: &'a [PathBuf], table: &[&str]) -> Option<(String, &'a PathBuf)> {
    let mut found = None;
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
            continue;
        };
        let mut item = doc.as_item();
        for key in table {
            match item.get(key) {
                Some(i) => item = i,
                None => {
                    item = &toml_edit::Item::None;
                    break;
                }
            }
        }
        if let Some(v) = item.get("cgroup_manager").and_then(|v| v.as_str()) {
            found = Some((v.to_owned(), file));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn podman_settings_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(
            podman_setting(root),
            (
                "cgroupfs".to_owned(),
                "the default on a host without systemd".to_owned()
            )
        );
        std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
        assert_eq!(
            podman_setting(root),
            (
                "systemd".to_owned(),
                "the default on a host running systemd".to_owned()
            )
        );
        write(
            root,
            "usr/share/containers/containers.conf",
            "[engine]\n#cgroup_manager = \"systemd\"\ncgroup_manager = \"cgroupfs\"\n",
        );
        assert_eq!(podman_setting(root).0, "cgroupfs");
        write(
            root,
            "etc/containers/containers.conf.d/50-x.conf",
            "[engine]\ncgroup_manager = \"systemd\"\n",
        );
        assert_eq!(
            podman_setting(root).1,
            format!(
                "cgroup_manager = \"systemd\" in {}",
                root.join("etc/containers/containers.conf.d/50-x.conf")
                    .display()
            )
        );
    }

    #[test]
    fn crio_default_is_systemd() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(
            crio_setting(root),
            ("systemd".to_owned(), "CRI-O's default".to_owned())
        );
        write(
            root,
            "etc/crio/crio.conf.d/10-cg.conf",
            "[crio.runtime]\ncgroup_manager = \"cgroupfs\"\n",
        );
        assert_eq!(podman_setting(root).0, "cgroupfs");
        assert_eq!(crio_setting(root).0, "cgroupfs");
    }
}
