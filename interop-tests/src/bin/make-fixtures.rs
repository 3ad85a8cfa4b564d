//! Regenerates the binary media fixtures under `fixtures/rtp/` (deterministic: the same bytes
//! on every run). Run: `cargo run -p interop-tests --bin make-fixtures`.
//!
//! PCMU RTP at 20 ms a packet, for SIPp's `play_pcap_audio`. SIPp sends each packet to the
//! answer's first audio port plus (its destination port minus 6000), so streams to 6000, 6002
//! and 6004 reach the SRS's first, second and third m-line when its ports are consecutive.
//!
//! - `pcmu-440hz-3s.pcap`: 3 s of 440 Hz to 6000 (150 packets).
//! - `pcmu-stereo-3s.pcap`: 3 s of 440 Hz to 6000 and 880 Hz to 6002.
//! - `pcmu-stereo-hold-a.pcap`, `pcmu-stereo-hold-b.pcap`: the first and second 1.5 s of the
//!   stereo capture (sequence numbers and timestamps go on from a to b), to play before a hold
//!   and after the resume.
//! - `pcmu-three-3s.pcap`: 3 s of 440 Hz to 6000, 880 Hz to 6002 and 600 Hz to 6004.
//! - `pcmu-impaired-3s.pcap`: the stereo capture with the 440 Hz stream impaired: packets
//!   40-44 lost, 60/61 and 70/71 swapped, packet 95 sent twice, and from packet 110 on a new
//!   SSRC with a new sequence and timestamp base. The 880 Hz stream is clean.
//! - `pcmu-440hz-6s.pcap`, `pcmu-880hz-6s.pcap`: 6 s of 440 Hz and of 880 Hz to 6000 (300
//!   packets each): the caller's and the callee's audio of a live call through the gateway.
//! - `pcmu-dtmf-3s.pcap`: the stereo capture with an RFC 4733 telephone-event (digit 5,
//!   payload type 101) interleaved in the 440 Hz stream from 1.0 s to 1.2 s: 10 event packets
//!   between the audio packets, then the end packet twice more. Audio is not interrupted.

use interop_tests::pcap::{write_pcap, PcapPacket};
use interop_tests::{audio, fixtures_dir};

/// Packets of a stream, 20 ms each (160 samples at 8 kHz).
const FRAME: u32 = 160;
const FRAME_US: u64 = 20_000;

/// One RTP packet.
fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let header = siprec_rtp::RtpHeader {
        marker,
        payload_type: pt,
        sequence: seq,
        timestamp: ts,
        ssrc,
    };
    let mut buf = [0u8; 512];
    let n = siprec_rtp::write(&header, payload, &mut buf).expect("RTP packet fits");
    buf[..n].to_vec()
}

/// PCMU payload of 20 ms of `freq` Hz, frame `k` of the tone (phase continuous across frames).
fn tone_frame(freq: f64, k: u32) -> Vec<u8> {
    audio::tone(
        freq,
        8000,
        u64::from(k) * u64::from(FRAME),
        FRAME as usize,
        8000.0,
    )
    .iter()
    .map(|&s| siprec_rtp::g711::ulaw_encode(s))
    .collect()
}

/// A tone stream's packets `frames`, at `at_us = (k - first) * 20 ms + offset_us`, sequence
/// numbers and timestamps counted from frame 0 (so a later range continues an earlier one).
fn tone_stream(
    freq: f64,
    frames: std::ops::Range<u32>,
    ssrc: u32,
    seq0: u16,
    ts0: u32,
    dst_port: u16,
) -> Vec<PcapPacket> {
    let first = frames.start;
    frames
        .map(|k| PcapPacket {
            at_us: u64::from(k - first) * FRAME_US,
            src_port: dst_port,
            dst_port,
            data: rtp(
                0,
                k == 0,
                seq0.wrapping_add(k as u16),
                ts0.wrapping_add(k * FRAME),
                ssrc,
                &tone_frame(freq, k),
            ),
        })
        .collect()
}

/// Interleaves streams by time (stable: at equal times, the earlier stream first).
fn merge(streams: Vec<Vec<PcapPacket>>) -> Vec<PcapPacket> {
    let mut all: Vec<PcapPacket> = streams.into_iter().flatten().collect();
    all.sort_by_key(|p| p.at_us);
    all
}

const LEFT: (f64, u32, u16, u32) = (440.0, 0x5151_0001, 1000, 16_000);
const RIGHT: (f64, u32, u16, u32) = (880.0, 0x5151_0002, 2000, 32_000);
const THIRD: (f64, u32, u16, u32) = (600.0, 0x5151_0003, 3000, 48_000);

fn stream(s: (f64, u32, u16, u32), frames: std::ops::Range<u32>, port: u16) -> Vec<PcapPacket> {
    tone_stream(s.0, frames, s.1, s.2, s.3, port)
}

/// The 440 Hz stream with loss, reordering, a duplicate and an SSRC change.
fn impaired_left() -> Vec<PcapPacket> {
    let (freq, ssrc, seq0, ts0) = LEFT;
    let mut out = Vec::new();
    for slot in 0..150u32 {
        if (40..=44).contains(&slot) {
            continue; // lost
        }
        // Reordering: 61 goes in 60's slot and the other way round (same for 70/71).
        let k = match slot {
            60 => 61,
            61 => 60,
            70 => 71,
            71 => 70,
            k => k,
        };
        let data = if k < 110 {
            rtp(
                0,
                k == 0,
                seq0.wrapping_add(k as u16),
                ts0.wrapping_add(k * FRAME),
                ssrc,
                &tone_frame(freq, k),
            )
        } else {
            // A new source (RFC 3550 §8.2): new SSRC, random-looking sequence and timestamp.
            let j = k - 110;
            rtp(
                0,
                j == 0,
                30_000u16.wrapping_add(j as u16),
                900_000u32.wrapping_add(j * FRAME),
                0x5151_00b2,
                &tone_frame(freq, k),
            )
        };
        let at_us = u64::from(slot) * FRAME_US;
        out.push(PcapPacket {
            at_us,
            src_port: 6000,
            dst_port: 6000,
            data: data.clone(),
        });
        if k == 95 {
            out.push(PcapPacket {
                at_us: at_us + 5_000,
                src_port: 6000,
                dst_port: 6000,
                data,
            });
        }
    }
    out
}

/// The 440 Hz stream with an RFC 4733 event (digit 5) interleaved from frame 50 to 59.
/// Audio and event packets share the SSRC and the sequence number space.
fn dtmf_left() -> Vec<PcapPacket> {
    let (freq, ssrc, seq0, ts0) = LEFT;
    let mut out = Vec::new();
    let mut seq = seq0;
    let event_ts = ts0 + 50 * FRAME;
    let event = |seq: u16, marker: bool, end: bool, duration: u16| {
        let d = duration.to_be_bytes();
        // event 5, E bit, R 0, volume 10 (-10 dBm0), duration in timestamp units.
        let payload = [5u8, (u8::from(end) << 7) | 10, d[0], d[1]];
        rtp(101, marker, seq, event_ts, ssrc, &payload)
    };
    for k in 0..150u32 {
        let at_us = u64::from(k) * FRAME_US;
        out.push(PcapPacket {
            at_us,
            src_port: 6000,
            dst_port: 6000,
            data: rtp(0, k == 0, seq, ts0 + k * FRAME, ssrc, &tone_frame(freq, k)),
        });
        seq = seq.wrapping_add(1);
        if (50..60).contains(&k) {
            let j = k - 50;
            let end = j == 9;
            let duration = ((j + 1) * FRAME) as u16;
            // The end packet is sent three times (RFC 4733 §2.5.1.4).
            let copies = if end { 3 } else { 1 };
            for c in 0..copies {
                out.push(PcapPacket {
                    at_us: at_us + 10_000 + c * 3_000,
                    src_port: 6000,
                    dst_port: 6000,
                    data: event(seq, j == 0, end, duration),
                });
                seq = seq.wrapping_add(1);
            }
        }
    }
    out
}

fn write(dir: &std::path::Path, name: &str, packets: &[PcapPacket]) -> anyhow::Result<()> {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    write_pcap(&mut f, packets)?;
    println!("wrote {} ({} packets)", path.display(), packets.len());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dir = fixtures_dir().join("rtp");
    std::fs::create_dir_all(&dir)?;
    write(&dir, "pcmu-440hz-3s.pcap", &stream(LEFT, 0..150, 6000))?;
    write(&dir, "pcmu-440hz-6s.pcap", &stream(LEFT, 0..300, 6000))?;
    write(&dir, "pcmu-880hz-6s.pcap", &stream(RIGHT, 0..300, 6000))?;
    write(
        &dir,
        "pcmu-stereo-3s.pcap",
        &merge(vec![
            stream(LEFT, 0..150, 6000),
            stream(RIGHT, 0..150, 6002),
        ]),
    )?;
    write(
        &dir,
        "pcmu-stereo-hold-a.pcap",
        &merge(vec![stream(LEFT, 0..75, 6000), stream(RIGHT, 0..75, 6002)]),
    )?;
    write(
        &dir,
        "pcmu-stereo-hold-b.pcap",
        &merge(vec![
            stream(LEFT, 75..150, 6000),
            stream(RIGHT, 75..150, 6002),
        ]),
    )?;
    write(
        &dir,
        "pcmu-three-3s.pcap",
        &merge(vec![
            stream(LEFT, 0..150, 6000),
            stream(RIGHT, 0..150, 6002),
            stream(THIRD, 0..150, 6004),
        ]),
    )?;
    write(
        &dir,
        "pcmu-impaired-3s.pcap",
        &merge(vec![impaired_left(), stream(RIGHT, 0..150, 6002)]),
    )?;
    write(
        &dir,
        "pcmu-dtmf-3s.pcap",
        &merge(vec![dtmf_left(), stream(RIGHT, 0..150, 6002)]),
    )?;
    Ok(())
}
