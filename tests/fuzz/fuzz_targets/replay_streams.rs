//! Arbitrary TCP payloads in a well-formed capture, so the fuzzer spends its time in
//! reassembly and HTTP framing rather than in file headers. The input is a list of
//! segments: a control byte (direction, reorder, retransmit, FIN/RST, snap length)
//! followed by a length byte and that many payload bytes.
#![no_main]

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ratewire_replay::synth::{Link, PcapOut, Tcp, TcpPacket};
use ratewire_replay::{replay_reader, ReplayOptions};

fuzz_target!(|data: &[u8]| {
    let client: SocketAddr = "[::1]:40000".parse().unwrap();
    let server: SocketAddr = "[::1]:8000".parse().unwrap();
    let mut tcp = Tcp::new(client, server);
    let mut packets: Vec<TcpPacket> = if data.first().is_some_and(|b| b & 1 == 0) {
        tcp.handshake()
    } else {
        Vec::new()
    };
    let mut rest = data.get(1..).unwrap_or_default();
    while let [control, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, after) = tail.split_at(len);
        rest = after;
        let from_client = control & 1 == 0;
        let packet = match control >> 5 {
            6 => tcp.fin(from_client),
            7 => tcp.rst(from_client),
            _ if from_client => tcp.client_data(payload),
            _ => tcp.server_data(payload),
        };
        if control & 2 != 0 {
            packets.push(packet.clone()); // retransmitted
        }
        if control & 4 != 0 && !packets.is_empty() {
            let at = packets.len() - 1;
            packets.insert(at, packet); // arrives before the previous one
        } else {
            packets.push(packet);
        }
    }
    let snaplen = if data.len() % 7 == 0 { 96 } else { 65_535 };
    let mut out = PcapOut::with_snaplen(Vec::new(), Link::Ethernet, snaplen).unwrap();
    for (i, p) in packets.iter().enumerate() {
        out.write(1_700_000_000_000_000_000 + i as u64 * 1_000_000, p)
            .unwrap();
    }
    let report = replay_reader(
        Cursor::new(out.into_inner()),
        Path::new("fuzz.pcap"),
        &ReplayOptions::default(),
        &mut |_| {},
    )
    .expect("a written capture is readable");
    assert!(report.capture_error.is_none());
});
