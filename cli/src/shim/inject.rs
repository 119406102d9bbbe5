//! What the shim adds before the image name (docs/v1.md §1):
//! - local mode: `--device` for the control and selected GPU nodes, then
//!   `--volume-driver=nvidia-docker --volume=nvidia_driver_<ver>:/usr/local/nvidia:ro`,
//!   or only the `--volume` when the volume already exists;
//! - hook mode (`NV_DOCKER_HOOK`): `--runtime=<name>` and
//!   `NVIDIA_VISIBLE_DEVICES` from `NV_GPU`, or `--gpus`; the image's v1
//!   labels as `--annotation` on Docker >= 24 (API 1.43), otherwise the CUDA
//!   label as `NVIDIA_REQUIRE_CUDA=cuda>=<label>` in the environment.
//!
//! Every decision (which GPUs, the CUDA checks, the volume name) comes from
//! `rules`, as for `/docker/cli`.

use rules::request::{ENV_VISIBLE_DEVICES, LABEL_CUDA_VERSION, LABEL_VOLUMES_NEEDED};
use rules::{is_v1_gpu_image, plan, Config, Env, Inventory, Plan, Refusal, Request};

use super::engine::ImageConfig;
use super::env::HookMode;
use crate::v1::cli_options;

/// True for a GPU image (`rules::is_v1_gpu_image`): the v1 label, or
/// `NVIDIA_VISIBLE_DEVICES` (other than empty or `void`) in its environment.
pub fn is_gpu_image(image: &ImageConfig) -> bool {
    is_v1_gpu_image(&image.labels, &Env::from_oci(&image.env))
}

/// The plan for a GPU image (`rules::Request::from_v1_image`): v1's label
/// rule, then the image's `NVIDIA_REQUIRE_*` (or legacy `CUDA_VERSION`).
pub fn plan_for(
    inv: &Inventory,
    nv_gpu: Option<&str>,
    image: &ImageConfig,
    cfg: &Config,
) -> Result<Plan, Refusal> {
    let req = Request::from_v1_image(nv_gpu, &image.labels, &Env::from_oci(&image.env), cfg)?;
    plan(inv, &req, cfg)
}

/// Local mode's options for a plan.
pub fn local_options(
    plan: &Plan,
    dev_root: &std::path::Path,
    volume_exists: &mut dyn FnMut(&str) -> Result<bool, super::engine::EngineCallError>,
) -> Result<Vec<String>, super::engine::EngineCallError> {
    let mut out: Vec<String> = cli_options::devices(plan, dev_root)
        .into_iter()
        .map(|d| format!("--device={d}"))
        .collect();
    for v in &plan.v1_volumes {
        let opt = format!("--volume={}:{}:ro", v.docker_name, v.mountpoint);
        if !volume_exists(&v.docker_name)? {
            out.push(format!("--volume-driver={}", cli_options::VOLUME_DRIVER));
        }
        out.push(opt);
    }
    Ok(out)
}

/// Hook mode's options.
pub fn hook_options(
    mode: &HookMode,
    gpu_ids: &[String],
    image: &ImageConfig,
    annotations: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    match mode {
        HookMode::Runtime(name) => {
            out.push(format!("--runtime={name}"));
            let devices = if gpu_ids.is_empty() {
                "all".to_owned()
            } else {
                gpu_ids.join(",")
            };
            out.push(format!("--env={ENV_VISIBLE_DEVICES}={devices}"));
        }
        HookMode::Gpus => {
            out.push(if gpu_ids.is_empty() {
                "--gpus=all".to_owned()
            } else {
                // docker reads --gpus as CSV: quote the device list.
                format!("--gpus=\"device={}\"", gpu_ids.join(","))
            });
        }
    }
    for key in [LABEL_VOLUMES_NEEDED, LABEL_CUDA_VERSION] {
        let Some(v) = image.labels.get(key).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        if annotations {
            out.push(format!("--annotation={key}={v}"));
        } else if key == LABEL_CUDA_VERSION {
            out.push(format!("--env=NVIDIA_REQUIRE_CUDA=cuda>={}", v.trim()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(labels: &[(&str, &str)], env: &[&str]) -> ImageConfig {
        ImageConfig {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            env: env.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn gpu_images() {
        assert!(is_gpu_image(&image(
            &[(LABEL_VOLUMES_NEEDED, "nvidia_driver")],
            &[]
        )));
        assert!(is_gpu_image(&image(&[], &["NVIDIA_VISIBLE_DEVICES=all"])));
        assert!(!is_gpu_image(&image(&[], &["NVIDIA_VISIBLE_DEVICES=void"])));
        assert!(!is_gpu_image(&image(
            &[(LABEL_VOLUMES_NEEDED, " ")],
            &["PATH=/bin"]
        )));
    }

    #[test]
    fn hook_mode_options() {
        let img = image(
            &[
                (LABEL_VOLUMES_NEEDED, "nvidia_driver"),
                (LABEL_CUDA_VERSION, "8.0"),
            ],
            &[],
        );
        assert_eq!(
            hook_options(
                &HookMode::Runtime("nvidia".into()),
                &["0".into(), "1".into()],
                &img,
                true
            ),
            [
                "--runtime=nvidia",
                "--env=NVIDIA_VISIBLE_DEVICES=0,1",
                "--annotation=com.nvidia.volumes.needed=nvidia_driver",
                "--annotation=com.nvidia.cuda.version=8.0"
            ]
        );
        assert_eq!(
            hook_options(&HookMode::Gpus, &[], &img, false),
            ["--gpus=all", "--env=NVIDIA_REQUIRE_CUDA=cuda>=8.0"]
        );
    }
}
