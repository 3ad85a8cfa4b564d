//! RTP port pool: [`siprec_udp::PortPool`] binding the RTP port of each recorded stream, as
//! the SRS core's [`PortAllocator`].

use std::net::{IpAddr, UdpSocket};

use siprec_core::PortAllocator;
use siprec_udp::Binding;

/// A shared pool; one clone goes into the SRS core, one stays with the driver.
#[derive(Debug, Clone)]
pub struct PortPool(siprec_udp::PortPool);

impl PortPool {
    /// A pool over `[lo, hi]`, binding on `ip`. Only even ports are used (RTP; RTCP would be +1).
    pub fn new(ip: IpAddr, lo: u16, hi: u16) -> PortPool {
        PortPool(siprec_udp::PortPool::new(ip, lo, hi, Binding::Rtp))
    }

    /// Takes the socket bound for `port` (once).
    pub fn take_socket(&self, port: u16) -> Option<UdpSocket> {
        self.0.take(port).map(|b| b.rtp)
    }

    /// Ports currently handed out.
    pub fn in_use(&self) -> usize {
        self.0.in_use()
    }
}

impl PortAllocator for PortPool {
    fn allocate(&mut self) -> Option<u16> {
        self.0.allocate()
    }

    fn release(&mut self, port: u16) {
        self.0.release(port);
    }
}
