//! RTP packet parsing and writing (RFC 3550 §5.1), zero-copy and allocation-free.

use crate::error::Error;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const HEADER_LEN: usize = 12;

/// The RTP version this crate reads and writes.
pub const RTP_VERSION: u8 = 2;

/// The fields of the fixed RTP header that a recorder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RtpHeader {
    /// Marker bit (for audio: first packet of a talkspurt).
    pub marker: bool,
    /// Payload type (0..=127).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp, in units of the payload's clock rate.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// A parsed RTP packet borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The fixed header.
    pub header: RtpHeader,
    /// The payload, after CSRCs and header extension, without padding.
    pub payload: &'a [u8],
}

/// True when the datagram looks like RTCP multiplexed on the RTP port: version 2 and a
/// second octet in 192..=223 (RFC 5761 §4; covers SR 200 … APP 204 and the feedback types).
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf, [b0, b1, ..] if b0 >> 6 == RTP_VERSION && (192..=223).contains(b1))
}

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

/// Parses one RTP datagram without copying.
///
/// RFC 3550 §5.1: version must be 2; the CSRC list (CC × 4 bytes) is skipped; with the X bit,
/// the header extension (RFC 3550 §5.3.1: 4-byte header whose second half is the length in
/// 32-bit words) is skipped; with the P bit, the last octet counts the padding octets
/// (itself included) and they are removed. RTCP multiplexed on the same port (RFC 5761 §4)
/// yields [`Error::Rtcp`] so callers can skip it.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, Error> {
    let truncated = |needed: usize| Error::Truncated {
        needed,
        len: buf.len(),
    };
    let &[b0, b1, ..] = buf else {
        return Err(truncated(HEADER_LEN));
    };
    let version = b0 >> 6;
    if version != RTP_VERSION {
        return Err(Error::BadVersion(version));
    }
    if (192..=223).contains(&b1) {
        return Err(Error::Rtcp { packet_type: b1 });
    }
    let Some(&[_, _, s0, s1, t0, t1, t2, t3, i0, i1, i2, i3]) = buf.first_chunk::<HEADER_LEN>()
    else {
        return Err(truncated(HEADER_LEN));
    };
    let header = RtpHeader {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        sequence: be16([s0, s1]),
        timestamp: be32([t0, t1, t2, t3]),
        ssrc: be32([i0, i1, i2, i3]),
    };
    let has_padding = b0 & 0x20 != 0;
    let has_extension = b0 & 0x10 != 0;
    let csrc_count = usize::from(b0 & 0x0f);

    let mut offset = HEADER_LEN + 4 * csrc_count;
    if buf.len() < offset {
        return Err(truncated(offset));
    }
    if has_extension {
        // RFC 3550 §5.3.1: 16-bit profile-defined value, 16-bit length in 32-bit words
        // (not counting this 4-byte header).
        let Some(&[_, _, l0, l1]) = buf.get(offset..).and_then(|b| b.first_chunk::<4>()) else {
            return Err(truncated(offset + 4));
        };
        offset += 4 + 4 * usize::from(be16([l0, l1]));
        if buf.len() < offset {
            return Err(truncated(offset));
        }
    }
    let mut end = buf.len();
    if has_padding {
        let count = buf.last().copied().unwrap_or(0);
        let available = end - offset;
        if count == 0 || usize::from(count) > available {
            return Err(Error::BadPadding { count, available });
        }
        end -= usize::from(count);
    }
    let payload = buf.get(offset..end).unwrap_or(&[]);
    Ok(RtpPacket { header, payload })
}

/// Writes a packet (12-byte header with no CSRC, extension or padding, then `payload`) into
/// `out`; returns the number of bytes written. Does not allocate.
pub fn write(header: &RtpHeader, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    if header.payload_type > 127 {
        return Err(Error::PayloadTypeOutOfRange(header.payload_type));
    }
    let needed = HEADER_LEN + payload.len();
    let available = out.len();
    let Some(dst) = out.get_mut(..needed) else {
        return Err(Error::BufferTooSmall { needed, available });
    };
    let (head, body) = dst.split_at_mut(HEADER_LEN);
    head[0] = RTP_VERSION << 6;
    head[1] = (u8::from(header.marker) << 7) | header.payload_type;
    head[2..4].copy_from_slice(&header.sequence.to_be_bytes());
    head[4..8].copy_from_slice(&header.timestamp.to_be_bytes());
    head[8..12].copy_from_slice(&header.ssrc.to_be_bytes());
    body.copy_from_slice(payload);
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn write_parse_round_trip() {
        let payload: Vec<u8> = (0..160u8).collect();
        let mut buf = [0u8; 200];
        let n = write(&header(), &payload, &mut buf).unwrap();
        assert_eq!(n, 172);
        assert_eq!(
            &buf[..12],
            &[0x80, 0x88, 0xff, 0xfe, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x78]
        );
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(p.header, header());
        assert_eq!(p.payload, &payload[..]);
        // Empty payload, no marker.
        let h = RtpHeader {
            marker: false,
            payload_type: 127,
            ..header()
        };
        let n = write(&h, &[], &mut buf).unwrap();
        assert_eq!(n, HEADER_LEN);
        assert_eq!(parse(&buf[..n]).unwrap().header, h);
        assert_eq!(parse(&buf[..n]).unwrap().payload, &[] as &[u8]);
    }

    #[test]
    fn write_errors() {
        let mut small = [0u8; 15];
        assert_eq!(
            write(&header(), &[1, 2, 3, 4], &mut small),
            Err(Error::BufferTooSmall {
                needed: 16,
                available: 15
            })
        );
        let bad = RtpHeader {
            payload_type: 128,
            ..header()
        };
        assert_eq!(
            write(&bad, &[], &mut [0u8; 20]),
            Err(Error::PayloadTypeOutOfRange(128))
        );
        assert!(!Error::PayloadTypeOutOfRange(128).is_peer_error());
    }

    /// A packet with 2 CSRCs, a 1-word header extension and 3 bytes of padding around the
    /// payload `[0xaa, 0xbb]`.
    fn full_packet() -> Vec<u8> {
        let mut p = vec![
            0x80 | 0x20 | 0x10 | 2, // V=2, P, X, CC=2
            0x00,                   // PT 0
            0x00,
            0x07, // seq 7
            0x00,
            0x00,
            0x00,
            0xa0, // ts 160
            0x01,
            0x02,
            0x03,
            0x04, // ssrc
        ];
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // CSRCs
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0x55, 0x00, 0x00]); // extension
        p.extend_from_slice(&[0xaa, 0xbb]); // payload
        p.extend_from_slice(&[0x00, 0x00, 0x03]); // padding, count 3
        p
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let buf = full_packet();
        let p = parse(&buf).unwrap();
        assert_eq!(p.payload, &[0xaa, 0xbb]);
        assert_eq!(p.header.sequence, 7);
        assert_eq!(p.header.timestamp, 160);
        assert_eq!(p.header.ssrc, 0x0102_0304);
        assert_eq!(p.header.payload_type, 0);
        assert!(!p.header.marker);
    }

    #[test]
    fn padding_errors() {
        let mut buf = full_packet();
        *buf.last_mut().unwrap() = 0;
        assert!(matches!(
            parse(&buf),
            Err(Error::BadPadding { count: 0, .. })
        ));
        *buf.last_mut().unwrap() = 6; // payload 2 + padding 3 = 5 bytes available
        assert_eq!(
            parse(&buf),
            Err(Error::BadPadding {
                count: 6,
                available: 5
            })
        );
        *buf.last_mut().unwrap() = 5; // everything after the header is padding
        assert_eq!(parse(&buf).unwrap().payload, &[] as &[u8]);
    }

    #[test]
    fn version_and_rtcp() {
        let mut buf = [0u8; 172];
        write(&header(), &[0; 160], &mut buf).unwrap();
        buf[0] = (buf[0] & 0x3f) | (1 << 6);
        assert_eq!(parse(&buf), Err(Error::BadVersion(1)));
        // RTCP receiver report: V=2, RC=1, PT=201.
        let rr = [0x81, 201, 0x00, 0x07, 1, 2, 3, 4, 0, 0, 0, 0];
        assert!(is_rtcp(&rr));
        assert_eq!(parse(&rr), Err(Error::Rtcp { packet_type: 201 }));
        for pt in [200u8, 202, 203, 204, 205, 206, 207] {
            assert_eq!(
                parse(&[0x80, pt, 0, 1, 0, 0, 0, 0]),
                Err(Error::Rtcp { packet_type: pt })
            );
        }
        // Marker set with PT 0..=63 and 96..=127 is RTP.
        assert!(!is_rtcp(&[0x80, 0x80 | 8]));
        assert!(!is_rtcp(&[0x80, 0x80 | 101]));
    }

    #[test]
    fn every_prefix_and_mutation_is_handled() {
        let full = full_packet();
        for len in 0..=full.len() {
            match parse(&full[..len]) {
                Ok(p) => assert!(p.payload.len() <= len),
                Err(e) => assert!(e.is_peer_error()),
            }
        }
        // Short datagrams with every first-octet value.
        for b0 in 0..=255u8 {
            for len in 0..=HEADER_LEN + 4 {
                let mut buf = vec![0u8; len];
                if let Some(x) = buf.first_mut() {
                    *x = b0;
                }
                if let Some(x) = buf.last_mut() {
                    *x = b0;
                }
                let _ = parse(&buf);
            }
        }
        // Huge CSRC count and extension length on a short buffer.
        let mut buf = full.clone();
        buf[0] |= 0x0f;
        assert!(matches!(parse(&buf), Err(Error::Truncated { .. })));
        let mut buf = full;
        buf[22] = 0xff;
        buf[23] = 0xff;
        assert_eq!(
            parse(&buf),
            Err(Error::Truncated {
                needed: 20 + 4 + 4 * 0xffff,
                len: 33
            })
        );
    }
}
