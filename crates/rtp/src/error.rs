//! The crate's one error type.

/// Everything that can go wrong in this crate.
///
/// The first group is "the peer sent something wrong" (drop the datagram); the second is
/// "our own call was wrong".
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ---- the peer sent something wrong ----
    /// The datagram ends inside the fixed header, the CSRC list or the header extension.
    #[error("RTP packet truncated: {needed} bytes needed, {len} present")]
    Truncated {
        /// Bytes needed to read the part that is cut off.
        needed: usize,
        /// Length of the datagram.
        len: usize,
    },
    /// The version field is not 2 (RFC 3550 §5.1).
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// The datagram is RTCP multiplexed on the RTP port (RFC 5761 §4: second octet in
    /// 192..=223). Not an error for the stream: callers ignore it.
    #[error("RTCP packet (type {packet_type}) on the RTP port")]
    Rtcp {
        /// The RTCP packet type (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, …).
        packet_type: u8,
    },
    /// The padding bit is set but the padding count is 0 or longer than what follows the
    /// header (RFC 3550 §5.1).
    #[error("bad RTP padding count {count} ({available} bytes after the header)")]
    BadPadding {
        /// The padding count (last octet of the datagram).
        count: u8,
        /// Bytes after the header (payload plus padding).
        available: usize,
    },

    /// An SRTP packet failed authentication, was a replay, or was too short to carry a
    /// tag: it is dropped (and counted by the caller).
    #[error("SRTP packet failed authentication (bad tag, replay or truncated)")]
    SrtpAuth,
    /// An `a=crypto` line cannot be used (suite, key length, MKI, session parameters).
    #[error("SDES a=crypto: {0}")]
    Sdes(&'static str),

    // ---- our own call was wrong ----
    /// The output buffer given to [`crate::write`] is too small.
    #[error("output buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Size of the buffer.
        available: usize,
    },
    /// A payload type above 127 was given to [`crate::write`].
    #[error("RTP payload type {0} out of range 0..=127")]
    PayloadTypeOutOfRange(u8),
    /// A codec or resampler cannot be set up with these parameters.
    #[error("codec: {0}")]
    Codec(&'static str),
}

impl Error {
    /// True when the error is the peer's fault (a datagram we must drop), false when it is
    /// ours. [`Error::Rtcp`] counts as the peer's (it is not RTP).
    pub fn is_peer_error(&self) -> bool {
        matches!(
            self,
            Error::Truncated { .. }
                | Error::BadVersion(_)
                | Error::Rtcp { .. }
                | Error::BadPadding { .. }
                | Error::SrtpAuth
                | Error::Sdes(_)
        )
    }
}
