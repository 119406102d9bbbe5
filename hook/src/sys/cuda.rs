//! The CUDA driver API, through `cudarc` (loaded at run time): the per-GPU
//! attributes nvidia-docker v1's `/gpu/info` printed from
//! `cudaGetDeviceProperties` (SM count, L2 cache, shared memory per SM,
//! constant memory). The hook itself never calls this; the v1 daemon does,
//! once per inventory.
//!
//! `cudarc` finds `libcuda` by name through the dynamic linker. So that the
//! driver root's library is the one used (a containerised driver, a
//! simulated host), [`device_attributes`] first loads it by path and keeps
//! it loaded for the life of the process: `cudarc`'s later
//! `dlopen("libcuda.so.1")` then finds it by its soname. (A host whose own
//! search path has a `libcuda.so` development link answers that name first;
//! on a host with its driver at `/` both are the same library.)
//!
//! If `cudarc` loaded another `libcuda.so*` anyway (seen in
//! `/proc/self/maps`), its answers are discarded with an error naming both.
//!
//! Only what cannot be done without `unsafe` is here (loading the library,
//! `cuDeviceGetAttribute`); `cudarc` panics on a missing symbol, which is
//! caught and reported as an error.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cudarc::driver::{result, sys};

/// Why the attributes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// The driver root's libcuda could not be loaded.
    #[error("cannot load {}", path.display())]
    Load {
        /// The library.
        path: PathBuf,
        /// The cause.
        #[source]
        source: libloading::Error,
    },
    /// A driver API call failed (`cuInit` without a usable GPU, ...).
    #[error("{call} failed ({source}) with {}", path.display())]
    Driver {
        /// The call.
        call: &'static str,
        /// The library.
        path: PathBuf,
        /// The CUDA error.
        #[source]
        source: result::DriverError,
    },
    /// `cudarc` bound to another libcuda than the driver root's (one its
    /// search by name found first): its answers are not used.
    #[error("the CUDA driver API was loaded from {} instead of {}", found.display(), path.display())]
    OtherLibrary {
        /// The driver root's library.
        path: PathBuf,
        /// The one mapped instead.
        found: PathBuf,
    },
    /// `cudarc` found no libcuda, or the library lacks a function (a stub or
    /// a stand-in without code).
    #[error("{} is not a usable CUDA driver: {message}", path.display())]
    Unusable {
        /// The library.
        path: PathBuf,
        /// What `cudarc` said.
        message: String,
    },
}

/// What `cuDeviceGetAttribute` says about one GPU (`None`: not supported).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceAttributes {
    /// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (`cuDeviceGetUuid`).
    pub uuid: String,
    /// Streaming multiprocessors.
    pub sm_count: Option<u32>,
    /// L2 cache, bytes.
    pub l2_cache: Option<u32>,
    /// Shared memory per SM, bytes.
    pub shared_memory_per_sm: Option<u32>,
    /// Constant memory, bytes.
    pub constant_memory: Option<u32>,
}

/// The library loaded by path, kept for the life of the process (the first
/// one loaded: `cudarc` binds to one libcuda per process).
static LOADED: Mutex<Option<(PathBuf, libloading::Library)>> = Mutex::new(None);

fn preload(path: &Path) -> Result<(), CudaError> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if loaded.is_some() {
        return Ok(());
    }
    // SAFETY: loading runs the library's initialisers; it is the driver's
    // own libcuda (from the inventory, inside the driver root), which any
    // CUDA program on this host loads the same way. No symbol is used
    // through this handle; it only keeps the library mapped.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|source| CudaError::Load {
        path: path.to_path_buf(),
        source,
    })?;
    *loaded = Some((path.to_path_buf(), lib));
    Ok(())
}

/// `cuInit`, then every visible GPU's UUID and attributes, from the libcuda
/// at `path`.
pub fn device_attributes(path: &Path) -> Result<Vec<DeviceAttributes>, CudaError> {
    preload(path)?;
    let driver = |call| {
        move |source| CudaError::Driver {
            call,
            path: path.to_path_buf(),
            source,
        }
    };
    let run = || -> Result<Vec<DeviceAttributes>, CudaError> {
        result::init().map_err(driver("cuInit"))?;
        let count = result::device::get_count().map_err(driver("cuDeviceGetCount"))?;
        (0..count)
            .map(|ordinal| {
                let dev = result::device::get(ordinal).map_err(driver("cuDeviceGet"))?;
                let uuid = result::device::get_uuid(dev).map_err(driver("cuDeviceGetUuid"))?;
                let attr = |a: sys::CUdevice_attribute| {
                    // SAFETY: `dev` came from cuDeviceGet, as cudarc requires.
                    let v = unsafe { result::device::get_attribute(dev, a) };
                    v.ok().and_then(|v| u32::try_from(v).ok())
                };
                use sys::CUdevice_attribute as A;
                Ok(DeviceAttributes {
                    uuid: format_uuid(&uuid.bytes),
                    sm_count: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
                    l2_cache: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
                    shared_memory_per_sm: attr(
                        A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
                    ),
                    constant_memory: attr(A::CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY),
                })
            })
            .collect()
    };
    let outcome = catch_unwind(AssertUnwindSafe(run));
    if let Some(found) = other_libcuda(path) {
        return Err(CudaError::OtherLibrary {
            path: path.to_path_buf(),
            found,
        });
    }
    match outcome {
        Ok(r) => r,
        Err(panic) => Err(CudaError::Unusable {
            path: path.to_path_buf(),
            message: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "cudarc panicked".to_owned()),
        }),
    }
}

/// A `libcuda.so*` file mapped into this process other than `path` (by its
/// resolved name), from `/proc/self/maps`: what `cudarc`'s search by name
/// loaded when it did not bind to the library loaded by path.
fn other_libcuda(path: &Path) -> Option<PathBuf> {
    let ours = std::fs::canonicalize(path).ok()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(PathBuf::from)
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libcuda.so"))
                && *p != ours
        })
}

/// `GPU-` and the 16 bytes as NVML prints a UUID.
pub fn format_uuid(bytes: &[std::ffi::c_char; 16]) -> String {
    let b: Vec<u8> = bytes.iter().map(|&c| c as u8).collect();
    format!(
        "GPU-{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
        b[14], b[15]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_print_like_nvml() {
        let mut bytes = [0 as std::ffi::c_char; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (0xa0u8.wrapping_add(i as u8)) as std::ffi::c_char;
        }
        assert_eq!(
            format_uuid(&bytes),
            "GPU-a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf"
        );
    }

    #[test]
    fn a_library_without_the_driver_api_is_unusable_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libcuda.so.1");
        let stub = fixtures::elf::SharedObject::new(fixtures::elf::Arch::X86_64, "libcuda.so.1")
            .with_needed(["libc.so.6"]);
        std::fs::write(&path, stub.to_bytes().unwrap()).unwrap();
        match device_attributes(&path) {
            Err(CudaError::Unusable { message, .. }) => {
                assert!(message.contains("cuInit"), "{message}")
            }
            // Under `cargo test`, LD_LIBRARY_PATH has target/<profile>, where
            // the mock libcuda's build output answers cudarc's first name.
            Err(CudaError::OtherLibrary { found, .. }) => {
                assert!(found.ends_with("libcuda.so"), "{found:?}")
            }
            other => {
                // Only if another test loaded a libcuda into this process first.
                let loaded = LOADED.lock().unwrap();
                assert!(
                    loaded.as_ref().is_some_and(|(p, _)| *p != path),
                    "{other:?}"
                );
            }
        }
    }

    #[test]
    fn a_missing_library_is_a_load_error() {
        let err = preload(Path::new("/nonexistent/libcuda.so.1"));
        // Another test in this process may have loaded one already.
        if LOADED.lock().unwrap().is_none() {
            assert!(matches!(err, Err(CudaError::Load { .. })), "{err:?}");
        }
    }
}
