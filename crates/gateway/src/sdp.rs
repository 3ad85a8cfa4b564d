//! Media anchoring in SDP: every audio stream of a relayed offer or answer is rewritten to
//! point at the gateway (RFC 4566 `c=` and `m=` lines, RFC 3605 `a=rtcp`), and the peer's own
//! media address is read out of it.
//!
//! The rewrite works on the text, line by line, so that everything the gateway does not touch
//! (codecs, `a=fmtp`, `a=crypto`, vendor attributes) reaches the other leg byte for byte.
//! What changes:
//! - the first `m=audio` line with a non-zero port gets our port; `c=` lines that apply to it
//!   (its own, or the session-level one) get our address, except an unspecified address
//!   (`0.0.0.0` / `::`, the RFC 2543 hold of RFC 3264 §8.4), which is kept as it is;
//! - `a=rtcp:` of that stream gets our RTCP port (RTP port + 1) and address;
//! - every other m-line (a second audio stream, video, T.38) gets port 0: the gateway relays
//!   one audio stream and must not let other media bypass it (RFC 3264 §6: a port of 0 rejects
//!   the stream);
//! - ICE attributes (`a=candidate`, `a=ice-*`, `a=end-of-candidates`, `a=remote-candidates`)
//!   are removed: the candidates name the peer's addresses, which the other leg must not use.

use std::net::{IpAddr, SocketAddr};

use siprec_sdp::{negotiated_format, Format, SessionDescription};

use crate::Error;

/// What the gateway needs to know of one side's SDP: where that side receives audio, the
/// codecs it lists, and whether it is secure RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Where this side receives RTP (`None` while on hold with an unspecified address or
    /// port 0).
    pub rtp: Option<SocketAddr>,
    /// Where this side receives RTCP: `a=rtcp` if given, else RTP port + 1, else (rtcp-mux)
    /// the RTP address.
    pub rtcp: Option<SocketAddr>,
    /// The payload formats of the audio m-line, in order.
    pub formats: Vec<Format>,
    /// `RTP/SAVP` or `RTP/SAVPF`: the payload is encrypted end to end.
    pub srtp: bool,
    /// `true` when the stream is on hold (`a=inactive`, unspecified address or port 0).
    pub on_hold: bool,
}

impl MediaInfo {
    /// The first real audio codec of the m-line (what the answerer picked, in an answer).
    pub fn codec(&self) -> Option<&Format> {
        self.formats
            .iter()
            .find(|f| siprec_sdp::is_audio_codec(&f.encoding))
    }
}

/// Reads the audio stream the gateway anchors (the first `m=audio` line) out of `sdp`.
///
/// Errors: [`Error::BadSdp`] when the body is not SDP, [`Error::NoAudio`] when it has no audio
/// m-line at all.
pub fn media_info(sdp: &[u8]) -> Result<MediaInfo, Error> {
    let parsed: SessionDescription =
        siprec_sdp::parse(sdp).map_err(|e| Error::BadSdp(e.to_string()))?;
    let Some(m) = parsed.media.iter().find(|m| m.media == "audio") else {
        return Err(Error::NoAudio);
    };
    let text = String::from_utf8_lossy(sdp);
    let rtp = m.remote_rtp_addr();
    let rtcp = match rtcp_attribute(&text, m.index) {
        Some((port, ip)) => rtp.map(|a| SocketAddr::new(ip.unwrap_or(a.ip()), port)),
        None if m.rtcp_mux => rtp,
        None => rtp.and_then(|a| a.port().checked_add(1).map(|p| SocketAddr::new(a.ip(), p))),
    };
    Ok(MediaInfo {
        rtp,
        rtcp,
        formats: m.formats.clone(),
        srtp: m.is_srtp(),
        on_hold: m.is_on_hold(),
    })
    .map(|mut info: MediaInfo| {
        // An answer lists the chosen codec first; keep the order as written.
        if info.formats.is_empty() {
            info.formats = negotiated_format(m).cloned().into_iter().collect();
        }
        info
    })
}

/// The `a=rtcp:PORT [IN IP4 ADDR]` value of the m-line at `index` (RFC 3605).
fn rtcp_attribute(text: &str, index: usize) -> Option<(u16, Option<IpAddr>)> {
    let mut m = None::<usize>;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("m=") {
            m = Some(m.map_or(0, |i| i + 1));
            continue;
        }
        if m != Some(index) {
            continue;
        }
        if let Some(v) = line.strip_prefix("a=rtcp:") {
            let mut parts = v.split_whitespace();
            let port = parts.next()?.parse().ok()?;
            let ip = parts.nth(2).and_then(|a| a.parse().ok());
            return Some((port, ip));
        }
    }
    None
}

/// Rewrites `sdp` so the anchored audio stream points at `ip`:`port` (RTCP on `port + 1`);
/// see the [module docs](self) for what changes. The result keeps the line ends of the input.
///
/// Errors: [`Error::BadSdp`] for a body that is not UTF-8 or has no `v=` line,
/// [`Error::NoAudio`] when no audio m-line can be anchored.
pub fn anchor(sdp: &[u8], ip: IpAddr, port: u16) -> Result<Vec<u8>, Error> {
    let text = std::str::from_utf8(sdp).map_err(|_| Error::BadSdp("not UTF-8".into()))?;
    if !text.trim_start().starts_with("v=") {
        return Err(Error::BadSdp("no v= line".into()));
    }
    let crlf = text.contains("\r\n");
    let eol = if crlf { "\r\n" } else { "\n" };
    let family = match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    // Which m-line is anchored: the first audio one with a port (or, on hold with port 0,
    // the first audio one at all).
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let audio: Vec<(usize, bool)> = lines
        .iter()
        .filter(|l| l.starts_with("m="))
        .enumerate()
        .filter(|(_, l)| l.starts_with("m=audio "))
        .map(|(i, l)| (i, l.split_whitespace().nth(1) != Some("0")))
        .collect();
    let anchored = audio
        .iter()
        .find(|(_, live)| *live)
        .or(audio.first())
        .map(|(i, _)| *i)
        .ok_or(Error::NoAudio)?;
    let mut out = String::with_capacity(text.len() + 32);
    let mut section: Option<usize> = None;
    let mut session_c_rewritten = false;
    for line in &lines {
        if line.is_empty() {
            continue;
        }
        let mut owned: Option<String> = None;
        if let Some(rest) = line.strip_prefix("m=") {
            section = Some(section.map_or(0, |i| i + 1));
            let mut parts = rest.splitn(3, ' ');
            let (media, old_port, tail) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or("0"),
                parts.next().unwrap_or(""),
            );
            let new_port = if section == Some(anchored) {
                if old_port == "0" || old_port.starts_with("0/") {
                    0
                } else {
                    port
                }
            } else {
                0
            };
            owned = Some(format!("m={media} {new_port} {tail}"));
        } else if let Some(rest) = line.strip_prefix("c=") {
            let applies = match section {
                None => true,
                Some(i) => i == anchored,
            };
            let unspecified = rest
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|a| a.is_unspecified());
            if applies && !unspecified {
                owned = Some(format!("c=IN {family} {ip}"));
                if section.is_none() {
                    session_c_rewritten = true;
                }
            }
        } else if line.starts_with("a=rtcp:") && section == Some(anchored) {
            owned = Some(format!(
                "a=rtcp:{} IN {family} {ip}",
                port.saturating_add(1)
            ));
        } else if is_ice(line) {
            continue;
        } else if let Some(rest) = line.strip_prefix("o=") {
            // The origin address names the host that made the SDP: now ours.
            let parts: Vec<&str> = rest.split(' ').collect();
            if parts.len() == 6 {
                owned = Some(format!(
                    "o={} {} {} IN {family} {ip}",
                    parts[0], parts[1], parts[2]
                ));
            }
        }
        out.push_str(owned.as_deref().unwrap_or(line));
        out.push_str(eol);
    }
    let _ = session_c_rewritten;
    Ok(out.into_bytes())
}

fn is_ice(line: &str) -> bool {
    line.starts_with("a=candidate:")
        || line.starts_with("a=ice-")
        || line.starts_with("a=end-of-candidates")
        || line.starts_with("a=remote-candidates")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\n\
s=-\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtcp:49171 IN IP4 198.51.100.7\r\n\
a=candidate:1 1 UDP 2130706431 10.0.0.7 49170 typ host\r\n\
a=ice-ufrag:abcd\r\n\
a=x-vendor:keep me\r\n\
a=sendrecv\r\n\
m=video 51372 RTP/AVP 96\r\n\
a=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn media_info_reads_address_codecs_and_rtcp() {
        let info = media_info(OFFER.as_bytes()).unwrap();
        assert_eq!(info.rtp, Some("198.51.100.7:49170".parse().unwrap()));
        assert_eq!(info.rtcp, Some("198.51.100.7:49171".parse().unwrap()));
        assert_eq!(info.codec(), Some(&Format::pcmu()));
        assert!(!info.srtp && !info.on_hold);
    }

    #[test]
    fn anchor_rewrites_audio_and_declines_the_rest() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let out = String::from_utf8(anchor(OFFER.as_bytes(), ip, 30000).unwrap()).unwrap();
        assert!(out.contains("\r\nc=IN IP4 192.0.2.1\r\n"), "{out}");
        assert!(
            out.contains("\r\nm=audio 30000 RTP/AVP 0 8 101\r\n"),
            "{out}"
        );
        assert!(
            out.contains("\r\na=rtcp:30001 IN IP4 192.0.2.1\r\n"),
            "{out}"
        );
        assert!(out.contains("\r\nm=video 0 RTP/AVP 96\r\n"), "{out}");
        assert!(out.contains("o=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\n"));
        assert!(out.contains("a=x-vendor:keep me\r\n"));
        assert!(
            !out.contains("candidate") && !out.contains("ice-ufrag"),
            "{out}"
        );
        assert!(!out.contains("198.51.100.7"), "{out}");
        // The rewritten SDP reads back as pointing at the gateway.
        let info = media_info(out.as_bytes()).unwrap();
        assert_eq!(info.rtp, Some("192.0.2.1:30000".parse().unwrap()));
        assert_eq!(info.rtcp, Some("192.0.2.1:30001".parse().unwrap()));
    }

    #[test]
    fn hold_with_an_unspecified_address_stays_on_hold() {
        let hold = OFFER.replace("c=IN IP4 198.51.100.7", "c=IN IP4 0.0.0.0");
        let out = anchor(hold.as_bytes(), "192.0.2.1".parse().unwrap(), 30000).unwrap();
        let info = media_info(&out).unwrap();
        assert!(info.on_hold);
        assert_eq!(info.rtp, None);
        assert!(media_info(hold.as_bytes()).unwrap().rtp.is_none());
    }

    #[test]
    fn ipv6_media_address_and_lf_line_ends() {
        let lf = OFFER.replace("\r\n", "\n");
        let out = anchor(lf.as_bytes(), "2001:db8::1".parse().unwrap(), 30000).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("\nc=IN IP6 2001:db8::1\n") && !out.contains('\r'),
            "{out}"
        );
    }

    #[test]
    fn no_audio_and_not_sdp_are_errors() {
        let video = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n";
        assert!(matches!(
            anchor(video.as_bytes(), "192.0.2.1".parse().unwrap(), 1),
            Err(Error::NoAudio)
        ));
        assert!(matches!(media_info(video.as_bytes()), Err(Error::NoAudio)));
        assert!(matches!(
            anchor(b"hello", "192.0.2.1".parse().unwrap(), 1),
            Err(Error::BadSdp(_))
        ));
        assert!(media_info(b"\xff\xfe").is_err());
    }
}
