//! Regenerates the binary media fixtures under `fixtures/rtp/`:
//! `pcmu-440hz-3s.pcap`: 3 s of a 440 Hz tone as PCMU RTP (150 packets of 20 ms), for SIPp's
//! `play_pcap_audio`. Run: `cargo run -p interop-tests --bin make-fixtures`.

use interop_tests::{audio, fixtures_dir, pcap};

fn main() -> anyhow::Result<()> {
    let dir = fixtures_dir().join("rtp");
    std::fs::create_dir_all(&dir)?;
    let mut packets = Vec::new();
    for k in 0..150u32 {
        let pcm = audio::tone(440.0, 8000, k as u64 * 160, 160, 8000.0);
        let payload: Vec<u8> = pcm
            .iter()
            .map(|&s| siprec_rtp::g711::ulaw_encode(s))
            .collect();
        let header = siprec_rtp::RtpHeader {
            marker: k == 0,
            payload_type: 0,
            sequence: 1000u16.wrapping_add(k as u16),
            timestamp: 16_000 + k * 160,
            ssrc: 0x5151_0001,
        };
        let mut buf = [0u8; 512];
        let n =
            siprec_rtp::write(&header, &payload, &mut buf).map_err(|e| anyhow::anyhow!("{e}"))?;
        packets.push(buf[..n].to_vec());
    }
    let path = dir.join("pcmu-440hz-3s.pcap");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
    pcap::write_rtp_pcap(&mut f, &packets, 20_000, 6000, 6000)?;
    println!("wrote {}", path.display());
    Ok(())
}
