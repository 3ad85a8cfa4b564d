//! A SIP back-to-back user agent (B2BUA) that sits in a live call, anchors its media, and
//! forks the call's audio to SIPREC recording servers (SRSs) when the call asks for it — the
//! SBC piece of the "Call Recording Node" (siprec-notes §1). Sans-IO: no sockets, no clock.
//!
//! What this crate owns:
//! - [`GatewayCore`]: the B2BUA. An INVITE on a listener becomes two dialogs: the A leg (the
//!   caller, answered by the gateway) and the B leg (a new dialog, own Call-ID, tags, Via and
//!   Contact, towards [`Forward`]). Provisional and final responses, ACK, BYE from either side,
//!   CANCEL, re-INVITE and UPDATE, and INFO that is not a recording command are relayed between
//!   the legs; OPTIONS is answered. Each leg's SDP is rewritten ([`sdp`]) so RTP flows through
//!   the gateway's relay ports.
//! - Recording commands ([`command`]): an in-dialog INFO with `X-Reason:
//!   startCallRecording|stopCallRecording|pauseCallRecording|resumeCallRecording` is answered by
//!   the gateway with the node's contract ([`siprec_core::client::Reply`]): the call's
//!   [`siprec_core::client::SrcCore`] runs the recording sessions, whose metadata names the A
//!   leg's From and To and Call-ID; `--record-all` starts it at the answer without an INFO.
//! - [`relay`]: the per-call relay decisions (latching, where each packet goes, which SRS gets a
//!   copy), driven per packet by the I/O driver.
//!
//! Call order for a driver (quinn-proto style):
//! 1. [`GatewayCore::new`] with the [`GatewayConfig`] and a [`PortAllocator`] that binds relay
//!    ports (an even RTP port and the RTCP port above it);
//! 2. every SIP message received on any listener: [`GatewayCore::handle_message`] (the core
//!    routes recording-session messages to their call's SRC itself); a send failure:
//!    [`GatewayCore::handle_transport_error`];
//! 3. drain [`GatewayCore::poll_transmit`] onto the sockets and [`GatewayCore::poll_event`]:
//!    open, update and close relays ([`Event::Relay`]), resolve SRS names
//!    ([`Event::Resolve`], answered with [`GatewayCore::resolved`]);
//! 4. sleep until [`GatewayCore::poll_timeout`], then [`GatewayCore::handle_timeout`].
//!
//! ```
//! use std::time::{Instant, SystemTime};
//! use siprec_gateway::{Forward, GatewayConfig, GatewayCore, PortAllocator};
//! use siprec_sip::transaction::{Peer, Transport};
//!
//! struct Ports(u16);
//! impl PortAllocator for Ports {
//!     fn allocate(&mut self) -> Option<u16> { self.0 += 2; Some(self.0) }
//!     fn release(&mut self, _port: u16) {}
//! }
//!
//! let ip = "192.0.2.1".parse().unwrap();
//! let forward = Forward::new("sip:192.0.2.20:5060", "192.0.2.20".parse().unwrap()).unwrap();
//! let config = GatewayConfig::new(forward, vec![(Transport::Udp, "192.0.2.1:5060".parse().unwrap())], ip);
//! let now = Instant::now();
//! let mut gw = GatewayCore::new(config, Box::new(Ports(30000)), now, SystemTime::now()).unwrap();
//! let options = b"OPTIONS sip:gw@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK7\r\n\
//! From: <sip:pbx@192.0.2.9>;tag=1\r\nTo: <sip:gw@192.0.2.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
//! let peer = Peer { transport: Transport::Udp, addr: "192.0.2.9:5060".parse().unwrap() };
//! gw.handle_bytes(now, peer, options);
//! let reply = gw.poll_transmit().unwrap();
//! assert!(reply.payload.starts_with(b"SIP/2.0 200 OK\r\n"));
//! ```

pub mod command;
mod config;
mod core;
pub mod relay;
pub mod sdp;

pub use crate::config::{Forward, GatewayConfig, RecordingSettings};
pub use crate::core::{CallId, Event, GatewayCore, RelayUpdate};
pub use relay::{Channel, Relay, Side};
pub use siprec_core::PortAllocator;

/// Errors of this crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ----- a peer sent something wrong -----
    /// The body of an offer or answer is not SDP the gateway can read.
    #[error("SDP cannot be read: {0}")]
    BadSdp(String),
    /// The SDP has no audio stream to anchor.
    #[error("SDP has no audio stream")]
    NoAudio,
    // ----- our configuration is wrong -----
    /// A setting is unusable; the text names it.
    #[error("{0}")]
    Config(String),
}
