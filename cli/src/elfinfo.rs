//! The two ELF facts v1's blacklist needs (nvidia-docker-v1.md §3): which
//! libraries a GL library needs, and `libnvidia-tls`'s ABI tag.

use std::path::Path;

use object::{Object, ObjectSection};

fn section(path: &Path, name: &str) -> Option<Vec<u8>> {
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let s = file.section_by_name(name)?;
    s.data().ok().map(<[u8]>::to_vec)
}

/// True when the library's dynamic strings (where its `DT_NEEDED` names
/// are) name `libnvidia-glcore.so`, `libnvidia-eglcore.so` or
/// `libGLdispatch.so`: NVIDIA's or GLVND's GL, not Mesa's.
pub fn needs_nvidia_gl(path: &Path) -> bool {
    let Some(dynstr) = section(path, ".dynstr") else {
        return false;
    };
    dynstr.split(|b| *b == 0).any(|s| {
        s.starts_with(b"libnvidia-glcore.so")
            || s.starts_with(b"libnvidia-eglcore.so")
            || s.starts_with(b"libGLdispatch.so")
    })
}

/// True when `.note.ABI-tag` bytes 24..32 read as little-endian
/// `0x6300000003` (ABI x.3.99: the `tls/` variant of `libnvidia-tls`).
pub fn has_tls_abi_tag(path: &Path) -> bool {
    section(path, ".note.ABI-tag")
        .and_then(|n| n.get(24..32).map(|b| b.to_vec()))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .is_some_and(|b| u64::from_le_bytes(b) == 0x63_0000_0003)
}
