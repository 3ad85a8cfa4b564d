//! siprec-client: the recording client (SRC) that does what a voice platform's "Call Recording
//! Node" does — start, stop, pause and resume the recording of a call over SIPREC (RFC 7866)
//! towards one or many recording servers (SRSs), as a library and a CLI.
//!
//! What this crate owns (the SIPREC rules themselves live in the sans-IO
//! [`siprec_core::client`] module, re-exported here):
//! - [`Recorder`] ([`recorder`]): the tokio driver of one call — SIP over UDP, TCP and TLS
//!   ([`siprec_sip_tokio`]), name resolution ([`resolver_api`], RFC 3263 in [`resolve`]),
//!   timers, and the activity API with the node's parameters ([`NodeRequest`]);
//! - [`media`]: the call's legs as [`MediaSource`]s (WAV files of any rate and channel count,
//!   tones, silence);
//! - [`rtp_sender`]: real-time G.711 RTP to every recording SRS (20 ms, one SSRC per leg and
//!   session, no allocation per packet);
//! - [`cli`]: `siprec-client record …`, which simulates a call and runs the activities;
//! - [`gateway`]: `siprec-client gateway …`, the tokio driver of the live-call B2BUA
//!   ([`siprec_gateway::GatewayCore`]): it relays a real call's SIP and RTP and forks the audio
//!   to SRSs on the Call Recording Node's INFO commands.
//!
//! Call order: [`Recorder::new`] (the call is up, its audio plays) → [`Recorder::start`] with
//! the Call Recording Server value → [`Recorder::pause`] / [`Recorder::resume`] →
//! [`Recorder::stop`] → [`Recorder::close`] (hang-up). Every activity returns an [`Outcome`]:
//! the node's reply code and exact log line ([`Reply`]) and what each SRS answered.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), siprec_client::Error> {
//! use siprec_client::media::{Silence, ToneSource};
//! use siprec_client::{CallContext, ClientConfig, Recorder, Reply};
//!
//! let rec = Recorder::new(
//!     ClientConfig::default(),
//!     CallContext::example(),
//!     Box::new(ToneSource::new(440.0, 8000.0)),
//!     Box::new(Silence),
//! )
//! .await?;
//! // Plain host names without a scheme are refused, as the node does (503).
//! let out = rec.start("siprec.example.com", Some("rec-1")).await?;
//! assert_eq!(out.reply, Reply::StartFailed);
//! assert_eq!(out.reply.code(), 503);
//! assert!(out.reason.unwrap().contains("without the sip: or sips: scheme"));
//! // Nothing is recording, so stop is refused with the contract's 400.
//! let out = rec.stop().await?;
//! assert_eq!(out.reply.log_line(), "discarding stopCallRecording request because we are not recording");
//! rec.close().await?;
//! # Ok(()) }
//! ```

pub mod check;
pub mod cli;
pub mod gateway;
pub mod media;
pub mod recorder;
pub mod resolve;
pub mod resolver_api;
pub mod rtp_sender;

pub use media::{MediaSource, Silence, ToneSource, WavSource};
pub use recorder::{ClientConfig, ClientEvent, NodeRequest, Recorder};
pub use resolve::{Destination, ResolveError, Resolver, ResolverConfig, Target};
pub use resolver_api::{IpLiteralResolver, ResolvedTarget, SrsResolver};
/// The sans-IO SRC core (state machines, server-string parsing, the contract's log lines).
pub use siprec_core::client as core;
pub use siprec_core::client::{
    parse_server_list, Activity, CallContext, CallDirection, Host, Outcome, Party, Reply, RsId,
    SrsReport, SrsUri,
};

/// Everything that can go wrong in this crate (what SRSs answer is never an error: it is in
/// the [`Outcome`]).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ----- our configuration is wrong -----
    /// Configuration: the call context or recorder settings are unusable.
    #[error(transparent)]
    Core(#[from] siprec_core::client::Error),
    /// Configuration or environment: the SIP transports could not be set up (bind, CA file).
    #[error("SIP transport: {0}")]
    Transport(siprec_sip_tokio::Error),
    /// Environment: an RTP socket could not be bound.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// Configuration: a WAV file cannot be used as a call leg.
    #[error("WAV file {path}: {reason}")]
    Wav {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: media::WavError,
    },
    /// Configuration: a command-line value is wrong.
    #[error("{0}")]
    Usage(String),
    // ----- the recorder is gone -----
    /// The recorder's tasks have ended (after close, or a panic).
    #[error("the recorder is closed")]
    Closed,
}
