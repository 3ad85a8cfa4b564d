//! Peer source addresses: one canonical form to compare them and to match them against an
//! allowlist of networks (the SRS's `sip_allow`, RTP latching).
//!
//! A dual-stack socket reports an IPv4 peer as the IPv4-mapped IPv6 address
//! `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2); the SDP and the configuration name it as `a.b.c.d`.
//! Both forms must compare equal and match the same `a.b.c.0/24`.

use std::net::IpAddr;

/// `ip` with an IPv4-mapped IPv6 address turned back into IPv4; every other address as is.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `true` when `allow` is empty (anyone) or one of its networks contains `ip`, in either
/// of its forms.
pub fn allowed(allow: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    allow.is_empty() || allow.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_plain_ipv4_match_the_same_networks() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let plain: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(canonical_ip(mapped), plain);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
        let nets: Vec<ipnet::IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        assert!(allowed(&nets, mapped) && allowed(&nets, plain));
        assert!(!allowed(&nets, "198.51.100.1".parse().unwrap()));
        assert!(!allowed(&nets, v6));
        assert!(allowed(&[], v6), "an empty list allows anyone");
        let v6_nets: Vec<ipnet::IpNet> = vec!["2001:db8::/32".parse().unwrap()];
        assert!(allowed(&v6_nets, v6) && !allowed(&v6_nets, plain));
    }
}
