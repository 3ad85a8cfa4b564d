//! The RTP port pool both binaries bind their media sockets from.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

/// What a port of the pool binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The even RTP port only (srs-server: a recorded stream's RTCP is not read).
    Rtp,
    /// The even RTP port and the odd RTCP port above it (the gateway relays both).
    RtpAndRtcp,
}

/// The sockets bound for one allocated port, non-blocking.
#[derive(Debug)]
pub struct Bound {
    /// The even port's socket.
    pub rtp: UdpSocket,
    /// The odd port's socket, with [`Binding::RtpAndRtcp`].
    pub rtcp: Option<UdpSocket>,
}

#[derive(Debug)]
struct Inner {
    lo: u16,
    hi: u16,
    next: u16,
    in_use: HashSet<u16>,
    bound: HashMap<u16, Bound>,
}

/// Even ports of `[lo, hi]` handed out in turn. [`allocate`](PortPool::allocate) binds the
/// port's sockets at once (a port someone else holds is skipped), so the port a peer is told
/// is one this process owns; the sockets wait in the pool until [`take`](PortPool::take).
/// Clones share the pool (one goes to the sans-IO core's allocator, one stays with the driver).
#[derive(Debug, Clone)]
pub struct PortPool {
    ip: IpAddr,
    binding: Binding,
    inner: Arc<Mutex<Inner>>,
}

impl PortPool {
    /// A pool over `[lo, hi]` binding on `ip`; an odd `lo` starts at the next even port.
    pub fn new(ip: IpAddr, lo: u16, hi: u16, binding: Binding) -> PortPool {
        let lo = lo.saturating_add(lo % 2);
        PortPool {
            ip,
            binding,
            inner: Arc::new(Mutex::new(Inner {
                lo,
                hi,
                next: lo,
                in_use: HashSet::new(),
                bound: HashMap::new(),
            })),
        }
    }

    /// The next free even port whose sockets could be bound; `None` when every port of the
    /// range is in use or held by another process.
    pub fn allocate(&self) -> Option<u16> {
        let mut g = self.inner.lock().ok()?;
        // The highest port a pair starting at `p` uses.
        let top = |p: u16| match self.binding {
            Binding::Rtp => Some(p),
            Binding::RtpAndRtcp => p.checked_add(1),
        };
        let span = g.hi.saturating_sub(g.lo) / 2 + 1;
        for _ in 0..span {
            let p = g.next;
            g.next = match p.checked_add(2) {
                Some(n) if top(n).is_some_and(|t| t <= g.hi) => n,
                _ => g.lo,
            };
            if g.in_use.contains(&p) || top(p).is_none_or(|t| t > g.hi) {
                continue;
            }
            let bind = |port: u16| {
                UdpSocket::bind(SocketAddr::new(self.ip, port))
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
            };
            let Ok(rtp) = bind(p) else { continue };
            let rtcp = match self.binding {
                Binding::Rtp => None,
                Binding::RtpAndRtcp => match bind(p + 1) {
                    Ok(s) => Some(s),
                    Err(_) => continue,
                },
            };
            g.in_use.insert(p);
            g.bound.insert(p, Bound { rtp, rtcp });
            return Some(p);
        }
        None
    }

    /// Gives `port` back (its sockets, if not taken, are closed).
    pub fn release(&self, port: u16) {
        if let Ok(mut g) = self.inner.lock() {
            g.in_use.remove(&port);
            g.bound.remove(&port);
        }
    }

    /// The sockets bound for `port` (once; the port stays in use until released).
    pub fn take(&self, port: u16) -> Option<Bound> {
        self.inner.lock().ok()?.bound.remove(&port)
    }

    /// Ports currently handed out.
    pub fn in_use(&self) -> usize {
        self.inner.lock().map(|i| i.in_use.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(offset: u16) -> u16 {
        42000 + (std::process::id() % 500) as u16 * 16 + offset
    }

    #[test]
    fn rtp_ports_are_even_exhausted_and_reused() {
        let lo = base(0);
        let p = PortPool::new(IpAddr::from([127, 0, 0, 1]), lo + 1, lo + 5, Binding::Rtp);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!((a, b), (lo + 2, lo + 4));
        assert!(p.allocate().is_none());
        assert_eq!(p.in_use(), 2);
        p.release(a);
        assert_eq!(p.allocate(), Some(a));
        let s = p.take(b).unwrap();
        assert_eq!(s.rtp.local_addr().unwrap().port(), b);
        assert!(s.rtcp.is_none());
        assert!(p.take(b).is_none());
    }

    #[test]
    fn pairs_fit_the_range_and_skip_ports_held_elsewhere() {
        let lo = base(8);
        // Someone holds lo+3: the pair (lo+2, lo+3) cannot be bound.
        let _held = UdpSocket::bind(("127.0.0.1", lo + 3)).unwrap();
        let p = PortPool::new(
            IpAddr::from([127, 0, 0, 1]),
            lo,
            lo + 6,
            Binding::RtpAndRtcp,
        );
        assert_eq!(p.allocate(), Some(lo));
        assert_eq!(p.allocate(), Some(lo + 4));
        // lo+6 has no lo+7 in the range; lo+2 is still blocked.
        assert!(p.allocate().is_none());
        let s = p.take(lo + 4).unwrap();
        assert_eq!(s.rtcp.unwrap().local_addr().unwrap().port(), lo + 5);
    }
}
