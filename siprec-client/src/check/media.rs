//! RTP to the answered ports ([`Group::Media`](super::Group::Media)): `audio`.

use std::time::Duration;

use siprec_sdp::{Direction, SessionDescription};
use siprec_sip::rsip::Method;

use super::probe::{secs, Probe};
use super::session::RsSession;
use super::{Check, Run};

/// `audio`: streams PCMU for `d` on every leg the `answer` accepted, watching for ICMP
/// errors (a closed port), a BYE from the SRS, and RTCP reports. Skipped without an answer.
pub(super) async fn audio<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    s: &RsSession,
    answer: Option<&SessionDescription>,
    d: Duration,
) {
    run.begin(Check::Audio);
    let Some(answer) = answer else {
        return run.skip(Check::Audio, "no SDP answer: no address to send RTP to");
    };
    let dests: Vec<_> = answer
        .media
        .iter()
        .map(|m| {
            m.remote_rtp_addr()
                .filter(|_| m.direction != Direction::Inactive)
        })
        .collect();
    let legs: Vec<_> = s
        .legs
        .iter()
        .zip(dests.iter())
        .filter_map(|(l, d)| d.map(|d| (l, d)))
        .collect();
    if legs.is_empty() {
        run.warn(
            Check::Audio,
            "at least one stream accepted for recording (recvonly with an address and port)",
            "every stream inactive or declined: nothing would be recorded",
        );
        return;
    }
    // Linux reports an ICMP port-unreachable only to a connected UDP socket.
    for (leg, dest) in &legs {
        if let Err(e) = leg.rtp.connect(*dest).await {
            run.fail(
                Check::Audio,
                format!("RTP to {dest}"),
                format!("cannot send: {e}"),
            );
            return;
        }
    }
    let byes_before = probe.srs_requests(&s.call_id, Method::Bye);
    let stream = async {
        let mut refused = 0u32;
        let mut rtcp = 0u32;
        let mut sent = 0u32;
        let frames = (d.as_millis() / 20) as u32;
        let start = tokio::time::Instant::now();
        let payload = [0xFFu8; 160]; // PCMU silence-level samples: content does not matter here
        let mut pkt = [0u8; 12 + 160];
        let mut buf = [0u8; 1500];
        for k in 0..frames {
            tokio::time::sleep_until(start + Duration::from_millis(20 * k as u64)).await;
            for (i, (leg, dest)) in legs.iter().enumerate() {
                let header = siprec_rtp::RtpHeader {
                    marker: k == 0,
                    payload_type: 0,
                    sequence: k as u16,
                    timestamp: k * 160,
                    ssrc: 0x5eed_0000 + i as u32,
                };
                let n = siprec_rtp::write(&header, &payload, &mut pkt).unwrap_or(0);
                let _ = dest;
                match leg.rtp.send(&pkt[..n]).await {
                    Ok(_) => sent += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
                    Err(_) => {}
                }
                while let Ok((_, _)) = leg.rtcp.try_recv_from(&mut buf) {
                    rtcp += 1;
                }
                // A closed port shows up as an error on the socket's next operation.
                if let Err(e) = leg.rtp.try_recv(&mut buf) {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        refused += 1;
                    }
                }
            }
        }
        (sent, refused, rtcp)
    };
    let ((sent, refused, rtcp), ()) = tokio::join!(stream, probe.idle(d));
    let byes = probe.srs_requests(&s.call_id, Method::Bye) - byes_before;
    let seen = format!(
        "{sent} packets to {} stream(s) in {}, {refused} ICMP errors, {byes} BYE from the SRS, {}",
        legs.len(),
        secs(d),
        if rtcp > 0 {
            format!("{rtcp} RTCP packets from the SRS")
        } else {
            "no RTCP from the SRS".into()
        }
    );
    if refused > 0 || byes > 0 {
        run.fail(
            Check::Audio,
            "RTP taken on the answered ports: no ICMP port-unreachable, no BYE",
            seen,
        );
    } else {
        run.pass(Check::Audio, seen);
    }
}
