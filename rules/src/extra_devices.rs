//! Devices beyond the GPUs, each given only when the container asks (the
//! toolkit's gated modifiers and IMEX channels, `docs/toolkit.md` §4):
//!
//! - `NVIDIA_IMEX_CHANNELS=all|<n>,<m>`: `/dev/nvidia-caps-imex-channels/channel<n>`,
//!   major `nvidia-caps-imex-channels` of `/proc/devices`, minor `n`;
//! - `NVIDIA_GDS=enabled`: `/dev/nvidia-fs*` (GPUDirect Storage);
//! - `NVIDIA_MOFED=enabled`: `/dev/infiniband/*` (GPUDirect RDMA);
//! - `NVIDIA_GDRCOPY=enabled`: `/dev/gdrdrv`;
//! - `NVIDIA_NVSWITCH=enabled`: `/dev/nvidia-nvswitch*`, `/dev/nvidia-nvlink`,
//!   and the fabric manager's socket when the host runs it.
//!
//! - `NVIDIA_MIG_CONFIG_DEVICES=all` / `NVIDIA_MIG_MONITOR_DEVICES=all`
//!   (privileged containers only, as the toolkit): the MIG config or monitor
//!   capability node `/dev/nvidia-caps/nvidia-cap<N>` (minor from
//!   `/proc/driver/nvidia/capabilities/mig/{config,monitor}`) and that
//!   access file.
//!
//! What is asked for and missing on the host is a refusal naming the device
//! ([`ExtraDeviceRefusal`]), never a silent omission.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::request::Env;

/// The IMEX channel variable.
pub const ENV_IMEX_CHANNELS: &str = "NVIDIA_IMEX_CHANNELS";
/// The IMEX channel node directory.
pub const IMEX_DIR: &str = "/dev/nvidia-caps-imex-channels";

/// A device family given only on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gated {
    /// GPUDirect Storage.
    Gds,
    /// Mellanox OFED (GPUDirect RDMA).
    Mofed,
    /// GDRCopy.
    Gdrcopy,
    /// NVSwitch and NVLink.
    Nvswitch,
}

impl Gated {
    /// Every family, in this order.
    pub const ALL: [Gated; 4] = [Gated::Gds, Gated::Mofed, Gated::Gdrcopy, Gated::Nvswitch];

    /// The variable that asks for it (`=enabled`).
    pub fn variable(self) -> &'static str {
        match self {
            Gated::Gds => "NVIDIA_GDS",
            Gated::Mofed => "NVIDIA_MOFED",
            Gated::Gdrcopy => "NVIDIA_GDRCOPY",
            Gated::Nvswitch => "NVIDIA_NVSWITCH",
        }
    }

    /// Its device nodes, as a refusal names them.
    pub fn devices(self) -> &'static str {
        match self {
            Gated::Gds => "/dev/nvidia-fs*",
            Gated::Mofed => "/dev/infiniband/*",
            Gated::Gdrcopy => "/dev/gdrdrv",
            Gated::Nvswitch => "/dev/nvidia-nvswitch* and /dev/nvidia-nvlink",
        }
    }

    /// The kernel module that makes them.
    pub fn module(self) -> &'static str {
        match self {
            Gated::Gds => "nvidia-fs",
            Gated::Mofed => "ib_uverbs (MLNX_OFED)",
            Gated::Gdrcopy => "gdrdrv",
            Gated::Nvswitch => "nvidia (on an NVSwitch system)",
        }
    }

    /// The family a `/dev` node path belongs to.
    pub fn of_path(path: &str) -> Option<Gated> {
        let name = path.strip_prefix("/dev/")?;
        if name.starts_with("nvidia-fs") && !name.contains('/') {
            Some(Gated::Gds)
        } else if name
            .strip_prefix("infiniband/")
            .is_some_and(|n| !n.is_empty() && !n.contains('/'))
        {
            Some(Gated::Mofed)
        } else if name == "gdrdrv" {
            Some(Gated::Gdrcopy)
        } else if (name.starts_with("nvidia-nvswitch") && !name.contains('/'))
            || name == "nvidia-nvlink"
        {
            Some(Gated::Nvswitch)
        } else {
            None
        }
    }
}

/// Which IMEX channels a container asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImexRequest {
    /// None (unset, empty, `none`, `void`).
    #[default]
    None,
    /// Every channel the host has.
    All,
    /// These channels.
    Channels(BTreeSet<u32>),
}

/// The extra devices a container asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExtraRequest {
    /// IMEX channels.
    pub imex: ImexRequest,
    /// Gated families asked for.
    pub gated: BTreeSet<Gated>,
    /// `NVIDIA_MIG_CONFIG_DEVICES=all` (privileged).
    #[serde(default)]
    pub mig_config: bool,
    /// `NVIDIA_MIG_MONITOR_DEVICES=all` (privileged).
    #[serde(default)]
    pub mig_monitor: bool,
}

/// The MIG control variables: `(variable, access file)`.
pub const MIG_CONTROL: [(&str, &str); 2] = [
    (
        "NVIDIA_MIG_CONFIG_DEVICES",
        "/proc/driver/nvidia/capabilities/mig/config",
    ),
    (
        "NVIDIA_MIG_MONITOR_DEVICES",
        "/proc/driver/nvidia/capabilities/mig/monitor",
    ),
];

fn mig_control_asked(
    env: &Env,
    variable: &'static str,
    privileged: bool,
) -> Result<bool, ExtraDeviceRefusal> {
    match env.get(variable).map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("void") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("all") => {
            if privileged {
                Ok(true)
            } else {
                Err(ExtraDeviceRefusal::MigControlUnprivileged { variable })
            }
        }
        Some(v) => Err(ExtraDeviceRefusal::BadMigControl {
            variable,
            value: v.to_owned(),
        }),
    }
}

impl ExtraRequest {
    /// Reads `NVIDIA_IMEX_CHANNELS`, the `NVIDIA_<family>=enabled`
    /// variables (any other value of those leaves the family out) and the
    /// MIG control variables (refused unless `privileged`).
    pub fn from_env(env: &Env, privileged: bool) -> Result<ExtraRequest, ExtraDeviceRefusal> {
        let imex = match env.get(ENV_IMEX_CHANNELS).map(str::trim) {
            None | Some("") => ImexRequest::None,
            Some(v) if v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("void") => {
                ImexRequest::None
            }
            Some(v) if v.eq_ignore_ascii_case("all") => ImexRequest::All,
            Some(v) => {
                let mut channels = BTreeSet::new();
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let n = item
                        .parse()
                        .map_err(|_| ExtraDeviceRefusal::BadImexChannels {
                            value: v.to_owned(),
                            item: item.to_owned(),
                        })?;
                    channels.insert(n);
                }
                ImexRequest::Channels(channels)
            }
        };
        let gated = Gated::ALL
            .into_iter()
            .filter(|g| {
                env.get(g.variable())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("enabled"))
            })
            .collect();
        let mig_config = mig_control_asked(env, MIG_CONTROL[0].0, privileged)?;
        let mig_monitor = mig_control_asked(env, MIG_CONTROL[1].0, privileged)?;
        Ok(ExtraRequest {
            imex,
            gated,
            mig_config,
            mig_monitor,
        })
    }

    /// True when nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.imex == ImexRequest::None
            && self.gated.is_empty()
            && !self.mig_config
            && !self.mig_monitor
    }
}

/// A host device node (path as under `/dev`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostNode {
    /// `/dev/nvidia-fs0`, `/dev/infiniband/uverbs0`.
    pub path: String,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// The host's extra devices, as discovered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraDevices {
    /// `nvidia-caps-imex-channels` in `/proc/devices`.
    #[serde(default)]
    pub imex_major: Option<u32>,
    /// The channels under `/dev/nvidia-caps-imex-channels`.
    #[serde(default)]
    pub imex_channels: Vec<u32>,
    /// The gated families' nodes, by path.
    #[serde(default)]
    pub nodes: Vec<HostNode>,
    /// `DeviceFileMinor` of `/proc/driver/nvidia/capabilities/mig/config`.
    #[serde(default)]
    pub mig_config_minor: Option<u32>,
    /// `DeviceFileMinor` of `/proc/driver/nvidia/capabilities/mig/monitor`.
    #[serde(default)]
    pub mig_monitor_minor: Option<u32>,
}

impl ExtraDevices {
    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.imex_major.is_none()
            && self.imex_channels.is_empty()
            && self.nodes.is_empty()
            && self.mig_config_minor.is_none()
            && self.mig_monitor_minor.is_none()
    }
}

/// Why asked-for extra devices cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtraDeviceRefusal {
    /// `NVIDIA_IMEX_CHANNELS` has an item that is not a channel number.
    #[error("invalid IMEX channel {item:?} in NVIDIA_IMEX_CHANNELS={value:?}: expected all, none, or a comma list of channel numbers such as 0,1")]
    BadImexChannels {
        /// The whole value.
        value: String,
        /// The bad item.
        item: String,
    },
    /// The host has no IMEX channel device.
    #[error("NVIDIA_IMEX_CHANNELS={value} asks for IMEX channels, but this host has none (no nvidia-caps-imex-channels in /proc/devices): load the NVIDIA driver with IMEX support (NVreg_CreateImexChannel0=1) or unset NVIDIA_IMEX_CHANNELS")]
    NoImex {
        /// The value asked.
        value: String,
    },
    /// A listed channel does not exist on the host.
    #[error("IMEX channel {channel} asked for in NVIDIA_IMEX_CHANNELS does not exist on this host (it has {}): create /dev/nvidia-caps-imex-channels/channel{channel} on the host or ask for an existing channel", channel_list(.host))]
    NoSuchImexChannel {
        /// The channel asked.
        channel: u32,
        /// The host's channels.
        host: Vec<u32>,
    },
    /// A MIG control variable in an unprivileged container.
    #[error("{variable} needs a privileged container (CAP_SYS_ADMIN), as with the NVIDIA Container Toolkit: run it privileged or unset {variable}")]
    MigControlUnprivileged {
        /// The variable.
        variable: &'static str,
    },
    /// A MIG control variable with a value other than `all`.
    #[error("invalid {variable}={value:?}: expected all or none")]
    BadMigControl {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The host has no MIG control capability for it.
    #[error("{variable}=all asks for the MIG {what} capability, but this host has none ({access} is missing, or nvidia-caps is not in /proc/devices): use a driver with MIG support or unset {variable}")]
    MigControlAbsent {
        /// The variable.
        variable: &'static str,
        /// `config` or `monitor`.
        what: &'static str,
        /// The access file.
        access: &'static str,
    },
    /// A gated family is asked for and the host has none of its nodes.
    #[error("{}=enabled asks for {}, but this host has none: load the {} module on the host or unset {}", .0.variable(), .0.devices(), .0.module(), .0.variable())]
    GatedAbsent(Gated),
}

fn channel_list(host: &[u32]) -> String {
    if host.is_empty() {
        "no channel".to_owned()
    } else {
        let names: Vec<String> = host.iter().map(|c| format!("channel{c}")).collect();
        names.join(", ")
    }
}

/// The nodes for `req` on a host with `extra`: `(path, major, minor)`
/// with IMEX channels first by number, then the gated families' nodes by
/// path; or the refusal for the first thing missing.
pub fn extra_nodes(
    req: &ExtraRequest,
    extra: &ExtraDevices,
) -> Result<Vec<(String, u32, u32)>, ExtraDeviceRefusal> {
    let imex_value = match &req.imex {
        ImexRequest::None => String::new(),
        ImexRequest::All => "all".to_owned(),
        ImexRequest::Channels(c) => c.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
    };
    let mut out = Vec::new();
    let channels: Vec<u32> = match &req.imex {
        ImexRequest::None => Vec::new(),
        ImexRequest::All => extra.imex_channels.clone(),
        ImexRequest::Channels(c) => c.iter().copied().collect(),
    };
    if req.imex != ImexRequest::None {
        let Some(major) = extra.imex_major else {
            return Err(ExtraDeviceRefusal::NoImex { value: imex_value });
        };
        if req.imex == ImexRequest::All && channels.is_empty() {
            return Err(ExtraDeviceRefusal::NoImex { value: imex_value });
        }
        let mut sorted = channels;
        sorted.sort_unstable();
        for c in sorted {
            if !extra.imex_channels.contains(&c) {
                let mut host = extra.imex_channels.clone();
                host.sort_unstable();
                return Err(ExtraDeviceRefusal::NoSuchImexChannel { channel: c, host });
            }
            out.push((format!("{IMEX_DIR}/channel{c}"), major, c));
        }
    }
    for g in &req.gated {
        let mut nodes: Vec<&HostNode> = extra
            .nodes
            .iter()
            .filter(|n| Gated::of_path(&n.path) == Some(*g))
            .collect();
        if nodes.is_empty() {
            return Err(ExtraDeviceRefusal::GatedAbsent(*g));
        }
        nodes.sort();
        out.extend(
            nodes
                .into_iter()
                .map(|n| (n.path.clone(), n.major, n.minor)),
        );
    }
    Ok(out)
}

/// The MIG control nodes for `req`: `(node path, minor, access file)`
/// with the `nvidia-caps` major `caps_major`, config first.
pub fn mig_control_nodes(
    req: &ExtraRequest,
    extra: &ExtraDevices,
    caps_major: Option<u32>,
) -> Result<Vec<(String, u32, u32, &'static str)>, ExtraDeviceRefusal> {
    let mut out = Vec::new();
    for (asked, minor, (variable, access), what) in [
        (
            req.mig_config,
            extra.mig_config_minor,
            MIG_CONTROL[0],
            "config",
        ),
        (
            req.mig_monitor,
            extra.mig_monitor_minor,
            MIG_CONTROL[1],
            "monitor",
        ),
    ] {
        if !asked {
            continue;
        }
        let (Some(minor), Some(major)) = (minor, caps_major) else {
            return Err(ExtraDeviceRefusal::MigControlAbsent {
                variable,
                what,
                access,
            });
        };
        out.push((
            format!("/dev/nvidia-caps/nvidia-cap{minor}"),
            major,
            minor,
            access,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn parse() {
        let r =
            ExtraRequest::from_env(&env(&[("NVIDIA_MIG_CONFIG_DEVICES", "all")]), true).unwrap();
        assert!(r.mig_config && !r.mig_monitor);
        let r = ExtraRequest::from_env(
            &env(&[
                (ENV_IMEX_CHANNELS, "1, 0"),
                ("NVIDIA_GDS", "enabled"),
                ("NVIDIA_MOFED", "disabled"),
                ("NVIDIA_NVSWITCH", "ENABLED"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(r.imex, ImexRequest::Channels([0, 1].into()));
        assert_eq!(r.gated, [Gated::Gds, Gated::Nvswitch].into());
        for v in ["", "none", "void"] {
            let r = ExtraRequest::from_env(&env(&[(ENV_IMEX_CHANNELS, v)]), false).unwrap();
            assert!(r.is_empty());
        }
        let r = ExtraRequest::from_env(&env(&[(ENV_IMEX_CHANNELS, "all")]), false).unwrap();
        assert_eq!(r.imex, ImexRequest::All);
    }

    #[test]
    fn families_by_path() {
        use Gated::*;
        for (path, want) in [
            ("/dev/nvidia-fs0", Some(Gds)),
            ("/dev/nvidia-fs15", Some(Gds)),
            ("/dev/infiniband/uverbs0", Some(Mofed)),
            ("/dev/infiniband/rdma_cm", Some(Mofed)),
            ("/dev/gdrdrv", Some(Gdrcopy)),
            ("/dev/nvidia-nvswitch0", Some(Nvswitch)),
            ("/dev/nvidia-nvswitchctl", Some(Nvswitch)),
            ("/dev/nvidia-nvlink", Some(Nvswitch)),
            ("/dev/nvidia0", None),
            ("/dev/infiniband", None),
            ("/dev/infiniband/a/b", None),
        ] {
            assert_eq!(Gated::of_path(path), want, "{path}");
        }
    }

    #[test]
    fn nodes_and_refusals() {
        let host = ExtraDevices {
            imex_major: Some(511),
            imex_channels: vec![1, 0],
            nodes: vec![
                HostNode {
                    path: "/dev/nvidia-fs1".into(),
                    major: 240,
                    minor: 1,
                },
                HostNode {
                    path: "/dev/nvidia-fs0".into(),
                    major: 240,
                    minor: 0,
                },
                HostNode {
                    path: "/dev/gdrdrv".into(),
                    major: 241,
                    minor: 0,
                },
            ],
            ..ExtraDevices::default()
        };
        let req = ExtraRequest {
            imex: ImexRequest::All,
            gated: [Gated::Gds].into(),
            ..ExtraRequest::default()
        };
        assert_eq!(
            extra_nodes(&req, &host).unwrap(),
            [
                ("/dev/nvidia-caps-imex-channels/channel0".to_owned(), 511, 0),
                ("/dev/nvidia-caps-imex-channels/channel1".to_owned(), 511, 1),
                ("/dev/nvidia-fs0".to_owned(), 240, 0),
                ("/dev/nvidia-fs1".to_owned(), 240, 1),
            ]
        );
        let req = ExtraRequest {
            imex: ImexRequest::Channels([3].into()),
            ..ExtraRequest::default()
        };
        assert_eq!(
            extra_nodes(&req, &host).unwrap_err(),
            ExtraDeviceRefusal::NoSuchImexChannel {
                channel: 3,
                host: vec![0, 1]
            }
        );
        let req = ExtraRequest {
            gated: [Gated::Mofed].into(),
            ..ExtraRequest::default()
        };
        assert_eq!(
            extra_nodes(&req, &host).unwrap_err(),
            ExtraDeviceRefusal::GatedAbsent(Gated::Mofed)
        );
        assert_eq!(
            extra_nodes(&ExtraRequest::default(), &ExtraDevices::default()).unwrap(),
            []
        );
    }
}
