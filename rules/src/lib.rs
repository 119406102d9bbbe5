//! Pure policy for GPU containers.
//!
//! `rules` decides everything and touches nothing: no file, no syscall, no NVML,
//! no environment. The hook, the runc wrapper, the CDI generator, `cli-options`
//! and the REST API all call it, so they can never disagree.
//!
//! The pipeline is *inventory → request → plan*:
//!
//! - [`Inventory`]: what a host has (driver and CUDA versions, GPUs, device
//!   majors, driver files). Discovered and cached by the hook.
//! - [`Request`]: what a container asks for, parsed once from its environment
//!   and annotations ([`Request::from_container`]) or from v1's inputs
//!   ([`Request::from_nv_gpu`], [`Request::from_v1_query`]).
//! - [`plan()`]: device nodes, cgroup rules, mounts, symlinks, linker-cache
//!   directories, `/proc` masking, as a [`Plan`], or a [`Refusal`] that renders
//!   as one line saying what was asked, what the host has and what to do.
//!
//! Supporting pieces: [`Version`] (NVIDIA's version numbers), [`CudaTable`]
//! (the CUDA to driver table, as data), the `NVIDIA_REQUIRE_*` language
//! ([`Requirement`]), [`Capabilities`], device selection ([`DeviceSelector`]),
//! the driver file lists ([`files`]), forward compatibility ([`compat`]) and
//! v1's driver volume ([`v1`]).
//!
//! What this crate must never do: read a file, the environment or the clock,
//! start a process, open a socket, call NVML. `clippy.toml` bans the std
//! entry points and the workspace test `tests/tests/layering.rs` checks that no dependency does I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod capability;
pub mod compat;
pub mod config;
pub mod cuda_table;
pub mod device;
pub mod extra_devices;
pub mod files;
pub mod inventory;
pub mod loader_files;
pub mod path;
pub mod plan;
pub mod refusal;
pub mod request;
pub mod require;
pub mod sources;
pub mod v1;
pub mod version;

pub use capability::{Capabilities, Capability};
pub use compat::{forward_compat, CompatDecision, CompatLib, CompatNote};
pub use config::{Config, CudaCompatMode, RuntimeMode};
pub use cuda_table::{CudaTable, TableError};
pub use device::{DeviceId, DeviceRequest, DeviceSelector, DeviceSource, PciBusId, Selection};
pub use files::{ElfClass, FileKind, Machine, RootfsFlavor};
pub use inventory::{DeviceInfo, DriverFile, DrmNode, Gpu, Inventory, MigDevice};
pub use path::{ContainerPath, FileName, HostPath};
pub use plan::DevLink;
pub use plan::LdCacheEntry;
pub use plan::{
    plan, AppProfile, DeviceNode, DeviceRule, MountFlags, MountKind, MountOp, NodeRole, NodeType,
    Plan, PlannedGpu, PlannedMig, ProcMask, Symlink, V1VolumeRef,
};
pub use refusal::{CudaTooNew, HostFact, Refusal};
pub use request::{is_privileged, is_v1_gpu_image, Delivery, Env, Request, Warning};
pub use require::{Condition, Property, Requirement};
pub use version::Version;
