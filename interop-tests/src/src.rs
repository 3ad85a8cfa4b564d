//! A minimal SRC for tests: raw SIP text over UDP, TCP or TLS, real-time G.711 RTP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use siprec_sip::framing::StreamFramer;
use siprec_sip::rsip::{self, prelude::*};
use siprec_sip::transaction::{Peer, Transmit, Transport};
use siprec_sip_tokio::{Inbound, SipTransports, TlsClient, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::audio;

/// SIP transport of a [`TestSrc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// One recorded leg: an RTP sender of a tone.
#[derive(Debug)]
pub struct Leg {
    encoder: siprec_rtp::Encoder,
    /// Further payload types offered on this leg's m-line after `pt` (a sender may switch to
    /// them without a new offer).
    pub also_offer: Vec<u8>,
    /// SRTP: our key (offered in `a=crypto`) and its context.
    srtp: Option<(siprec_rtp::srtp::SdesKey, siprec_rtp::srtp::SrtpSender)>,
    sock: UdpSocket,
    /// Where the SRS asked for this leg's RTP.
    pub dest: Option<SocketAddr>,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// RTP payload type: 0 PCMU, 8 PCMA, 9 G.722, 111 Opus.
    pub pt: u8,
    /// Tone frequency.
    pub freq: f64,
    sample: u64,
    /// Packets sent.
    pub sent: u64,
    /// While set, the leg is in a silence period with discontinuous transmission: every
    /// fifth frame is a comfort-noise packet (RFC 3389, payload type 13, a noise level of
    /// -40 dBov), the others are not sent; the RTP clock goes on, the sequence number only
    /// for packets sent, and the first audio packet afterwards carries the marker bit
    /// (RFC 3551 §4.1: the start of a talkspurt).
    pub comfort_noise: bool,
    /// Frames of the current comfort-noise period so far.
    cn_frames: u64,
}

impl Leg {
    async fn new(pt: u8, freq: f64, ssrc: u32) -> anyhow::Result<Leg> {
        let codec = codec_of(pt);
        Ok(Leg {
            encoder: siprec_rtp::Encoder::with_input_rate(codec, audio_rate(codec))?,
            srtp: None,
            also_offer: Vec::new(),
            sock: UdpSocket::bind("127.0.0.1:0").await?,
            dest: None,
            ssrc,
            seq: (ssrc as u16).wrapping_mul(7),
            ts: ssrc.wrapping_mul(13),
            pt,
            freq,
            sample: 0,
            sent: 0,
            comfort_noise: false,
            cn_frames: 0,
        })
    }

    /// Local RTP port (put in the offer).
    pub fn port(&self) -> u16 {
        self.sock.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Sends one 20 ms packet of the tone.
    pub async fn send_frame(&mut self) -> anyhow::Result<()> {
        self.send_frame_with(false).await
    }

    /// Sends one 20 ms SRTP packet whose authentication tag is corrupted (it must be dropped).
    pub async fn send_corrupt_frame(&mut self) -> anyhow::Result<()> {
        self.send_frame_with(true).await
    }

    /// Sets the next RTP sequence number (to put a wrap where a test wants it).
    pub fn set_sequence(&mut self, seq: u16) {
        self.seq = seq;
    }

    /// Switches this leg to another payload type (0 PCMU, 8 PCMA, 9 G.722, 111 Opus): the
    /// next offer names it and the next frames use it; the RTP clock goes on (a codec change
    /// by re-INVITE).
    pub fn set_payload_type(&mut self, pt: u8) -> anyhow::Result<()> {
        let codec = codec_of(pt);
        self.encoder = siprec_rtp::Encoder::with_input_rate(codec, audio_rate(codec))?;
        let old_rate = audio_rate(codec_of(self.pt));
        self.sample = self.sample * u64::from(audio_rate(codec)) / u64::from(old_rate);
        self.pt = pt;
        Ok(())
    }

    /// Makes this leg send SRTP with a fresh key (`a=crypto` in the next offer).
    pub fn enable_srtp(&mut self, suite: siprec_rtp::srtp::SrtpSuite) -> anyhow::Result<()> {
        let key = siprec_rtp::srtp::SdesKey::new(1, suite, rand::random());
        let tx = siprec_rtp::srtp::SrtpSender::new(&key)?;
        self.srtp = Some((key, tx));
        Ok(())
    }

    async fn send_frame_with(&mut self, corrupt: bool) -> anyhow::Result<()> {
        let Some(dest) = self.dest else {
            return Ok(());
        };
        let codec = codec_of(self.pt);
        let rate = audio_rate(codec);
        let n = (rate / 50) as usize;
        let pcm = audio::tone(self.freq, rate, self.sample, n, 8000.0);
        let step = siprec_rtp::rtp_clock_rate(codec) / 50;
        let talkspurt = !self.comfort_noise && self.cn_frames > 0;
        if self.comfort_noise {
            self.cn_frames += 1;
            if self.cn_frames % 5 != 1 {
                // DTX: nothing on the wire, the clock goes on.
                self.ts = self.ts.wrapping_add(step);
                self.sample += n as u64;
                return Ok(());
            }
        } else {
            self.cn_frames = 0;
        }
        let mut payload = [0u8; 1500];
        let len = if self.comfort_noise {
            payload[0] = 40; // RFC 3389 §3.1: noise level in -dBov
            1
        } else {
            self.encoder.encode(&pcm, &mut payload)
        };
        let payload = &payload[..len];
        let mut buf = [0u8; 1600];
        let header = siprec_rtp::RtpHeader {
            marker: self.sent == 0 || talkspurt,
            payload_type: if self.comfort_noise { 13 } else { self.pt },
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
        };
        let len =
            siprec_rtp::write(&header, payload, &mut buf).map_err(|e| anyhow!("rtp write: {e}"))?;
        match &mut self.srtp {
            Some((_, tx)) => {
                let mut wire = [0u8; 1700];
                let n = tx.protect(&buf[..len], &mut wire)?;
                if corrupt {
                    wire[n - 1] ^= 0x5a;
                }
                self.sock.send_to(&wire[..n], dest).await?;
            }
            None => {
                self.sock.send_to(&buf[..len], dest).await?;
            }
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(step);
        self.sample += n as u64;
        self.sent += 1;
        Ok(())
    }

    /// The RTP packet of frame `k` of this leg's stream (20 ms each from the leg's current
    /// sequence number, timestamp and tone phase), without advancing the leg: for senders
    /// that emit frames out of order or not at all (a simulated network). From frame
    /// `ssrc_change_from` on the packets carry another SSRC and a new timestamp base;
    /// `audible(k)` false sends silence.
    pub fn frame_packet(
        &mut self,
        k: u64,
        ssrc_change_from: Option<u64>,
        audible: impl Fn(u64) -> bool,
    ) -> anyhow::Result<Vec<u8>> {
        let codec = codec_of(self.pt);
        let rate = audio_rate(codec);
        let n = (rate / 50) as usize;
        let offset = self.sample + k * n as u64;
        let pcm = if audible(k) {
            audio::tone(self.freq, rate, offset, n, 8000.0)
        } else {
            vec![0; n]
        };
        let mut payload = [0u8; 1500];
        let len = self.encoder.encode(&pcm, &mut payload);
        let changed = ssrc_change_from.is_some_and(|c| k >= c);
        let step = siprec_rtp::rtp_clock_rate(codec) / 50;
        let header = siprec_rtp::RtpHeader {
            marker: k == 0,
            payload_type: self.pt,
            sequence: self.seq.wrapping_add(k as u16),
            timestamp: if changed {
                0x4000_0000u32.wrapping_add(step.wrapping_mul(k as u32))
            } else {
                self.ts.wrapping_add(step.wrapping_mul(k as u32))
            },
            ssrc: if changed {
                self.ssrc ^ 0x00ff_ff00
            } else {
                self.ssrc
            },
        };
        let mut buf = vec![0u8; 1600];
        let len = siprec_rtp::write(&header, &payload[..len], &mut buf)
            .map_err(|e| anyhow!("rtp write: {e}"))?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Sends bytes from this leg's RTP socket to the SRS.
    pub async fn send_bytes(&self, bytes: &[u8]) -> anyhow::Result<()> {
        if let Some(dest) = self.dest {
            self.sock.send_to(bytes, dest).await?;
        }
        Ok(())
    }

    /// Advances the RTP clock without sending (a sender that keeps its clock during a pause).
    pub fn skip(&mut self, d: Duration) {
        let codec = codec_of(self.pt);
        let ticks = (d.as_secs_f64() * f64::from(siprec_rtp::rtp_clock_rate(codec))) as u64;
        self.ts = self.ts.wrapping_add(ticks as u32);
        self.sample += (d.as_secs_f64() * f64::from(audio_rate(codec))) as u64;
    }
}

/// The codec of a payload type of [`TestSrc`]'s offers.
fn codec_of(pt: u8) -> siprec_rtp::Codec {
    match pt {
        8 => siprec_rtp::Codec::Pcma,
        9 => siprec_rtp::Codec::G722,
        111 => siprec_rtp::Codec::Opus,
        _ => siprec_rtp::Codec::Pcmu,
    }
}

/// The rate a leg generates its tone at: 16 kHz for wideband codecs, else 8 kHz.
fn audio_rate(codec: siprec_rtp::Codec) -> u32 {
    if codec.is_wideband() {
        16000
    } else {
        8000
    }
}

/// `a=rtpmap` value of a payload type of [`TestSrc`]'s offers.
fn rtpmap_of(pt: u8) -> &'static str {
    match pt {
        8 => "PCMA/8000",
        9 => "G722/8000",
        111 => "opus/48000/2",
        13 => "CN/8000",
        _ => "PCMU/8000",
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream, StreamFramer),
    /// TLS through `siprec-sip-tokio`'s client transport (framing included).
    Tls(SipTransports, mpsc::Receiver<Inbound>),
}

/// A test SRC with one recording session.
pub struct TestSrc {
    conn: Conn,
    transport: Transport,
    srs: SocketAddr,
    local: SocketAddr,
    /// Call-ID of the RS dialog.
    pub call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    sdp_version: u32,
    /// The two legs (caller, callee).
    pub legs: [Leg; 2],
    /// Requests the SRS sent us (e.g. BYE), answered 200 automatically.
    pub received_requests: Vec<rsip::Request>,
}

impl std::fmt::Debug for TestSrc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSrc")
            .field("call_id", &self.call_id)
            .finish()
    }
}

impl TestSrc {
    /// A new SRC towards `srs`; leg 1 sends `freq1` Hz with payload type `pt1`, leg 2 likewise.
    pub async fn new(
        transport: TestTransport,
        srs: SocketAddr,
        (pt1, freq1): (u8, f64),
        (pt2, freq2): (u8, f64),
    ) -> anyhow::Result<TestSrc> {
        let (conn, local) = match transport {
            TestTransport::Udp => {
                let s = UdpSocket::bind("127.0.0.1:0").await?;
                let l = s.local_addr()?;
                (Conn::Udp(s), l)
            }
            TestTransport::Tcp => {
                let s = TcpStream::connect(srs).await?;
                let l = s.local_addr()?;
                (Conn::Tcp(s, StreamFramer::new(64 * 1024)), l)
            }
        };
        let transport = match transport {
            TestTransport::Udp => Transport::Udp,
            TestTransport::Tcp => Transport::Tcp,
        };
        Self::with_conn(conn, transport, srs, local, (pt1, freq1), (pt2, freq2)).await
    }

    /// A new SRC over a TCP connection the caller opened (from a port of its choosing).
    pub async fn from_tcp(
        stream: TcpStream,
        (pt1, freq1): (u8, f64),
        (pt2, freq2): (u8, f64),
    ) -> anyhow::Result<TestSrc> {
        let srs = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let conn = Conn::Tcp(stream, StreamFramer::new(64 * 1024));
        Self::with_conn(conn, Transport::Tcp, srs, local, (pt1, freq1), (pt2, freq2)).await
    }

    /// A new SRC towards `srs` over TLS, through `siprec-sip-tokio`'s TLS client: the SRS
    /// certificate must chain to `tls`'s roots and name `server_name`.
    pub async fn new_tls(
        srs: SocketAddr,
        server_name: &str,
        tls: TlsClient,
        leg1: (u8, f64),
        leg2: (u8, f64),
    ) -> anyhow::Result<TestSrc> {
        let cfg = TlsConfig {
            server: None,
            client: Some(tls),
        };
        let (t, rx) = SipTransports::bind(&[], cfg).await?;
        let local = t.connect(srs, server_name).await?;
        Self::with_conn(Conn::Tls(t, rx), Transport::Tls, srs, local, leg1, leg2).await
    }

    async fn with_conn(
        conn: Conn,
        transport: Transport,
        srs: SocketAddr,
        local: SocketAddr,
        (pt1, freq1): (u8, f64),
        (pt2, freq2): (u8, f64),
    ) -> anyhow::Result<TestSrc> {
        let n: u32 = rand::random();
        Ok(TestSrc {
            conn,
            transport,
            srs,
            local,
            call_id: format!("rs-{n:08x}@127.0.0.1"),
            from_tag: format!("src{n:x}"),
            to_tag: None,
            cseq: 0,
            sdp_version: 1,
            legs: [
                Leg::new(pt1, freq1, n | 1).await?,
                Leg::new(pt2, freq2, n.wrapping_add(77) | 1).await?,
            ],
            received_requests: Vec::new(),
        })
    }

    /// SDP offer with one m-line per leg, `direction` on each, labels 1 and 2.
    pub fn offer(&mut self, direction: &str) -> String {
        self.sdp_version += 1;
        let mut s = format!(
            "v=0\r\no=src 4242 {} IN IP4 127.0.0.1\r\ns=SIPREC\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
            self.sdp_version
        );
        for (i, leg) in self.legs.iter().enumerate() {
            let (proto, crypto) = match &leg.srtp {
                Some((key, _)) => ("RTP/SAVP", format!("a=crypto:{}\r\n", key.to_attribute())),
                None => ("RTP/AVP", String::new()),
            };
            let pts: Vec<u8> = std::iter::once(leg.pt)
                .chain(leg.also_offer.iter().copied())
                .collect();
            let list: Vec<String> = pts.iter().map(u8::to_string).collect();
            let maps: String = pts
                .iter()
                .map(|pt| format!("a=rtpmap:{pt} {}\r\n", rtpmap_of(*pt)))
                .collect();
            s.push_str(&format!(
                "m=audio {} {proto} {} 101\r\n{maps}a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=label:{}\r\n{crypto}a={}\r\n",
                leg.port(),
                list.join(" "),
                i + 1,
                direction
            ));
        }
        s
    }

    /// A complete RFC 7865 document for this call (two participants, two streams).
    pub fn metadata(&self, recording_id: Option<&str>) -> String {
        let ext = recording_id
            .map(|id| {
                format!(
                    "  <extensiondata xmlns:x=\"urn:x-siprec-rs:ext\"><x:recordingid>{id}</x:recordingid></extensiondata>\n"
                )
            })
            .unwrap_or_default();
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="c2Vzc2lvbi0xMjM0NTY3OA==">
    <sipSessionID>call-{call}</sipSessionID>
    <start-time>2026-11-28T10:00:00Z</start-time>
  </session>
  <participant participant_id="cGFydC1jYWxsZXI=">
    <nameID aor="sip:alice@example.com"><name xml:lang="en">Alice</name></nameID>
  </participant>
  <participant participant_id="cGFydC1jYWxsZWU=">
    <nameID aor="sip:bob@example.com"><name xml:lang="en">Bob</name></nameID>
  </participant>
  <stream stream_id="c3RyZWFtLTE=" session_id="c2Vzc2lvbi0xMjM0NTY3OA=="><label>1</label></stream>
  <stream stream_id="c3RyZWFtLTI=" session_id="c2Vzc2lvbi0xMjM0NTY3OA=="><label>2</label></stream>
  <participantsessionassoc participant_id="cGFydC1jYWxsZXI=" session_id="c2Vzc2lvbi0xMjM0NTY3OA=="><associate-time>2026-11-28T10:00:00Z</associate-time></participantsessionassoc>
  <participantsessionassoc participant_id="cGFydC1jYWxsZWU=" session_id="c2Vzc2lvbi0xMjM0NTY3OA=="><associate-time>2026-11-28T10:00:00Z</associate-time></participantsessionassoc>
  <participantstreamassoc participant_id="cGFydC1jYWxsZXI="><send>c3RyZWFtLTE=</send><recv>c3RyZWFtLTI=</recv></participantstreamassoc>
  <participantstreamassoc participant_id="cGFydC1jYWxsZWU="><send>c3RyZWFtLTI=</send><recv>c3RyZWFtLTE=</recv></participantstreamassoc>
{ext}</recording>
"#,
            call = self.call_id
        )
    }

    fn transport_name(&self) -> &'static str {
        self.transport.as_str()
    }

    /// Builds a request in this dialog (or the initial INVITE) with an optional multipart body.
    pub fn request(&mut self, method: &str, sdp: Option<&str>, metadata: Option<&str>) -> Vec<u8> {
        if method != "ACK" && method != "CANCEL" {
            self.cseq += 1;
        }
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let (ctype, body) = match (sdp, metadata) {
            (Some(s), Some(m)) => (
                "multipart/mixed;boundary=\"b0undary-x\"".to_string(),
                format!(
                    "--b0undary-x\r\nContent-Type: application/sdp\r\n\r\n{s}\r\n--b0undary-x\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{m}\r\n--b0undary-x--\r\n"
                ),
            ),
            (Some(s), None) => ("application/sdp".into(), s.to_string()),
            (None, Some(m)) => ("application/rs-metadata+xml".into(), m.to_string()),
            (None, None) => (String::new(), String::new()),
        };
        let mut msg = format!(
            "{method} sip:srs@{srs} SIP/2.0\r\nVia: SIP/2.0/{t} {local};branch=z9hG4bK{b:x}\r\nMax-Forwards: 70\r\nFrom: \"SRC\" <sip:src@127.0.0.1>;tag={ft}\r\nTo: <sip:srs@{srs}>{to_tag}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:src@{local};transport={tl}>;+sip.src\r\n",
            srs = self.srs,
            t = self.transport_name(),
            local = self.local,
            b = rand::random::<u64>(),
            ft = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq,
            tl = self.transport_name().to_ascii_lowercase(),
        );
        if method == "INVITE" {
            msg.push_str(
                "Require: siprec\r\nAccept: application/sdp, application/rs-metadata+xml\r\n",
            );
        }
        if !ctype.is_empty() {
            msg.push_str(&format!("Content-Type: {ctype}\r\n"));
        }
        msg.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        msg.into_bytes()
    }

    /// Sends raw bytes to the SRS.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match &mut self.conn {
            Conn::Udp(s) => {
                s.send_to(bytes, self.srs).await?;
            }
            Conn::Tcp(s, _) => s.write_all(bytes).await?,
            Conn::Tls(t, _) => {
                t.send(Transmit {
                    peer: Peer {
                        transport: Transport::Tls,
                        addr: self.srs,
                    },
                    payload: bytes.to_vec(),
                })
                .await?
            }
        }
        Ok(())
    }

    async fn recv_message(&mut self, deadline: Instant) -> anyhow::Result<rsip::SipMessage> {
        let left = deadline.saturating_duration_since(Instant::now());
        let bytes = tokio::time::timeout(left, async {
            match &mut self.conn {
                Conn::Udp(s) => {
                    let mut buf = vec![0u8; 65536];
                    let (n, _) = s.recv_from(&mut buf).await?;
                    buf.truncate(n);
                    Ok::<_, anyhow::Error>(buf)
                }
                Conn::Tcp(s, framer) => loop {
                    if let Some(m) = framer.next_message() {
                        return m.map_err(|e| anyhow!("framing: {e}"));
                    }
                    let mut buf = [0u8; 8192];
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        bail!("connection closed");
                    }
                    framer.push(&buf[..n]);
                },
                Conn::Tls(_, rx) => rx
                    .recv()
                    .await
                    .map(|m| m.bytes)
                    .ok_or_else(|| anyhow!("connection closed")),
            }
        })
        .await
        .context("timed out waiting for a SIP message")??;
        siprec_sip::message::parse_message(&bytes).map_err(|e| anyhow!("bad message: {e}"))
    }

    /// Waits for the final response to CSeq `cseq` (answering SRS requests meanwhile).
    pub async fn final_response(&mut self, timeout: Duration) -> anyhow::Result<rsip::Response> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_message(deadline).await? {
                rsip::SipMessage::Response(r) => {
                    let cseq = r.cseq_header()?.typed()?.seq;
                    if cseq != self.cseq || r.status_code.code() < 200 {
                        continue;
                    }
                    return Ok(r);
                }
                rsip::SipMessage::Request(req) => self.answer_request(req).await?,
            }
        }
    }

    /// Waits for a request from the SRS (e.g. its BYE) and answers it 200.
    pub async fn wait_request(&mut self, timeout: Duration) -> anyhow::Result<rsip::Request> {
        let deadline = Instant::now() + timeout;
        loop {
            if let rsip::SipMessage::Request(req) = self.recv_message(deadline).await? {
                self.answer_request(req.clone()).await?;
                return Ok(req);
            }
        }
    }

    async fn answer_request(&mut self, req: rsip::Request) -> anyhow::Result<()> {
        let resp = siprec_sip::message::make_response(&req, 200, Some("OK"), None);
        let bytes = siprec_sip::message::print_message(&rsip::SipMessage::Response(resp));
        self.send_raw(&bytes).await?;
        self.received_requests.push(req);
        Ok(())
    }

    /// Sends INVITE (or re-INVITE once the dialog exists), waits for the final response and
    /// ACKs a 2xx. Learns the SRS's RTP ports from the answer.
    pub async fn invite(
        &mut self,
        sdp: &str,
        metadata: Option<&str>,
    ) -> anyhow::Result<rsip::Response> {
        let msg = self.request("INVITE", Some(sdp), metadata);
        self.send_raw(&msg).await?;
        let resp = self.final_response(Duration::from_secs(5)).await?;
        if resp.status_code.code() / 100 == 2 {
            if self.to_tag.is_none() {
                self.to_tag = resp.to_header()?.tag()?.map(|t| t.value().to_string());
            }
            let body = String::from_utf8_lossy(&resp.body).to_string();
            for (leg, dest) in self.legs.iter_mut().zip(answer_ports(&body)) {
                leg.dest = dest;
            }
            let ack = self.request("ACK", None, None);
            self.send_raw(&ack).await?;
        }
        Ok(resp)
    }

    /// Starts the recording session: an offer with every leg `sendonly` and a complete
    /// metadata document (with `recording_id`); panics unless the SRS answers 200.
    pub async fn start(&mut self, recording_id: Option<&str>) -> rsip::Response {
        let offer = self.offer("sendonly");
        let md = self.metadata(recording_id);
        let r = self
            .invite(&offer, Some(&md))
            .await
            .expect("INVITE answered");
        assert_eq!(r.status_code.code(), 200, "{r}");
        r
    }

    /// Ends the recording session with BYE; panics unless the SRS answers 200.
    pub async fn hang_up(&mut self) {
        let r = self
            .send_in_dialog("BYE", None, None)
            .await
            .expect("BYE answered");
        assert_eq!(r.status_code.code(), 200, "{r}");
    }

    /// Sends a non-INVITE request in the dialog (BYE, UPDATE, OPTIONS…) and waits for its answer.
    pub async fn send_in_dialog(
        &mut self,
        method: &str,
        sdp: Option<&str>,
        metadata: Option<&str>,
    ) -> anyhow::Result<rsip::Response> {
        let msg = self.request(method, sdp, metadata);
        self.send_raw(&msg).await?;
        self.final_response(Duration::from_secs(5)).await
    }

    /// Streams both legs in real time for `d` (20 ms packets, paced by the tokio clock).
    pub async fn stream(&mut self, d: Duration) -> anyhow::Result<()> {
        let frames = (d.as_millis() / 20) as u64;
        let start = tokio::time::Instant::now();
        for k in 0..frames {
            tokio::time::sleep_until(start + Duration::from_millis(20 * k)).await;
            for leg in &mut self.legs {
                leg.send_frame().await?;
            }
        }
        tokio::time::sleep_until(start + Duration::from_millis(20 * frames)).await;
        Ok(())
    }

    /// Streams `d` of audio on both legs `rate` times faster than real time (for a server
    /// started with the same `media_clock_rate`): packets go out in small batches, at most
    /// 2 ms of wall time apart.
    pub async fn stream_fast(&mut self, d: Duration, rate: f64) -> anyhow::Result<()> {
        let frames = (d.as_millis() / 20) as u64;
        let start = tokio::time::Instant::now();
        for k in 0..frames {
            let due = Duration::from_secs_f64(0.020 * k as f64 / rate);
            if due > start.elapsed() + Duration::from_millis(2) {
                tokio::time::sleep_until(start + due).await;
            }
            for leg in &mut self.legs {
                leg.send_frame().await?;
            }
        }
        let end = Duration::from_secs_f64(0.020 * frames as f64 / rate);
        tokio::time::sleep_until(start + end).await;
        Ok(())
    }
}

/// `(ip, port)` of each `m=audio` line of an SDP answer (port 0 → `None`).
pub fn answer_ports(sdp: &str) -> Vec<Option<SocketAddr>> {
    let mut ip = String::from("127.0.0.1");
    let mut out = Vec::new();
    for line in sdp.lines() {
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            ip = c.trim().to_string();
        }
        if let Some(m) = line.strip_prefix("m=audio ") {
            let port: u16 = m
                .split(' ')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            out.push(if port == 0 {
                None
            } else {
                format!("{ip}:{port}").parse().ok()
            });
        }
    }
    out
}
