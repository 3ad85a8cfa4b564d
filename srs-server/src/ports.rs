//! RTP port pool: binds UDP sockets from the configured range and keeps them until a
//! recording takes them.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use siprec_core::PortAllocator;

#[derive(Debug)]
struct Inner {
    lo: u16,
    hi: u16,
    next: u16,
    in_use: HashSet<u16>,
    bound: HashMap<u16, UdpSocket>,
}

/// A shared pool; one clone goes into the SRS core, one stays with the driver.
#[derive(Debug, Clone)]
pub struct PortPool {
    ip: IpAddr,
    inner: Arc<Mutex<Inner>>,
}

impl PortPool {
    /// A pool over `[lo, hi]`, binding on `ip`. Only even ports are used (RTP; RTCP would be +1).
    pub fn new(ip: IpAddr, lo: u16, hi: u16) -> PortPool {
        let lo = lo + (lo % 2);
        PortPool {
            ip,
            inner: Arc::new(Mutex::new(Inner {
                lo,
                hi,
                next: lo,
                in_use: HashSet::new(),
                bound: HashMap::new(),
            })),
        }
    }

    /// Takes the socket bound for `port` (once).
    pub fn take_socket(&self, port: u16) -> Option<UdpSocket> {
        self.inner.lock().ok()?.bound.remove(&port)
    }

    /// Ports currently handed out.
    pub fn in_use(&self) -> usize {
        self.inner.lock().map(|i| i.in_use.len()).unwrap_or(0)
    }
}

impl PortAllocator for PortPool {
    fn allocate(&mut self) -> Option<u16> {
        let mut g = self.inner.lock().ok()?;
        let span = (g.hi - g.lo) / 2 + 1;
        for _ in 0..span {
            let p = g.next;
            g.next = if p.saturating_add(2) > g.hi {
                g.lo
            } else {
                p + 2
            };
            if g.in_use.contains(&p) {
                continue;
            }
            // Someone else may hold the port: skip it.
            if let Ok(sock) = UdpSocket::bind(SocketAddr::new(self.ip, p)) {
                if sock.set_nonblocking(true).is_err() {
                    continue;
                }
                g.in_use.insert(p);
                g.bound.insert(p, sock);
                return Some(p);
            }
        }
        None
    }

    fn release(&mut self, port: u16) {
        if let Ok(mut g) = self.inner.lock() {
            g.in_use.remove(&port);
            g.bound.remove(&port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausts_and_reuses() {
        let base = 41000 + (std::process::id() % 1000) as u16 * 4;
        let mut p = PortPool::new(IpAddr::from([127, 0, 0, 1]), base, base + 3);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a % 2, 0);
        assert!(p.allocate().is_none());
        p.release(a);
        assert_eq!(p.allocate(), Some(a));
        assert!(p.take_socket(b).is_some());
        assert!(p.take_socket(b).is_none());
    }
}
