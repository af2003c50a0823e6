//! Bounds-checked reads from packet memory and the Ethernet/IP/TCP walk to a TCP payload.

/// Ethertypes and IP protocol numbers we follow.
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const IPV6_HLEN: usize = 40;

/// A packet's bytes as `[start, end)` addresses, as XDP and TC hand them over.
#[derive(Clone, Copy)]
pub struct Packet {
    pub start: usize,
    pub end: usize,
}

impl Packet {
    /// `N` bytes at `offset`, or `None` past the end of the packet.
    #[inline(always)]
    pub fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        if self.start + offset + N > self.end {
            return None;
        }
        // SAFETY: the range was checked against the packet's end just above.
        Some(unsafe { core::ptr::read_unaligned((self.start + offset) as *const [u8; N]) })
    }

    #[inline(always)]
    fn be16_at(&self, offset: usize) -> Option<u16> {
        Some(u16::from_be_bytes(self.bytes::<2>(offset)?))
    }
}

/// A TCP segment's addresses and where its payload starts.
pub struct TcpSegment {
    /// Source and destination addresses; IPv4 as IPv4-mapped IPv6.
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte ([`TCP_FIN`], [`TCP_RST`], ...).
    pub flags: u8,
    /// Offset of the TCP payload from the start of the packet.
    pub payload_offset: usize,
    /// Payload bytes according to the IP header (0 if the header says less than the
    /// TCP header needs, e.g. a GSO super-packet with no length).
    pub payload_len: usize,
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_RST: u8 = 0x04;

/// Walk Ethernet (with at most one VLAN tag) and IPv4/IPv6 to a TCP header.
/// IPv6 extension headers and non-first IPv4 fragments are not followed.
#[inline(always)]
pub fn tcp_segment(pkt: &Packet) -> Option<TcpSegment> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = pkt.be16_at(12)?;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = pkt.be16_at(16)?;
        l3 += VLAN_HLEN;
    }
    // `ip_len`: bytes from the start of the IP header to the end of the IP payload.
    let (src_addr, dst_addr, l4, ip_len) = match ethertype {
        ETH_P_IP => {
            let head = pkt.bytes::<20>(l3)?;
            let frag_offset = u16::from_be_bytes([head[6], head[7]]) & 0x1fff;
            if head[9] != IPPROTO_TCP || frag_offset != 0 {
                return None;
            }
            let ihl = ((head[0] & 0x0f) as usize) * 4;
            if ihl < 20 {
                return None;
            }
            let src = ratewire_common::types::ipv4_mapped([head[12], head[13], head[14], head[15]]);
            let dst = ratewire_common::types::ipv4_mapped([head[16], head[17], head[18], head[19]]);
            let total_len = u16::from_be_bytes([head[2], head[3]]) as usize;
            (src, dst, l3 + ihl, total_len)
        }
        ETH_P_IPV6 => {
            let fixed = pkt.bytes::<8>(l3)?;
            if fixed[6] != IPPROTO_TCP {
                return None;
            }
            let payload_len = u16::from_be_bytes([fixed[4], fixed[5]]) as usize;
            let src = pkt.bytes::<16>(l3 + 8)?;
            let dst = pkt.bytes::<16>(l3 + 24)?;
            (src, dst, l3 + IPV6_HLEN, IPV6_HLEN + payload_len)
        }
        _ => return None,
    };
    let tcp = pkt.bytes::<14>(l4)?;
    let data_offset = ((tcp[12] >> 4) as usize) * 4;
    if data_offset < 20 {
        return None;
    }
    Some(TcpSegment {
        src_addr,
        dst_addr,
        src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        flags: tcp[13],
        payload_offset: l4 + data_offset,
        payload_len: (l3 + ip_len).saturating_sub(l4 + data_offset),
    })
}
