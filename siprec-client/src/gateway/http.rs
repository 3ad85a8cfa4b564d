//! `siprec-client gateway --http`: `/metrics` (Prometheus) and `/healthz`, in their own task.
//!
//! The driver counts calls, recording sessions and INFO commands from the core's events (once
//! per event); packet counts are read at scrape time from the [`GatewayCounters`] the relay
//! threads fold once a second. Nothing is counted per packet here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use siprec_core::client::RsId;
use siprec_gateway::CallId;

use super::GatewayCounters;

/// Most distinct SRS or `X-Reason` label values; beyond it they are counted as `other` (the
/// values come from the network).
const MAX_LABELS: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RsLabels {
    srs: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    x_reason: String,
    code: u16,
}

/// A recording session the driver has seen start.
#[derive(Debug)]
struct Session {
    srs: String,
    forked: bool,
}

/// The gateway's metrics.
#[derive(Debug)]
pub(crate) struct GatewayMetrics {
    registry: Registry,
    calls_relayed: Counter,
    calls_active: Gauge,
    calls_ended: Counter,
    sessions: Family<RsLabels, Counter>,
    info: Family<InfoLabels, Counter>,
    relayed: Counter,
    forked: Counter,
    strangers: Counter,
    counters: Arc<GatewayCounters>,
    live: Mutex<HashMap<(CallId, RsId), Session>>,
    labels: Mutex<Vec<String>>,
}

impl GatewayMetrics {
    pub(crate) fn new(counters: Arc<GatewayCounters>) -> GatewayMetrics {
        let mut m = GatewayMetrics {
            registry: Registry::with_prefix("siprec_gateway"),
            calls_relayed: Counter::default(),
            calls_active: Gauge::default(),
            calls_ended: Counter::default(),
            sessions: Family::default(),
            info: Family::default(),
            relayed: Counter::default(),
            forked: Counter::default(),
            strangers: Counter::default(),
            counters,
            live: Mutex::default(),
            labels: Mutex::default(),
        };
        let r = &mut m.registry;
        r.register(
            "calls_relayed",
            "Calls whose media is relayed (answered or early media)",
            m.calls_relayed.clone(),
        );
        r.register("calls_active", "Calls in progress", m.calls_active.clone());
        r.register("calls_ended", "Calls that ended", m.calls_ended.clone());
        r.register(
            "recording_sessions",
            "Recording sessions by SRS and outcome: started (media forked), failed (never forked), ended",
            m.sessions.clone(),
        );
        r.register(
            "info_commands",
            "Recording INFO commands by X-Reason and reply code",
            m.info.clone(),
        );
        r.register(
            "packets_relayed",
            "RTP/RTCP packets relayed between the legs",
            m.relayed.clone(),
        );
        r.register(
            "packets_forked",
            "Copies of RTP sent to recording servers",
            m.forked.clone(),
        );
        r.register(
            "packets_strangers",
            "Packets from neither party, dropped",
            m.strangers.clone(),
        );
        m
    }

    /// A label value from the network, kept to [`MAX_LABELS`] distinct ones.
    fn label(&self, v: &str) -> String {
        let v: String = v.chars().filter(|c| !c.is_control()).take(80).collect();
        let Ok(mut seen) = self.labels.lock() else {
            return "other".into();
        };
        if seen.contains(&v) {
            return v;
        }
        if seen.len() >= MAX_LABELS {
            return "other".into();
        }
        seen.push(v.clone());
        v
    }

    fn outcome(&self, srs: &str, outcome: &'static str) {
        self.sessions
            .get_or_create(&RsLabels {
                srs: srs.to_string(),
                outcome,
            })
            .inc();
    }

    pub(crate) fn call_relayed(&self) {
        self.calls_relayed.inc();
    }

    pub(crate) fn set_active(&self, n: usize) {
        self.calls_active.set(n as i64);
    }

    /// A recording session towards `srs` is being set up.
    pub(crate) fn session_resolving(&self, call: CallId, rs: RsId, srs: &str) {
        let srs = self.label(srs);
        if let Ok(mut l) = self.live.lock() {
            l.entry((call, rs))
                .or_insert(Session { srs, forked: false });
        }
    }

    /// Media of a recording session goes to its SRS.
    pub(crate) fn session_forked(&self, call: CallId, rs: RsId) {
        let Ok(mut l) = self.live.lock() else { return };
        if let Some(s) = l.get_mut(&(call, rs)) {
            if !s.forked {
                s.forked = true;
                let srs = s.srs.clone();
                drop(l);
                self.outcome(&srs, "started");
            }
        }
    }

    /// A recording session is over.
    pub(crate) fn session_stopped(&self, call: CallId, rs: RsId) {
        let s = self
            .live
            .lock()
            .ok()
            .and_then(|mut l| l.remove(&(call, rs)));
        if let Some(s) = s {
            self.outcome(&s.srs, if s.forked { "ended" } else { "failed" });
        }
    }

    pub(crate) fn info_command(&self, reason: &str, code: u16) {
        let x_reason = self.label(reason);
        self.info
            .get_or_create(&InfoLabels { x_reason, code })
            .inc();
    }

    pub(crate) fn call_ended(&self, call: CallId) {
        self.calls_ended.inc();
        let gone: Vec<Session> = match self.live.lock() {
            Ok(mut l) => {
                let keys: Vec<_> = l.keys().filter(|k| k.0 == call).copied().collect();
                keys.iter().filter_map(|k| l.remove(k)).collect()
            }
            Err(_) => Vec::new(),
        };
        for s in gone {
            self.outcome(&s.srs, if s.forked { "ended" } else { "failed" });
        }
    }

    fn encode(&self) -> String {
        let k = &self.counters;
        for (c, a) in [
            (&self.relayed, &k.relayed),
            (&self.forked, &k.forked),
            (&self.strangers, &k.strangers),
        ] {
            catch_up(c, a);
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Adds to `c` what `a` counted since the last scrape.
fn catch_up(c: &Counter, a: &AtomicU64) {
    let (now, have) = (a.load(Ordering::Relaxed), c.get());
    if now > have {
        c.inc_by(now - have);
    }
}

/// Serves `/metrics` and `/healthz` on `listener`.
pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    metrics: Arc<GatewayMetrics>,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(16 * 1024));
    tokio::spawn(async move {
        let svc = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, svc).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })
}

async fn metrics_text(State(m): State<Arc<GatewayMetrics>>) -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        m.encode(),
    )
}
