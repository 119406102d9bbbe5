//! `GET /docker/cli[/json]` and `nvidia-docker cli-options`
//! (docs/v1.md §2): the v1 docker options, computed by
//! `rules::plan` with `Delivery::V1Volume` so every front end agrees.
//!
//! Text (no trailing newline):
//! `--volume-driver=nvidia-docker --volume=<vol> ... --device=<dev> ...`;
//! JSON: `{"VolumeDriver":..,"Volumes":[..],"Devices":[..]}`.
//!
//! Devices are the plan's nodes (control devices, then GPUs). On a host whose
//! dev root is not `/dev` (a simulated host, a containerised driver), a
//! node is given as `--device=<dev root>/nvidia0:/dev/nvidia0`, the
//! generalisation of v1's `--device=/dev/nvidia0`; with `/dev` the output is
//! v1's exactly.

use std::path::Path;

use serde::Serialize;

use rules::{plan, Config, Inventory, Plan, Refusal, Request};

/// v1's plugin (and volume driver) name.
pub const VOLUME_DRIVER: &str = "nvidia-docker";

/// `GET /docker/cli/json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerCli {
    /// `nvidia-docker`.
    #[serde(rename = "VolumeDriver")]
    pub volume_driver: String,
    /// `nvidia_driver_<ver>:/usr/local/nvidia:ro`.
    #[serde(rename = "Volumes")]
    pub volumes: Vec<String>,
    /// `--device` values.
    #[serde(rename = "Devices")]
    pub devices: Vec<String>,
}

/// The `--device` value of a node at `path` (`/dev/...`) on a host whose
/// device nodes are under `dev_root`.
pub fn device_arg(path: &str, dev_root: &Path) -> String {
    if dev_root == Path::new("/dev") {
        return path.to_owned();
    }
    let rel = path.strip_prefix("/dev/").unwrap_or(path);
    format!("{}:{path}", dev_root.join(rel).display())
}

/// The `--device` values of a plan.
pub fn devices(plan: &Plan, dev_root: &Path) -> Vec<String> {
    plan.device_nodes
        .iter()
        .map(|n| device_arg(n.path.as_str(), dev_root))
        .collect()
}

/// The `--volume` values of a plan.
pub fn volumes(plan: &Plan) -> Vec<String> {
    plan.v1_volumes
        .iter()
        .map(|v| format!("{}:{}:ro", v.docker_name, v.mountpoint))
        .collect()
}

/// The answer to `?dev=..&vol=..` (raw query values, `+` already decoded
/// to a space), or v1's 400 message.
pub fn docker_cli(
    inv: &Inventory,
    dev: Option<&str>,
    vol: Option<&str>,
    cfg: &Config,
    dev_root: &Path,
) -> Result<DockerCli, Refusal> {
    let req = Request::from_v1_query(dev, vol, cfg)?;
    let plan = plan(inv, &req, cfg)?;
    Ok(DockerCli {
        volume_driver: VOLUME_DRIVER.to_owned(),
        volumes: volumes(&plan),
        devices: devices(&plan, dev_root),
    })
}

/// v1's text template.
pub fn text(cli: &DockerCli) -> String {
    let mut s = format!("--volume-driver={}", cli.volume_driver);
    for v in &cli.volumes {
        s.push_str(" --volume=");
        s.push_str(v);
    }
    for d in &cli.devices {
        s.push_str(" --device=");
        s.push_str(d);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths() {
        assert_eq!(
            device_arg("/dev/nvidia0", Path::new("/dev")),
            "/dev/nvidia0"
        );
        assert_eq!(
            device_arg("/dev/nvidia0", Path::new("/tmp/sim/dev")),
            "/tmp/sim/dev/nvidia0:/dev/nvidia0"
        );
    }
}
