//! A network shim for RTP between an SRC and srs-server: each stream of an answered SIPREC
//! INVITE is sent to a shim socket (the relay in front of the SRS rewrites the 2xx's
//! `m=audio` ports, see [`crate::fault_relay::FaultRelay::start_with_netem`]), which forwards
//! it to the SRS's real port after a loss, jitter and lateness schedule. The schedule is
//! deterministic (a hash of stream and packet number), so a failing run can be replayed, and
//! the shim counts what it did so a test can compare with what srs-server reports.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;

/// What the shim does to the packets of each stream, by packet number `k` (0-based, in
/// arrival order at the shim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netem {
    /// One packet in `loss_every` is dropped (0: none). `loss_every = 100` is 1 % loss.
    pub loss_every: u64,
    /// Each packet is held for a pseudo-random 0..=`jitter_ms` ms, so packets overtake each
    /// other when the jitter exceeds the packet interval.
    pub jitter_ms: u64,
    /// One packet in `late_every` (never a dropped one) is held `late_ms` more (0: none).
    pub late_every: u64,
    /// Extra delay of the late packets.
    pub late_ms: u64,
}

impl Netem {
    /// 1 % loss, 0-30 ms of jitter, one packet in 100 a further 200 ms late (beyond
    /// srs-server's default 60 ms jitter window).
    pub fn lossy_jittery() -> Netem {
        Netem {
            loss_every: 100,
            jitter_ms: 30,
            late_every: 100,
            late_ms: 200,
        }
    }

    /// Whether packet `k` is dropped. The phase keeps the first packets (and so the
    /// anchor of the stream) in.
    pub fn drops(&self, k: u64) -> bool {
        self.loss_every > 0 && k % self.loss_every == self.loss_every / 3
    }

    /// Whether packet `k` is held `late_ms` more.
    pub fn is_late(&self, k: u64) -> bool {
        self.late_every > 0 && k % self.late_every == self.late_every * 2 / 3 && !self.drops(k)
    }

    /// How long packet `k` of `stream` is held.
    pub fn delay(&self, stream: usize, k: u64) -> Duration {
        let jitter = splitmix(((stream as u64) << 40) ^ k) % (self.jitter_ms + 1);
        let late = if self.is_late(k) { self.late_ms } else { 0 };
        Duration::from_millis(jitter + late)
    }
}

/// SplitMix64: a small, well-mixed hash for the schedule.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the shim did to one stream.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Packets that reached the shim.
    pub received: AtomicU64,
    /// Packets dropped.
    pub dropped: AtomicU64,
    /// Packets forwarded `late_ms` late.
    pub late: AtomicU64,
}

/// The shim's streams, in the order of the answer's `m=audio` lines, across every session
/// the relay answered.
#[derive(Debug, Default)]
pub struct NetemStats {
    streams: std::sync::Mutex<Vec<Arc<StreamCounters>>>,
}

impl NetemStats {
    /// (received, dropped, late) of stream `i`.
    pub fn stream(&self, i: usize) -> Option<(u64, u64, u64)> {
        let s = self.streams.lock().ok()?.get(i)?.clone();
        Some((
            s.received.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
            s.late.load(Ordering::Relaxed),
        ))
    }
}

/// Binds one shim socket for a stream whose real destination is `dest` and starts
/// forwarding through it in `tasks`; returns the shim's port for the rewritten answer.
pub fn add_stream(
    netem: Netem,
    dest: SocketAddr,
    stats: &NetemStats,
    tasks: &mut JoinSet<()>,
) -> std::io::Result<u16> {
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    std_sock.set_nonblocking(true)?;
    let sock = Arc::new(UdpSocket::from_std(std_sock)?);
    let port = sock.local_addr()?.port();
    let counters = Arc::new(StreamCounters::default());
    let index = {
        let mut v = stats
            .streams
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        v.push(counters.clone());
        v.len() - 1
    };
    tasks.spawn(async move {
        let mut held = JoinSet::new();
        let mut buf = vec![0u8; 2048];
        let mut k = 0u64;
        while let Ok((n, _)) = sock.recv_from(&mut buf).await {
            counters.received.fetch_add(1, Ordering::Relaxed);
            let this = k;
            k += 1;
            if netem.drops(this) {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if netem.is_late(this) {
                counters.late.fetch_add(1, Ordering::Relaxed);
            }
            let due = tokio::time::Instant::now() + netem.delay(index, this);
            let (sock, pkt) = (sock.clone(), buf[..n].to_vec());
            held.spawn(async move {
                tokio::time::sleep_until(due).await;
                let _ = sock.send_to(&pkt, dest).await;
            });
            // Reap finished sends so the set stays small on long calls.
            while held.try_join_next().is_some() {}
        }
    });
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_one_percent_loss_and_one_percent_late() {
        let n = Netem::lossy_jittery();
        let dropped = (0..1000).filter(|&k| n.drops(k)).count();
        let late = (0..1000).filter(|&k| n.is_late(k)).count();
        assert_eq!((dropped, late), (10, 10));
        assert!((0..20).all(|k| !n.drops(k) && !n.is_late(k)));
        let max = (0..1000)
            .filter(|&k| !n.is_late(k))
            .map(|k| n.delay(1, k))
            .max();
        assert_eq!(max, Some(Duration::from_millis(30)));
        assert!(n.is_late(66) && n.delay(0, 66) >= Duration::from_millis(200));
        assert!(n.drops(33));
    }
}
