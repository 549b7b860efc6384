//! Finding and loading the ONNX Runtime shared library at run time.
//!
//! PyPI's `onnxruntime` wheel ships `onnxruntime/capi/libonnxruntime.so.<version>` with no
//! unversioned link, so the usual places of Python packages are searched as well.
//! ONNX Runtime can be loaded once per process; later calls reuse it.

use super::{Error, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Environment variable naming the library (shared with the `ort` crate's convention).
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// The environment and the library file it came from.
static ENVIRONMENT: Mutex<Option<(ort::environment::Environment, PathBuf)>> = Mutex::new(None);

/// Where the setup script installs ONNX Runtime (a Python virtual environment).
fn setup_venv() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("rtinfer/venv"))
}

/// `libonnxruntime.so*` files in the `onnxruntime/capi` folder of every Python site folder
/// under `prefix/lib/python3*/`.
fn in_python_prefix(prefix: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(prefix.join("lib")) else {
        return;
    };
    let mut pythons: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
        })
        .collect();
    pythons.sort();
    for py in pythons.iter().rev() {
        for site in ["site-packages", "dist-packages"] {
            in_capi(&py.join(site), found);
        }
    }
}

fn in_capi(site: &Path, found: &mut Vec<PathBuf>) {
    let capi = site.join("onnxruntime/capi");
    let Ok(entries) = std::fs::read_dir(&capi) else {
        return;
    };
    let mut libs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
        })
        .collect();
    libs.sort();
    found.extend(libs.into_iter().rev());
}

/// Every candidate, in the order tried: the explicit path alone if one is given, else
/// `ORT_DYLIB_PATH`, the setup's virtual environment, an active virtual environment, the
/// usual Python package folders, and finally the system loader's search path.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut found = Vec::new();
    if let Some(p) = std::env::var_os(ENV_VAR).filter(|p| !p.is_empty()) {
        found.push(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut prefixes: Vec<PathBuf> = Vec::new();
    prefixes.extend(setup_venv());
    prefixes.extend(std::env::var_os("VIRTUAL_ENV").map(PathBuf::from));
    prefixes.push("/usr/local".into());
    prefixes.push("/usr".into());
    if let Some(h) = &home {
        prefixes.push(h.join(".local"));
    }
    for p in &prefixes {
        in_python_prefix(p, &mut found);
    }
    in_capi(Path::new("/usr/lib/python3/dist-packages"), &mut found);
    if let Some(h) = &home
        && let Ok(versions) = std::fs::read_dir(h.join(".pyenv/versions"))
    {
        for v in versions.flatten() {
            in_python_prefix(&v.path(), &mut found);
        }
    }
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
