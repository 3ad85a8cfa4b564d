//! The RTP sender: the call's two legs, in real time, to every SRS that records them.
//!
//! One task per call ticks every 20 ms. Each tick pulls 320 samples (16 kHz) per leg from the
//! [`MediaSource`]s (always: the call goes on), encodes them once per codec in use (PCMU,
//! PCMA, G.722, Opus: one encoder per leg and codec, G.711 resampled to 8 kHz), and sends one
//! packet per (recording session, leg) that is sending, SRTP-protected when negotiated.
//! Every stream has its own SSRC, sequence number and timestamp; the timestamp advances by
//! 20 ms of the codec's RTP clock on every tick (160 for G.711 and G.722, 960 for Opus),
//! paused or not, so an SRS places the audio after a pause where it belongs (RFC 3550 §5.1);
//! the first packet and the first after a pause carry the marker bit.
//!
//! The per-packet path does not allocate: buffers live in the task, plan changes arrive
//! between ticks on a channel ([`MediaCommand`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use siprec_core::client::{MediaPlan, RsId};
use siprec_rtp::{Codec, Encoder, RtpHeader};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::media::MediaSource;

/// Samples per leg and tick (20 ms at the sources' 16 kHz).
pub const FRAME: usize = (crate::media::RATE / 50) as usize;
/// Largest encoded payload.
const MAX_PAYLOAD: usize = 1200;
/// Packet interval.
pub const PTIME: Duration = Duration::from_millis(20);

/// What the recorder's control side tells the sender.
#[derive(Debug)]
pub enum MediaCommand {
    /// The plan of one recording session (replaces the previous one).
    Plan {
        /// The session.
        rs: RsId,
        /// Where and whether.
        plan: Box<MediaPlan>,
    },
    /// The session is over.
    Stop {
        /// The session.
        rs: RsId,
    },
    /// Packets sent so far.
    Stats(oneshot::Sender<Vec<StreamStats>>),
}

/// Counters of one (session, leg) stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// The session.
    pub rs: RsId,
    /// 0 = caller, 1 = callee.
    pub leg: usize,
    /// Where it goes.
    pub dest: SocketAddr,
    /// RTP payload type.
    pub payload_type: u8,
    /// SSRC.
    pub ssrc: u32,
    /// Packets sent.
    pub packets: u64,
}

#[derive(Debug)]
struct Stream {
    rs: RsId,
    leg: usize,
    dest: SocketAddr,
    pt: u8,
    codec: Codec,
    ssrc: u32,
    seq: u16,
    ts: u32,
    sending: bool,
    marker: bool,
    packets: u64,
    /// SRTP context when the SRS accepted our SDES key.
    srtp: Option<siprec_rtp::srtp::SrtpSender>,
    /// SRTP was negotiated: never send this stream in clear.
    encrypted: bool,
}

/// The SRTP context of a leg whose SRS accepted our key.
fn srtp_sender(m: &siprec_core::client::LegMedia) -> Option<siprec_rtp::srtp::SrtpSender> {
    let key = m.srtp.as_ref()?;
    match siprec_rtp::srtp::SrtpSender::new(key) {
        Ok(s) => Some(s),
        Err(e) => {
            debug!(error = %e, "SRTP context");
            None
        }
    }
}

/// The sender task's state.
#[derive(Debug)]
pub struct RtpSender {
    sources: [Box<dyn MediaSource>; 2],
    sockets: [Arc<UdpSocket>; 2],
    streams: Vec<Stream>,
    pcm: [[i16; FRAME]; 2],
    /// Per leg: one encoder per codec in use and this tick's payload from it.
    encoded: [Vec<Encoded>; 2],
    packet: [u8; 12 + MAX_PAYLOAD],
    /// The protected packet (RTP plus the authentication tag).
    protected: [u8; 12 + MAX_PAYLOAD + 16],
}

/// One leg's encoder for one codec, and its payload for the current tick.
#[derive(Debug)]
struct Encoded {
    codec: Codec,
    encoder: Encoder,
    payload: [u8; MAX_PAYLOAD],
    len: usize,
}

impl RtpSender {
    /// A sender of these two legs over these two sockets (leg 1, leg 2).
    pub fn new(sources: [Box<dyn MediaSource>; 2], sockets: [Arc<UdpSocket>; 2]) -> RtpSender {
        RtpSender {
            sources,
            sockets,
            streams: Vec::with_capacity(2 * siprec_core::client::MAX_SERVERS),
            pcm: [[0; FRAME]; 2],
            encoded: [Vec::new(), Vec::new()],
            packet: [0; 12 + MAX_PAYLOAD],
            protected: [0; 12 + MAX_PAYLOAD + 16],
        }
    }

    fn apply(&mut self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Plan { rs, plan } => {
                for (leg, media) in plan.legs.iter().enumerate() {
                    let existing = self.streams.iter().position(|s| s.rs == rs && s.leg == leg);
                    let codec = media
                        .as_ref()
                        .map(|m| Codec::from_encoding(&m.format.encoding))
                        .filter(|c| c.is_audio());
                    if let Some(c) = codec {
                        self.ensure_encoder(leg, c);
                    }
                    match (media, codec, existing) {
                        (Some(m), Some(codec), Some(i)) => {
                            if let Some(s) = self.streams.get_mut(i) {
                                if m.srtp.is_some() != s.encrypted {
                                    s.srtp = srtp_sender(m);
                                    s.encrypted = m.srtp.is_some();
                                }
                                s.dest = m.remote;
                                s.pt = m.format.payload_type;
                                s.codec = codec;
                                if plan.sending && !s.sending {
                                    s.marker = true;
                                }
                                s.sending = plan.sending;
                            }
                        }
                        (Some(m), Some(codec), None) => self.streams.push(Stream {
                            rs,
                            leg,
                            dest: m.remote,
                            pt: m.format.payload_type,
                            codec,
                            ssrc: rand::random(),
                            seq: rand::random(),
                            ts: rand::random(),
                            sending: plan.sending,
                            marker: true,
                            packets: 0,
                            srtp: srtp_sender(m),
                            encrypted: m.srtp.is_some(),
                        }),
                        (_, _, Some(i)) => {
                            self.streams.swap_remove(i);
                        }
                        _ => {}
                    }
                }
            }
            MediaCommand::Stop { rs } => self.streams.retain(|s| s.rs != rs),
            MediaCommand::Stats(reply) => {
                let stats = self
                    .streams
                    .iter()
                    .map(|s| StreamStats {
                        rs: s.rs,
                        leg: s.leg,
                        dest: s.dest,
                        payload_type: s.pt,
                        ssrc: s.ssrc,
                        packets: s.packets,
                    })
                    .collect();
                let _ = reply.send(stats);
            }
        }
    }

    /// Makes sure leg `leg` has an encoder for `codec` (allocated when a plan first uses it,
    /// never on the per-packet path).
    fn ensure_encoder(&mut self, leg: usize, codec: Codec) {
        let Some(list) = self.encoded.get_mut(leg) else {
            return;
        };
        if list.iter().any(|e| e.codec == codec) {
            return;
        }
        match Encoder::with_input_rate(codec, crate::media::RATE) {
            Ok(encoder) => list.push(Encoded {
                codec,
                encoder,
                payload: [0; MAX_PAYLOAD],
                len: 0,
            }),
            Err(e) => debug!(?codec, error = %e, "no encoder"),
        }
    }

    /// One 20 ms tick: pull both legs, send to every sending stream.
    async fn tick(&mut self) {
        for leg in 0..2 {
            if let (Some(src), Some(pcm)) = (self.sources.get_mut(leg), self.pcm.get_mut(leg)) {
                src.read(pcm);
            }
        }
        // Encode each leg once per codec some sending stream uses.
        for (leg, list) in self.encoded.iter_mut().enumerate() {
            let Some(pcm) = self.pcm.get(leg) else {
                continue;
            };
            for e in list.iter_mut() {
                let used = self
                    .streams
                    .iter()
                    .any(|s| s.sending && s.leg == leg && s.codec == e.codec);
                e.len = if used {
                    e.encoder.encode(pcm, &mut e.payload)
                } else {
                    0
                };
            }
        }
        for s in self.streams.iter_mut() {
            if s.sending {
                let header = RtpHeader {
                    marker: s.marker,
                    payload_type: s.pt,
                    sequence: s.seq,
                    timestamp: s.ts,
                    ssrc: s.ssrc,
                };
                let payload = self.encoded.get(s.leg).and_then(|list| {
                    list.iter()
                        .find(|e| e.codec == s.codec && e.len > 0)
                        .map(|e| &e.payload[..e.len])
                });
                if let (Some(payload), Some(sock)) = (payload, self.sockets.get(s.leg)) {
                    if let Ok(n) = siprec_rtp::write(&header, payload, &mut self.packet) {
                        let bytes = match (&mut s.srtp, self.packet.get(..n)) {
                            (Some(ctx), Some(plain)) => ctx
                                .protect(plain, &mut self.protected)
                                .ok()
                                .and_then(|m| self.protected.get(..m)),
                            (Some(_), None) => None,
                            // No context although SRTP was negotiated: send nothing.
                            (None, _) if s.encrypted => None,
                            (None, plain) => plain,
                        };
                        if let Some(bytes) = bytes {
                            if let Err(e) = sock.send_to(bytes, s.dest).await {
                                debug!(dest = %s.dest, error = %e, "RTP send failed");
                            }
                        }
                    }
                }
                s.marker = false;
                s.seq = s.seq.wrapping_add(1);
                s.packets += 1;
            }
            // The RTP clock runs while paused too.
            s.ts = s.ts.wrapping_add(siprec_rtp::rtp_clock_rate(s.codec) / 50);
        }
    }

    /// Runs until the command channel closes: one tick every 20 ms (missed ticks are caught
    /// up, so the average rate stays exact).
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<MediaCommand>) {
        let mut interval = tokio::time::interval(PTIME);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            interval.tick().await;
            loop {
                match commands.try_recv() {
                    Ok(cmd) => self.apply(cmd),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            self.tick().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::ToneSource;
    use siprec_core::client::LegMedia;
    use siprec_sdp::Format;

    #[tokio::test]
    async fn packets_carry_continuous_seq_and_timestamps_and_pause() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dest = rx.local_addr().unwrap();
        let s1 = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let s2 = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let mut sender = RtpSender::new(
            [
                Box::new(ToneSource::new(440.0, 8000.0)),
                Box::new(ToneSource::new(880.0, 8000.0)),
            ],
            [s1, s2],
        );
        let plan = |sending| MediaPlan {
            legs: [
                Some(LegMedia {
                    remote: dest,
                    format: Format::pcmu(),
                    srtp: None,
                }),
                Some(LegMedia {
                    remote: dest,
                    format: Format::pcma(),
                    srtp: None,
                }),
            ],
            sending,
        };
        sender.apply(MediaCommand::Plan {
            rs: RsId(1),
            plan: Box::new(plan(true)),
        });
        for _ in 0..3 {
            sender.tick().await;
        }
        sender.apply(MediaCommand::Plan {
            rs: RsId(1),
            plan: Box::new(plan(false)),
        });
        sender.tick().await;
        sender.apply(MediaCommand::Plan {
            rs: RsId(1),
            plan: Box::new(plan(true)),
        });
        sender.tick().await;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        for _ in 0..8 {
            let (n, _) = rx.recv_from(&mut buf).await.unwrap();
            let p = siprec_rtp::parse(&buf[..n]).unwrap();
            assert_eq!(p.payload.len(), 160);
            got.push(p.header);
        }
        let leg1: Vec<_> = got.iter().filter(|h| h.payload_type == 0).collect();
        let leg2: Vec<_> = got.iter().filter(|h| h.payload_type == 8).collect();
        assert_eq!((leg1.len(), leg2.len()), (4, 4));
        assert_ne!(leg1[0].ssrc, leg2[0].ssrc);
        for leg in [&leg1, &leg2] {
            assert!(leg[0].marker && !leg[1].marker && !leg[2].marker);
            // Sequence numbers continue across the pause; timestamps skip the paused frame.
            assert_eq!(leg[1].sequence, leg[0].sequence.wrapping_add(1));
            assert_eq!(leg[3].sequence, leg[2].sequence.wrapping_add(1));
            assert_eq!(leg[1].timestamp, leg[0].timestamp.wrapping_add(160));
            assert_eq!(leg[3].timestamp, leg[2].timestamp.wrapping_add(320));
            assert!(leg[3].marker, "marker after the pause");
        }
        let (tx, rx_stats) = oneshot::channel();
        sender.apply(MediaCommand::Stats(tx));
        let stats = rx_stats.await.unwrap();
        assert!(stats.iter().all(|s| s.packets == 4));
        sender.apply(MediaCommand::Stop { rs: RsId(1) });
        assert!(sender.streams.is_empty());
    }
}
