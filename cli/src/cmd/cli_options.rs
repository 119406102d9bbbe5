//! `nvidia-docker cli-options`: what `GET /docker/cli` would answer,
//! computed locally from the inventory (no daemon), for scripts:
//! `docker run $(nvidia-docker cli-options) nvidia/cuda nvidia-smi`.
//!
//! `--dev` (else `NV_GPU`, spaces and/or commas) and `--vol` as the API's
//! `dev=`/`vol=`; `--json` prints `/docker/cli/json`; `--mesos` prints
//! `/mesos/cli` (it needs NVML for the info it embeds). A refusal prints the
//! API's 400 message and exits 1.

use clap::Args;

use crate::host::{self, HostError};
use crate::v1::cli_options::{docker_cli, text};
use crate::v1::nvml::{self, NvmlQueryError};
use crate::v1::{cuda, info, mesos, render_json};

/// Print the docker options that give a container the GPUs.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    docker run $(nvidia-docker cli-options) nvidia/cuda nvidia-smi\n  \
    NV_GPU=0,1 nvidia-docker cli-options --json\n  \
    nvidia-docker cli-options --mesos")]
pub struct CliOptionsArgs {
    /// GPUs: NVML indexes or UUID prefixes, separated by spaces or commas
    /// (default: NV_GPU, else all).
    #[arg(long)]
    pub dev: Option<String>,
    /// Volumes, separated by spaces (default: all).
    #[arg(long)]
    pub vol: Option<String>,
    /// Print JSON (`/docker/cli/json`).
    #[arg(long, conflicts_with = "mesos")]
    pub json: bool,
    /// Print the Mesos options (`/mesos/cli`).
    #[arg(long)]
    pub mesos: bool,
}

/// Why nothing was printed.
#[derive(Debug, thiserror::Error)]
pub enum CliOptionsError {
    /// The configuration or inventory.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The API's 400 (`invalid device: <id>`, `invalid volume: <name>`).
    #[error(transparent)]
    Refusal(#[from] rules::Refusal),
    /// NVML (`--mesos`).
    #[error(transparent)]
    Nvml(#[from] NvmlQueryError),
    /// JSON encoding.
    #[error("could not encode JSON")]
    Json(#[from] serde_json::Error),
}

/// The bytes to print.
pub fn run(args: &CliOptionsArgs, nv_gpu: Option<&str>) -> Result<Vec<u8>, CliOptionsError> {
    let config = host::load_config(None)?;
    let inv = host::load_inventory(&config)?;
    if args.mesos {
        let nvml = nvml::open(&host::nvml_lib(&config, &inv))?;
        let mut facts = nvml::facts(&nvml, &inv)?;
        cuda::fill(&mut facts, &inv, &host::cuda_lib(&config, &inv));
        let info = info::build(&inv, &facts);
        let json = render_json::to_go_json(&info)?;
        return Ok(mesos::render(&info, &json).into_bytes());
    }
    let dev = args.dev.as_deref().or(nv_gpu).map(|d| d.replace(',', " "));
    let cli = docker_cli(
        &inv,
        dev.as_deref(),
        args.vol.as_deref(),
        &config.rules,
        &config.paths.dev_root,
    )?;
    Ok(if args.json {
        render_json::to_go_json(&cli)?
    } else {
        text(&cli).into_bytes()
    })
}
