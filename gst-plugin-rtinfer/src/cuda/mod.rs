//! CUDA through cudarc with dynamic loading: nothing links against CUDA, so the plugin loads
//! and runs on hosts without a driver. Every entry point checks for the library first
//! (cudarc panics when it is missing) and turns failures into reasons a user can act on.

pub mod kernel;

use cudarc::driver::{CudaContext, DriverError};
use std::sync::Arc;

/// Why CUDA cannot be used, or what failed on the device.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no NVIDIA driver: libcuda.so.1 was not found")]
    NoDriver,
    /// cudarc panicked: a symbol it needs is missing from the driver library.
    #[error("the CUDA driver library is unusable (too old?)")]
    UnusableDriver,
    #[error("cuda:{ordinal} does not exist: this host has {count} CUDA device(s)")]
    NoSuchDevice { ordinal: u32, count: i32 },
    #[error(
        "NVRTC (libnvrtc.so) was not found: install the CUDA toolkit or \
         `pip install nvidia-cuda-nvrtc` and add its lib folder to LD_LIBRARY_PATH"
    )]
    NoNvrtc,
    /// NVRTC's log.
    #[error("the preprocessing kernel did not compile: {0}")]
    Compile(String),
    #[error("{0:?} frames are not supported on CUDA")]
    Format(gst_video::VideoFormat),
    /// A driver call failed; `what` says which step.
    #[error("{what}: {source}")]
    Driver { what: String, source: DriverError },
}

impl CudaError {
    fn driver(what: impl Into<String>) -> impl FnOnce(DriverError) -> Self {
        let what = what.into();
        move |source| CudaError::Driver { what, source }
    }
}

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
fn guarded<T>(f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or(Err(CudaError::UnusableDriver))
}

impl Device {
    pub fn open(ordinal: u32) -> Result<Device, CudaError> {
        if !driver_present() {
            return Err(CudaError::NoDriver);
        }
        guarded(|| {
            let count = CudaContext::device_count().map_err(CudaError::driver("CUDA"))?;
            if ordinal as i32 >= count {
                return Err(CudaError::NoSuchDevice { ordinal, count });
            }
            let ctx = CudaContext::new(ordinal as usize).map_err(CudaError::driver(format!(
                "cuda:{ordinal} cannot be opened"
            )))?;
            let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
            Ok(Device { ordinal, name, ctx })
        })
    }
}
