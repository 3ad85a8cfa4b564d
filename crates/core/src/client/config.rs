//! Configuration and call context.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use siprec_sdp::Format;
use siprec_sip::message;
use siprec_sip::transaction::{TimerConfig, Transport};

use super::error::Error;
use super::server_uri::short;

/// Configuration of one [`SrcCore`](super::SrcCore).
#[derive(Debug, Clone)]
pub struct SrcConfig {
    /// SIP timers (T1 500 ms, T2 4 s, T4 5 s by default).
    pub timers: TimerConfig,
    /// How long a start waits for the first SRS to accept (default 2 s).
    pub start_timeout: Duration,
    /// How long an INVITE waits for any response from one target before the next target of
    /// the same URI is tried (only when there is a next one; default 1 s). The transaction's
    /// Timer B still applies to the last target.
    pub target_timeout: Duration,
    /// How long stop, pause and resume wait for each SRS's answer (default 8 s: long enough
    /// for a 491 back-off and a retry).
    pub request_timeout: Duration,
    /// Our SIP address per transport (Via, Contact); a target of a transport without one is
    /// skipped.
    pub udp: Option<SocketAddr>,
    /// Our TCP listening address (Contact); the connection's own port may differ.
    pub tcp: Option<SocketAddr>,
    /// Our TLS listening address.
    pub tls: Option<SocketAddr>,
    /// Address in the SDP offer's `c=` and `o=` lines.
    pub media_ip: IpAddr,
    /// Our RTP port per leg (caller, callee): the m-line ports of the offer.
    pub rtp_ports: [u16; 2],
    /// Codecs offered, in preference order (PCMU then PCMA by default; the driver sends only
    /// G.711).
    pub codecs: Vec<Format>,
    /// User part of our Contact and From (`src`).
    pub user: String,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// Most 3xx redirects followed per URI (default 3).
    pub max_redirects: u8,
    /// RFC 3261 §18.1.1: a request larger than 1300 bytes (a SIPREC INVITE always is) MUST go
    /// over a congestion-controlled transport. When a target's transport is UDP only because
    /// the URI named none (no `;transport=udp`) and we have TCP, the INVITE goes over TCP to
    /// the same address first, and over UDP if TCP is refused (as §18.1.1 says). Default true.
    pub large_requests_over_tcp: bool,
    /// When to offer SRTP (`RTP/SAVP` with an SDES `a=crypto` key, RFC 4568): by default for
    /// `sips:` SRSs only.
    pub srtp: SrtpOffer,
    /// The SRTP crypto suites offered, in preference order: one `a=crypto` line per suite on
    /// each m-line, tags 1, 2, … (RFC 4568 §7.1.1: the SRS accepts one and answers with its
    /// tag; we then send with our key of that tag). Default `[AES_CM_128_HMAC_SHA1_80,
    /// AES_CM_128_HMAC_SHA1_32]` (RFC 4568 §6.2; `_32` saves 6 bytes per packet). Repeats are
    /// ignored; an empty list offers `_80` alone.
    pub srtp_suites: Vec<siprec_rtp::srtp::SrtpSuite>,
}

/// When an SRC offers SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpOffer {
    /// Never: plain RTP.
    Never,
    /// For `sips:` SRS URIs (signalling over TLS keeps the key secret).
    #[default]
    Sips,
    /// Always (the key then travels in clear over UDP/TCP signalling: only for tests or
    /// networks that are otherwise protected).
    Always,
}

/// Our offered SRTP keys per leg (caller, callee): one fresh key per suite, tags 1, 2, … in
/// the order of `suites` (repeats dropped; `_80` when empty).
pub(super) fn new_srtp_keys(
    suites: &[siprec_rtp::srtp::SrtpSuite],
) -> [Vec<siprec_rtp::srtp::SdesKey>; 2] {
    let mut distinct: Vec<siprec_rtp::srtp::SrtpSuite> = Vec::new();
    for s in suites {
        if !distinct.contains(s) {
            distinct.push(*s);
        }
    }
    if distinct.is_empty() {
        distinct.push(siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_80);
    }
    [(); 2].map(|_| {
        (1..)
            .zip(&distinct)
            .map(|(tag, suite)| siprec_rtp::srtp::SdesKey::new(tag, *suite, rand::random()))
            .collect()
    })
}

/// Which of our offered `keys` the SRS accepted on one m-line of its `RTP/SAVP` answer.
///
/// RFC 4568 §7.1.2: the answer carries one `a=crypto` with the tag and suite of the offered
/// line it accepted (and the SRS's own key, for media we never receive). An answer that names
/// a tag we did not offer, or our tag with another suite, accepts nothing. An answer with no
/// `a=crypto` at all (an SRS that forgets it) is taken as accepting our first key.
pub(super) fn accepted_key<'a>(
    keys: &'a [siprec_rtp::srtp::SdesKey],
    answer: &[String],
) -> Option<&'a siprec_rtp::srtp::SdesKey> {
    if answer.is_empty() {
        return keys.first();
    }
    answer
        .iter()
        .filter_map(|v| siprec_rtp::srtp::SdesKey::parse(v).ok())
        .find_map(|a| keys.iter().find(|k| k.tag == a.tag && k.suite == a.suite))
}

/// RFC 3261 §18.1.1: above this size (path MTU unknown) a request must not go over UDP.
pub const UDP_SIZE_LIMIT: usize = 1300;

impl SrcConfig {
    /// Defaults with our UDP and TCP SIP ports on `ip` (`None` = no such transport) and the
    /// two RTP ports; the media address is `ip` too.
    pub fn new(ip: IpAddr, udp: Option<u16>, tcp: Option<u16>, rtp_ports: [u16; 2]) -> SrcConfig {
        SrcConfig {
            timers: TimerConfig::default(),
            start_timeout: Duration::from_secs(2),
            target_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(8),
            udp: udp.map(|p| SocketAddr::new(ip, p)),
            tcp: tcp.map(|p| SocketAddr::new(ip, p)),
            tls: None,
            media_ip: ip,
            rtp_ports,
            codecs: vec![Format::pcmu(), Format::pcma()],
            user: "src".into(),
            user_agent: concat!("siprec-rs-src/", env!("CARGO_PKG_VERSION")).into(),
            max_redirects: 3,
            large_requests_over_tcp: true,
            srtp: SrtpOffer::Sips,
            srtp_suites: vec![
                siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_80,
                siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_32,
            ],
        }
    }

    pub(super) fn local_for(&self, t: Transport) -> Option<SocketAddr> {
        match t {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
        }
    }
}

/// One party of the recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    /// Display name, if known.
    pub name: Option<String>,
    /// Address of record, e.g. `sip:+15551230000@example.com` (required).
    pub aor: String,
}

/// Direction of the recorded call, as seen by the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallDirection {
    /// The caller called into the platform.
    #[default]
    Inbound,
    /// The platform placed the call.
    Outbound,
}

impl CallDirection {
    /// `inbound` / `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }
}

/// Headers that must not be copied from the call onto the RS INVITE (we write them).
pub(super) const RESERVED_HEADERS: [&str; 22] = [
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "max-forwards",
    "route",
    "record-route",
    "require",
    "supported",
    "accept",
    "allow",
    "content-type",
    "content-length",
    "content-disposition",
    "content-encoding",
    "mime-version",
    "user-agent",
    "proxy-require",
    "session-expires",
    "min-se",
];

/// Most extra headers copied onto the RS INVITE.
pub const MAX_EXTRA_HEADERS: usize = 32;

/// The call being recorded: who talks (leg 1 = caller = `a=label:1` = left channel, leg 2 =
/// callee), its ids, and extra headers for the RS INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallContext {
    /// The call's SIP Call-ID (a `<sipSessionID>` of the metadata when no Session-ID).
    pub call_id: String,
    /// The call's RFC 7989 Session-ID, if known (preferred for `<sipSessionID>`).
    pub session_id: Option<String>,
    /// Inbound or outbound (metadata extension `<direction>`).
    pub direction: CallDirection,
    /// Leg 1.
    pub caller: Party,
    /// Leg 2.
    pub callee: Party,
    /// `X-Call-Sid`: metadata extension `<callsid>` when present.
    pub call_sid: Option<String>,
    /// `X-Account-Sid`: `<accountsid>`.
    pub account_sid: Option<String>,
    /// `X-Application-Sid`: `<applicationsid>`.
    pub application_sid: Option<String>,
    /// Headers copied onto each RS INVITE (name, value). Names must be tokens and not one of
    /// the headers the SRC writes itself (Via, From, To, Contact, Content-Type, …).
    pub extra_headers: Vec<(String, String)>,
}

impl CallContext {
    /// A small example call (Alice calls Bob), for docs and tests.
    pub fn example() -> CallContext {
        CallContext {
            call_id: "call-1@example.com".into(),
            session_id: None,
            direction: CallDirection::Inbound,
            caller: Party {
                name: Some("Alice".into()),
                aor: "sip:alice@example.com".into(),
            },
            callee: Party {
                name: Some("Bob".into()),
                aor: "sip:bob@example.com".into(),
            },
            call_sid: None,
            account_sid: None,
            application_sid: None,
            extra_headers: Vec::new(),
        }
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        for (what, p) in [("caller", &self.caller), ("callee", &self.callee)] {
            if p.aor.trim().is_empty() {
                return Err(Error::InvalidCallContext(format!("{what} has no AOR")));
            }
            if p.aor.chars().any(char::is_control) {
                return Err(Error::InvalidCallContext(format!(
                    "{what} AOR has control characters"
                )));
            }
        }
        if self.extra_headers.len() > MAX_EXTRA_HEADERS {
            return Err(Error::InvalidCallContext(format!(
                "more than {MAX_EXTRA_HEADERS} extra headers"
            )));
        }
        for (n, v) in &self.extra_headers {
            let token = !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
            if !token {
                return Err(Error::InvalidCallContext(format!(
                    "extra header name {:?} is not a token",
                    short(n)
                )));
            }
            let long = message::expand_compact_name(n).to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&long.as_str()) {
                return Err(Error::InvalidCallContext(format!(
                    "extra header {n} is written by the SRC itself"
                )));
            }
            if v.len() > 1024 || v.chars().any(|c| c == '\r' || c == '\n') {
                return Err(Error::InvalidCallContext(format!(
                    "extra header {n} has a value that is too long or spans lines"
                )));
            }
        }
        Ok(())
    }
}
