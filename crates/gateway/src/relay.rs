//! The per-call media relay's decisions, without sockets: which source a relay port accepts
//! (latching), where a packet goes next, and which recording servers get a copy.
//!
//! A call has two relay endpoints, each an RTP port and the RTCP port above it: one faces the
//! A leg (the caller: the port in the SDP the gateway sends to A) and one faces the B leg.
//! A packet that arrives on the A-facing port from the caller leaves through the B-facing
//! port towards the callee, and the other way round, so both parties see the gateway as their
//! peer. RTP is relayed byte for byte (no transcoding); RTCP alongside it.
//!
//! Latching (symmetric RTP, RFC 4961): each endpoint accepts packets from the address the
//! party's SDP names and, until one arrives from there, from the first source with the same
//! IP address (a NAT that rewrote the port); once a source is latched, other sources are
//! counted as strangers and dropped. A new SDP from the party (a re-INVITE moving the media)
//! clears the latch. Packets go to the latched source of the other party, else to its SDP
//! address.
//!
//! The fork: every recording session ([`RsId`] of the call's [`siprec_core::client::SrcCore`])
//! has a [`MediaPlan`]: per leg (caller = A, callee = B) the SRS address and the payload type
//! it answered. Audio packets of the call's codec are copied to each sending session's leg,
//! with the payload type rewritten when the SRS answered another number for the same codec.
//!
//! Nothing here allocates per packet: [`Relay::route`] and [`Relay::forks`] only read and
//! update fixed fields.

use std::net::SocketAddr;

use siprec_core::client::{MediaPlan, RsId};
use siprec_rtp::srtp::SdesKey;
use siprec_sdp::Format;
use siprec_sip::source::canonical_ip;

use crate::sdp::MediaInfo;

/// Most recording sessions one call forks to (the Call Recording Server value allows at most
/// 16 URIs, see [`siprec_core::client::MAX_SERVERS`]).
pub const MAX_FORKS: usize = siprec_core::client::MAX_SERVERS;

/// A leg of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The leg whose INVITE reached the gateway: the caller (first participant, left
    /// channel, `a=label:1` towards the SRS).
    A,
    /// The leg the gateway called (`--forward`): the callee (second participant).
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// 0 for A, 1 for B (the leg index of a [`MediaPlan`]).
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    /// `"A"` or `"B"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "A",
            Side::B => "B",
        }
    }
}

/// RTP or RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The even port.
    Rtp,
    /// The port above it.
    Rtcp,
}

#[derive(Debug, Clone, Copy, Default)]
struct Source {
    /// From the party's SDP.
    sdp: Option<SocketAddr>,
    /// The source packets actually come from.
    latched: Option<SocketAddr>,
}

impl Source {
    fn accept(&mut self, from: SocketAddr) -> bool {
        let from = SocketAddr::new(canonical_ip(from.ip()), from.port());
        if let Some(l) = self.latched {
            return l == from;
        }
        match self.sdp {
            Some(s) if s == from || s.ip() == from.ip() => {
                self.latched = Some(from);
                true
            }
            _ => false,
        }
    }

    fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.sdp)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Party {
    rtp: Source,
    rtcp: Source,
}

/// One leg of one recording session's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkLeg {
    /// The SRS's RTP address for this leg.
    pub dest: SocketAddr,
    /// The payload type the SRS answered.
    pub payload_type: u8,
    /// The codec the SRS answered (encoding name): copies go only while it is the call's.
    pub encoding: String,
    /// SRTP: the key to protect the copies with (our key the SRS accepted).
    pub srtp: Option<SdesKey>,
}

#[derive(Debug, Clone)]
struct Fork {
    rs: RsId,
    legs: [Option<ForkLeg>; 2],
    sending: bool,
}

/// Packet counts of one call's relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets relayed from each party (A, B), RTP and RTCP.
    pub relayed: [u64; 2],
    /// Packets copied to recording servers, per leg (A, B).
    pub forked: [u64; 2],
    /// Packets dropped because they came from neither party.
    pub strangers: u64,
    /// Packets dropped because the other party has no address (on hold, not answered yet).
    pub no_destination: u64,
}

/// The relay decisions of one call. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct Relay {
    parties: [Party; 2],
    /// The call's audio codec (from the latest answer); only its packets are forked, and only
    /// to SRSs that answered the same codec.
    codec: Option<Format>,
    forks: Vec<Fork>,
    stats: RelayStats,
}

impl Relay {
    /// A relay that knows nobody yet: every packet is a stranger until
    /// [`Relay::set_remote`].
    pub fn new() -> Relay {
        Relay::default()
    }

    /// `side`'s SDP says where it receives media. A changed address clears the latch.
    pub fn set_remote(&mut self, side: Side, media: &MediaInfo) {
        let p = &mut self.parties[side.index()];
        let canon =
            |a: Option<SocketAddr>| a.map(|a| SocketAddr::new(canonical_ip(a.ip()), a.port()));
        let (rtp, rtcp) = (canon(media.rtp), canon(media.rtcp));
        if p.rtp.sdp != rtp {
            p.rtp = Source {
                sdp: rtp,
                latched: None,
            };
        }
        if p.rtcp.sdp != rtcp {
            p.rtcp = Source {
                sdp: rtcp,
                latched: None,
            };
        }
    }

    /// The call's audio codec (`None`: nothing is forked).
    pub fn set_codec(&mut self, codec: Option<Format>) {
        self.codec = codec;
    }

    /// Replaces recording session `rs`'s plan (where each leg goes, whether to send).
    /// Plans beyond [`MAX_FORKS`] are ignored.
    pub fn set_fork(&mut self, rs: RsId, plan: &MediaPlan) {
        let legs = [0, 1].map(|i| {
            plan.legs[i].as_ref().map(|l| ForkLeg {
                dest: l.remote,
                payload_type: l.format.payload_type,
                encoding: l.format.encoding.clone(),
                srtp: l.srtp.clone(),
            })
        });
        if let Some(f) = self.forks.iter_mut().find(|f| f.rs == rs) {
            f.legs = legs;
            f.sending = plan.sending;
        } else if self.forks.len() < MAX_FORKS {
            self.forks.push(Fork {
                rs,
                legs,
                sending: plan.sending,
            });
        }
    }

    /// Forgets recording session `rs`.
    pub fn remove_fork(&mut self, rs: RsId) {
        self.forks.retain(|f| f.rs != rs);
    }

    /// A packet arrived on the port facing `side` from `from`: where it goes (out of the port
    /// facing the other side), or `None` when it is dropped (a stranger, or nowhere to send).
    pub fn route(&mut self, side: Side, channel: Channel, from: SocketAddr) -> Option<SocketAddr> {
        let src = match channel {
            Channel::Rtp => &mut self.parties[side.index()].rtp,
            Channel::Rtcp => &mut self.parties[side.index()].rtcp,
        };
        if !src.accept(from) {
            self.stats.strangers += 1;
            return None;
        }
        let other = &self.parties[side.other().index()];
        let dest = match channel {
            Channel::Rtp => other.rtp.destination(),
            Channel::Rtcp => other.rtcp.destination(),
        };
        match dest {
            Some(d) => {
                self.stats.relayed[side.index()] += 1;
                Some(d)
            }
            None => {
                self.stats.no_destination += 1;
                None
            }
        }
    }

    /// The recording servers that get a copy of an RTP packet of `side` with payload type
    /// `pt` (call after [`Relay::route`] accepted it), with the payload type each expects.
    /// Only the call's codec is copied, and only to sessions that answered that codec (after a
    /// codec change, an SRS that has not accepted the new one gets nothing rather than audio
    /// labelled with the wrong codec).
    pub fn forks(&mut self, side: Side, pt: u8) -> impl Iterator<Item = (RsId, &ForkLeg)> + '_ {
        let codec = self.codec.as_ref().filter(|c| c.payload_type == pt);
        let i = side.index();
        let takes =
            move |l: &ForkLeg| codec.is_some_and(|c| l.encoding.eq_ignore_ascii_case(&c.encoding));
        let n = self
            .forks
            .iter()
            .filter(|f| f.sending && f.legs[i].as_ref().is_some_and(takes))
            .count() as u64;
        self.stats.forked[i] += n;
        self.forks
            .iter()
            .filter(|f| f.sending)
            .filter_map(move |f| f.legs[i].as_ref().filter(|l| takes(l)).map(|l| (f.rs, l)))
    }

    /// Counts so far.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siprec_core::client::LegMedia;
    use siprec_sdp::Format;

    fn info(rtp: &str) -> MediaInfo {
        let rtp: SocketAddr = rtp.parse().unwrap();
        MediaInfo {
            rtp: Some(rtp),
            rtcp: Some(SocketAddr::new(rtp.ip(), rtp.port() + 1)),
            formats: vec![Format::pcmu()],
            srtp: false,
            on_hold: false,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn packets_cross_to_the_other_party_and_strangers_are_dropped() {
        let mut r = Relay::new();
        r.set_remote(Side::A, &info("192.0.2.1:4000"));
        // B has not answered: nowhere to send.
        assert_eq!(r.route(Side::A, Channel::Rtp, addr("192.0.2.1:4000")), None);
        r.set_remote(Side::B, &info("192.0.2.2:5000"));
        assert_eq!(
            r.route(Side::A, Channel::Rtp, addr("192.0.2.1:4000")),
            Some(addr("192.0.2.2:5000"))
        );
        assert_eq!(
            r.route(Side::B, Channel::Rtcp, addr("192.0.2.2:5001")),
            Some(addr("192.0.2.1:4001"))
        );
        // Another host on A's port: a stranger.
        assert_eq!(
            r.route(Side::A, Channel::Rtp, addr("203.0.113.9:4000")),
            None
        );
        let s = r.stats();
        assert_eq!((s.relayed, s.strangers, s.no_destination), ([1, 1], 1, 1));
    }

    #[test]
    fn a_nat_port_is_latched_and_answered_there_then_a_new_sdp_relatches() {
        let mut r = Relay::new();
        r.set_remote(Side::A, &info("192.0.2.1:4000"));
        r.set_remote(Side::B, &info("192.0.2.2:5000"));
        // A's packets come from another port of the same host: latched, and B's packets go
        // back there (symmetric RTP).
        assert!(r
            .route(Side::A, Channel::Rtp, addr("192.0.2.1:4444"))
            .is_some());
        assert_eq!(
            r.route(Side::B, Channel::Rtp, addr("192.0.2.2:5000")),
            Some(addr("192.0.2.1:4444"))
        );
        // Once latched, the SDP port itself is a stranger.
        assert_eq!(r.route(Side::A, Channel::Rtp, addr("192.0.2.1:4000")), None);
        // A re-INVITE moves A's media: the latch is cleared.
        r.set_remote(Side::A, &info("192.0.2.7:6000"));
        assert_eq!(
            r.route(Side::B, Channel::Rtp, addr("192.0.2.2:5000")),
            Some(addr("192.0.2.7:6000"))
        );
        assert!(r
            .route(Side::A, Channel::Rtp, addr("192.0.2.7:6000"))
            .is_some());
        // IPv4-mapped sources are the same host.
        assert!(r
            .route(Side::B, Channel::Rtp, addr("[::ffff:192.0.2.2]:5000"))
            .is_some());
    }

    #[test]
    fn forks_copy_the_call_codec_to_sending_sessions_only() {
        let mut r = Relay::new();
        r.set_codec(Some(Format::pcmu()));
        let leg = |port: u16, pt: u8| {
            Some(LegMedia {
                remote: SocketAddr::new("192.0.2.50".parse().unwrap(), port),
                format: Format::new(pt, "PCMU", 8000),
                srtp: None,
            })
        };
        r.set_fork(
            RsId(1),
            &MediaPlan {
                legs: [leg(7000, 0), leg(7002, 0)],
                sending: true,
            },
        );
        r.set_fork(
            RsId(2),
            &MediaPlan {
                legs: [leg(8000, 0), None],
                sending: true,
            },
        );
        let a: Vec<_> = r
            .forks(Side::A, 0)
            .map(|(rs, l)| (rs, l.dest.port()))
            .collect();
        assert_eq!(a, vec![(RsId(1), 7000), (RsId(2), 8000)]);
        let b: Vec<_> = r
            .forks(Side::B, 0)
            .map(|(rs, l)| (rs, l.dest.port()))
            .collect();
        assert_eq!(b, vec![(RsId(1), 7002)]);
        // telephone-event (101) is not the call's audio: no copy.
        assert_eq!(r.forks(Side::A, 101).count(), 0);
        // Paused: nothing.
        r.set_fork(
            RsId(1),
            &MediaPlan {
                legs: [leg(7000, 0), leg(7002, 0)],
                sending: false,
            },
        );
        assert_eq!(r.forks(Side::B, 0).count(), 0);
        r.remove_fork(RsId(2));
        assert_eq!(r.forks(Side::A, 0).count(), 0);
        assert_eq!(r.stats().forked, [2, 1]);
        // The call moves to PCMA; a session still on PCMU gets nothing until it re-answers.
        r.set_codec(Some(Format::pcma()));
        assert_eq!(r.forks(Side::A, 8).count(), 0);
        assert_eq!(r.forks(Side::A, 0).count(), 0);
    }
}
