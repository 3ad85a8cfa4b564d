//! Recording-session state machines (RFC 7866), without sockets or clocks.
//!
//! This crate owns the SIPREC rules on top of the SIP, SDP and metadata crates, for both roles:
//! - [`client::SrcCore`], the recording client (SRC) role: one call's recording towards one or
//!   many recording servers, as the "Call Recording Node" drives it (start, stop, pause, resume):
//!   one recording session per SRS URI, failover across resolved targets and redirects, the SRS's
//!   own requests, session timers, and the node's contract (reply codes and log lines).
//! - [`server::SrsCore`], the recording server (SRS) role: which INVITEs are recording sessions,
//!   what to answer (200 with an SDP answer and `+sip.srs`, or 415/420/488/503 with the reason),
//!   how re-INVITE and UPDATE pause, resume, change codecs or carry metadata, and when a session
//!   ends.
//! - [`channels`], the left/right mapping of a stereo recording from metadata and m-lines.
//! - [`body`], splitting a `multipart/mixed` body into its SDP and metadata parts.
//!
//! Both cores are driven the same way (the quinn-proto style): messages and `now` in,
//! transmits and events out, and a timeout at which to call them again.
//!
//! Call order of the SRC, per call:
//! 1. [`client::SrcCore::new`] with the local SIP and RTP addresses and the call's context;
//! 2. an activity: [`client::SrcCore::start`], [`client::SrcCore::stop`],
//!    [`client::SrcCore::pause`], [`client::SrcCore::resume`] (each returns an
//!    [`client::OpId`]; its [`client::Outcome`] comes as an event);
//! 3. input: [`client::SrcCore::handle_bytes`] for each message received,
//!    [`client::SrcCore::handle_transport_error`] when a send failed, and
//!    [`client::SrcCore::resolved`] to answer [`client::Event::Resolve`];
//! 4. drain [`client::SrcCore::poll_transmit`] onto the sockets and
//!    [`client::SrcCore::poll_event`] (outcomes, where to send RTP);
//! 5. sleep until [`client::SrcCore::poll_timeout`], then call
//!    [`client::SrcCore::handle_timeout`].
//!
//! Call order of the SRS (the driver's loop):
//! 1. [`server::SrsCore::handle_bytes`] for each message received, with `Instant::now()`;
//! 2. drain [`server::SrsCore::poll_transmit`] (send them) and [`server::SrsCore::poll_event`]
//!    (open, update and finish recordings);
//! 3. sleep until [`server::SrsCore::poll_timeout`], then call
//!    [`server::SrsCore::handle_timeout`].
//!
//! The SRS driver owns RTP sockets (through [`server::PortAllocator`]) and the recordings; it
//! calls [`server::SrsCore::end_session`] when media times out or at shutdown. The SRC driver
//! owns sockets, name resolution (RFC 3263) and the RTP senders.

pub mod body;
pub mod channels;
pub mod client;
pub mod server;

pub use server::{
    EndReason, Event, PortAllocator, SessionId, SrsConfig, SrsCore, SrtpPolicy, StreamPlan,
};
