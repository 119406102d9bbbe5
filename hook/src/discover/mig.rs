//! MIG capability minors, read from the kernel module's access files
//! (`<proc>/driver/nvidia/capabilities/gpu<minor>/mig/gi<G>[/ci<C>]/access`,
//! `DeviceFileMinor: <M>` naming `/dev/nvidia-caps/nvidia-cap<M>`), never
//! computed from the driver's numbering scheme.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

/// The access files live here, under the proc root.
pub const CAPABILITIES_DIR: &str = "driver/nvidia/capabilities";

/// A MIG access file is missing or not in the driver's format.
#[derive(Debug, thiserror::Error)]
pub enum MigError {
    /// The file could not be read.
    #[error("MIG device {gpu}:{mig} ({uuid}): cannot read its capability file {}: {source}; is the nvidia kernel module's /proc mounted at the configured proc root?", path.display())]
    Read {
        /// GPU index.
        gpu: u32,
        /// MIG device index.
        mig: u32,
        /// `MIG-...`.
        uuid: String,
        /// The access file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It has no `DeviceFileMinor: <number>` line.
    #[error("MIG device {gpu}:{mig} ({uuid}): {} has no \"DeviceFileMinor: <number>\" line", path.display())]
    Format {
        /// GPU index.
        gpu: u32,
        /// MIG device index.
        mig: u32,
        /// `MIG-...`.
        uuid: String,
        /// The access file.
        path: PathBuf,
    },
}

/// The access file of GPU instance `gi` (and compute instance `ci`) of the
/// GPU with minor `gpu_minor`, relative to the proc root.
pub fn access_file(gpu_minor: u32, gi: u32, ci: Option<u32>) -> String {
    match ci {
        None => format!("{CAPABILITIES_DIR}/gpu{gpu_minor}/mig/gi{gi}/access"),
        Some(ci) => format!("{CAPABILITIES_DIR}/gpu{gpu_minor}/mig/gi{gi}/ci{ci}/access"),
    }
}

/// `DeviceFileMinor` of an access file's text.
pub fn parse_minor(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("DeviceFileMinor:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The MIG device being resolved, for errors.
#[derive(Debug, Clone, Copy)]
pub struct MigId<'a> {
    /// GPU index.
    pub gpu: u32,
    /// MIG device index.
    pub mig: u32,
    /// `MIG-...`.
    pub uuid: &'a str,
}

/// The capability minor an access file names.
pub fn read_minor(proc_root: &Path, rel: &str, id: MigId<'_>) -> Result<u32, MigError> {
    let path = proc_root.join(rel);
    let text = std::fs::read_to_string(&path).map_err(|source| MigError::Read {
        gpu: id.gpu,
        mig: id.mig,
        uuid: id.uuid.to_owned(),
        path: path.clone(),
        source,
    })?;
    parse_minor(&text).ok_or_else(|| MigError::Format {
        gpu: id.gpu,
        mig: id.mig,
        uuid: id.uuid.to_owned(),
        path,
    })
}

/// The MIG instances the driver has now: every `gpu<N>/mig/gi<G>` and
/// `gpu<N>/mig/gi<G>/ci<C>` directory under the proc root's capabilities
/// (sorted; empty without MIG). Instances appear and disappear as MIG is
/// reconfigured, so the snapshot fingerprint records this list.
pub fn instances(proc_root: &Path) -> Vec<String> {
    let dir = proc_root.join(CAPABILITIES_DIR);
    let names = |d: &Path, prefix: &str| -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(d) else {
            return Vec::new();
        };
        let mut out: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                n.strip_prefix(prefix)
                    .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        out.sort();
        out
    };
    let mut out = Vec::new();
    for gpu in names(&dir, "gpu") {
        let mig = dir.join(&gpu).join("mig");
        for gi in names(&mig, "gi") {
            out.push(format!("{gpu}/{gi}"));
            for ci in names(&mig.join(&gi), "ci") {
                out.push(format!("{gpu}/{gi}/{ci}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_from_the_driver_format() {
        assert_eq!(
            parse_minor("DeviceFileMinor: 13\nDeviceFileMode: 292\nDeviceFileModify: 1\n"),
            Some(13)
        );
        assert_eq!(parse_minor("DeviceFileMode: 292\n"), None);
        assert_eq!(parse_minor("DeviceFileMinor: x\n"), None);
    }

    #[test]
    fn instances_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(instances(root).is_empty());
        let ci = root.join(CAPABILITIES_DIR).join("gpu0/mig/gi1/ci0");
        std::fs::create_dir_all(&ci).unwrap();
        std::fs::create_dir_all(root.join(CAPABILITIES_DIR).join("mig")).unwrap();
        std::fs::write(ci.join("access"), "DeviceFileMinor: 13\n").unwrap();
        assert_eq!(instances(root), ["gpu0/gi1", "gpu0/gi1/ci0"]);
        let id = MigId {
            gpu: 0,
            mig: 0,
            uuid: "MIG-x",
        };
        assert_eq!(
            read_minor(root, &access_file(0, 1, Some(0)), id).unwrap(),
            13
        );
        let err = read_minor(root, &access_file(0, 1, None), id).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "MIG device 0:0 (MIG-x): cannot read its capability file {}/driver/nvidia/capabilities/gpu0/mig/gi1/access: ",
                root.display()
            )),
            "{err}"
        );
    }
}
