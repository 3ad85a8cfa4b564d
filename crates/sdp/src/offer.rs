//! The SRC side: building the recording-session offer.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::types::{Direction, Format};

/// One recorded stream of an offer: one `m=audio` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferStream {
    /// Our RTP port for the stream (where RTCP reports come back to).
    pub port: u16,
    /// `a=label` (RFC 4574): the `<stream><label>` of the recording metadata.
    pub label: Option<String>,
    /// `SendOnly` to record, `Inactive` to pause.
    pub direction: Direction,
    /// The payload formats offered, in order of preference; each gets an `a=rtpmap` (and an
    /// `a=fmtp` when it has one).
    pub payload_types: Vec<Format>,
    /// Offer `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// Raw `a=crypto` values (RFC 4568 SDES). When non-empty the transport is `RTP/SAVP`,
    /// else `RTP/AVP`.
    pub crypto: Vec<String>,
}

impl OfferStream {
    /// A sendonly audio stream offering PCMU, PCMA and telephone-event (payload type 101).
    pub fn audio(port: u16, label: impl Into<String>) -> OfferStream {
        OfferStream {
            port,
            label: Some(label.into()),
            direction: Direction::SendOnly,
            payload_types: vec![Format::pcmu(), Format::pcma(), Format::telephone_event(101)],
            rtcp_mux: false,
            crypto: Vec::new(),
        }
    }
}

/// Builds the SDP offer of a recording session (one `m=audio` per recorded stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferBuilder {
    /// `o=` user name (default `"-"`).
    pub username: String,
    /// Our media address, written in `o=` and `c=`.
    pub origin_ip: IpAddr,
    /// `o=` session id (the same for the whole dialog).
    pub session_id: u64,
    /// `o=` session version: bump it for every new offer (pause, resume, …).
    pub session_version: u64,
    /// `a=ptime` written on every m-line (default 20 ms; `None` = no `a=ptime`).
    pub ptime: Option<u32>,
}

impl OfferBuilder {
    /// A builder with user name `-` and ptime 20.
    pub fn new(origin_ip: IpAddr, session_id: u64, session_version: u64) -> OfferBuilder {
        OfferBuilder {
            username: "-".to_owned(),
            origin_ip,
            session_id,
            session_version,
            ptime: Some(20),
        }
    }

    /// The offer text (CRLF line ends).
    pub fn build(&self, streams: &[OfferStream]) -> String {
        let ip = self.origin_ip;
        let addr_type = match ip {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        };
        let username = token(&self.username);
        let username = if username.is_empty() { "-" } else { &username };
        let mut out = String::with_capacity(128 + 256 * streams.len());
        let mut line = |args: std::fmt::Arguments<'_>| {
            let _ = out.write_fmt(args);
            out.push_str("\r\n");
        };
        line(format_args!("v=0"));
        line(format_args!(
            "o={username} {} {} IN {addr_type} {ip}",
            self.session_id, self.session_version
        ));
        line(format_args!("s=-"));
        line(format_args!("c=IN {addr_type} {ip}"));
        line(format_args!("t=0 0"));
        for s in streams {
            let proto = if s.crypto.is_empty() {
                "RTP/AVP"
            } else {
                "RTP/SAVP"
            };
            let mut pts = String::new();
            for f in &s.payload_types {
                let _ = write!(pts, " {}", f.payload_type);
            }
            if pts.is_empty() {
                // RFC 4566 requires at least one format.
                pts.push_str(" 0");
            }
            line(format_args!("m=audio {} {proto}{pts}", s.port));
            for f in &s.payload_types {
                line(format_args!("a=rtpmap:{}", f.rtpmap_value()));
                if let Some(fmtp) = &f.fmtp {
                    line(format_args!("a=fmtp:{} {}", f.payload_type, one_line(fmtp)));
                }
            }
            for c in &s.crypto {
                line(format_args!("a=crypto:{}", one_line(c)));
            }
            if let Some(label) = &s.label {
                let label = token(label);
                if !label.is_empty() {
                    line(format_args!("a=label:{label}"));
                }
            }
            if let Some(ptime) = self.ptime {
                line(format_args!("a=ptime:{ptime}"));
            }
            if s.rtcp_mux {
                line(format_args!("a=rtcp-mux"));
            }
            line(format_args!("a={}", s.direction));
        }
        out
    }
}

/// The offer for `streams`, with user name `-` and ptime 20 (see [`OfferBuilder`]).
pub fn build_offer(
    origin_ip: IpAddr,
    session_id: u64,
    session_version: u64,
    streams: &[OfferStream],
) -> String {
    OfferBuilder::new(origin_ip, session_id, session_version).build(streams)
}

/// `s` without whitespace or control characters (for single-token fields).
fn token(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect()
}

/// `s` without control characters (so a value cannot break the line structure).
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{answer, recordable, AnswerConfig};
    use crate::parse::parse;
    use crate::types::negotiated_format;

    fn ip() -> IpAddr {
        "198.51.100.1".parse().unwrap()
    }

    #[test]
    fn exact_text_of_a_two_stream_offer() {
        let text = build_offer(
            ip(),
            42,
            1,
            &[OfferStream::audio(4000, "1"), OfferStream::audio(4002, "2")],
        );
        let expected = "v=0\r\n\
o=- 42 1 IN IP4 198.51.100.1\r\n\
s=-\r\n\
c=IN IP4 198.51.100.1\r\n\
t=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=label:1\r\n\
a=ptime:20\r\n\
a=sendonly\r\n\
m=audio 4002 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=label:2\r\n\
a=ptime:20\r\n\
a=sendonly\r\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn offer_parses_back() {
        let mut paused = OfferStream::audio(4002, "b");
        paused.direction = Direction::Inactive;
        paused.rtcp_mux = true;
        paused.crypto = vec!["1 AES_CM_128_HMAC_SHA1_80 inline:QUJD|2^20".into()];
        let streams = [OfferStream::audio(4000, "a"), paused];
        let text = OfferBuilder {
            username: "src".into(),
            ..OfferBuilder::new("2001:db8::5".parse().unwrap(), 9, 3)
        }
        .build(&streams);
        let sdp = parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.origin_username, "src");
        assert_eq!((sdp.origin_session_id, sdp.origin_version), (9, 3));
        assert_eq!(sdp.media.len(), 2);
        for (m, s) in sdp.media.iter().zip(&streams) {
            assert_eq!(m.port, s.port);
            assert_eq!(m.label, s.label);
            assert_eq!(m.direction, s.direction);
            assert_eq!(m.formats, s.payload_types);
            assert_eq!(m.rtcp_mux, s.rtcp_mux);
            assert_eq!(m.crypto, s.crypto);
            assert_eq!(m.ptime, Some(20));
            assert_eq!(m.connection, Some("2001:db8::5".parse().unwrap()));
        }
        assert_eq!(sdp.media[1].proto, "RTP/SAVP");
    }

    #[test]
    fn client_offer_server_answer_client_reads_answer() {
        let offer_text = build_offer(
            ip(),
            1,
            1,
            &[OfferStream::audio(4000, "1"), OfferStream::audio(4002, "2")],
        );
        let offer = parse(offer_text.as_bytes()).unwrap();
        let cfg = AnswerConfig::new("192.0.2.10".parse().unwrap(), 77, 1);
        assert_eq!(recordable(&offer, &cfg), [true, true]);
        let (answer_text, _) = answer(&offer, &[Some(30000), Some(30002)], &cfg).unwrap();
        let ans = parse(answer_text.as_bytes()).unwrap();
        for (m, port) in ans.media.iter().zip([30000u16, 30002]) {
            assert_eq!(negotiated_format(m), Some(&Format::pcmu()));
            assert_eq!(m.direction, Direction::RecvOnly);
            assert_eq!(
                m.remote_rtp_addr(),
                Some(std::net::SocketAddr::new(
                    "192.0.2.10".parse().unwrap(),
                    port
                ))
            );
        }
    }

    #[test]
    fn hostile_strings_cannot_break_lines() {
        let mut s = OfferStream::audio(4000, "a\r\nm=video 1 RTP/AVP 0");
        s.payload_types[2].fmtp = Some("0-16\r\na=inactive".into());
        let text = OfferBuilder {
            username: "x y\r\n".into(),
            ptime: None,
            ..OfferBuilder::new(ip(), 1, 1)
        }
        .build(&[s]);
        assert_eq!(text.lines().filter(|l| l.starts_with("m=")).count(), 1);
        assert!(!text.lines().any(|l| l == "a=inactive"));
        assert!(!text.contains("ptime"));
        assert!(text.contains("o=xy 1 1"));
        let sdp = parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.media.len(), 1);
    }

    #[test]
    fn stream_without_formats_still_has_one() {
        let s = OfferStream {
            payload_types: vec![],
            ..OfferStream::audio(4000, "1")
        };
        let text = build_offer(ip(), 1, 1, &[s]);
        assert!(text.contains("m=audio 4000 RTP/AVP 0\r\n"));
    }
}
