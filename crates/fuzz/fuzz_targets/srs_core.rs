//! The whole SRS role as a peer reaches it: any bytes into `SrsCore::handle_bytes` over UDP
//! and TCP, then the timers. Nothing a peer sends may panic it.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use siprec_core::{PortAllocator, SrsConfig, SrsCore};
use siprec_sip::transaction::{Peer, Transport};

struct Ports(u16);

impl PortAllocator for Ports {
    fn allocate(&mut self) -> Option<u16> {
        self.0 = self.0.checked_add(2)?;
        Some(self.0)
    }
    fn release(&mut self, _port: u16) {}
}

fuzz_target!(|data: &[u8]| {
    let mut core = SrsCore::new(SrsConfig::default(), Box::new(Ports(20_000)));
    let now = Instant::now();
    let local = "127.0.0.1:5060".parse().unwrap();
    for (i, transport) in [Transport::Udp, Transport::Tcp].into_iter().enumerate() {
        let peer = Peer {
            transport,
            addr: "127.0.0.2:5070".parse().unwrap(),
        };
        core.handle_bytes(now + Duration::from_millis(i as u64), peer, local, data);
        while core.poll_transmit().is_some() {}
        while core.poll_event().is_some() {}
    }
    core.handle_timeout(now + Duration::from_secs(64));
    while core.poll_transmit().is_some() {}
});
