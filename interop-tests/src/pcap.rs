//! Classic libpcap writer for RTP over UDP/IPv4 over Ethernet (what SIPp's `play_pcap_audio`
//! reads).

use std::io::Write;

/// One UDP datagram of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapPacket {
    /// When it leaves, in microseconds after the first packet of the capture.
    pub at_us: u64,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port (SIPp's `play_pcap_audio` sends each packet to the answer's
    /// audio port plus this port minus the lowest destination port of the capture).
    pub dst_port: u16,
    /// The UDP payload (an RTP packet).
    pub data: Vec<u8>,
}

/// Writes a pcap of `packets` (RTP payload-bearing datagrams), one every `interval_us`.
pub fn write_rtp_pcap(
    out: &mut impl Write,
    packets: &[Vec<u8>],
    interval_us: u32,
    src_port: u16,
    dst_port: u16,
) -> std::io::Result<()> {
    let timed: Vec<PcapPacket> = packets
        .iter()
        .enumerate()
        .map(|(k, p)| PcapPacket {
            at_us: k as u64 * u64::from(interval_us),
            src_port,
            dst_port,
            data: p.clone(),
        })
        .collect();
    write_pcap(out, &timed)
}

/// Writes a pcap of `packets`, each at its own time and ports (in the order given, which
/// should be the order of `at_us`).
pub fn write_pcap(out: &mut impl Write, packets: &[PcapPacket]) -> std::io::Result<()> {
    // Global header: magic, v2.4, thiszone 0, sigfigs 0, snaplen 65535, linktype 1 (Ethernet).
    out.write_all(&0xa1b2c3d4u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&0i32.to_le_bytes())?;
    out.write_all(&0u32.to_le_bytes())?;
    out.write_all(&65535u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    for pkt in packets {
        let p = &pkt.data;
        let sec = 1_700_000_000u32 + (pkt.at_us / 1_000_000) as u32;
        let usec = (pkt.at_us % 1_000_000) as u32;
        let udp_len = 8 + p.len();
        let ip_len = 20 + udp_len;
        let frame_len = 14 + ip_len;
        out.write_all(&sec.to_le_bytes())?;
        out.write_all(&usec.to_le_bytes())?;
        out.write_all(&(frame_len as u32).to_le_bytes())?;
        out.write_all(&(frame_len as u32).to_le_bytes())?;
        // Ethernet: dst, src, type IPv4.
        out.write_all(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00])?;
        // IPv4 header, checksum computed.
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[127, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[127, 0, 0, 1]);
        let mut sum: u32 = 0;
        for c in ip.chunks(2) {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        out.write_all(&ip)?;
        out.write_all(&pkt.src_port.to_be_bytes())?;
        out.write_all(&pkt.dst_port.to_be_bytes())?;
        out.write_all(&(udp_len as u16).to_be_bytes())?;
        out.write_all(&0u16.to_be_bytes())?; // UDP checksum optional over IPv4
        out.write_all(p)?;
    }
    Ok(())
}
