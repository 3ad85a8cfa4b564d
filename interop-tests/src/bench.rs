//! What the benchmark binaries share: a process's CPU time from `/proc`, percentiles, and a
//! paced RTP load ([`pace`]).

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::socket::SockaddrStorage;

/// CPU time (user + system) `pid` has used so far, in seconds (`/proc/PID/stat` fields 14 and
/// 15, in clock ticks of 1/100 s).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ").context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0) // USER_HZ is 100 on Linux
}

/// CPU time (user + system) the calling thread has used so far, in seconds
/// (`/proc/thread-self/stat`, clock ticks of 1/100 s).
pub fn thread_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    let rest = stat.rsplit_once(") ").context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// The `p` quantile (0.0 to 1.0) of `sorted` (nearest rank); zero for an empty slice.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs this benchmark binary again as a child with `args` (its baseline mode), which prints
/// `PORTS p0 p1 …` once its sockets are bound: returns the child, its pid and the ports.
pub async fn spawn_baseline(
    args: &[String],
) -> anyhow::Result<(tokio::process::Child, u32, Vec<u16>)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("baseline pid")?;
    let mut line = String::new();
    tokio::io::BufReader::new(child.stdout.take().context("stdout")?)
        .read_line(&mut line)
        .await?;
    let ports = line
        .trim()
        .strip_prefix("PORTS ")
        .context("PORTS line")?
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    Ok((child, pid, ports))
}

/// One RTP stream of a paced load: sent from `sockets[from]` to `to`.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// Index of the sending socket.
    pub from: usize,
    /// Destination.
    pub to: SocketAddr,
}

/// What a [`pace`] run did, readable while it runs.
#[derive(Debug, Default)]
pub struct PacerStats {
    /// Cleared to stop the pacer.
    pub running: AtomicBool,
    /// Packets sent.
    pub sent: AtomicU64,
    /// Whole 20 ms cycles sent (every flow got one packet per cycle).
    pub cycles: AtomicU64,
    /// Packets read from the `receive` sockets.
    pub received: AtomicU64,
    /// Packets read from the `sink` sockets.
    pub sink: AtomicU64,
    /// 1 ms slots that started more than 5 ms late.
    pub late_slots: AtomicU64,
    /// The worst lateness of a slot, in µs.
    pub worst_us: AtomicU64,
    /// The pacer thread's own CPU time so far, in µs (updated every cycle): what sending (and
    /// draining) cost it, the kernel's loopback delivery included.
    pub cpu_us: AtomicU64,
}

impl PacerStats {
    /// A pacer's stats, marked running.
    pub fn running() -> std::sync::Arc<PacerStats> {
        std::sync::Arc::new(PacerStats {
            running: AtomicBool::new(true),
            ..PacerStats::default()
        })
    }

    /// The pacer kept up: at most 1 % of its slots more than 5 ms late, none over 20 ms. A
    /// run where it did not measured less than its nominal load and is invalid.
    pub fn valid(&self) -> bool {
        let slots = self.cycles.load(Ordering::Relaxed) * SLOTS as u64;
        self.late_slots.load(Ordering::Relaxed) * 100 <= slots
            && self.worst_us.load(Ordering::Relaxed) <= 20_000
    }
}

/// Slots per 20 ms cycle.
const SLOTS: usize = 20;
/// Datagrams per `sendmmsg` / `recvmmsg`.
const MMSG: usize = 64;

/// A paced G.711 load: every flow gets one 20 ms PCMU packet (172 bytes, its own SSRC, sequence
/// and timestamp) per cycle, flow `i` in the 1 ms slot `i % 20`; each slot's packets leave in
/// `sendmmsg` batches, then the `receive` and `sink` sockets (non-blocking) are drained with
/// `recvmmsg` and counted. Runs until `stats.running` is cleared.
pub fn pace(
    sockets: &[StdUdp],
    flows: &[Flow],
    receive: &[StdUdp],
    sink: &[StdUdp],
    stats: &PacerStats,
) -> anyhow::Result<()> {
    use nix::sys::socket::{recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders};
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;
    let addrs: Vec<Option<SockaddrStorage>> = flows
        .iter()
        .map(|f| Some(SockaddrStorage::from(f.to)))
        .collect();
    let mut pkts: Vec<[u8; 172]> = (0..flows.len())
        .map(|i| {
            let mut b = [0xffu8; 172];
            b[0] = 0x80;
            b[1] = 0; // PCMU
            b[8..12].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            b
        })
        .collect();
    // The flows of each slot, grouped by sending socket.
    let mut plan: Vec<Vec<Vec<usize>>> = vec![vec![Vec::new(); sockets.len()]; SLOTS];
    for (i, f) in flows.iter().enumerate() {
        plan[i % SLOTS][f.from].push(i);
    }
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(MMSG, None);
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(MMSG, None);
    let mut bufs = vec![[0u8; 2048]; MMSG];
    let mut drain = |socks: &[StdUdp], into: &AtomicU64| {
        for s in socks {
            loop {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                    .iter_mut()
                    .map(|b| [IoSliceMut::new(&mut b[..])])
                    .collect();
                let n = recvmmsg(
                    s.as_raw_fd(),
                    &mut recv_headers,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                )
                .map_or(0, |r| r.count());
                into.fetch_add(n as u64, Ordering::Relaxed);
                if n < MMSG {
                    break;
                }
            }
        }
    };
    let slot = Duration::from_millis(1);
    let cpu0 = thread_cpu_seconds()?;
    let start = Instant::now() + Duration::from_millis(5);
    let mut k: u64 = 0;
    while stats.running.load(Ordering::Relaxed) {
        let due = start + slot * (k as u32);
        let now = Instant::now();
        match due.checked_duration_since(now) {
            Some(d) => std::thread::sleep(d),
            None => {
                let late = now - due;
                if late > Duration::from_millis(5) {
                    stats.late_slots.fetch_add(1, Ordering::Relaxed);
                }
                stats
                    .worst_us
                    .fetch_max(late.as_micros() as u64, Ordering::Relaxed);
            }
        }
        let s = (k % SLOTS as u64) as usize;
        let cycle = k / SLOTS as u64;
        let (seq, ts) = (
            (cycle as u16).to_be_bytes(),
            (cycle as u32).wrapping_mul(160).to_be_bytes(),
        );
        for (from, idx) in plan[s].iter().enumerate() {
            for &i in idx {
                pkts[i][2..4].copy_from_slice(&seq);
                pkts[i][4..8].copy_from_slice(&ts);
            }
            for chunk in idx.chunks(MMSG) {
                let iovs: Vec<[IoSlice<'_>; 1]> = chunk
                    .iter()
                    .map(|&i| [IoSlice::new(&pkts[i][..])])
                    .collect();
                let to: Vec<Option<SockaddrStorage>> = chunk.iter().map(|&i| addrs[i]).collect();
                let mut done = 0;
                while done < iovs.len() {
                    match sendmmsg(
                        sockets[from].as_raw_fd(),
                        &mut send_headers,
                        &iovs[done..],
                        &to[done..],
                        [] as [ControlMessage<'_>; 0],
                        MsgFlags::empty(),
                    ) {
                        Ok(r) => done += r.count().max(1),
                        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                        Err(_) => done += 1, // an ICMP error of an earlier send: skip one
                    }
                }
                stats.sent.fetch_add(iovs.len() as u64, Ordering::Relaxed);
            }
        }
        drain(receive, &stats.received);
        drain(sink, &stats.sink);
        if s == SLOTS - 1 {
            stats.cycles.fetch_add(1, Ordering::Relaxed);
            let cpu = thread_cpu_seconds().unwrap_or(cpu0) - cpu0;
            stats.cpu_us.store((cpu * 1e6) as u64, Ordering::Relaxed);
        }
        k += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_own_cpu() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
        let t0 = thread_cpu_seconds().unwrap();
        let mut x = 0u64;
        while thread_cpu_seconds().unwrap() - t0 < 0.02 {
            x = x.wrapping_add(1); // spin until this thread has used two clock ticks
        }
        assert!(x > 0);
    }
}
