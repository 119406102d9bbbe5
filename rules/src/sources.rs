//! Device lists as Kubernetes' NVIDIA device plugin hands them over, besides
//! the `NVIDIA_VISIBLE_DEVICES` variable (its `DEVICE_LIST_STRATEGY`,
//! `docs/toolkit.md` §7):
//!
//! - `volume-mounts`: `NVIDIA_VISIBLE_DEVICES=/var/run/nvidia-container-devices`
//!   and one mount per device at `/var/run/nvidia-container-devices/<id>`
//!   whose source is `/dev/null`. Only such mounts count: a user can set the
//!   variable but, in a pod, cannot add a mount at that place, which is why
//!   this is the strategy for `accept-nvidia-visible-devices-envvar-when-unprivileged
//!   = false`. `<id>` is a device id, or a CDI name of the configured kind
//!   (`cdi/nvidia.com/gpu/<name>` or `cdi/nvidia.com/gpu=<name>`).
//!   `imex/<channel>` mounts name IMEX channels: reported, not served here.
//! - `cdi-annotations`: annotations whose key starts with a configured prefix
//!   (`cdi.k8s.io/`), each a comma list of fully-qualified CDI names
//!   (`nvidia.com/gpu=0`), read in key order. Names of the configured kind
//!   are answered from the live inventory (the toolkit's `jit-cdi`), so no
//!   spec file can be stale.
//!
//! The toolkit's precedence: annotations, then volume mounts, then the
//! variable; the first source with devices wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the device plugin's volume mounts go.
pub const VOLUME_MOUNT_ROOT: &str = "/var/run/nvidia-container-devices";
/// The only source that makes such a mount count.
pub const VOLUME_MOUNT_SOURCE: &str = "/dev/null";
/// The default annotation prefixes.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "cdi.k8s.io/";
/// The default CDI kind served from the inventory.
pub const DEFAULT_CDI_KIND: &str = "nvidia.com/gpu";

/// One OCI mount, as far as the request needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciMount {
    /// `source`.
    pub source: String,
    /// `destination`.
    pub destination: String,
}

/// What the volume mounts ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountedDevices {
    /// Device ids (`0`, `GPU-...`, `all`), in mount order.
    pub ids: Vec<String>,
    /// Mounts under the root that name something this project does not
    /// serve (IMEX channels, another CDI kind): their destinations.
    pub ignored: Vec<String>,
}

/// The devices named by `mounts` (module docs); `kind` is the CDI kind
/// served (`nvidia.com/gpu`).
pub fn devices_from_mounts(mounts: &[OciMount], kind: &str) -> MountedDevices {
    let mut found = MountedDevices::default();
    let prefix = format!("{VOLUME_MOUNT_ROOT}/");
    for m in mounts {
        if m.source != VOLUME_MOUNT_SOURCE {
            continue;
        }
        let Some(rest) = m.destination.strip_prefix(&prefix) else {
            continue;
        };
        let rest = rest.trim_end_matches('/');
        let id = match rest.strip_prefix("cdi/") {
            Some(name) => cdi_mount_name(name, kind),
            None if rest.starts_with("imex/") || rest.is_empty() || rest.contains('/') => None,
            None => Some(rest.to_owned()),
        };
        match id {
            Some(id) => found.ids.push(id),
            None => found.ignored.push(m.destination.clone()),
        }
    }
    found
}

/// `nvidia.com/gpu/<name>` or `nvidia.com/gpu=<name>` of `kind`: `<name>`.
fn cdi_mount_name(name: &str, kind: &str) -> Option<String> {
    let device = name
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('/').or_else(|| r.strip_prefix('=')))?;
    (!device.is_empty() && !device.contains('/')).then(|| device.to_owned())
}

/// A fully-qualified CDI name split: (`vendor/class`, `name`).
pub fn split_cdi_name(qualified: &str) -> Option<(&str, &str)> {
    let (kind, name) = qualified.split_once('=')?;
    let (vendor, class) = kind.split_once('/')?;
    if vendor.is_empty() || class.is_empty() || class.contains('/') || name.is_empty() {
        return None;
    }
    Some((kind, name))
}

/// The CDI annotations of a container: `(key, value)` for every key with
/// one of `prefixes`, in key order.
pub fn cdi_annotations<'a>(
    annotations: &'a BTreeMap<String, String>,
    prefixes: &[String],
) -> Vec<(&'a str, &'a str)> {
    annotations
        .iter()
        .filter(|(k, _)| {
            prefixes
                .iter()
                .any(|p| !p.is_empty() && k.starts_with(p.as_str()))
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(source: &str, destination: &str) -> OciMount {
        OciMount {
            source: source.into(),
            destination: destination.into(),
        }
    }

    #[test]
    fn volume_mounts() {
        let mounts = [
            m("/dev/null", "/var/run/nvidia-container-devices/GPU-abc"),
            m("/dev/null", "/var/run/nvidia-container-devices/1"),
            // Not /dev/null: a user's volume does not count.
            m("/home/u/x", "/var/run/nvidia-container-devices/2"),
            m(
                "/dev/null",
                "/var/run/nvidia-container-devices/cdi/nvidia.com/gpu/3",
            ),
            m(
                "/dev/null",
                "/var/run/nvidia-container-devices/cdi/nvidia.com/gpu=all",
            ),
            m(
                "/dev/null",
                "/var/run/nvidia-container-devices/cdi/other.com/fpga/0",
            ),
            m("/dev/null", "/var/run/nvidia-container-devices/imex/7"),
            m("/dev/null", "/var/run/nvidia-container-devicesX/4"),
            m("/dev/null", "/etc/hosts"),
        ];
        let found = devices_from_mounts(&mounts, DEFAULT_CDI_KIND);
        assert_eq!(found.ids, ["GPU-abc", "1", "3", "all"]);
        assert_eq!(
            found.ignored,
            [
                "/var/run/nvidia-container-devices/cdi/other.com/fpga/0",
                "/var/run/nvidia-container-devices/imex/7"
            ]
        );
        assert_eq!(
            devices_from_mounts(&[], DEFAULT_CDI_KIND),
            MountedDevices::default()
        );
    }

    #[test]
    fn cdi_names_and_annotations() {
        assert_eq!(
            split_cdi_name("nvidia.com/gpu=0"),
            Some(("nvidia.com/gpu", "0"))
        );
        assert_eq!(
            split_cdi_name("nvidia.com/gpu=GPU-1:2"),
            Some(("nvidia.com/gpu", "GPU-1:2"))
        );
        for bad in [
            "nvidia.com/gpu",
            "gpu=0",
            "nvidia.com/gpu=",
            "/gpu=0",
            "a/b/c=0",
        ] {
            assert_eq!(split_cdi_name(bad), None, "{bad}");
        }
        let annotations: BTreeMap<String, String> = [
            ("cdi.k8s.io/b", "nvidia.com/gpu=1"),
            ("cdi.k8s.io/a", "nvidia.com/gpu=0"),
            ("io.kubernetes.cri.container-type", "container"),
            ("x.example/cdi", "nvidia.com/gpu=2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let prefixes = vec![DEFAULT_ANNOTATION_PREFIX.to_owned()];
        assert_eq!(
            cdi_annotations(&annotations, &prefixes),
            [
                ("cdi.k8s.io/a", "nvidia.com/gpu=0"),
                ("cdi.k8s.io/b", "nvidia.com/gpu=1")
            ]
        );
        let prefixes = vec!["x.example/".to_owned(), String::new()];
        assert_eq!(
            cdi_annotations(&annotations, &prefixes),
            [("x.example/cdi", "nvidia.com/gpu=2")]
        );
    }

    mod precedence {
        use super::*;
        use crate::config::Config;
        use crate::device::{DeviceRequest, DeviceSource};
        use crate::files::RootfsFlavor;
        use crate::refusal::Refusal;
        use crate::request::{ContainerInput, Env, Request, Warning};

        struct Case {
            env: Vec<(&'static str, &'static str)>,
            annotations: Vec<(&'static str, &'static str)>,
            mounts: Vec<OciMount>,
            privileged: bool,
            cdi_names: bool,
        }

        impl Case {
            fn new(env: &[(&'static str, &'static str)]) -> Case {
                Case {
                    env: env.to_vec(),
                    annotations: Vec::new(),
                    mounts: Vec::new(),
                    privileged: false,
                    cdi_names: true,
                }
            }
            fn run(&self, config: &Config) -> Result<Request, Refusal> {
                let env = Env::from_pairs(self.env.iter().copied());
                let annotations: BTreeMap<String, String> = self
                    .annotations
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                let input = ContainerInput {
                    env: &env,
                    annotations: &annotations,
                    mounts: &self.mounts,
                    privileged: self.privileged,
                    cdi_names: self.cdi_names,
                };
                Request::from_input(&input, RootfsFlavor::DebianLike, config)
            }
        }

        fn ids(r: &Request) -> Vec<String> {
            match &r.devices {
                DeviceRequest::Devices(ids) => ids.iter().map(|i| i.text.clone()).collect(),
                other => vec![format!("{other:?}")],
            }
        }

        fn dev(id: &str) -> OciMount {
            m("/dev/null", &format!("{VOLUME_MOUNT_ROOT}/{id}"))
        }

        fn secure() -> Config {
            Config {
                accept_visible_devices_when_unprivileged: false,
                accept_devices_as_volume_mounts: true,
                ..Config::default()
            }
        }

        #[test]
        fn annotations_then_mounts_then_the_variable() {
            let mut c = Case::new(&[("NVIDIA_VISIBLE_DEVICES", "2")]);
            c.mounts = vec![dev("1")];
            c.annotations = vec![
                ("cdi.k8s.io/b", "nvidia.com/gpu=3"),
                ("cdi.k8s.io/a", "nvidia.com/gpu=0,nvidia.com/gpu=GPU-x"),
            ];
            let cfg = secure();
            let r = c.run(&cfg).unwrap();
            assert_eq!(ids(&r), ["0", "GPU-x", "3"]);
            assert_eq!(
                r.device_source,
                DeviceSource::CdiAnnotation("cdi.k8s.io/a".into())
            );
            // The prestart hook leaves annotations to the engine.
            c.cdi_names = false;
            let r = c.run(&cfg).unwrap();
            assert_eq!(
                (ids(&r), r.device_source.clone()),
                (vec!["1".to_owned()], DeviceSource::VolumeMounts)
            );
            // Mounts are read only when accepted (the default: not).
            c.privileged = true;
            let r = c.run(&Config::default()).unwrap();
            assert_eq!(
                (ids(&r), r.device_source),
                (vec!["2".to_owned()], DeviceSource::VisibleDevices)
            );
            // A CDI spec's `void`: the engine has given the devices already.
            let mut c = Case::new(&[("NVIDIA_VISIBLE_DEVICES", "void")]);
            c.annotations = vec![("cdi.k8s.io/a", "nvidia.com/gpu=0")];
            assert!(!c.run(&cfg).unwrap().is_gpu());
        }

        /// The secure setting: an unprivileged pod that sets
        /// NVIDIA_VISIBLE_DEVICES=all itself gets no GPU; the device
        /// plugin's mounts and annotations still give it its GPUs.
        #[test]
        fn unprivileged_variable_ignored_plugin_sources_honoured() {
            let cfg = secure();
            let c = Case::new(&[("NVIDIA_VISIBLE_DEVICES", "all")]);
            let r = c.run(&cfg).unwrap();
            assert!(!r.is_gpu());
            assert_eq!(
                r.warnings,
                [Warning::DevicesIgnoredUnprivileged {
                    input: DeviceSource::VisibleDevices
                }]
            );
            let mut c = Case::new(&[("NVIDIA_VISIBLE_DEVICES", VOLUME_MOUNT_ROOT)]);
            c.mounts = vec![
                dev("GPU-abc"),
                dev("imex/3"),
                m("/tmp/x", &format!("{VOLUME_MOUNT_ROOT}/all")),
            ];
            let r = c.run(&cfg).unwrap();
            assert_eq!(ids(&r), ["GPU-abc"]);
            assert_eq!(
                r.warnings,
                [Warning::IgnoredDeviceMounts {
                    destinations: vec![format!("{VOLUME_MOUNT_ROOT}/imex/3")]
                }]
            );
            let mut c = Case::new(&[]);
            c.annotations = vec![("cdi.k8s.io/x", "nvidia.com/gpu=all")];
            assert_eq!(c.run(&cfg).unwrap().devices, DeviceRequest::All);
        }

        #[test]
        fn refusals_name_the_input() {
            let c = Case::new(&[("NVIDIA_VISIBLE_DEVICES", VOLUME_MOUNT_ROOT)]);
            assert_eq!(
                c.run(&Config::default()).unwrap_err().to_string(),
                "NVIDIA_VISIBLE_DEVICES=/var/run/nvidia-container-devices asks for the GPUs mounted under /var/run/nvidia-container-devices, but accept-nvidia-visible-devices-as-volume-mounts is false: set it to true in the configuration (the device plugin's DEVICE_LIST_STRATEGY=volume-mounts), or use another strategy"
            );
            let mut c = Case::new(&[]);
            c.annotations = vec![("cdi.k8s.io/a", "vendor.com/fpga=0")];
            assert_eq!(
                c.run(&Config::default()).unwrap_err().to_string(),
                "CDI device vendor.com/fpga=0 in annotation cdi.k8s.io/a is not of kind nvidia.com/gpu, the one this runtime answers from the GPU inventory: let the engine resolve it (containerd >= 1.7 with enable_cdi, CRI-O) or remove it"
            );
            c.annotations = vec![("cdi.k8s.io/a", "gpu0")];
            assert_eq!(
                c.run(&Config::default()).unwrap_err().to_string(),
                "invalid CDI device \"gpu0\" in annotation cdi.k8s.io/a: expected vendor/class=name, e.g. nvidia.com/gpu=0"
            );
            // jit-cdi: CDI names in the variable too.
            let c = Case::new(&[("NVIDIA_VISIBLE_DEVICES", "nvidia.com/gpu=1,2")]);
            let mut r = c.run(&Config::default());
            assert_eq!(ids(r.as_ref().unwrap()), ["1", "2"]);
            let c = Case::new(&[("NVIDIA_VISIBLE_DEVICES", "other.com/x=1")]);
            r = c.run(&Config::default());
            assert!(r.unwrap_err().to_string().starts_with(
                "CDI device other.com/x=1 in NVIDIA_VISIBLE_DEVICES is not of kind nvidia.com/gpu"
            ));
            let mut c = Case::new(&[("NVIDIA_VISIBLE_DEVICES", "nvidia.com/gpu=1")]);
            c.cdi_names = false;
            assert!(c.run(&Config::default()).is_err(), "legacy: no CDI names");
            let mut c = Case::new(&[]);
            c.annotations = vec![("cdi.k8s.io/a", "nvidia.com/gpu=zz")];
            let e = c.run(&Config::default()).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid device \"zz\" in annotation cdi.k8s.io/a: "),
                "{e}"
            );
            let mut c = Case::new(&[]);
            c.mounts = vec![dev("zz")];
            let e = c.run(&secure()).unwrap_err().to_string();
            assert!(e.starts_with("invalid device \"zz\" in the volume mounts under /var/run/nvidia-container-devices: "), "{e}");
        }
    }
}
