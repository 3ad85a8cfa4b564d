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
mod tests;
