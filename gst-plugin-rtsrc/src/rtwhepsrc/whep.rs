//! The HTTP half of WHEP (RFC 9725): POST the SDP offer, read the answer and the session's
//! resource URL, DELETE that resource when the viewer leaves.

use rtmeta::mask::mask_uri;
use std::time::Duration;

/// Why the HTTP half failed. Endpoints in it are masked.
#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    #[error("could not reach the WHEP endpoint {endpoint}: {source}")]
    Unreachable {
        endpoint: String,
        source: ureq::Error,
    },
    #[error("the WHEP endpoint {endpoint} refused the offer: HTTP {status}{}: {body}", refusal_hint(*.status))]
    Refused {
        endpoint: String,
        status: ureq::http::StatusCode,
        /// The start of the server's explanation.
        body: String,
    },
    #[error(
        "the WHEP endpoint {endpoint} answered HTTP {status} with {what} instead of an SDP answer{cleanup}"
    )]
    NotSdp {
        endpoint: String,
        status: ureq::http::StatusCode,
        what: String,
        /// What became of the session the server may have created.
        cleanup: String,
    },
    #[error("HTTP {0}")]
    Status(ureq::http::StatusCode),
    #[error(transparent)]
    Http(#[from] ureq::Error),
}

fn refusal_hint(status: ureq::http::StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => " (check auth-token)",
        404 => " (check location: is this the WHEP endpoint?)",
        _ => "",
    }
}

impl WhepError {
    /// The resource error an element posts: a refused token is `NotAuthorized`, an endpoint
    /// that is not there `NotFound`, anything else `OpenRead` (the stream cannot be opened).
    pub fn resource_error(&self) -> gst::ResourceError {
        match self {
            WhepError::Refused { status, .. } | WhepError::Status(status) => {
                match status.as_u16() {
                    401 | 403 => gst::ResourceError::NotAuthorized,
                    404 => gst::ResourceError::NotFound,
                    _ => gst::ResourceError::OpenRead,
                }
            }
            _ => gst::ResourceError::OpenRead,
        }
    }
}

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
) -> Result<Session, WhepError> {
    let shown = mask_uri(endpoint);
    let mut req = agent(timeout)
        .post(endpoint)
        .content_type("application/sdp");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req
        .send(offer.as_bytes())
        .map_err(|source| WhepError::Unreachable {
            endpoint: shown.clone(),
            source,
        })?;
    let status = resp.status();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if !status.is_success() {
        let body = body.trim();
        return Err(WhepError::Refused {
            endpoint: shown,
            status,
            body: body[..body.floor_char_boundary(200)].to_string(),
        });
    }
    let resource = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| resolve(endpoint, l));
    if !body.starts_with("v=0") {
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_string();
        let text = body.trim();
        let what = if text.is_empty() {
            "an empty body".to_string()
        } else {
            let start: String = text.chars().take(60).collect();
            format!(
                "a body that is not SDP ({content_type}, {} bytes: {start:?})",
                body.len()
            )
        };
        // The server may have created a session anyway: do not leave it behind.
        let cleanup = match &resource {
            Some(r) => match delete(r, token, timeout) {
                Ok(()) => "; the session it created was deleted".to_string(),
                Err(e) => format!("; deleting the session it created failed: {e}"),
            },
            None => String::new(),
        };
        return Err(WhepError::NotSdp {
            endpoint: shown,
            status,
            what,
            cleanup,
        });
    }
    Ok(Session {
        answer: body,
        resource,
    })
}

/// Ends the session on the server. Failures are only reported: the viewer is leaving anyway.
pub fn delete(resource: &str, token: Option<&str>, timeout: Duration) -> Result<(), WhepError> {
    let mut req = agent(timeout).delete(resource);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(WhepError::Status(r.status())),
        Err(e) => Err(e.into()),
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

    /// A one-shot HTTP server on loopback: answers each request with the next response and
    /// records the request lines.
    fn server(responses: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/whep", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for response in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                lines.push(line.trim().to_string());
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                reader.get_mut().write_all(response.as_bytes()).unwrap();
            }
            lines
        });
        (url, handle)
    }

    fn response(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn a_body_that_is_not_sdp_is_described_and_its_session_deleted() {
        let timeout = Duration::from_secs(5);
        let (url, server_thread) = server(vec![
            response(
                "201 Created",
                "Location: /whep/session/7\r\nContent-Type: text/html\r\n",
                "<html>busy</html>",
            ),
            response("200 OK", "", ""),
        ]);
        let e = post_offer(&url, None, "v=0 offer", timeout)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a body that is not SDP (text/html, 17 bytes: \"<html>busy</html>\")"),
            "{e}"
        );
        assert!(e.contains("the session it created was deleted"), "{e}");
        let requests = server_thread.join().unwrap();
        assert_eq!(requests[1], "DELETE /whep/session/7 HTTP/1.1");

        // An empty body and no Location: said so, nothing to delete.
        let (url, server_thread) = server(vec![response("201 Created", "", "")]);
        let e = post_offer(&url, None, "v=0 offer", timeout)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("with an empty body instead of an SDP answer"),
            "{e}"
        );
        assert!(!e.contains("deleted"), "{e}");
        assert_eq!(server_thread.join().unwrap().len(), 1);
    }

    #[test]
    fn a_refused_offer_says_what_to_check_and_has_its_resource_error() {
        let timeout = Duration::from_secs(5);
        for (status, hint, kind) in [
            (
                "401 Unauthorized",
                "check auth-token",
                gst::ResourceError::NotAuthorized,
            ),
            (
                "404 Not Found",
                "check location",
                gst::ResourceError::NotFound,
            ),
            (
                "503 Service Unavailable",
                "busy",
                gst::ResourceError::OpenRead,
            ),
        ] {
            let (url, server_thread) = server(vec![response(status, "", "busy")]);
            let e = post_offer(&url, Some("t0ken"), "v=0 offer", timeout).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains(&format!("HTTP {status}")) && text.contains(hint),
                "{text}"
            );
            assert_eq!(e.resource_error(), kind, "{text}");
            server_thread.join().unwrap();
        }
        // Nothing listens: unreachable, with the password masked.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = post_offer(
            &format!("http://u:pw9@127.0.0.1:{port}/whep"),
            None,
            "v=0",
            timeout,
        )
        .unwrap_err();
        assert!(matches!(e, WhepError::Unreachable { .. }), "{e}");
        assert!(!e.to_string().contains("pw9"), "{e}");
    }

    #[test]
    fn whep_schemes_map_to_http() {
        assert_eq!(http_url("whep://h:8889/whep"), "http://h:8889/whep");
        assert_eq!(http_url("wheps://h/whep"), "https://h/whep");
        assert_eq!(http_url("http://h/whep"), "http://h/whep");
    }
}
