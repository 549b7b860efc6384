//! Finding and loading the ONNX Runtime shared library at run time.
//!
//! PyPI's `onnxruntime` wheel ships `onnxruntime/capi/libonnxruntime.so.<version>` with no
//! unversioned link, so the usual places of Python packages are searched as well.
//! ONNX Runtime can be loaded once per process; later calls reuse it.

use super::pylib::WheelLib;
use super::{Error, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Environment variable naming the library (shared with the `ort` crate's convention).
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// The environment and the library file it came from.
static ENVIRONMENT: Mutex<Option<(ort::environment::Environment, PathBuf)>> = Mutex::new(None);

/// Every candidate, in the order tried: the explicit path alone if one is given, else
/// `ORT_DYLIB_PATH`, the setup's virtual environment, an active virtual environment, the
/// usual Python package folders, and finally the system loader's search path.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut found = WheelLib {
        env_var: ENV_VAR,
        folder: "onnxruntime/capi",
        file_prefix: "libonnxruntime.so",
    }
    .candidates();
    found.push("libonnxruntime.so".into());
    found.push("libonnxruntime.so.1".into());
    found
}

/// Loads ONNX Runtime (once per process) and returns its environment and library path.
pub fn environment(
    explicit: Option<&Path>,
) -> Result<(ort::environment::Environment, PathBuf), Error> {
    let mut env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = env.as_ref() {
        return Ok(env.clone());
    }
    let mut tried = Vec::new();
    for path in candidates(explicit) {
        // A bare file name goes to the system loader; a path must exist.
        if path.components().count() > 1 && !path.exists() {
            tried.push(format!("{}: no such file", path.display()));
            continue;
        }
        match ort::init_from(&path) {
            Ok(builder) => {
                let built = builder
                    .with_name("rtinfer")
                    .build()
                    .map_err(|e| Error::new(ErrorKind::Library, format!("ONNX Runtime: {e}")))?;
                *env = Some((built.clone(), path.clone()));
                return Ok((built, path));
            }
            Err(e) => tried.push(e.to_string()),
        }
    }
    Err(Error::new(
        ErrorKind::Library,
        format!(
            "ONNX Runtime (1.20 or newer) could not be loaded. Install it with \
             `pip install onnxruntime` (or run scripts/setup.sh), then set the \
             onnxruntime-library property or {ENV_VAR} to its libonnxruntime.so. Tried: {}",
            tried.join("; ")
        ),
    ))
}
