//! From a captured frame to a TCP segment: link layer (Ethernet with VLAN tags, Linux
//! cooked SLL and SLL2, raw IP, BSD loopback), IPv4 or IPv6 (with extension headers),
//! and the TCP header. Every read is bounds-checked: a short or garbled frame is skipped
//! with a reason, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pcap_file::DataLink;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;

/// TCP flag bits.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// A TCP segment of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub flags: u8,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
    /// The payload's length on the wire; more than `payload.len()` when the snap length
    /// cut the frame.
    pub wire_len: u32,
}

/// Why a frame yields no TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// A link type replay does not read.
    UnsupportedLink,
    /// Not IP, or IP but not TCP.
    NotTcp,
    /// An IP fragment: only whole datagrams are read.
    Fragment,
    /// Headers cut short or inconsistent.
    Malformed,
}

/// The TCP segment in `frame` (captured bytes of a frame `orig_len` long on the wire).
pub fn tcp_segment(link: DataLink, frame: &[u8], orig_len: u32) -> Result<Segment<'_>, Skip> {
    let (ethertype, l3) = network_layer(link, frame)?;
    // Bytes the frame had on the wire past the link header.
    let wire_l3_len = (orig_len as usize).saturating_sub(l3);
    let packet = frame.get(l3..).ok_or(Skip::Malformed)?;
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(packet, wire_l3_len),
        ETHERTYPE_IPV6 => ipv6(packet, wire_l3_len),
        _ => Err(Skip::NotTcp),
    }
}

/// The ethertype of the network layer and where it starts.
fn network_layer(link: DataLink, frame: &[u8]) -> Result<(u16, usize), Skip> {
    match link {
        DataLink::ETHERNET => {
            let mut ethertype = be16(frame, 12)?;
            let mut offset = 14;
            // At most two tags (802.1ad outer, 802.1Q inner).
            for _ in 0..2 {
                if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
                    break;
                }
                ethertype = be16(frame, offset + 2)?;
                offset += 4;
            }
            Ok((ethertype, offset))
        }
        // Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes, protocol.
        DataLink::LINUX_SLL => Ok((be16(frame, 14)?, 16)),
        // Linux cooked v2 (`tcpdump -i any` since libpcap 1.10): protocol first, 20 bytes.
        DataLink::LINUX_SLL2 => Ok((be16(frame, 0)?, 20)),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => {
            let version = frame.first().ok_or(Skip::Malformed)? >> 4;
            Ok((ip_version_ethertype(version)?, 0))
        }
        // BSD loopback: a 4-byte address family, host order (NULL) or network order (LOOP).
        DataLink::NULL | DataLink::LOOP => {
            let family = frame.get(..4).ok_or(Skip::Malformed)?;
            let family = if link == DataLink::LOOP || family[0] == 0 {
                u32::from_be_bytes(family.try_into().expect("4 bytes"))
            } else {
                u32::from_le_bytes(family.try_into().expect("4 bytes"))
            };
            match family {
                2 => Ok((ETHERTYPE_IPV4, 4)),
                // AF_INET6 is 10 (Linux), 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (macOS).
                10 | 24 | 28 | 30 => Ok((ETHERTYPE_IPV6, 4)),
                _ => Err(Skip::NotTcp),
            }
        }
        _ => Err(Skip::UnsupportedLink),
    }
}

fn ip_version_ethertype(version: u8) -> Result<u16, Skip> {
    match version {
        4 => Ok(ETHERTYPE_IPV4),
        6 => Ok(ETHERTYPE_IPV6),
        _ => Err(Skip::NotTcp),
    }
}

fn ipv4(packet: &[u8], wire_len: usize) -> Result<Segment<'_>, Skip> {
    let header = packet.get(..20).ok_or(Skip::Malformed)?;
    if header[0] >> 4 != 4 {
        return Err(Skip::Malformed);
    }
    let ihl = usize::from(header[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(Skip::Malformed);
    }
    if header[9] != IPPROTO_TCP {
        return Err(Skip::NotTcp);
    }
    let fragment = u16::from_be_bytes([header[6], header[7]]);
    if fragment & 0x3fff != 0 {
        return Err(Skip::Fragment); // MF set or a non-zero offset
    }
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // A total length of 0 is what segmentation offload leaves in large captured
    // packets; then the wire length is all we know.
    let datagram_len = if total_len >= ihl {
        total_len
    } else {
        wire_len
    };
    let src = IpAddr::V4(Ipv4Addr::new(
        header[12], header[13], header[14], header[15],
    ));
    let dst = IpAddr::V4(Ipv4Addr::new(
        header[16], header[17], header[18], header[19],
    ));
    tcp(packet, ihl, datagram_len, src, dst)
}

fn ipv6(packet: &[u8], wire_len: usize) -> Result<Segment<'_>, Skip> {
    let header = packet.get(..40).ok_or(Skip::Malformed)?;
    if header[0] >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    // Payload length 0: a jumbogram, or offload as for IPv4.
    let datagram_len = if payload_len > 0 {
        40 + payload_len
    } else {
        wire_len
    };
    let src = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&header[8..24]).expect("16 bytes"),
    ));
    let dst = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&header[24..40]).expect("16 bytes"),
    ));
    let mut next = header[6];
    let mut offset = 40;
    // Extension headers, bounded so a crafted chain cannot loop for long.
    for _ in 0..8 {
        match next {
            IPPROTO_TCP => return tcp(packet, offset, datagram_len, src, dst),
            // Hop-by-hop, routing, destination options: (length + 1) * 8 bytes.
            0 | 43 | 60 => {
                let ext = packet.get(offset..offset + 2).ok_or(Skip::Malformed)?;
                next = ext[0];
                offset += (usize::from(ext[1]) + 1) * 8;
            }
            // Authentication header: (length + 2) * 4 bytes.
            51 => {
                let ext = packet.get(offset..offset + 2).ok_or(Skip::Malformed)?;
                next = ext[0];
                offset += (usize::from(ext[1]) + 2) * 4;
            }
            44 => return Err(Skip::Fragment),
            _ => return Err(Skip::NotTcp),
        }
    }
    Err(Skip::Malformed)
}

/// The TCP header at `l4` of an IP datagram `datagram_len` long on the wire.
fn tcp(
    packet: &[u8],
    l4: usize,
    datagram_len: usize,
    src: IpAddr,
    dst: IpAddr,
) -> Result<Segment<'_>, Skip> {
    let header = packet.get(l4..l4 + 20).ok_or(Skip::Malformed)?;
    let data_offset = usize::from(header[12] >> 4) * 4;
    if data_offset < 20 {
        return Err(Skip::Malformed);
    }
    let payload_start = l4 + data_offset;
    let wire_len = datagram_len
        .checked_sub(payload_start)
        .ok_or(Skip::Malformed)?;
    // Captured payload: up to the datagram's end (Ethernet pads short frames) or the
    // end of what was captured. A header cut by the snap length is unreadable.
    let captured_end = packet.len().min(datagram_len);
    if captured_end < payload_start {
        return Err(Skip::Malformed);
    }
    Ok(Segment {
        src: SocketAddr::new(src, u16::from_be_bytes([header[0], header[1]])),
        dst: SocketAddr::new(dst, u16::from_be_bytes([header[2], header[3]])),
        seq: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        flags: header[13],
        payload: &packet[payload_start..captured_end],
        wire_len: u32::try_from(wire_len).map_err(|_| Skip::Malformed)?,
    })
}

fn be16(frame: &[u8], offset: usize) -> Result<u16, Skip> {
    let b = frame.get(offset..offset + 2).ok_or(Skip::Malformed)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}
