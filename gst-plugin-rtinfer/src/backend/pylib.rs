//! Where inference libraries shipped in Python wheels are looked for, in order: an
//! environment variable, the setup's virtual environment, an active one, the usual Python
//! prefixes, Debian's dist-packages and pyenv versions. One search for ONNX Runtime
//! (`onnxruntime/capi/libonnxruntime.so*`) and OpenVINO (`openvino/libs/libopenvino_c.so*`).

use std::path::{Path, PathBuf};

/// A library inside a wheel: its folder in site-packages and its file name prefix.
pub struct WheelLib {
    pub env_var: &'static str,
    pub folder: &'static str,
    pub file_prefix: &'static str,
}

/// Where the setup script installs its Python packages: `$RT_VENV`, else
/// `${XDG_DATA_HOME:-~/.local/share}/rtinfer/venv`.
fn setup_venv() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(v) = set("RT_VENV") {
        return Some(PathBuf::from(v));
    }
    let data = set("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("rtinfer/venv"))
}

impl WheelLib {
    /// Every candidate found, in the order to try (the newest version first within a folder).
    pub fn candidates(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        if let Some(p) = std::env::var_os(self.env_var).filter(|p| !p.is_empty()) {
            found.push(PathBuf::from(p));
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut prefixes: Vec<PathBuf> = Vec::new();
        prefixes.extend(setup_venv());
        prefixes.extend(
            std::env::var_os("VIRTUAL_ENV")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        );
        prefixes.push("/usr/local".into());
        prefixes.push("/usr".into());
        prefixes.extend(home.as_ref().map(|h| h.join(".local")));
        for p in &prefixes {
            self.in_prefix(p, &mut found);
        }
        self.in_site(Path::new("/usr/lib/python3/dist-packages"), &mut found);
        if let Some(h) = &home
            && let Ok(versions) = std::fs::read_dir(h.join(".pyenv/versions"))
        {
            for v in versions.flatten() {
                self.in_prefix(&v.path(), &mut found);
            }
        }
        found
    }

    /// Every site folder under `prefix/lib/python3*/`, newest Python first.
    fn in_prefix(&self, prefix: &Path, found: &mut Vec<PathBuf>) {
        for py in sorted_entries(&prefix.join("lib"), "python3") {
            for site in ["site-packages", "dist-packages"] {
                self.in_site(&py.join(site), found);
            }
        }
    }

    fn in_site(&self, site: &Path, found: &mut Vec<PathBuf>) {
        for lib in sorted_entries(&site.join(self.folder), self.file_prefix) {
            if !found.contains(&lib) {
                found.push(lib);
            }
        }
    }
}

/// Entries of `dir` whose names start with `prefix`, in reverse name order.
fn sorted_entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    paths.sort();
    paths.reverse();
    paths
}
