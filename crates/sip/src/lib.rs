//! SIP for the SIPREC recording server (SRS) and client (SRC): messages, stream framing,
//! multipart bodies, RFC 3261 transactions and dialogs. Messages are parsed once, by this
//! crate, into [rsip] 0.4's types (rsip holds and prints them, it never parses received
//! bytes). Sans-IO: no sockets, no clock; time comes in as `now: Instant`.
//!
//! What each module owns:
//! - [`message`]: [`message::parse_message`] (size limits, compact header names,
//!   Content-Length, mandatory headers; never panics), [`message::print_message`]
//!   (correct Content-Length and reason phrases), typed header accessors (From/To and their
//!   tags, Contact, top Via, Call-ID, CSeq, Content-Type as a `MediaType`, Session-Expires,
//!   Max-Forwards, Record-Route, Require/Supported/Unsupported/Allow lists;
//!   `extension_header` for `X-` and configured names, the only
//!   look-up by name outside this module), responses built from requests, branches, tags
//!   and transaction keys.
//! - [`framing`]: [`StreamFramer`](framing::StreamFramer) cuts a TCP/TLS byte stream into
//!   messages (RFC 3261 §18.3) and skips CRLF keep-alives.
//! - [`multipart`]: `multipart/mixed` bodies (RFC 2046 §5.1), as in RFC 7866 recording-session
//!   INVITEs.
//! - [`transaction`]: [`TransactionLayer`](transaction::TransactionLayer), RFC 3261 §17 client
//!   and server transactions plus the 2xx retransmission of §13.3.1.4, CANCEL handling and
//!   all timers.
//! - [`dialog`]: [`Dialog`](dialog::Dialog), RFC 3261 §12 dialog state and in-dialog requests.
//! - [`uri`]: [`SipUri`](uri::SipUri), the one SIP URI parser (IPv6 references as in
//!   `sip:[2001:db8::1]:5060`, RFC 5118), and `host[:port]` of a Via sent-by.
//! - [`source`]: peer addresses in one canonical form (IPv4-mapped IPv6 as IPv4) and
//!   allowlist matching, shared by the transports' accept policy and the SRS core.
//!
//! Call order for a driver:
//! 1. bytes in: UDP datagram as is, TCP through [`framing::StreamFramer`];
//! 2. [`message::parse_message`] → [`transaction::TransactionLayer::handle_message`] with the
//!    peer and `Instant::now()`;
//! 3. drain [`transaction::TransactionLayer::poll_event`]; answer each
//!    [`transaction::Event::Request`] with [`message::make_response`] +
//!    [`transaction::TransactionLayer::respond`]; send requests with
//!    [`transaction::TransactionLayer::send_request`];
//! 4. drain [`transaction::TransactionLayer::poll_transmit`] onto the sockets;
//! 5. sleep until [`transaction::TransactionLayer::poll_timeout`], then
//!    [`transaction::TransactionLayer::handle_timeout`] and go to 3.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use siprec_sip::message::{make_response, parse_message};
//! use siprec_sip::transaction::{Event, Peer, TimerConfig, TransactionLayer, Transport};
//!
//! let wire = b"OPTIONS sip:srs@192.0.2.10 SIP/2.0\r\n\
//! Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n\
//! From: <sip:src@example.com>;tag=a1\r\n\
//! To: <sip:srs@example.net>\r\n\
//! i: ping-1\r\n\
//! CSeq: 1 OPTIONS\r\n\
//! l: 0\r\n\r\n";
//! let peer = Peer { transport: Transport::Udp, addr: "192.0.2.1:5060".parse().unwrap() };
//! let start = Instant::now();
//! let now = start;
//! let mut layer = TransactionLayer::new(TimerConfig::default());
//! layer.handle_message(now, peer, parse_message(wire).unwrap());
//! while let Some(event) = layer.poll_event() {
//!     if let Event::Request { key, request, .. } = event {
//!         let ok = make_response(&request, 200, None, Some("srs-1"));
//!         layer.respond(now, &key, ok).unwrap();
//!     }
//! }
//! let out = layer.poll_transmit().unwrap();
//! assert_eq!(out.peer, peer);
//! assert!(out.payload.starts_with(b"SIP/2.0 200 OK\r\n"));
//! // Timer J keeps the transaction 64*T1 to absorb retransmissions, then it is gone.
//! let later = layer.poll_timeout().unwrap();
//! assert_eq!(later - start, Duration::from_secs(32));
//! layer.handle_timeout(later);
//! assert_eq!(layer.len(), 0);
//! ```

pub mod dialog;
mod error;
#[cfg(test)]
mod fixture_tests;
pub mod framing;
pub mod message;
pub mod multipart;
pub mod source;
pub mod transaction;
pub mod uri;

pub use error::{excerpt_chars, Error};
pub use message::{parse_message, print_message, MAX_MESSAGE_SIZE};
pub use rsip;
