//! Per-packet cost of the receive path's pieces: RTP parse, SRTP unprotect (both suites),
//! and decoding 20 ms of G.711, G.722 and Opus to an 8 or 16 kHz recording; then this crate's
//! G.711 (`siprec_rtp::g711`) against the `audio-codec` crate's (`pcmu`/`pcma`): 20 ms decoded
//! and encoded, and how many of the 256 codes and 65,536 samples the two map differently.
//!
//! `cargo run --release -p siprec-rtp --example codec_bench`

use std::time::Instant;

use siprec_rtp::srtp::{SdesKey, SrtpReceiver, SrtpSender, SrtpSuite};
use siprec_rtp::{Codec, Decoder, Encoder, RtpHeader};

const PACKETS: u32 = 50_000;

fn tone(rate: u32, n: usize, offset: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = (offset + i) as f64 / f64::from(rate);
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        })
        .collect()
}

fn report(what: &str, started: Instant, n: u32) {
    let ns = started.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{what:<44} {:>8.2} µs/packet", ns / 1000.0);
}

fn main() {
    // RTP packets of 20 ms PCMU.
    let mut packets = Vec::with_capacity(PACKETS as usize);
    for i in 0..PACKETS {
        let h = RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: i as u16,
            timestamp: i * 160,
            ssrc: 7,
        };
        let mut buf = [0u8; 200];
        let n = siprec_rtp::write(&h, &[0x55; 160], &mut buf).unwrap();
        packets.push(buf[..n].to_vec());
    }
    let t = Instant::now();
    let mut sum = 0usize;
    for p in &packets {
        sum += siprec_rtp::parse(p).map(|p| p.payload.len()).unwrap_or(0);
    }
    report("RTP parse", t, PACKETS);

    for suite in [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ] {
        let key = SdesKey::new(1, suite, [3; 30]);
        let mut tx = SrtpSender::new(&key).unwrap();
        let wire: Vec<Vec<u8>> = packets
            .iter()
            .map(|p| {
                let mut out = [0u8; 256];
                let n = tx.protect(p, &mut out).unwrap();
                out[..n].to_vec()
            })
            .collect();
        let mut rx = SrtpReceiver::new(&key).unwrap();
        let mut out = [0u8; 256];
        let t = Instant::now();
        for w in &wire {
            sum += rx.unprotect(w, &mut out).unwrap();
        }
        report(&format!("SRTP unprotect {}", suite.name()), t, PACKETS);
    }

    for (codec, in_rate, out_rate) in [
        (Codec::Pcmu, 8000, 8000),
        (Codec::Pcmu, 8000, 16000),
        (Codec::G722, 16000, 16000),
        (Codec::G722, 16000, 8000),
        (Codec::Opus, 16000, 16000),
        (Codec::Opus, 16000, 8000),
    ] {
        let mut enc = Encoder::with_input_rate(codec, in_rate).unwrap();
        let frame = (in_rate / 50) as usize;
        let n = 5_000u32;
        let payloads: Vec<Vec<u8>> = (0..n as usize)
            .map(|k| {
                let mut out = [0u8; 1500];
                let len = enc.encode(&tone(in_rate, frame, k * frame), &mut out);
                out[..len].to_vec()
            })
            .collect();
        let mut dec = Decoder::with_output_rate(codec, out_rate).unwrap();
        let mut pcm = [0i16; 8192];
        let t = Instant::now();
        for p in &payloads {
            sum += dec.decode(p, &mut pcm);
        }
        report(
            &format!("decode {codec:?} 20 ms to a {out_rate} Hz recording"),
            t,
            n,
        );
    }
    sum += g711_against_audio_codec();
    // Keeps the work from being optimised away.
    println!("(checksum {sum})");
}

/// This crate's G.711 against `audio-codec`'s, on 20 ms (160 samples) per packet.
fn g711_against_audio_codec() -> usize {
    use siprec_rtp::g711;

    let n = 200_000u32;
    let pcm = tone(8000, 160, 0);
    let mut codes = [0u8; 160];
    let mut out = [0i16; 160];
    let mut sum = 0usize;
    for alaw in [false, true] {
        let law = if alaw { "PCMA" } else { "PCMU" };
        let (mut dec, mut enc): (Box<dyn audio_codec::Decoder>, Box<dyn audio_codec::Encoder>) =
            if alaw {
                (
                    Box::new(audio_codec::pcma::PcmaDecoder::new()),
                    Box::new(audio_codec::pcma::PcmaEncoder::new()),
                )
            } else {
                (
                    Box::new(audio_codec::pcmu::PcmuDecoder::new()),
                    Box::new(audio_codec::pcmu::PcmuEncoder::new()),
                )
            };
        let ours_enc = |i: &[i16], o: &mut [u8]| {
            if alaw {
                g711::encode_alaw_into(i, o)
            } else {
                g711::encode_ulaw_into(i, o)
            }
        };
        let ours_dec = |i: &[u8], o: &mut [i16]| {
            if alaw {
                g711::decode_alaw_into(i, o)
            } else {
                g711::decode_ulaw_into(i, o)
            }
        };
        ours_enc(&pcm, &mut codes);

        let t = Instant::now();
        for k in 0..n {
            codes[0] = k as u8;
            sum += ours_dec(std::hint::black_box(&codes), &mut out);
            sum += out[1] as usize;
        }
        report(&format!("{law} decode 20 ms, siprec_rtp::g711"), t, n);
        let t = Instant::now();
        for k in 0..n {
            codes[0] = k as u8;
            sum += dec
                .decode_into(std::hint::black_box(&codes), &mut out)
                .unwrap_or(0);
            sum += out[1] as usize;
        }
        report(&format!("{law} decode 20 ms, audio-codec"), t, n);
        let t = Instant::now();
        for _ in 0..n {
            sum += ours_enc(std::hint::black_box(&pcm), &mut codes);
            sum += codes[1] as usize;
        }
        report(&format!("{law} encode 20 ms, siprec_rtp::g711"), t, n);
        let t = Instant::now();
        for _ in 0..n {
            sum += enc
                .encode_into(std::hint::black_box(&pcm), &mut codes)
                .unwrap_or(0);
            sum += codes[1] as usize;
        }
        report(&format!("{law} encode 20 ms, audio-codec"), t, n);

        // Do the two agree?
        let mut one = [0i16; 1];
        let mut two = [0i16; 1];
        let dec_diff = (0..=255u8)
            .filter(|&c| {
                ours_dec(&[c], &mut one);
                let _ = dec.decode_into(&[c], &mut two);
                one != two
            })
            .count();
        let mut a = [0u8; 1];
        let mut b = [0u8; 1];
        let enc_diff: Vec<i16> = (i16::MIN..=i16::MAX)
            .filter(|&s| {
                ours_enc(&[s], &mut a);
                let _ = enc.encode_into(&[s], &mut b);
                a != b
            })
            .collect();
        println!(
            "{law}: codes decoded differently {dec_diff} of 256; samples encoded differently {} of 65536{}",
            enc_diff.len(),
            match (enc_diff.first(), enc_diff.last()) {
                (Some(lo), Some(hi)) => format!(" (from {lo} to {hi})"),
                _ => String::new(),
            }
        );
        sum += dec_diff + enc_diff.len();
    }
    sum
}
