//! What discovery needs to know about a shared object, read with the
//! `object` crate: ELF class and machine, `DT_SONAME`, `DT_NEEDED`, and the
//! GNU ABI tag. Reads go through `object::ReadCache` over the open file, so
//! only the headers, the dynamic section and its strings are read, never a
//! whole 50 MB `libcuda`.
#![forbid(unsafe_code)]

use std::fs::File;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{Dyn, FileHeader, SectionHeader};
use object::read::{Bytes, FileKind, ReadCache};
use object::{Endianness, U32};
use rules::ElfClass;

/// What was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// 32- or 64-bit.
    pub class: ElfClass,
    /// `e_machine`.
    pub machine: u16,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// The `NT_GNU_ABI_TAG` note: OS, major, minor, patch.
    pub abi_tag: Option<[u32; 4]>,
}

impl ElfInfo {
    /// The ABI tag nvidia-docker 1.0 requires of `libnvidia-tls` (the
    /// "new TLS" variant): v1 reads bytes `[24..32]` of `.note.ABI-tag` as a
    /// little-endian u64 and wants `0x63_0000_0003`, i.e. minor 3, patch 99.
    pub fn has_new_tls_abi(&self) -> bool {
        matches!(self.abi_tag, Some([_, _, 3, 99]))
    }

    /// True when a `DT_NEEDED` entry starts with one of `prefixes`.
    pub fn needs_any(&self, prefixes: &[&str]) -> bool {
        self.needed
            .iter()
            .any(|n| prefixes.iter().any(|p| n.starts_with(p)))
    }
}

/// Why a file could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a little-endian ELF file.
    #[error("{} is not a little-endian ELF file", path.display())]
    NotElf {
        /// The file.
        path: PathBuf,
    },
    /// The ELF structures are malformed.
    #[error("{} is a malformed ELF file", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: object::read::Error,
    },
}

/// Inspects the ELF file at `path`.
pub fn inspect(path: &Path) -> Result<ElfInfo, ElfError> {
    let file = File::open(path).map_err(|source| ElfError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let cache = ReadCache::new(file);
    let data = &cache;
    let not_elf = || ElfError::NotElf {
        path: path.to_path_buf(),
    };
    let read = match FileKind::parse(data) {
        Ok(FileKind::Elf64) => read::<elf::FileHeader64<Endianness>, _>(data, ElfClass::Elf64),
        Ok(FileKind::Elf32) => read::<elf::FileHeader32<Endianness>, _>(data, ElfClass::Elf32),
        _ => return Err(not_elf()),
    };
    read.map_err(|source| ElfError::Malformed {
        path: path.to_path_buf(),
        source,
    })?
    .ok_or_else(not_elf)
}

/// What [`inspect`] reads, `None` for a big-endian file.
fn read<'data, H, R>(data: R, class: ElfClass) -> object::read::Result<Option<ElfInfo>>
where
    H: FileHeader<Endian = Endianness>,
    R: object::ReadRef<'data>,
{
    let header = H::parse(data)?;
    if !header.is_little_endian() {
        return Ok(None);
    }
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let mut info = ElfInfo {
        class,
        machine: header.e_machine(endian).0,
        soname: None,
        needed: Vec::new(),
        abi_tag: None,
    };
    if let Some((dynamics, link)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        for d in dynamics {
            let tag = d.tag(endian);
            if tag == elf::DT_NULL {
                break;
            }
            if tag == elf::DT_SONAME || tag == elf::DT_NEEDED {
                let s = String::from_utf8_lossy(d.string(endian, strings)?).into_owned();
                if tag == elf::DT_SONAME {
                    info.soname = Some(s);
                } else {
                    info.needed.push(s);
                }
            }
        }
    }
    if let Some((_, section)) = sections.section_by_name(endian, b".note.ABI-tag") {
        if let Some(mut notes) = section.notes(endian, data)? {
            while let Some(note) = notes.next()? {
                if note.name() != b"GNU" || note.n_type(endian) != elf::NT_GNU_ABI_TAG {
                    continue;
                }
                // Four words in the file's byte order: OS, major, minor, patch.
                let words = Bytes(note.desc()).read_slice_at::<U32<Endianness>>(0, 4);
                if let Ok(&[os, major, minor, patch]) = words {
                    info.abi_tag = Some([os, major, minor, patch].map(|w| w.get(endian)));
                }
            }
        }
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::elf::{AbiTag, Arch, SharedObject};

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_class_soname_needed_and_abi_tag() {
        let dir = tempfile::tempdir().unwrap();
        for arch in [Arch::X86_64, Arch::I386] {
            let bytes = SharedObject::new(arch, "libnvidia-tls.so.575.57.08")
                .with_needed(["libc.so.6", "libm.so.6"])
                .with_abi_tag(AbiTag::NEW_TLS)
                .to_bytes()
                .unwrap();
            let info = inspect(&write(&dir, "tls.so", &bytes)).unwrap();
            assert_eq!(
                info.class,
                if arch.is_64() {
                    ElfClass::Elf64
                } else {
                    ElfClass::Elf32
                }
            );
            assert_eq!(info.soname.as_deref(), Some("libnvidia-tls.so.575.57.08"));
            assert_eq!(info.needed, ["libc.so.6", "libm.so.6"]);
            assert_eq!(info.abi_tag, Some([0, 2, 3, 99]));
            assert!(info.has_new_tls_abi());
            assert!(info.needs_any(&["libm.so"]));
        }
        let bytes = SharedObject::new(Arch::X86_64, "libcuda.so.1")
            .to_bytes()
            .unwrap();
        let info = inspect(&write(&dir, "cuda.so", &bytes)).unwrap();
        assert_eq!(info.abi_tag, None);
        assert!(!info.has_new_tls_abi());
    }

    #[test]
    fn not_elf_big_endian_and_truncated_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let script = write(&dir, "script", b"#!/bin/sh\n");
        assert_eq!(
            inspect(&script).unwrap_err().to_string(),
            format!("{} is not a little-endian ELF file", script.display())
        );
        let mut bytes = SharedObject::new(Arch::X86_64, "libcuda.so.1")
            .to_bytes()
            .unwrap();
        let truncated = write(&dir, "truncated", &bytes[..40]);
        assert!(matches!(
            inspect(&truncated).unwrap_err(),
            ElfError::Malformed { .. }
        ));
        bytes[5] = elf::ELFDATA2MSB.0;
        let big = write(&dir, "big", &bytes);
        assert!(matches!(
            inspect(&big).unwrap_err(),
            ElfError::NotElf { .. }
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            inspect(&missing).unwrap_err(),
            ElfError::Open { .. }
        ));
    }
}
