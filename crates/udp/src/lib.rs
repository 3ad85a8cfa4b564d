//! siprec-udp: what the media threads of `srs-server` and the gateway share.
//!
//! - [`RecvBatch`]: one `recvmmsg(2)` reads up to [`BATCH`] datagrams of one socket into a
//!   thread's fixed buffers (nix's safe wrapper; nothing allocates per call). A media thread
//!   owns one and calls [`RecvBatch::recv`] on a ready socket, then [`RecvBatch::get`] for each
//!   datagram; a batch shorter than [`BATCH`] means the socket was empty (see
//!   [`RecvBatch::recv`] for why no further read is needed with edge-triggered epoll).
//! - [`raise_fd_limit`]: every relayed or recorded stream holds sockets; thousands of calls
//!   need the open-files limit raised to its hard limit.
//! - [`PortPool`]: the RTP port range both binaries bind their media sockets from (srs-server
//!   the RTP port of each stream, the gateway RTP and RTCP of each leg).
//!
//! ```
//! let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
//! let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
//! tx.send_to(b"rtp", rx.local_addr().unwrap()).unwrap();
//! let mut batch = siprec_udp::RecvBatch::new();
//! assert_eq!(batch.recv(&rx).unwrap(), 1);
//! let (data, from) = batch.get(0).unwrap();
//! assert_eq!((data, from), (&b"rtp"[..], tx.local_addr().unwrap()));
//! ```

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

mod ports;
pub use ports::{Binding, Bound, PortPool};

/// Datagrams read per system call at most.
pub const BATCH: usize = 16;
/// Largest datagram read; longer ones are truncated (and then fail to parse as RTP).
pub const DATAGRAM: usize = 4096;

/// A shard's receive buffers, reused for every call.
pub struct RecvBatch {
    headers: MultiHeaders<SockaddrStorage>,
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    /// `(length, source)` of each datagram of the last read.
    got: [(usize, Option<SocketAddr>); BATCH],
    n: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("n", &self.n).finish()
    }
}

impl RecvBatch {
    /// Buffers for [`BATCH`] datagrams of up to [`DATAGRAM`] bytes (64 KiB), allocated once.
    pub fn new() -> RecvBatch {
        RecvBatch {
            headers: MultiHeaders::preallocate(BATCH, None),
            bufs: Box::new([[0; DATAGRAM]; BATCH]),
            got: [(0, None); BATCH],
            n: 0,
        }
    }

    /// Reads what `socket` has queued, up to [`BATCH`] datagrams, without blocking. Returns
    /// how many were read (0 when none was waiting). Errors other than "would block" (an ICMP
    /// error queued on the socket, …) read nothing and are returned; reading one clears it.
    ///
    /// A caller woken by edge-triggered epoll may stop at a batch shorter than [`BATCH`],
    /// without a last read that returns `EAGAIN`: on Linux every datagram queued on a socket
    /// wakes its epoll waiters (`sk_data_ready` → `ep_poll_callback`), so one that arrives after
    /// this read raises a new event.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> std::io::Result<usize> {
        self.n = 0;
        let mut iovs = self.bufs.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
        let res = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        );
        let msgs = match res {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        for (slot, m) in self.got.iter_mut().zip(msgs) {
            *slot = (m.bytes.min(DATAGRAM), m.address.and_then(to_socket_addr));
            self.n += 1;
        }
        Ok(self.n)
    }

    /// Datagram `i` of the last read and its source.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.n {
            return None;
        }
        let (len, from) = self.got[i];
        Some((&self.bufs[i][..len], from?))
    }
}

/// Raises the soft limit of open files to the hard limit, and says so in the log.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-files limit"),
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open-files limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
    }
}

fn to_socket_addr(a: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    let v6 = a.as_sockaddr_in6()?;
    Some(SocketAddr::V6(SocketAddrV6::new(
        v6.ip(),
        v6.port(),
        v6.flowinfo(),
        v6.scope_id(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_burst_in_one_call_with_sources_and_lengths() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut b = RecvBatch::new();
        assert_eq!(
            b.recv(&rx).unwrap(),
            0,
            "nothing queued: no block, no error"
        );
        for i in 0..20u8 {
            tx.send_to(&vec![i; 10 + usize::from(i)], to).unwrap();
        }
        // Loopback delivers synchronously: all 20 are queued before the first read.
        assert_eq!(b.recv(&rx).unwrap(), BATCH);
        let (d, from) = b.get(3).unwrap();
        assert_eq!((d.len(), d[0]), (13, 3));
        assert_eq!(from, tx.local_addr().unwrap());
        assert_eq!(b.recv(&rx).unwrap(), 20 - BATCH);
        assert_eq!(b.get(0).unwrap().0[0], 16);
        assert!(b.get(20 - BATCH).is_none());
        assert_eq!(b.recv(&rx).unwrap(), 0);
    }

    #[test]
    fn ipv6_sources() {
        let rx = std::net::UdpSocket::bind("[::1]:0").expect("this test needs IPv6 loopback (::1)");
        let tx = std::net::UdpSocket::bind("[::1]:0").unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        let mut b = RecvBatch::new();
        assert_eq!(b.recv(&rx).unwrap(), 1);
        assert_eq!(b.get(0).unwrap().1, tx.local_addr().unwrap());
    }
}
