//! The NVML calls `nvml-wrapper` 0.13 does not wrap: a MIG device's GPU
//! instance and compute instance ids (`nvmlDeviceGetGpuInstanceId`,
//! `nvmlDeviceGetComputeInstanceId`), through the symbols the wrapper
//! already resolved from the loaded library.
use std::ffi::c_uint;

use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::{Device, Nvml};

/// `(GPU instance id, compute instance id)` of MIG device `mig`.
pub fn mig_instance_ids(nvml: &Nvml, mig: &Device<'_>) -> Result<(u32, u32), NvmlError> {
    let lib = nvml.lib();
    let gi_sym = nvml_sym(lib.nvmlDeviceGetGpuInstanceId.as_ref())?;
    let ci_sym = nvml_sym(lib.nvmlDeviceGetComputeInstanceId.as_ref())?;
    let (mut gi, mut ci): (c_uint, c_uint) = (0, 0);
    // SAFETY: both symbols were resolved by nvml-wrapper from the library
    // `nvml` loaded and initialised, with the C signatures nvml-wrapper-sys
    // declares (`(nvmlDevice_t, unsigned int *)`); the handle is one that
    // library gave (`mig` borrows `nvml`, so it is still initialised), and
    // the out-pointers are valid locals that outlive the calls.
    unsafe {
        nvml_try(gi_sym(mig.handle(), &mut gi))?;
        nvml_try(ci_sym(mig.handle(), &mut ci))?;
    }
    Ok((gi, ci))
}
