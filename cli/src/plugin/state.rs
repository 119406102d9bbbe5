//! The daemon's shared state.
//!
//! Info bodies (`/gpu/info[/json]`, `/mesos/cli`, the default `/docker/cli`)
//! are rendered once per inventory; status is live. The inventory is
//! re-read periodically and on a volume request for another driver version,
//! so a driver upgrade is picked up without a restart (v1 needed one,
//! docs/v1.md §7).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use hook::config::HookConfig;
use nvml_wrapper::Nvml;
use rules::Inventory;

use crate::host::{self, HostError};
use crate::v1::cli_options::{self, DockerCli};
use crate::v1::info::{self, GpuInfo};
use crate::v1::nvml::{self, NvmlQueryError};
use crate::v1::{cuda, mesos, render_json, render_text};

use super::volumes_store::{VolumeError, VolumeStore};

/// Command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOptions {
    /// `-l`: the REST API address.
    pub listen: String,
    /// `-s`: the directory of `nvidia-docker.sock`.
    pub socket_dir: PathBuf,
    /// `-d`: the volumes' directory.
    pub volume_dir: PathBuf,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The host.
    #[error(transparent)]
    Host(#[from] HostError),
    /// NVML.
    #[error(transparent)]
    Nvml(#[from] NvmlQueryError),
    /// The volumes' directory (`-d`) cannot be created or opened.
    #[error(transparent)]
    Volumes(#[from] VolumeError),
    /// JSON encoding.
    #[error("could not encode {what}")]
    Encode {
        /// What.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// One inventory and everything derived from it.
pub struct Snapshot {
    /// The inventory.
    pub inv: Inventory,
    /// `/gpu/info`'s data.
    pub info: GpuInfo,
    /// `/gpu/info` text.
    pub info_text: Bytes,
    /// `/gpu/info/json`.
    pub info_json: Bytes,
    /// `/mesos/cli`.
    pub mesos: Bytes,
    /// `/docker/cli` without a query (all devices, all volumes): text.
    pub cli_text: Bytes,
    /// The same, JSON.
    pub cli_json: Bytes,
    /// NVML, loaded from this driver's library.
    pub nvml: Arc<Nvml>,
}

impl Snapshot {
    /// Loads NVML for `inv` and renders the info bodies.
    pub fn build(config: &HookConfig, inv: Inventory) -> Result<Snapshot, StateError> {
        let nvml = nvml::open(&host::nvml_lib(config, &inv))?;
        let mut facts = nvml::facts(&nvml, &inv)?;
        cuda::fill(&mut facts, &inv, &host::cuda_lib(config, &inv));
        let info = info::build(&inv, &facts);
        let info_json = render_json::to_go_json(&info).map_err(|source| StateError::Encode {
            what: "/gpu/info/json",
            source,
        })?;
        let mesos = mesos::render(&info, &info_json);
        let cli = cli_options::docker_cli(&inv, None, None, &config.rules, &config.paths.dev_root)
            .unwrap_or_else(|_| DockerCli {
                volume_driver: cli_options::VOLUME_DRIVER.to_owned(),
                volumes: Vec::new(),
                devices: Vec::new(),
            });
        let cli_json = render_json::to_go_json(&cli).map_err(|source| StateError::Encode {
            what: "/docker/cli/json",
            source,
        })?;
        Ok(Snapshot {
            info_text: Bytes::from(render_text::info(&info)),
            info_json: Bytes::from(info_json),
            mesos: Bytes::from(mesos),
            cli_text: Bytes::from(cli_options::text(&cli)),
            cli_json: Bytes::from(cli_json),
            info,
            inv,
            nvml: Arc::new(nvml),
        })
    }
}

/// The daemon's state, shared by every connection.
pub struct State {
    /// The configuration.
    pub config: HookConfig,
    /// The command line.
    pub options: PluginOptions,
    /// The driver volumes.
    pub volumes: VolumeStore,
    snapshot: RwLock<Arc<Snapshot>>,
    refresh_lock: Mutex<()>,
}

impl State {
    /// The state around a first snapshot, with the volumes' directory
    /// created when missing and held ([`VolumeStore::open`]).
    pub fn new(
        config: HookConfig,
        options: PluginOptions,
        snapshot: Snapshot,
    ) -> Result<State, StateError> {
        Ok(State {
            volumes: VolumeStore::open(options.volume_dir.clone())?,
            config,
            options,
            snapshot: RwLock::new(Arc::new(snapshot)),
            refresh_lock: Mutex::new(()),
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the inventory; when it changed (a driver upgrade, a GPU
    /// added), builds a new snapshot. Returns true when it changed.
    /// Blocking: call from a blocking thread.
    pub fn refresh(&self) -> Result<bool, StateError> {
        let _one_at_a_time = self.refresh_lock.lock();
        let inv = host::load_inventory(&self.config)?;
        if inv == self.snapshot().inv {
            return Ok(false);
        }
        if let Some(w) = hook::diagnose::no_gpu_warning(&self.config.paths, &inv) {
            log::warn!("{w}");
        }
        let from = self.snapshot().inv.driver_version.to_string();
        let snap = Snapshot::build(&self.config, inv)?;
        log::info!(
            "Inventory changed (driver {from} -> {}): serving the new one",
            snap.inv.driver_version
        );
        match self.snapshot.write() {
            Ok(mut s) => *s = Arc::new(snap),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(snap),
        }
        Ok(true)
    }
}
