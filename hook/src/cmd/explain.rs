//! `nvidia-docker-hook explain [BUNDLE] [--env K=V]... [--annotation K=V]...
//! [--image-label K=V]... [--rootfs DIR] [--privileged] [--json]`: what the
//! prestart hook would do for a container, touching nothing
//! ([`hook::explain`]).
//!
//! A bundle directory gives everything its `config.json` says (environment,
//! annotations, privilege, root); the flags add to it or stand alone. Image
//! labels are what a runtime records as annotations, so they go under the
//! container's own annotations. Exit codes are the hook's: 0, 3 refused
//! (the rules' line on stderr), 1 anything else.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use hook::config::HookConfig;
use hook::container::Bundle;
use hook::explain::{self, ContainerInput, Outcome, Style};
use hook::state::State;
use rules::Env;

/// Show what a container would get, and why, without touching anything.
#[derive(Debug, Args, Default)]
#[command(
    after_help = "Exit status: 0 a plan (or nothing to do), 3 refused (the hook's one \
    line on stderr), 1 the host could not be read, 2 usage.\n\nExamples:\n  \
    nvidia-docker-hook explain /run/containerd/.../bundle\n  \
    nvidia-docker-hook explain --env NVIDIA_VISIBLE_DEVICES=0 --env NVIDIA_DRIVER_CAPABILITIES=compute,utility\n  \
    nvidia-docker-hook explain --image-label com.nvidia.volumes.needed=nvidia_driver --privileged --json"
)]
pub struct ExplainArgs {
    /// An OCI bundle directory (its config.json); optional.
    #[arg(value_name = "BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// A variable of the container's environment (added; the last wins).
    #[arg(long = "env", short = 'e', value_name = "K=V", value_parser = key_value)]
    pub env: Vec<(String, String)>,
    /// An annotation of the container.
    #[arg(long = "annotation", value_name = "K=V", value_parser = key_value)]
    pub annotations: Vec<(String, String)>,
    /// A label of the image (recorded as an annotation; the container's own
    /// annotations win).
    #[arg(long = "image-label", value_name = "K=V", value_parser = key_value)]
    pub image_labels: Vec<(String, String)>,
    /// The container's root file system (flavour and CUDA compat library).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// The container has CAP_SYS_ADMIN in its bounding set.
    #[arg(long)]
    pub privileged: bool,
    /// Print the plan as JSON (what the hook applies) instead of text.
    #[arg(long)]
    pub json: bool,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// The container as the flags and the bundle describe it.
pub fn input(args: &ExplainArgs) -> anyhow::Result<ContainerInput> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut annotations: BTreeMap<String, String> = args.image_labels.iter().cloned().collect();
    let mut privileged = args.privileged;
    let mut rootfs = args.rootfs.clone();
    if let Some(dir) = &args.bundle {
        let state = State::parse(serde_json::json!({ "bundle": dir }).to_string().as_bytes())?;
        let bundle = Bundle::load(&state)?;
        env.extend(bundle.env.iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
        annotations.extend(bundle.annotations.clone());
        privileged |= bundle.privileged;
        rootfs.get_or_insert(bundle.rootfs.clone());
    }
    env.extend(args.env.iter().cloned());
    annotations.extend(args.annotations.iter().cloned());
    Ok(ContainerInput {
        env: Env::from_pairs(env),
        annotations,
        privileged,
        rootfs,
    })
}

/// Runs the subcommand: see the module docs.
pub fn run(config: Option<&Path>, args: &ExplainArgs) -> anyhow::Result<()> {
    let cfg = HookConfig::load(config)?;
    let input = input(args)?;
    let e = explain::decide(&cfg, input)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        if let Outcome::Plan(plan) = &e.outcome {
            serde_json::to_writer_pretty(&mut stdout, plan)?;
            writeln!(stdout)?;
        } else if !matches!(e.outcome, Outcome::Refused(_)) {
            // Nothing to apply: the empty plan's one field that matters.
            writeln!(stdout, "{{\"gpu_container\": false}}")?;
        }
    } else {
        stdout.write_all(explain::render_text(&e, Style::for_stdout()).as_bytes())?;
    }
    stdout.flush().context("cannot write to stdout")?;
    match e.outcome {
        Outcome::Refused(refusal) => Err(refusal.into()),
        _ => Ok(()),
    }
}
