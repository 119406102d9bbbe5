//! Loader files ([`rules::loader_files`]): the first `<dir>/<name>` of an
//! entry's directories that resolves, inside the driver root, to a regular
//! file; recorded by the name looked up and the resolved path.

use std::collections::BTreeSet;

use rules::loader_files::{LoaderFile, LOADER_FILES};
use rules::HostPath;

use super::FileFinder;

impl FileFinder<'_> {
    /// The loader files of the host; `lib_dirs` are the directories of its
    /// 64-bit driver libraries (what `{lib}` stands for).
    pub(super) fn loader_files(
        &mut self,
        lib_dirs: &BTreeSet<String>,
        version: &str,
    ) -> Vec<LoaderFile> {
        let mut out = Vec::new();
        for spec in LOADER_FILES {
            let name = if spec.versioned {
                format!("{}.{version}", spec.name)
            } else {
                spec.name.to_owned()
            };
            let dirs = spec
                .dirs
                .iter()
                .flat_map(|d| match d.strip_prefix("{lib}") {
                    Some(rest) => lib_dirs.iter().map(|l| format!("{l}{rest}")).collect(),
                    None => vec![(*d).to_owned()],
                });
            for dir in dirs {
                // A versioned file may be reached only through its
                // unversioned link (Debian: `/usr/lib/nvidia/<name>` is an
                // alternatives link to `/usr/lib/nvidia/<flavour>/<name>.<RM>`).
                let Some(resolved) = self.resolve(&format!("{dir}/{name}")).or_else(|| {
                    spec.versioned
                        .then(|| self.resolve(&format!("{dir}/{}", spec.name)))
                        .flatten()
                        .filter(|r| r.inside.rsplit('/').next() == Some(name.as_str()))
                }) else {
                    continue;
                };
                if !resolved.meta.is_file() {
                    continue;
                }
                if let Ok(path) = HostPath::new(resolved.inside) {
                    out.push(LoaderFile { name, path });
                }
                break;
            }
        }
        out
    }
}

/// The loader files of a driver root whose 64-bit driver libraries are
/// `libraries` (their directories stand for `{lib}`).
pub fn find_loader_files(
    resolver: &mut super::Resolver,
    libraries: &[rules::DriverFile],
    driver_version: &str,
) -> Vec<LoaderFile> {
    let lib_dirs: BTreeSet<String> = libraries
        .iter()
        .filter(|f| f.kind == rules::FileKind::Library && f.class == rules::ElfClass::Elf64)
        .filter_map(|f| f.path.parent().map(|d| d.as_str().to_owned()))
        .collect();
    FileFinder::new(resolver).loader_files(&lib_dirs, driver_version)
}
