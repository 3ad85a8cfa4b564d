//! `siprec-client gateway` over real UDP sockets on loopback, with srs-server as the SRS and two
//! small phones of this file as the caller and the callee (SIP written by hand, as a peer's
//! would be): the Outcomes table driven by INFO (not recording, missing and `wss://` server
//! values, a dead SRS answered `400` after the start timeout with the call unharmed, two SRSs
//! in parallel with one dead, a duplicate start), CANCEL before the answer, BYE from the callee
//! with record-all, and an SRS that ends its session mid-call while the call goes on.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use interop_tests::{next_recording, start_srs};
use siprec_client::gateway::{Gateway, GatewayOptions};
use siprec_sip::message::{header_value, parse_message, tag_of, uri_of};
use siprec_sip::rsip::{Request, Response, SipMessage};
use siprec_sip::transaction::Transport;
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);

/// A SIP phone on one UDP socket, talking to the gateway only.
struct Phone {
    sock: UdpSocket,
    gw: SocketAddr,
    backlog: VecDeque<SipMessage>,
    /// Status lines as received (rsip keeps no custom phrase of a known code).
    lines: VecDeque<String>,
}

impl Phone {
    async fn new(gw: SocketAddr) -> Phone {
        Phone {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            gw,
            backlog: VecDeque::new(),
            lines: VecDeque::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    async fn send(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), self.gw).await.unwrap();
    }

    async fn read(&mut self, within: Duration) -> Option<SipMessage> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(within, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let msg = parse_message(&buf[..n]).expect("the gateway sends SIP");
        if let SipMessage::Response(_) = &msg {
            self.lines.push_back(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            );
        }
        Some(msg)
    }

    /// The next message that `pick` takes (others are kept for later).
    async fn wait<T>(
        &mut self,
        what: &str,
        within: Duration,
        pick: impl Fn(&SipMessage) -> Option<T>,
    ) -> T {
        if let Some(i) = self.backlog.iter().position(|m| pick(m).is_some()) {
            let m = self.backlog.remove(i).unwrap();
            return pick(&m).unwrap();
        }
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let Some(m) = self.read(left).await else {
                panic!("no {what} within {within:?}")
            };
            if let Some(t) = pick(&m) {
                return t;
            }
            self.backlog.push_back(m);
        }
    }

    /// The final response to the request with CSeq `n method`, and its status line as sent.
    async fn final_response(
        &mut self,
        n: u32,
        method: &str,
        within: Duration,
    ) -> (Response, String) {
        let want = format!("{n} {method}");
        let r = self
            .wait(&format!("final response to {want}"), within, |m| match m {
                SipMessage::Response(r)
                    if r.status_code.code() >= 200
                        && header_value(&r.headers, "CSeq")
                            .is_some_and(|c| c.eq_ignore_ascii_case(&want)) =>
                {
                    Some(r.clone())
                }
                _ => None,
            })
            .await;
        let code = format!("SIP/2.0 {} ", r.status_code.code());
        let line = self
            .lines
            .iter()
            .rev()
            .find(|l| l.starts_with(&code))
            .cloned()
            .unwrap_or_default();
        (r, line)
    }

    async fn request(&mut self, method: &str, within: Duration) -> Request {
        self.wait(method, within, |m| match m {
            SipMessage::Request(r) if r.method.to_string() == method => Some(r.clone()),
            _ => None,
        })
        .await
    }

    /// Answers `req` with `code` (a To tag of ours, our Contact, an SDP body when given).
    async fn answer(&self, req: &Request, code: u16, tag: &str, sdp: Option<&str>) {
        let h = |n: &str| header_value(&req.headers, n).unwrap_or_default();
        let to = if h("To").contains("tag=") {
            h("To")
        } else {
            format!("{};tag={tag}", h("To"))
        };
        let vias: String = siprec_sip::message::header_values(&req.headers, "Via")
            .iter()
            .map(|v| format!("Via: {v}\r\n"))
            .collect();
        let body = sdp.unwrap_or("");
        let ct = if sdp.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        let text = format!(
            "SIP/2.0 {code} {}\r\n{vias}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:phone@{}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            siprec_sip::message::reason_phrase(code),
            h("From"),
            h("Call-ID"),
            h("CSeq"),
            self.addr(),
            body.len()
        );
        self.send(&text).await;
    }
}

fn sdp(port: u16) -> String {
    sdp_with(port, "0 101")
}

/// An audio offer or answer on `port` with these payload types (0 PCMU, 8 PCMA, 101 events).
fn sdp_with(port: u16, pts: &str) -> String {
    format!(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {port} RTP/AVP {pts}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// The caller's side of a dialog.
struct Call {
    call_id: String,
    from: String,
    to: String,
    target: String,
    cseq: u32,
    /// The INVITE's Via branch (a CANCEL reuses it, RFC 3261 §9.1).
    branch: String,
}

impl Call {
    fn request(
        &mut self,
        phone: &Phone,
        method: &str,
        extra: &str,
        body: Option<&str>,
    ) -> (u32, String) {
        if method != "ACK" {
            self.cseq += 1;
        }
        let body = body.unwrap_or("");
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let text = format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{}-{}-{};rport\r\nFrom: {}\r\nTo: {}\r\n\
Call-ID: {}\r\nCSeq: {} {method}\r\nMax-Forwards: 70\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
            self.target,
            phone.addr(),
            self.call_id.len(),
            self.cseq,
            method.to_ascii_lowercase(),
            self.from,
            self.to,
            self.call_id,
            self.cseq,
            body.len()
        );
        (self.cseq, text)
    }
}

/// Sends the caller's INVITE (with `extra` headers) and returns the dialog so far.
async fn invite(caller: &Phone, extra: &str) -> Call {
    invite_sdp(caller, extra, &sdp(40000)).await
}

async fn invite_sdp(caller: &Phone, extra: &str, body: &str) -> Call {
    let call_id = format!("e2e-{}@127.0.0.1", rand::random::<u32>());
    let from = format!(
        "\"Caller\" <sip:caller@e2e.invalid>;tag=c{}",
        rand::random::<u16>()
    );
    let branch = format!("z9hG4bK-inv-{}", rand::random::<u32>());
    let text = format!(
        "INVITE sip:callee@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\nFrom: {from}\r\n\
To: \"Callee\" <sip:callee@e2e.invalid>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\n\
Max-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        gw = caller.gw,
        me = caller.addr(),
    );
    caller.send(&text).await;
    Call {
        call_id,
        from,
        to: "\"Callee\" <sip:callee@e2e.invalid>".into(),
        target: format!("sip:callee@{}", caller.gw),
        cseq: 1,
        branch,
    }
}

/// The callee answers the gateway's INVITE; the caller gets the 200 and ACKs.
async fn answer_and_ack(caller: &mut Phone, callee: &mut Phone, call: Call) -> (Call, Request) {
    let (call, inv, _) = answer_and_ack_sdp(caller, callee, call, &sdp(42000)).await;
    (call, inv)
}

async fn answer_and_ack_sdp(
    caller: &mut Phone,
    callee: &mut Phone,
    mut call: Call,
    answer: &str,
) -> (Call, Request, Response) {
    let inv = callee.request("INVITE", WAIT).await;
    callee.answer(&inv, 180, "callee-tag", None).await;
    callee.answer(&inv, 200, "callee-tag", Some(answer)).await;
    let (ok, _) = caller.final_response(1, "INVITE", WAIT).await;
    assert_eq!(ok.status_code.code(), 200);
    call.to = header_value(&ok.headers, "To").unwrap();
    assert!(tag_of(&call.to).is_some());
    call.target = uri_of(&header_value(&ok.headers, "Contact").unwrap()).to_string();
    let (_, ack) = call.request(caller, "ACK", "", None);
    let ack = ack.replace(&format!("CSeq: {} ACK", call.cseq), "CSeq: 1 ACK");
    caller.send(&ack).await;
    (call, inv, ok)
}

/// The caller hangs up: its BYE is answered 200 and reaches the callee, who answers it.
async fn hang_up(caller: &mut Phone, callee: &mut Phone, call: &mut Call) {
    let (n, text) = call.request(caller, "BYE", "", None);
    caller.send(&text).await;
    let (ok, _) = caller.final_response(n, "BYE", WAIT).await;
    assert_eq!(ok.status_code.code(), 200);
    let bye = callee.request("BYE", WAIT).await;
    callee.answer(&bye, 200, "callee-tag", None).await;
}

/// Pauses a record-all call's recording: until the SRS has accepted, the gateway answers
/// "still starting", so the INFO is repeated (for about a second at most); the last reply.
async fn pause_once_started(caller: &mut Phone, call: &mut Call) -> String {
    let mut line = String::new();
    for _ in 0..40 {
        line = info(caller, call, "X-Reason: pauseCallRecording\r\n", WAIT).await;
        if !line.contains("still starting") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    line
}

async fn info(caller: &mut Phone, call: &mut Call, headers: &str, within: Duration) -> String {
    let (n, text) = call.request(caller, "INFO", headers, None);
    caller.send(&text).await;
    caller.final_response(n, "INFO", within).await.1
}

/// A gateway forwarding to a callee phone, and a caller phone pointed at it.
async fn gateway(record_all: Option<String>) -> (Gateway, Phone, Phone) {
    let mut callee = Phone::new("127.0.0.1:9".parse().unwrap()).await;
    let base = 33000 + (std::process::id() % 50) as u16 * 40;
    let gw = Gateway::start(GatewayOptions {
        listen: vec!["udp:127.0.0.1:0".parse().unwrap()],
        forward: format!("sip:{}", callee.addr()),
        rtp_ports: (base, base + 39),
        record_all,
        ..GatewayOptions::default()
    })
    .await
    .unwrap();
    let gw_addr = gw.local_addrs()[0].addr;
    callee.gw = gw_addr;
    let caller = Phone::new(gw_addr).await;
    (gw, caller, callee)
}

fn dead_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_row_driven_by_info_and_a_dead_srs_leaves_the_call_unharmed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_srs(dir.path(), 34400).await.unwrap();
    let mut published = server.subscribe();
    let srs = server
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .unwrap()
        .addr;
    let (gw, mut caller, mut callee) = gateway(None).await;
    let call = invite(&caller, "").await;
    let (mut call, _) = answer_and_ack(&mut caller, &mut callee, call).await;

    for (headers, want) in [
        (
            "X-Reason: stopCallRecording\r\n",
            "SIP/2.0 400 discarding stopCallRecording request because we are not recording",
        ),
        (
            "X-Reason: pauseCallRecording\r\n",
            "SIP/2.0 400 discarding invalid pauseCallRecording request",
        ),
        (
            "X-Reason: resumeCallRecording\r\n",
            "SIP/2.0 400 discarding invalid resumeCallRecording request",
        ),
        (
            "X-Reason: startCallRecording\r\n",
            "SIP/2.0 400 startCallRecording request is missing X-Srs-Url header",
        ),
        (
            "X-Reason: startCallRecording\r\nX-Srs-Url: \r\n",
            "SIP/2.0 400 startCallRecording request is missing X-Srs-Url header",
        ),
    ] {
        let line = info(&mut caller, &mut call, headers, WAIT).await;
        assert!(
            line == want || line.starts_with(&format!("{want}: ")),
            "{headers:?}: {line}"
        );
    }
    let line = info(
        &mut caller,
        &mut call,
        "X-Reason: startCallRecording\r\nX-Srs-Url: wss://srs.example.com\r\n",
        WAIT,
    )
    .await;
    assert!(
        line.starts_with("SIP/2.0 503 Error starting SipRec call recording: ")
            && line.contains("wss://"),
        "{line}"
    );

    // A dead SRS: the contract's 400 once the start timeout (2 s) is over, not before.
    let dead = dead_udp_port();
    let t = Instant::now();
    let line = info(
        &mut caller,
        &mut call,
        &format!("X-Reason: startCallRecording\r\nX-Srs-Url: sip:127.0.0.1:{dead}\r\n"),
        WAIT,
    )
    .await;
    let took = t.elapsed();
    assert!(
        line.starts_with(
            "SIP/2.0 400 No response from SipRec server, return error to feature server"
        ),
        "{line}"
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );
    // The call is unharmed: an INFO of the call's own (no X-Reason) still reaches the callee.
    let (n, text) = call.request(
        &caller,
        "INFO",
        "Content-Type: application/dtmf-relay\r\n",
        None,
    );
    caller.send(&text).await;
    let relayed = callee.request("INFO", WAIT).await;
    callee.answer(&relayed, 200, "callee-tag", None).await;
    assert_eq!(
        caller
            .final_response(n, "INFO", WAIT)
            .await
            .0
            .status_code
            .code(),
        200
    );

    // Two SRSs in parallel, one dead: the start succeeds on the live one.
    let line = info(
        &mut caller,
        &mut call,
        &format!("X-Reason: startCallRecording\r\nX-Srs-Url: sip:{srs}, sip:127.0.0.1:{dead}\r\nX-Srs-Recording-ID: e2e-rec-1\r\n"),
        WAIT,
    )
    .await;
    assert_eq!(line, "SIP/2.0 200 startCallRecording request for a call");
    let line = info(
        &mut caller,
        &mut call,
        &format!("X-Reason: startCallRecording\r\nX-Srs-Url: sip:{srs}\r\n"),
        WAIT,
    )
    .await;
    assert!(
        line.starts_with("SIP/2.0 400 discarding duplicate startCallRecording request for a call"),
        "{line}"
    );
    let line = info(
        &mut caller,
        &mut call,
        "X-Reason: stopCallRecording\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(line, "SIP/2.0 200 stopCallRecording request for a call");
    let rec = next_recording(&mut published).await;
    assert_eq!(rec.manifest.recording_key, "e2e-rec-1");
    assert_eq!(rec.manifest.ended_by, "bye-from-src");
    // None of the commands reached the callee; the caller hangs up.
    assert!(callee
        .backlog
        .iter()
        .all(|m| !matches!(m, SipMessage::Request(r) if r.method.to_string() == "INFO")));
    hang_up(&mut caller, &mut callee, &mut call).await;
    gw.shutdown().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_the_answer_cancels_the_callee() {
    let (gw, mut caller, mut callee) = gateway(None).await;
    let call = invite(&caller, "").await;
    let inv = callee.request("INVITE", WAIT).await;
    callee.answer(&inv, 180, "callee-tag", None).await;
    caller
        .wait("180", WAIT, |m| {
            matches!(m, SipMessage::Response(r) if r.status_code.code() == 180).then_some(())
        })
        .await;
    // The caller gives up: CANCEL with the INVITE's branch (RFC 3261 §9.1).
    let cancel = format!(
        "CANCEL sip:callee@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={};rport\r\nFrom: {}\r\n\
To: \"Callee\" <sip:callee@e2e.invalid>\r\nCall-ID: {}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        call.branch,
        call.from,
        call.call_id,
        me = caller.addr(),
        gw = caller.gw,
    );
    caller.send(&cancel).await;
    assert_eq!(
        caller
            .final_response(1, "CANCEL", WAIT)
            .await
            .0
            .status_code
            .code(),
        200
    );
    assert_eq!(
        caller
            .final_response(1, "INVITE", WAIT)
            .await
            .0
            .status_code
            .code(),
        487
    );
    // The gateway cancels the callee's INVITE; the callee ends it with 487 and gets the ACK.
    let c = callee.request("CANCEL", WAIT).await;
    assert_eq!(
        header_value(&c.headers, "Call-ID"),
        header_value(&inv.headers, "Call-ID")
    );
    callee.answer(&c, 200, "callee-tag", None).await;
    callee.answer(&inv, 487, "callee-tag", None).await;
    let ack = callee.request("ACK", WAIT).await;
    assert_eq!(header_value(&ack.headers, "CSeq").as_deref(), Some("1 ACK"));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_all_and_bye_from_the_callee_end_call_and_recording() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_srs(dir.path(), 34600).await.unwrap();
    let mut published = server.subscribe();
    let srs = server
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .unwrap()
        .addr;
    let (gw, mut caller, mut callee) = gateway(Some(format!("sip:{srs}"))).await;
    let call = invite(&caller, "X-Recording-ID: e2e-all-1\r\n").await;
    let (mut call, inv) = answer_and_ack(&mut caller, &mut callee, call).await;
    // Recording starts at the answer without any INFO; once the SRS has accepted (a pause
    // before that is "still starting"), pausing it works.
    let line = pause_once_started(&mut caller, &mut call).await;
    assert_eq!(line, "SIP/2.0 200 pauseCallRecording request for a call");
    // The callee hangs up: BYE in its dialog with the gateway.
    let h = |n: &str| header_value(&inv.headers, n).unwrap_or_default();
    let bye = format!(
        "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-callee-bye;rport\r\nFrom: {};tag=callee-tag\r\nTo: {}\r\n\
Call-ID: {}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        uri_of(&h("Contact")),
        callee.addr(),
        h("To"),
        h("From"),
        h("Call-ID"),
    );
    callee.send(&bye).await;
    assert_eq!(
        callee
            .final_response(1, "BYE", WAIT)
            .await
            .0
            .status_code
            .code(),
        200
    );
    let b = caller.request("BYE", WAIT).await;
    assert_eq!(
        header_value(&b.headers, "Call-ID").as_deref(),
        Some(call.call_id.as_str())
    );
    caller.answer(&b, 200, "x", None).await;
    let rec = next_recording(&mut published).await;
    assert_eq!(rec.manifest.recording_key, "e2e-all-1");
    assert_eq!(rec.manifest.ended_by, "bye-from-src");
    let names: Vec<_> = rec
        .manifest
        .participants
        .iter()
        .filter_map(|p| p.name.clone())
        .collect();
    assert_eq!(names, vec!["Caller".to_string(), "Callee".to_string()]);
    gw.shutdown().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srs_ending_its_session_leaves_the_call_alone() {
    let dir = tempfile::tempdir().unwrap();
    // An SRS that ends a session after 2 s without media (the phones send none).
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into()],
        rtp_ports: "34800-34899".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        media_timeout: 2,
        ..srs_server::Config::default()
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let mut published = server.subscribe();
    let srs = server.local_addrs()[0].addr;
    let (gw, mut caller, mut callee) = gateway(None).await;
    let call = invite(&caller, "").await;
    let (mut call, _) = answer_and_ack(&mut caller, &mut callee, call).await;
    let line = info(
        &mut caller,
        &mut call,
        &format!("X-Reason: startCallRecording\r\nX-Srs-Url: sip:{srs}\r\n"),
        WAIT,
    )
    .await;
    assert_eq!(line, "SIP/2.0 200 startCallRecording request for a call");
    let rec = next_recording(&mut published).await;
    assert_eq!(rec.manifest.ended_by, "media-timeout");
    // The SRS sent BYE: the recording is off, the call is not. A re-INVITE still reaches the
    // callee, and stop is now the "not recording" 400.
    let (n, text) = call.request(&caller, "INVITE", "", Some(&sdp(40100)));
    caller.send(&text).await;
    let re = callee.request("INVITE", WAIT).await;
    callee
        .answer(&re, 200, "callee-tag", Some(&sdp(42000)))
        .await;
    assert_eq!(
        caller
            .final_response(n, "INVITE", WAIT)
            .await
            .0
            .status_code
            .code(),
        200
    );
    let line = info(
        &mut caller,
        &mut call,
        "X-Reason: stopCallRecording\r\n",
        WAIT,
    )
    .await;
    assert_eq!(
        line,
        "SIP/2.0 400 discarding stopCallRecording request because we are not recording"
    );
    gw.shutdown().await;
    server.shutdown().await.unwrap();
}

/// The port of the first `m=audio` line of an SDP body.
fn audio_port(body: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(body);
    let m = text
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("an audio m-line");
    m.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `n` 20 ms packets of payload type `pt` from each phone's RTP socket to the gateway's port
/// facing it; returns what each side received from the relay.
async fn stream(
    (a, a_to): (&tokio::net::UdpSocket, u16),
    (b, b_to): (&tokio::net::UdpSocket, u16),
    pt: u8,
    seq0: u16,
    n: u16,
) -> (u32, u32) {
    let mut got = (0, 0);
    let mut buf = [0u8; 2048];
    for k in 0..n {
        let seq = seq0.wrapping_add(k);
        let mut pkt = vec![0x80, pt];
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        for (s, to, ssrc) in [(a, a_to, 0xa), (b, b_to, 0xb)] {
            let mut p = pkt.clone();
            p.extend_from_slice(&[0, 0, 0, ssrc]);
            p.extend_from_slice(&[if pt == 8 { 0xd5 } else { 0xff }; 160]);
            s.send_to(&p, ("127.0.0.1", to)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        while a.try_recv_from(&mut buf).is_ok() {
            got.0 += 1;
        }
        while b.try_recv_from(&mut buf).is_ok() {
            got.1 += 1;
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_a_codec_change_mid_call_reach_the_callee_and_the_srs() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_srs(dir.path(), 34900).await.unwrap();
    let mut published = server.subscribe();
    let srs = server
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .unwrap()
        .addr;
    let (gw, mut caller, mut callee) = gateway(Some(format!("sip:{srs}"))).await;
    let a_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (a_port, b_port) = (
        a_rtp.local_addr().unwrap().port(),
        b_rtp.local_addr().unwrap().port(),
    );
    let call = invite_sdp(
        &caller,
        "X-Recording-ID: e2e-codec-1\r\n",
        &sdp_with(a_port, "0 8 101"),
    )
    .await;
    let (mut call, inv, ok) =
        answer_and_ack_sdp(&mut caller, &mut callee, call, &sdp_with(b_port, "0 101")).await;
    let (pa, pb) = (audio_port(&ok.body), audio_port(&inv.body));
    // PCMU both ways for a second: each side gets the other's packets.
    let got = stream((&a_rtp, pa), (&b_rtp, pb), 0, 1000, 50).await;
    assert!(got.0 >= 45 && got.1 >= 45, "relayed {got:?}");
    // Hold from the caller (sendonly), then back with PCMA only: both relayed to the callee.
    for (dir, pts) in [("a=sendonly", "0 101"), ("a=sendrecv", "8 101")] {
        let offer = sdp_with(a_port, pts).replace("a=sendrecv", dir);
        let (n, text) = call.request(&caller, "INVITE", "", Some(&offer));
        caller.send(&text).await;
        let re = callee.request("INVITE", WAIT).await;
        let body = String::from_utf8_lossy(&re.body).to_string();
        assert!(
            body.contains(dir) && body.contains(&format!("m=audio {pb} RTP/AVP {pts}")),
            "{body}"
        );
        let answer = sdp_with(b_port, pts).replace(
            "a=sendrecv",
            if dir == "a=sendonly" {
                "a=recvonly"
            } else {
                "a=sendrecv"
            },
        );
        callee.answer(&re, 200, "callee-tag", Some(&answer)).await;
        assert_eq!(
            caller
                .final_response(n, "INVITE", WAIT)
                .await
                .0
                .status_code
                .code(),
            200
        );
        let (_, ack) = call.request(&caller, "ACK", "", None);
        caller
            .send(&ack.replace(
                &format!("CSeq: {} ACK", call.cseq),
                &format!("CSeq: {n} ACK"),
            ))
            .await;
    }
    // PCMA both ways: relayed, and (after the gateway re-offered PCMA to the SRS) recorded.
    let got = stream((&a_rtp, pa), (&b_rtp, pb), 8, 1050, 50).await;
    assert!(got.0 >= 45 && got.1 >= 45, "relayed {got:?}");
    hang_up(&mut caller, &mut callee, &mut call).await;
    let rec = next_recording(&mut published).await;
    assert_eq!(rec.manifest.recording_key, "e2e-codec-1");
    // Each stream was recorded in both codecs, the copies of the second half labelled PCMA
    // (the SRS accepted the gateway's re-offer), with nothing lost on the way.
    for st in &rec.manifest.streams {
        let has = |c: &str| st.codecs.iter().any(|x| x.starts_with(c));
        assert!(has("PCMU") && has("PCMA"), "{:?}", rec.manifest.streams);
        assert!(
            st.packets_received >= 80 && st.packets_lost <= 2,
            "{:?}",
            rec.manifest.streams
        );
    }
    gw.shutdown().await;
    server.shutdown().await.unwrap();
}

/// `--http`: /healthz, and /metrics moving with a record-all call, an INFO and the hang-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_metrics_count_calls_recording_sessions_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_srs(dir.path(), 45000).await.unwrap();
    let mut published = server.subscribe();
    let srs = server.local_addrs()[0].addr;
    let mut callee = Phone::new("127.0.0.1:9".parse().unwrap()).await;
    let base = 32000 + (std::process::id() % 50) as u16 * 20;
    let gw = Gateway::start(GatewayOptions {
        listen: vec!["udp:127.0.0.1:0".parse().unwrap()],
        forward: format!("sip:{}", callee.addr()),
        rtp_ports: (base, base + 19),
        record_all: Some(format!("sip:{srs}")),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..GatewayOptions::default()
    })
    .await
    .unwrap();
    callee.gw = gw.local_addrs()[0].addr;
    let mut caller = Phone::new(callee.gw).await;
    let web = format!("http://{}", gw.http_addr().unwrap());
    let get = |path: &str| {
        let url = format!("{web}{path}");
        async move {
            let r = reqwest::get(&url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await, (200, "ok\n".to_string()));
    let (s, m) = get("/metrics").await;
    assert_eq!(s, 200);
    for name in [
        "# TYPE siprec_gateway_calls_relayed counter",
        "# TYPE siprec_gateway_calls_active gauge",
        "# TYPE siprec_gateway_calls_ended counter",
        "# TYPE siprec_gateway_packets_relayed counter",
        "# TYPE siprec_gateway_packets_forked counter",
    ] {
        assert!(m.contains(name), "no {name:?} in\n{m}");
    }

    let call = invite(&caller, "X-Recording-ID: e2e-metrics-1\r\n").await;
    let (mut call, _) = answer_and_ack(&mut caller, &mut callee, call).await;
    let line = pause_once_started(&mut caller, &mut call).await;
    assert!(line.starts_with("SIP/2.0 200"), "{line}");
    let (_, m) = get("/metrics").await;
    let srs_label = format!("srs=\"sip:{srs}\"");
    assert!(m.contains("siprec_gateway_calls_relayed_total 1"), "{m}");
    assert!(m.contains("siprec_gateway_calls_active 1"), "{m}");
    assert!(
        m.contains(&format!(
            "siprec_gateway_recording_sessions_total{{{srs_label},outcome=\"started\"}} 1"
        )),
        "{m}"
    );
    assert!(
        m.contains(
            "siprec_gateway_info_commands_total{x_reason=\"pauseCallRecording\",code=\"200\"} 1"
        ),
        "{m}"
    );
    hang_up(&mut caller, &mut callee, &mut call).await;
    next_recording(&mut published).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, m) = get("/metrics").await;
        if m.contains("siprec_gateway_calls_ended_total 1")
            && m.contains(&format!(
                "siprec_gateway_recording_sessions_total{{{srs_label},outcome=\"ended\"}} 1"
            ))
        {
            assert!(m.contains("siprec_gateway_calls_active 0"), "{m}");
            break;
        }
        assert!(Instant::now() < deadline, "call end not counted:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.shutdown().await;
    server.shutdown().await.unwrap();
}
