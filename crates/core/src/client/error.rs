//! Errors.

/// What can go wrong in the SRC role (configuration and the Call Recording Server value; what
/// SRSs answer is reported in [`Outcome`](super::Outcome)s, never as an error).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ----- the flow's input is wrong -----
    /// Input: the Call Recording Server value is empty (the "missing X-Srs-Url" case).
    #[error("the Call Recording Server value is empty; {ACCEPTED}")]
    MissingServer,
    /// Input: one entry of the Call Recording Server value is not an accepted SIP URI.
    #[error("invalid Call Recording Server entry {entry:?}: {reason}; {ACCEPTED}")]
    InvalidServer {
        /// The entry as written (trimmed, shortened when very long).
        entry: String,
        /// What is wrong with it.
        reason: super::server_uri::ServerUriError,
    },
    // ----- our configuration is wrong -----
    /// Configuration: the call context cannot describe a call (empty AOR, bad extra header).
    #[error("invalid call context: {0}")]
    InvalidCallContext(String),
}

/// What the error messages say is accepted.
pub const ACCEPTED: &str = "expected sip:HOST[:PORT][;transport=udp|tcp|tls] or sips:HOST[:PORT] \
(HOST a name, an IPv4 address or an [IPv6] address), several separated by commas, \
e.g. sip:siprec.example.com, sip:siprec.example.com:5060, sip:3.208.57.175, \
sips:siprec.example.com, sip:srs1.example.com,sip:srs2.example.com";
