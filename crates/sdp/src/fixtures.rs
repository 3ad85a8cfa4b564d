//! The SDP samples under `fixtures/sdp/` (see its README), for the tests.

pub const TWO_STREAMS: &[u8] = include_bytes!("../../../fixtures/sdp/two-streams-sendonly.sdp");
pub const THREE_STREAMS: &[u8] = include_bytes!("../../../fixtures/sdp/three-streams.sdp");
pub const MIXED_SINGLE: &[u8] = include_bytes!("../../../fixtures/sdp/mixed-single.sdp");
pub const VIDEO_DECLINED: &[u8] = include_bytes!("../../../fixtures/sdp/video-declined.sdp");
pub const NO_COMMON_CODEC: &[u8] = include_bytes!("../../../fixtures/sdp/no-common-codec.sdp");
pub const ALL_UNSUPPORTED: &[u8] = include_bytes!("../../../fixtures/sdp/all-unsupported.sdp");
pub const PAUSE_INACTIVE: &[u8] = include_bytes!("../../../fixtures/sdp/pause-inactive.sdp");
pub const HOLD_ZERO_ADDR: &[u8] = include_bytes!("../../../fixtures/sdp/hold-zero-addr.sdp");
pub const HOLD_PORT_ZERO: &[u8] = include_bytes!("../../../fixtures/sdp/hold-port-zero.sdp");
pub const NO_LABELS: &[u8] = include_bytes!("../../../fixtures/sdp/no-labels.sdp");
pub const SRTP_SDES: &[u8] = include_bytes!("../../../fixtures/sdp/srtp-sdes.sdp");
pub const IPV6: &[u8] = include_bytes!("../../../fixtures/sdp/ipv6.sdp");
pub const NO_TIMING: &[u8] = include_bytes!("../../../fixtures/sdp/no-timing.sdp");
pub const UNKNOWN_PROTO: &[u8] = include_bytes!("../../../fixtures/sdp/unknown-proto.sdp");
pub const SAME_LABEL: &[u8] = include_bytes!("../../../fixtures/sdp/same-label.sdp");
pub const MEDIA_LEVEL_CONNECTION: &[u8] =
    include_bytes!("../../../fixtures/sdp/media-level-connection.sdp");

/// Every fixture, with its file name.
pub const ALL: [(&str, &[u8]); 16] = [
    ("two-streams-sendonly.sdp", TWO_STREAMS),
    ("three-streams.sdp", THREE_STREAMS),
    ("mixed-single.sdp", MIXED_SINGLE),
    ("video-declined.sdp", VIDEO_DECLINED),
    ("no-common-codec.sdp", NO_COMMON_CODEC),
    ("all-unsupported.sdp", ALL_UNSUPPORTED),
    ("pause-inactive.sdp", PAUSE_INACTIVE),
    ("hold-zero-addr.sdp", HOLD_ZERO_ADDR),
    ("hold-port-zero.sdp", HOLD_PORT_ZERO),
    ("no-labels.sdp", NO_LABELS),
    ("srtp-sdes.sdp", SRTP_SDES),
    ("ipv6.sdp", IPV6),
    ("no-timing.sdp", NO_TIMING),
    ("unknown-proto.sdp", UNKNOWN_PROTO),
    ("same-label.sdp", SAME_LABEL),
    ("media-level-connection.sdp", MEDIA_LEVEL_CONNECTION),
];

#[test]
fn fixtures_use_crlf_line_ends() {
    for (name, body) in ALL {
        let lf = body.iter().filter(|&&b| b == b'\n').count();
        let crlf = body.windows(2).filter(|w| w == b"\r\n").count();
        assert!(lf > 0 && lf == crlf, "{name} must use CRLF line ends");
    }
}
