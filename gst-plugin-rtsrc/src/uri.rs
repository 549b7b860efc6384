//! What `rturisrcbin` refuses before its first attempt: the problems with a URI that no retry
//! can fix.

use gst::glib;
use rtmeta::mask::mask_uri;
use std::path::PathBuf;

/// Why a URI cannot be played. URIs in it are masked.
#[derive(Debug, thiserror::Error)]
pub enum UriError {
    #[error("No URI: set the uri property")]
    Missing,
    #[error("\"{0}\" is not a URI")]
    NotAUri(String),
    /// No element handles the scheme: a plugin is missing (or the URI is mistyped).
    #[error(
        "No GStreamer element reads {0}:// URIs: check the URI, or install the plugin for it \
         (rtsp and http are in gstreamer1.0-plugins-good)"
    )]
    NoElement(String),
    #[error("{uri} is not a valid file URI: {why}")]
    BadFileUri { uri: String, why: glib::Error },
    #[error("Cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("{} is empty", .0.display())]
    Empty(PathBuf),
}

impl UriError {
    /// Whether a plugin is missing (`CoreError::MissingPlugin`); the rest are resource errors
    /// (`resource_error`).
    pub fn is_missing_plugin(&self) -> bool {
        matches!(self, UriError::NoElement(_))
    }

    /// The resource error for everything but a missing plugin: a file that exists but may not
    /// be read is `OpenRead`, anything else `NotFound`.
    pub fn resource_error(&self) -> gst::ResourceError {
        match self {
            UriError::Unreadable { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                gst::ResourceError::OpenRead
            }
            _ => gst::ResourceError::NotFound,
        }
    }
}

/// Problems with a URI that retrying cannot fix: none given, no scheme, no element handles its
/// scheme, or a local file that is missing, unreadable, empty or not a file.
pub fn check_uri(uri: &str) -> Result<(), UriError> {
    if uri.is_empty() {
        return Err(UriError::Missing);
    }
    let scheme = match uri.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            scheme.to_ascii_lowercase()
        }
        _ => return Err(UriError::NotAUri(mask_uri(uri))),
    };
    if gst::Element::make_from_uri(gst::URIType::Src, uri, None).is_err() {
        return Err(UriError::NoElement(scheme));
    }
    if scheme == "file" {
        let (path, _) = glib::filename_from_uri(uri).map_err(|why| UriError::BadFileUri {
            uri: uri.to_string(),
            why,
        })?;
        let meta = std::fs::metadata(&path).map_err(|source| UriError::Unreadable {
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(UriError::NotAFile(path));
        }
        if meta.len() == 0 {
            return Err(UriError::Empty(path));
        }
        // A file that exists but may not be read: open it, as the source would.
        std::fs::File::open(&path).map_err(|source| UriError::Unreadable { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_has_its_error() {
        gst::init().unwrap();
        let dir = std::env::temp_dir().join(format!("rtsrc-uri-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        let full = dir.join("full.mp4");
        std::fs::write(&full, b"x").unwrap();
        let uri = |p: &std::path::Path| format!("file://{}", p.display());
        assert!(matches!(check_uri(""), Err(UriError::Missing)));
        let e = check_uri("rtsp:/admin:pw@cam/x").unwrap_err();
        assert!(matches!(e, UriError::NotAUri(_)), "{e}");
        let e = check_uri("foo://x").unwrap_err();
        assert!(
            e.is_missing_plugin() && e.to_string().contains("foo://"),
            "{e}"
        );
        let e = check_uri("file:///nonexistent/x.mp4").unwrap_err();
        assert_eq!(e.resource_error(), gst::ResourceError::NotFound, "{e}");
        assert!(matches!(check_uri(&uri(&dir)), Err(UriError::NotAFile(_))));
        assert!(matches!(check_uri(&uri(&empty)), Err(UriError::Empty(_))));
        assert!(check_uri(&uri(&full)).is_ok());
        assert!(check_uri("rtsp://admin:pw@127.0.0.1:1/x").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
