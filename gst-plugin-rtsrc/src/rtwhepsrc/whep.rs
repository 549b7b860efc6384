//! The HTTP half of WHEP (RFC 9725): POST the SDP offer, read the answer and the session's
//! resource URL, DELETE that resource when the viewer leaves.

use rtmeta::mask::mask_uri;
use std::time::Duration;

/// A session the server created: its answer and where to DELETE it.
#[derive(Debug)]
pub struct Session {
    pub answer: String,
    pub resource: Option<String>,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `whep://` and `wheps://` (the URI handler's schemes) name `http://` and `https://` endpoints.
pub fn http_url(location: &str) -> String {
    if let Some(rest) = location.strip_prefix("wheps://") {
        format!("https://{rest}")
    } else if let Some(rest) = location.strip_prefix("whep://") {
        format!("http://{rest}")
    } else {
        location.to_string()
    }
}

/// POSTs `offer` to the endpoint. Errors say what the user can change.
pub fn post_offer(
    endpoint: &str,
    token: Option<&str>,
    offer: &str,
    timeout: Duration,
) -> Result<Session, String> {
    let shown = mask_uri(endpoint);
    let mut req = agent(timeout)
        .post(endpoint)
        .content_type("application/sdp");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req
        .send(offer.as_bytes())
        .map_err(|e| format!("could not reach the WHEP endpoint {shown}: {e}"))?;
    let status = resp.status();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => " (check auth-token)",
            404 => " (check location: is this the WHEP endpoint?)",
            _ => "",
        };
        let body = body.trim();
        let body = &body[..body.floor_char_boundary(200)];
        return Err(format!(
            "the WHEP endpoint {shown} refused the offer: HTTP {status}{hint}: {body}"
        ));
    }
    if !body.starts_with("v=0") {
        return Err(format!(
            "the WHEP endpoint {shown} answered HTTP {status} without an SDP answer"
        ));
    }
    let resource = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| resolve(endpoint, l));
    Ok(Session {
        answer: body,
        resource,
    })
}

/// Ends the session on the server. Failures are only reported: the viewer is leaving anyway.
pub fn delete(resource: &str, token: Option<&str>, timeout: Duration) -> Result<(), String> {
    let mut req = agent(timeout).delete(resource);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// Resolves the `Location` header (absolute, absolute-path or relative) against the endpoint.
pub fn resolve(endpoint: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let after_scheme = endpoint.find("://").map_or(0, |i| i + 3);
    let path_start = endpoint[after_scheme..]
        .find('/')
        .map_or(endpoint.len(), |i| after_scheme + i);
    if location.starts_with('/') {
        return format!("{}{location}", &endpoint[..path_start]);
    }
    let path = endpoint.split(['?', '#']).next().unwrap_or(endpoint);
    let dir = match path.rfind('/') {
        Some(i) if i >= path_start => &path[..=i],
        _ => return format!("{}/{location}", &endpoint[..path_start]),
    };
    format!("{dir}{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_resource_urls() {
        let ep = "http://10.0.0.2:8889/live/whep?x=1";
        assert_eq!(resolve(ep, "http://other/r/1"), "http://other/r/1");
        assert_eq!(resolve(ep, "/whep/abc"), "http://10.0.0.2:8889/whep/abc");
        assert_eq!(resolve(ep, "abc"), "http://10.0.0.2:8889/live/abc");
        assert_eq!(resolve("http://h:1", "abc"), "http://h:1/abc");
        assert_eq!(resolve("http://h:1", "/abc"), "http://h:1/abc");
    }

    #[test]
    fn whep_schemes_map_to_http() {
        assert_eq!(http_url("whep://h:8889/whep"), "http://h:8889/whep");
        assert_eq!(http_url("wheps://h/whep"), "https://h/whep");
        assert_eq!(http_url("http://h/whep"), "http://h/whep");
    }
}
