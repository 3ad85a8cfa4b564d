//! The SDP samples under `fixtures/sdp/` (see its README), for the tests.

pub(crate) const TWO_STREAMS: &[u8] =
    include_bytes!("../../../fixtures/sdp/two-streams-sendonly.sdp");
pub(crate) const THREE_STREAMS: &[u8] = include_bytes!("../../../fixtures/sdp/three-streams.sdp");
pub(crate) const MIXED_SINGLE: &[u8] = include_bytes!("../../../fixtures/sdp/mixed-single.sdp");
pub(crate) const VIDEO_DECLINED: &[u8] = include_bytes!("../../../fixtures/sdp/video-declined.sdp");
pub(crate) const NO_COMMON_CODEC: &[u8] =
    include_bytes!("../../../fixtures/sdp/no-common-codec.sdp");
pub(crate) const ALL_UNSUPPORTED: &[u8] =
    include_bytes!("../../../fixtures/sdp/all-unsupported.sdp");
pub(crate) const PAUSE_INACTIVE: &[u8] = include_bytes!("../../../fixtures/sdp/pause-inactive.sdp");
pub(crate) const HOLD_ZERO_ADDR: &[u8] = include_bytes!("../../../fixtures/sdp/hold-zero-addr.sdp");
pub(crate) const HOLD_PORT_ZERO: &[u8] = include_bytes!("../../../fixtures/sdp/hold-port-zero.sdp");
pub(crate) const NO_LABELS: &[u8] = include_bytes!("../../../fixtures/sdp/no-labels.sdp");
pub(crate) const SRTP_SDES: &[u8] = include_bytes!("../../../fixtures/sdp/srtp-sdes.sdp");
pub(crate) const IPV6: &[u8] = include_bytes!("../../../fixtures/sdp/ipv6.sdp");
pub(crate) const NO_TIMING: &[u8] = include_bytes!("../../../fixtures/sdp/no-timing.sdp");
pub(crate) const UNKNOWN_PROTO: &[u8] = include_bytes!("../../../fixtures/sdp/unknown-proto.sdp");
pub(crate) const SAME_LABEL: &[u8] = include_bytes!("../../../fixtures/sdp/same-label.sdp");
pub(crate) const MEDIA_LEVEL_CONNECTION: &[u8] =
    include_bytes!("../../../fixtures/sdp/media-level-connection.sdp");

/// Every fixture, with its file name.
pub(crate) const ALL: [(&str, &[u8]); 16] = [
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
