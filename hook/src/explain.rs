//! `explain`: what a container would get from the hook, and why, decided
//! exactly as `prestart` decides it but applied nowhere.
//!
//! [`decide`] runs the hook's steps up to the plan: the request from the
//! container's environment, annotations and privilege; the rootfs flavour
//! and the image's CUDA forward-compatibility library when a root is given;
//! the inventory (the snapshot when it is valid, else discovered, and never
//! written); `rules::plan`. [`render_text`] shows the result for people;
//! `--json` callers print the [`Plan`] itself.
//!
//! The text is rendered from the plan's serialized form, so a plan entry
//! this module does not know (a new device kind from another front end's
//! work) is still shown, generically, under its own name.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use rules::{Env, Plan, Refusal, Request, RootfsFlavor};
use serde_json::Value;

use crate::apply::root::{ContainerRoot, RootError};
use crate::config::HookConfig;
use crate::container;
use crate::inventory::{self, InventoryError};
use crate::snapshot;

/// What a container is started with, as far as the hook's decision goes.
#[derive(Debug, Clone, Default)]
pub struct ContainerInput {
    /// `process.env`.
    pub env: Env,
    /// Annotations (image labels as a runtime records them, overlaid by the
    /// container's own annotations).
    pub annotations: BTreeMap<String, String>,
    /// `CAP_SYS_ADMIN` in the bounding set.
    pub privileged: bool,
    /// The root file system, when known: without it the flavour is assumed
    /// and no forward-compatibility library is looked for.
    pub rootfs: Option<PathBuf>,
}

/// Why nothing could be explained (the host, not the container, failed).
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The container root could not be opened.
    #[error("cannot look into the container root {}", path.display())]
    Root {
        /// The root given.
        path: PathBuf,
        /// The cause.
        #[source]
        source: RootError,
    },
    /// Neither the snapshot nor discovery gave an inventory.
    #[error("cannot read what the host has (the inventory)")]
    Inventory(#[source] InventoryError),
}

/// The decision.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Not a GPU container: the hook does nothing.
    NoGpu,
    /// The runc wrapper already wrote the plan into the spec: the hook does
    /// nothing.
    AlreadyApplied,
    /// What the hook applies.
    Plan(Box<Plan>),
    /// The container is refused with this line (the hook exits 3).
    Refused(Refusal),
}

/// A request, where its device request came from, and the decision.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// What was given.
    pub input: ContainerInput,
    /// The request as parsed (absent when parsing refused it).
    pub request: Option<Request>,
    /// Whether the rootfs flavour was looked up (else assumed).
    pub flavor_detected: bool,
    /// The decision.
    pub outcome: Outcome,
}

/// Decides for `input` as the prestart hook would; reads the inventory
/// only for a GPU container and writes nothing.
pub fn decide(cfg: &HookConfig, input: ContainerInput) -> Result<Explanation, ExplainError> {
    let mut explanation = Explanation {
        input,
        request: None,
        flavor_detected: false,
        outcome: Outcome::NoGpu,
    };
    let input = &explanation.input;
    let request = match Request::from_container(
        &input.env,
        &input.annotations,
        input.privileged,
        RootfsFlavor::default(),
        &cfg.rules,
    ) {
        Ok(r) => r,
        Err(refusal) => {
            explanation.outcome = Outcome::Refused(refusal);
            return Ok(explanation);
        }
    };
    if !request.is_gpu() {
        explanation.request = Some(request);
        return Ok(explanation);
    }
    if input
        .annotations
        .get(crate::runtime::spec::ANNOTATION_PLAN)
        .map(String::as_str)
        == Some(crate::runtime::spec::PLAN_APPLIED)
    {
        explanation.request = Some(request);
        explanation.outcome = Outcome::AlreadyApplied;
        return Ok(explanation);
    }
    let request = match &input.rootfs {
        Some(path) => {
            let root = ContainerRoot::open(path).map_err(|source| ExplainError::Root {
                path: path.clone(),
                source,
            })?;
            explanation.flavor_detected = true;
            container::complete_request(request, &root, &cfg.rules)
        }
        None => request,
    };
    let inv = load_inventory(cfg).map_err(ExplainError::Inventory)?;
    explanation.outcome = match rules::plan(&inv, &request, &cfg.rules) {
        Ok(plan) => Outcome::Plan(Box::new(plan)),
        Err(refusal) => Outcome::Refused(refusal),
    };
    explanation.request = Some(request);
    Ok(explanation)
}

/// The snapshot when valid, else a discovery that writes nothing.
fn load_inventory(cfg: &HookConfig) -> Result<rules::Inventory, InventoryError> {
    match snapshot::load(cfg) {
        Ok(inv) => Ok(inv),
        Err(why) => {
            log::debug!("snapshot: {why}; discovering without writing it");
            inventory::discover(cfg)
        }
    }
}

/// Terminal styling: plain unless asked for colour.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
}

impl Style {
    /// Colour when `stdout` is a terminal and `NO_COLOR` is unset.
    pub fn for_stdout() -> Style {
        use std::io::IsTerminal;
        Style {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn heading(self, text: &str) -> String {
        self.paint("1", text)
    }

    fn bad(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    fn good(self, text: &str) -> String {
        self.paint("32", text)
    }
}

/// Variables and annotations that can take part in the decision: shown
/// with the one that chose the devices marked.
fn relevant(key: &str) -> bool {
    key.starts_with("NVIDIA_")
        || key.starts_with("NV_")
        || key == "CUDA_VERSION"
        || key.starts_with("DOCKER_RESOURCE_")
        || key.to_ascii_lowercase().contains("nvidia")
        || key.starts_with("cdi.k8s.io/")
}

/// The text for people: inputs, request, then the plan grouped by kind, or
/// the refusal's line.
pub fn render_text(e: &Explanation, style: Style) -> String {
    let mut out = String::new();
    let request = e.request.as_ref();
    let winner = request.map(|r| r.device_source.to_string());
    let won = |name: &str| {
        winner
            .as_deref()
            .is_some_and(|w| w == name || w.ends_with(&format!(" {name}")))
    };

    let _ = writeln!(out, "{}", style.heading("Inputs"));
    let mut rows = Vec::new();
    for (k, v) in e.input.env.iter().filter(|(k, _)| relevant(k)) {
        let mark = if won(k) {
            "  <- selects the devices"
        } else {
            ""
        };
        rows.push((format!("env {k}"), format!("{v}{mark}")));
    }
    for (k, v) in e.input.annotations.iter().filter(|(k, _)| relevant(k)) {
        let mark = if won(k) {
            "  <- selects the devices"
        } else {
            ""
        };
        rows.push((format!("annotation {k}"), format!("{v}{mark}")));
    }
    rows.push(("privileged".into(), e.input.privileged.to_string()));
    rows.push((
        "rootfs".into(),
        match &e.input.rootfs {
            Some(p) => p.display().to_string(),
            None => "(not given: flavour assumed, no forward-compat lookup)".into(),
        },
    ));
    push_rows(&mut out, &rows);

    if let Some(r) = request {
        let _ = writeln!(out, "\n{}", style.heading("Request"));
        let mut rows = vec![
            ("devices".to_owned(), compact(&to_value(&r.devices))),
            ("chosen by".to_owned(), r.device_source.to_string()),
        ];
        if r.is_gpu() {
            rows.push(("capabilities".into(), compact(&to_value(&r.capabilities))));
            let reqs: Vec<String> = r
                .requirements
                .iter()
                .map(|q| compact(&to_value(q)))
                .collect();
            rows.push((
                "requirements".into(),
                if reqs.is_empty() {
                    "none".into()
                } else {
                    reqs.join("; ")
                },
            ));
            if let Some(label) = &r.v1_cuda_label {
                rows.push(("v1 CUDA label".into(), label.text.clone()));
            }
            rows.push((
                "rootfs flavour".into(),
                format!(
                    "{}{}",
                    compact(&to_value(&r.rootfs)),
                    if e.flavor_detected { "" } else { " (assumed)" }
                ),
            ));
            if let Some(c) = &r.compat {
                rows.push((
                    "image compat lib".into(),
                    format!("libcuda.so.{}", c.version),
                ));
            }
        }
        for w in &r.warnings {
            rows.push(("warning".into(), compact(&to_value(w))));
        }
        push_rows(&mut out, &rows);
    }

    let _ = writeln!(out, "\n{}", style.heading("Decision"));
    match &e.outcome {
        Outcome::NoGpu => {
            let _ = writeln!(out, "  not a GPU container: the hook does nothing");
        }
        Outcome::AlreadyApplied => {
            let _ = writeln!(
                out,
                "  the runc wrapper already wrote the plan into the spec: the hook does nothing"
            );
        }
        Outcome::Refused(refusal) => {
            let _ = writeln!(out, "  {} {refusal}", style.bad("refused:"));
        }
        Outcome::Plan(plan) => {
            let _ = writeln!(
                out,
                "  {}",
                style.good("GPU container: the hook applies the plan below")
            );
            render_plan(&mut out, plan, style);
        }
    }
    out
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Two aligned columns, indented.
fn push_rows(out: &mut String, rows: &[(String, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
}

/// Plan fields [`render_plan`] shows in its own words, in this order.
const KNOWN: &[&str] = &[
    "gpu_container",
    "driver_version",
    "cuda_version",
    "capabilities",
    "cuda_compat",
    "gpus",
    "device_nodes",
    "device_rules",
    "mounts",
    "symlinks",
    "env",
    "ldconfig_dirs",
    "proc_mask",
    "app_profile",
    "v1_volumes",
];

/// The plan grouped by kind: the fields this module knows in their own
/// words, then every other field of the serialized plan generically.
fn render_plan(out: &mut String, plan: &Plan, style: Style) {
    let mut summary = vec![
        ("driver".to_owned(), plan.driver_version.to_string()),
        (
            "CUDA".to_owned(),
            plan.cuda_version
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), ToString::to_string),
        ),
        (
            "capabilities".to_owned(),
            compact(&to_value(&plan.capabilities)),
        ),
    ];
    if let Some(c) = &plan.cuda_compat {
        summary.push(("CUDA compat".into(), compact(&to_value(c))));
    }
    push_rows(out, &summary);

    let section = |out: &mut String, title: &str, lines: Vec<String>| {
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n  {}", style.heading(title));
        for line in lines {
            let _ = writeln!(out, "    {line}");
        }
    };
    section(
        out,
        "GPUs",
        plan.gpus.iter().map(|g| gpu_line(&to_value(g))).collect(),
    );
    section(
        out,
        "Device nodes (created in the container)",
        table(plan.device_nodes.iter().map(|n| {
            vec![
                n.path.to_string(),
                format!("{} {}:{}", n.kind.as_str(), n.major, n.minor),
                format!("{:04o}", n.mode),
                compact(&to_value(&n.role)),
            ]
        })),
    );
    section(
        out,
        "Device cgroup rules (allowed)",
        plan.device_rules.iter().map(ToString::to_string).collect(),
    );
    section(
        out,
        "Mounts (host -> container, options)",
        table(plan.mounts.iter().map(|m| {
            let options = m.flags.options();
            vec![
                m.source.to_string(),
                format!("-> {}", m.destination),
                if options.is_empty() {
                    "rw".into()
                } else {
                    options.join(",")
                },
                compact(&to_value(&m.kind)),
            ]
        })),
    );
    section(
        out,
        "Links",
        plan.symlinks
            .iter()
            .map(|l| format!("{} -> {}", l.link, l.target))
            .collect(),
    );
    section(
        out,
        "Environment (added)",
        plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    );
    if !plan.ldconfig_dirs.is_empty() {
        let mut l = vec!["the hook writes the container's /etc/ld.so.cache for:".to_owned()];
        l.extend(plan.ldconfig_dirs.iter().map(|d| format!("  {d}")));
        section(out, "Linker cache", l);
    }
    if let Some(mask) = &plan.proc_mask {
        let mut l = vec![format!(
            "{} shows only the selected GPUs",
            rules::plan::PROC_DRIVER_DIR
        )];
        l.extend(generic(&to_value(mask)));
        section(out, "Masking", l);
    }
    if let Some(profile) = &plan.app_profile {
        section(out, "Graphics application profile", vec![profile.render()]);
    }
    section(
        out,
        "v1 volumes",
        plan.v1_volumes
            .iter()
            .map(|v| compact(&to_value(v)))
            .collect(),
    );

    // Anything newer than this renderer, under its own name.
    if let Value::Object(fields) = to_value(plan) {
        for (key, value) in fields.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())) {
            if !is_empty(value) {
                section(out, &section_title(key), generic(value));
            }
        }
    }
}

/// Rows of cells, each column padded to its widest cell.
fn table(rows: impl Iterator<Item = Vec<String>>) -> Vec<String> {
    let rows: Vec<Vec<String>> = rows.collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

fn section_title(key: &str) -> String {
    let mut s = key.replace('_', " ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A scalar as text, anything else as compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => compact(other),
    }
}

/// One line for any value: lists comma-separated, an object with a
/// `text` (an input as written) that text, other objects `k=v`.
fn compact(v: &Value) -> String {
    match v {
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => a.iter().map(compact).collect::<Vec<_>>().join(","),
        Value::Object(m) => match m.get("text") {
            Some(Value::String(t)) => t.clone(),
            _ => m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}={}", compact(v)))
                .collect::<Vec<_>>()
                .join(" "),
        },
        other => text(other),
    }
}

fn generic(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(compact).collect(),
        Value::Object(m) => table(m.iter().map(|(k, v)| vec![k.clone(), compact(v)])),
        other => vec![text(other)],
    }
}

fn gpu_line(v: &Value) -> String {
    let mut s = format!(
        "{}  {}  minor {}  {}",
        text(&v["index"]),
        text(&v["uuid"]),
        text(&v["minor"]),
        text(&v["bus_id"])
    );
    if let Some(migs) = v["mig"].as_array().filter(|m| !m.is_empty()) {
        let _ = write!(
            s,
            "  MIG {}{}",
            migs.iter()
                .map(|m| text(&m["uuid"]))
                .collect::<Vec<_>>()
                .join(","),
            if v["whole"] == Value::Bool(false) {
                " (MIG devices only)"
            } else {
                ""
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_values_render_on_one_line() {
        let v: Value = serde_json::json!({"a": [1, 2], "b": {"c": "x"}, "d": null});
        assert_eq!(compact(&v), "a=1,2 b=c=x");
        assert_eq!(compact(&serde_json::json!([])), "none");
        assert_eq!(section_title("imex_channels"), "Imex channels");
        let id = serde_json::json!({"selector": {"index": 1}, "text": "1"});
        assert_eq!(compact(&serde_json::json!({"devices": [id]})), "devices=1");
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["/a".to_owned(), "-> /long/dest".to_owned(), "ro".to_owned()],
            vec![
                "/longer/src".to_owned(),
                "-> /d".to_owned(),
                "rw".to_owned(),
            ],
        ];
        assert_eq!(
            table(rows.into_iter()),
            [
                "/a           -> /long/dest  ro",
                "/longer/src  -> /d          rw"
            ]
        );
    }

    #[test]
    fn a_refusal_is_shown_and_no_gpu_says_so() {
        let e = Explanation {
            input: ContainerInput {
                env: Env::from_pairs([("NVIDIA_VISIBLE_DEVICES", "void"), ("PATH", "/bin")]),
                ..ContainerInput::default()
            },
            request: None,
            flavor_detected: false,
            outcome: Outcome::NoGpu,
        };
        let t = render_text(&e, Style::default());
        assert!(t.contains("env NVIDIA_VISIBLE_DEVICES  void"), "{t}");
        assert!(!t.contains("PATH"), "{t}");
        assert!(
            t.contains("not a GPU container: the hook does nothing"),
            "{t}"
        );
        assert!(!t.contains('\x1b'), "no colour unless asked: {t}");
        let colored = render_text(&e, Style { color: true });
        assert!(colored.contains("\x1b[1mInputs\x1b[0m"), "{colored}");
    }
}
