//! `siprec-client check`: a conformance battery for a recording server (SRS). It opens real
//! recording sessions against the SRS and judges each answer against the rule it comes from
//! (RFC 3261, 3264, 4028, 3311, 7866, or what the Call Recording Node needs), one
//! [`CheckResult`] per rule: PASS, FAIL, WARN, or SKIP when the rule cannot be exercised (no
//! session to test it in, or a transport the URI rules out).
//!
//! What this module owns: the battery ([`run`]), the checker's user agent ([`probe`]), the
//! recording sessions it drives ([`session`]) and the report formats ([`report`]: text with
//! the summary first, JSON, JUnit XML).
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

pub mod probe;
pub mod report;
pub mod session;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use siprec_core::client::{Host, SrsUri};
use siprec_sdp::{Direction, SessionDescription};
use siprec_sip::message::{call_id, cseq, header_value, new_branch, new_call_id, new_tag};
use siprec_sip::rsip::Method;
use siprec_sip::transaction::{Peer, Transport};
use siprec_sip_tokio::TlsClient;

use crate::resolver_api::{literal_target, ResolvedTarget, SrsResolver};
use crate::Error;
use probe::{request_from_text, secs, Exchange, Probe};
use session::{answer_of, InviteShape, RsSession};

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

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Stable identifier (`answer-direction`, `bye`…).
    pub id: &'static str,
    /// Where the rule comes from (`RFC 3264 §6.1`).
    pub rule: &'static str,
    /// What is checked, in a few words.
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

    /// The result of check `id`.
    pub fn get(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
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

/// The checks in the order they run: (id, rule, title).
pub const CHECKS: &[(&str, &str, &str)] = &[
    (
        "tls",
        "RFC 3261 §26.2.2, RFC 5922",
        "TLS connection, certificate verified",
    ),
    ("options", "RFC 3261 §11.2", "OPTIONS answered"),
    ("invite", "RFC 7866 §6.1.1, §6.2", "SIPREC INVITE accepted"),
    (
        "answer-sdp",
        "RFC 3261 §13.3.1.4",
        "2xx carries an SDP answer",
    ),
    (
        "answer-mlines",
        "RFC 3264 §6",
        "answer keeps m-line count and order",
    ),
    (
        "answer-direction",
        "RFC 3264 §6.1, RFC 7866 §7.2",
        "each stream recvonly or inactive",
    ),
    (
        "answer-codec",
        "RFC 3264 §6.1",
        "codec chosen from the offer",
    ),
    ("answer-ports", "RFC 3264 §6", "usable address and ports"),
    (
        "contact",
        "RFC 3261 §12.1.1, RFC 7866 §6.2",
        "Contact present, with +sip.srs",
    ),
    (
        "audio",
        "RFC 7866 §8",
        "RTP taken: no ICMP unreachable, no BYE",
    ),
    (
        "ack",
        "RFC 3261 §13.3.1.4",
        "ACK taken: the 2xx is not retransmitted after it",
    ),
    (
        "pause",
        "RFC 7866 §7.1.1.2",
        "pause re-INVITE (a=inactive) accepted",
    ),
    (
        "resume",
        "RFC 7866 §7.1.1.2",
        "resume re-INVITE (a=sendonly) accepted",
    ),
    (
        "session-refresh",
        "RFC 4028 §9, RFC 3261 §14.2",
        "session refresh re-INVITE accepted",
    ),
    (
        "metadata-update",
        "RFC 7866 §9, RFC 3311 §5.2",
        "metadata-only UPDATE accepted",
    ),
    (
        "partial-metadata",
        "RFC 7866 §9, RFC 7865",
        "partial metadata document accepted",
    ),
    ("bye", "RFC 3261 §15.1.2", "BYE answered 2xx"),
    (
        "large-udp",
        "RFC 3261 §18.1.1",
        "INVITE over 1300 bytes over UDP",
    ),
    (
        "large-tcp",
        "RFC 3261 §18.1.1, §18.2.1",
        "INVITE over 1300 bytes over TCP",
    ),
    (
        "no-require",
        "RFC 7866 §6.1.1, RFC 3261 §8.2.2.3",
        "INVITE without Require: siprec",
    ),
    ("cancel", "RFC 3261 §9.2", "CANCEL before the answer"),
    (
        "garbage-body",
        "RFC 3261 §8.2.3, §13.3.1.3",
        "garbage body refused with a 4xx",
    ),
    (
        "unknown-dialog",
        "RFC 3261 §12.2.2",
        "request in an unknown dialog gets 481",
    ),
    (
        "parallel",
        "node: one RS per recorded call",
        "parallel sessions all accepted",
    ),
];

fn meta(id: &str) -> (&'static str, &'static str, &'static str) {
    CHECKS
        .iter()
        .find(|c| c.0 == id)
        .copied()
        .unwrap_or(("unknown", "", ""))
}

/// Collects results and reports progress.
struct Run<'a, F: FnMut(usize, usize, &str)> {
    checks: Vec<CheckResult>,
    progress: &'a mut F,
    step: usize,
}

impl<F: FnMut(usize, usize, &str)> Run<'_, F> {
    fn begin(&mut self, id: &str) {
        self.step += 1;
        (self.progress)(self.step, CHECKS.len(), id);
    }

    fn record(&mut self, id: &str, status: Status, expected: Option<String>, seen: String) {
        let (id, rule, title) = meta(id);
        self.checks.push(CheckResult {
            id,
            rule,
            title,
            status,
            expected,
            seen,
        });
    }

    fn pass(&mut self, id: &str, seen: impl Into<String>) {
        self.record(id, Status::Pass, None, seen.into());
    }

    fn fail(&mut self, id: &str, expected: impl Into<String>, seen: impl Into<String>) {
        self.record(id, Status::Fail, Some(expected.into()), seen.into());
    }

    fn warn(&mut self, id: &str, expected: impl Into<String>, seen: impl Into<String>) {
        self.record(id, Status::Warn, Some(expected.into()), seen.into());
    }

    fn skip(&mut self, id: &str, why: impl Into<String>) {
        self.record(id, Status::Skip, None, why.into());
    }

    /// Records a SKIP for every check from `ids` that has no result yet.
    fn skip_rest(&mut self, ids: &[&str], why: &str) {
        for id in ids {
            if !self.checks.iter().any(|c| c.id == *id) {
                self.begin(id);
                self.skip(id, why);
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
    let uri = SrsUri::parse(cfg.uri.trim()).map_err(Error::Usage)?;
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

    run.begin("tls");
    let probe = Probe::open(local_ip, target, &resolved.server_name, tls).await;
    let mut probe = match probe {
        Ok(mut p) => {
            p.send_timeout = cfg.timeout;
            if target.transport == Transport::Tls {
                run.pass(
                    "tls",
                    format!(
                        "connected to {}, certificate valid for {}",
                        target.addr, resolved.server_name
                    ),
                );
            } else {
                run.skip("tls", "the URI is sip: (TLS is checked for sips: URIs)");
            }
            p
        }
        // Over UDP/TCP nothing is sent yet: a failure here is ours (no socket).
        Err(e) if target.transport != Transport::Tls => return Err(e),
        Err(e) => {
            run.fail("tls", "a connection to the SRS", e.to_string());
            let rest: Vec<&str> = CHECKS.iter().map(|c| c.0).collect();
            run.skip_rest(&rest, "no connection to the SRS");
            return Ok(Report {
                uri: cfg.uri.clone(),
                target: resolved.target.to_string(),
                checks: run.checks,
            });
        }
    };

    options(&mut run, &mut probe, &ctx).await;
    main_session(&mut run, &mut probe, &ctx).await;
    large(&mut run, &ctx, Transport::Udp).await;
    large(&mut run, &ctx, Transport::Tcp).await;
    no_require(&mut run, &mut probe, &ctx).await;
    cancel(&mut run, &mut probe, &ctx).await;
    garbage(&mut run, &mut probe, &ctx).await;
    unknown_dialog(&mut run, &mut probe, &ctx).await;
    parallel(&mut run, &mut probe, &ctx).await;
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
    async fn session(&self, probe: &Probe) -> Result<RsSession, String> {
        RsSession::new(probe, self.request_uri, self.local_ip)
            .await
            .map_err(|e| format!("cannot bind RTP ports: {e}"))
    }
}

async fn options<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin("options");
    let hp = host_port(probe.local);
    let text = format!(
        "OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {hp};branch={b};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:check@{hp}>;tag={tag}\r\nTo: <{uri}>\r\nCall-ID: {cid}\r\nCSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
        uri = ctx.request_uri,
        t = probe.target.transport.as_str(),
        b = new_branch(),
        tag = new_tag(),
        cid = new_call_id(None),
    );
    let Ok(req) = request_from_text(&text) else {
        run.skip("options", "could not build the request");
        return;
    };
    let ex = probe.request(req, ctx.cfg.timeout).await;
    match ex.code() {
        Some(200..=299) => run.pass("options", ex.seen()),
        Some(_) => run.warn(
            "options",
            "200 OK (answered as an INVITE would be)",
            ex.seen(),
        ),
        None => run.fail("options", "a final response", ex.seen()),
    }
}

fn host_port(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
    }
}

/// The checks on one session: INVITE and its answer, audio, pause/resume, refresh,
/// metadata, BYE.
async fn main_session<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    const DEPENDENT: &[&str] = &[
        "answer-sdp",
        "answer-mlines",
        "answer-direction",
        "answer-codec",
        "answer-ports",
        "contact",
        "audio",
        "ack",
        "pause",
        "resume",
        "session-refresh",
        "metadata-update",
        "partial-metadata",
        "bye",
    ];
    run.begin("invite");
    let mut s = match ctx.session(probe).await {
        Ok(s) => s,
        Err(e) => {
            run.skip("invite", e);
            run.skip_rest(DEPENDENT, "no session");
            return;
        }
    };
    let ex = s
        .invite(probe, InviteShape::default(), ctx.cfg.timeout)
        .await;
    let size = s
        .invite
        .as_ref()
        .map(|r| probe::request_bytes(r).len())
        .unwrap_or(0);
    let Some(resp) = ex.final_response.clone().filter(|_| ex.is_success()) else {
        run.fail(
            "invite",
            format!(
                "2xx to a SIPREC INVITE ({size} bytes over {})",
                probe.target.transport.as_str()
            ),
            ex.seen(),
        );
        run.skip_rest(DEPENDENT, "the SIPREC INVITE was not accepted");
        return;
    };
    run.pass(
        "invite",
        format!(
            "{} ({size}-byte INVITE over {})",
            ex.seen(),
            probe.target.transport.as_str()
        ),
    );

    run.begin("answer-sdp");
    let offer = siprec_sdp::parse(s.last_offer.as_bytes()).ok();
    let answer = match answer_of(&resp) {
        Ok(a) => {
            run.pass(
                "answer-sdp",
                format!("application/sdp, {} m-lines", a.media.len()),
            );
            Some(a)
        }
        Err(e) => {
            run.fail(
                "answer-sdp",
                "an application/sdp answer in the 2xx (the INVITE carried the offer)",
                e,
            );
            None
        }
    };
    match (&answer, &offer) {
        (Some(a), Some(o)) => judge_answer(
            run,
            o,
            a,
            &[Direction::RecvOnly, Direction::Inactive],
            "answer",
        ),
        _ => run.skip_rest(
            &[
                "answer-mlines",
                "answer-direction",
                "answer-codec",
                "answer-ports",
            ],
            "no SDP answer",
        ),
    }

    run.begin("contact");
    match header_value(&resp.headers, "Contact") {
        None => run.fail(
            "contact",
            "a Contact header in the 2xx to the INVITE",
            "no Contact",
        ),
        Some(c) if c.to_ascii_lowercase().contains("+sip.srs") => run.pass("contact", c),
        Some(c) => run.warn("contact", "the +sip.srs feature tag in Contact", c),
    }

    run.begin("audio");
    match &answer {
        Some(a) => audio(run, probe, &s, a, ctx.cfg.audio).await,
        None => run.skip("audio", "no SDP answer: no address to send RTP to"),
    }

    // The audio check took a second or more: an SRS that missed our ACK has retransmitted
    // its 2xx by now (T1 = 500 ms).
    run.begin("ack");
    let invite_key = s
        .invite
        .as_ref()
        .and_then(|r| call_id(&r.headers).zip(cseq(&r.headers).map(|(n, _)| n)));
    match invite_key {
        Some((call, n)) => match probe.retransmitted_after_ack(&call, n) {
            0 => run.pass("ack", "no 2xx retransmission after the ACK"),
            k => run.fail(
                "ack",
                "no copy of the 2xx once the ACK has arrived",
                format!(
                    "the 2xx was sent {k} more time(s) more than {} ms after our ACK",
                    probe::ACK_CROSSING.as_millis()
                ),
            ),
        },
        None => run.skip("ack", "no INVITE"),
    }

    // Pause and resume (RFC 7866 §8.1.2): every stream inactive, then sendonly again.
    let wait = ctx.cfg.timeout;
    for (id, dir, want) in [
        ("pause", Direction::Inactive, Direction::Inactive),
        ("resume", Direction::SendOnly, Direction::RecvOnly),
    ] {
        run.begin(id);
        let sdp = s.offer(dir, true);
        let Some(ex) = s.reinvite(probe, sdp, wait).await else {
            run.skip(id, "no dialog");
            continue;
        };
        re_invite_verdict(run, id, &ex, &[want, Direction::Inactive], dir);
    }

    run.begin("session-refresh");
    let sdp = s.offer(Direction::SendOnly, false);
    match s.reinvite(probe, sdp, wait).await {
        Some(ex) if ex.is_success() => run.pass("session-refresh", ex.seen()),
        Some(ex) => run.fail(
            "session-refresh",
            "2xx to a re-INVITE repeating the last offer",
            ex.seen(),
        ),
        None => run.skip("session-refresh", "no dialog"),
    }

    for (id, xml) in [
        ("metadata-update", s.metadata(0)),
        ("partial-metadata", s.partial_metadata()),
    ] {
        run.begin(id);
        let body = ("application/rs-metadata+xml".to_string(), xml.into_bytes());
        let Some(mut req) = s.in_dialog(Method::Update, Some(body)) else {
            run.skip(id, "no dialog");
            continue;
        };
        req.headers.push(siprec_sip::rsip::Header::Other(
            "Content-Disposition".into(),
            "recording-session".into(),
        ));
        let ex = probe.request(req, wait).await;
        if ex.is_success() {
            run.pass(id, ex.seen());
        } else {
            run.fail(id, "2xx to an UPDATE carrying only metadata", ex.seen());
        }
    }

    run.begin("bye");
    match s.bye(probe, wait).await {
        Some(ex) if ex.is_success() => run.pass("bye", ex.seen()),
        Some(ex) => run.fail("bye", "2xx to BYE", ex.seen()),
        None => run.skip("bye", "no dialog"),
    }
}

/// The answer checks: m-lines, directions, codecs, ports.
fn judge_answer<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    offer: &SessionDescription,
    answer: &SessionDescription,
    allowed: &[Direction],
    what: &str,
) {
    run.begin("answer-mlines");
    let kinds =
        |sd: &SessionDescription| sd.media.iter().map(|m| m.media.clone()).collect::<Vec<_>>();
    // RFC 4574 labels, where the answer repeats them, must stay on their m-lines.
    let moved: Vec<String> = offer
        .media
        .iter()
        .zip(&answer.media)
        .filter_map(|(o, a)| match (&o.label, &a.label) {
            (Some(x), Some(y)) if x != y => Some(format!(
                "m-line {}: a=label:{y} (offered a=label:{x})",
                a.index + 1
            )),
            _ => None,
        })
        .collect();
    if kinds(offer) == kinds(answer) && !moved.is_empty() {
        run.fail(
            "answer-mlines",
            format!("the offer's m-lines in its order in the {what} (labels in place)"),
            moved.join("; "),
        );
    } else if kinds(offer) == kinds(answer) {
        run.pass(
            "answer-mlines",
            format!("{} m-lines, same order as the offer", answer.media.len()),
        );
    } else {
        run.fail(
            "answer-mlines",
            format!(
                "{} m-lines ({}) in the {what}",
                offer.media.len(),
                kinds(offer).join(", ")
            ),
            format!(
                "{} m-lines ({})",
                answer.media.len(),
                kinds(answer).join(", ")
            ),
        );
    }

    run.begin("answer-direction");
    let bad: Vec<String> = answer
        .media
        .iter()
        .filter(|m| m.port != 0 && !allowed.contains(&m.direction))
        .map(|m| format!("m-line {}: a={}", m.index + 1, m.direction.as_str()))
        .collect();
    if bad.is_empty() {
        let dirs: Vec<&str> = answer.media.iter().map(|m| m.direction.as_str()).collect();
        run.pass("answer-direction", dirs.join(", "));
    } else {
        let want: Vec<&str> = allowed.iter().map(|d| d.as_str()).collect();
        run.fail(
            "answer-direction",
            format!("a={} on every accepted stream", want.join(" or a=")),
            bad.join("; "),
        );
    }

    run.begin("answer-codec");
    let mut bad = Vec::new();
    let mut chosen = Vec::new();
    for m in answer.media.iter().filter(|m| m.port != 0) {
        let offered = offer.media.get(m.index);
        let first_audio = m
            .formats
            .iter()
            .find(|f| !f.is_telephone_event() && !f.is_comfort_noise());
        match (first_audio, offered) {
            (Some(f), Some(o)) if o.formats.iter().any(|of| of.payload_type == f.payload_type) => {
                chosen.push(format!("{} {}", f.payload_type, f.encoding));
            }
            (Some(f), _) => bad.push(format!(
                "m-line {}: payload type {} {} not offered",
                m.index + 1,
                f.payload_type,
                f.encoding
            )),
            (None, _) => bad.push(format!("m-line {}: no audio codec", m.index + 1)),
        }
    }
    if bad.is_empty() {
        run.pass("answer-codec", chosen.join(", "));
    } else {
        run.fail(
            "answer-codec",
            "a payload type from the offer (PCMU 0, PCMA 8)",
            bad.join("; "),
        );
    }

    run.begin("answer-ports");
    let mut bad = Vec::new();
    let mut seen = Vec::new();
    for m in &answer.media {
        if m.port == 0 {
            bad.push(format!("m-line {}: port 0 (stream declined)", m.index + 1));
            continue;
        }
        match m.remote_rtp_addr() {
            Some(a) if a.port() >= 1024 => seen.push(a.to_string()),
            Some(a) => bad.push(format!(
                "m-line {}: privileged port {}",
                m.index + 1,
                a.port()
            )),
            None if m.direction == Direction::Inactive => {
                seen.push(format!("m-line {} inactive", m.index + 1))
            }
            None => bad.push(format!("m-line {}: no usable c= address", m.index + 1)),
        }
    }
    if bad.is_empty() {
        run.pass("answer-ports", seen.join(", "));
    } else {
        run.fail(
            "answer-ports",
            "a connection address and a non-zero port per recorded stream",
            bad.join("; "),
        );
    }
}

fn re_invite_verdict<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    id: &str,
    ex: &Exchange,
    allowed: &[Direction],
    offered: Direction,
) {
    let Some(resp) = ex.final_response.as_ref().filter(|_| ex.is_success()) else {
        run.fail(
            id,
            format!("2xx to a re-INVITE with a={}", offered.as_str()),
            ex.seen(),
        );
        return;
    };
    match answer_of(resp) {
        Ok(a) => {
            let bad: Vec<String> = a
                .media
                .iter()
                .filter(|m| m.port != 0 && !allowed.contains(&m.direction))
                .map(|m| format!("m-line {}: a={}", m.index + 1, m.direction.as_str()))
                .collect();
            let dirs: Vec<&str> = a.media.iter().map(|m| m.direction.as_str()).collect();
            let stays_inactive = offered == Direction::SendOnly
                && a.media
                    .iter()
                    .all(|m| m.port == 0 || m.direction == Direction::Inactive);
            if bad.is_empty() && stays_inactive {
                run.warn(
                    id,
                    "a=recvonly on the resumed streams (recording resumes)",
                    format!(
                        "{}, answer {}: nothing is recorded after the resume",
                        ex.seen(),
                        dirs.join(", ")
                    ),
                );
            } else if bad.is_empty() {
                run.pass(id, format!("{}, answer {}", ex.seen(), dirs.join(", ")));
            } else {
                let want: Vec<&str> = allowed.iter().map(|d| d.as_str()).collect();
                run.fail(
                    id,
                    format!(
                        "a={} in the answer to a={}",
                        want.join(" or a="),
                        offered.as_str()
                    ),
                    bad.join("; "),
                );
            }
        }
        Err(e) => run.fail(id, "an SDP answer in the 2xx to the re-INVITE", e),
    }
}

/// Streams PCMU on every accepted leg for `d`, watching for ICMP errors (a closed port), a
/// BYE from the SRS, and RTCP reports.
async fn audio<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    s: &RsSession,
    answer: &SessionDescription,
    d: Duration,
) {
    let dests: Vec<_> = answer
        .media
        .iter()
        .map(|m| {
            m.remote_rtp_addr()
                .filter(|_| m.direction != Direction::Inactive)
        })
        .collect();
    let legs: Vec<_> = s
        .legs
        .iter()
        .zip(dests.iter())
        .filter_map(|(l, d)| d.map(|d| (l, d)))
        .collect();
    if legs.is_empty() {
        run.warn(
            "audio",
            "at least one stream accepted for recording (recvonly with an address and port)",
            "every stream inactive or declined: nothing would be recorded",
        );
        return;
    }
    // Linux reports an ICMP port-unreachable only to a connected UDP socket.
    for (leg, dest) in &legs {
        if let Err(e) = leg.rtp.connect(*dest).await {
            run.fail(
                "audio",
                format!("RTP to {dest}"),
                format!("cannot send: {e}"),
            );
            return;
        }
    }
    let byes_before = probe.srs_requests(&s.call_id, Method::Bye);
    let stream = async {
        let mut refused = 0u32;
        let mut rtcp = 0u32;
        let mut sent = 0u32;
        let frames = (d.as_millis() / 20) as u32;
        let start = tokio::time::Instant::now();
        let payload = [0xFFu8; 160]; // PCMU silence-level samples: content does not matter here
        let mut pkt = [0u8; 12 + 160];
        let mut buf = [0u8; 1500];
        for k in 0..frames {
            tokio::time::sleep_until(start + Duration::from_millis(20 * k as u64)).await;
            for (i, (leg, dest)) in legs.iter().enumerate() {
                let header = siprec_rtp::RtpHeader {
                    marker: k == 0,
                    payload_type: 0,
                    sequence: k as u16,
                    timestamp: k * 160,
                    ssrc: 0x5eed_0000 + i as u32,
                };
                let n = siprec_rtp::write(&header, &payload, &mut pkt).unwrap_or(0);
                let _ = dest;
                match leg.rtp.send(&pkt[..n]).await {
                    Ok(_) => sent += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
                    Err(_) => {}
                }
                while let Ok((_, _)) = leg.rtcp.try_recv_from(&mut buf) {
                    rtcp += 1;
                }
                // A closed port shows up as an error on the socket's next operation.
                if let Err(e) = leg.rtp.try_recv(&mut buf) {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        refused += 1;
                    }
                }
            }
        }
        (sent, refused, rtcp)
    };
    let ((sent, refused, rtcp), ()) = tokio::join!(stream, probe.idle(d));
    let byes = probe.srs_requests(&s.call_id, Method::Bye) - byes_before;
    let seen = format!(
        "{sent} packets to {} stream(s) in {}, {refused} ICMP errors, {byes} BYE from the SRS, {}",
        legs.len(),
        secs(d),
        if rtcp > 0 {
            format!("{rtcp} RTCP packets from the SRS")
        } else {
            "no RTCP from the SRS".into()
        }
    );
    if refused > 0 || byes > 0 {
        run.fail(
            "audio",
            "RTP taken on the answered ports: no ICMP port-unreachable, no BYE",
            seen,
        );
    } else {
        run.pass("audio", seen);
    }
}

/// A SIPREC INVITE padded over 1300 bytes over `transport`, in a session of its own.
async fn large<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    ctx: &Ctx<'_>,
    transport: Transport,
) {
    let id = if transport == Transport::Udp {
        "large-udp"
    } else {
        "large-tcp"
    };
    run.begin(id);
    let Some(addr) = same_host_over(ctx, transport) else {
        let why = match ctx.forced {
            Some(t) => format!(
                "the URI asks for transport={}",
                t.as_str().to_ascii_lowercase()
            ),
            None => "sips: URI: TLS only".to_string(),
        };
        run.skip(id, why);
        return;
    };
    let peer = Peer { transport, addr };
    let mut probe = match Probe::open(ctx.local_ip, peer, ctx.server_name, None).await {
        Ok(mut p) => {
            p.send_timeout = ctx.cfg.timeout;
            p
        }
        Err(e) => {
            run.fail(
                id,
                format!("a {} connection to {addr}", transport.as_str()),
                e.to_string(),
            );
            return;
        }
    };
    let mut s = match ctx.session(&probe).await {
        Ok(s) => s,
        Err(e) => {
            run.skip(id, e);
            return;
        }
    };
    let shape = InviteShape {
        min_size: 2000,
        ..InviteShape::default()
    };
    let ex = s.invite(&mut probe, shape, ctx.cfg.timeout).await;
    let size = s
        .invite
        .as_ref()
        .map(|r| probe::request_bytes(r).len())
        .unwrap_or(0);
    if ex.is_success() {
        run.pass(id, format!("{size}-byte INVITE: {}", ex.seen()));
        let _ = s
            .bye(&mut probe, ctx.cfg.timeout.min(Duration::from_secs(2)))
            .await;
    } else {
        run.fail(
            id,
            format!(
                "2xx to a {size}-byte SIPREC INVITE over {}",
                transport.as_str()
            ),
            ex.seen(),
        );
    }
    probe.close();
}

/// Where to send over `transport`: the resolved host and port, unless the URI rules that
/// transport out (`sips:`, or another `;transport=`). An SRS listens on UDP and TCP alike
/// (RFC 3261 §18).
fn same_host_over(ctx: &Ctx<'_>, transport: Transport) -> Option<SocketAddr> {
    if ctx.secure || ctx.forced.is_some_and(|t| t != transport) {
        return None;
    }
    Some(ctx.resolved)
}

async fn no_require<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin("no-require");
    let mut s = match ctx.session(probe).await {
        Ok(s) => s,
        Err(e) => return run.skip("no-require", e),
    };
    let shape = InviteShape {
        require_siprec: false,
        ..InviteShape::default()
    };
    let ex = s.invite(probe, shape, ctx.cfg.timeout).await;
    match ex.code() {
        Some(200..=299) => {
            run.pass(
                "no-require",
                format!(
                    "accepted ({}): the SRS records without Require: siprec",
                    ex.seen()
                ),
            );
            s.hang_up(probe);
        }
        Some(420) => run.pass("no-require", format!("refused: {}", ex.seen())),
        Some(_) => run.warn(
            "no-require",
            "2xx (accepted) or 420 (Unsupported: siprec)",
            ex.seen(),
        ),
        None => run.fail("no-require", "a final response (2xx or 420)", ex.seen()),
    }
}

async fn cancel<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin("cancel");
    let mut s = match ctx.session(probe).await {
        Ok(s) => s,
        Err(e) => return run.skip("cancel", e),
    };
    let req = s.build_invite(InviteShape::default());
    let key = probe.start(req);
    let cancel_key = probe.cancel(&key);
    let ex = probe.finish(&key, ctx.cfg.timeout).await;
    if ex.is_success() {
        // ACK the 2xx at once (the CANCEL, if sent, changes nothing now).
        s.established(probe, ex.final_response.as_ref()).await;
    }
    // The CANCEL went out only if a provisional response came first (RFC 3261 §9.1).
    let cancel_sent = !ex.provisional.is_empty();
    let cancel_ex = match &cancel_key {
        Some(k) if cancel_sent => Some(
            probe
                .finish(k, ctx.cfg.timeout.min(Duration::from_secs(2)))
                .await,
        ),
        _ => None,
    };
    let cancel_seen = match &cancel_ex {
        Some(c) if c.final_response.is_some() => format!("CANCEL answered {}", c.seen()),
        Some(c) => format!("CANCEL not answered: {}", c.seen()),
        None => "CANCEL not sent (no provisional response came first, RFC 3261 §9.1)".into(),
    };
    match ex.code() {
        Some(487) => run.pass("cancel", format!("INVITE ended 487, {cancel_seen}")),
        Some(200..=299) => {
            run.pass(
                "cancel",
                format!(
                    "the SRS answered {} before the CANCEL took effect; {cancel_seen}",
                    ex.seen()
                ),
            );
            s.hang_up(probe);
        }
        Some(_) => run.warn(
            "cancel",
            "487 Request Terminated (or a 2xx that came first)",
            format!("{}; {cancel_seen}", ex.seen()),
        ),
        None => run.fail(
            "cancel",
            "a final response to the cancelled INVITE",
            ex.seen(),
        ),
    }
}

async fn garbage<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin("garbage-body");
    let mut s = match ctx.session(probe).await {
        Ok(s) => s,
        Err(e) => return run.skip("garbage-body", e),
    };
    let shape = InviteShape {
        garbage_body: true,
        ..InviteShape::default()
    };
    let ex = s.invite(probe, shape, ctx.cfg.timeout).await;
    let expected = "a 4xx naming the problem (400, 415 with Accept, or 488)";
    match ex.code() {
        Some(400..=499) => run.pass("garbage-body", ex.seen()),
        Some(200..=299) => {
            run.fail(
                "garbage-body",
                expected,
                format!(
                    "{}: a body that is no multipart document was accepted",
                    ex.seen()
                ),
            );
            s.hang_up(probe);
        }
        Some(_) => run.warn("garbage-body", expected, ex.seen()),
        None => run.fail("garbage-body", expected, format!("silence: {}", ex.seen())),
    }
}

async fn unknown_dialog<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin("unknown-dialog");
    let hp = host_port(probe.local);
    let text = format!(
        "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {hp};branch={b};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:check@{hp}>;tag={tag}\r\nTo: <{uri}>;tag={tag2}\r\nCall-ID: {cid}\r\nCSeq: 7 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        uri = ctx.request_uri,
        t = probe.target.transport.as_str(),
        b = new_branch(),
        tag = new_tag(),
        tag2 = new_tag(),
        cid = new_call_id(None),
    );
    let Ok(req) = request_from_text(&text) else {
        return run.skip("unknown-dialog", "could not build the request");
    };
    let ex = probe.request(req, ctx.cfg.timeout).await;
    match ex.code() {
        Some(481) => run.pass("unknown-dialog", ex.seen()),
        Some(_) => run.fail(
            "unknown-dialog",
            "481 Call/Transaction Does Not Exist to a BYE for no dialog",
            ex.seen(),
        ),
        None => run.fail(
            "unknown-dialog",
            "481 Call/Transaction Does Not Exist",
            ex.seen(),
        ),
    }
}

async fn parallel<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin("parallel");
    let n = ctx.cfg.sessions.max(1);
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        match ctx.session(probe).await {
            Ok(s) => sessions.push(s),
            Err(e) => return run.skip("parallel", e),
        }
    }
    let keys: Vec<_> = sessions
        .iter_mut()
        .map(|s| {
            let req = s.build_invite(InviteShape::default());
            probe.start(req)
        })
        .collect();
    let deadline = tokio::time::Instant::now() + ctx.cfg.timeout;
    let mut codes = Vec::with_capacity(n);
    for (s, key) in sessions.iter_mut().zip(keys.iter()) {
        // One deadline for the whole batch.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ex = probe.finish(key, left.max(Duration::from_millis(1))).await;
        if ex.is_success() {
            s.established(probe, ex.final_response.as_ref()).await;
        }
        codes.push(ex);
    }
    let ok = codes.iter().filter(|e| e.is_success()).count();
    for s in &mut sessions {
        s.hang_up(probe);
    }
    if ok == n {
        run.pass("parallel", format!("{ok}/{n} sessions accepted"));
    } else {
        let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
        for e in codes.iter().filter(|e| !e.is_success()) {
            *tally.entry(e.seen()).or_default() += 1;
        }
        let others: Vec<String> = tally.iter().map(|(k, v)| format!("{v}× {k}")).collect();
        run.fail(
            "parallel",
            format!("{n}/{n} sessions accepted"),
            format!("{ok}/{n} accepted; {}", others.join(", ")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::probe::status_line;
    use super::*;

    #[test]
    fn every_check_has_a_rule_and_a_title() {
        let mut ids = std::collections::HashSet::new();
        for (id, rule, title) in CHECKS {
            assert!(ids.insert(*id), "duplicate {id}");
            assert!(
                rule.starts_with("RFC ") || rule.starts_with("node: "),
                "{id}: {rule}"
            );
            assert!(!title.is_empty());
        }
        assert_eq!(meta("bye").0, "bye");
    }

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
