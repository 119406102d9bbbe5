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
use object::read::ReadCache;
use object::Endianness;
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
    let ident: &[u8] =
        object::ReadRef::read_bytes_at(data, 0, 6).map_err(|()| ElfError::NotElf {
            path: path.to_path_buf(),
        })?;
    if &ident[..4] != b"\x7fELF" || ident[5] != elf::ELFDATA2LSB.0 {
        return Err(ElfError::NotElf {
            path: path.to_path_buf(),
        });
    }
    let read = match ident[4] {
        c if c == elf::ELFCLASS64.0 => {
            read::<elf::FileHeader64<Endianness>, _>(data, ElfClass::Elf64)
        }
        c if c == elf::ELFCLASS32.0 => {
            read::<elf::FileHeader32<Endianness>, _>(data, ElfClass::Elf32)
        }
        _ => {
            return Err(ElfError::NotElf {
                path: path.to_path_buf(),
            })
        }
    };
    read.map_err(|source| ElfError::Malformed {
        path: path.to_path_buf(),
        source,
    })
}

fn read<'data, H, R>(data: R, class: ElfClass) -> object::read::Result<ElfInfo>
where
    H: FileHeader<Endian = Endianness>,
    R: object::ReadRef<'data>,
{
    let header = H::parse(data)?;
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
                let desc = note.desc();
                if note.name() == b"GNU"
                    && note.n_type(endian) == elf::NT_GNU_ABI_TAG
                    && desc.len() >= 16
                {
                    let word = |i: usize| {
                        u32::from_le_bytes([
                            desc[i * 4],
                            desc[i * 4 + 1],
                            desc[i * 4 + 2],
                            desc[i * 4 + 3],
                        ])
                    };
                    info.abi_tag = Some([word(0), word(1), word(2), word(3)]);
                }
            }
        }
    }
    Ok(info)
}
