//! The SRS side of offer/answer: which offered streams to record, and the answer SDP.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::error::Error;
use crate::types::{is_audio_codec, Direction, Format, MediaDescription, SessionDescription};

/// Why an m-line was declined ([`AnsweredMedia::reason`]).
pub mod decline {
    /// The m-line is not `m=audio` (video, fax, …): a recorder keeps audio only.
    pub const NOT_AUDIO: &str = "not an audio stream";
    /// The offer has port 0 on this m-line (stream disabled or on hold by port 0).
    pub const DISABLED: &str = "stream disabled by the offerer (port 0)";
    /// The transport is not RTP/AVP(F) or RTP/SAVP(F).
    pub const TRANSPORT: &str = "unsupported transport";
    /// `RTP/SAVP` without any `a=crypto` line: we could never decrypt it.
    pub const SRTP_NO_KEYS: &str = "RTP/SAVP offered without a=crypto keys";
    /// `RTP/SAVP` while [`AnswerConfig::srtp`](super::AnswerConfig::srtp) is off: declined
    /// rather than recorded as noise.
    pub const SRTP_UNSUPPORTED: &str = "SRTP (RTP/SAVP) is not enabled on this recorder";
    /// `RTP/AVP` while [`AnswerConfig::require_srtp`](super::AnswerConfig::require_srtp).
    pub const SRTP_REQUIRED: &str = "this recorder requires SRTP (RTP/SAVP)";
    /// `RTP/SAVP` whose `a=crypto` lines offer no usable key (suite, MKI, parameters).
    pub const SRTP_NO_USABLE_KEY: &str =
        "no usable a=crypto (supported: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32; no MKI)";
    /// None of the offered formats is in our codec preference list.
    pub const NO_CODEC: &str = "no supported codec";
    /// The caller gave no local port for this m-line.
    pub const NO_PORT: &str = "no local port allocated";
}

/// How the SRS answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerConfig {
    /// Our media address: written in `o=` and `c=`.
    pub local_ip: IpAddr,
    /// `o=` session id (stays the same for the whole dialog).
    pub session_id: u64,
    /// `o=` session version: bump it for every new answer in the dialog.
    pub session_version: u64,
    /// Encoding names we record, in our order of preference (case-insensitive; an entry may
    /// also be `NAME/RATE`). The codec is still chosen in the offer's order (the offerer's
    /// preference); this list only says what is acceptable. Default `["PCMU", "PCMA"]`.
    pub codecs: Vec<String>,
    /// `o=` user name. Default `"srs"`.
    pub username: String,
    /// Accept `RTP/SAVP` streams with SDES keys: the caller then decrypts the media with the
    /// offer's keys and adds its own `a=crypto` to the answer. Off by default: a recorder
    /// that cannot decrypt must decline SRTP instead of recording ciphertext as audio.
    pub srtp: bool,
    /// Decline `RTP/AVP` streams (only SRTP is recorded).
    pub require_srtp: bool,
    /// Per offered m-line (by index): our own `a=crypto` value for an accepted `RTP/SAVP`
    /// stream (the caller picked one of the offer's lines and made a key with its tag and
    /// suite, RFC 4568 §7.1.2). `None` there declines the stream.
    pub local_crypto: Vec<Option<String>>,
}

impl AnswerConfig {
    /// The default codec preference list.
    pub const DEFAULT_CODECS: [&'static str; 2] = ["PCMU", "PCMA"];

    /// A configuration with the default codecs (`PCMU`, `PCMA`) and user name (`srs`).
    pub fn new(local_ip: IpAddr, session_id: u64, session_version: u64) -> AnswerConfig {
        AnswerConfig {
            local_ip,
            session_id,
            session_version,
            codecs: Self::DEFAULT_CODECS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            username: "srs".to_owned(),
            srtp: false,
            require_srtp: false,
            local_crypto: Vec::new(),
        }
    }

    /// Whether `format` is in the codec preference list.
    fn accepts(&self, format: &Format) -> bool {
        self.codecs.iter().any(|entry| {
            let (name, rate) = match entry.split_once('/') {
                Some((name, rate)) => (name, rate.trim().parse::<u32>().ok()),
                None => (entry.as_str(), None),
            };
            name.trim().eq_ignore_ascii_case(&format.encoding)
                && rate.is_none_or(|r| r == format.clock_rate)
        })
    }
}

/// What the answer says about one offered m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredMedia {
    /// Position of the m-line (same in offer and answer).
    pub index: usize,
    /// True when the m-line is answered with our port (recvonly or inactive); false when it
    /// is declined with port 0.
    pub accepted: bool,
    /// The direction we answered: `RecvOnly` (we record), `Inactive` (paused / deferred, and
    /// for declined m-lines).
    pub direction: Direction,
    /// The codec we chose (accepted m-lines only): the first of the offer's that we take.
    pub format: Option<Format>,
    /// Every audio codec we answered on this m-line, `format` first: the offer's acceptable
    /// codecs with the same RTP clock rate, so the sender may switch among them by payload
    /// type (RFC 3264 §6.1) without a new offer.
    pub formats: Vec<Format>,
    /// Payload type of RFC 4733 telephone-event we accepted alongside, if offered.
    pub telephone_event_pt: Option<u8>,
    /// Payload type of comfort noise (`CN`) we accepted alongside, if offered.
    pub comfort_noise_pt: Option<u8>,
    /// The offer's `a=label`, echoed in the answer.
    pub label: Option<String>,
    /// The offer's address and port for this stream (where the offerer wants RTCP, and for
    /// sendrecv also RTP): see [`MediaDescription::remote_rtp_addr`]. `None` when declined or
    /// when the offer has no usable address (`c=0.0.0.0`).
    pub remote: Option<SocketAddr>,
    /// Why the m-line was declined (one of the [`decline`] texts).
    pub reason: Option<&'static str>,
    /// True when the stream is SRTP (`RTP/SAVP`): the media must be decrypted with the
    /// offer's SDES key the caller chose; the answer carries our own `a=crypto`
    /// ([`AnswerConfig::local_crypto`]).
    pub srtp: bool,
}

/// The formats we answer for an accepted m-line.
#[derive(Debug, Clone)]
struct Choice {
    format: Format,
    /// Further acceptable audio codecs with the same clock rate, in offer order.
    also: Vec<Format>,
    telephone_event: Option<Format>,
    comfort_noise: Option<Format>,
}

/// Decides whether we can record an offered m-line, and with what.
fn choose(m: &MediaDescription, config: &AnswerConfig) -> Result<Choice, &'static str> {
    if !m.media.eq_ignore_ascii_case("audio") {
        return Err(decline::NOT_AUDIO);
    }
    // RFC 3264 §5.1: port 0 means the stream is offered but must not be used.
    if m.port == 0 {
        return Err(decline::DISABLED);
    }
    let proto = m.proto.to_ascii_uppercase();
    match proto.as_str() {
        "RTP/AVP" | "RTP/AVPF" if config.require_srtp => return Err(decline::SRTP_REQUIRED),
        "RTP/AVP" | "RTP/AVPF" => {}
        "RTP/SAVP" | "RTP/SAVPF" if !config.srtp => return Err(decline::SRTP_UNSUPPORTED),
        "RTP/SAVP" | "RTP/SAVPF" if m.crypto.is_empty() => return Err(decline::SRTP_NO_KEYS),
        "RTP/SAVP" | "RTP/SAVPF"
            if config.local_crypto.get(m.index).is_none_or(Option::is_none) =>
        {
            return Err(decline::SRTP_NO_USABLE_KEY)
        }
        "RTP/SAVP" | "RTP/SAVPF" => {}
        _ => return Err(decline::TRANSPORT),
    }
    let format = m
        .formats
        .iter()
        .find(|f| is_audio_codec(&f.encoding) && config.accepts(f))
        .ok_or(decline::NO_CODEC)?;
    let same_clock = |f: &&Format| f.clock_rate == format.clock_rate;
    Ok(Choice {
        format: format.clone(),
        also: m
            .formats
            .iter()
            .filter(|f| *f != format && is_audio_codec(&f.encoding) && config.accepts(f))
            .filter(same_clock)
            .cloned()
            .collect(),
        telephone_event: m
            .formats
            .iter()
            .filter(|f| f.is_telephone_event())
            .find(same_clock)
            .cloned(),
        comfort_noise: m
            .formats
            .iter()
            .filter(|f| f.is_comfort_noise())
            .find(same_clock)
            .cloned(),
    })
}

/// Which m-lines of `offer` we would accept: audio, not disabled (port ≠ 0), RTP/AVP (or
/// SAVP with keys), with a codec from `config.codecs`. Call it before [`answer`] to
/// allocate RTP ports only for those. Inactive (paused) m-lines count: they keep a port
/// so that a resume needs no new one.
pub fn recordable(offer: &SessionDescription, config: &AnswerConfig) -> Vec<bool> {
    offer
        .media
        .iter()
        .map(|m| choose(m, config).is_ok())
        .collect()
}

/// Writes one CRLF-terminated line (writing to a `String` cannot fail).
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
        $out.push_str("\r\n");
    }};
}

fn address_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// Builds the SRS answer to `offer`.
///
/// `local_ports[i]` is the RTP port we allocated for m-line `i` (`None` = decline it); it
/// must have one entry per offered m-line. Rules:
///
/// * RFC 3264 §6: the answer has exactly the offer's m-lines, in the same order; a declined
///   m-line gets port 0 and keeps one of the offer's formats (its first).
/// * RFC 3264 §6.1: a sendonly or sendrecv offer is answered `a=recvonly` (we record it);
///   an `inactive` offer must be answered `inactive`, and we answer a recvonly offer
///   `inactive` too (we never send). Inactive m-lines keep their port, so a resume needs
///   no new port.
/// * The codec is the first of the offer's formats that is in `config.codecs` (the
///   offerer's preference); telephone-event and comfort noise with the same clock rate are
///   accepted alongside when offered. Their `a=fmtp` is echoed.
/// * `a=label` is echoed (it ties the stream to the recording metadata), as are `a=ptime`
///   and `a=rtcp-mux` when offered, and the transport (`RTP/AVP`, `RTP/SAVP`).
/// * `c=` and `o=` carry `config.local_ip`; `s=-`; `t=0 0` (RFC 3264 §6 wants the offer's
///   `t=`, which in SIP is `t=0 0`; another value is not echoed).
///
/// Errors: [`Error::NoUsableStream`] when no m-line is accepted and none is an audio stream
/// merely disabled by the offerer (port 0, which is how some SRCs pause: that answer is
/// all port 0, not an error); [`Error::PortCountMismatch`] and [`Error::InvalidConfig`]
/// for a wrong call.
pub fn answer(
    offer: &SessionDescription,
    local_ports: &[Option<u16>],
    config: &AnswerConfig,
) -> Result<(String, Vec<AnsweredMedia>), Error> {
    if local_ports.len() != offer.media.len() {
        return Err(Error::PortCountMismatch {
            expected: offer.media.len(),
            got: local_ports.len(),
        });
    }
    if config.codecs.is_empty() {
        return Err(Error::InvalidConfig("codec preference list is empty"));
    }
    if config.username.is_empty() || config.username.chars().any(char::is_whitespace) {
        return Err(Error::InvalidConfig(
            "o= user name must be non-empty without whitespace",
        ));
    }
    let ip = config.local_ip;
    let mut out = String::with_capacity(256 + 256 * offer.media.len());
    line!(out, "v=0");
    line!(
        out,
        "o={} {} {} IN {} {}",
        config.username,
        config.session_id,
        config.session_version,
        address_type(ip),
        ip
    );
    line!(out, "s=-");
    line!(out, "c=IN {} {}", address_type(ip), ip);
    line!(out, "t=0 0");

    let mut answered = Vec::with_capacity(offer.media.len());
    let mut usable = false;
    for (m, port) in offer.media.iter().zip(local_ports) {
        let outcome = match (choose(m, config), *port) {
            (Ok(_), Some(0)) => return Err(Error::InvalidConfig("local RTP port 0")),
            (Ok(choice), Some(port)) => Ok((choice, port)),
            (Ok(_), None) => Err(decline::NO_PORT),
            (Err(reason), _) => Err(reason),
        };
        match outcome {
            Ok((choice, port)) => {
                usable = true;
                let crypto = config.local_crypto.get(m.index).cloned().flatten();
                answered.push(write_accepted(
                    &mut out,
                    m,
                    &choice,
                    port,
                    crypto.as_deref(),
                ));
            }
            Err(reason) => {
                usable |= reason == decline::DISABLED;
                write_declined(&mut out, m);
                answered.push(AnsweredMedia {
                    index: m.index,
                    accepted: false,
                    direction: Direction::Inactive,
                    format: None,
                    formats: Vec::new(),
                    telephone_event_pt: None,
                    comfort_noise_pt: None,
                    label: m.label.clone(),
                    remote: None,
                    reason: Some(reason),
                    srtp: m.is_srtp(),
                });
            }
        }
    }
    if !usable {
        return Err(Error::NoUsableStream);
    }
    Ok((out, answered))
}

/// `m=<media> 0 <proto> <first offered format>` (RFC 3264 §6: at least one format must
/// be present; its value is ignored).
fn write_declined(out: &mut String, m: &MediaDescription) {
    let media = if m.media.is_empty() {
        "audio"
    } else {
        &m.media
    };
    let proto = if m.proto.is_empty() {
        "RTP/AVP"
    } else {
        &m.proto
    };
    let fmt = m.format_tokens.first().map_or("0", String::as_str);
    line!(out, "m={media} 0 {proto} {fmt}");
}

fn write_accepted(
    out: &mut String,
    m: &MediaDescription,
    choice: &Choice,
    port: u16,
    crypto: Option<&str>,
) -> AnsweredMedia {
    // RFC 3264 §6.1: sendonly -> recvonly; sendrecv -> we only receive; inactive ->
    // inactive; recvonly (the offerer wants to receive) -> we send nothing: inactive.
    let direction = if m.direction.sends() {
        Direction::RecvOnly
    } else {
        Direction::Inactive
    };
    let formats: Vec<&Format> = std::iter::once(&choice.format)
        .chain(choice.also.iter())
        .chain(choice.telephone_event.as_ref())
        .chain(choice.comfort_noise.as_ref())
        .collect();
    let _ = write!(out, "m=audio {port} {}", m.proto);
    for f in &formats {
        let _ = write!(out, " {}", f.payload_type);
    }
    out.push_str("\r\n");
    for f in &formats {
        line!(out, "a=rtpmap:{}", f.rtpmap_value());
        if let Some(fmtp) = &f.fmtp {
            line!(out, "a=fmtp:{} {}", f.payload_type, fmtp);
        }
    }
    if let Some(label) = &m.label {
        line!(out, "a=label:{label}");
    }
    if let Some(ptime) = m.ptime {
        line!(out, "a=ptime:{ptime}");
    }
    if m.rtcp_mux {
        line!(out, "a=rtcp-mux");
    }
    // RFC 4568 §7.1.2: our own key, with the tag and suite of the offer's line we accept.
    if m.is_srtp() {
        if let Some(c) = crypto {
            line!(out, "a=crypto:{c}");
        }
    }
    line!(out, "a={direction}");
    AnsweredMedia {
        index: m.index,
        accepted: true,
        direction,
        format: Some(choice.format.clone()),
        formats: std::iter::once(&choice.format)
            .chain(choice.also.iter())
            .cloned()
            .collect(),
        telephone_event_pt: choice.telephone_event.as_ref().map(|f| f.payload_type),
        comfort_noise_pt: choice.comfort_noise.as_ref().map(|f| f.payload_type),
        label: m.label.clone(),
        remote: m.remote_rtp_addr(),
        reason: None,
        srtp: m.is_srtp(),
    }
}

#[cfg(test)]
mod tests;
