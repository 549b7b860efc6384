//! The HTTP API: health, readiness, sources, stats and Prometheus metrics.
//!
//! `/healthz` and `/readyz` are open (probes), and `/metrics` when the config says so;
//! everything else needs
//! `Authorization: Bearer TOKEN` when a token is set, and a token must be set to listen
//! beyond loopback. Errors are JSON: `{"error": "..."}`.

use crate::config::SourceConfig;
use crate::service::{Service, SourceError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    service: Arc<Service>,
    registry: Arc<Registry>,
    token: Option<Arc<str>>,
}

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": text.into()}))).into_response()
}

/// `open_metrics`: serve /metrics without the token.
pub fn router(service: Arc<Service>, token: Option<String>, open_metrics: bool) -> Router {
    let api = Api {
        registry: Arc::new(crate::metrics::registry(service.clone())),
        service,
        token: token.map(Into::into),
    };
    let mut guarded = Router::new()
        .route("/api/v1/streams", get(list).post(add))
        .route("/api/v1/streams/{id}", get(show).delete(remove))
        .route("/api/v1/streams/{id}/record", post(record))
        .route("/api/v1/stats", get(stats));
    let mut open = Router::new()
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
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
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

#[cfg(test)]
mod tests {
    #[test]
    fn token_comparison() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
    }
}
