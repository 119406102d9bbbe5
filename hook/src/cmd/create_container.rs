//! `nvidia-docker-hook create-container [FIX-UPS]`: the OCI
//! `createContainer` hook the runc wrapper and the CDI spec register, for
//! what a spec cannot do: symlinks in the image, `/proc/driver/nvidia`
//! masking, the graphics application profile and the linker cache.
//!
//! As a `createContainer` entry (the CDI spec's), the runtime runs it
//! already inside the container's mount namespace, before `pivot_root`, with
//! the container's root at the bundle's `root.path` (crun: the state's
//! `root`). With `--enter` (the runc wrapper's `createRuntime` entry) the
//! runtime runs it in its own namespaces, and it enters the container's
//! through the state's `pid` as the prestart hook does
//! (`hook::apply::apply_in_place`, or the forked `hook::apply::apply_within`
//! followed by `ldconfig` when the cache needs the image's files scanned).
//! Everything to do is on the command line (`hook::runtime::fixups`), so no
//! inventory, plan or environment of the container is read; the device
//! nodes and cgroup rules are already the runtime's work, and so are the
//! mounts of a CDI spec (the runc wrapper's come as `--mount`, which needs
//! `--enter`: their sources are host paths). The steps
//! are the prestart hook's own (`hook::apply::apply_in_root` on a held root
//! descriptor; the linker cache decided by
//! `hook::ldcache_write::in_process_entries` and written by
//! `hook::ldcache_write::update` from the `--ld-cache` entries, or, for
//! `linker-cache = "ldconfig"` and directories no entry covers,
//! `hook::ldconfig::refresh` with the host's static `ldconfig`). Without
//! `--enter` there is no `setns`: this process is in the container's
//! namespaces already, and the `ldconfig` child joins its own mount
//! namespace, found through `/proc/self`.
#![forbid(unsafe_code)]

use std::path::Path;

use anyhow::Context;
use clap::Args;
use hook::apply::{self, caps, root::ContainerRoot, Target};
use hook::config::HookConfig;
use hook::container::Bundle;
use hook::deadline::Deadline;
use hook::runtime::fixups::Fixups;
use hook::state::State;
use hook::{ldcache_write, ldconfig};

/// Finish a container whose spec already has its GPUs (OCI createContainer,
/// or createRuntime with --enter).
#[derive(Debug, Args)]
pub struct CreateContainerArgs {
    /// What to do, as the runc wrapper or the CDI spec wrote it: --link
    /// TARGET::LINK, --ldconfig-dir DIR, --mask-proc [--proc-gpu BUS]
    /// [--mig-access PATH], --app-profile [--app-profile-minor N], --dev-link
    /// NODE::LINK, --mount KIND[,FLAG...]:SOURCE::DESTINATION (with --enter),
    /// --enter, --debug.
    #[arg(num_args = 0.., allow_hyphen_values = true, trailing_var_arg = true)]
    pub fixups: Vec<String>,
    /// `-v` given to the binary (set by `main`, see `hook::about`).
    #[arg(skip)]
    pub verbose: u8,
}

/// Runs the subcommand: see the module docs.
pub fn run(config: Option<&Path>, args: &CreateContainerArgs) -> anyhow::Result<()> {
    let mut clock = super::prestart::Clock::start();
    let deadline = Deadline::from(clock.start);
    let fixups = Fixups::parse(&args.fixups)?;
    let state = State::read(std::io::stdin().lock())?;
    if fixups.is_empty() {
        return Ok(());
    }
    let cfg = HookConfig::load(config)?;
    let level = if fixups.debug {
        log::LevelFilter::Debug
    } else {
        hook::about::level(log::LevelFilter::Warn, args.verbose)
    };
    super::prestart::init_logging(cfg.debug_log.as_deref(), level);
    let bundle = Bundle::load(&state)?;
    caps::keep(caps::Step::Hook)?;
    let mut plan = fixups.to_plan();
    let root = ContainerRoot::open(&bundle.rootfs)?;
    let dirs = cache_dirs(&root, &fixups);
    let entries = ldcache_write::in_process_entries(cfg.linker_cache, &dirs, &fixups.ld_cache);
    clock.lap("read");
    if fixups.enter {
        // Run by the runtime from its own namespaces (`createRuntime`):
        // enter the container's, as the prestart hook does.
        drop(root);
        let pid = state.require_pid()?;
        let target = Target {
            pid,
            rootfs: bundle.rootfs.clone(),
        };
        let limit = deadline.limit("applying the GPU plan", apply::APPLY_TIMEOUT)?;
        match entries {
            Some(entries) => {
                // The last step: this process enters the container itself.
                plan.ld_cache = entries;
                apply::apply_in_place(&cfg.paths, &target, &plan, limit)?;
                clock.lap("apply");
            }
            None => {
                plan.ld_cache = Vec::new();
                apply::apply_within(&cfg.paths, &target, &plan, limit)?;
                clock.lap("apply");
                let limit = deadline.limit("the linker cache", ldconfig::TIMEOUT)?;
                ldconfig::refresh_within(&cfg.paths, pid, &bundle.rootfs, &dirs, limit)?;
                clock.lap("linker-cache");
            }
        }
        clock.total();
        log::debug!("container {}: fix-ups done", state.id);
        return Ok(());
    }
    if !plan.symlinks.is_empty()
        || plan.proc_mask.is_some()
        || plan.app_profile.is_some()
        || !plan.dev_links.is_empty()
    {
        let prepared = apply::Prepared::collect(&cfg.paths, &plan, false)?;
        apply::apply_in_root(&root, &plan, prepared)?;
    }
    clock.lap("apply");
    match entries {
        // Already in the container's namespaces (user namespace included):
        // the cache written here is the container's file.
        Some(entries) if !entries.is_empty() => ldcache_write::update(&root, &entries)?,
        Some(_) => {}
        None => {
            // This process is in the container's mount namespace already; its
            // pid as the host's procfs numbers it names that namespace.
            let me = std::fs::read_link(cfg.paths.procfs.join("self"))
                .ok()
                .and_then(|p| p.to_str().and_then(|s| s.parse::<i32>().ok()))
                .context(
                    "cannot read /proc/self: the container's mount namespace cannot be named",
                )?;
            ldconfig::refresh(&cfg.paths, me, &bundle.rootfs, &dirs)?;
        }
    }
    clock.lap("linker-cache");
    clock.total();
    log::debug!("container {}: fix-ups done", state.id);
    Ok(())
}

/// The directories for the linker cache: those of `fixups` the image has or
/// a `--mount` of this step makes (a CDI spec lists every flavour's, and
/// `ldconfig` fails on a missing one), with the image's compat directory
/// first when it is to be used.
fn cache_dirs(root: &ContainerRoot, fixups: &Fixups) -> Vec<rules::ContainerPath> {
    let mut dirs: Vec<_> = fixups
        .ldconfig_dirs
        .iter()
        .filter(|d| {
            let mounted = fixups.mounts.iter().any(|m| {
                m.destination
                    .as_str()
                    .strip_prefix(d.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            });
            mounted
                || match root.exists(d) {
                    Ok(found) => found,
                    Err(e) => {
                        log::debug!("linker cache directory {d}: {e}");
                        false
                    }
                }
        })
        .cloned()
        .collect();
    if let Some(driver) = &fixups.cuda_compat_host_driver {
        if let Some(dir) = compat_dir(root, driver) {
            dirs.retain(|d| *d != dir);
            dirs.insert(0, dir);
        }
    }
    dirs
}

/// The image's compat directory when its library is to be used with the
/// host `driver` (`rules::compat::forward_compat`, as the prestart hook
/// decides through its plan).
fn compat_dir(root: &ContainerRoot, driver: &rules::Version) -> Option<rules::ContainerPath> {
    let lib = hook::compat::find_compat_lib_or_warn(root)?;
    let decision = rules::compat::forward_compat(&lib, Some(driver), None);
    log::debug!(
        "CUDA forward compatibility: libcuda.so.{} in the image, host driver {driver}: {decision:?}",
        lib.version
    );
    (decision == rules::CompatDecision::Use).then(rules::compat::compat_dir)
}
