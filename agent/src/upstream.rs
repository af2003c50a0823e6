//! How an upstream is written in labels and journals: `ip:port`, IPv6 as `[addr]:port`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The probes store every address as IPv6, IPv4 as IPv4-mapped (`::ffff:a.b.c.d`);
/// turn it back into the address family it came from.
pub fn ip_from_probe(addr: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// `10.0.0.2:8000` or `[fd00::2]:8000`, the label form used everywhere.
pub fn label(addr: [u8; 16], port: u16) -> String {
    SocketAddr::new(ip_from_probe(addr), port).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratewire_common::types::ipv4_mapped;

    #[test]
    fn labels() {
        assert_eq!(label(ipv4_mapped([10, 0, 0, 2]), 8000), "10.0.0.2:8000");
        let v6: Ipv6Addr = "fd00:231:1::2".parse().unwrap();
        assert_eq!(label(v6.octets(), 443), "[fd00:231:1::2]:443");
        assert_eq!(label(Ipv6Addr::LOCALHOST.octets(), 80), "[::1]:80");
    }
}
