//! Building captures by hand: TCP conversations turned into frames and written as pcap.
//! Used by the tests, the benchmark and the fuzz seeds, so none of them needs a network.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, PcapError};

use crate::decode::{ACK, FIN, RST, SYN};

/// TCP PSH flag (set on data segments, as stacks do).
pub const PSH: u8 = 0x08;

/// One TCP segment to put in a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpPacket {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
}

/// The link layer to wrap packets in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    RawIp,
}

impl Link {
    pub fn data_link(self) -> DataLink {
        match self {
            Link::Ethernet => DataLink::ETHERNET,
            Link::LinuxSll => DataLink::LINUX_SLL,
            Link::LinuxSll2 => DataLink::LINUX_SLL2,
            Link::RawIp => DataLink::RAW,
        }
    }
}

/// The frame bytes of `packet` on `link`, with valid IPv4 and TCP checksums.
pub fn frame(link: Link, packet: &TcpPacket) -> Vec<u8> {
    let ip = ip_packet(packet);
    let ethertype: u16 = if packet.src.is_ipv4() { 0x0800 } else { 0x86dd };
    let mut frame = Vec::with_capacity(ip.len() + 20);
    match link {
        Link::Ethernet => {
            frame.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1]);
            frame.extend_from_slice(&ethertype.to_be_bytes());
        }
        Link::LinuxSll => {
            // Packet type "sent by us", ARPHRD_ETHER, a 6-byte address.
            frame.extend_from_slice(&[0, 4, 0, 1, 0, 6, 0, 0, 0, 0, 0, 1, 0, 0]);
            frame.extend_from_slice(&ethertype.to_be_bytes());
        }
        Link::LinuxSll2 => {
            frame.extend_from_slice(&ethertype.to_be_bytes());
            // Reserved, interface index 1, ARPHRD_ETHER, packet type, address length 6.
            frame.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1, 4, 6]);
            frame.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0]);
        }
        Link::RawIp => {}
    }
    frame.extend_from_slice(&ip);
    frame
}

fn ip_packet(p: &TcpPacket) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20 + p.payload.len());
    tcp.extend_from_slice(&p.src.port().to_be_bytes());
    tcp.extend_from_slice(&p.dst.port().to_be_bytes());
    tcp.extend_from_slice(&p.seq.to_be_bytes());
    tcp.extend_from_slice(&p.ack.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, p.flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(&p.payload);
    let tcp_len = tcp.len();
    let mut out = Vec::with_capacity(40 + tcp_len);
    let mut pseudo = Vec::with_capacity(40);
    match (p.src.ip(), p.dst.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]); // DF, TTL 64, TCP
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
            let sum = checksum(&[&out]);
            out[10..12].copy_from_slice(&sum.to_be_bytes());
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        }
        (src, dst) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(v6) => v6.octets(),
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            };
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            out.extend_from_slice(&[6, 64]);
            out.extend_from_slice(&v6(src));
            out.extend_from_slice(&v6(dst));
            pseudo.extend_from_slice(&v6(src));
            pseudo.extend_from_slice(&v6(dst));
            pseudo.extend_from_slice(&(tcp_len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
        }
    }
    let sum = checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(&tcp);
    out
}

/// The Internet checksum (RFC 1071) of the concatenation of `parts` (each even-length
/// except possibly the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A pcap file being written, with nanosecond timestamps.
pub struct PcapOut<W: Write> {
    writer: PcapWriter<W>,
    link: Link,
    snaplen: u32,
}

impl<W: Write> PcapOut<W> {
    pub fn new(out: W, link: Link) -> Result<PcapOut<W>, PcapError> {
        PcapOut::with_snaplen(out, link, 262_144)
    }

    /// Frames longer than `snaplen` are cut, as `tcpdump -s` does.
    pub fn with_snaplen(out: W, link: Link, snaplen: u32) -> Result<PcapOut<W>, PcapError> {
        let header = PcapHeader {
            datalink: link.data_link(),
            ts_resolution: pcap_file::TsResolution::NanoSecond,
            endianness: pcap_file::Endianness::Little,
            snaplen: 262_144,
            ..PcapHeader::default()
        };
        Ok(PcapOut {
            writer: PcapWriter::with_header(out, header)?,
            link,
            snaplen,
        })
    }

    pub fn write(&mut self, unix_ns: u64, packet: &TcpPacket) -> Result<(), PcapError> {
        let data = frame(self.link, packet);
        let captured = data.len().min(self.snaplen as usize);
        self.writer.write_packet(&PcapPacket::new(
            Duration::from_nanos(unix_ns),
            data.len() as u32,
            &data[..captured],
        ))?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.writer.into_writer()
    }
}

/// One TCP connection's sequence numbers, handing out its packets in order.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Next sequence number of the client and of the server.
    pub client_seq: u32,
    pub server_seq: u32,
}

impl Tcp {
    /// Initial sequence numbers near the wrap, so every test crosses it sooner or later.
    pub fn new(client: SocketAddr, server: SocketAddr) -> Tcp {
        Tcp {
            client,
            server,
            client_seq: 0xffff_ff00,
            server_seq: 0x7fff_fff0,
        }
    }

    fn packet(&self, from_client: bool, flags: u8, payload: &[u8]) -> TcpPacket {
        let (src, dst, seq, ack) = if from_client {
            (self.client, self.server, self.client_seq, self.server_seq)
        } else {
            (self.server, self.client, self.server_seq, self.client_seq)
        };
        TcpPacket {
            src,
            dst,
            seq,
            ack,
            flags,
            payload: payload.to_vec(),
        }
    }

    fn advance(&mut self, from_client: bool, n: u32) {
        let seq = if from_client {
            &mut self.client_seq
        } else {
            &mut self.server_seq
        };
        *seq = seq.wrapping_add(n);
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> Vec<TcpPacket> {
        let syn = self.packet(true, SYN, b"");
        self.advance(true, 1);
        let syn_ack = self.packet(false, SYN | ACK, b"");
        self.advance(false, 1);
        vec![syn, syn_ack, self.packet(true, ACK, b"")]
    }

    /// Data from the client.
    pub fn client_data(&mut self, payload: &[u8]) -> TcpPacket {
        let p = self.packet(true, PSH | ACK, payload);
        self.advance(true, payload.len() as u32);
        p
    }

    /// Data from the server.
    pub fn server_data(&mut self, payload: &[u8]) -> TcpPacket {
        let p = self.packet(false, PSH | ACK, payload);
        self.advance(false, payload.len() as u32);
        p
    }

    /// A bare ACK from the client (or the server).
    pub fn ack(&self, from_client: bool) -> TcpPacket {
        self.packet(from_client, ACK, b"")
    }

    pub fn fin(&mut self, from_client: bool) -> TcpPacket {
        let p = self.packet(from_client, FIN | ACK, b"");
        self.advance(from_client, 1);
        p
    }

    pub fn rst(&self, from_client: bool) -> TcpPacket {
        self.packet(from_client, RST | ACK, b"")
    }
}
