//! `nvidia-docker explain IMAGE [-e K=V]... [--privileged] [--json]`: what
//! `nvidia-docker run IMAGE` would give the container, and why, without
//! running anything.
//!
//! The image's labels and environment come from the Docker Engine API, as
//! the shim reads them (`-H`, else `DOCKER_HOST`; the image must be local:
//! explain never pulls). The decision is the shim's:
//! - with `NV_DOCKER_HOOK` the hook decides at container start, from the
//!   image's environment, the `-e` variables, `NVIDIA_VISIBLE_DEVICES` from
//!   `NV_GPU` and the image's labels as annotations
//!   ([`hook::explain::decide`]);
//! - otherwise v1's local mode: `NV_GPU` and the image's labels and
//!   environment ([`rules::Request::from_v1_image`]), the plan delivered
//!   through `--device` options and the driver volume, whose options are
//!   shown too.
//!
//! Exit status as the hook's: 0, 3 refused (the rules' line on stderr),
//! 1 anything else.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Args;
use hook::explain::{self, ContainerInput, Explanation, Outcome, Style};
use rules::{Env, Request};

use crate::host::{self, HostError};
use crate::shim::engine::{Endpoint, Engine, EngineCallError, EngineError, ImageConfig};
use crate::shim::env::{EnvError, ShimEnv};
use crate::shim::inject;

/// Show what `nvidia-docker run IMAGE` would give the container, and why.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 a plan (or not a GPU image), 3 refused (the one line \
    on stderr), 1 docker or the host could not be read, 2 usage.\n\n\
    Environment: NV_GPU, NV_DOCKER_HOOK, DOCKER_HOST as for `nvidia-docker run`.\n\nExamples:\n  \
    nvidia-docker explain nvidia/cuda:12.2.0-base-ubuntu22.04\n  \
    NV_GPU=1 nvidia-docker explain --json nvidia/cuda\n  \
    NV_DOCKER_HOOK=runtime=nvidia nvidia-docker explain -e NVIDIA_DRIVER_CAPABILITIES=all nvidia/cuda"
)]
pub struct ExplainArgs {
    /// The image (local: explain never pulls).
    pub image: String,
    /// A variable given to `docker run -e` (hook mode only: v1's local mode
    /// decides from the image alone).
    #[arg(long = "env", short = 'e', value_name = "K=V")]
    pub env: Vec<String>,
    /// `docker run --privileged` (hook mode).
    #[arg(long)]
    pub privileged: bool,
    /// The Docker daemon (as docker's `-H`).
    #[arg(long, short = 'H', value_name = "URI")]
    pub host: Option<String>,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Why nothing was explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// A variable.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The HTTP client.
    #[error(transparent)]
    Client(#[from] EngineError),
    /// The Engine API.
    #[error(transparent)]
    Engine(#[from] EngineCallError),
    /// The image is not local.
    #[error("image {image} is not on this docker host; pull it first (docker pull {image})")]
    NoImage {
        /// The image.
        image: String,
    },
    /// The configuration or inventory.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The hook's decision.
    #[error(transparent)]
    Explain(#[from] hook::explain::ExplainError),
    /// Writing the answer.
    #[error("cannot write to stdout")]
    Write(#[source] std::io::Error),
    /// The rules refused; the explanation is printed already.
    #[error(transparent)]
    Refused(#[from] rules::Refusal),
}

/// Runs the verb: see the module docs.
pub fn run(args: &ExplainArgs) -> Result<(), ExplainError> {
    let shim = ShimEnv::parse(&|k| std::env::var(k).ok())?;
    let host_uri = args
        .host
        .clone()
        .or_else(|| std::env::var("DOCKER_HOST").ok());
    let engine = Engine::new(Endpoint::docker(host_uri.as_deref()))?;
    let image = engine
        .image(&args.image)?
        .ok_or_else(|| ExplainError::NoImage {
            image: args.image.clone(),
        })?;
    let config = host::load_config(None)?;
    let (e, docker_options) = if shim.hook.is_some() {
        (hook_mode(&config, &shim, &image, args)?, Vec::new())
    } else {
        v1_mode(&config, &shim, &image, &engine)?
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        match &e.outcome {
            Outcome::Plan(plan) => serde_json::to_writer_pretty(&mut out, plan)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out)),
            Outcome::Refused(_) => Ok(()),
            _ => writeln!(out, "{{\"gpu_container\": false}}"),
        }
    } else {
        let mut text = format!("Image {}\n", args.image);
        text.push_str(&explain::render_text(&e, Style::for_stdout()));
        if !docker_options.is_empty() {
            text.push_str("\nnvidia-docker run adds (before the image):\n");
            for o in &docker_options {
                text.push_str(&format!("  {o}\n"));
            }
        }
        out.write_all(text.as_bytes())
    };
    written
        .and_then(|()| out.flush())
        .map_err(ExplainError::Write)?;
    match e.outcome {
        Outcome::Refused(r) => Err(r.into()),
        _ => Ok(()),
    }
}

/// `NV_DOCKER_HOOK`: the hook decides from the container docker creates.
fn hook_mode(
    config: &hook::config::HookConfig,
    shim: &ShimEnv,
    image: &ImageConfig,
    args: &ExplainArgs,
) -> Result<Explanation, ExplainError> {
    let ids = shim.gpu_ids();
    let mut env: Vec<String> = image.env.clone();
    env.push(format!(
        "{}={}",
        rules::request::ENV_VISIBLE_DEVICES,
        if ids.is_empty() {
            "all".to_owned()
        } else {
            ids.join(",")
        }
    ));
    env.extend(args.env.iter().cloned());
    let input = ContainerInput {
        env: Env::from_oci(env),
        annotations: image.labels.clone(),
        privileged: args.privileged,
        rootfs: None,
    };
    Ok(explain::decide(config, input)?)
}

/// v1's local mode: `NV_GPU` and the image, the plan delivered through
/// `--device` and the driver volume.
fn v1_mode(
    config: &hook::config::HookConfig,
    shim: &ShimEnv,
    image: &ImageConfig,
    engine: &Engine,
) -> Result<(Explanation, Vec<String>), ExplainError> {
    let image_env = Env::from_oci(&image.env);
    let mut input = ContainerInput {
        env: image_env.clone(),
        annotations: image.labels.clone(),
        ..ContainerInput::default()
    };
    if let Some(nv_gpu) = &shim.nv_gpu {
        input.env = Env::from_pairs(
            image_env
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .chain([("NV_GPU".to_owned(), nv_gpu.clone())])
                .collect::<BTreeMap<_, _>>(),
        );
    }
    let mut e = Explanation {
        input,
        request: None,
        flavor_detected: false,
        outcome: Outcome::NoGpu,
    };
    if !inject::is_gpu_image(image) {
        return Ok((e, Vec::new()));
    }
    let request = match Request::from_v1_image(
        shim.nv_gpu.as_deref(),
        &image.labels,
        &image_env,
        &config.rules,
    ) {
        Ok(r) => r,
        Err(refusal) => {
            e.outcome = Outcome::Refused(refusal);
            return Ok((e, Vec::new()));
        }
    };
    let inv = host::load_inventory(config)?;
    let outcome = rules::plan(&inv, &request, &config.rules);
    e.request = Some(request);
    let mut options = Vec::new();
    e.outcome = match outcome {
        Ok(plan) => {
            if plan.gpu_container {
                options = inject::local_options(&plan, &config.paths.dev_root, &mut |name| {
                    engine.volume_exists(name)
                })?;
            }
            Outcome::Plan(Box::new(plan))
        }
        Err(refusal) => Outcome::Refused(refusal),
    };
    Ok((e, options))
}
