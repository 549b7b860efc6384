//! CUDA through cudarc with dynamic loading: nothing links against CUDA, so the plugin loads
//! and runs on hosts without a driver. Every entry point checks for the library first
//! (cudarc panics when it is missing) and turns failures into reasons a user can act on.

pub mod kernel;

use cudarc::driver::CudaContext;
use std::sync::Arc;

/// An opened CUDA device (its primary context).
#[derive(Clone)]
pub struct Device {
    pub ordinal: u32,
    pub name: String,
    pub ctx: Arc<CudaContext>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cuda:{} ({})", self.ordinal, self.name)
    }
}

/// Whether the driver library (libcuda.so.1, installed with the NVIDIA driver) loads.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its usual names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether NVRTC (libnvrtc.so, from the CUDA toolkit or PyPI's nvidia-cuda-nvrtc) loads.
pub fn nvrtc_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Runs `f`, turning a cudarc panic (a symbol missing from an old driver) into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("the CUDA driver library is unusable (too old?)".into()))
}

impl Device {
    pub fn open(ordinal: u32) -> Result<Device, String> {
        if !driver_present() {
            return Err("no NVIDIA driver: libcuda.so.1 was not found".into());
        }
        guarded(|| {
            let count = CudaContext::device_count().map_err(|e| format!("CUDA: {e}"))?;
            if ordinal as i32 >= count {
                return Err(format!(
                    "cuda:{ordinal} does not exist: this host has {count} CUDA device(s)"
                ));
            }
            let ctx = CudaContext::new(ordinal as usize)
                .map_err(|e| format!("cuda:{ordinal} cannot be opened: {e}"))?;
            let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
            Ok(Device { ordinal, name, ctx })
        })
    }
}
