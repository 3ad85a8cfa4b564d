//! `siprec-client check`: a conformance battery for a recording server (SRS). It opens real
//! recording sessions against the SRS and judges each answer against the rule it comes from
//! (RFC 3261, 3264, 4028, 3311, 7866, or what the Call Recording Node needs), one
//! [`CheckResult`] per rule: PASS, FAIL, WARN, or SKIP when the rule cannot be exercised (no
//! session to test it in, or a transport the URI rules out).
//!
//! What this module owns: the battery ([`run`]) and its catalogue of checks ([`Check`], each
//! with its id, rule and title, [`Check::ALL`] in report order), the checker's user agent
//! ([`probe`]), the recording sessions it drives ([`session`]) and the report formats
//! ([`report`]: text with the summary first, JSON, JUnit XML). The checks themselves live one
//! file per [`Group`]: `transport.rs` (TLS, OPTIONS, large INVITEs), `invite.rs` (the SIPREC
//! INVITE and its answer, INVITEs to refuse), `media.rs` (RTP), `dialog.rs` (pause, resume,
//! refresh, metadata UPDATEs, BYE), `transaction.rs` (ACK, CANCEL, unknown dialog) and
//! `parallel.rs`.
//!
//! Call order: build a [`CheckConfig`] → [`run`] (calls `progress` before each check) →
//! [`Report::has_failures`] for the exit status, [`report::text`] / [`report::json`] /
//! [`report::junit`] to show it.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), siprec_client::Error> {
//! use siprec_client::check::{run, CheckConfig, report};
//! let cfg = CheckConfig { uri: "sip:127.0.0.1:5060".into(), ..CheckConfig::default() };
//! let r = run(&cfg, |_step, _total, _id| {}).await?;
//! print!("{}", report::text(&r, false));
//! assert!(!r.has_failures());
//! # Ok(()) }
//! ```

mod catalog;
mod dialog;
mod invite;
mod media;
mod parallel;
pub mod probe;
pub mod report;
pub mod session;
mod transaction;
mod transport;

pub use catalog::{Check, Group};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use siprec_core::client::{Host, SrsUri};
use siprec_sip::transaction::{Peer, Transport};
use siprec_sip_tokio::TlsClient;

use crate::resolver_api::{literal_target, ResolvedTarget, SrsResolver};
use crate::Error;
use probe::{Probe, ProbeError};
use session::RsSession;

/// Settings of a check run.
///
/// Defaults: 10 parallel sessions, 5 s to wait for each final response, 3 s of audio, the
/// system's DNS and CA roots, our address picked by the route to the SRS.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The SRS: one `sip:` or `sips:` URI (a `;transport=` parameter is obeyed).
    pub uri: String,
    /// Sessions opened at once by the `parallel` check.
    pub sessions: usize,
    /// CA file (PEM) to verify a `sips:` SRS; `None` uses the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for an SRS that requires mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// DNS server for a host name; `None` uses the system's.
    pub dns: Option<SocketAddr>,
    /// Our address for SIP and RTP; `None` picks the one that routes to the SRS.
    pub local_ip: Option<IpAddr>,
    /// How long to wait for each final response.
    pub timeout: Duration,
    /// How long the `audio` check streams.
    pub audio: Duration,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            uri: String::new(),
            sessions: 10,
            ca: None,
            client_cert: None,
            dns: None,
            local_ip: None,
            timeout: Duration::from_secs(5),
            audio: Duration::from_secs(3),
        }
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// The SRS did what the rule asks.
    Pass,
    /// The SRS broke a rule that stops recording from working (or a MUST).
    Fail,
    /// Allowed but worth knowing (a SHOULD, or a choice an SRC must cope with).
    Warn,
    /// Not exercised (no session to run it in, or a transport the URI rules out).
    Skip,
}

impl Status {
    /// `PASS`, `FAIL`, `WARN`, `SKIP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::Skip => "SKIP",
        }
    }
}

/// One check's result: the [`Check`]'s id, rule and title as the reports print them, and
/// the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Stable identifier (`answer-direction`, `bye`…): [`Check::id`].
    pub id: &'static str,
    /// Where the rule comes from (`RFC 3264 §6.1`): [`Check::rule`].
    pub rule: &'static str,
    /// What is checked, in a few words: [`Check::title`].
    pub title: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was expected (for FAIL and WARN).
    pub expected: Option<String>,
    /// What was seen: the response, the missing header, the offending SDP line.
    pub seen: String,
}

/// Every check of a run, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The SRS URI checked.
    pub uri: String,
    /// Where it resolved to (`udp:127.0.0.1:5060`).
    pub target: String,
    /// The results.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// How many checks ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// `true` when any check failed (the CLI then exits 1).
    pub fn has_failures(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    /// The result of the check whose id is `id`.
    pub fn get(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// The result of `check`.
    pub fn result(&self, check: Check) -> Option<&CheckResult> {
        self.get(check.id())
    }

    /// Ids of the failed checks.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.id)
            .collect()
    }
}

/// Collects results and reports progress.
struct Run<'a, F: FnMut(usize, usize, &str)> {
    checks: Vec<CheckResult>,
    progress: &'a mut F,
    step: usize,
}

impl<F: FnMut(usize, usize, &str)> Run<'_, F> {
    fn begin(&mut self, check: Check) {
        self.step += 1;
        (self.progress)(self.step, Check::ALL.len(), check.id());
    }

    fn record(&mut self, check: Check, status: Status, expected: Option<String>, seen: String) {
        self.checks.push(CheckResult {
            id: check.id(),
            rule: check.rule(),
            title: check.title(),
            status,
            expected,
            seen,
        });
    }

    fn pass(&mut self, check: Check, seen: impl Into<String>) {
        self.record(check, Status::Pass, None, seen.into());
    }

    fn fail(&mut self, check: Check, expected: impl Into<String>, seen: impl Into<String>) {
        self.record(check, Status::Fail, Some(expected.into()), seen.into());
    }

    fn warn(&mut self, check: Check, expected: impl Into<String>, seen: impl Into<String>) {
        self.record(check, Status::Warn, Some(expected.into()), seen.into());
    }

    fn skip(&mut self, check: Check, why: impl Into<String>) {
        self.record(check, Status::Skip, None, why.into());
    }

    /// Records a SKIP for every check of `checks` that has no result yet.
    fn skip_rest(&mut self, checks: &[Check], why: &str) {
        for &check in checks {
            if !self.checks.iter().any(|c| c.id == check.id()) {
                self.begin(check);
                self.skip(check, why);
            }
        }
    }
}

/// Resolves the URI to its first target (RFC 3263), with the name TLS must verify.
async fn resolve(uri: &SrsUri, dns: Option<SocketAddr>) -> Result<ResolvedTarget, Error> {
    if let Some(t) = literal_target(uri) {
        return Ok(t);
    }
    let resolver = crate::resolve::Resolver::new(crate::resolve::ResolverConfig {
        nameserver: dns,
        ..Default::default()
    })
    .map_err(|e| Error::Usage(format!("cannot set up DNS: {e}")))?;
    let name = match &uri.host {
        Host::Name(n) => n.clone(),
        Host::Ip(ip) => ip.to_string(),
    };
    SrsResolver::resolve(&resolver, uri)
        .await
        .map_err(|e| Error::Usage(format!("cannot resolve {name}: {e}")))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Usage(format!("{name} resolves to nothing")))
}

/// Our address towards `dest` (a UDP `connect` sends nothing; it only picks the route).
fn route_to(dest: SocketAddr) -> IpAddr {
    let bind: SocketAddr = if dest.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    std::net::UdpSocket::bind(bind)
        .and_then(|s| s.connect(dest).map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Runs the whole battery against `cfg.uri`. `progress(step, total, id)` is called before
/// each check. Errors are about our side only (a URI we cannot use, no DNS, no sockets);
/// everything the SRS does is in the report.
pub async fn run<F: FnMut(usize, usize, &str)>(
    cfg: &CheckConfig,
    mut progress: F,
) -> Result<Report, Error> {
    let uri = SrsUri::parse(cfg.uri.trim()).map_err(|e| Error::Usage(e.to_string()))?;
    if cfg.uri.contains(',') {
        return Err(Error::Usage("check takes one SRS URI, not a list".into()));
    }
    let resolved = resolve(&uri, cfg.dns).await?;
    let local_ip = cfg
        .local_ip
        .unwrap_or_else(|| route_to(resolved.target.addr));
    let tls = if resolved.target.transport == Transport::Tls {
        let client = TlsClient::new(cfg.ca.as_deref()).map_err(Error::Transport)?;
        Some(match &cfg.client_cert {
            Some((cert, key)) => client
                .with_client_cert(cert, key)
                .map_err(Error::Transport)?,
            None => client,
        })
    } else {
        None
    };
    let request_uri = uri.to_rsip().to_string();
    let mut run = Run {
        checks: Vec::new(),
        progress: &mut progress,
        step: 0,
    };
    let target = Peer {
        transport: resolved.target.transport,
        addr: resolved.target.addr,
    };
    let ctx = Ctx {
        cfg,
        local_ip,
        request_uri: &request_uri,
        server_name: &resolved.server_name,
        forced: uri.transport,
        secure: uri.secure,
        resolved: resolved.target.addr,
    };

    let Some(mut probe) = transport::tls(&mut run, &ctx, target, tls).await? else {
        run.skip_rest(Check::ALL, "no connection to the SRS");
        return Ok(Report {
            uri: cfg.uri.clone(),
            target: resolved.target.to_string(),
            checks: run.checks,
        });
    };

    transport::options(&mut run, &mut probe, &ctx).await;
    main_session(&mut run, &mut probe, &ctx).await;
    transport::large(&mut run, &ctx, Transport::Udp).await;
    transport::large(&mut run, &ctx, Transport::Tcp).await;
    invite::no_require(&mut run, &mut probe, &ctx).await;
    transaction::cancel(&mut run, &mut probe, &ctx).await;
    invite::garbage(&mut run, &mut probe, &ctx).await;
    transaction::unknown_dialog(&mut run, &mut probe, &ctx).await;
    parallel::parallel(&mut run, &mut probe, &ctx).await;
    // Let clean-up BYEs go out and their answers come back.
    probe.idle(Duration::from_millis(300)).await;
    probe.close();
    Ok(Report {
        uri: cfg.uri.clone(),
        target: resolved.target.to_string(),
        checks: run.checks,
    })
}

/// What every check needs besides the probe.
struct Ctx<'a> {
    cfg: &'a CheckConfig,
    local_ip: IpAddr,
    request_uri: &'a str,
    server_name: &'a str,
    /// The transport the URI names, if any.
    forced: Option<Transport>,
    /// `sips:`.
    secure: bool,
    /// The address the URI resolved to.
    resolved: SocketAddr,
}

impl Ctx<'_> {
    async fn session(&self, probe: &Probe) -> Result<RsSession, ProbeError> {
        RsSession::new(probe, self.request_uri, self.local_ip)
            .await
            .map_err(ProbeError::RtpPorts)
    }
}

/// `host:port` for a Via or From header (`[v6]:port` for IPv6).
fn host_port(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
    }
}

/// The checks on one session: INVITE and its answer, audio, the ACK, pause/resume, refresh,
/// metadata, BYE. Without an accepted INVITE the rest are skipped.
async fn main_session<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    const DEPENDENT: &[Check] = &[
        Check::AnswerSdp,
        Check::AnswerMlines,
        Check::AnswerDirection,
        Check::AnswerCodec,
        Check::AnswerPorts,
        Check::Contact,
        Check::Audio,
        Check::Ack,
        Check::Pause,
        Check::Resume,
        Check::SessionRefresh,
        Check::MetadataUpdate,
        Check::PartialMetadata,
        Check::Bye,
    ];
    let (mut s, resp) = match invite::invite(run, probe, ctx).await {
        Ok(accepted) => accepted,
        Err(why) => return run.skip_rest(DEPENDENT, why),
    };
    let answer = invite::answer(run, &s, &resp);
    invite::contact(run, &resp);
    media::audio(run, probe, &s, answer.as_ref(), ctx.cfg.audio).await;
    // The audio check took a second or more: an SRS that missed our ACK has retransmitted
    // its 2xx by now (T1 = 500 ms).
    transaction::ack(run, probe, &s);
    dialog::in_dialog(run, probe, &mut s, ctx.cfg.timeout).await;
}

#[cfg(test)]
mod tests {
    use super::probe::status_line;

    #[test]
    fn status_line_uses_the_reason_phrase() {
        let r = siprec_sip::rsip::Response {
            status_code: 481.into(),
            version: siprec_sip::rsip::Version::V2,
            headers: Default::default(),
            body: Vec::new(),
        };
        assert_eq!(status_line(&r), "481 Call/Transaction Does Not Exist");
    }
}
