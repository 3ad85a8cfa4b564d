//! SDP parsing: webrtc-sdp on a normalised copy of the body, plus a raw line scan.
//!
//! webrtc-sdp (0.3) is a WebRTC-oriented parser. Fed the raw text of what real SRCs send,
//! it fails or loses information in ways that matter to a recorder:
//!
//! * it drops attributes it does not know, among them `a=crypto` (RFC 4568); its `a=fmtp`
//!   model is WebRTC's, so fmtp values are taken raw from the text (and echoed unchanged);
//! * a missing `t=` line, any `e=`/`p=`/`u=`/`r=`/`z=`/`k=` line, a malformed attribute, or an
//!   `a=ptime` at session level fails the whole body;
//! * an m-line with a transport it does not know (`m=image 0 udptl t38`, `TCP/BFCP`) is dropped
//!   with a warning, so the attributes of that section move to the previous m-line and every
//!   later m-line is renumbered;
//! * an m-line with two spaces between tokens, or a section without any `c=` line, fails.
//!
//! So [`parse`] first splits the body into lines and m-sections itself (that split never
//! fails), then writes a normalised copy holding only the lines this crate reads from
//! webrtc-sdp, each checked with `webrtc_sdp::parse_sdp_line` first: unusable lines are left
//! out, a missing `t=` is added, an m-line webrtc-sdp cannot read is replaced by a placeholder
//! so the m-line count and order stay exact. webrtc-sdp parses that copy; the values it cannot
//! give (`a=crypto`, `a=fmtp`, the raw format list, the transport of a placeholder m-line,
//! session-level `a=ptime`) come from the raw scan.

use std::net::IpAddr;

use webrtc_sdp::address::ExplicitlyTypedAddress;
use webrtc_sdp::attribute_type::{SdpAttribute, SdpAttributeType};
use webrtc_sdp::media_type::SdpMedia;
use webrtc_sdp::{SdpConnection, SdpSession, SdpType};

use crate::error::{malformed, Error};
use crate::types::{Direction, Format, MediaDescription, SessionDescription};

/// Largest SDP body [`parse`] accepts, in bytes. A SIPREC offer is well under 4 KiB.
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// Most m-lines [`parse`] accepts in one body.
pub const MAX_MEDIA: usize = 64;

/// Placeholder for an m-line webrtc-sdp cannot read (the real values come from the raw scan).
const PLACEHOLDER_M_LINE: &str = "m=x-unparsed 0 RTP/AVP 0";
/// Placeholder connection for a section with no usable `c=` when the session has none either.
const PLACEHOLDER_C_LINE: &str = "c=IN IP4 0.0.0.0";
/// webrtc-sdp refuses bodies shorter than this many bytes.
const WEBRTC_MIN_LEN: usize = 51;

/// Attributes copied into the normalised body (all others are read from the raw scan or not
/// needed).
const KEPT_ATTRIBUTES: [&str; 8] = [
    "rtpmap", "label", "sendrecv", "sendonly", "recvonly", "inactive", "rtcp-mux", "ptime",
];

/// Parses an SDP body (an offer or an answer).
///
/// Lenient where real SRCs deviate from RFC 4566 (CRLF or LF line ends, missing `t=`, unknown
/// lines, unknown transports, sections without `c=`), strict on what a recorder needs: an
/// `o=` line and a version of 0. Bounded: at most [`MAX_SDP_LEN`] bytes and [`MAX_MEDIA`]
/// m-lines.
pub fn parse(sdp: &[u8]) -> Result<SessionDescription, Error> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(Error::TooLarge {
            len: sdp.len(),
            limit: MAX_SDP_LEN,
        });
    }
    let text = std::str::from_utf8(sdp).map_err(|_| Error::NotUtf8)?;
    let raw = scan(text)?;
    let norm = normalise(&raw)?;
    let session = webrtc_sdp::parse_sdp(&norm.text, false)
        .map_err(|e| malformed(format!("webrtc-sdp: {e}")))?;
    build(&raw, &norm, &session)
}

/// One `x=value` line of the raw body.
#[derive(Debug, Clone, Copy)]
struct RawLine<'a> {
    /// The type letter, lower case.
    kind: u8,
    /// The value, trimmed.
    value: &'a str,
}

impl<'a> RawLine<'a> {
    /// For an `a=` line, its name (before `:`) and value (after `:`, trimmed; "" if none).
    fn attribute(&self) -> Option<(&'a str, &'a str)> {
        if self.kind != b'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((name, value)) => (name.trim(), value.trim()),
            None => (self.value, ""),
        })
    }
}

/// One m-section of the raw body.
#[derive(Debug)]
struct RawSection<'a> {
    /// The value of the `m=` line.
    m_value: &'a str,
    /// The lines after the `m=` line, up to the next one.
    lines: Vec<RawLine<'a>>,
}

impl<'a> RawSection<'a> {
    fn attributes(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.lines.iter().filter_map(RawLine::attribute)
    }
}

/// The raw body split into session lines and m-sections.
#[derive(Debug)]
struct RawSdp<'a> {
    session: Vec<RawLine<'a>>,
    media: Vec<RawSection<'a>>,
}

/// Splits the body into lines and m-sections. Lines that are not `x=value` are ignored.
fn scan(text: &str) -> Result<RawSdp<'_>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut raw = RawSdp {
        session: Vec::new(),
        media: Vec::new(),
    };
    for line in text.split('\n') {
        let line = line.trim();
        let bytes = line.as_bytes();
        let (Some(&kind), Some(b'=')) = (bytes.first(), bytes.get(1)) else {
            continue;
        };
        if !kind.is_ascii_alphabetic() {
            continue;
        }
        let kind = kind.to_ascii_lowercase();
        let value = line.get(2..).unwrap_or("").trim();
        if kind == b'm' {
            if raw.media.len() >= MAX_MEDIA {
                return Err(Error::TooManyMedia { limit: MAX_MEDIA });
            }
            raw.media.push(RawSection {
                m_value: value,
                lines: Vec::new(),
            });
        } else if let Some(section) = raw.media.last_mut() {
            section.lines.push(RawLine { kind, value });
        } else {
            raw.session.push(RawLine { kind, value });
        }
    }
    Ok(raw)
}

/// What the normaliser did to one m-section.
#[derive(Debug, Clone, Copy, Default)]
struct SectionNote {
    /// The m-line was replaced by [`PLACEHOLDER_M_LINE`].
    placeholder_m: bool,
    /// [`PLACEHOLDER_C_LINE`] was added to the section.
    placeholder_c: bool,
}

/// The normalised body handed to webrtc-sdp.
#[derive(Debug)]
struct Normalised {
    text: String,
    notes: Vec<SectionNote>,
}

/// Collapses runs of whitespace to one space (webrtc-sdp splits m-lines on single spaces).
fn collapse_ws(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether webrtc-sdp reads the line without error.
fn webrtc_accepts(line: &str) -> bool {
    webrtc_sdp::parse_sdp_line(line, 0).is_ok()
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

/// Writes the copy of the body that webrtc-sdp parses (see the module docs).
fn normalise(raw: &RawSdp<'_>) -> Result<Normalised, Error> {
    let mut out = String::with_capacity(512);
    push_line(&mut out, "v=0");
    if let Some(v) = raw.session.iter().find(|l| l.kind == b'v') {
        if v.value != "0" {
            return Err(malformed(format!("unsupported SDP version v={}", v.value)));
        }
    }
    let origin = raw
        .session
        .iter()
        .find(|l| l.kind == b'o')
        .ok_or_else(|| malformed("missing o= line"))?;
    let o_line = format!("o={}", collapse_ws(origin.value));
    if let Err(e) = webrtc_sdp::parse_sdp_line(&o_line, 0) {
        return Err(malformed(format!("bad o= line: {e}")));
    }
    push_line(&mut out, &o_line);
    // The session name is not used; webrtc-sdp needs the line.
    push_line(&mut out, "s=-");
    let session_c = raw
        .session
        .iter()
        .filter(|l| l.kind == b'c')
        .map(|l| format!("c={}", collapse_ws(l.value)))
        .find(|l| webrtc_accepts(l));
    if let Some(c) = &session_c {
        push_line(&mut out, c);
    }
    // webrtc-sdp requires a t= line; its value is not used (SIP sessions use `t=0 0`).
    push_line(&mut out, "t=0 0");
    // Session-level direction: the first one wins (the only session attribute we read
    // through webrtc-sdp; a=ptime there is read from the raw scan).
    if let Some(dir) =
        raw.session
            .iter()
            .filter_map(RawLine::attribute)
            .find_map(|(name, value)| {
                if value.is_empty() {
                    Direction::from_attribute(name)
                } else {
                    None
                }
            })
    {
        push_line(&mut out, &format!("a={dir}"));
    }
    let mut notes = Vec::with_capacity(raw.media.len());
    for section in &raw.media {
        let mut note = SectionNote::default();
        let m_line = format!("m={}", collapse_ws(section.m_value));
        match webrtc_sdp::parse_sdp_line(&m_line, 0) {
            Ok(line) if matches!(line.sdp_type, SdpType::Media(_)) => push_line(&mut out, &m_line),
            _ => {
                note.placeholder_m = true;
                push_line(&mut out, PLACEHOLDER_M_LINE);
            }
        }
        let media_c = section
            .lines
            .iter()
            .filter(|l| l.kind == b'c')
            .map(|l| format!("c={}", collapse_ws(l.value)))
            .find(|l| webrtc_accepts(l));
        match (&media_c, &session_c) {
            (Some(c), _) => push_line(&mut out, c),
            (None, Some(_)) => {}
            (None, None) => {
                note.placeholder_c = true;
                push_line(&mut out, PLACEHOLDER_C_LINE);
            }
        }
        for line in section.lines.iter().filter(|l| l.kind == b'a') {
            let Some((name, _)) = line.attribute() else {
                continue;
            };
            if !KEPT_ATTRIBUTES.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                continue;
            }
            let a_line = format!("a={}", line.value);
            if webrtc_accepts(&a_line) {
                push_line(&mut out, &a_line);
            }
        }
        notes.push(note);
    }
    // Blank lines are skipped by webrtc-sdp but count towards its minimum length.
    while out.len() < WEBRTC_MIN_LEN {
        out.push_str("\r\n");
    }
    Ok(Normalised { text: out, notes })
}

/// The IP address of a `c=` line (`None` for a host name).
fn connection_ip(c: &SdpConnection) -> Option<IpAddr> {
    match &c.address {
        ExplicitlyTypedAddress::Ip(ip) => Some(*ip),
        ExplicitlyTypedAddress::Fqdn { .. } => None,
    }
}

fn direction_of(attribute: &SdpAttribute) -> Option<Direction> {
    match attribute {
        SdpAttribute::Sendrecv => Some(Direction::SendRecv),
        SdpAttribute::Sendonly => Some(Direction::SendOnly),
        SdpAttribute::Recvonly => Some(Direction::RecvOnly),
        SdpAttribute::Inactive => Some(Direction::Inactive),
        _ => None,
    }
}

fn parse_ptime(value: &str) -> Option<u32> {
    value.trim().parse::<u32>().ok()
}

/// Merges webrtc-sdp's session with the raw scan.
fn build(
    raw: &RawSdp<'_>,
    norm: &Normalised,
    session: &SdpSession,
) -> Result<SessionDescription, Error> {
    if session.media.len() != raw.media.len() || norm.notes.len() != raw.media.len() {
        return Err(malformed(format!(
            "m-line count mismatch after normalisation ({} != {})",
            session.media.len(),
            raw.media.len()
        )));
    }
    let origin = &session.origin;
    let origin_address = match &origin.unicast_addr {
        ExplicitlyTypedAddress::Ip(ip) => ip.to_string(),
        ExplicitlyTypedAddress::Fqdn { domain, .. } => domain.clone(),
    };
    let session_direction = session.attribute.iter().find_map(direction_of);
    let session_connection = session.connection.as_ref().and_then(connection_ip);
    let session_ptime = raw
        .session
        .iter()
        .filter_map(RawLine::attribute)
        .find(|(name, _)| name.eq_ignore_ascii_case("ptime"))
        .and_then(|(_, value)| parse_ptime(value));
    let media = session
        .media
        .iter()
        .zip(&raw.media)
        .zip(&norm.notes)
        .enumerate()
        .map(|(index, ((sm, rs), note))| {
            media_description(
                index,
                sm,
                rs,
                *note,
                session_direction,
                session_connection,
                session_ptime,
            )
        })
        .collect();
    Ok(SessionDescription {
        origin_username: origin.username.clone(),
        origin_session_id: origin.session_id,
        origin_version: origin.session_version,
        origin_address,
        media,
    })
}

fn media_description(
    index: usize,
    sm: &SdpMedia,
    rs: &RawSection<'_>,
    note: SectionNote,
    session_direction: Option<Direction>,
    session_connection: Option<IpAddr>,
    session_ptime: Option<u32>,
) -> MediaDescription {
    let mut tokens = rs.m_value.split_whitespace();
    let raw_media = tokens.next().unwrap_or("");
    let raw_port = tokens.next().unwrap_or("");
    let raw_proto = tokens.next().unwrap_or("");
    let format_tokens: Vec<String> = tokens.map(str::to_owned).collect();

    let (media, port, proto) = if note.placeholder_m {
        let port = raw_port
            .split('/')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(0);
        (raw_media.to_ascii_lowercase(), port, raw_proto.to_owned())
    } else {
        (
            sm.get_type().to_string().to_ascii_lowercase(),
            // webrtc-sdp rejects ports above 65535.
            u16::try_from(sm.get_port()).unwrap_or(0),
            sm.get_proto().to_string(),
        )
    };

    let fmtp_of = |pt: u8| -> Option<String> {
        rs.attributes()
            .filter(|(name, _)| name.eq_ignore_ascii_case("fmtp"))
            .find_map(|(_, value)| {
                let (fmt, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
                (fmt.parse::<u8>().ok() == Some(pt)).then(|| params.trim().to_owned())
            })
            .filter(|p| !p.is_empty())
    };
    let mut formats: Vec<Format> = Vec::new();
    for token in &format_tokens {
        let Ok(pt) = token.parse::<u8>() else {
            continue;
        };
        if pt > 127 || formats.iter().any(|f| f.payload_type == pt) {
            continue;
        }
        let rtpmap = sm.get_attributes().iter().find_map(|a| match a {
            SdpAttribute::Rtpmap(r) if r.payload_type == pt => Some(r),
            _ => None,
        });
        let format = match rtpmap {
            Some(r) => Some(Format {
                payload_type: pt,
                encoding: r.codec_name.to_ascii_uppercase(),
                clock_rate: r.frequency,
                channels: r
                    .channels
                    .map_or(1, |c| u8::try_from(c).unwrap_or(u8::MAX).max(1)),
                fmtp: None,
            }),
            None => Format::from_static_payload_type(pt),
        };
        if let Some(mut format) = format {
            format.fmtp = fmtp_of(pt);
            formats.push(format);
        }
    }

    let label = sm.get_attributes().iter().find_map(|a| match a {
        SdpAttribute::Label(l) => Some(l.clone()),
        _ => None,
    });
    let direction = sm
        .get_attributes()
        .iter()
        .find_map(direction_of)
        .or(session_direction)
        .unwrap_or_default();
    let connection = match sm.get_connection() {
        Some(_) if note.placeholder_c => None,
        Some(c) => connection_ip(c),
        None => session_connection,
    };
    let crypto = rs
        .attributes()
        .filter(|(name, _)| name.eq_ignore_ascii_case("crypto"))
        .map(|(_, value)| value.to_owned())
        .collect();
    let rtcp_mux = sm.get_attribute(SdpAttributeType::RtcpMux).is_some();
    let ptime = sm
        .get_attributes()
        .iter()
        .find_map(|a| match a {
            SdpAttribute::Ptime(p) => u32::try_from(*p).ok(),
            _ => None,
        })
        .or(session_ptime);

    MediaDescription {
        index,
        media,
        port,
        proto,
        formats,
        format_tokens,
        label,
        direction,
        connection,
        crypto,
        rtcp_mux,
        ptime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn two_sendonly_streams() {
        let sdp = parse(fixtures::TWO_STREAMS).unwrap();
        assert_eq!(sdp.origin_username, "SRC");
        assert_eq!(sdp.origin_session_id, 2890844526);
        assert_eq!(sdp.origin_version, 2890844526);
        assert_eq!(sdp.origin_address, "198.51.100.1");
        assert_eq!(sdp.media.len(), 2);
        for (i, m) in sdp.media.iter().enumerate() {
            assert_eq!(m.index, i);
            assert_eq!(m.media, "audio");
            assert_eq!(m.proto, "RTP/AVP");
            assert_eq!(m.direction, Direction::SendOnly);
            assert_eq!(m.connection, ip("198.51.100.1"));
            assert_eq!(m.ptime, Some(20));
            assert!(!m.rtcp_mux && m.crypto.is_empty() && !m.is_on_hold());
            assert_eq!(m.format_tokens, ["0", "8", "101"]);
            assert_eq!(
                m.formats,
                vec![Format::pcmu(), Format::pcma(), Format::telephone_event(101)]
            );
        }
        assert_eq!(sdp.media[0].port, 49170);
        assert_eq!(sdp.media[1].port, 49172);
        assert_eq!(sdp.media[0].label.as_deref(), Some("1"));
        assert_eq!(sdp.media[1].label.as_deref(), Some("2"));
        assert_eq!(
            sdp.media[1].remote_rtp_addr(),
            Some("198.51.100.1:49172".parse().unwrap())
        );
    }

    #[test]
    fn lf_only_line_ends_parse_the_same() {
        let crlf = parse(fixtures::TWO_STREAMS).unwrap();
        let text = std::str::from_utf8(fixtures::TWO_STREAMS).unwrap();
        let lf = parse(text.replace("\r\n", "\n").as_bytes()).unwrap();
        assert_eq!(crlf, lf);
    }

    #[test]
    fn static_payload_types_without_rtpmap() {
        let sdp = parse(fixtures::THREE_STREAMS).unwrap();
        assert_eq!(sdp.media.len(), 3);
        // Third m-line lists 9 and 13 with no rtpmap lines.
        let m = &sdp.media[2];
        assert_eq!(m.format_tokens, ["9", "0", "13"]);
        let names: Vec<&str> = m.formats.iter().map(|f| f.encoding.as_str()).collect();
        assert_eq!(names, ["G722", "PCMU", "CN"]);
        assert!(m.formats.iter().all(|f| f.clock_rate == 8000));
    }

    #[test]
    fn hold_by_zero_address_and_by_port_zero() {
        let sdp = parse(fixtures::HOLD_ZERO_ADDR).unwrap();
        assert!(sdp.media.iter().all(|m| m.is_on_hold()));
        assert!(sdp.media.iter().all(|m| m.remote_rtp_addr().is_none()));
        assert_eq!(sdp.media[0].connection, ip("0.0.0.0"));
        assert_eq!(sdp.media[0].direction, Direction::SendOnly);

        let sdp = parse(fixtures::HOLD_PORT_ZERO).unwrap();
        assert_eq!(sdp.media[0].port, 0);
        assert!(sdp.media[0].is_on_hold());
        assert!(!sdp.media[1].is_on_hold());
    }

    #[test]
    fn inactive_pause() {
        let sdp = parse(fixtures::PAUSE_INACTIVE).unwrap();
        assert_eq!(sdp.origin_version, 2890844527);
        assert!(sdp
            .media
            .iter()
            .all(|m| m.direction == Direction::Inactive && m.is_on_hold()));
    }

    #[test]
    fn missing_labels_and_session_level_direction() {
        let sdp = parse(fixtures::NO_LABELS).unwrap();
        assert_eq!(sdp.media.len(), 2);
        assert!(sdp.media.iter().all(|m| m.label.is_none()));
        assert!(sdp.media.iter().all(|m| m.direction == Direction::SendOnly));
    }

    #[test]
    fn crypto_lines_are_kept_raw() {
        let sdp = parse(fixtures::SRTP_SDES).unwrap();
        let m = &sdp.media[0];
        assert_eq!(m.proto, "RTP/SAVP");
        assert!(m.is_srtp());
        assert_eq!(
            m.crypto,
            [
                "1 AES_CM_128_HMAC_SHA1_80 inline:r3RV78ZUL1qoKU6WTgNvGIQV3VMklbTU25c/sHv3|2^20|1:32",
                "2 AES_CM_128_HMAC_SHA1_32 inline:JDdSOSHzVmJxIgNq8IkvpEQXN7cuKIxaEl6RwuqX|2^20|1:32",
            ]
        );
        assert_eq!(sdp.media[1].crypto.len(), 1);
    }

    #[test]
    fn ipv6_addresses() {
        let sdp = parse(fixtures::IPV6).unwrap();
        assert_eq!(sdp.origin_address, "2001:db8::1");
        assert_eq!(sdp.media[0].connection, ip("2001:db8::1"));
        assert_eq!(
            sdp.media[0].remote_rtp_addr(),
            Some("[2001:db8::1]:49170".parse().unwrap())
        );
        // Media-level c= overrides the session level.
        assert_eq!(sdp.media[1].connection, ip("2001:db8::2"));
    }

    #[test]
    fn missing_timing_and_lines_webrtc_sdp_rejects() {
        // No t=, e= and p= lines, unknown attributes, a=ptime at session level, a bad rtpmap,
        // a telephone-event fmtp webrtc-sdp would reformat.
        let sdp = parse(fixtures::NO_TIMING).unwrap();
        assert_eq!(sdp.media.len(), 2);
        let m = &sdp.media[0];
        assert_eq!(m.ptime, Some(30), "session-level ptime");
        assert_eq!(m.label.as_deref(), Some("caller"));
        let te = m.formats.iter().find(|f| f.is_telephone_event()).unwrap();
        assert_eq!(te.fmtp.as_deref(), Some("0-15"));
        // Lower-case encoding name upper-cased; dynamic PT for PCMU.
        assert_eq!(m.formats[0], Format::new(96, "PCMU", 8000));
        assert_eq!(sdp.media[1].ptime, Some(20), "media-level ptime wins");
    }

    #[test]
    fn unknown_transport_keeps_m_line_order() {
        let sdp = parse(fixtures::UNKNOWN_PROTO).unwrap();
        assert_eq!(sdp.media.len(), 3);
        let image = &sdp.media[1];
        assert_eq!(image.index, 1);
        assert_eq!(image.media, "image");
        assert_eq!(image.port, 49300);
        assert_eq!(image.proto, "udptl");
        assert_eq!(image.format_tokens, ["t38"]);
        assert!(image.formats.is_empty());
        // The attributes of the image section did not leak into the audio ones.
        assert_eq!(sdp.media[0].label.as_deref(), Some("1"));
        assert_eq!(sdp.media[2].label.as_deref(), Some("2"));
        assert_eq!(sdp.media[0].direction, Direction::SendOnly);
        assert_eq!(sdp.media[2].port, 49172);
    }

    #[test]
    fn same_label_on_two_m_lines() {
        let sdp = parse(fixtures::SAME_LABEL).unwrap();
        assert_eq!(sdp.media.len(), 2);
        assert!(sdp.media.iter().all(|m| m.label.as_deref() == Some("1")));
    }

    #[test]
    fn media_level_connections_only() {
        // No session c=; a disabled video section has no c= at all.
        let sdp = parse(fixtures::MEDIA_LEVEL_CONNECTION).unwrap();
        assert_eq!(sdp.media[0].connection, ip("192.0.2.20"));
        assert_eq!(sdp.media[1].connection, ip("192.0.2.21"));
        assert_eq!(sdp.media[2].media, "video");
        assert_eq!(sdp.media[2].connection, None);
        assert_eq!(sdp.media[2].port, 0);
    }

    #[test]
    fn mixed_single_stream_with_rtcp_mux() {
        let sdp = parse(fixtures::MIXED_SINGLE).unwrap();
        assert_eq!(sdp.media.len(), 1);
        assert!(sdp.media[0].rtcp_mux);
        assert_eq!(sdp.media[0].label.as_deref(), Some("mixed"));
    }

    #[test]
    fn video_m_line() {
        let sdp = parse(fixtures::VIDEO_DECLINED).unwrap();
        let v = &sdp.media[1];
        assert_eq!(v.media, "video");
        assert_eq!(
            v.formats,
            vec![Format::new(96, "H264", 90000)]
                .into_iter()
                .map(|mut f| {
                    f.fmtp = Some("profile-level-id=42e01f;packetization-mode=1".into());
                    f
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn rejects_what_a_recorder_cannot_use() {
        assert_eq!(parse(b"\xff\xfe"), Err(Error::NotUtf8));
        let big = vec![b'a'; MAX_SDP_LEN + 1];
        assert!(matches!(parse(&big), Err(Error::TooLarge { .. })));
        assert!(matches!(parse(b""), Err(Error::Malformed(_))));
        assert!(matches!(
            parse(b"v=0\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n"),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            parse(b"v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            parse(b"v=0\r\no=- x 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"),
            Err(Error::Malformed(_))
        ));
        let mut many = String::from(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n",
        );
        for _ in 0..=MAX_MEDIA {
            many.push_str("m=audio 4000 RTP/AVP 0\r\n");
        }
        assert_eq!(
            parse(many.as_bytes()),
            Err(Error::TooManyMedia { limit: MAX_MEDIA })
        );
    }

    #[test]
    fn minimal_and_odd_bodies() {
        // Shorter than webrtc-sdp's minimum, no media.
        let sdp = parse(b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n").unwrap();
        assert!(sdp.media.is_empty());
        // Garbage lines, an m-line with extra spaces and a port webrtc-sdp refuses.
        let sdp = parse(
            b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\nhello\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
              m=audio   4000  RTP/AVP  0\r\nm=audio 70000 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert_eq!(sdp.media.len(), 2);
        assert_eq!(sdp.media[0].port, 4000);
        assert_eq!(sdp.media[0].formats, vec![Format::pcmu()]);
        assert_eq!(sdp.media[1].port, 0);
    }

    #[test]
    fn webrtc_sdp_alone_fails_on_these_fixtures() {
        // Why the normaliser exists: raw webrtc-sdp on real-SRC bodies.
        let raw = |b: &[u8]| webrtc_sdp::parse_sdp(std::str::from_utf8(b).unwrap(), false);
        assert!(
            raw(fixtures::NO_TIMING).is_err(),
            "no t=, e=, p=, session ptime"
        );
        assert!(
            raw(fixtures::MEDIA_LEVEL_CONNECTION).is_err(),
            "section without c="
        );
        // The udptl m-line is dropped: 2 m-lines instead of 3, attributes moved.
        assert_eq!(raw(fixtures::UNKNOWN_PROTO).unwrap().media.len(), 2);
        // a=crypto is dropped silently.
        let srtp = raw(fixtures::SRTP_SDES).unwrap();
        assert!(srtp.media[0]
            .get_attributes()
            .iter()
            .all(|a| !a.to_string().starts_with("crypto")));
    }

    #[test]
    fn mangled_fixtures_never_panic() {
        // Deterministic xorshift mutations: byte flips, inserted separators, deletions.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const NOISE: &[u8] = b" =:/\r\n0123456789amcotv-*\xff";
        for (_, body) in fixtures::ALL {
            for _ in 0..300 {
                let mut b = body.to_vec();
                for _ in 0..(1 + next() % 6) {
                    let at = (next() % b.len() as u64) as usize;
                    let noise = NOISE[(next() % NOISE.len() as u64) as usize];
                    match next() % 3 {
                        0 => b[at] = noise,
                        1 => b.insert(at, noise),
                        _ => {
                            b.remove(at);
                        }
                    }
                }
                let _ = parse(&b);
            }
        }
    }

    #[test]
    fn every_prefix_of_every_fixture_is_handled() {
        for (name, body) in fixtures::ALL {
            for len in 0..=body.len() {
                let _ = parse(&body[..len]);
            }
            assert!(parse(body).is_ok(), "{name}");
        }
    }
}
