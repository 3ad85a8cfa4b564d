//! What `/metrics` exposes, and the counters the driver and the uploader feed.
//!
//! Nothing here runs per RTP packet: RTP totals come from each recording's final manifest when
//! it finishes ([`Metrics::recording_finished`]) plus a snapshot of the live recordings that
//! the driver refreshes about once a second ([`Metrics::set_live_rtp`]); the scrape adds the
//! two ([`Metrics::live_rtp_totals`]). SIP messages are counted from their first line (and
//! `CSeq`/`Call-ID`), once per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use siprec_core::SessionId;
use siprec_recorder::session::StreamReport;
use siprec_storage::{Manifest, StreamInfo};

use super::sip::{self, SipLine};

/// Latency buckets, seconds: 5 ms to about 80 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.005, 2.0, 15)
}

/// Most INVITEs (or ended sessions) waiting for their answer (or publication) that are
/// remembered for the latency histograms; beyond it the oldest are forgotten.
const MAX_PENDING: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndedBy {
    ended_by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SipRequest {
    direction: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SipResponse {
    direction: &'static str,
    method: &'static str,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodecLabel {
    codec: String,
}

/// RTP packet counts of one codec (sums of [`StreamInfo`] fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpCounts {
    /// Packets accepted.
    pub received: u64,
    /// Packets lost.
    pub lost: u64,
    /// Packets too late for the jitter window.
    pub late: u64,
    /// Duplicates dropped.
    pub duplicated: u64,
    /// Packets from a foreign source, dropped.
    pub foreign: u64,
    /// SRTP packets that failed authentication, dropped.
    pub auth_failed: u64,
}

impl RtpCounts {
    fn add(&mut self, s: &StreamInfo) {
        self.received += s.packets_received;
        self.lost += s.packets_lost;
        self.late += s.packets_late;
        self.duplicated += s.packets_duplicated;
        self.foreign += s.packets_foreign;
        self.auth_failed += s.packets_auth_failed;
    }

    fn add_counts(&mut self, o: &RtpCounts) {
        self.received += o.received;
        self.lost += o.lost;
        self.late += o.late;
        self.duplicated += o.duplicated;
        self.foreign += o.foreign;
        self.auth_failed += o.auth_failed;
    }
}

/// RTP totals by codec name (`PCMU`, `G722`, …; `unknown` before a stream's first packet).
pub type RtpTotals = HashMap<String, RtpCounts>;

/// The codec label of a stream: the first codec it used, without its clock rate.
fn codec_of(s: &StreamInfo) -> Option<String> {
    s.codecs
        .first()
        .map(|c| c.split('/').next().unwrap_or(c).to_string())
}

#[derive(Debug, Default)]
struct Rtp {
    /// Finished recordings, from their final manifests.
    finished: RtpTotals,
    /// Live recordings, as the driver last saw them.
    live: HashMap<SessionId, RtpTotals>,
}

/// Why the server is not ready, or nothing.
#[derive(Debug)]
pub struct Health {
    shutting_down: AtomicBool,
    spool_full: AtomicBool,
    storage_down_since: Mutex<Option<Instant>>,
    upload_retry_max: Duration,
}

impl Health {
    /// `None` when ready, else the reason.
    pub fn not_ready(&self) -> Option<String> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Some("shutting down".into());
        }
        if self.spool_full.load(Ordering::SeqCst) {
            return Some("spool full: new sessions are refused until uploads catch up".into());
        }
        let since = *self.storage_down_since.lock().ok()?;
        match since {
            Some(t) if t.elapsed() > self.upload_retry_max => Some(format!(
                "storage failing for {} s (longer than upload_retry_max = {} s)",
                t.elapsed().as_secs(),
                self.upload_retry_max.as_secs()
            )),
            _ => None,
        }
    }

    /// The server stops accepting sessions (SIGTERM).
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The spool went over (or back under) its limit.
    pub fn set_spool_full(&self, full: bool) {
        self.spool_full.store(full, Ordering::SeqCst);
    }
}

/// Every metric of srs-server and the state `/readyz` reports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    active: Gauge,
    started: Counter,
    ended: Family<EndedBy, Counter>,
    sip_requests: Family<SipRequest, Counter>,
    sip_responses: Family<SipResponse, Counter>,
    published: Counter,
    upload_failures: Counter,
    upload_retries: Counter,
    uploads_waiting: Gauge,
    spool_bytes: Gauge,
    invite_latency: Histogram,
    publish_latency: Histogram,
    rtp_received: Family<CodecLabel, Counter>,
    rtp_lost: Family<CodecLabel, Counter>,
    rtp_late: Family<CodecLabel, Counter>,
    rtp_duplicated: Family<CodecLabel, Counter>,
    rtp_foreign: Family<CodecLabel, Counter>,
    srtp_auth_failed: Family<CodecLabel, Counter>,
    rtp: Mutex<Rtp>,
    /// INVITEs received, by Call-ID and CSeq: when, until their first final response (then
    /// `None`, so a retransmitted INVITE or 200 is not measured again).
    invites: Mutex<HashMap<String, Option<Instant>>>,
    /// Sessions ended, by Call-ID, until their recording is published.
    ended_at: Mutex<HashMap<String, Instant>>,
    /// Readiness.
    pub health: Health,
}

impl Metrics {
    /// Registers every metric (prefix `srs_`); `upload_retry_max` bounds how long storage
    /// may fail before `/readyz` says not ready.
    pub fn new(upload_retry_max: Duration) -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("srs"),
            active: Gauge::default(),
            started: Counter::default(),
            ended: Family::default(),
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            published: Counter::default(),
            upload_failures: Counter::default(),
            upload_retries: Counter::default(),
            uploads_waiting: Gauge::default(),
            spool_bytes: Gauge::default(),
            invite_latency: Histogram::new(latency_buckets()),
            publish_latency: Histogram::new(latency_buckets()),
            rtp_received: Family::default(),
            rtp_lost: Family::default(),
            rtp_late: Family::default(),
            rtp_duplicated: Family::default(),
            rtp_foreign: Family::default(),
            srtp_auth_failed: Family::default(),
            rtp: Mutex::default(),
            invites: Mutex::default(),
            ended_at: Mutex::default(),
            health: Health {
                shutting_down: AtomicBool::new(false),
                spool_full: AtomicBool::new(false),
                storage_down_since: Mutex::new(None),
                upload_retry_max,
            },
        };
        let r = &mut m.registry;
        r.register(
            "sessions_active",
            "Recording sessions in progress",
            m.active.clone(),
        );
        r.register(
            "sessions_started",
            "Recording sessions started",
            m.started.clone(),
        );
        r.register(
            "sessions_ended",
            "Recording sessions ended, by what ended them",
            m.ended.clone(),
        );
        r.register(
            "sip_requests",
            "SIP requests received (in) and sent (out), by method",
            m.sip_requests.clone(),
        );
        r.register(
            "sip_responses",
            "SIP responses received (in) and sent (out), by method and code",
            m.sip_responses.clone(),
        );
        r.register(
            "recordings_published",
            "Recordings stored (recording.json acknowledged)",
            m.published.clone(),
        );
        r.register(
            "upload_failures",
            "Failed upload attempts",
            m.upload_failures.clone(),
        );
        r.register(
            "upload_retries",
            "Upload attempts after a failure",
            m.upload_retries.clone(),
        );
        r.register(
            "uploads_waiting",
            "Recordings finished and not yet stored",
            m.uploads_waiting.clone(),
        );
        r.register(
            "spool_bytes",
            "Bytes in the spool (recordings in progress and waiting)",
            m.spool_bytes.clone(),
        );
        r.register(
            "invite_answer_seconds",
            "From an INVITE received to its 200 OK sent",
            m.invite_latency.clone(),
        );
        r.register(
            "end_to_published_seconds",
            "From a session's end (BYE) to its recording stored",
            m.publish_latency.clone(),
        );
        r.register(
            "rtp_packets_received",
            "RTP packets accepted, by codec",
            m.rtp_received.clone(),
        );
        r.register(
            "rtp_packets_lost",
            "RTP packets lost (RFC 3550 A.3), by codec",
            m.rtp_lost.clone(),
        );
        r.register(
            "rtp_packets_late",
            "RTP packets too late for the jitter window, by codec",
            m.rtp_late.clone(),
        );
        r.register(
            "rtp_packets_duplicated",
            "Duplicate RTP packets dropped, by codec",
            m.rtp_duplicated.clone(),
        );
        r.register(
            "rtp_packets_foreign",
            "RTP packets from a source other than the stream's, dropped, by codec",
            m.rtp_foreign.clone(),
        );
        r.register(
            "srtp_auth_failures",
            "SRTP packets that failed authentication, dropped, by codec",
            m.srtp_auth_failed.clone(),
        );
        m
    }

    /// A SIP message received (`outgoing = false`) or sent.
    pub fn sip_message(&self, bytes: &[u8], outgoing: bool) {
        let Some(line) = sip::first_line(bytes) else {
            return;
        };
        let direction = if outgoing { "out" } else { "in" };
        match line {
            SipLine::Request { method, call_id } => {
                self.sip_requests
                    .get_or_create(&SipRequest { direction, method })
                    .inc();
                if !outgoing && method == "INVITE" {
                    if let (Some(id), Ok(mut m)) = (call_id, self.invites.lock()) {
                        if m.len() >= MAX_PENDING {
                            m.clear();
                        }
                        m.entry(id).or_insert_with(|| Some(Instant::now()));
                    }
                }
            }
            SipLine::Response {
                code,
                method,
                call_id,
            } => {
                self.sip_responses
                    .get_or_create(&SipResponse {
                        direction,
                        method,
                        code,
                    })
                    .inc();
                if outgoing && method == "INVITE" && code >= 200 {
                    let t = call_id.and_then(|id| self.invites.lock().ok()?.get_mut(&id)?.take());
                    if let (Some(t), true) = (t, (200..300).contains(&code)) {
                        self.invite_latency.observe(t.elapsed().as_secs_f64());
                    }
                }
            }
        }
    }

    /// A recording started.
    pub fn session_started(&self) {
        self.started.inc();
    }

    /// Recordings in progress now.
    pub fn set_active(&self, n: usize) {
        self.active.set(n as i64);
    }

    /// A session ended (`ended_by` as in the manifest) at `at`; `call_id` of its dialog.
    pub fn session_ended(&self, ended_by: &str, call_id: &str, at: Instant) {
        self.ended
            .get_or_create(&EndedBy {
                ended_by: ended_by.to_string(),
            })
            .inc();
        if let Ok(mut m) = self.ended_at.lock() {
            if m.len() >= MAX_PENDING {
                m.clear();
            }
            m.insert(call_id.to_string(), at);
        }
    }

    /// The driver's snapshot of one live recording's streams (about once a second).
    pub fn set_live_rtp(&self, id: SessionId, streams: &[StreamInfo]) {
        let mut totals = RtpTotals::new();
        for s in streams {
            // A stream without a codec yet has no packets to show; its foreign packets (if
            // any) are counted when the recording finishes.
            if let Some(c) = codec_of(s) {
                totals.entry(c).or_default().add(s);
            }
        }
        if let Ok(mut r) = self.rtp.lock() {
            r.live.insert(id, totals);
        }
    }

    /// A live session's streams as its media thread sees them (each media thread sends this
    /// about once a second per session; nothing is counted per packet).
    pub fn set_live_reports(&self, id: SessionId, streams: &[StreamReport]) {
        let mut totals = RtpTotals::new();
        for s in streams {
            let Some(c) = s.codecs.first() else {
                continue;
            };
            let n = totals
                .entry(c.split('/').next().unwrap_or(c).to_string())
                .or_default();
            n.received += s.rtp.received;
            n.lost += s.rtp.lost;
            n.late += s.late;
            n.duplicated += s.rtp.duplicated;
            n.foreign += s.foreign;
            n.auth_failed += s.auth_failed;
        }
        if let Ok(mut r) = self.rtp.lock() {
            r.live.insert(id, totals);
        }
    }

    /// A recording finished: its final stream statistics replace its live snapshot
    /// (`manifest` is `None` when it could not be finished).
    pub fn recording_finished(&self, id: SessionId, manifest: Option<&Manifest>) {
        let Ok(mut r) = self.rtp.lock() else {
            return;
        };
        r.live.remove(&id);
        for s in manifest.map(|m| m.streams.as_slice()).unwrap_or_default() {
            let c = codec_of(s).unwrap_or_else(|| "unknown".into());
            r.finished.entry(c).or_default().add(s);
        }
    }

    /// RTP totals of finished and live recordings, by codec: the one place the scrape asks for
    /// RTP figures.
    pub fn live_rtp_totals(&self) -> RtpTotals {
        let Ok(r) = self.rtp.lock() else {
            return RtpTotals::new();
        };
        let mut all = r.finished.clone();
        for t in r.live.values() {
            for (c, n) in t {
                all.entry(c.clone()).or_default().add_counts(n);
            }
        }
        all
    }

    /// An upload attempt failed.
    pub fn upload_failed(&self) {
        self.upload_failures.inc();
        if let Ok(mut s) = self.health.storage_down_since.lock() {
            s.get_or_insert_with(Instant::now);
        }
    }

    /// An upload is retried after a failure.
    pub fn upload_retry(&self) {
        self.upload_retries.inc();
    }

    /// A recording reached storage.
    pub fn recording_published(&self, manifest: &Manifest) {
        self.published.inc();
        if let Ok(mut s) = self.health.storage_down_since.lock() {
            *s = None;
        }
        let t = self
            .ended_at
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&manifest.call_id));
        if let Some(t) = t {
            self.publish_latency.observe(t.elapsed().as_secs_f64());
        }
    }

    /// The Prometheus (OpenMetrics) text of every metric, with the figures read at scrape
    /// time: uploads waiting, spool bytes, RTP totals.
    pub fn encode(&self, uploads_waiting: usize, spool_bytes: u64) -> String {
        self.uploads_waiting.set(uploads_waiting as i64);
        self.spool_bytes
            .set(spool_bytes.min(i64::MAX as u64) as i64);
        for (codec, n) in self.live_rtp_totals() {
            let l = CodecLabel { codec };
            for (family, v) in [
                (&self.rtp_received, n.received),
                (&self.rtp_lost, n.lost),
                (&self.rtp_late, n.late),
                (&self.rtp_duplicated, n.duplicated),
                (&self.rtp_foreign, n.foreign),
                (&self.srtp_auth_failed, n.auth_failed),
            ] {
                // Counters only go up: add what is new since the last scrape.
                let c = family.get_or_create(&l);
                let have = c.get();
                if v > have {
                    c.inc_by(v - have);
                }
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn invite_latency_once_per_transaction_and_rtp_totals_only_grow() {
        let m = Metrics::new(Duration::from_secs(30));
        let inv = b"INVITE sip:srs@x SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";
        let ok = b"SIP/2.0 200 OK\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";
        for (msg, out) in [
            (&inv[..], false),
            (inv, false),
            (ok, true),
            (inv, false),
            (ok, true),
        ] {
            m.sip_message(msg, out);
        }
        let t = m.encode(0, 0);
        assert_eq!(
            line(&t, "srs_invite_answer_seconds_count"),
            Some("1"),
            "{t}"
        );
        assert_eq!(
            line(
                &t,
                "srs_sip_requests_total{direction=\"in\",method=\"INVITE\"}"
            ),
            Some("3")
        );

        let stream = |n: u64| StreamInfo {
            codecs: vec!["PCMA/8000".into()],
            packets_received: n,
            packets_lost: 1,
            ..StreamInfo::default()
        };
        let id = SessionId(7);
        m.set_live_rtp(id, &[stream(10), StreamInfo::default()]);
        let t = m.encode(0, 0);
        assert_eq!(
            line(&t, "srs_rtp_packets_received_total{codec=\"PCMA\"}"),
            Some("10")
        );
        let fin = Manifest {
            streams: vec![stream(25), StreamInfo::default()],
            ..Manifest::default()
        };
        m.recording_finished(id, Some(&fin));
        m.set_live_rtp(SessionId(8), &[stream(5)]);
        let t = m.encode(0, 0);
        assert_eq!(
            line(&t, "srs_rtp_packets_received_total{codec=\"PCMA\"}"),
            Some("30")
        );
        assert_eq!(
            line(&t, "srs_rtp_packets_lost_total{codec=\"PCMA\"}"),
            Some("2")
        );
        assert_eq!(
            line(&t, "srs_rtp_packets_received_total{codec=\"unknown\"}"),
            Some("0")
        );
        assert_eq!(m.health.not_ready(), None);
        m.health.set_spool_full(true);
        assert!(m.health.not_ready().unwrap().contains("spool full"));
    }
}
