//! Seeded faulty SRSs for testing `siprec-client check`: a relay on loopback in front of a
//! real srs-server that breaks exactly one rule ([`Fault`]) and passes everything else
//! through unchanged, over UDP and TCP.
//!
//! UDP: one upstream socket per client address, so srs-server's answers (sent back to the
//! source of the request, RFC 3581) come back through the relay. TCP: one upstream
//! connection per client connection, framed both ways. Messages are rewritten through the
//! SIP parser and printer (Content-Length stays right). Requests the SRS sends on its own
//! (its BYE) go to the client's Contact directly and are not relayed.
//!
//! ```no_run
//! # async fn demo(srs_udp: std::net::SocketAddr, srs_tcp: std::net::SocketAddr) -> anyhow::Result<()> {
//! use interop_tests::fault_relay::{Fault, FaultRelay};
//! let relay = FaultRelay::start(srs_udp, srs_tcp, Fault::SendRecv).await?;
//! // Point the checker at relay.udp: every initial INVITE is answered a=sendrecv.
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use siprec_sip::framing::StreamFramer;
use siprec_sip::message::{
    call_id, cseq, header_value, make_response, parse_message, print_message,
};
use siprec_sip::rsip::{self, Method, SipMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use crate::netem::{add_stream, Netem, NetemStats};
use crate::src::answer_ports;

/// The one rule a relay breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: a transparent relay.
    None,
    /// The 2xx to an initial INVITE answers `a=sendrecv` instead of `a=recvonly`.
    SendRecv,
    /// The 2xx to an initial INVITE has one m-line fewer than the offer.
    MissingMline,
    /// The 2xx to an initial INVITE carries no SDP.
    NoSdp,
    /// BYE from the client is dropped (the SRS "ignores" it).
    IgnoreBye,
    /// A re-INVITE is answered 500 by the relay and never reaches the SRS.
    Reinvite500,
    /// UPDATE from the client is dropped.
    DropUpdate,
    /// Responses lose their Contact header.
    NoContact,
    /// The 2xx to an initial INVITE names a closed UDP port for the first stream.
    ClosedRtpPort,
    /// The ACK for the 2xx to an initial INVITE is dropped (the SRS keeps retransmitting
    /// its 2xx, as if it ignored the ACK).
    DropAck,
    /// The 2xx to an initial INVITE lists the m-lines in reverse order (labels and ports
    /// with them).
    SwappedMlines,
    /// Not a fault: a slow SRS. Over UDP the relay answers an initial INVITE `100 Trying`
    /// itself and passes it on only after [`SLOW_ANSWER`]; a CANCEL that comes meanwhile is
    /// answered by the relay (`200` for the CANCEL, `487` for the INVITE, RFC 3261 §9.2) and
    /// the INVITE never reaches the SRS.
    SlowAnswer,
}

/// How long [`Fault::SlowAnswer`] holds an initial INVITE.
pub const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_millis(300);

/// What to do with a message from the client.
enum Action {
    Forward(Vec<u8>),
    Reply(Vec<u8>),
    /// Answer with the first message now; forward the second after [`SLOW_ANSWER`] unless
    /// the key has left [`State::held`] by then.
    Hold(Vec<u8>, Vec<u8>, (String, u32)),
    /// Several answers at once.
    ReplyAll(Vec<Vec<u8>>),
    Drop,
}

/// Shared state, by (Call-ID, CSeq number).
#[derive(Debug, Default)]
struct State {
    /// Initial INVITEs (no To tag).
    initial: HashSet<(String, u32)>,
    /// re-INVITEs the relay answered 500 itself.
    refused: HashSet<(String, u32)>,
    /// Initial INVITEs [`Fault::SlowAnswer`] holds, with the request (to answer 487).
    held: HashMap<(String, u32), rsip::Request>,
    /// INVITEs the relay ended with 487 (their ACK stays with the relay).
    cancelled: HashSet<(String, u32)>,
    /// With a network shim: its schedule, counters and forwarding tasks.
    netem: Option<(Netem, Arc<NetemStats>, JoinSet<()>)>,
}

/// A running relay; stops when dropped.
#[derive(Debug)]
pub struct FaultRelay {
    /// The relay's UDP address (point the client here).
    pub udp: SocketAddr,
    /// The relay's TCP address (same port as `udp`).
    pub tcp: SocketAddr,
    tasks: JoinSet<()>,
    state: Arc<Mutex<State>>,
}

impl FaultRelay {
    /// Starts a relay on 127.0.0.1 (UDP and TCP on one port) to srs-server's `srs_udp` and
    /// `srs_tcp` listeners.
    pub async fn start(
        srs_udp: SocketAddr,
        srs_tcp: SocketAddr,
        fault: Fault,
    ) -> anyhow::Result<FaultRelay> {
        Self::start_with(srs_udp, srs_tcp, fault, State::default()).await
    }

    /// A transparent relay whose answers send every stream's RTP through a network shim
    /// ([`Netem`]): each `m=audio` port of a 2xx to an initial INVITE is replaced by a shim
    /// socket that forwards to the SRS's port with `netem`'s loss, jitter and lateness.
    pub async fn start_with_netem(
        srs_udp: SocketAddr,
        srs_tcp: SocketAddr,
        netem: Netem,
    ) -> anyhow::Result<(FaultRelay, Arc<NetemStats>)> {
        let stats = Arc::new(NetemStats::default());
        let state = State {
            netem: Some((netem, stats.clone(), JoinSet::new())),
            ..State::default()
        };
        let relay = Self::start_with(srs_udp, srs_tcp, Fault::None, state).await?;
        Ok((relay, stats))
    }

    async fn start_with(
        srs_udp: SocketAddr,
        srs_tcp: SocketAddr,
        fault: Fault,
        state: State,
    ) -> anyhow::Result<FaultRelay> {
        // UDP and TCP on the same port number, like a real SRS.
        let (udp, tcp) = loop {
            let u = UdpSocket::bind("127.0.0.1:0").await?;
            let port = u.local_addr()?.port();
            if let Ok(t) = TcpListener::bind(("127.0.0.1", port)).await {
                break (u, t);
            }
        };
        let udp_addr = udp.local_addr()?;
        let tcp_addr = tcp.local_addr()?;
        let state = Arc::new(Mutex::new(state));
        let mut tasks = JoinSet::new();
        tasks.spawn(udp_loop(Arc::new(udp), srs_udp, fault, state.clone()));
        tasks.spawn(tcp_loop(tcp, srs_tcp, fault, state.clone()));
        Ok(FaultRelay {
            udp: udp_addr,
            tcp: tcp_addr,
            tasks,
            state,
        })
    }
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.tasks.abort_all();
        if let Ok(mut s) = self.state.lock() {
            if let Some((_, _, shims)) = s.netem.as_mut() {
                shims.abort_all();
            }
        }
    }
}

fn from_client(bytes: &[u8], fault: Fault, state: &Mutex<State>) -> Action {
    let Ok(msg) = parse_message(bytes) else {
        return Action::Forward(bytes.to_vec());
    };
    let SipMessage::Request(req) = &msg else {
        return Action::Forward(bytes.to_vec());
    };
    let to_tag = header_value(&req.headers, "To")
        .map(|t| t.to_ascii_lowercase().contains("tag="))
        .unwrap_or(false);
    let key = call_id(&req.headers).zip(cseq(&req.headers).map(|(n, _)| n));
    match req.method {
        Method::Invite if !to_tag && fault == Fault::SlowAnswer => {
            if let (Some(k), Ok(mut s)) = (key, state.lock()) {
                s.initial.insert(k.clone());
                s.held.insert(k.clone(), req.clone());
                let trying = make_response(req, 100, None, None);
                return Action::Hold(
                    print_message(&SipMessage::Response(trying)),
                    bytes.to_vec(),
                    k,
                );
            }
        }
        Method::Invite if !to_tag => {
            if let (Some(k), Ok(mut s)) = (key, state.lock()) {
                s.initial.insert(k);
            }
        }
        Method::Cancel if fault == Fault::SlowAnswer => {
            let held = key.as_ref().and_then(|k| {
                let mut s = state.lock().ok()?;
                let invite = s.held.remove(k)?;
                s.cancelled.insert(k.clone());
                Some(invite)
            });
            if let Some(invite) = held {
                let ok = make_response(req, 200, None, Some("relay"));
                let terminated = make_response(&invite, 487, None, Some("relay"));
                return Action::ReplyAll(vec![
                    print_message(&SipMessage::Response(ok)),
                    print_message(&SipMessage::Response(terminated)),
                ]);
            }
        }
        Method::Ack
            if key
                .as_ref()
                .is_some_and(|k| state.lock().is_ok_and(|s| s.cancelled.contains(k))) =>
        {
            return Action::Drop;
        }
        Method::Invite if fault == Fault::Reinvite500 => {
            if let (Some(k), Ok(mut s)) = (key, state.lock()) {
                s.refused.insert(k);
            }
            let resp = make_response(req, 500, Some("Server Internal Error"), None);
            return Action::Reply(print_message(&SipMessage::Response(resp)));
        }
        // The ACK for the relay's own 500 stays with the relay.
        Method::Ack
            if key
                .as_ref()
                .is_some_and(|k| state.lock().is_ok_and(|s| s.refused.contains(k))) =>
        {
            return Action::Drop;
        }
        Method::Ack
            if fault == Fault::DropAck
                && key
                    .as_ref()
                    .is_some_and(|k| state.lock().is_ok_and(|s| s.initial.contains(k))) =>
        {
            return Action::Drop;
        }
        Method::Bye if fault == Fault::IgnoreBye => return Action::Drop,
        Method::Update if fault == Fault::DropUpdate => return Action::Drop,
        _ => {}
    }
    Action::Forward(bytes.to_vec())
}

fn from_server(bytes: &[u8], fault: Fault, state: &Mutex<State>) -> Vec<u8> {
    let Ok(SipMessage::Response(mut resp)) = parse_message(bytes) else {
        return bytes.to_vec();
    };
    let key = call_id(&resp.headers).zip(cseq(&resp.headers));
    let initial_invite_2xx = resp.status_code.code() / 100 == 2
        && key.as_ref().is_some_and(|(id, (n, m))| {
            *m == Method::Invite
                && state
                    .lock()
                    .is_ok_and(|s| s.initial.contains(&(id.clone(), *n)))
        });
    if initial_invite_2xx {
        if let Ok(mut s) = state.lock() {
            if let Some((netem, stats, shims)) = s.netem.as_mut() {
                let body = String::from_utf8_lossy(&resp.body).to_string();
                let dests = answer_ports(&body);
                let mut next = dests.into_iter();
                let lines: Vec<String> = body
                    .split("\r\n")
                    .map(|l| match l.strip_prefix("m=audio ") {
                        Some(rest) => match next.next().flatten() {
                            Some(dest) => match add_stream(*netem, dest, stats, shims) {
                                Ok(port) => audio_line_with_port(rest, port),
                                Err(_) => l.to_string(),
                            },
                            None => l.to_string(),
                        },
                        None => l.to_string(),
                    })
                    .collect();
                resp.body = lines.join("\r\n").into_bytes();
                return print_message(&SipMessage::Response(resp));
            }
        }
    }
    match fault {
        Fault::SendRecv if initial_invite_2xx => {
            let body = String::from_utf8_lossy(&resp.body).replace("a=recvonly", "a=sendrecv");
            resp.body = body.into_bytes();
        }
        Fault::MissingMline if initial_invite_2xx => {
            let body = String::from_utf8_lossy(&resp.body).to_string();
            if let Some(last) = body.rfind("\r\nm=") {
                resp.body = format!("{}\r\n", &body[..last]).into_bytes();
            }
        }
        Fault::NoSdp if initial_invite_2xx => {
            resp.body.clear();
            resp.headers
                .retain(|h| !matches!(h, rsip::Header::ContentType(_)));
        }
        Fault::SwappedMlines if initial_invite_2xx => {
            let body = String::from_utf8_lossy(&resp.body).to_string();
            let mut blocks: Vec<&str> = body.split("\r\nm=").collect();
            if blocks.len() > 2 {
                let session = blocks.remove(0);
                blocks.reverse();
                let mut out = session.to_string();
                for b in &blocks {
                    out.push_str("\r\nm=");
                    out.push_str(b.trim_end_matches("\r\n"));
                }
                out.push_str("\r\n");
                resp.body = out.into_bytes();
            }
        }
        Fault::NoContact => {
            resp.headers
                .retain(|h| !matches!(h, rsip::Header::Contact(_)));
        }
        Fault::ClosedRtpPort if initial_invite_2xx => {
            let closed = std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .unwrap_or(9);
            let body = String::from_utf8_lossy(&resp.body).to_string();
            let mut done = false;
            let lines: Vec<String> = body
                .split("\r\n")
                .map(|l| match l.strip_prefix("m=audio ") {
                    Some(rest) if !done => {
                        done = true;
                        audio_line_with_port(rest, closed)
                    }
                    _ => l.to_string(),
                })
                .collect();
            resp.body = lines.join("\r\n").into_bytes();
        }
        _ => return bytes.to_vec(),
    }
    print_message(&SipMessage::Response(resp))
}

/// An `m=audio` line (`rest`: what follows `m=audio `) with its port replaced by `port`.
fn audio_line_with_port(rest: &str, port: u16) -> String {
    let tail = rest.split_once(' ').map(|(_, t)| t).unwrap_or("");
    format!("m=audio {port} {tail}")
}

async fn udp_loop(front: Arc<UdpSocket>, srs: SocketAddr, fault: Fault, state: Arc<Mutex<State>>) {
    let mut upstream: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            return;
        };
        let up = match upstream.get(&client) {
            Some(u) => u.clone(),
            None => {
                let Ok(u) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                let u = Arc::new(u);
                upstream.insert(client, u.clone());
                let (front, u2, state) = (front.clone(), u.clone(), state.clone());
                tasks.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok((n, _)) = u2.recv_from(&mut buf).await {
                        let out = from_server(&buf[..n], fault, &state);
                        let _ = front.send_to(&out, client).await;
                    }
                });
                u
            }
        };
        match from_client(&buf[..n], fault, &state) {
            Action::Forward(b) => {
                let _ = up.send_to(&b, srs).await;
            }
            Action::Reply(b) => {
                let _ = front.send_to(&b, client).await;
            }
            Action::ReplyAll(v) => {
                for b in v {
                    let _ = front.send_to(&b, client).await;
                }
            }
            Action::Hold(trying, b, key) => {
                let _ = front.send_to(&trying, client).await;
                let (up, state) = (up.clone(), state.clone());
                tasks.spawn(async move {
                    tokio::time::sleep(SLOW_ANSWER).await;
                    let go = state
                        .lock()
                        .is_ok_and(|mut s| s.held.remove(&key).is_some());
                    if go {
                        let _ = up.send_to(&b, srs).await;
                    }
                });
            }
            Action::Drop => {}
        }
    }
}

async fn tcp_loop(listener: TcpListener, srs: SocketAddr, fault: Fault, state: Arc<Mutex<State>>) {
    let mut tasks = JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        let state = state.clone();
        tasks.spawn(async move {
            let Ok(server) = TcpStream::connect(srs).await else {
                return;
            };
            let (mut cr, cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let cw = Arc::new(tokio::sync::Mutex::new(cw));
            let cw2 = cw.clone();
            let st2 = state.clone();
            let down = tokio::spawn(async move {
                let mut framer = StreamFramer::new(64 * 1024);
                let mut buf = [0u8; 8192];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    framer.push(&buf[..n]);
                    while let Some(Ok(m)) = framer.next_message() {
                        let out = from_server(&m, fault, &st2);
                        if cw2.lock().await.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                }
            });
            let mut framer = StreamFramer::new(64 * 1024);
            let mut buf = [0u8; 8192];
            while let Ok(n) = cr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                framer.push(&buf[..n]);
                while let Some(Ok(m)) = framer.next_message() {
                    match from_client(&m, fault, &state) {
                        Action::Forward(b) => {
                            if sw.write_all(&b).await.is_err() {
                                break;
                            }
                        }
                        // TCP is not slowed down: a held INVITE goes on at once.
                        Action::Hold(_, b, key) => {
                            if let Ok(mut s) = state.lock() {
                                s.held.remove(&key);
                            }
                            if sw.write_all(&b).await.is_err() {
                                break;
                            }
                        }
                        Action::Reply(b) => {
                            let _ = cw.lock().await.write_all(&b).await;
                        }
                        Action::ReplyAll(v) => {
                            for b in v {
                                let _ = cw.lock().await.write_all(&b).await;
                            }
                        }
                        Action::Drop => {}
                    }
                }
            }
            down.abort();
        });
    }
}
