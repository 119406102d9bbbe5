//! The Podman / CRI-O `hooks.d` file registering the prestart hook
//! (`oci-hooks(5)`, schema 1.0.0).
//!
//! `when` decides which containers the runtime hands to the hook. It sees
//! annotations and the command, never the environment, so it cannot say
//! "containers with `NVIDIA_VISIBLE_DEVICES`". Two choices ([`When`]):
//!
//! - `always` (default, what NVIDIA ships): every container runs the hook,
//!   which decides from the environment and annotations itself. A container
//!   without GPUs costs one read of its `config.json` (no inventory, no
//!   fork) and then the hook exits 0. Nothing that asks for GPUs is missed.
//! - `annotations`: only containers carrying the one annotation the rules
//!   read as a GPU request run it: `com.nvidia.volumes.needed` (v1 images,
//!   when the engine records that label as an annotation, or `podman run
//!   --annotation`). Other containers never start the hook, but a GPU
//!   request made only by environment (`-e NVIDIA_VISIBLE_DEVICES=0`, a CUDA image's own `ENV`)
//!   is then ignored. The regexes are anchored (`^...$`): the hooks library
//!   matches unanchored, so `volumes\.needed` alone would also match
//!   `x.volumes.needed.y`.
#![forbid(unsafe_code)]

use serde_json::json;

use super::doc::Doc;

/// Where packages install it.
pub const DEFAULT_HOOKS_FILE: &str =
    "/usr/share/containers/oci/hooks.d/oci-nvidia-docker-hook.json";

/// Annotation-name regexes of [`When::Annotations`], each with the value
/// regex `^.+$` (any non-empty value).
pub const ANNOTATION_KEYS: &[&str] = &[r"^com\.nvidia\.volumes\.needed$"];

/// Which containers run the hook (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum When {
    /// Every container; the hook decides.
    #[default]
    Always,
    /// Containers with a GPU annotation only.
    Annotations,
}

/// The file's content: `hook_path prestart` with `env` as its whole
/// environment and a 30 s timeout.
pub fn render(hook_path: &str, env: &[String], when: When) -> String {
    let when = match when {
        When::Always => json!({"always": true}),
        When::Annotations => {
            let map: serde_json::Map<String, serde_json::Value> = ANNOTATION_KEYS
                .iter()
                .map(|k| ((*k).to_owned(), json!("^.+$")))
                .collect();
            json!({ "annotations": map })
        }
    };
    let text = json!({
        "version": "1.0.0",
        "hook": {
            "path": hook_path,
            "args": ["nvidia-docker-hook", "prestart"],
            "env": env,
            "timeout": 30,
        },
        "when": when,
        "stages": ["prestart"],
    });
    // serde_json's map sorts keys; re-read in the order written above.
    let ordered = Doc::Object(vec![
        ("version".into(), Doc::from(text["version"].clone())),
        (
            "hook".into(),
            Doc::Object(
                ["path", "args", "env", "timeout"]
                    .iter()
                    .map(|k| ((*k).to_owned(), Doc::from(text["hook"][*k].clone())))
                    .collect(),
            ),
        ),
        ("when".into(), Doc::from(text["when"].clone())),
        ("stages".into(), Doc::from(text["stages"].clone())),
    ]);
    ordered.to_json_pretty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_and_annotations() {
        let env = vec!["PATH=/usr/bin:/bin".to_owned()];
        let out = render("/usr/bin/nvidia-docker-hook", &env, When::Always);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["version"], "1.0.0");
        assert_eq!(v["hook"]["args"], json!(["nvidia-docker-hook", "prestart"]));
        assert_eq!(v["hook"]["env"], json!(env));
        assert_eq!(v["when"], json!({"always": true}));
        assert_eq!(v["stages"], json!(["prestart"]));
        assert!(out.starts_with("{\n  \"version\": \"1.0.0\",\n  \"hook\": {\n    \"path\""));
        let out = render("/h", &env, When::Annotations);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["when"]["annotations"][r"^com\.nvidia\.volumes\.needed$"],
            "^.+$"
        );
        assert!(v["when"].get("always").is_none());
    }
}
