//! A plan written into an OCI runtime spec (`config.json`), edited as a
//! JSON value so that every field this crate does not know survives.
//!
//! - `linux.devices`: each planned node (`path`, `type`, `major`, `minor`,
//!   `fileMode`, `uid`/`gid` 0); an entry for the same path is replaced.
//! - `linux.resources.devices`: exactly the plan's allow rules (`rw`),
//!   appended after the runtime's own (runc's default deny comes first, so
//!   they take effect); a rule already present is not repeated.
//! - `process.env`: the plan's additions, replacing the same name.
//! - `hooks.createRuntime`: one entry for the hook's `create-container
//!   --enter` mode ([`HookEntry`]): the driver's bind mounts (`--mount`)
//!   and what a spec cannot do. Why the mounts are not `mounts` entries:
//!   runc 1.1 spends about 2.4 ms of CPU and 2 ms of wall time on the 24
//!   driver bind mounts of an 8-GPU plan (each resolved, bound, remounted
//!   for its flags and made private, from Go), while the step makes them
//!   with the prestart hook's code: a clone, an attribute change and a
//!   move each, into the root it holds (`docs/start-cost.md`). The device
//!   nodes and cgroup rules stay in the spec: they are what the runtime,
//!   and systemd after a `daemon-reload`, must know. Why not
//!   `createContainer`, where CDI puts its entry: runc runs those from
//!   the container's init process, a Go program limited to one thread, and
//!   an exec from there cost 1.5 ms more per start than the same exec from
//!   `createRuntime` (median of 100 same-run rounds, `docs/start-cost.md`).
//!   runc and crun run `createRuntime` entries at the same point as
//!   `prestart` ones: after the container's mounts, before `pivot_root`.
//! - `annotations`: [`ANNOTATION_PLAN`] = [`PLAN_APPLIED`], which tells a
//!   prestart hook registered as well (`docker run --gpus`) that the
//!   container already has its GPUs.
#![forbid(unsafe_code)]

use rules::Plan;
use serde_json::{json, Map, Value};

/// The annotation the wrapper sets on a spec it gave GPUs to.
pub const ANNOTATION_PLAN: &str = "nvidia-docker.plan";
/// Its value.
pub const PLAN_APPLIED: &str = "applied";

/// Seconds a hook entry may run.
pub const HOOK_TIMEOUT: u32 = 30;

/// A spec that cannot hold the edits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecEditError {
    /// A field the edit goes into has another JSON type.
    #[error("{field} is not a JSON {expected}")]
    Shape {
        /// The field, dotted (`linux.resources.devices`).
        field: &'static str,
        /// `object` or `array`.
        expected: &'static str,
    },
}

/// A runtime-spec hook entry (`path`, `args`, `env`, `timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEntry {
    /// Absolute path of the hook binary.
    pub path: String,
    /// The whole argv, argv\[0\] included.
    pub args: Vec<String>,
    /// The hook's whole environment (`K=V`): never inherited.
    pub env: Vec<String>,
    /// Seconds.
    pub timeout: u32,
}

impl HookEntry {
    /// The JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "args": self.args,
            "env": self.env,
            "timeout": self.timeout,
        })
    }
}

fn object<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<&'a mut Map<String, Value>, SpecEditError> {
    let v = parent
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().ok_or(SpecEditError::Shape {
        field,
        expected: "object",
    })
}

fn array<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<&'a mut Vec<Value>, SpecEditError> {
    let v = parent
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if v.is_null() {
        *v = Value::Array(Vec::new());
    }
    v.as_array_mut().ok_or(SpecEditError::Shape {
        field,
        expected: "array",
    })
}

/// Writes `plan` into `spec` (see the module docs); `hook` is the
/// `createRuntime` entry, `None` when the plan needs none.
pub fn apply_plan(
    spec: &mut Value,
    plan: &Plan,
    hook: Option<&HookEntry>,
) -> Result<(), SpecEditError> {
    let root = spec.as_object_mut().ok_or(SpecEditError::Shape {
        field: "the spec",
        expected: "object",
    })?;

    {
        let linux = object(root, "linux", "linux")?;
        let devices = array(linux, "devices", "linux.devices")?;
        for n in &plan.device_nodes {
            devices.retain(|d| d.get("path").and_then(Value::as_str) != Some(n.path.as_str()));
            devices.push(json!({
                "path": n.path.as_str(),
                "type": n.kind.as_str(),
                "major": n.major,
                "minor": n.minor,
                "fileMode": n.mode,
                "uid": 0,
                "gid": 0,
            }));
        }
        if !plan.device_rules.is_empty() {
            let resources = object(linux, "resources", "linux.resources")?;
            let rules = array(resources, "devices", "linux.resources.devices")?;
            for r in &plan.device_rules {
                let rule = json!({
                    "allow": r.allow,
                    "type": r.kind.as_str(),
                    "major": r.major,
                    "minor": r.minor,
                    "access": r.access,
                });
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }

    if !plan.env.is_empty() {
        let process = object(root, "process", "process")?;
        let env = array(process, "env", "process.env")?;
        for (k, v) in &plan.env {
            let prefix = format!("{k}=");
            env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
            env.push(Value::String(format!("{k}={v}")));
        }
    }

    if let Some(hook) = hook {
        let hooks = object(root, "hooks", "hooks")?;
        array(hooks, "createRuntime", "hooks.createRuntime")?.push(hook.to_json());
    }

    object(root, "annotations", "annotations")?.insert(
        ANNOTATION_PLAN.to_owned(),
        Value::String(PLAN_APPLIED.to_owned()),
    );
    Ok(())
}
