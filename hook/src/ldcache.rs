//! glibc's linker cache, `ld.so.cache`, read from bytes.
//!
//! Both layouts glibc has written are accepted (docs/toolkit.md §2
//! "Driver discovery", docs/v1.md §3):
//!
//! - the new format alone (glibc ≥ 2.32's default): `"glibc-ld.so.cache"`
//!   `"1.1"`, `u32 nlibs`, `u32 len_strings`, `u8 flags` (endianness),
//!   3 bytes of padding, `u32 extension_offset`, `3 × u32` unused (48 bytes),
//!   then `nlibs` 24-byte entries `{i32 flags, u32 key, u32 value,
//!   u32 osversion, u64 hwcap}`;
//! - the old `ld.so-1.7.0` table (`u32 nlibs`, 12-byte entries) followed by
//!   the new format aligned to 8, as older `ldconfig -c compat` wrote it. The
//!   old table is skipped.
//!
//! String offsets are relative to the start of the new-format header. The
//! file is untrusted input as far as this parser is concerned: every count
//! and offset is checked, arithmetic cannot overflow, and no input panics
//! (`tests/inventory.rs` feeds it arbitrary bytes). Strings that are not
//! UTF-8 are kept lossily: such a value never resolves to a file, so it is
//! skipped later rather than failing the whole cache.
#![forbid(unsafe_code)]

use rules::{ElfClass, Machine};

/// `FLAG_ELF`: the entry is an ELF library (`flags & FLAG_TYPE_MASK` is
/// `FLAG_ELF`, `FLAG_ELF_LIBC5` or `FLAG_ELF_LIBC6`, all of which have it).
pub const FLAG_ELF: i32 = 0x0001;
/// The "required" (architecture) part of the flags.
pub const FLAG_ARCH_MASK: i32 = 0xff00;
/// `FLAG_X8664_LIB64`.
pub const FLAG_X8664_LIB64: i32 = 0x0300;
/// `FLAG_POWERPC_LIB64`.
pub const FLAG_POWERPC_LIB64: i32 = 0x0500;
/// `FLAG_AARCH64_LIB64`.
pub const FLAG_AARCH64_LIB64: i32 = 0x0a00;

/// Magic of the old format.
pub const MAGIC_OLD: &[u8; 11] = b"ld.so-1.7.0";
/// Magic and version of the new format.
pub const MAGIC_NEW: &[u8; 20] = b"glibc-ld.so.cache1.1";

const OLD_HEADER_SIZE: usize = 16;
const OLD_ENTRY_SIZE: usize = 12;
const NEW_HEADER_SIZE: usize = 48;
const NEW_ENTRY_SIZE: usize = 24;
const ENDIAN_MASK: u8 = 3;
const ENDIAN_UNSET: u8 = 0;
const ENDIAN_LITTLE: u8 = 2;

/// Why bytes are not a usable `ld.so.cache`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdCacheError {
    /// Neither magic is at the start of the file.
    #[error(
        "not an ld.so.cache: no \"glibc-ld.so.cache1.1\" or \"ld.so-1.7.0\" header ({len} bytes)"
    )]
    NoMagic {
        /// Size of the input.
        len: usize,
    },
    /// The old-format table claims more entries than the file holds.
    #[error("ld.so.cache is truncated: the old-format table claims {count} entries but the file has {len} bytes")]
    OldTableTruncated {
        /// The claimed count.
        count: u32,
        /// Size of the input.
        len: usize,
    },
    /// The old table is not followed by the new format.
    #[error("ld.so.cache has an old-format table but no \"glibc-ld.so.cache1.1\" header after it (at byte {offset}); only caches with the new format are supported")]
    OldFormatOnly {
        /// Where the new header should start.
        offset: usize,
    },
    /// The new header is cut short.
    #[error("ld.so.cache is truncated: the header at byte {offset} needs {NEW_HEADER_SIZE} bytes, the file has {len}")]
    HeaderTruncated {
        /// Where the new header starts.
        offset: usize,
        /// Size of the input.
        len: usize,
    },
    /// Written for a big-endian machine (or with an invalid endianness flag).
    #[error("ld.so.cache was written for another byte order (endianness flag {flag})")]
    Endianness {
        /// The header's flag bits.
        flag: u8,
    },
    /// The header claims more entries than the file holds.
    #[error(
        "ld.so.cache is truncated: the header claims {count} entries but the file has {len} bytes"
    )]
    EntriesTruncated {
        /// The claimed count.
        count: u32,
        /// Size of the input.
        len: usize,
    },
    /// An entry's key or value offset is outside the file.
    #[error("ld.so.cache entry {entry}: {field} string offset {offset} is outside the file")]
    StringOutOfBounds {
        /// The entry's index.
        entry: usize,
        /// `key` or `value`.
        field: &'static str,
        /// The offset, relative to the new header.
        offset: u32,
    },
    /// An entry's string runs to the end of the file without a NUL.
    #[error("ld.so.cache entry {entry}: {field} string at offset {offset} has no terminating NUL")]
    UnterminatedString {
        /// The entry's index.
        entry: usize,
        /// `key` or `value`.
        field: &'static str,
        /// The offset, relative to the new header.
        offset: u32,
    },
}

/// One cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name looked up: a soname (`libcuda.so.1`) or a `.so` link name.
    pub key: String,
    /// The path as seen inside the root the cache belongs to.
    pub value: String,
    /// `FLAG_*` bits: type in the low byte, architecture in `0xff00`.
    pub flags: i32,
    /// Hardware capabilities (0 for ordinary directories).
    pub hwcap: u64,
}

impl Entry {
    /// True for an ELF library (`flags & FLAG_ELF`).
    pub fn is_elf(&self) -> bool {
        self.flags & FLAG_ELF != 0
    }

    /// The bitness of this entry on `machine`, from the flag bits (as
    /// libnvidia-container's `ldcache.c` and v1's `ldcache.go` decide it):
    /// `None` for a non-ELF entry or another architecture.
    pub fn class_on(&self, machine: Machine) -> Option<ElfClass> {
        if !self.is_elf() {
            return None;
        }
        let arch = self.flags & FLAG_ARCH_MASK;
        match machine {
            Machine::X86_64 if arch == FLAG_X8664_LIB64 => Some(ElfClass::Elf64),
            // i386 libraries carry no architecture bits.
            Machine::X86_64 if arch == 0 => Some(ElfClass::Elf32),
            Machine::Aarch64 if arch == FLAG_AARCH64_LIB64 => Some(ElfClass::Elf64),
            Machine::Ppc64le if arch == FLAG_POWERPC_LIB64 => Some(ElfClass::Elf64),
            _ => None,
        }
    }
}

/// A parsed cache.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LdCache {
    /// The entries, in file order (the order the dynamic linker searches).
    pub entries: Vec<Entry>,
    /// True when the file starts with the old `ld.so-1.7.0` table.
    pub has_old_format: bool,
}

impl LdCache {
    /// The entries usable on `machine`, with their bitness.
    pub fn entries_for(&self, machine: Machine) -> impl Iterator<Item = (&Entry, ElfClass)> + '_ {
        self.entries
            .iter()
            .filter_map(move |e| e.class_on(machine).map(|c| (e, c)))
    }

    /// The first entry for `key` of bitness `class` on `machine`.
    pub fn lookup(&self, key: &str, machine: Machine, class: ElfClass) -> Option<&Entry> {
        self.entries_for(machine)
            .find(|(e, c)| *c == class && e.key == key)
            .map(|(e, _)| e)
    }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b = data.get(at..end)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    let b = data.get(at..end)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    Some(u64::from_le_bytes(w))
}

/// A NUL-terminated string at `offset` of `table`.
fn cstr(
    table: &[u8],
    entry: usize,
    field: &'static str,
    offset: u32,
) -> Result<String, LdCacheError> {
    let rest = usize::try_from(offset)
        .ok()
        .and_then(|o| table.get(o..))
        .filter(|r| !r.is_empty())
        .ok_or(LdCacheError::StringOutOfBounds {
            entry,
            field,
            offset,
        })?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(LdCacheError::UnterminatedString {
            entry,
            field,
            offset,
        })?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Parses an `ld.so.cache` (either layout). Never panics.
pub fn parse(data: &[u8]) -> Result<LdCache, LdCacheError> {
    let len = data.len();
    let mut start = 0usize;
    let has_old_format = data.starts_with(MAGIC_OLD);
    if has_old_format {
        let count = u32_at(data, 12).ok_or(LdCacheError::OldTableTruncated { count: 0, len })?;
        let table_end = usize::try_from(count)
            .ok()
            .and_then(|n| n.checked_mul(OLD_ENTRY_SIZE))
            .and_then(|n| n.checked_add(OLD_HEADER_SIZE))
            .filter(|&end| end <= len)
            .ok_or(LdCacheError::OldTableTruncated { count, len })?;
        // ALIGN_CACHE: the new header starts at the next multiple of 8.
        start = table_end
            .checked_next_multiple_of(8)
            .ok_or(LdCacheError::OldTableTruncated { count, len })?;
        if !data.get(start..).is_some_and(|d| d.starts_with(MAGIC_NEW)) {
            return Err(LdCacheError::OldFormatOnly { offset: start });
        }
    } else if !data.starts_with(MAGIC_NEW) {
        return Err(LdCacheError::NoMagic { len });
    }
    // From here on, `new` starts at the new header; offsets are relative to it.
    let new = data.get(start..).unwrap_or_default();
    if new.len() < NEW_HEADER_SIZE {
        return Err(LdCacheError::HeaderTruncated { offset: start, len });
    }
    let flag = new[28] & ENDIAN_MASK;
    if flag != ENDIAN_UNSET && flag != ENDIAN_LITTLE {
        return Err(LdCacheError::Endianness { flag });
    }
    let count = u32_at(new, 20).unwrap_or(0);
    let entries_end = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(NEW_ENTRY_SIZE))
        .and_then(|n| n.checked_add(NEW_HEADER_SIZE))
        .filter(|&end| end <= new.len())
        .ok_or(LdCacheError::EntriesTruncated { count, len })?;
    let mut entries = Vec::with_capacity((entries_end - NEW_HEADER_SIZE) / NEW_ENTRY_SIZE);
    for (i, at) in (NEW_HEADER_SIZE..entries_end)
        .step_by(NEW_ENTRY_SIZE)
        .enumerate()
    {
        let word = |k: usize| u32_at(new, at + k).unwrap_or(0);
        let key = cstr(new, i, "key", word(4))?;
        let value = cstr(new, i, "value", word(8))?;
        entries.push(Entry {
            key,
            value,
            flags: word(0) as i32,
            hwcap: u64_at(new, at + 16).unwrap_or(0),
        });
    }
    Ok(LdCache {
        entries,
        has_old_format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal new-format cache with the given entries.
    fn cache(entries: &[(&str, &str, i32)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut offs = Vec::new();
        let base = NEW_HEADER_SIZE + entries.len() * NEW_ENTRY_SIZE;
        for (k, v, _) in entries {
            let ko = base + strings.len();
            strings.extend_from_slice(k.as_bytes());
            strings.push(0);
            let vo = base + strings.len();
            strings.extend_from_slice(v.as_bytes());
            strings.push(0);
            offs.push((ko as u32, vo as u32));
        }
        let mut out = MAGIC_NEW.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.push(ENDIAN_LITTLE);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&[0; 16]);
        for ((_, _, flags), (ko, vo)) in entries.iter().zip(offs) {
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&ko.to_le_bytes());
            out.extend_from_slice(&vo.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&0u64.to_le_bytes());
        }
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn flags_select_bitness() {
        let bytes = cache(&[
            (
                "libcuda.so.1",
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                0x0303,
            ),
            (
                "libcuda.so.1",
                "/usr/lib/i386-linux-gnu/libcuda.so.1",
                0x0003,
            ),
            ("libx32.so.1", "/usr/libx32/libx32.so.1", 0x0803),
            (
                "liba64.so.1",
                "/usr/lib/aarch64-linux-gnu/liba64.so.1",
                0x0a03,
            ),
            ("libold.so.1", "/usr/lib/libold.so.1", 0x0000),
        ]);
        let c = parse(&bytes).unwrap();
        assert_eq!(c.entries.len(), 5);
        assert!(!c.has_old_format);
        let x86: Vec<_> = c
            .entries_for(Machine::X86_64)
            .map(|(e, class)| (e.value.as_str(), class))
            .collect();
        assert_eq!(
            x86,
            [
                ("/usr/lib/x86_64-linux-gnu/libcuda.so.1", ElfClass::Elf64),
                ("/usr/lib/i386-linux-gnu/libcuda.so.1", ElfClass::Elf32),
            ]
        );
        let arm: Vec<_> = c
            .entries_for(Machine::Aarch64)
            .map(|(e, _)| &e.key)
            .collect();
        assert_eq!(arm, ["liba64.so.1"]);
        assert_eq!(
            c.lookup("libcuda.so.1", Machine::X86_64, ElfClass::Elf32)
                .unwrap()
                .value,
            "/usr/lib/i386-linux-gnu/libcuda.so.1"
        );
    }

    #[test]
    fn hostile_inputs_are_clear_errors() {
        assert_eq!(parse(b""), Err(LdCacheError::NoMagic { len: 0 }));
        assert_eq!(
            parse(MAGIC_NEW),
            Err(LdCacheError::HeaderTruncated { offset: 0, len: 20 })
        );
        let good = cache(&[("libcuda.so.1", "/x/libcuda.so.1", 0x0303)]);
        // Huge count.
        let mut huge = good.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse(&huge),
            Err(LdCacheError::EntriesTruncated {
                count: u32::MAX,
                ..
            })
        ));
        // Key offset out of bounds.
        let mut oob = good.clone();
        oob[NEW_HEADER_SIZE + 4..NEW_HEADER_SIZE + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse(&oob),
            Err(LdCacheError::StringOutOfBounds {
                entry: 0,
                field: "key",
                offset: u32::MAX
            })
        );
        // No NUL at the end.
        let mut open = good.clone();
        open.pop();
        assert!(matches!(
            parse(&open),
            Err(LdCacheError::UnterminatedString { field: "value", .. })
        ));
        // Big-endian.
        let mut be = good;
        be[28] = 3;
        assert_eq!(parse(&be), Err(LdCacheError::Endianness { flag: 3 }));
        // Old table with a huge count.
        let mut old = MAGIC_OLD.to_vec();
        old.push(0);
        old.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse(&old),
            Err(LdCacheError::OldTableTruncated { .. })
        ));
        // Old table alone.
        let mut old = MAGIC_OLD.to_vec();
        old.push(0);
        old.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse(&old), Err(LdCacheError::OldFormatOnly { offset: 16 }));
    }
}
