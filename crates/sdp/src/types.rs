//! The parsed view of an SDP body that a recording server and client need.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Media direction of a stream (RFC 3264 §5.1), from the point of view of the side that
/// wrote the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`, also the default when no direction attribute is present.
    #[default]
    SendRecv,
    /// `a=sendonly`: the writer only sends (what an SRC offers for a recorded stream).
    SendOnly,
    /// `a=recvonly`: the writer only receives (what an SRS answers for a recorded stream).
    RecvOnly,
    /// `a=inactive`: neither (pause).
    Inactive,
}

impl Direction {
    /// The attribute name, e.g. `"sendonly"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// True when the writer of the SDP sends media in this direction (sendrecv, sendonly).
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Parses an attribute name (`sendrecv`, `sendonly`, `recvonly`, `inactive`),
    /// ignoring ASCII case.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One RTP payload format of an m-line: payload type plus its `a=rtpmap` / `a=fmtp` data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Format {
    /// RTP payload type (0..=127).
    pub payload_type: u8,
    /// Encoding name in upper case, e.g. `"PCMU"`, `"TELEPHONE-EVENT"`.
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Number of audio channels (1 when the rtpmap does not say).
    pub channels: u8,
    /// The `a=fmtp` parameters for this payload type, as written (e.g. `"0-16"`).
    pub fmtp: Option<String>,
}

impl Format {
    /// A format with the given payload type, encoding (stored upper case), clock rate,
    /// one channel and no fmtp.
    pub fn new(payload_type: u8, encoding: &str, clock_rate: u32) -> Format {
        Format {
            payload_type,
            encoding: encoding.to_ascii_uppercase(),
            clock_rate,
            channels: 1,
            fmtp: None,
        }
    }

    /// G.711 µ-law, static payload type 0.
    pub fn pcmu() -> Format {
        Format::new(0, "PCMU", 8000)
    }

    /// G.711 A-law, static payload type 8.
    pub fn pcma() -> Format {
        Format::new(8, "PCMA", 8000)
    }

    /// G.722, static payload type 9: `G722/8000` although the audio is 16 kHz (RFC 3551
    /// §4.5.2).
    pub fn g722() -> Format {
        Format::new(9, "G722", 8000)
    }

    /// Opus on a dynamic payload type: `opus/48000/2` as RFC 7587 §7 requires (the stream may
    /// still be mono).
    pub fn opus(payload_type: u8) -> Format {
        Format {
            channels: 2,
            ..Format::new(payload_type, "opus", 48000)
        }
    }

    /// The format an SRC offers for a codec name (`PCMU`, `PCMA`, `G722`, `opus` on payload
    /// type 111), if known.
    pub fn for_codec(name: &str) -> Option<Format> {
        let n = name.trim();
        if n.eq_ignore_ascii_case("PCMU") {
            Some(Format::pcmu())
        } else if n.eq_ignore_ascii_case("PCMA") {
            Some(Format::pcma())
        } else if n.eq_ignore_ascii_case("G722") {
            Some(Format::g722())
        } else if n.eq_ignore_ascii_case("opus") {
            Some(Format::opus(111))
        } else {
            None
        }
    }

    /// RFC 4733 telephone-event at 8 kHz on a dynamic payload type, with `fmtp` `0-16`.
    pub fn telephone_event(payload_type: u8) -> Format {
        Format {
            fmtp: Some("0-16".to_owned()),
            ..Format::new(payload_type, "telephone-event", 8000)
        }
    }

    /// The static payload types (RFC 3551 §6) that an offer may use without an `a=rtpmap`:
    /// 0 PCMU, 3 GSM, 4 G723, 8 PCMA, 9 G722, 13 CN, 18 G729, all with an 8000 Hz RTP clock.
    pub fn from_static_payload_type(payload_type: u8) -> Option<Format> {
        let encoding = match payload_type {
            0 => "PCMU",
            3 => "GSM",
            4 => "G723",
            8 => "PCMA",
            9 => "G722",
            13 => "CN",
            18 => "G729",
            _ => return None,
        };
        Some(Format::new(payload_type, encoding, 8000))
    }

    /// True for RFC 4733 `telephone-event` (DTMF), which carries no audio.
    pub fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
    }

    /// True for comfort noise (`CN`).
    pub fn is_comfort_noise(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("CN")
    }

    /// The value of this format's `a=rtpmap` attribute, e.g. `"0 PCMU/8000"`; the channel
    /// count is only written when it is not 1. The encoding is written in its usual case
    /// (`telephone-event`, `opus`; others upper case).
    pub fn rtpmap_value(&self) -> String {
        let name = sdp_encoding_name(&self.encoding);
        if self.channels > 1 {
            format!(
                "{} {}/{}/{}",
                self.payload_type, name, self.clock_rate, self.channels
            )
        } else {
            format!("{} {}/{}", self.payload_type, name, self.clock_rate)
        }
    }
}

/// The spelling we print for an encoding name: encoding names are case-insensitive, but
/// some endpoints compare `telephone-event` and `opus` literally.
fn sdp_encoding_name(encoding: &str) -> String {
    if encoding.eq_ignore_ascii_case("telephone-event") || encoding.eq_ignore_ascii_case("opus") {
        encoding.to_ascii_lowercase()
    } else {
        encoding.to_ascii_uppercase()
    }
}

/// True for encodings that carry audio samples; false for the payload formats that ride
/// alongside audio without being audio themselves: `telephone-event` (RFC 4733), `CN`
/// (comfort noise), `red`, `rtx`, `ulpfec`, `flexfec`.
pub fn is_audio_codec(encoding: &str) -> bool {
    const NOT_AUDIO: [&str; 6] = ["TELEPHONE-EVENT", "CN", "RED", "RTX", "ULPFEC", "FLEXFEC"];
    !encoding.is_empty() && !NOT_AUDIO.iter().any(|n| n.eq_ignore_ascii_case(encoding))
}

/// One `m=` section of an SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Position of the m-line in the SDP, from 0.
    pub index: usize,
    /// Media type, lower case: `"audio"`, `"video"`, `"image"`, …
    pub media: String,
    /// Transport port of the m-line (0 = stream disabled).
    pub port: u16,
    /// Transport protocol as offered, e.g. `"RTP/AVP"`, `"RTP/SAVP"`, `"udptl"`.
    pub proto: String,
    /// The payload formats we could identify (from `a=rtpmap`, or the static payload type
    /// table), in offer order. Payload types without an rtpmap and outside the static table
    /// are left out (see [`MediaDescription::format_tokens`] for the raw list).
    pub formats: Vec<Format>,
    /// The raw `<fmt>` tokens of the m-line, in order (used to echo a format when declining).
    pub format_tokens: Vec<String>,
    /// `a=label` (RFC 4574), which ties the m-line to a `<stream>` of the recording metadata.
    pub label: Option<String>,
    /// Media-level direction attribute, else the session-level one, else sendrecv.
    pub direction: Direction,
    /// Media-level `c=` address, else the session-level one. `None` when absent, or when it is
    /// a host name rather than an IP address.
    pub connection: Option<IpAddr>,
    /// The raw values of the `a=crypto` attributes (RFC 4568 SDES), e.g.
    /// `"1 AES_CM_128_HMAC_SHA1_80 inline:…"`.
    pub crypto: Vec<String>,
    /// `a=rtcp-mux` present (RTP and RTCP share the port).
    pub rtcp_mux: bool,
    /// `a=ptime` in milliseconds (media level, else session level).
    pub ptime: Option<u32>,
}

impl MediaDescription {
    /// True when the stream is on hold or disabled: `a=inactive`, a connection address of
    /// `0.0.0.0` / `::` (the old RFC 2543 hold, RFC 3264 §8.4), or port 0.
    pub fn is_on_hold(&self) -> bool {
        self.direction == Direction::Inactive
            || self.port == 0
            || self.connection.is_some_and(|ip| ip.is_unspecified())
    }

    /// Where the peer receives RTP for this stream (and, for a sendonly stream, where it
    /// wants RTCP reports). `None` when the port is 0 or the address is missing, a host
    /// name, or unspecified (`0.0.0.0` / `::`).
    pub fn remote_rtp_addr(&self) -> Option<SocketAddr> {
        let ip = self.connection?;
        if self.port == 0 || ip.is_unspecified() {
            return None;
        }
        Some(SocketAddr::new(ip, self.port))
    }

    /// The format with this payload type, if the m-line has it.
    pub fn format(&self, payload_type: u8) -> Option<&Format> {
        self.formats.iter().find(|f| f.payload_type == payload_type)
    }

    /// True when the profile is secure RTP (`RTP/SAVP`, `RTP/SAVPF`).
    pub fn is_srtp(&self) -> bool {
        let p = self.proto.to_ascii_uppercase();
        p == "RTP/SAVP" || p == "RTP/SAVPF"
    }
}

/// A parsed SDP body: the origin and the m-lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` user name.
    pub origin_username: String,
    /// `o=` session id.
    pub origin_session_id: u64,
    /// `o=` session version; an SRC bumps it on each new offer (pause, resume, …).
    pub origin_version: u64,
    /// `o=` unicast address (an IP address or a host name), as written.
    pub origin_address: String,
    /// The m-lines, in order.
    pub media: Vec<MediaDescription>,
}

/// The first format of an m-line that is actual audio (not telephone-event, comfort noise,
/// …): in an answer, the codec the answerer picked.
pub fn negotiated_format(answer_media: &MediaDescription) -> Option<&Format> {
    answer_media
        .formats
        .iter()
        .find(|f| is_audio_codec(&f.encoding))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(port: u16, conn: Option<IpAddr>, dir: Direction) -> MediaDescription {
        MediaDescription {
            index: 0,
            media: "audio".into(),
            port,
            proto: "RTP/AVP".into(),
            formats: vec![Format::pcmu()],
            format_tokens: vec!["0".into()],
            label: None,
            direction: dir,
            connection: conn,
            crypto: vec![],
            rtcp_mux: false,
            ptime: None,
        }
    }

    #[test]
    fn direction_names_round_trip() {
        for d in [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            assert_eq!(Direction::from_attribute(d.as_str()), Some(d));
            assert_eq!(
                Direction::from_attribute(&d.to_string().to_uppercase()),
                Some(d)
            );
        }
        assert_eq!(Direction::from_attribute("label"), None);
        assert!(Direction::SendOnly.sends() && !Direction::RecvOnly.sends());
    }

    #[test]
    fn hold_and_remote_address() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let m = media(4000, Some(ip), Direction::SendOnly);
        assert!(!m.is_on_hold());
        assert_eq!(m.remote_rtp_addr(), Some("192.0.2.1:4000".parse().unwrap()));
        assert!(media(0, Some(ip), Direction::SendOnly).is_on_hold());
        assert!(media(4000, Some(ip), Direction::Inactive).is_on_hold());
        let zero = media(4000, Some("0.0.0.0".parse().unwrap()), Direction::SendOnly);
        assert!(zero.is_on_hold());
        assert_eq!(zero.remote_rtp_addr(), None);
        let zero6 = media(4000, Some("::".parse().unwrap()), Direction::SendOnly);
        assert!(zero6.is_on_hold());
        assert_eq!(
            media(4000, None, Direction::SendOnly).remote_rtp_addr(),
            None
        );
    }

    #[test]
    fn format_helpers() {
        assert_eq!(Format::pcmu().rtpmap_value(), "0 PCMU/8000");
        assert_eq!(
            Format::telephone_event(101).rtpmap_value(),
            "101 telephone-event/8000"
        );
        let opus = Format {
            channels: 2,
            ..Format::new(111, "opus", 48000)
        };
        assert_eq!(opus.encoding, "OPUS");
        assert_eq!(opus.rtpmap_value(), "111 opus/48000/2");
        assert_eq!(
            Format::from_static_payload_type(9).unwrap().encoding,
            "G722"
        );
        assert_eq!(Format::from_static_payload_type(96), None);
        assert!(is_audio_codec("PCMU") && is_audio_codec("opus"));
        assert!(!is_audio_codec("telephone-event") && !is_audio_codec("CN"));
        assert!(!is_audio_codec(""));
    }

    #[test]
    fn negotiated_format_skips_events_and_noise() {
        let mut m = media(4000, None, Direction::RecvOnly);
        m.formats = vec![
            Format::telephone_event(101),
            Format::from_static_payload_type(13).unwrap(),
            Format::pcma(),
        ];
        assert_eq!(negotiated_format(&m), Some(&Format::pcma()));
        m.formats.truncate(2);
        assert_eq!(negotiated_format(&m), None);
    }
}
