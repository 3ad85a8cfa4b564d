//! RTP for a call recorder: packet parsing and writing, sequence tracking, G.711.
//!
//! # What this crate owns
//!
//! * [`parse`] / [`write`](fn@crate::write): the RTP fixed header (RFC 3550 §5.1), zero-copy and without
//!   allocation; CSRC lists, header extensions (§5.3.1) and padding are skipped; RTCP
//!   multiplexed on the RTP port (RFC 5761 §4) is reported as [`Error::Rtcp`] so that
//!   callers can ignore it.
//! * [`SequenceTracker`]: per stream, whether each packet is new, reordered, a duplicate,
//!   from a new source or too old ([`Verdict`]), plus RFC 3550 A.3 loss counters
//!   ([`StreamStats`]). No buffering: reordering is handled by the caller's timeline, which
//!   places audio by RTP timestamp ([`TimestampUnwrapper`] unwraps them).
//! * [`g711`]: µ-law / A-law ↔ linear, and [`Codec`] / [`Decoder`], which turn a payload
//!   into 8 kHz 16-bit samples (0 samples for telephone-event and comfort noise: the
//!   timeline fills that time with silence).
//!
//! No I/O, no clock. Nothing on the per-packet path allocates.
//!
//! # Call order
//!
//! Per received datagram: [`parse`] (drop on error; `Error::Rtcp` is normal) →
//! [`SequenceTracker::on_packet`] (drop unless [`Verdict::accepted`]) →
//! [`Decoder::decode`] into a reusable buffer → hand the samples and the header's timestamp
//! to the timeline. At the end, [`SequenceTracker::stats`].
//!
//! # Example
//!
//! ```
//! use siprec_rtp::{g711, parse, write, Codec, Decoder, RtpHeader, SequenceTracker, Verdict};
//!
//! // A 20 ms PCMA packet (160 samples of a quiet signal).
//! let pcm = [100i16; 160];
//! let mut payload = [0u8; 160];
//! g711::encode_alaw_into(&pcm, &mut payload);
//! let header = RtpHeader { marker: true, payload_type: 8, sequence: 65535, timestamp: 0, ssrc: 7 };
//! let mut datagram = [0u8; 1500];
//! let len = write(&header, &payload, &mut datagram).unwrap();
//!
//! // Receiving side: parse, track, decode.
//! let mut tracker = SequenceTracker::new();
//! let mut decoder = Decoder::new(Codec::from_encoding("PCMA"));
//! let mut samples = [0i16; 1500];
//!
//! let packet = parse(&datagram[..len]).unwrap();
//! assert_eq!(packet.header, header);
//! let verdict = tracker.on_packet(packet.header.ssrc, packet.header.sequence);
//! assert_eq!(verdict, Verdict::InOrder);
//! let n = decoder.decode(packet.payload, &mut samples);
//! assert_eq!(n, 160);
//! assert!(samples[..n].iter().all(|&s| (s - 100).abs() <= 8));
//!
//! // The same packet again is a duplicate; the next one (sequence wraps to 0) is in order.
//! assert_eq!(tracker.on_packet(7, 65535), Verdict::Duplicate);
//! assert_eq!(tracker.on_packet(7, 0), Verdict::InOrder);
//! assert_eq!(tracker.stats().received, 2);
//! assert_eq!(tracker.stats().duplicated, 1);
//!
//! // RTCP on the same port is recognised and skipped.
//! let rtcp_rr = [0x81, 201, 0, 7, 0, 0, 0, 7, 0, 0, 0, 0];
//! assert_eq!(parse(&rtcp_rr), Err(siprec_rtp::Error::Rtcp { packet_type: 201 }));
//! ```

mod codec;
mod error;
pub mod g711;
mod packet;
mod sequence;
pub mod srtp;
mod timestamp;

pub use codec::{rtp_clock_rate, Codec, Decoder, Encoder};
pub use error::Error;
pub use packet::{is_rtcp, parse, write, RtpHeader, RtpPacket, HEADER_LEN, RTP_VERSION};
pub use sequence::{SequenceTracker, StreamStats, Verdict, DEDUPE_WINDOW, MAX_DROPOUT};
pub use timestamp::{extend_timestamp, TimestampUnwrapper};
