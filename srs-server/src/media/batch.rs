//! Batched UDP receive: one `recvmmsg(2)` reads up to [`BATCH`] datagrams of one socket into
//! a shard's fixed buffers (nix's safe wrapper; nothing here allocates per call).

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

/// Datagrams read per system call at most.
pub(crate) const BATCH: usize = 16;
/// Largest datagram read; longer ones are truncated (and then fail to parse as RTP).
pub(crate) const DATAGRAM: usize = siprec_recorder::session::MAX_DATAGRAM;

/// A shard's receive buffers, reused for every call.
pub(crate) struct RecvBatch {
    headers: MultiHeaders<SockaddrStorage>,
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    /// `(length, source)` of each datagram of the last read.
    got: [(usize, Option<SocketAddr>); BATCH],
    n: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").field("n", &self.n).finish()
    }
}

impl RecvBatch {
    pub(crate) fn new() -> RecvBatch {
        RecvBatch {
            headers: MultiHeaders::preallocate(BATCH, None),
            bufs: Box::new([[0; DATAGRAM]; BATCH]),
            got: [(0, None); BATCH],
            n: 0,
        }
    }

    /// Reads what `socket` has queued, up to [`BATCH`] datagrams, without blocking. Returns
    /// how many were read (0 when none was waiting). Errors other than "would block" (an ICMP
    /// error queued on the socket, …) read nothing and are returned.
    pub(crate) fn recv(&mut self, socket: &impl AsRawFd) -> std::io::Result<usize> {
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
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.n {
            return None;
        }
        let (len, from) = self.got[i];
        Some((&self.bufs[i][..len], from?))
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
