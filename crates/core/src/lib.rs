//! Recording-session state machines (RFC 7866), without sockets or clocks.
//!
//! This crate owns the SIPREC rules on top of the SIP, SDP and metadata crates:
//! - [`srs::SrsCore`], the recording server role: which INVITEs are recording sessions, what to
//!   answer (200 with an SDP answer and `+sip.srs`, or 415/420/488/503 with the reason), how
//!   re-INVITE and UPDATE pause, resume, change codecs or carry metadata, and when a session ends.
//! - [`channels`], the left/right mapping of a stereo recording from metadata and m-lines.
//! - [`body`], splitting a `multipart/mixed` body into its SDP and metadata parts.
//!
//! Call order (the driver's loop, in the quinn-proto style):
//! 1. [`srs::SrsCore::handle_bytes`] for each message received, with `Instant::now()`;
//! 2. drain [`srs::SrsCore::poll_transmit`] (send them) and [`srs::SrsCore::poll_event`]
//!    (open, update and finish recordings);
//! 3. sleep until [`srs::SrsCore::poll_timeout`], then call [`srs::SrsCore::handle_timeout`].
//!
//! The driver owns RTP sockets (through [`srs::PortAllocator`]) and the recordings; it calls
//! [`srs::SrsCore::end_session`] when media times out or at shutdown.

pub mod body;
pub mod channels;
pub mod src;
pub mod srs;

pub use srs::{
    EndReason, Event, PortAllocator, SessionId, SrsConfig, SrsCore, SrtpPolicy, StreamPlan,
};
