//! Reading frames from pcap and pcapng files (through `pcap-file`), each with its link
//! type and a Unix-nanosecond timestamp.
//!
//! Two `pcap-file` 2.0 behaviours are worked around here: its checked pcap packet reader
//! rejects packets whose original length exceeds the snap length (every packet of a
//! `tcpdump -s 128` capture), so raw packets are read instead; and its pcapng reader
//! ignores `if_tsresol`/`if_tsoffset`, so timestamps are rescaled here per interface.

use std::io::{Chain, Cursor, ErrorKind, Read};

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, PcapError, TsResolution};

/// One captured frame, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// 1-based position among the capture's packets (Wireshark's frame number).
    pub number: u64,
    pub unix_ns: u64,
    pub link: DataLink,
    /// The captured bytes (possibly cut short by the snap length).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
}

/// Why a capture could not be read, or read further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureFault {
    /// The first bytes are not a pcap or pcapng magic number.
    NotACapture(String),
    /// The file header is cut short or invalid.
    BadHeader(String),
    /// Packet `packet` (1-based) could not be read; the packets before it were.
    BadPacket { packet: u64, reason: String },
}

type Input<R> = Chain<Cursor<[u8; 4]>, R>;

/// A pcap or pcapng reader. Formats are told apart by the magic number.
pub enum CaptureReader<R: Read> {
    Pcap {
        reader: PcapReader<Input<R>>,
        link: DataLink,
        nanosecond: bool,
        packets: u64,
    },
    PcapNg {
        reader: PcapNgReader<Input<R>>,
        interfaces: Vec<Interface>,
        packets: u64,
        last_unix_ns: u64,
    },
}

/// What a pcapng interface description says about its packets.
#[derive(Clone, Copy, Debug)]
pub struct Interface {
    link: DataLink,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    units_per_sec: u128,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: u64,
}

impl Interface {
    fn from_block(idb: &InterfaceDescriptionBlock) -> Interface {
        let mut iface = Interface {
            link: idb.linktype,
            units_per_sec: 1_000_000,
            offset_secs: 0,
        };
        for option in &idb.options {
            match *option {
                InterfaceDescriptionOption::IfTsResol(r) => {
                    let exp = u32::from(r & 0x7f);
                    let units = if r & 0x80 == 0 {
                        10u128.checked_pow(exp)
                    } else {
                        2u128.checked_pow(exp)
                    };
                    iface.units_per_sec = units.unwrap_or(u128::MAX).max(1);
                }
                InterfaceDescriptionOption::IfTsOffset(secs) => iface.offset_secs = secs,
                _ => {}
            }
        }
        iface
    }

    fn unix_ns(&self, units: u64) -> u64 {
        let ns = u128::from(units) * 1_000_000_000 / self.units_per_sec
            + u128::from(self.offset_secs) * 1_000_000_000;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl<R: Read> CaptureReader<R> {
    /// Read the file header.
    pub fn open(mut input: R) -> Result<CaptureReader<R>, CaptureFault> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match input.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(CaptureFault::BadHeader(e.to_string())),
            }
        }
        if got < 4 {
            return Err(CaptureFault::NotACapture(format!("only {got} bytes long")));
        }
        let input = Cursor::new(magic).chain(input);
        if PCAP_MAGICS.contains(&magic) {
            let reader = PcapReader::new(input).map_err(header_fault)?;
            let header = reader.header();
            return Ok(CaptureReader::Pcap {
                link: header.datalink,
                nanosecond: header.ts_resolution == TsResolution::NanoSecond,
                reader,
                packets: 0,
            });
        }
        if magic == PCAPNG_MAGIC {
            let reader = PcapNgReader::new(input).map_err(header_fault)?;
            return Ok(CaptureReader::PcapNg {
                reader,
                interfaces: Vec::new(),
                packets: 0,
                last_unix_ns: 0,
            });
        }
        Err(CaptureFault::NotACapture(format!(
            "starts with {:02x} {:02x} {:02x} {:02x}, not a pcap or pcapng magic number",
            magic[0], magic[1], magic[2], magic[3]
        )))
    }

    /// The link type of a pcap file (pcapng files have one per interface).
    pub fn pcap_link(&self) -> Option<DataLink> {
        match self {
            CaptureReader::Pcap { link, .. } => Some(*link),
            CaptureReader::PcapNg { .. } => None,
        }
    }

    /// Call `each` for every frame, in file order. Stops at the first packet that cannot
    /// be read and says which; every frame before it has been handed over.
    pub fn for_each_frame(&mut self, mut each: impl FnMut(Frame<'_>)) -> Result<(), CaptureFault> {
        match self {
            CaptureReader::Pcap {
                reader,
                link,
                nanosecond,
                packets,
            } => {
                while let Some(next) = reader.next_raw_packet() {
                    *packets += 1;
                    let raw = next.map_err(|e| packet_fault(*packets, e))?;
                    let frac_ns = if *nanosecond {
                        u64::from(raw.ts_frac)
                    } else {
                        u64::from(raw.ts_frac) * 1_000
                    };
                    each(Frame {
                        number: *packets,
                        unix_ns: u64::from(raw.ts_sec) * 1_000_000_000 + frac_ns,
                        link: *link,
                        data: &raw.data,
                        orig_len: raw.orig_len.max(raw.data.len() as u32),
                    });
                }
                Ok(())
            }
            CaptureReader::PcapNg {
                reader,
                interfaces,
                packets,
                last_unix_ns,
            } => {
                while let Some(next) = reader.next_block() {
                    let block = next.map_err(|e| packet_fault(*packets + 1, e))?;
                    // (interface, timestamp units or none, original length, data)
                    let (iface_id, units, orig_len, data) = match &block {
                        Block::SectionHeader(_) => {
                            interfaces.clear();
                            continue;
                        }
                        Block::InterfaceDescription(idb) => {
                            interfaces.push(Interface::from_block(idb));
                            continue;
                        }
                        Block::EnhancedPacket(epb) => (
                            epb.interface_id,
                            // pcap-file stores the raw units as if they were nanoseconds.
                            Some(epb.timestamp.as_nanos() as u64),
                            epb.original_len,
                            &epb.data[..],
                        ),
                        Block::Packet(pb) => (
                            u32::from(pb.interface_id),
                            Some(pb.timestamp),
                            pb.original_len,
                            &pb.data[..],
                        ),
                        // No timestamp; its data include the block padding.
                        Block::SimplePacket(spb) => {
                            let len = spb.data.len().min(spb.original_len as usize);
                            (0, None, spb.original_len, &spb.data[..len])
                        }
                        _ => continue,
                    };
                    *packets += 1;
                    let Some(iface) = interfaces.get(iface_id as usize) else {
                        return Err(CaptureFault::BadPacket {
                            packet: *packets,
                            reason: format!(
                                "refers to interface {iface_id}, which no block describes"
                            ),
                        });
                    };
                    let unix_ns = units.map_or(*last_unix_ns, |u| iface.unix_ns(u));
                    *last_unix_ns = unix_ns;
                    each(Frame {
                        number: *packets,
                        unix_ns,
                        link: iface.link,
                        data,
                        orig_len: orig_len.max(data.len() as u32),
                    });
                }
                Ok(())
            }
        }
    }
}

fn describe(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
            "cut short (the file ends inside it)".into()
        }
        PcapError::IoError(io) => format!("read error: {io}"),
        PcapError::IncompleteBuffer => "cut short (the file ends inside it)".into(),
        PcapError::InvalidField(what) => format!("corrupt ({what})"),
        other => format!("corrupt ({other})"),
    }
}

fn header_fault(e: PcapError) -> CaptureFault {
    CaptureFault::BadHeader(describe(&e))
}

fn packet_fault(packet: u64, e: PcapError) -> CaptureFault {
    CaptureFault::BadPacket {
        packet,
        reason: describe(&e),
    }
}
