//! Hiding credentials: `rtsp://user:secret@host/x` is shown as `rtsp://user:***@host/x`.

/// Masks the password of a URI's `user:password@` part, and any other occurrence of it in
/// `text` (error messages of inner elements may quote the URI).
pub fn mask_in(text: &str, uri: &str) -> String {
    match password(uri) {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

/// The URI with its password masked.
pub fn mask_uri(uri: &str) -> String {
    mask_in(uri, uri)
}

fn password(uri: &str) -> Option<&str> {
    let rest = &uri[uri.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(&userinfo[userinfo.find(':')? + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_only() {
        assert_eq!(
            mask_uri("rtsp://admin:s3cr%40t@10.0.0.2:554/live"),
            "rtsp://admin:***@10.0.0.2:554/live"
        );
        assert_eq!(mask_uri("rtsp://10.0.0.2/live"), "rtsp://10.0.0.2/live");
        assert_eq!(mask_uri("rtsp://user@host/x"), "rtsp://user@host/x");
        assert_eq!(mask_uri("file:///tmp/a@b:c.mp4"), "file:///tmp/a@b:c.mp4");
        let msg = "Could not open rtsp://u:pw123@h/x (pw123 rejected)";
        assert_eq!(
            mask_in(msg, "rtsp://u:pw123@h/x"),
            "Could not open rtsp://u:***@h/x (*** rejected)"
        );
    }
}
