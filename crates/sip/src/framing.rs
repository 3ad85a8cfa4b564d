//! Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3).
//!
//! On a stream, the end of the header section is the first empty line and the body is exactly
//! Content-Length bytes long; Content-Length is mandatory. CRLFs between messages are
//! keep-alives (RFC 5626 §3.5.1 ping `CRLFCRLF`) and are skipped; no pong is produced.
//!
//! The framer never buffers more than it has to: an oversized header section or an oversized
//! Content-Length is reported as soon as it is seen, not after the bytes arrived.

use crate::error::{excerpt, Error};
use crate::message::{expand_compact_name, parse_length, MAX_HEADERS};

/// Splits a byte stream into whole SIP messages.
///
/// Feed bytes with [`StreamFramer::push`] in whatever chunks they arrive, then call
/// [`StreamFramer::next_message`] until it returns `None`. After it returned an error the
/// framer is dead (it drops further input and returns `None`): close the connection.
///
/// ```
/// use siprec_sip::framing::StreamFramer;
/// let mut f = StreamFramer::new(64 * 1024);
/// f.push(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nl: 2\r\n\r\nhi");
/// let msg = f.next_message().unwrap().unwrap();
/// assert!(msg.starts_with(b"OPTIONS") && msg.ends_with(b"hi"));
/// assert!(f.next_message().is_none());
/// ```
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max_message: usize,
    /// Where the search for the end of headers resumes (bytes before it have been scanned).
    scanned: usize,
    /// Line ends seen in the scanned part of the current header section.
    lines: usize,
    /// Total length (headers + body) of the message at the front, once its headers are read.
    pending: Option<usize>,
    /// An error found while pushing, reported by the next `next_message`.
    error: Option<Error>,
    dead: bool,
}

impl StreamFramer {
    /// A framer refusing messages (headers + body) larger than `max_message` bytes.
    pub fn new(max_message: usize) -> StreamFramer {
        StreamFramer {
            buf: Vec::new(),
            max_message: max_message.max(1),
            scanned: 0,
            lines: 0,
            pending: None,
            error: None,
            dead: false,
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes received from the stream. Input after an error is discarded, and so is
    /// input that would grow the buffer beyond twice the message limit (a peer writing faster
    /// than [`StreamFramer::next_message`] is called); the latter is reported as an error.
    pub fn push(&mut self, data: &[u8]) {
        if self.dead || self.error.is_some() {
            return;
        }
        let cap = self.max_message.saturating_mul(2).saturating_add(64 * 1024);
        if self.buf.len().saturating_add(data.len()) > cap {
            self.error = Some(Error::MessageTooLarge {
                size: self.buf.len().saturating_add(data.len()),
                max: self.max_message,
            });
            return;
        }
        self.buf.extend_from_slice(data);
    }

    fn fail(&mut self, e: Error) -> Option<Result<Vec<u8>, Error>> {
        self.dead = true;
        self.buf = Vec::new();
        self.pending = None;
        Some(Err(e))
    }

    /// The next complete message, `None` when more bytes are needed, or an error (oversized
    /// header section or message, header flood, missing or invalid Content-Length) after which
    /// the connection must be closed.
    pub fn next_message(&mut self) -> Option<Result<Vec<u8>, Error>> {
        if let Some(e) = self.error.take() {
            return self.fail(e);
        }
        if self.dead {
            return None;
        }
        if self.pending.is_none() && self.scanned == 0 {
            // Keep-alive CRLFs (RFC 5626 §3.5.1) and stray line ends between messages.
            let skip = self
                .buf
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(self.buf.len());
            if skip > 0 {
                self.buf.drain(..skip);
            }
        }
        if self.buf.is_empty() {
            return None;
        }
        let total = match self.pending {
            Some(total) => total,
            None => {
                let header_end = match self.find_header_end() {
                    Ok(Some(end)) => end,
                    Ok(None) => return None,
                    Err(e) => return self.fail(e),
                };
                let declared = match self.content_length(header_end) {
                    Ok(len) => len,
                    Err(e) => return self.fail(e),
                };
                let total = header_end.saturating_add(declared);
                if total > self.max_message {
                    return self.fail(Error::MessageTooLarge {
                        size: total,
                        max: self.max_message,
                    });
                }
                self.pending = Some(total);
                total
            }
        };
        if self.buf.len() < total {
            return None;
        }
        let rest = self.buf.split_off(total);
        let msg = std::mem::replace(&mut self.buf, rest);
        self.pending = None;
        self.scanned = 0;
        self.lines = 0;
        Some(Ok(msg))
    }

    /// Finds the end of the header section (index just after the empty line), scanning only
    /// bytes not scanned before.
    fn find_header_end(&mut self) -> Result<Option<usize>, Error> {
        let mut i = self.scanned;
        while let Some(&b) = self.buf.get(i) {
            if b == b'\n' {
                self.lines += 1;
                if self.lines > MAX_HEADERS + 1 {
                    return Err(Error::TooManyHeaders { max: MAX_HEADERS });
                }
                let next = self.buf.get(i + 1).copied();
                if next == Some(b'\n') {
                    return Ok(Some(i + 2));
                }
                if next == Some(b'\r') {
                    match self.buf.get(i + 2) {
                        Some(b'\n') => return Ok(Some(i + 3)),
                        Some(_) => {}
                        // "\n\r" at the end: wait for the next byte before deciding.
                        None => {
                            self.scanned = i;
                            self.lines -= 1;
                            return self.check_header_size();
                        }
                    }
                }
                if next.is_none() {
                    self.scanned = i;
                    self.lines -= 1;
                    return self.check_header_size();
                }
            }
            i += 1;
        }
        self.scanned = i;
        self.check_header_size()
    }

    fn check_header_size(&self) -> Result<Option<usize>, Error> {
        if self.buf.len() >= self.max_message {
            Err(Error::HeadersTooLarge {
                max: self.max_message,
            })
        } else {
            Ok(None)
        }
    }

    /// Reads Content-Length (or compact `l`) from the header section `buf[..end]`.
    fn content_length(&self, end: usize) -> Result<usize, Error> {
        let head = self.buf.get(..end).unwrap_or_default();
        let mut found: Option<usize> = None;
        for line in head.split(|&b| b == b'\n').skip(1) {
            if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                continue; // a continuation line, not a header name
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = String::from_utf8_lossy(line.get(..colon).unwrap_or_default());
            let name = name.trim();
            if !expand_compact_name(name).eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            let value = String::from_utf8_lossy(line.get(colon + 1..).unwrap_or_default());
            let len =
                parse_length(&value).ok_or_else(|| Error::InvalidContentLength(excerpt(&value)))?;
            if found.is_some_and(|f| f != len) {
                return Err(Error::InvalidContentLength(
                    "several different values".into(),
                ));
            }
            found = Some(len);
        }
        found.ok_or(Error::MissingContentLength)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Vec<u8> {
        format!(
            "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn drain(f: &mut StreamFramer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(m) = f.next_message() {
            out.push(m.unwrap());
        }
        out
    }

    #[test]
    fn several_messages_in_one_chunk_with_keepalives() {
        let mut wire = b"\r\n\r\n".to_vec();
        wire.extend(msg("one"));
        wire.extend(b"\r\n\r\n\r\n");
        wire.extend(msg(""));
        wire.extend(msg("three\r\n\r\nstill body"));
        let mut f = StreamFramer::new(4096);
        f.push(&wire);
        let got = drain(&mut f);
        assert_eq!(
            got,
            vec![msg("one"), msg(""), msg("three\r\n\r\nstill body")]
        );
        assert_eq!(f.buffered(), 0);
        f.push(b"\r\n\r\n");
        assert!(f.next_message().is_none());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn byte_by_byte() {
        let mut wire = msg("hello");
        wire.extend(b"\r\n\r\n");
        wire.extend(msg("world"));
        let mut f = StreamFramer::new(4096);
        let mut got = Vec::new();
        for b in &wire {
            f.push(std::slice::from_ref(b));
            got.extend(drain(&mut f));
        }
        assert_eq!(got, vec![msg("hello"), msg("world")]);
    }

    #[test]
    fn odd_chunks_and_compact_length_and_lf_only() {
        let one = b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h\nl:3\n\nabc".to_vec();
        let two = msg("xyz");
        let mut wire = one.clone();
        wire.extend(&two);
        for size in 1..wire.len() {
            let mut f = StreamFramer::new(4096);
            let mut got = Vec::new();
            for c in wire.chunks(size) {
                f.push(c);
                got.extend(drain(&mut f));
            }
            assert_eq!(got, vec![one.clone(), two.clone()], "chunk size {size}");
        }
    }

    #[test]
    fn missing_content_length_is_an_error() {
        let mut f = StreamFramer::new(4096);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_message(), Some(Err(Error::MissingContentLength)));
        // Dead afterwards.
        f.push(&msg("x"));
        assert_eq!(f.next_message(), None);
    }

    #[test]
    fn invalid_content_length() {
        let mut f = StreamFramer::new(4096);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 12x\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Some(Err(Error::InvalidContentLength(_)))
        ));
    }

    #[test]
    fn oversized_content_length_fails_before_the_body_arrives() {
        let mut f = StreamFramer::new(1000);
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 999999\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Some(Err(Error::MessageTooLarge { size, max: 1000 })) if size > 999_999
        ));
    }

    #[test]
    fn endless_headers_fail_at_the_limit() {
        let mut f = StreamFramer::new(1000);
        f.push(b"INVITE sip:a@b SIP/2.0\r\n");
        let mut failed = false;
        for _ in 0..100 {
            f.push(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
            match f.next_message() {
                None => {}
                Some(Err(Error::HeadersTooLarge { max: 1000 })) => {
                    failed = true;
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(failed);
        assert!(f.buffered() == 0);
    }

    #[test]
    fn header_flood_fails() {
        let mut f = StreamFramer::new(1 << 20);
        f.push(b"INVITE sip:a@b SIP/2.0\r\n");
        let mut result = None;
        for _ in 0..1000 {
            f.push(b"a:b\r\n");
            if let Some(r) = f.next_message() {
                result = Some(r);
                break;
            }
        }
        assert_eq!(
            result,
            Some(Err(Error::TooManyHeaders { max: MAX_HEADERS }))
        );
    }

    #[test]
    fn pushing_without_draining_is_bounded() {
        let mut f = StreamFramer::new(100);
        for _ in 0..10 {
            f.push(&[b'x'; 100]);
        }
        assert!(f.buffered() <= 100 * 2 + 64 * 1024);
        assert!(matches!(f.next_message(), Some(Err(_))));
    }
}
