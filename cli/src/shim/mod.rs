//! The `nvidia-docker` shim (docs/v1.md §1): intercepts `run` and
//! `create` (also `docker container run|create`), adds the GPU options right
//! before the image name, and `exec`s docker; any other command is passed
//! to docker unchanged (`version` first prints `NVIDIA Docker: <version>`).
//!
//! - [`env`]: `NV_DOCKER`, `NV_GPU`, `NV_HOST`/`DOCKER_HOST`, `NV_DOCKER_HOOK`.
//! - [`args`]: the docker argv scanner; [`help`]: learning new flags.
//! - [`engine`]: the Docker Engine API (image, volume, version).
//! - [`inject`]: local and hook modes; [`remote`]: remote mode.
//! - [`plugin_check`]: local mode's volume plugin is running, checked
//!   before docker runs.

pub mod args;
pub mod engine;
pub mod env;
pub mod help;
pub mod inject;
pub mod plugin_check;
pub mod remote;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use self::args::{FlagTable, Located};
use self::engine::{Endpoint, Engine, EngineCallError, EngineError, ImageConfig};
use self::env::{EnvError, Remote, ShimEnv};
use crate::host::HostError;

/// Why the shim stopped before docker ran.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// A variable.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The Docker Engine API.
    #[error(transparent)]
    Engine(#[from] EngineCallError),
    /// The HTTP client.
    #[error(transparent)]
    Client(#[from] EngineError),
    /// `docker pull` failed.
    #[error("{0}")]
    Pull(String),
    /// The configuration or inventory.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The rules refused (CUDA too new, unknown GPU, ...).
    #[error(transparent)]
    Refusal(#[from] rules::Refusal),
    /// Remote mode.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
    /// Local mode needs the volume plugin, and it is not there.
    #[error(transparent)]
    PluginMissing(#[from] plugin_check::PluginMissing),
    /// v1's SSH tunnel is not supported.
    #[error("ssh remote hosts are not supported: run the shim on {0}, or reach its plugin over http (NV_HOST=<host>:<port>)")]
    Ssh(String),
    /// docker could not be started.
    #[error("could not run {program}")]
    Exec {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `docker` with `args`, replacing this process; returns only on error.
fn exec(docker: &[String], args: &[String]) -> ShimError {
    let (program, prefix) = match docker.split_first() {
        Some(p) => p,
        None => return ShimError::Env(EnvError::EmptyDocker),
    };
    let source = Command::new(program).args(prefix).args(args).exec();
    ShimError::Exec {
        program: program.clone(),
        source,
    }
}

/// v1's `VolumesNeeded` pull: `docker pull <img>` with its output on stderr
/// (#310), docker's message (without `Error: `) on failure.
fn pull(docker: &[String], image: &str) -> Result<(), ShimError> {
    let Some((program, prefix)) = docker.split_first() else {
        return Err(ShimError::Env(EnvError::EmptyDocker));
    };
    let out = Command::new(program)
        .args(prefix)
        .args(["pull", image])
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| ShimError::Exec {
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let msg = msg.strip_prefix("Error: ").unwrap_or(&msg).to_owned();
    Err(ShimError::Pull(if msg.is_empty() {
        "failed to run docker command".to_owned()
    } else {
        msg
    }))
}

/// Finds the command and image, learning unknown flags from docker.
fn locate(env: &ShimEnv, args: &[String]) -> Option<Located> {
    let (mut global, mut run) = (FlagTable::global(), FlagTable::run());
    for _ in 0..3 {
        match args::locate(args, &mut global, &mut run) {
            Ok(l) => return Some(l),
            Err(args::UnknownFlag(flag)) => {
                // Which table lacks it: the global one if no command was found yet.
                let verb = args::first_operand(args, 0, &mut global)
                    .ok()
                    .flatten()
                    .map(|i| args[i].clone());
                let (table, help_verb) = match verb.as_deref() {
                    Some("run") | Some("create") => (&mut run, verb.clone().unwrap_or_default()),
                    Some("container") => (&mut run, "run".to_owned()),
                    _ => (&mut global, String::new()),
                };
                let Some(help) = help::docker_help(&env.docker, &help_verb) else {
                    log::debug!("unknown docker flag {flag}; passing the command through");
                    return None;
                };
                let before = table.bools.len() + table.valued.len();
                table.learn_help(&help);
                if table.bools.len() + table.valued.len() == before {
                    log::debug!("docker does not know {flag} either; passing through");
                    return None;
                }
            }
        }
    }
    None
}

/// The options to add for a GPU image.
fn gpu_options(
    env: &ShimEnv,
    engine: &Engine,
    image: &ImageConfig,
) -> Result<Vec<String>, ShimError> {
    if let Some(mode) = &env.hook {
        let annotations = engine.api_version()? >= (1, 43);
        return Ok(inject::hook_options(
            mode,
            &env.gpu_ids(),
            image,
            annotations,
        ));
    }
    match &env.remote {
        Some(Remote::Http { host, port }) => Ok(remote::options(
            &format!("{host}:{port}"),
            image,
            &env.gpu_ids(),
        )?),
        Some(Remote::Ssh { host, .. }) => Err(ShimError::Ssh(host.clone())),
        None => {
            let config = crate::host::load_config(None)?;
            let inv = crate::host::load_inventory(&config)?;
            let plan = inject::plan_for(&inv, env.nv_gpu.as_deref(), image, &config.rules)?;
            if !plan.gpu_container {
                return Ok(Vec::new());
            }
            if !plan.v1_volumes.is_empty() {
                plugin_check::check(&plugin_check::PluginDirs::default())?;
            }
            Ok(inject::local_options(
                &plan,
                &config.paths.dev_root,
                &mut |name| engine.volume_exists(name),
            )?)
        }
    }
}

/// The shim: `args` is docker's argv without argv0. Returns only on error
/// (docker replaces this process otherwise).
pub fn run(args: Vec<String>) -> ShimError {
    let env = match ShimEnv::parse(&|k| std::env::var(k).ok()) {
        Ok(e) => e,
        Err(e) => return e.into(),
    };
    for w in &env.warnings {
        log::warn!("{w}");
    }
    let Some(located) = locate(&env, &args) else {
        return exec(&env.docker, &args);
    };
    let verb = located.verb.as_deref().unwrap_or_default();
    if verb == "version" {
        println!("NVIDIA Docker: {}\n", env!("CARGO_PKG_VERSION"));
    }
    let Some(image_at) = located.image else {
        return exec(&env.docker, &args);
    };
    match prepare(&env, &args, &located, image_at) {
        Ok(final_args) => exec(&env.docker, &final_args),
        Err(e) => e,
    }
}

fn prepare(
    env: &ShimEnv,
    args: &[String],
    located: &Located,
    image_at: usize,
) -> Result<Vec<String>, ShimError> {
    let image = &args[image_at];
    let host =
        args::global_host(args, located.command).or_else(|| std::env::var("DOCKER_HOST").ok());
    let engine = Engine::new(Endpoint::docker(host.as_deref()))?;
    let config = match engine.image(image)? {
        Some(c) => c,
        None => {
            pull(&env.docker, image)?;
            engine.image(image)?.unwrap_or_default()
        }
    };
    if !inject::is_gpu_image(&config) {
        return Ok(args.to_vec());
    }
    let opts = gpu_options(env, &engine, &config)?;
    // Before a `--` that ends docker's flags, else right before the image.
    let at = if image_at > 0 && args[image_at - 1] == "--" {
        image_at - 1
    } else {
        image_at
    };
    let mut out = Vec::with_capacity(args.len() + opts.len());
    out.extend_from_slice(&args[..at]);
    out.extend(opts);
    out.extend_from_slice(&args[at..]);
    Ok(out)
}
