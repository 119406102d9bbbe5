//! Property-based fuzzing of the hook's parsers of untrusted bytes: the OCI
//! state on stdin, `ld.so.cache` (random bytes and valid caches mutated),
//! ELF note sections, the snapshot file, `/proc/devices` and the kernel
//! version. No input may panic; valid inputs still parse.
//!
//! No coverage-guided fuzzer runs on stable Rust here (cargo-fuzz needs
//! nightly's sanitizers), so these are proptest generators. Each target runs
//! `PROPTEST_CASES` cases (default 256, for CI); `scripts/fuzz SECONDS` runs
//! every target over and over with a large count and fresh seeds.
use proptest::prelude::*;

/// proptest's defaults (`PROPTEST_CASES` cases, 256 unless set), without
/// regression files written into the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes that are often near-valid: `base` with a few bytes replaced,
/// removed or inserted, or cut.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len().max(1);
    (
        proptest::collection::vec((0..len, any::<u8>(), 0u8..4), 0..8),
        0..=len,
    )
        .prop_map(move |(edits, cut)| {
            let mut b = base.clone();
            for (at, byte, op) in edits {
                let at = at.min(b.len());
                match op {
                    0 if at < b.len() => b[at] = byte,
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    2 => b.insert(at, byte),
                    _ => {
                        // A 32-bit field set to an extreme.
                        if at + 4 <= b.len() {
                            let v = if byte & 1 == 0 { u32::MAX } else { 0x7fff_fff0 };
                            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
            if cut < b.len() && cut % 3 == 0 {
                b.truncate(cut);
            }
            b
        })
}

fn sample_cache() -> Vec<u8> {
    use fixtures::ldcache::{to_bytes, Entry, Format};
    let entries = [
        Entry::new(
            "libcuda.so.1",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
            0x0303,
        ),
        Entry::new("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", 0x0303),
        Entry::new("libm.so.6", "/lib/i386-linux-gnu/libm.so.6", 0x0003),
    ];
    to_bytes(&entries, Format::Compat, Some("ldconfig (fuzz)"))
}

const STATE: &str = r#"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4242,"bundle":"/run/b","annotations":{"a":"b"}}"#;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn oci_state_random(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = hook::state::State::parse(&bytes);
    }

    #[test]
    fn oci_state_mutated(bytes in mutated(STATE.as_bytes().to_vec())) {
        let _ = hook::state::State::parse(&bytes);
        let _ = hook::state::State::read(&bytes[..]);
    }

    #[test]
    fn ld_cache_random(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = hook::ldcache::parse(&bytes);
    }

    #[test]
    fn ld_cache_mutated(bytes in mutated(sample_cache())) {
        if let Ok(cache) = hook::ldcache::parse(&bytes) {
            for machine in [rules::Machine::X86_64, rules::Machine::Aarch64] {
                for (entry, class) in cache.entries_for(machine) {
                    let _ = cache.lookup(&entry.key, machine, class);
                }
            }
        }
    }

    #[test]
    fn elf_notes(bytes in proptest::collection::vec(any::<u8>(), 0..256), align in 0u64..16) {
        let _ = hook::compat::first_owned_note(&bytes, align);
    }

    #[test]
    fn elf_notes_well_formed_heads(
        namesz in 0u32..64, descsz in prop_oneof![0u32..64, Just(u32::MAX), Just(0x8000_0000u32)],
        tail in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&namesz.to_le_bytes());
        bytes.extend_from_slice(&descsz.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(b"NVIDIA Corporation\0\0");
        bytes.extend_from_slice(&tail);
        for align in [4, 8] {
            let _ = hook::compat::first_owned_note(&bytes, align);
        }
    }

    #[test]
    fn proc_texts(text in "\\PC{0,300}") {
        let _ = hook::discover::parse_devices(&text);
        let _ = hook::discover::parse_kernel_version(&text);
        let _ = hook::cgroup::parse_proc_cgroup(&text);
        let _ = hook::cgroup::parse_mountinfo(&text);
    }

    #[test]
    fn proc_devices_shaped(lines in proptest::collection::vec(("[0-9 ]{0,5}", "[a-z_ -]{0,12}"), 0..20)) {
        let text = format!(
            "Character devices:\n{}\n\nBlock devices:\n",
            lines.iter().map(|(n, s)| format!("{n} {s}")).collect::<Vec<_>>().join("\n")
        );
        let _ = hook::discover::parse_devices(&text);
    }

    #[test]
    fn snapshot_file(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot");
        std::fs::write(&path, &bytes).unwrap();
        let _ = hook::snapshot::read(&path);
    }
}

#[test]
fn the_samples_parse() {
    hook::state::State::parse(STATE.as_bytes()).unwrap();
    hook::ldcache::parse(&sample_cache()).unwrap();
}
