//! The HTTP endpoints of srs-server (`--http`): `/healthz`, `/readyz`, `/metrics` and the
//! recordings browser (`/`, `/recordings/…`, `/api/recordings`, `/files/…`).
//!
//! They run in their own tokio task on their own listener; nothing here is on the SIP or
//! media paths. Every route but `/healthz` requires the `--http-token` when one is set
//! (`Authorization: Bearer TOKEN`, or `?token=TOKEN` for links the browser follows); requests
//! have a time limit and a body limit; every response says `nosniff` and, unless it sets its
//! own, `Cache-Control: no-store`.

pub mod browser;
pub mod metrics;
mod pages;
pub mod peaks;
mod sip;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use siprec_storage::Store;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

pub use metrics::{Health, Metrics, RtpCounts, RtpTotals};

/// Longest time a request may take to produce its response (headers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body accepted (no route takes one).
const BODY_LIMIT: usize = 16 * 1024;
/// Longest time a client may take to send a request's headers (slow clients are dropped).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most HTTP connections open at once; beyond it new ones are closed at accept.
const MAX_CONNECTIONS: usize = 256;
/// Largest request head (line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// What the HTTP task needs from the server.
#[derive(Debug, Clone)]
pub struct HttpContext {
    /// The server's metrics and readiness.
    pub metrics: Arc<Metrics>,
    /// Recordings waiting for storage.
    pub pending_uploads: Arc<AtomicUsize>,
    /// The spool directory (its size is read at scrape time).
    pub spool: PathBuf,
    /// The store the browser reads recordings from.
    pub store: Store,
    /// Token every route but `/healthz` requires.
    pub token: Option<String>,
}

#[derive(Debug)]
struct Inner {
    ctx: HttpContext,
    browser: browser::Browser,
}

type AppState = Arc<Inner>;

/// Serves the endpoints on `listener` until the task is aborted: HTTP/1.1, each connection in
/// its own task, at most 256 at once, each request's head within
/// [`HEADER_TIMEOUT`].
pub fn spawn(listener: tokio::net::TcpListener, ctx: HttpContext) -> tokio::task::JoinHandle<()> {
    let app = router(ctx);
    tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: log, back off a little.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                continue; // Too many connections: this one is closed.
            };
            let svc = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEAD)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                let _ = conn.await;
            });
        }
    })
}

/// The routes with their layers.
pub fn router(ctx: HttpContext) -> Router {
    let state = Arc::new(Inner {
        browser: browser::Browser::new(ctx.store.clone()),
        ctx,
    });
    let protected = Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(browser::routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// Token check: `Authorization: Bearer TOKEN` or `?token=TOKEN`.
async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = &s.ctx.token else {
        return next.run(req).await;
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(percent_decode)
    });
    let ok = bearer.is_some_and(|b| same(b.as_bytes(), token.as_bytes()))
        || query.is_some_and(|q| same(q.as_bytes(), token.as_bytes()));
    if ok {
        return next.run(req).await;
    }
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "401 Unauthorized: this endpoint needs the --http-token (Authorization: Bearer TOKEN)\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"srs-server\""),
    );
    r
}

/// `%XX` and `+` of a query value decoded (bytes that are not UTF-8 are kept as they are).
fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.ctx.metrics.health.not_ready() {
        None => axum::Json(serde_json::json!({ "ready": true })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    let spool = s.ctx.spool.clone();
    let bytes = tokio::task::spawn_blocking(move || crate::spool::usage_bytes(&spool))
        .await
        .unwrap_or(0);
    let waiting = s.ctx.pending_uploads.load(Ordering::SeqCst);
    let text = s.ctx.metrics.encode(waiting, bytes);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 Not Found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_decoded() {
        assert_eq!(percent_decode("a%2Fb%3D%3d"), "a/b==");
        assert_eq!(percent_decode("plain-Token_1"), "plain-Token_1");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
