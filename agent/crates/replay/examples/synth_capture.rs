//! Write a synthetic capture for benchmarks: many interleaved keep-alive connections to
//! a few upstreams, a mix of statuses (429s with Retry-After, 5xx, chunked event
//! streams), as Ethernet pcap. Deterministic for a given seed.
//!
//! `synth_capture OUT.pcap [RESPONSES] [SEED]` prints `packets=N responses=R`
//! plus the count per status, one `status=CODE count=N` line each.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;

use ratewire_replay::synth::{Link, PcapOut, Tcp, TcpPacket};

/// Connections open at the same time; their packets interleave.
const IN_FLIGHT: usize = 256;
const UPSTREAMS: [&str; 4] = [
    "10.1.0.1:8000",
    "10.1.0.2:8000",
    "10.1.0.3:8000",
    "[fd00::10]:8000",
];

/// xorshift64*: enough randomness for a traffic mix, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One connection's remaining script.
struct Conn {
    tcp: Tcp,
    exchanges_left: u32,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out_path = args
        .next()
        .expect("usage: synth_capture OUT.pcap [RESPONSES] [SEED]");
    let responses: u64 = args
        .next()
        .map_or(100_000, |n| n.parse().expect("RESPONSES"));
    let mut rng = Rng(args.next().map_or(0x5eed, |s| s.parse().expect("SEED")) | 1);

    let file = File::create(&out_path).expect("create the capture file");
    let mut out = PcapOut::new(BufWriter::with_capacity(1 << 20, file), Link::Ethernet).unwrap();
    let mut clock: u64 = 1_714_564_800_000_000_000;
    let mut packets = 0u64;
    let mut write = |p: &TcpPacket, clock: &mut u64| {
        *clock += 20_000 + (p.payload.len() as u64) * 10; // 20 µs + 10 ns per byte
        out.write(*clock, p).unwrap();
        packets += 1;
    };

    let mut per_status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut started = 0u64;
    let mut next_port = 0u32;
    let mut open: Vec<Conn> = Vec::new();
    while started < responses || !open.is_empty() {
        // Keep IN_FLIGHT connections open while responses remain to be scripted.
        while open.len() < IN_FLIGHT && started < responses {
            next_port += 1;
            let upstream = UPSTREAMS[rng.below(UPSTREAMS.len() as u64) as usize];
            let client: SocketAddr = if upstream.starts_with('[') {
                format!(
                    "[fd00::{:x}]:{}",
                    0x100 + next_port / 60_000,
                    1024 + next_port % 60_000
                )
            } else {
                format!(
                    "10.0.{}.{}:{}",
                    next_port / 60_000 % 256,
                    1 + next_port / 60_000 / 256 % 250,
                    1024 + next_port % 60_000
                )
            }
            .parse()
            .unwrap();
            let exchanges = (1 + rng.below(20) as u32).min((responses - started) as u32);
            started += u64::from(exchanges);
            let mut conn = Conn {
                tcp: Tcp::new(client, upstream.parse().unwrap()),
                exchanges_left: exchanges,
            };
            for p in conn.tcp.handshake() {
                write(&p, &mut clock);
            }
            open.push(conn);
        }
        // One step of a random open connection: an exchange, or its close.
        let i = rng.below(open.len() as u64) as usize;
        let conn = &mut open[i];
        if conn.exchanges_left == 0 {
            let mut conn = open.swap_remove(i);
            let fin = conn.tcp.fin(true);
            write(&fin, &mut clock);
            write(&conn.tcp.ack(false), &mut clock);
            let fin = conn.tcp.fin(false);
            write(&fin, &mut clock);
            write(&conn.tcp.ack(true), &mut clock);
            continue;
        }
        conn.exchanges_left -= 1;
        let retry = rng.below(3);
        let body = r#"{"model":"bench","messages":[{"role":"user","content":"hi"}]}"#;
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\nAuthorization: Bearer sk-bench\r\n\
             x-stainless-retry-count: {retry}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let p = conn.tcp.client_data(request.as_bytes());
        write(&p, &mut clock);
        write(&conn.tcp.ack(false), &mut clock);
        let status = match rng.below(100) {
            0..=69 => 200,
            70..=89 => 429,
            90..=92 => 500,
            93..=97 => 503,
            _ => 400,
        };
        *per_status.entry(status).or_default() += 1;
        if status == 200 && rng.below(3) == 0 {
            // A streamed completion: head, then events in their own segments.
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            let p = conn.tcp.server_data(head.as_bytes());
            write(&p, &mut clock);
            for event in [
                "data: {\"delta\":\"Hel\"}\n\n",
                "data: {\"delta\":\"lo\"}\n\n",
                "data: [DONE]\n\n",
            ] {
                let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                let p = conn.tcp.server_data(chunk.as_bytes());
                write(&p, &mut clock);
            }
            let p = conn.tcp.server_data(b"0\r\n\r\n");
            write(&p, &mut clock);
        } else {
            let (reason, extra, body) = match status {
                200 => (
                    "OK",
                    "",
                    "{\"choices\":[{\"message\":{\"content\":\"Hello\"}}]}",
                ),
                429 => (
                    "Too Many Requests",
                    "retry-after: 2\r\nx-ratelimit-remaining-requests: 0\r\n",
                    "{\"error\":{\"type\":\"rate_limit\"}}",
                ),
                500 => ("Internal Server Error", "", "{\"error\":\"internal\"}"),
                503 => (
                    "Service Unavailable",
                    "retry-after-ms: 1500\r\n",
                    "{\"error\":\"overloaded\"}",
                ),
                _ => ("Bad Request", "", "{\"error\":\"bad\"}"),
            };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
                body.len()
            );
            let p = conn.tcp.server_data(response.as_bytes());
            write(&p, &mut clock);
        }
        write(&conn.tcp.ack(true), &mut clock);
    }
    out.into_inner()
        .into_inner()
        .expect("flush the capture file");
    let total: u64 = per_status.values().sum();
    println!("packets={packets} responses={total}");
    for (status, count) in per_status {
        println!("status={status} count={count}");
    }
}
