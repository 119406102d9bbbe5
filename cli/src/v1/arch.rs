//! Per compute capability facts that v1 read from CUDA
//! (`cudaGetDeviceProperties`) and that NVML does not give: the architecture
//! family, CUDA cores per SM, shared memory per SM, constant memory.
//!
//! v1 (docs/v1.md §5) knew families up to Pascal and printed `N/A`
//! from Volta on; this table covers every generation up to Blackwell.
//! Sources: the CUDA C Programming Guide, "Compute Capabilities" tables
//! ("Maximum amount of shared memory per SM", "Number of CUDA cores per SM"
//! as `_ConvertSMVer2Cores` in cuda-samples `helper_cuda.h`), and
//! `cudaDeviceProp::sharedMemPerMultiprocessor` as reported on each
//! generation. Constant memory has been 64 KiB on every generation.

/// What a compute capability implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchFacts {
    /// v1's `Family` (`Kepler`, ..., `Blackwell`).
    pub family: &'static str,
    /// CUDA cores per streaming multiprocessor.
    pub cores_per_sm: u32,
    /// Shared memory per SM, KiB (`sharedMemPerMultiprocessor`).
    pub shared_kib: u32,
}

/// Constant memory, KiB (`totalConstMem`), the same on every generation.
pub const CONSTANT_KIB: u32 = 64;

/// The facts for compute capability `major.minor`, `None` when unknown.
pub fn facts(major: u64, minor: u64) -> Option<ArchFacts> {
    let f = |family, cores_per_sm, shared_kib| {
        Some(ArchFacts {
            family,
            cores_per_sm,
            shared_kib,
        })
    };
    match (major, minor) {
        (1, _) => f("Tesla", 8, 16),
        (2, 0) => f("Fermi", 32, 48),
        (2, 1) => f("Fermi", 48, 48),
        (3, 7) => f("Kepler", 192, 112),
        (3, 0 | 2 | 5) => f("Kepler", 192, 48),
        (5, 2) => f("Maxwell", 128, 96),
        (5, 0 | 3) => f("Maxwell", 128, 64),
        (6, 0) => f("Pascal", 64, 64),
        (6, 1) => f("Pascal", 128, 96),
        (6, 2) => f("Pascal", 128, 64),
        (7, 0 | 2) => f("Volta", 64, 96),
        (7, 5) => f("Turing", 64, 64),
        (8, 0) | (8, 7) => f("Ampere", 64, 164),
        (8, 6) => f("Ampere", 128, 100),
        (8, 9) => f("Ada", 128, 100),
        (9, 0) => f("Hopper", 128, 228),
        (10, 0 | 1 | 3) | (11, 0) => f("Blackwell", 128, 228),
        (12, 0 | 1) => f("Blackwell", 128, 100),
        _ => None,
    }
}

/// The family for a compute capability whose minor the table does not
/// know: v1's rule was the major digit alone.
pub fn family_by_major(major: u64) -> Option<&'static str> {
    Some(match major {
        1 => "Tesla",
        2 => "Fermi",
        3 => "Kepler",
        5 => "Maxwell",
        6 => "Pascal",
        9 => "Hopper",
        10..=12 => "Blackwell",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_values_kept() {
        // v1's table (docs/v1.md §5): 1.x→8, 2.0→32, 2.1→48, 3.x→192,
        // 5.x→128, 6.0→64, 6.1/6.2→128.
        for (cc, cores) in [
            ((1, 3), 8),
            ((2, 0), 32),
            ((2, 1), 48),
            ((3, 7), 192),
            ((5, 2), 128),
            ((6, 0), 64),
            ((6, 1), 128),
            ((6, 2), 128),
        ] {
            assert_eq!(facts(cc.0, cc.1).unwrap().cores_per_sm, cores, "{cc:?}");
        }
        assert_eq!(facts(3, 7).unwrap().shared_kib, 112);
        assert_eq!(facts(3, 7).unwrap().family, "Kepler");
    }

    #[test]
    fn modern_generations() {
        assert_eq!(facts(7, 0).unwrap().family, "Volta");
        assert_eq!(facts(7, 5).unwrap().family, "Turing");
        assert_eq!(facts(8, 0).unwrap().family, "Ampere");
        assert_eq!(facts(8, 9).unwrap().family, "Ada");
        assert_eq!(facts(9, 0).unwrap().family, "Hopper");
        assert_eq!(facts(10, 0).unwrap().family, "Blackwell");
        assert_eq!(facts(12, 0).unwrap().family, "Blackwell");
        assert_eq!(facts(4, 0), None);
        assert_eq!(family_by_major(7), None);
        assert_eq!(family_by_major(3), Some("Kepler"));
    }
}
