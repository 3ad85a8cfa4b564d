//! The one error type of this crate.

/// Everything that can go wrong in this crate.
///
/// The first group of variants means *the peer sent something wrong* (answer 400, drop the
/// datagram or close the stream); the second group means *our own code used the API wrongly*
/// (a bug or a race in the transaction user, never caused by bytes from the network alone).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ----- the peer sent something wrong -----
    /// Peer: the message (or the message announced by a stream's Content-Length) is larger
    /// than the limit ([`crate::message::MAX_MESSAGE_SIZE`] or the framer's limit).
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    MessageTooLarge {
        /// Size seen or announced, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// Peer: on a stream, no end of the header section (CRLFCRLF) within the size limit.
    #[error("no end of headers within {max} bytes")]
    HeadersTooLarge {
        /// The limit, in bytes.
        max: usize,
    },
    /// Peer: more header fields than [`crate::message::MAX_HEADERS`].
    #[error("more than {max} header fields")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// Peer: the bytes are not a SIP message we can parse (bad start line, header line
    /// without a colon, invalid header name, not UTF-8, bad start line or Request-URI, ...).
    #[error("malformed SIP message: {0}")]
    Malformed(String),
    /// Peer: a mandatory header is missing (RFC 3261 §8.1.1: Via, From, To, Call-ID, CSeq;
    /// Contact where a dialog needs it).
    #[error("missing mandatory header {0}")]
    MissingHeader(String),
    /// Peer: a header that we need is present but unusable (e.g. `CSeq: abc`).
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Header name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Peer: the body is shorter than Content-Length says (RFC 3261 §18.3).
    #[error("Content-Length is {declared} but the body has only {actual} bytes")]
    ContentLengthMismatch {
        /// The Content-Length value.
        declared: usize,
        /// Body bytes actually present.
        actual: usize,
    },
    /// Peer: no Content-Length on a stream transport, where it is mandatory (RFC 3261 §18.3).
    #[error("Content-Length is missing (mandatory on stream transports)")]
    MissingContentLength,
    /// Peer: a Content-Length value that is not a number, or several different values.
    #[error("invalid Content-Length {0:?}")]
    InvalidContentLength(String),
    /// Peer: a multipart body we cannot split (no boundary, no delimiter, bad part).
    #[error("invalid multipart body: {0}")]
    Multipart(String),
    /// Peer: a multipart body with more parts than the limit.
    #[error("multipart body has more than {max} parts")]
    TooManyParts {
        /// The limit.
        max: usize,
    },

    // ----- our side used the API wrongly -----
    /// Ours: [`crate::transaction::TransactionLayer::respond`] for a transaction that does not
    /// exist (never existed, already terminated, or timed out).
    #[error("no such transaction")]
    UnknownTransaction,
    /// Ours: a response that the transaction cannot send in its state (e.g. a second final
    /// response, a provisional after a final, or a status code outside 100..=699).
    #[error("cannot send a {code} response in transaction state {state}")]
    InvalidState {
        /// Status code of the refused response.
        code: u16,
        /// State of the transaction.
        state: &'static str,
    },
    /// Ours or peer: a dialog cannot be built from these messages (e.g. no To tag in the
    /// response, a Contact that is not a valid sip:/sips: URI).
    #[error("cannot build dialog: {0}")]
    Dialog(String),
}

/// Shortens text taken from the network before it goes into an error message: control
/// characters become spaces and text beyond `max` characters is cut, with `…` to say so.
pub fn excerpt_chars(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// [`excerpt_chars`] at 120 characters, the length of this crate's error messages.
pub(crate) fn excerpt(s: &str) -> String {
    excerpt_chars(s, 120)
}
