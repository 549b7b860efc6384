//! Hiding credentials in URIs before they reach a log line, a bus message or a property:
//! `rtsp://user:secret@host/x` is shown as `rtsp://user:***@host/x`, `http://TOKEN@host/x`
//! as `http://***@host/x` and `http://host/x?token=abc` as `http://host/x?token=***`.
//! Also the decoding of percent-encoded credentials (a URL's user or password, a token kept
//! in a cookie).

use std::ops::Range;

/// Query parameters whose name contains one of these (ignoring case) carry a secret.
const SECRET_PARAMS: &[&str] = &["token", "pass", "pwd", "secret", "key", "auth", "sig"];

/// Where the secrets of `uri` are, in order: the password of its `user:password@` part (the
/// user part itself when it has no password: then it is usually an API token), and the
/// values of query parameters named like a secret.
fn secrets(uri: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let Some(start) = uri.find("://").map(|i| i + 3) else {
        return found;
    };
    let rest = &uri[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if let Some(at) = authority.rfind('@') {
        let from = authority[..at].find(':').map_or(0, |c| c + 1);
        found.push(start + from..start + at);
    }
    if let Some(q) = uri.find('?').filter(|&q| q >= start + authority.len()) {
        let end = uri[q..].find('#').map_or(uri.len(), |h| q + h);
        let mut pos = q + 1;
        for param in uri[q + 1..end].split('&') {
            if let Some((name, value)) = param.split_once('=') {
                let name = name.to_ascii_lowercase();
                if SECRET_PARAMS.iter().any(|s| name.contains(s)) {
                    let from = pos + param.len() - value.len();
                    found.push(from..from + value.len());
                }
            }
            pos += param.len() + 1;
        }
    }
    found.retain(|r| !r.is_empty());
    found
}

/// Where the secrets of a webhook URL may be: its user part, and its whole path and query
/// (Slack, Discord and Teams webhooks keep their secret in the path, Azure's in `code=`).
fn webhook_secrets(uri: &str) -> Vec<Range<usize>> {
    let mut found = secrets(uri);
    if let Some(start) = uri.find("://").map(|i| i + 3) {
        let rest = &uri[start..];
        if let Some(p) = rest.find(['/', '?', '#']) {
            // After the path's first `/`, so the shown URL still reads as one.
            let from = start + p + usize::from(rest[p..].starts_with(['/', '?']));
            found.retain(|r| r.end <= from);
            found.push(from..uri.len());
        }
    }
    found.retain(|r| !r.is_empty());
    found
}

fn mask_ranges(uri: &str, ranges: Vec<Range<usize>>) -> String {
    let mut out = uri.to_string();
    for r in ranges.into_iter().rev() {
        out.replace_range(r, "***");
    }
    out
}

/// The URI with its secrets masked.
pub fn mask_uri(uri: &str) -> String {
    mask_ranges(uri, secrets(uri))
}

/// A webhook URL as shown in names, stats, metrics and messages: scheme, host and port only
/// (`https://hooks.slack.com/***`).
pub fn mask_webhook(uri: &str) -> String {
    mask_ranges(uri, webhook_secrets(uri))
}

/// `text` with `uri` masked wherever it occurs, and its secrets too wherever they occur alone
/// (error messages of inner elements and libraries may quote the URI, or parts of it).
pub fn mask_in(text: &str, uri: &str) -> String {
    mask_in_with(text, uri, secrets(uri), mask_uri(uri))
}

/// [`mask_in`] for a webhook URL ([`mask_webhook`]).
pub fn mask_webhook_in(text: &str, uri: &str) -> String {
    mask_in_with(text, uri, webhook_secrets(uri), mask_webhook(uri))
}

fn mask_in_with(text: &str, uri: &str, ranges: Vec<Range<usize>>, masked: String) -> String {
    let secrets: Vec<&str> = ranges.into_iter().map(|r| &uri[r]).collect();
    if secrets.is_empty() {
        return text.to_string();
    }
    let bare = |part: &str| {
        secrets
            .iter()
            .fold(part.to_string(), |t, s| t.replace(s, "***"))
    };
    text.split(uri).map(bare).collect::<Vec<_>>().join(&masked)
}

/// `text` with every URI in it (`scheme://...` up to a space or quote) masked, for text
/// that may quote any of them (a config parser's error).
pub fn mask_uris_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        let start = rest[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[sep..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .map_or(rest.len(), |i| sep + i);
        out.push_str(&rest[..start]);
        out.push_str(&mask_uri(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Decodes `%XX` escapes (a user, password or token may hold `@`, `:`, `/`, `+` or `=`);
/// None for a malformed escape or text that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_and_keeps_the_user() {
        assert_eq!(
            mask_uri("rtsp://admin:s3cr%40t@10.0.0.2:554/live"),
            "rtsp://admin:***@10.0.0.2:554/live"
        );
        // The host is shown even when the password is the same word.
        assert_eq!(mask_uri("http://u:host@host/x"), "http://u:***@host/x");
    }

    #[test]
    fn masks_a_user_part_without_password() {
        assert_eq!(
            mask_uri("https://ghp_T0KEN@hooks.example.com/a"),
            "https://***@hooks.example.com/a"
        );
        assert_eq!(mask_uri("rtsp://user@host/x"), "rtsp://***@host/x");
    }

    #[test]
    fn masks_secret_query_parameters_whatever_their_case() {
        assert_eq!(
            mask_uri("http://h/x?token=abc&a=1&Access_Token=def#top"),
            "http://h/x?token=***&a=1&Access_Token=***#top"
        );
        for name in ["password", "key", "apiKey", "secret", "auth", "PWD", "sig"] {
            assert_eq!(
                mask_uri(&format!("https://h/x?q=1&{name}=v4lue")),
                format!("https://h/x?q=1&{name}=***"),
                "{name}"
            );
        }
        assert_eq!(
            mask_uri("mqtt://u:p@h:1883/t?auth=x"),
            "mqtt://u:***@h:1883/t?auth=***"
        );
    }

    #[test]
    fn webhook_urls_show_only_where_they_go() {
        let slack = "https://hooks.slack.com/services/T000/B000/SLACKSECRET";
        assert_eq!(mask_webhook(slack), "https://hooks.slack.com/***");
        assert_eq!(
            mask_webhook("https://me:pw@fn.azurewebsites.net/api/hook?code=AZSECRET"),
            "https://me:***@fn.azurewebsites.net/***"
        );
        assert_eq!(
            mask_webhook("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            mask_webhook("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000/"
        );
        assert_eq!(mask_webhook("http://h?k=SECRET"), "http://h?***");
        let text = format!("POST {slack}: refused (path /services/T000/B000/SLACKSECRET)");
        let masked = mask_webhook_in(&text, slack);
        assert!(!masked.contains("SLACKSECRET"), "{masked}");
        assert!(masked.contains("https://hooks.slack.com/***"), "{masked}");
    }

    #[test]
    fn masks_every_uri_quoted_in_text() {
        let text = "sources[0]: invalid type: string \"rtsp://admin:Hunter2@10.0.0.5/s\", \
                    expected a map; also http://h/x?token=abc and ftp://plain/";
        assert_eq!(
            mask_uris_in(text),
            "sources[0]: invalid type: string \"rtsp://admin:***@10.0.0.5/s\", expected a \
             map; also http://h/x?token=*** and ftp://plain/"
        );
        assert_eq!(mask_uris_in("no uri here"), "no uri here");
    }

    #[test]
    fn leaves_uris_without_secrets_alone() {
        for uri in [
            "rtsp://10.0.0.2/live",
            "file:///tmp/a@b:c.mp4",
            "http://h/x?page=2&token=",
            "http://h/x?q=a@b",
            "not a uri",
            "",
        ] {
            assert_eq!(mask_uri(uri), uri);
        }
    }

    #[test]
    fn masks_the_uri_and_its_secrets_in_text() {
        let msg = "Could not open rtsp://u:pw123@h/x (pw123 rejected)";
        assert_eq!(
            mask_in(msg, "rtsp://u:pw123@h/x"),
            "Could not open rtsp://u:***@h/x (*** rejected)"
        );
        let uri = "http://tok@host/x?key=k3y";
        assert_eq!(
            mask_in(&format!("{uri}: bad key k3y for tok at host"), uri),
            "http://***@host/x?key=***: bad key *** for *** at host"
        );
        assert_eq!(mask_in("nothing to hide", "rtsp://h/x"), "nothing to hide");
    }
}
