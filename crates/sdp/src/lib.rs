//! SDP offer/answer for SIPREC recording sessions (RFC 7866), on top of `webrtc-sdp`.
//!
//! # What this crate owns
//!
//! * [`parse`]: an SDP body (offer or answer) into a [`SessionDescription`]: per m-line the
//!   media type, port, transport, payload [`Format`]s (rtpmap, fmtp, static payload types),
//!   `a=label`, direction, connection address, raw `a=crypto` lines, `a=rtcp-mux`, `a=ptime`.
//!   Lenient about what real SRCs send (no `t=`, unknown lines and transports, LF line ends,
//!   missing labels, sections without `c=`); bounded in size ([`MAX_SDP_LEN`], [`MAX_MEDIA`]).
//! * The recording server (SRS) side: [`recordable`] says which m-lines we would record,
//!   [`answer`] writes the answer (RFC 3264 §6: same m-lines in the same order; `a=recvonly`
//!   for recorded streams, `a=inactive` for paused ones, port 0 for declined ones) and reports
//!   per m-line what was agreed ([`AnsweredMedia`]).
//! * The recording client (SRC) side: [`OfferBuilder`] / [`build_offer`] write the offer
//!   (one `m=audio` per stream with `a=label` and a direction), and
//!   [`negotiated_format`] reads the codec the SRS picked out of its parsed answer.
//!
//! No I/O, no clock, no keys. SRTP (RFC 4568 SDES) is split: this crate carries the raw
//! `a=crypto` values ([`MediaDescription::crypto`]), declines `RTP/SAVP` unless
//! [`AnswerConfig::srtp`] is on (and `RTP/AVP` when [`AnswerConfig::require_srtp`] is), and
//! writes the caller's own key from [`AnswerConfig::local_crypto`] into the answer; choosing an
//! offered key and making ours (`siprec_rtp::srtp::SdesKey`) is the caller's job.
//!
//! # Call order
//!
//! SRS: [`parse`] the offer → [`recordable`] → allocate an RTP port for each `true` →
//! [`answer`] with those ports (`None` for the others) → send the text in a 200 OK; on
//! [`Error::NoUsableStream`] reply 488. Repeat for every re-INVITE/UPDATE offer, keeping the
//! ports of m-lines that stay and bumping [`AnswerConfig::session_version`].
//!
//! SRC: [`build_offer`] → send → [`parse`] the answer → per m-line, port 0 = declined, else
//! [`negotiated_format`] and [`MediaDescription::remote_rtp_addr`] say where and how to send.
//!
//! # Example
//!
//! ```
//! use siprec_sdp::{answer, build_offer, negotiated_format, parse, recordable};
//! use siprec_sdp::{AnswerConfig, Direction, Format, OfferStream};
//!
//! // The SRC offers two streams, one per participant.
//! let offer_text = build_offer(
//!     "198.51.100.1".parse().unwrap(),
//!     1,
//!     1,
//!     &[OfferStream::audio(4000, "1"), OfferStream::audio(4002, "2")],
//! );
//!
//! // The SRS parses it, picks the streams it can record and answers.
//! let offer = parse(offer_text.as_bytes()).unwrap();
//! assert_eq!(offer.media[0].direction, Direction::SendOnly);
//! let config = AnswerConfig::new("192.0.2.10".parse().unwrap(), 7, 1);
//! let ports: Vec<Option<u16>> = recordable(&offer, &config)
//!     .iter()
//!     .zip([30000, 30002])
//!     .map(|(ok, port)| ok.then_some(port))
//!     .collect();
//! let (answer_text, media) = answer(&offer, &ports, &config).unwrap();
//! assert!(media.iter().all(|m| m.accepted && m.direction == Direction::RecvOnly));
//! assert_eq!(media[0].format, Some(Format::pcmu()));
//! assert_eq!(media[0].telephone_event_pt, Some(101));
//! assert!(answer_text.contains("a=label:1\r\n"));
//!
//! // The SRC reads the answer.
//! let ans = parse(answer_text.as_bytes()).unwrap();
//! assert_eq!(negotiated_format(&ans.media[1]), Some(&Format::pcmu()));
//! assert_eq!(
//!     ans.media[1].remote_rtp_addr(),
//!     Some("192.0.2.10:30002".parse().unwrap())
//! );
//! ```

mod answer;
mod error;
#[cfg(test)]
mod fixtures;
mod offer;
mod parse;
mod types;

pub use answer::{answer, decline, recordable, AnswerConfig, AnsweredMedia};
pub use error::Error;
pub use offer::{build_offer, OfferBuilder, OfferStream};
pub use parse::{parse, MAX_MEDIA, MAX_SDP_LEN};
pub use types::{
    is_audio_codec, negotiated_format, Direction, Format, MediaDescription, SessionDescription,
};
