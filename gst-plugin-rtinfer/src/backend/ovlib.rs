//! Finding and loading OpenVINO's C library (`libopenvino_c.so`) at run time.
//!
//! PyPI's `openvino` wheel ships `openvino/libs/libopenvino_c.so.<version>` (e.g.
//! `libopenvino_c.so.2641` for 2026.4.1) with no unversioned link, next to `libopenvino.so`,
//! TBB and the device plugins; the libraries find each other through their `$ORIGIN` run path
//! and OpenVINO finds its plugins and frontends beside `libopenvino.so`, so no environment
//! variable is needed. The usual places of Python packages are searched as well as
//! `openvino-finder`'s (`OPENVINO_INSTALL_DIR`, `INTEL_OPENVINO_DIR`, `LD_LIBRARY_PATH`,
//! `/opt/intel/openvino`).
//!
//! The `openvino` crate keeps one library per process, so OpenVINO is loaded once; later calls
//! reuse it whatever path they name.

use super::pylib::WheelLib;
use super::{Error, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Environment variable naming the library file.
pub const ENV_VAR: &str = "OPENVINO_LIBRARY";

/// The oldest OpenVINO the `openvino` crate 0.11 works with (its element type numbering).
const MIN_VERSION: (u32, u32) = (2025, 1);

/// The library that was loaded, once one was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The file given to the loader (a bare name when the system loader found it).
    pub path: PathBuf,
    /// OpenVINO's build number, e.g. `2026.4.1-22982-e213a147257-releases/2026/4`.
    pub version: String,
}

static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

/// Every candidate, in the order tried: the explicit path alone if one is given, else
/// `OPENVINO_LIBRARY`, the setup's virtual environment, an active virtual environment, the
/// usual Python package folders, `openvino-finder`'s places, and finally the system loader's
/// search path.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut found = WheelLib {
        env_var: ENV_VAR,
        folder: "openvino/libs",
        file_prefix: "libopenvino_c.so",
    }
    .candidates();
    // OpenVINO archives and system packages (OPENVINO_INSTALL_DIR, INTEL_OPENVINO_DIR,
    // LD_LIBRARY_PATH, /opt/intel/openvino...).
    if let Some(p) = openvino_sys::library::find()
        && !found.contains(&p)
    {
        found.push(p);
    }
    found.push("libopenvino_c.so".into());
    found
}

/// Parses the start of a build number such as `2026.4.1-22982-...` into (year, minor).
fn year_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Opens `path` on its own to check that it is OpenVINO's C library, new enough for the
/// bindings, before handing it to the `openvino` crate (which keeps whatever it loaded for
/// the whole process, and panics on the first call of a function the library lacks).
fn probe(path: &Path) -> Result<String, String> {
    use openvino_sys::{ov_status_e, ov_version_t};
    type GetVersion = unsafe extern "C" fn(*mut ov_version_t) -> ov_status_e;
    type FreeVersion = unsafe extern "C" fn(*mut ov_version_t);
    // SAFETY: loading a shared library runs its initialisers; OpenVINO's (C++ static
    // constructors) have no preconditions.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // SAFETY: the types are those of the C API's declarations (openvino/c/ov_common.h).
    let (get, free) = unsafe {
        let get = lib
            .get::<GetVersion>(b"ov_get_openvino_version\0")
            .map_err(|_| format!("{}: not OpenVINO's C library", path.display()))?;
        let free = lib
            .get::<FreeVersion>(b"ov_version_free\0")
            .map_err(|_| format!("{}: not OpenVINO's C library", path.display()))?;
        lib.get::<unsafe extern "C" fn()>(b"ov_core_create\0")
            .map_err(|_| format!("{}: not OpenVINO's C library", path.display()))?;
        (*get, *free)
    };
    let mut v = ov_version_t {
        buildNumber: std::ptr::null(),
        description: std::ptr::null(),
    };
    // SAFETY: `v` is a valid out-parameter; the library stays loaded while `get`/`free` run.
    let version = unsafe {
        if get(&mut v) != ov_status_e::OK || v.buildNumber.is_null() {
            return Err(format!("{}: OpenVINO reports no version", path.display()));
        }
        let s = std::ffi::CStr::from_ptr(v.buildNumber)
            .to_string_lossy()
            .into_owned();
        free(&mut v);
        s
    };
    match year_minor(&version) {
        Some(ym) if ym >= MIN_VERSION => Ok(version),
        _ => Err(format!(
            "{}: OpenVINO {version} is too old (rtinfer needs {}.{} or newer)",
            path.display(),
            MIN_VERSION.0,
            MIN_VERSION.1
        )),
    }
}

/// Whether `a` and `b` name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Loads OpenVINO (once per process) and says which library runs.
///
/// Once a library is loaded it is reused; an explicit path naming another file is then an
/// error, since a process can hold only one OpenVINO.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, Error> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = loaded.as_ref() {
        return match explicit {
            Some(p) if !same_file(p, &l.path) => Err(Error::new(
                ErrorKind::Library,
                format!(
                    "OpenVINO {} is already loaded in this process from {}; {}{} cannot be \
                     loaded as well (one OpenVINO per process)",
                    l.version,
                    l.path.display(),
                    p.display(),
                    if p.exists() { "" } else { " (no such file)" }
                ),
            )),
            _ => Ok(l.clone()),
        };
    }
    let mut tried = Vec::new();
    for path in candidates(explicit) {
        // A bare file name goes to the system loader; a path must exist.
        if path.components().count() > 1 && !path.exists() {
            tried.push(format!("{}: no such file", path.display()));
            continue;
        }
        let version = match probe(&path) {
            Ok(v) => v,
            Err(e) => {
                tried.push(e);
                continue;
            }
        };
        match openvino_sys::library::load_from(path.clone()) {
            Ok(()) => {
                let l = Loaded { path, version };
                *loaded = Some(l.clone());
                return Ok(l);
            }
            Err(e) => tried.push(e),
        }
    }
    Err(Error::new(
        ErrorKind::Library,
        format!(
            "OpenVINO ({}.{} or newer) could not be loaded. Install it with `pip install \
             openvino` (e.g. into the setup's virtual environment, ~/.local/share/rtinfer/venv), \
             then set the openvino-library property or {ENV_VAR} to its \
             openvino/libs/libopenvino_c.so.<version>. Tried: {}",
            MIN_VERSION.0,
            MIN_VERSION.1,
            tried.join("; ")
        ),
    ))
}

/// The library loaded so far, if any.
pub fn loaded() -> Option<Loaded> {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_build_numbers() {
        assert_eq!(
            year_minor("2026.4.1-22982-e213a147257-releases/2026/4"),
            Some((2026, 4))
        );
        assert_eq!(
            year_minor("2024.6.0-17404-4c0f47d2335-releases/2024/6"),
            Some((2024, 6))
        );
        assert_eq!(year_minor("custom"), None);
    }

    #[test]
    fn an_explicit_path_is_the_only_candidate() {
        let p = Path::new("/nowhere/libopenvino_c.so.2641");
        assert_eq!(candidates(Some(p)), vec![p.to_path_buf()]);
    }

    #[test]
    fn a_file_that_is_not_openvino_is_refused_by_the_probe() {
        // libc is a shared library, but not OpenVINO's C API.
        let e = probe(Path::new("libc.so.6")).unwrap_err();
        assert!(e.contains("not OpenVINO's C library"), "{e}");
    }
}
