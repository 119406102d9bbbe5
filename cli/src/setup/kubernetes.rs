//! A Kubernetes node: the `RuntimeClass` that selects the runtime handler
//! `setup containerd|crio` registered, and the units that keep the CDI
//! spec true (`packaging/systemd`, `packaging/udev`).
//!
//! - `setup kubernetes` prints the `RuntimeClass` (`kubectl apply -f -`):
//!   pods with `runtimeClassName: nvidia` run under the runc wrapper.
//! - `setup cdi-refresh` installs `nvidia-docker-cdi-refresh.service` (runs
//!   `nvidia-docker setup cdi --write`), its `.path` unit (the kernel's
//!   module index changed: a driver was installed) and a udev rule (an
//!   NVIDIA module was loaded: `nvidia-uvm` has its major then), so
//!   `/var/run/cdi/nvidia.yaml` is regenerated at boot and after each
//!   driver change. The files are the ones shipped in `packaging/`, with the
//!   `nvidia-docker` path substituted.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// The service unit, as shipped.
pub const REFRESH_SERVICE: &str =
    include_str!("../../../packaging/systemd/nvidia-docker-cdi-refresh.service");
/// The path unit, as shipped.
pub const REFRESH_PATH: &str =
    include_str!("../../../packaging/systemd/nvidia-docker-cdi-refresh.path");
/// The udev rule, as shipped.
pub const REFRESH_UDEV: &str =
    include_str!("../../../packaging/udev/60-nvidia-docker-cdi-refresh.rules");
/// The unit names.
pub const REFRESH_UNITS: [&str; 2] = [
    "nvidia-docker-cdi-refresh.service",
    "nvidia-docker-cdi-refresh.path",
];
/// The udev rule's file name.
pub const REFRESH_UDEV_FILE: &str = "60-nvidia-docker-cdi-refresh.rules";
/// Where the shipped files call `nvidia-docker`.
pub const INSTALLED_CLI: &str = "/usr/bin/nvidia-docker";

/// The `RuntimeClass` for handler `name`.
pub fn runtime_class(name: &str) -> String {
    format!(
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: {name}\nhandler: {name}\n"
    )
}

/// The refresh files to install: (path, content), with `cli` as the
/// `nvidia-docker` binary.
pub fn refresh_files(systemd_dir: &Path, udev_dir: &Path, cli: &str) -> Vec<(PathBuf, String)> {
    let sub = |text: &str| text.replace(INSTALLED_CLI, cli);
    vec![
        (systemd_dir.join(REFRESH_UNITS[0]), sub(REFRESH_SERVICE)),
        (systemd_dir.join(REFRESH_UNITS[1]), sub(REFRESH_PATH)),
        (udev_dir.join(REFRESH_UDEV_FILE), sub(REFRESH_UDEV)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_class_names_the_handler() {
        assert_eq!(
            runtime_class("nvidia"),
            "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: nvidia\nhandler: nvidia\n"
        );
    }

    #[test]
    fn refresh_units_regenerate_the_spec() {
        let files = refresh_files(Path::new("/s"), Path::new("/u"), "/opt/bin/nvidia-docker");
        assert_eq!(
            files[0].0,
            Path::new("/s/nvidia-docker-cdi-refresh.service")
        );
        assert!(files[0]
            .1
            .contains("\nExecStart=/opt/bin/nvidia-docker setup cdi --write\n"));
        assert!(files[1]
            .1
            .contains("\nUnit=nvidia-docker-cdi-refresh.service\n"));
        assert!(files[1]
            .1
            .contains("PathChanged=/lib/modules/%v/modules.dep\n"));
        assert_eq!(
            files[2].0,
            Path::new("/u/60-nvidia-docker-cdi-refresh.rules")
        );
        assert!(files[2]
            .1
            .contains("KERNEL==\"nvidia|nvidia_uvm|nvidia_modeset\""));
        assert!(files[2]
            .1
            .contains("systemctl --no-block start nvidia-docker-cdi-refresh.service"));
    }
}
