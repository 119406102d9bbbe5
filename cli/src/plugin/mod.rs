//! `nvidia-docker-plugin` (docs/v1.md §2, §3): the REST info API
//! and the Docker volume plugin serving `nvidia_driver_<version>`.
//!
//! - [`state`]: the shared state (`Arc<State>`): configuration, the current
//!   inventory snapshot with its pre-rendered info bodies, the NVML handle.
//! - [`rest`]: the REST routes; [`volume`]: the volume plugin protocol;
//!   [`volumes_store`]: the volumes on disk.
//! - [`server`]: both listeners, graceful stop.

pub mod rest;
pub mod server;
pub mod state;
pub mod volume;
pub mod volumes_store;

use std::path::Path;
use std::sync::Arc;

use state::{PluginOptions, Snapshot, State, StateError};

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The configuration, inventory or NVML at start-up.
    #[error(transparent)]
    State(#[from] StateError),
    /// Serving.
    #[error(transparent)]
    Server(#[from] server::ServerError),
    /// The async runtime.
    #[error("could not start the runtime")]
    Runtime(#[source] std::io::Error),
}

/// Loads `nvidia_uvm` as v1 did (`nvidia-modprobe -u -c=0`), when
/// `nvidia-modprobe` is installed; a failure is logged, not fatal (the
/// hook and the devices work without UVM for non-compute uses).
fn load_uvm() {
    match std::process::Command::new("nvidia-modprobe")
        .args(["-u", "-c=0"])
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => log::warn!("nvidia-modprobe -u -c=0: {s}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::debug!("nvidia-modprobe not installed")
        }
        Err(e) => log::warn!("nvidia-modprobe: {e}"),
    }
}

/// Runs the daemon until SIGINT/SIGTERM.
pub fn run(config_file: Option<&Path>, options: PluginOptions) -> Result<(), PluginError> {
    log::info!("Loading NVIDIA unified memory");
    load_uvm();
    log::info!("Loading NVIDIA management library");
    let config = crate::host::load_config(config_file).map_err(StateError::from)?;
    log::info!("Discovering GPU devices");
    let inv = crate::host::load_inventory(&config).map_err(StateError::from)?;
    if let Some(w) = hook::diagnose::no_gpu_warning(&config.paths, &inv) {
        log::warn!("{w}");
    }
    let snapshot = Snapshot::build(&config, inv)?;
    log::info!("Provisioning volumes at {}", options.volume_dir.display());
    let state = Arc::new(State::new(config, options.clone(), snapshot)?);

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(PluginError::Runtime)?;
    rt.block_on(async move {
        let listeners = server::bind(&options.listen, &options.socket_dir).await?;
        log::info!("Serving plugin API at {}", options.socket_dir.display());
        log::info!("Serving remote API at {}", options.listen);
        server::serve(state, listeners).await?;
        log::info!("Successfully terminated");
        Ok(())
    })
}
