//! containerd and CRI-O: the wrapper as a runtime, merged into their TOML
//! with `toml_edit`, so comments, order and every other key stay.
//!
//! **containerd** (`/etc/containerd/config.toml`), by config version (the
//! file's `version`; a file without one is version 1; a new file gets
//! version 2 unless asked otherwise):
//!
//! | version | containerd | CRI plugin table |
//! |---|---|---|
//! | 1 | 1.x, old layout | `plugins.cri` |
//! | 2 | 1.x | `plugins."io.containerd.grpc.v1.cri"` |
//! | 3 | 2.x | `plugins."io.containerd.cri.v1.runtime"` |
//!
//! `<plugin>.containerd.runtimes.<name>` starts as a copy of the `runc`
//! entry when there is one (its `SystemdCgroup` and the like carry over),
//! else `runtime_type = "io.containerd.runc.v2"`; then
//! `options.BinaryName` is the wrapper, and `container_annotations` lists
//! `cdi.k8s.io/*` (containerd 1.x copies a container's CRI annotations into
//! its OCI spec only when the handler lists them: without it the runc
//! wrapper never sees the device plugin's `cdi-annotations`). On request
//! `<plugin>.containerd.default_runtime_name` and `<plugin>.enable_cdi`.
//!
//! **Drop-in** ([`merge_containerd_drop_in`], as the GPU Operator writes
//! it): the runtime goes into `/etc/containerd/conf.d/99-nvidia.toml`, and
//! the main file only gains the drop-in in its top-level `imports`.
//! containerd 1.x (config versions 1, 2) replaces a plugin's whole table
//! with an imported one, so there the drop-in is the main file's CRI table
//! plus the runtime (run `setup` again after editing that table); containerd
//! 2.x (version 3) merges key by key, so there it holds the runtime alone.
//!
//! **CRI-O** (drop-in `/etc/crio/crio.conf.d/99-nvidia.toml`):
//! `crio.runtime.runtimes.<name>` with `runtime_path` and
//! `runtime_type = "oci"`; on request `crio.runtime.default_runtime`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use toml_edit::{value, DocumentMut, Item, Table, TableLike};

/// The annotations a containerd runtime entry passes to the runtime.
pub const CONTAINER_ANNOTATIONS: &str = "cdi.k8s.io/*";
/// The containerd drop-in, as the GPU Operator names it.
pub const DEFAULT_CONTAINERD_DROP_IN: &str = "/etc/containerd/conf.d/99-nvidia.toml";
/// containerd's configuration file.
pub const DEFAULT_CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
/// The CRI-O drop-in.
pub const DEFAULT_CRIO_CONFIG: &str = "/etc/crio/crio.conf.d/99-nvidia.toml";

/// The existing TOML cannot be merged into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Not TOML.
    #[error("cannot update {}: it is not valid TOML (line {line}: {message}): fix or remove it first", path.display())]
    NotToml {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parser's message, on one line.
        message: String,
    },
    /// A key to edit holds something other than a table.
    #[error("cannot update {}: {key} is not a table: fix or remove it first", path.display())]
    NotTable {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
    },
    /// `--cdi` for a containerd that would ignore `enable_cdi`.
    #[error("containerd {version} does not read enable_cdi (its CRI plugin resolves CDI devices from 1.7 on): upgrade containerd, or leave out --cdi and select GPUs through the registered runtime (NVIDIA_VISIBLE_DEVICES, volume mounts or cdi.k8s.io annotations)")]
    CdiUnsupported {
        /// The version containerd reported.
        version: String,
    },
    /// `containerd --version` could not be run or read.
    #[error("cannot tell which containerd this is ({binary} --version: {reason}): give --containerd-version, or leave out --cdi")]
    UnknownVersion {
        /// The binary asked.
        binary: String,
        /// What went wrong.
        reason: String,
    },
    /// An unknown containerd config version.
    #[error("cannot update {}: containerd config version {version} is not 1, 2 or 3", path.display())]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found or asked for.
        version: i64,
    },
}

/// The first containerd release whose CRI plugin reads `enable_cdi`
/// (containerd 1.6 accepts the key and ignores it).
pub const CONTAINERD_CDI_SINCE: (u64, u64) = (1, 7);

/// `containerd --version` output (`containerd github.com/containerd/containerd
/// 1.6.20~ds1 1.6.20~ds1-1+b1`, `containerd containerd.io 1.7.27 <sha>`,
/// `containerd github.com/containerd/containerd/v2 v2.1.0 <sha>`): the
/// release as (major, minor, patch), the text it came from.
pub fn parse_containerd_version(output: &str) -> Option<((u64, u64, u64), String)> {
    let word = output.split_whitespace().nth(2)?;
    let text = word.trim_start_matches('v');
    let mut nums = text
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse::<u64>().ok());
    let major = nums.next()??;
    let minor = nums.next()??;
    let patch = nums.next().flatten().unwrap_or(0);
    Some(((major, minor, patch), word.to_owned()))
}

/// Whether containerd `version` (its `--version` release word) honours
/// `enable_cdi`; refused with one line otherwise.
pub fn check_cdi_support(version: (u64, u64, u64), text: &str) -> Result<(), EngineError> {
    if (version.0, version.1) >= CONTAINERD_CDI_SINCE {
        Ok(())
    } else {
        Err(EngineError::CdiUnsupported {
            version: text.to_owned(),
        })
    }
}

/// What to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// The runtime's name.
    pub runtime_name: String,
    /// The wrapper's path.
    pub runtime_path: String,
    /// Make it the default runtime.
    pub set_default: bool,
    /// Turn on CDI (containerd only).
    pub cdi: bool,
}

fn parse(path: &Path, existing: Option<&str>) -> Result<DocumentMut, EngineError> {
    let text = existing.unwrap_or("");
    text.parse::<DocumentMut>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text.get(..s.start).unwrap_or(text).matches('\n').count() + 1)
            .unwrap_or(1);
        EngineError::NotToml {
            path: path.to_path_buf(),
            line,
            message: e.message().replace('\n', " ").trim().to_owned(),
        }
    })
}

/// `key` in `parent` as a table, created (implicit: no header of its own)
/// when absent.
fn table<'a>(
    parent: &'a mut dyn TableLike,
    key: &str,
    dotted: &str,
    path: &Path,
) -> Result<&'a mut dyn TableLike, EngineError> {
    if parent.get(key).is_none() {
        let mut t = Table::new();
        t.set_implicit(true);
        parent.insert(key, Item::Table(t));
    }
    parent
        .get_mut(key)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| EngineError::NotTable {
            path: path.to_path_buf(),
            key: dotted.to_owned(),
        })
}

fn finish(existing: Option<&str>, doc: &DocumentMut) -> String {
    let out = doc.to_string();
    match existing {
        // Unchanged content keeps its exact bytes.
        Some(text) if text == out => text.to_owned(),
        _ => out,
    }
}

/// The CRI plugin table name of containerd config `version`.
pub fn cri_plugin(version: i64) -> Option<&'static str> {
    match version {
        1 => Some("cri"),
        2 => Some("io.containerd.grpc.v1.cri"),
        3 => Some("io.containerd.cri.v1.runtime"),
        _ => None,
    }
}

/// The new content of containerd's `path` (module docs). `version`
/// overrides the file's.
pub fn merge_containerd(
    path: &Path,
    existing: Option<&str>,
    version: Option<i64>,
    opts: &RuntimeOptions,
) -> Result<String, EngineError> {
    let mut doc = parse(path, existing)?;
    let empty = doc.as_table().is_empty();
    let found = doc.get("version").and_then(Item::as_integer);
    let version = version.or(found).unwrap_or(if empty { 2 } else { 1 });
    let plugin = cri_plugin(version).ok_or_else(|| EngineError::Version {
        path: path.to_path_buf(),
        version,
    })?;
    // A file without `version` is version 1: it stays without one then.
    if found != Some(version) && (empty || found.is_some() || version != 1) {
        doc.insert("version", value(version));
    }
    let p = |rest: &str| format!("plugins.{plugin:?}{rest}");
    let plugins = table(doc.as_table_mut(), "plugins", "plugins", path)?;
    let cri = table(plugins, plugin, &p(""), path)?;
    if opts.cdi {
        cri.insert("enable_cdi", value(true));
    }
    let containerd = table(cri, "containerd", &p(".containerd"), path)?;
    if opts.set_default {
        containerd.insert("default_runtime_name", value(opts.runtime_name.as_str()));
    }
    let runtimes = table(containerd, "runtimes", &p(".containerd.runtimes"), path)?;
    if runtimes.get(&opts.runtime_name).is_none() {
        let base = runtimes
            .get("runc")
            .and_then(Item::as_table)
            .cloned()
            .map(|mut t| {
                t.set_implicit(false);
                t.set_position(None);
                t
            })
            .unwrap_or_else(|| {
                let mut t = Table::new();
                t.insert("runtime_type", value("io.containerd.runc.v2"));
                t
            });
        runtimes.insert(&opts.runtime_name, Item::Table(base));
    }
    let dotted = p(&format!(".containerd.runtimes.{:?}", opts.runtime_name));
    let runtime = table(runtimes, &opts.runtime_name, &dotted, path)?;
    let passes = runtime
        .get("container_annotations")
        .and_then(Item::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(CONTAINER_ANNOTATIONS)));
    if !passes {
        let mut list = runtime
            .get("container_annotations")
            .and_then(Item::as_array)
            .cloned()
            .unwrap_or_default();
        list.push(CONTAINER_ANNOTATIONS);
        runtime.insert("container_annotations", value(list));
    }
    let options = table(runtime, "options", &format!("{dotted}.options"), path)?;
    options.insert("BinaryName", value(opts.runtime_path.as_str()));
    Ok(finish(existing, &doc))
}

/// The drop-in `path` (currently `existing`) for a main file whose content
/// is `main`: the runtime entry of [`merge_containerd`], its `runc` base and
/// config version taken from the main file.
pub fn merge_containerd_drop_in(
    path: &Path,
    existing: Option<&str>,
    main_path: &Path,
    main: Option<&str>,
    version: Option<i64>,
    opts: &RuntimeOptions,
) -> Result<String, EngineError> {
    let main_doc = parse(main_path, main)?;
    let version = version
        .or_else(|| main_doc.get("version").and_then(Item::as_integer))
        .unwrap_or(if main_doc.as_table().is_empty() { 2 } else { 1 });
    let plugin = cri_plugin(version).ok_or_else(|| EngineError::Version {
        path: main_path.to_path_buf(),
        version,
    })?;
    let cri_of = |doc: &DocumentMut| {
        doc.get("plugins")
            .and_then(|p| p.get(plugin))
            .and_then(Item::as_table)
            .cloned()
    };
    let p = |rest: &str| format!("plugins.{plugin:?}{rest}");
    if version <= 2 {
        // containerd 1.x replaces a plugin's whole table with an imported
        // one: the drop-in carries the main file's CRI table plus the
        // runtime, rebuilt from the main file each time.
        let mut doc = DocumentMut::new();
        if let Some(cri) = cri_of(&main_doc) {
            let plugins = table(doc.as_table_mut(), "plugins", "plugins", path)?;
            plugins.insert(plugin, Item::Table(cri));
        }
        let merged = merge_containerd(path, Some(&doc.to_string()), Some(version), opts)?;
        let doc = parse(path, Some(&merged))?;
        return Ok(finish(existing, &doc));
    }
    // containerd 2.x merges imported plugin tables key by key: the drop-in
    // holds the runtime alone, its base the main file's runc entry (seeded
    // for the merge, then taken out).
    let runc_at = |doc: &DocumentMut| {
        cri_of(doc)
            .and_then(|c| c.get("containerd").cloned())
            .and_then(|c| c.get("runtimes").cloned())
            .and_then(|r| r.get("runc").cloned())
            .and_then(|t| t.as_table().cloned())
    };
    let mut doc = parse(path, existing)?;
    let seed = match (runc_at(&doc), runc_at(&main_doc)) {
        (None, Some(runc)) if opts.runtime_name != "runc" => Some(runc),
        _ => None,
    };
    if let Some(runc) = &seed {
        let plugins = table(doc.as_table_mut(), "plugins", "plugins", path)?;
        let cri = table(plugins, plugin, &p(""), path)?;
        let containerd = table(cri, "containerd", &p(".containerd"), path)?;
        let runtimes = table(containerd, "runtimes", &p(".containerd.runtimes"), path)?;
        runtimes.insert("runc", Item::Table(runc.clone()));
    }
    let merged = merge_containerd(path, Some(&doc.to_string()), Some(version), opts)?;
    let mut doc = parse(path, Some(&merged))?;
    if seed.is_some() {
        if let Some(runtimes) = doc
            .get_mut("plugins")
            .and_then(|p| p.get_mut(plugin))
            .and_then(|c| c.get_mut("containerd"))
            .and_then(|c| c.get_mut("runtimes"))
            .and_then(Item::as_table_like_mut)
        {
            runtimes.remove("runc");
        }
    }
    Ok(finish(existing, &doc))
}

/// The main containerd file `existing` with `drop_in` in its top-level
/// `imports` (kept as is when already there).
pub fn add_containerd_import(
    path: &Path,
    existing: Option<&str>,
    drop_in: &Path,
) -> Result<String, EngineError> {
    let mut doc = parse(path, existing)?;
    let entry = drop_in.to_string_lossy().into_owned();
    let found = doc.get("imports").and_then(Item::as_array).cloned();
    match found {
        Some(list) if list.iter().any(|v| v.as_str() == Some(entry.as_str())) => {}
        Some(mut list) => {
            list.push(entry.as_str());
            doc.insert("imports", value(list));
        }
        None if doc.get("imports").is_some() => {
            return Err(EngineError::NotTable {
                path: path.to_path_buf(),
                key: "imports (an array)".into(),
            })
        }
        None => {
            if doc.get("version").is_none() {
                doc.insert("version", value(2));
            }
            let mut list = toml_edit::Array::new();
            list.push(entry.as_str());
            doc.insert("imports", value(list));
        }
    }
    Ok(finish(existing, &doc))
}

/// The new content of the CRI-O drop-in `path` (module docs).
pub fn merge_crio(
    path: &Path,
    existing: Option<&str>,
    opts: &RuntimeOptions,
) -> Result<String, EngineError> {
    let mut doc = parse(path, existing)?;
    let crio = table(doc.as_table_mut(), "crio", "crio", path)?;
    let rt = table(crio, "runtime", "crio.runtime", path)?;
    if opts.set_default {
        rt.insert("default_runtime", value(opts.runtime_name.as_str()));
    }
    let runtimes = table(rt, "runtimes", "crio.runtime.runtimes", path)?;
    let dotted = format!("crio.runtime.runtimes.{:?}", opts.runtime_name);
    let runtime = table(runtimes, &opts.runtime_name, &dotted, path)?;
    runtime.insert("runtime_path", value(opts.runtime_path.as_str()));
    runtime.insert("runtime_type", value("oci"));
    Ok(finish(existing, &doc))
}

/// Podman's containers.conf drop-in registering the wrapper
/// (`/etc/containers/containers.conf.d/99-nvidia.conf`):
/// `engine.runtimes.<name> = [<path>]` and, on request, `engine.runtime`.
pub fn merge_podman(
    path: &Path,
    existing: Option<&str>,
    opts: &RuntimeOptions,
) -> Result<String, EngineError> {
    let mut doc = parse(path, existing)?;
    let engine = table(doc.as_table_mut(), "engine", "engine", path)?;
    if opts.set_default {
        engine.insert("runtime", value(opts.runtime_name.as_str()));
    }
    let runtimes = table(engine, "runtimes", "engine.runtimes", path)?;
    let mut list = toml_edit::Array::new();
    list.push(opts.runtime_path.as_str());
    let same = runtimes
        .get(&opts.runtime_name)
        .and_then(Item::as_array)
        .is_some_and(|a| {
            a.len() == 1 && a.get(0).and_then(|v| v.as_str()) == Some(&opts.runtime_path)
        });
    if !same {
        runtimes.insert(&opts.runtime_name, value(list));
    }
    Ok(finish(existing, &doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RuntimeOptions {
        RuntimeOptions {
            runtime_name: "nvidia".into(),
            runtime_path: "/usr/bin/nvidia-docker-runtime".into(),
            set_default: false,
            cdi: false,
        }
    }

    #[test]
    fn containerd_new_file_is_version_2() {
        let out = merge_containerd(Path::new("/c.toml"), None, None, &opts()).unwrap();
        assert_eq!(
            out,
            "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]\nruntime_type = \"io.containerd.runc.v2\"\ncontainer_annotations = [\"cdi.k8s.io/*\"]\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia.options]\nBinaryName = \"/usr/bin/nvidia-docker-runtime\"\n"
        );
        assert_eq!(
            merge_containerd(Path::new("/c.toml"), Some(&out), None, &opts()).unwrap(),
            out
        );
    }

    #[test]
    fn containerd_copies_runc_and_keeps_comments() {
        let existing = "# managed by hand\nversion = 3\n\n[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options]\n    SystemdCgroup = true # keep\n";
        let o = RuntimeOptions {
            set_default: true,
            cdi: true,
            ..opts()
        };
        let out = merge_containerd(Path::new("/c.toml"), Some(existing), None, &o).unwrap();
        assert!(out.starts_with("# managed by hand\nversion = 3\n"), "{out}");
        assert!(out.contains("SystemdCgroup = true # keep"), "{out}");
        let v: toml_edit::DocumentMut = out.parse().unwrap();
        let cri = &v["plugins"]["io.containerd.cri.v1.runtime"];
        assert_eq!(cri["enable_cdi"].as_bool(), Some(true));
        assert_eq!(
            cri["containerd"]["default_runtime_name"].as_str(),
            Some("nvidia")
        );
        let nv = &cri["containerd"]["runtimes"]["nvidia"];
        assert_eq!(nv["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
        assert_eq!(nv["options"]["SystemdCgroup"].as_bool(), Some(true));
        assert_eq!(
            nv["options"]["BinaryName"].as_str(),
            Some("/usr/bin/nvidia-docker-runtime")
        );
        assert_eq!(
            merge_containerd(Path::new("/c.toml"), Some(&out), None, &o).unwrap(),
            out
        );
    }

    #[test]
    fn containerd_versions() {
        let v1 = merge_containerd(Path::new("/c"), Some("root = \"/x\"\n"), None, &opts()).unwrap();
        assert!(
            v1.contains("[plugins.cri.containerd.runtimes.nvidia]"),
            "{v1}"
        );
        assert!(!v1.contains("version"), "{v1}");
        let err = merge_containerd(Path::new("/c"), None, Some(4), &opts()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot update /c: containerd config version 4 is not 1, 2 or 3"
        );
        let err = merge_containerd(Path::new("/c"), Some("a = [\n"), None, &opts()).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot update /c: it is not valid TOML (line "));
        let err = merge_containerd(
            Path::new("/c"),
            Some("version = 2\nplugins = 1\n"),
            None,
            &opts(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot update /c: plugins is not a table: fix or remove it first"
        );
    }

    /// Issue 12: `--cdi` wrote `enable_cdi` for containerd versions that
    /// silently ignore it.
    #[test]
    fn enable_cdi_only_for_containerd_that_reads_it() {
        let debian = "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n";
        let (v, text) = parse_containerd_version(debian).unwrap();
        assert_eq!((v, text.as_str()), ((1, 6, 20), "1.6.20~ds1"));
        assert_eq!(
            check_cdi_support(v, &text).unwrap_err().to_string(),
            "containerd 1.6.20~ds1 does not read enable_cdi (its CRI plugin resolves CDI devices from 1.7 on): upgrade containerd, or leave out --cdi and select GPUs through the registered runtime (NVIDIA_VISIBLE_DEVICES, volume mounts or cdi.k8s.io annotations)"
        );
        let (v, text) =
            parse_containerd_version("containerd containerd.io 1.7.27 05044ec0a9a7").unwrap();
        assert_eq!(v, (1, 7, 27));
        assert!(check_cdi_support(v, &text).is_ok());
        let (v, _) = parse_containerd_version(
            "containerd github.com/containerd/containerd/v2 v2.1.0 06b99ca8",
        )
        .unwrap();
        assert_eq!(v, (2, 1, 0));
        assert_eq!(parse_containerd_version("containerd"), None);
        assert_eq!(parse_containerd_version("a b c"), None);
    }

    /// Issue 12: the GPU Operator's layout: the runtime in a drop-in, the
    /// main file only importing it.
    #[test]
    fn containerd_drop_in_and_import() {
        let main = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n    SystemdCgroup = true\n";
        let (dp, mp) = (Path::new("/d/99-nvidia.toml"), Path::new("/c.toml"));
        let d = merge_containerd_drop_in(dp, None, mp, Some(main), None, &opts()).unwrap();
        let v: DocumentMut = d.parse().unwrap();
        let runtimes = &v["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
        // containerd 1.x: the whole CRI table, runc included.
        assert_eq!(
            runtimes["runc"]["options"]["SystemdCgroup"].as_bool(),
            Some(true),
            "{d}"
        );
        assert_eq!(
            runtimes["nvidia"]["options"]["SystemdCgroup"].as_bool(),
            Some(true),
            "{d}"
        );
        assert_eq!(
            runtimes["nvidia"]["options"]["BinaryName"].as_str(),
            Some("/usr/bin/nvidia-docker-runtime")
        );
        assert_eq!(
            merge_containerd_drop_in(dp, Some(&d), mp, Some(main), None, &opts()).unwrap(),
            d
        );
        // containerd 2.x: the runtime alone.
        let main3 = main
            .replace("version = 2", "version = 3")
            .replace("io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime");
        let d3 = merge_containerd_drop_in(dp, None, mp, Some(&main3), None, &opts()).unwrap();
        let v: DocumentMut = d3.parse().unwrap();
        let runtimes = &v["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"];
        assert!(runtimes.get("runc").is_none(), "{d3}");
        assert_eq!(
            runtimes["nvidia"]["options"]["SystemdCgroup"].as_bool(),
            Some(true),
            "{d3}"
        );
        assert_eq!(
            merge_containerd_drop_in(dp, Some(&d3), mp, Some(&main3), None, &opts()).unwrap(),
            d3
        );
        let m = add_containerd_import(mp, Some(main), dp).unwrap();
        assert!(
            m.starts_with("version = 2\nimports = [\"/d/99-nvidia.toml\"]\n"),
            "{m}"
        );
        assert!(m.contains("SystemdCgroup = true"), "{m}");
        assert_eq!(add_containerd_import(mp, Some(&m), dp).unwrap(), m);
        let other = add_containerd_import(mp, Some("imports = [\"/x.toml\"]\n"), dp).unwrap();
        assert_eq!(other, "imports = [\"/x.toml\", \"/d/99-nvidia.toml\"]\n");
        assert_eq!(
            add_containerd_import(mp, None, dp).unwrap(),
            "version = 2\nimports = [\"/d/99-nvidia.toml\"]\n"
        );
    }

    #[test]
    fn podman_drop_in() {
        let o = RuntimeOptions {
            set_default: true,
            ..opts()
        };
        let out = merge_podman(Path::new("/p.conf"), None, &o).unwrap();
        assert_eq!(
            out,
            "[engine]\nruntime = \"nvidia\"\n\n[engine.runtimes]\nnvidia = [\"/usr/bin/nvidia-docker-runtime\"]\n"
        );
        assert_eq!(
            merge_podman(Path::new("/p.conf"), Some(&out), &o).unwrap(),
            out
        );
        let kept = "# mine\n[engine]\nevents_logger = \"file\"\n";
        let out = merge_podman(Path::new("/p.conf"), Some(kept), &o).unwrap();
        assert!(
            out.starts_with("# mine\n[engine]\nevents_logger = \"file\"\nruntime = \"nvidia\"\n"),
            "{out}"
        );
    }

    #[test]
    fn crio_drop_in() {
        let o = RuntimeOptions {
            set_default: true,
            ..opts()
        };
        let out = merge_crio(Path::new("/d.toml"), None, &o).unwrap();
        let v: toml_edit::DocumentMut = out.parse().unwrap();
        assert_eq!(
            v["crio"]["runtime"]["default_runtime"].as_str(),
            Some("nvidia")
        );
        let nv = &v["crio"]["runtime"]["runtimes"]["nvidia"];
        assert_eq!(
            nv["runtime_path"].as_str(),
            Some("/usr/bin/nvidia-docker-runtime")
        );
        assert_eq!(nv["runtime_type"].as_str(), Some("oci"));
        assert_eq!(
            merge_crio(Path::new("/d.toml"), Some(&out), &o).unwrap(),
            out
        );
    }
}
