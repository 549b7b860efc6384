//! The HTTP API: health, readiness, sources, stats, alerts (kept and live), Prometheus
//! metrics, and the dashboard with its HLS streams.
//!
//! `/healthz` and `/readyz` are open (probes), and `/metrics` when the config says so, and
//! the dashboard page and hls.js (they hold no data); everything else needs
//! `Authorization: Bearer TOKEN` when a token is set, and a token must be set to listen
//! beyond loopback. A browser cannot add that header to a video's or an event stream's
//! requests, so GET and HEAD also take the token from the dashboard's `rt_token` cookie
//! (SameSite=Strict); anything that changes state needs the header. Errors are JSON:
//! `{"error": "..."}`.

use crate::config::{HlsConfig, SourceConfig};
use crate::events::AlertFile;
use crate::service::{Service, SourceError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    service: Arc<Service>,
    registry: Arc<Registry>,
    token: Option<Arc<str>>,
    /// hls.js for the dashboard, when HLS is on.
    hls_js: Option<Arc<PathBuf>>,
}

/// The dashboard: one page, no build step (web/dashboard.html).
const DASHBOARD: &str = include_str!("../web/dashboard.html");

/// Where scripts/setup.sh installs hls.js from npm.
pub fn default_hls_js() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_default();
    data.join("rtinfer/web/node_modules/hls.js/dist/hls.min.js")
}

/// The hls.js file the dashboard loads: the config's, else setup's.
pub fn hls_js_of(h: &HlsConfig) -> PathBuf {
    h.hls_js.clone().unwrap_or_else(default_hls_js)
}

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": text.into()}))).into_response()
}

/// `open_metrics`: serve /metrics without the token.
pub fn router(service: Arc<Service>, token: Option<String>, open_metrics: bool) -> Router {
    let api = Api {
        registry: Arc::new(crate::metrics::registry(service.clone())),
        hls_js: service
            .config()
            .hls
            .as_ref()
            .map(|h| Arc::new(hls_js_of(h))),
        service,
        token: token.map(Into::into),
    };
    if let Some(js) = api.hls_js.as_deref().filter(|p| !p.is_file()) {
        tracing::warn!(
            "the dashboard cannot play video: hls.js is not at {} (run scripts/setup.sh, or npm \
             install hls.js and set hls.hls_js)",
            js.display()
        );
    }
    let mut guarded = Router::new()
        .route("/api/v1/streams", get(list).post(add))
        .route("/api/v1/streams/{id}", get(show).delete(remove))
        .route("/api/v1/streams/{id}/record", post(record))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/{id}/clip", get(alert_clip))
        .route("/api/v1/alerts/{id}/snapshot", get(alert_snapshot))
        .route("/api/v1/events", get(events))
        .route("/hls/{id}/{file}", get(hls));
    let mut open = Router::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .route("/static/hls.min.js", get(hls_js))
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(ready));
    if open_metrics {
        open = open.route("/metrics", get(metrics));
    } else {
        guarded = guarded.route("/metrics", get(metrics));
    }
    let guarded = guarded.route_layer(middleware::from_fn_with_state(api.clone(), authorize));
    open.merge(guarded)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(api)
}

async fn authorize(State(api): State<Api>, req: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let headers = req.headers();
        let reads = matches!(*req.method(), Method::GET | Method::HEAD);
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
            .or_else(|| reads.then(|| cookie_token(headers)).flatten());
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs 'Authorization: Bearer TOKEN'",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
            return r;
        }
    }
    next.run(req).await
}

/// The dashboard's `rt_token` cookie, percent-decoded (the page stores it with
/// `encodeURIComponent`, since a cookie value cannot hold every character a token may).
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("rt_token="))
        .and_then(rtmeta::mask::percent_decode)
}

/// Compares without an early exit, so response times do not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs a blocking service call (element state changes, property reads) off the async
/// workers.
async fn blocking<T: Send + 'static>(
    api: &Api,
    f: impl FnOnce(&Service) -> T + Send + 'static,
) -> Result<T, Response> {
    let service = api.service.clone();
    tokio::task::spawn_blocking(move || f(&service))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn ready(State(api): State<Api>) -> Response {
    match blocking(&api, |s| s.readiness()).await {
        Ok(Ok(())) => axum::Json(json!({"status": "ready"})).into_response(),
        Ok(Err(not_ready)) => {
            let list: Vec<Value> = not_ready
                .iter()
                .map(|s| json!({"id": s.id, "state": s.state, "last_error": s.last_error}))
                .collect();
            let status = if api.service.is_stopping() {
                "stopping"
            } else {
                "not ready"
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": status, "not_ready": list})),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

async fn list(State(api): State<Api>) -> Response {
    match blocking(&api, |s| s.statuses()).await {
        Ok(list) => axum::Json(json!({"streams": list})).into_response(),
        Err(r) => r,
    }
}

async fn show(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let id2 = id.clone();
    match blocking(&api, move |s| s.status(&id2)).await {
        Ok(Some(st)) => axum::Json(st).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, SourceError::Unknown(id).to_string()),
        Err(r) => r,
    }
}

async fn add(State(api): State<Api>, headers: HeaderMap, body: Bytes) -> Response {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("application/json"));
    if !json_type {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the source as application/json",
        );
    }
    let config: SourceConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body must be a JSON object {{\"id\", \"uri\", \"enabled\", \"rules\", \"loop\"}}: {e}"
                ),
            );
        }
    };
    match blocking(&api, move |s| s.add_source(config)).await {
        Ok(Ok(st)) => (StatusCode::CREATED, axum::Json(st)).into_response(),
        Ok(Err(e)) => source_error(e),
        Err(r) => r,
    }
}

async fn record(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match blocking(&api, move |s| s.record(&id)).await {
        Ok(Ok((clip, stats))) => axum::Json(json!({
            "clip": clip,
            "recorder": crate::service::structure_to_json(&stats),
        }))
        .into_response(),
        Ok(Err(e)) => source_error(e),
        Err(r) => r,
    }
}

async fn remove(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match blocking(&api, move |s| s.remove_source(&id)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => source_error(e),
        Err(r) => r,
    }
}

fn source_error(e: SourceError) -> Response {
    let status = match e {
        SourceError::Invalid(_) => StatusCode::BAD_REQUEST,
        SourceError::Duplicate(_) => StatusCode::CONFLICT,
        SourceError::Unknown(_) => StatusCode::NOT_FOUND,
        SourceError::CannotStart(_) => StatusCode::UNPROCESSABLE_ENTITY,
        SourceError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
        SourceError::NotNow(_) => StatusCode::CONFLICT,
    };
    error(status, e.to_string())
}

async fn stats(State(api): State<Api>) -> Response {
    match blocking(&api, |s| s.stats_json()).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let registry = api.registry.clone();
    match tokio::task::spawn_blocking(move || crate::metrics::encode(&registry)).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The alerts kept (the newest 200), oldest first: their JSON texts as kept, in a list.
async fn alerts(State(api): State<Api>) -> Response {
    let recent = api.service.alert_log.recent();
    let body = format!(r#"{{"alerts":[{}]}}"#, recent.join(","));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn alert_clip(State(api): State<Api>, Path(id): Path<String>) -> Response {
    alert_file(&api, &id, AlertFile::Clip).await
}

async fn alert_snapshot(State(api): State<Api>, Path(id): Path<String>) -> Response {
    alert_file(&api, &id, AlertFile::Snapshot).await
}

/// The clip or snapshot of a kept alert. A clip is there once its post-capture has passed.
async fn alert_file(api: &Api, id: &str, which: AlertFile) -> Response {
    let what = match which {
        AlertFile::Clip => "clip",
        AlertFile::Snapshot => "snapshot",
    };
    match api.service.alert_log.file(id, which) {
        Some(path) => match tokio::fs::read(&path).await {
            Ok(bytes) => file_response(&path, bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => error(
                StatusCode::NOT_FOUND,
                format!(
                    "the {what} of alert '{id}' is not there (yet): {}",
                    path.display()
                ),
            ),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        None => error(
            StatusCode::NOT_FOUND,
            format!("no kept alert '{id}' has a {what}"),
        ),
    }
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("mp4") => "video/mp4",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("js") => "text/javascript",
        _ => "application/octet-stream",
    }
}

fn file_response(path: &std::path::Path, bytes: Vec<u8>) -> Response {
    // A live playlist changes with every segment.
    let cache = if path.extension().is_some_and(|e| e == "m3u8") {
        "no-cache"
    } else {
        "max-age=60"
    };
    (
        [
            (header::CONTENT_TYPE, content_type(path)),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response()
}

/// A source's live playlist or one of its segments, from hls.folder/ID.
async fn hls(State(api): State<Api>, Path((id, file)): Path<(String, String)>) -> Response {
    let Some(h) = &api.service.config().hls else {
        return error(
            StatusCode::NOT_FOUND,
            "HLS is off: add an hls section to the config",
        );
    };
    let name_ok = !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && (file.ends_with(".m3u8") || file.ends_with(".ts"));
    if crate::config::check_id(&id).is_err() || !name_ok {
        return error(StatusCode::NOT_FOUND, "no such HLS file");
    }
    let path = h.folder.join(&id).join(&file);
    match tokio::fs::read(&path).await {
        Ok(bytes) => file_response(&path, bytes),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            format!("no HLS file {id}/{file} (yet): the first segment takes hls.segment_seconds"),
        ),
    }
}

async fn hls_js(State(api): State<Api>) -> Response {
    let Some(path) = &api.hls_js else {
        return error(
            StatusCode::NOT_FOUND,
            "HLS is off: add an hls section to the config",
        );
    };
    match tokio::fs::read(path.as_path()).await {
        Ok(bytes) => file_response(path, bytes),
        Err(e) => error(
            StatusCode::NOT_FOUND,
            format!(
                "hls.js is not installed ({}: {e}): run scripts/setup.sh, or npm install hls.js \
                 and set hls.hls_js",
                path.display()
            ),
        ),
    }
}

/// Server-sent events: each alert as an `alert` event (its JSON), until the service stops.
async fn events(State(api): State<Api>) -> Response {
    use tokio::sync::broadcast::error::RecvError;
    let Some(rx) = api.service.alert_log.subscribe() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(text) => {
                    let event = Event::default().event("alert").data(&*text);
                    return Some((Ok::<_, Infallible>(event), rx));
                }
                // Too slow a reader skips what it missed.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_comparison() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn token_from_the_dashboard_cookie() {
        use axum::http::{HeaderMap, HeaderValue, header};
        let token = |cookie: &'static str| {
            let mut h = HeaderMap::new();
            h.append(header::COOKIE, HeaderValue::from_static(cookie));
            super::cookie_token(&h)
        };
        assert_eq!(super::cookie_token(&HeaderMap::new()), None);
        assert_eq!(token("a=1; rt_token=s3cret; b=2"), Some("s3cret".into()));
        assert_eq!(token("x_rt_token=no"), None);
        // A base64 token as encodeURIComponent writes it; a broken escape is no token.
        assert_eq!(token("rt_token=a%2Bb%2F%3D%3D"), Some("a+b/==".into()));
        assert_eq!(token("rt_token=a%2"), None);
    }
}
