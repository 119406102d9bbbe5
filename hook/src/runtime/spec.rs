//! A plan written into an OCI runtime spec (`config.json`), edited as a
//! JSON value so that every field this crate does not know survives.
//!
//! - `linux.devices`: each planned node (`path`, `type`, `major`, `minor`,
//!   `fileMode`, `uid`/`gid` 0); an entry for the same path is replaced.
//! - `linux.resources.devices`: exactly the plan's allow rules (`rw`),
//!   appended after the runtime's own (runc's default deny comes first, so
//!   they take effect); a rule already present is not repeated.
//! - `mounts`: each planned bind mount, `type` `bind`, the host path as
//!   `source` (a simulated driver root is part of it), options `rbind`,
//!   `rprivate` and the plan's flags (`ro`, `nosuid`, `nodev`, `noexec`);
//!   a mount on the same destination is replaced (CDI's rule).
//! - `process.env`: the plan's additions, replacing the same name.
//! - `hooks.createRuntime`: one entry for the hook's `create-container
//!   --enter` mode ([`HookEntry`]), when there is something a spec cannot
//!   do. Why not `createContainer`, where CDI puts it: runc runs those from
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

/// The OCI mount entry of a planned bind mount.
pub fn mount_json(m: &rules::MountOp) -> Value {
    let mut options = vec!["rbind", "rprivate"];
    options.extend(m.flags.options());
    json!({
        "destination": m.destination.as_str(),
        "type": "bind",
        "source": m.source.as_str(),
        "options": options,
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

    {
        let mounts = array(root, "mounts", "mounts")?;
        for m in &plan.mounts {
            mounts.retain(|x| {
                x.get("destination").and_then(Value::as_str) != Some(m.destination.as_str())
            });
            mounts.push(mount_json(m));
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
