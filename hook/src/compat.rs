//! CUDA forward compatibility: finding the image's compat `libcuda` and
//! reading its `.note.cuda.fwd_compatibility` (docs/cuda.md §1.5). What to do
//! with it is `rules::compat`'s decision; this module only looks.
//!
//! An image may carry `/usr/local/cuda/compat/libcuda.so.<driver>` (the
//! `cuda-compat-<maj>-<min>` package). As NVIDIA's `enable-cuda-compat`
//! hook does, exactly one file named `libcuda.so.*.*` must be there: none,
//! or several, means no compat library. Its name gives the driver version;
//! its ELF note, owned by `NVIDIA Corporation`, holds JSON such as
//! `{"format":1,"CUDA version":"12.9","driver":[535,550,560,565,570,575]}`.
//!
//! The image is hostile (docs/toolkit.md §6, CVE-2024-0132 and
//! CVE-2025-23359), so:
//!
//! - the directory is opened only through the held container root
//!   ([`ContainerRoot::resolve`], `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`), listed on that descriptor, and the library is
//!   opened by name in *that* directory with `O_PATH | O_NOFOLLOW` and
//!   `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`: a symlink, in the path or
//!   named like the library, never leads out of the root, and a symlink in
//!   the library's place is refused rather than followed;
//! - only a regular file of at most [`MAX_LIB_BYTES`] is opened for reading,
//!   by reopening that very descriptor ([`crate::sys::fs::reopen`]), so a FIFO or
//!   a device node swapped in is never opened;
//! - only the ELF header, the section table (at most
//!   [`MAX_SECTION_TABLE_BYTES`]), section names and the note section (at
//!   most [`MAX_NOTE_BYTES`]) are read, through `object::ReadCache`: a
//!   50 MB `libcuda` is not slurped and a crafted one cannot make the hook
//!   allocate much;
//! - nothing from the image is executed or mounted. The plan only gives
//!   the directory to the host's `ldconfig`, which runs chrooted in the
//!   container ([`crate::ldconfig`]).
//!
//! A malformed compat library must not stop a container from starting:
//! [`find_compat_lib_or_warn`] logs one warning and treats it as absent.
#![forbid(unsafe_code)]

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use object::elf;
use object::read::elf::{FileHeader, Note, NoteHeader as _, NoteIterator, SectionHeader};
use object::read::{Bytes, FileKind, ReadCache};
use object::Endianness;
use rules::compat::COMPAT_DIR;
use rules::{CompatLib, CompatNote, Version};

use crate::apply::root::{ContainerRoot, RootError};
use crate::sys::fs::{self, FsError, NO_SYMLINKS};

/// What the compat library's name starts with; NVIDIA's hook globs
/// `libcuda.so.*.*`.
pub const LIB_PREFIX: &str = "libcuda.so.";
/// The section holding the forward-compatibility note.
pub const NOTE_SECTION: &str = ".note.cuda.fwd_compatibility";
/// The note's owner (`n_name`).
pub const NOTE_OWNER: &str = "NVIDIA Corporation";
/// The largest compat library looked at (real ones are 50–100 MB).
pub const MAX_LIB_BYTES: u64 = 256 << 20;
/// The largest section header table read (a real `libcuda` has about 30
/// sections, 2 KiB).
pub const MAX_SECTION_TABLE_BYTES: u64 = 1 << 20;
/// The largest note section read (real ones are about 150 bytes).
pub const MAX_NOTE_BYTES: u64 = 64 << 10;
/// How many candidate names a debug line lists.
const MAX_NAMES_LOGGED: usize = 8;

/// Why the image's compat library could not be read. Every message names
/// the file in the container and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// The compat directory exists but could not be opened.
    #[error("cannot open {COMPAT_DIR} in the container")]
    OpenDir(#[source] RootError),
    /// The compat directory could not be listed.
    #[error("cannot list {COMPAT_DIR} in the container")]
    ListDir(#[source] FsError),
    /// The library's name does not end in a driver version.
    #[error("{path} in the container: the name does not end in a driver version")]
    Version {
        /// The file in the container (for messages only).
        path: String,
        /// The cause.
        #[source]
        source: rules::version::VersionError,
    },
    /// The library could not be opened.
    #[error("cannot open {path} in the container")]
    Open {
        /// The file in the container (for messages only).
        path: String,
        /// The cause.
        #[source]
        source: FsError,
    },
    /// Something else than a regular file has the library's name.
    #[error("{path} in the container is a {kind}, not a regular file")]
    NotRegular {
        /// The file in the container (for messages only).
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// The library is larger than [`MAX_LIB_BYTES`].
    #[error("{path} in the container is {size} bytes, more than the {MAX_LIB_BYTES} a compat libcuda may be")]
    TooLarge {
        /// The file in the container (for messages only).
        path: String,
        /// Its size.
        size: u64,
    },
    /// The library is not a little-endian ELF file.
    #[error("{path} in the container is not a little-endian ELF file")]
    NotElf {
        /// The file in the container (for messages only).
        path: String,
    },
    /// The section header table is larger than [`MAX_SECTION_TABLE_BYTES`].
    #[error("{path} in the container has a section header table of {size} bytes, more than {MAX_SECTION_TABLE_BYTES}")]
    SectionTable {
        /// The file in the container (for messages only).
        path: String,
        /// The table's size.
        size: u64,
    },
    /// The ELF structures are malformed.
    #[error("{path} in the container is a malformed ELF file")]
    Malformed {
        /// The file in the container (for messages only).
        path: String,
        /// The cause.
        #[source]
        source: object::read::Error,
    },
}

/// Finds the image's CUDA forward-compatibility library: exactly one file
/// named `libcuda.so.<X>.<Y>[.<Z>]` in `/usr/local/cuda/compat` inside
/// `root` (module docs for how it is looked up and read).
///
/// `Ok(None)`: no compat directory, no such file, or several (NVIDIA's hook
/// requires exactly one; the names are logged at debug level). A library
/// without a readable note is `Some` with `note: None`, and the plan then
/// decides by the major version in its name. `Err`: the one candidate is
/// not a regular file, too large, badly named or not ELF, or the directory
/// cannot be read; callers that start containers use
/// [`find_compat_lib_or_warn`], which treats that as no library.
pub fn find_compat_lib(root: &ContainerRoot) -> Result<Option<CompatLib>, CompatError> {
    let dir = match root.resolve(
        &rules::compat::compat_dir(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
    ) {
        Ok(fd) => fd,
        Err(e) if matches!(e.errno(), Some(Errno::ENOENT | Errno::ENOTDIR)) => {
            log::debug!("CUDA forward compatibility: no {COMPAT_DIR} in the container");
            return Ok(None);
        }
        Err(e) => return Err(CompatError::OpenDir(e)),
    };
    let mut count = 0usize;
    let mut names = Vec::new();
    fs::read_dir(&dir, |name| {
        let bytes = name.as_encoded_bytes();
        let matches = bytes
            .strip_prefix(LIB_PREFIX.as_bytes())
            .is_some_and(|rest| rest.contains(&b'.'));
        if matches {
            count += 1;
            if names.len() < MAX_NAMES_LOGGED {
                names.push(name.to_string_lossy().into_owned());
            }
        }
    })
    .map_err(CompatError::ListDir)?;
    names.sort();
    let name = match (count, names.pop()) {
        (1, Some(name)) => name,
        (0, _) | (_, None) => {
            log::debug!("CUDA forward compatibility: no {LIB_PREFIX}*.* in {COMPAT_DIR}");
            return Ok(None);
        }
        (n, Some(last)) => {
            names.push(last);
            log::debug!(
                "CUDA forward compatibility: {n} files named {LIB_PREFIX}*.* in {COMPAT_DIR} \
                 ({}{}); exactly one is needed, ignoring them",
                names.join(", "),
                if n > names.len() { ", ..." } else { "" }
            );
            return Ok(None);
        }
    };
    let path = format!("{COMPAT_DIR}/{name}");
    let version =
        Version::parse(&name[LIB_PREFIX.len()..]).map_err(|source| CompatError::Version {
            path: path.clone(),
            source,
        })?;
    let file = open_regular(&dir, &name, &path)?;
    let note = read_note(file, &path)?;
    Ok(Some(CompatLib { version, note }))
}

/// [`find_compat_lib`], with an error logged as one warning and treated as
/// no compat library: a malformed compat library in an image must not stop
/// the container from starting (it then runs on the host's driver, as
/// without the library).
pub fn find_compat_lib_or_warn(root: &ContainerRoot) -> Option<CompatLib> {
    match find_compat_lib(root) {
        Ok(lib) => lib,
        Err(e) => {
            log::warn!(
                "{}; ignoring the image's CUDA forward-compatibility library",
                crate::apply::error_chain(&e)
            );
            None
        }
    }
}

/// Opens `name` in `dir` for reading, if it is a regular file of at most
/// [`MAX_LIB_BYTES`]: `O_PATH | O_NOFOLLOW` without following any link,
/// `fstat`, then the same descriptor reopened read-only.
fn open_regular(dir: &OwnedFd, name: &str, path: &str) -> Result<File, CompatError> {
    let open_err = |source| CompatError::Open {
        path: path.to_owned(),
        source,
    };
    let fd = fs::openat2(
        dir,
        Path::new(name),
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
        NO_SYMLINKS,
    )
    .map_err(open_err)?;
    let st = fs::fstat(&fd).map_err(open_err)?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err(CompatError::NotRegular {
            path: path.to_owned(),
            kind: kind_name(kind),
        });
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size > MAX_LIB_BYTES {
        return Err(CompatError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let file =
        fs::reopen(&fd, OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK).map_err(open_err)?;
    Ok(File::from(file))
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        k if k == SFlag::S_IFLNK => "symlink",
        k if k == SFlag::S_IFDIR => "directory",
        k if k == SFlag::S_IFIFO => "FIFO",
        k if k == SFlag::S_IFSOCK => "socket",
        k if k == SFlag::S_IFCHR => "character device",
        k if k == SFlag::S_IFBLK => "block device",
        _ => "file of unknown type",
    }
}

/// The note of the open library `file`: `Ok(None)` when it has none, or one
/// that cannot be read (logged); `Err` when the file is not ELF at all.
fn read_note(file: File, path: &str) -> Result<Option<CompatNote>, CompatError> {
    let cache = ReadCache::new(file);
    let data = &cache;
    let not_elf = || CompatError::NotElf {
        path: path.to_owned(),
    };
    let desc = match FileKind::parse(data) {
        Ok(FileKind::Elf64) => note_desc::<elf::FileHeader64<Endianness>, _>(data, path),
        Ok(FileKind::Elf32) => note_desc::<elf::FileHeader32<Endianness>, _>(data, path),
        _ => return Err(not_elf()),
    }?;
    let Some(desc) = desc else {
        log::debug!("{path}: no {NOTE_SECTION} note owned by {NOTE_OWNER:?}");
        return Ok(None);
    };
    let parsed = std::str::from_utf8(&desc)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            CompatNote::from_json(s.trim_matches('\0')).map_err(|e| crate::apply::error_chain(&e))
        });
    match parsed {
        Ok(note) => Ok(Some(note)),
        Err(e) => {
            log::warn!(
                "{path} in the container: its {NOTE_SECTION} note cannot be read ({e}); \
                 deciding by the driver version in its name"
            );
            Ok(None)
        }
    }
}

/// The descriptor of the first note owned by [`NOTE_OWNER`] in the section
/// [`NOTE_SECTION`], if any.
fn note_desc<'data, H, R>(data: R, path: &str) -> Result<Option<Vec<u8>>, CompatError>
where
    H: FileHeader<Endian = Endianness>,
    R: object::ReadRef<'data>,
{
    let malformed = |source| CompatError::Malformed {
        path: path.to_owned(),
        source,
    };
    let header = H::parse(data).map_err(malformed)?;
    if !header.is_little_endian() {
        return Err(CompatError::NotElf {
            path: path.to_owned(),
        });
    }
    let endian = header.endian().map_err(malformed)?;
    let table = u64::from(header.shnum(endian, data).map_err(malformed)?)
        .saturating_mul(u64::from(header.e_shentsize(endian)));
    if table > MAX_SECTION_TABLE_BYTES {
        return Err(CompatError::SectionTable {
            path: path.to_owned(),
            size: table,
        });
    }
    let sections = header.sections(endian, data).map_err(malformed)?;
    let Some(section) = sections.iter().find(|s| {
        s.sh_type(endian) == elf::SHT_NOTE
            && sections.section_name(endian, s) == Ok(NOTE_SECTION.as_bytes())
    }) else {
        return Ok(None);
    };
    let size: u64 = section.sh_size(endian).into();
    if size > MAX_NOTE_BYTES {
        log::warn!("{path} in the container: its {NOTE_SECTION} section is {size} bytes, more than {MAX_NOTE_BYTES}; ignoring it");
        return Ok(None);
    }
    let bytes = match section.data(endian, data) {
        Ok(b) => b,
        Err(e) => {
            log::warn!("{path} in the container: cannot read its {NOTE_SECTION} section ({e}); ignoring it");
            return Ok(None);
        }
    };
    let align: u64 = section.sh_addralign(endian).into();
    match first_owned_note(bytes, align) {
        Ok(desc) => Ok(desc),
        Err(e) => {
            log::warn!("{path} in the container: its {NOTE_SECTION} section is malformed ({e}); ignoring it");
            Ok(None)
        }
    }
}

/// The descriptor of the first note owned by [`NOTE_OWNER`] in `bytes`, the
/// contents of a little-endian note section whose `sh_addralign` is
/// `align`, read with `object`'s note iterator (32- and 64-bit files lay
/// notes out alike).
///
/// One malformation `object` refuses is accepted, because NVIDIA's hook
/// accepts it: a descriptor whose size runs past the section's end (the
/// padding of Jetson Orin's library did, NVIDIA/nvidia-container-toolkit
/// commit 232dda7) is cut at the section's end.
/// Anything else malformed is an error. Trailing NULs in the descriptor are
/// the JSON reader's business.
pub fn first_owned_note(bytes: &[u8], align: u64) -> object::read::Result<Option<Vec<u8>>> {
    type Elf = elf::FileHeader64<Endianness>;
    let endian = Endianness::Little;
    let mut notes = NoteIterator::<Elf>::new(endian, align, bytes)?;
    // Where the note `notes` reads next starts in `bytes`.
    let mut at = 0usize;
    loop {
        match notes.next() {
            Ok(Some(note)) => {
                if note.name() == NOTE_OWNER.as_bytes() {
                    return Ok(Some(note.desc().to_vec()));
                }
                at = next_note_at(at, &note, endian, align);
            }
            Ok(None) => return Ok(None),
            Err(e) => {
                return match bytes
                    .get(at..)
                    .and_then(|rest| cut_at_section_end(rest, align))
                {
                    Some((name, desc)) if name == NOTE_OWNER.as_bytes() => Ok(Some(desc.to_vec())),
                    Some(_) => Ok(None),
                    None => Err(e),
                }
            }
        }
    }
}

/// Where the note after `note` (which starts at `at`) starts, as `object`
/// steps: the name, then the descriptor, each padded to `align`. `note` was
/// read from the section, so nothing here can overflow; if it did, the
/// position would be past the end and nothing more would be read.
fn next_note_at(
    at: usize,
    note: &Note<'_, elf::FileHeader64<Endianness>>,
    endian: Endianness,
    align: u64,
) -> usize {
    let align = if align == 8 { 8 } else { 4 };
    let up = |v: usize| v.checked_next_multiple_of(align).unwrap_or(usize::MAX);
    let size = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
    let header = std::mem::size_of::<elf::NoteHeader64<Endianness>>();
    let name_end = header.saturating_add(size(note.n_namesz(endian)));
    let desc_end = up(name_end).saturating_add(size(note.n_descsz(endian)));
    at.saturating_add(up(desc_end))
}

/// The name (without trailing NULs) and descriptor of the note at the start
/// of `rest` when its header and name are whole but its descriptor runs past
/// the end of `rest`: the descriptor is what is there. `None` for any other
/// malformation.
fn cut_at_section_end(rest: &[u8], align: u64) -> Option<(&[u8], &[u8])> {
    let endian = Endianness::Little;
    let header = Bytes(rest)
        .read_at::<elf::NoteHeader64<Endianness>>(0)
        .ok()?;
    let align = if align == 8 { 8 } else { 4 };
    let name_start = std::mem::size_of::<elf::NoteHeader64<Endianness>>();
    let name_end = name_start.checked_add(usize::try_from(header.n_namesz(endian)).ok()?)?;
    let name = rest.get(name_start..name_end)?;
    let desc_start = name_end.checked_next_multiple_of(align)?.min(rest.len());
    let desc_size = usize::try_from(header.n_descsz(endian)).ok()?;
    let desc = &rest[desc_start..];
    if desc.len() >= desc_size {
        // Not the case this is for (object read or refused it otherwise).
        return None;
    }
    let owner = &name[..name.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)];
    Some((owner, desc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::elf::{Arch, SharedObject};
    use std::os::unix::fs::symlink;

    const NOTE_575: &str = r#"{"format":1,"CUDA version":"12.9","driver":[535,550,560,565,570,575],"device":[1,2,7,8,9,10,11,12,13,14]}"#;

    fn libcuda(note: Option<&str>) -> Vec<u8> {
        let mut so = SharedObject::new(Arch::X86_64, "libcuda.so.1");
        if let Some(n) = note {
            so = so.with_note(NOTE_SECTION, NOTE_OWNER, 1, n.as_bytes());
        }
        so.to_bytes().unwrap()
    }

    /// A root with `/usr/local/cuda -> cuda-12.9` (as CUDA images have) and
    /// an empty compat directory.
    fn compat_root() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("root");
        std::fs::create_dir_all(r.join("usr/local/cuda-12.9/compat")).unwrap();
        symlink("cuda-12.9", r.join("usr/local/cuda")).unwrap();
        let compat = r.join("usr/local/cuda-12.9/compat");
        (dir, compat)
    }

    fn find(dir: &tempfile::TempDir) -> Result<Option<CompatLib>, CompatError> {
        find_compat_lib(&ContainerRoot::open(&dir.path().join("root")).unwrap())
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn no_compat_dir_is_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/usr/local")).unwrap();
        assert!(find(&dir).unwrap().is_none());
        // A file where the directory would be.
        std::fs::write(dir.path().join("root/usr/local/cuda"), "x").unwrap();
        assert!(find(&dir).unwrap().is_none());
    }

    #[test]
    fn one_library_with_its_note() {
        let (dir, compat) = compat_root();
        assert!(find(&dir).unwrap().is_none(), "empty directory");
        std::fs::write(compat.join("libcuda.so.575.57.08"), libcuda(Some(NOTE_575))).unwrap();
        // The soname links of the package do not count.
        symlink("libcuda.so.575.57.08", compat.join("libcuda.so.1")).unwrap();
        symlink("libcuda.so.1", compat.join("libcuda.so")).unwrap();
        std::fs::write(compat.join("libnvidia-ptxjitcompiler.so.575.57.08"), "x").unwrap();
        let lib = find(&dir).unwrap().expect("found");
        assert_eq!(lib.version, v("575.57.08"));
        assert_eq!(lib.version.to_string(), "575.57.08");
        let note = lib.note.expect("note read");
        assert_eq!(note.cuda, v("12.9"));
        assert_eq!(note.drivers, [535, 550, 560, 565, 570, 575]);
        // The decision the plan will make on a 535 host.
        let lib = find(&dir).unwrap().unwrap();
        assert_eq!(
            rules::forward_compat(&lib, Some(&v("535.104.05")), Some(&v("12.2"))),
            rules::CompatDecision::Use
        );
    }

    #[test]
    fn a_library_without_a_readable_note_has_note_none() {
        for (note, padded) in [
            (None, false),
            (Some("not json"), false),
            (Some(r#"{"CUDA version":"x"}"#), false),
            (Some(NOTE_575), true),
        ] {
            let (dir, compat) = compat_root();
            let bytes = match (note, padded) {
                (Some(n), true) => {
                    // NUL padding inside the descriptor is trimmed.
                    let n = format!("{n}\0\0\0");
                    SharedObject::new(Arch::I386, "libcuda.so.1")
                        .with_note(NOTE_SECTION, NOTE_OWNER, 1, n.as_bytes())
                        .to_bytes()
                        .unwrap()
                }
                (n, _) => libcuda(n),
            };
            std::fs::write(compat.join("libcuda.so.575.57.08"), bytes).unwrap();
            let lib = find(&dir).unwrap().expect("found");
            assert_eq!(lib.version, v("575.57.08"));
            assert_eq!(lib.note.is_some(), padded, "{note:?}");
        }
        // Another owner's note in that section is not NVIDIA's.
        let (dir, compat) = compat_root();
        let bytes = SharedObject::new(Arch::X86_64, "libcuda.so.1")
            .with_note(NOTE_SECTION, "Evil Corp", 1, NOTE_575.as_bytes())
            .to_bytes()
            .unwrap();
        std::fs::write(compat.join("libcuda.so.575.57.08"), bytes).unwrap();
        assert_eq!(find(&dir).unwrap().unwrap().note, None);
    }

    #[test]
    fn two_libraries_are_none() {
        let (dir, compat) = compat_root();
        for name in ["libcuda.so.575.57.08", "libcuda.so.570.124.06"] {
            std::fs::write(compat.join(name), libcuda(Some(NOTE_575))).unwrap();
        }
        assert!(find(&dir).unwrap().is_none());
    }

    #[test]
    fn symlinks_are_not_followed_out_of_the_root() {
        for target in ["/etc/passwd", "../../../../host/file", "libcuda.so.real"] {
            let (dir, compat) = compat_root();
            // What an escaping link would reach on the host side.
            std::fs::create_dir_all(dir.path().join("host")).unwrap();
            std::fs::write(dir.path().join("host/file"), libcuda(Some(NOTE_575))).unwrap();
            std::fs::write(compat.join("libcuda.so.real"), libcuda(Some(NOTE_575))).unwrap();
            symlink(target, compat.join("libcuda.so.575.57.08")).unwrap();
            let err = find(&dir).unwrap_err();
            assert!(
                matches!(
                    err,
                    CompatError::NotRegular {
                        kind: "symlink",
                        ..
                    }
                ),
                "{target}: {err}"
            );
            assert_eq!(
                err.to_string(),
                "/usr/local/cuda/compat/libcuda.so.575.57.08 in the container is a symlink, \
                 not a regular file"
            );
            let root = ContainerRoot::open(&dir.path().join("root")).unwrap();
            assert_eq!(find_compat_lib_or_warn(&root), None);
        }
        // A compat directory that is a link out of the root is resolved
        // inside it: /usr/local/cuda -> /../../host is the root's /host.
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("root");
        std::fs::create_dir_all(r.join("usr/local")).unwrap();
        std::fs::create_dir_all(dir.path().join("host/compat")).unwrap();
        std::fs::write(
            dir.path().join("host/compat/libcuda.so.575.57.08"),
            libcuda(Some(NOTE_575)),
        )
        .unwrap();
        symlink("/../../host", r.join("usr/local/cuda")).unwrap();
        assert!(find(&dir).unwrap().is_none());
        std::fs::remove_file(r.join("usr/local/cuda")).unwrap();
        symlink("../../../host", r.join("usr/local/cuda")).unwrap();
        assert!(find(&dir).unwrap().is_none());
    }

    #[test]
    fn other_kinds_and_bad_files_are_errors() {
        let (dir, compat) = compat_root();
        std::fs::create_dir(compat.join("libcuda.so.575.57.08")).unwrap();
        let err = find(&dir).unwrap_err();
        assert!(
            matches!(
                err,
                CompatError::NotRegular {
                    kind: "directory",
                    ..
                }
            ),
            "{err}"
        );
        let root = ContainerRoot::open(&dir.path().join("root")).unwrap();
        assert_eq!(find_compat_lib_or_warn(&root), None);

        let (dir, compat) = compat_root();
        nix::unistd::mkfifo(
            &compat.join("libcuda.so.575.57.08"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        // Never opened for reading (that would block).
        assert!(matches!(
            find(&dir).unwrap_err(),
            CompatError::NotRegular { kind: "FIFO", .. }
        ));

        let (dir, compat) = compat_root();
        std::fs::write(compat.join("libcuda.so.575.57.08"), "#!/bin/sh\n").unwrap();
        assert_eq!(
            find(&dir).unwrap_err().to_string(),
            "/usr/local/cuda/compat/libcuda.so.575.57.08 in the container is not a little-endian ELF file"
        );

        let (dir, compat) = compat_root();
        std::fs::write(compat.join("libcuda.so.1.bak"), libcuda(None)).unwrap();
        assert_eq!(
            find(&dir).unwrap_err().to_string(),
            "/usr/local/cuda/compat/libcuda.so.1.bak in the container: the name does not end in a driver version"
        );

        // A truncated ELF file.
        let (dir, compat) = compat_root();
        let bytes = libcuda(Some(NOTE_575));
        std::fs::write(compat.join("libcuda.so.575.57.08"), &bytes[..40]).unwrap();
        assert!(matches!(
            find(&dir).unwrap_err(),
            CompatError::Malformed { .. }
        ));

        // Too large (sparse: nothing is written).
        let (dir, compat) = compat_root();
        let f = std::fs::File::create(compat.join("libcuda.so.575.57.08")).unwrap();
        f.set_len(MAX_LIB_BYTES + 1).unwrap();
        assert!(matches!(
            find(&dir).unwrap_err(),
            CompatError::TooLarge { size, .. } if size == MAX_LIB_BYTES + 1
        ));
    }

    /// Note section bytes: one note with `name` and `desc`, claiming a
    /// descriptor of `descsz` bytes, padded to 4.
    fn note(name: &[u8], desc: &[u8], descsz: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(name.len() as u32).to_le_bytes());
        b.extend_from_slice(&descsz.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(name);
        b.resize(b.len().div_ceil(4) * 4, 0);
        b.extend_from_slice(desc);
        b.resize(b.len().div_ceil(4) * 4, 0);
        b
    }

    /// Whether `object`'s note iterator reads every note of `bytes`.
    fn object_reads(bytes: &[u8], align: u64) -> bool {
        NoteIterator::<elf::FileHeader64<Endianness>>::new(Endianness::Little, align, bytes)
            .is_ok_and(|notes| notes.into_iter().all(|n| n.is_ok()))
    }

    #[test]
    fn well_formed_notes_are_read_by_object() {
        let mut two = note(b"GNU\0", &[1, 2, 3, 4], 4);
        two.extend(note(b"NVIDIA Corporation\0", b"{}", 2));
        assert!(object_reads(&two, 4));
        assert_eq!(first_owned_note(&two, 4).unwrap(), Some(b"{}".to_vec()));
        // 8-byte alignment: the descriptor starts at 32 (12 + 19, rounded up).
        let eight = note(b"NVIDIA Corporation\0", b"{\"a\":1}", 7);
        assert_eq!(
            first_owned_note(&eight, 8).unwrap(),
            Some(b"{\"a\":1}".to_vec())
        );
        assert_eq!(first_owned_note(b"", 4).unwrap(), None);
        assert_eq!(first_owned_note(&note(b"GNU\0", b"", 0), 4).unwrap(), None);
        // The owner's name is compared without its NULs, and exactly.
        let other = note(b"NVIDIA Corporation2\0", b"{}", 2);
        assert_eq!(first_owned_note(&other, 4).unwrap(), None);
        // An alignment binutils does not know.
        assert!(first_owned_note(&two, 16).is_err());
    }

    #[test]
    fn a_descriptor_past_the_section_end_is_cut_there() {
        // The Jetson Orin case: object refuses it, the hook reads what is
        // there, padding included.
        let long = note(b"NVIDIA Corporation\0", b"{\"a\":1}", 4096);
        assert!(!object_reads(&long, 4), "object refuses it");
        assert_eq!(
            first_owned_note(&long, 4).unwrap(),
            Some(b"{\"a\":1}\0".to_vec())
        );
        assert_eq!(
            first_owned_note(&long, 8).unwrap().map(|d| d.len()),
            Some(8)
        );
        // After well-formed notes of other owners.
        let mut after = note(b"GNU\0", &[1, 2, 3, 4], 4);
        after.extend(note(b"Go\0", &[9; 5], 5));
        after.extend(&long);
        assert_eq!(
            first_owned_note(&after, 4).unwrap(),
            Some(b"{\"a\":1}\0".to_vec())
        );
        // Another owner's note cut the same way is not NVIDIA's.
        let evil = note(b"Evil Corp\0", b"{}", 4096);
        assert_eq!(first_owned_note(&evil, 4).unwrap(), None);
    }

    #[test]
    fn other_malformed_notes_are_refused() {
        // A header cut short.
        assert!(first_owned_note(&[0xff; 11], 4).is_err());
        // A name running past the end.
        assert!(first_owned_note(&[0xff; 64], 4).is_err());
        let mut name_past = note(b"NVIDIA Corporation\0", b"", 0);
        name_past[..4].copy_from_slice(&100u32.to_le_bytes());
        assert!(first_owned_note(&name_past, 4).is_err());
        // Bytes after the last note that are not a note.
        let mut trailing = note(b"GNU\0", &[1, 2, 3, 4], 4);
        trailing.extend([0u8; 4]);
        assert!(first_owned_note(&trailing, 4).is_err());
    }

    #[test]
    fn a_library_whose_note_runs_past_its_section_is_read() {
        let (dir, compat) = compat_root();
        let mut bytes = libcuda(Some(NOTE_575));
        // Make the note's n_descsz claim 256 bytes more than the section has.
        let owner = b"NVIDIA Corporation\0";
        let at = bytes
            .windows(owner.len())
            .position(|w| w == owner)
            .expect("the note's name");
        let descsz = at - 8;
        let size = u32::from_le_bytes(bytes[descsz..descsz + 4].try_into().unwrap());
        assert_eq!(size as usize, NOTE_575.len());
        bytes[descsz..descsz + 4].copy_from_slice(&(size + 256).to_le_bytes());
        std::fs::write(compat.join("libcuda.so.575.57.08"), bytes).unwrap();
        let note = find(&dir).unwrap().expect("found").note.expect("note read");
        assert_eq!(note.cuda, v("12.9"));
        assert_eq!(note.drivers, [535, 550, 560, 565, 570, 575]);
    }
}
