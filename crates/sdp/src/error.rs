//! The crate's one error type.

/// Everything that can go wrong in this crate.
///
/// The first group is "the peer sent something wrong" (answer with 488 Not Acceptable Here);
/// the second is "our own call was wrong" (a bug or a bad configuration on our side).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ---- the peer sent something wrong ----
    /// The SDP body is larger than [`crate::MAX_SDP_LEN`] bytes.
    #[error("SDP body too large: {len} bytes (limit {limit})")]
    TooLarge {
        /// Size of the body we were given.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The SDP has more m-lines than [`crate::MAX_MEDIA`].
    #[error("too many m-lines in SDP: more than {limit}")]
    TooManyMedia {
        /// The limit.
        limit: usize,
    },
    /// The SDP body is not UTF-8 text.
    #[error("SDP body is not UTF-8 text")]
    NotUtf8,
    /// A mandatory line is missing or unreadable (e.g. no `o=` line, `v=` other than 0).
    /// The text says what (bounded length; it may quote part of the offending line).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No m-line of the offer can be recorded (no audio stream with a codec we support).
    /// An SRS answers 488 Not Acceptable Here.
    #[error("no usable audio stream in the SDP offer")]
    NoUsableStream,

    // ---- our own call was wrong ----
    /// `local_ports` given to [`crate::answer`] does not have one entry per offered m-line.
    #[error("local_ports has {got} entries but the offer has {expected} m-lines")]
    PortCountMismatch {
        /// Number of m-lines in the offer.
        expected: usize,
        /// Number of entries in `local_ports`.
        got: usize,
    },
    /// The [`crate::AnswerConfig`] (or a local port) is unusable, e.g. an empty codec list
    /// or a local port of 0.
    #[error("invalid SDP answer configuration: {0}")]
    InvalidConfig(&'static str),
}

impl Error {
    /// True when the error is the peer's fault (its SDP), false when it is ours.
    pub fn is_peer_error(&self) -> bool {
        matches!(
            self,
            Error::TooLarge { .. }
                | Error::TooManyMedia { .. }
                | Error::NotUtf8
                | Error::Malformed(_)
                | Error::NoUsableStream
        )
    }
}

/// Longest text we keep in an [`Error::Malformed`] message.
const MAX_MESSAGE: usize = 160;

/// Builds an [`Error::Malformed`] with a message cut to a bounded length.
pub(crate) fn malformed(msg: impl Into<String>) -> Error {
    let mut msg: String = msg.into();
    if msg.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    Error::Malformed(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_messages_are_bounded() {
        let e = malformed("é".repeat(500));
        let Error::Malformed(m) = &e else {
            panic!("wrong variant")
        };
        assert!(m.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(e.is_peer_error());
        assert!(!Error::InvalidConfig("x").is_peer_error());
    }
}
