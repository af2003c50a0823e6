//! Replay on hand-built captures: each test writes a small pcap with the exact TCP
//! packets of one situation and checks the records replay makes of it.

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ratewire_journal::{Kind, Record};
use ratewire_replay::synth::{Link, PcapOut, Tcp, TcpPacket};
use ratewire_replay::{replay_reader, ReplayError, ReplayOptions, ReplayReport};

const T0: u64 = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z
const MS: u64 = 1_000_000;

fn v4(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A pcap of `packets`, one millisecond apart from T0.
fn pcap(link: Link, packets: &[TcpPacket]) -> Vec<u8> {
    let mut out = PcapOut::new(Vec::new(), link).unwrap();
    for (i, p) in packets.iter().enumerate() {
        out.write(T0 + i as u64 * MS, p).unwrap();
    }
    out.into_inner()
}

fn replay_bytes(bytes: &[u8], opts: &ReplayOptions) -> (Vec<Record>, ReplayReport) {
    let mut records = Vec::new();
    let report = replay_reader(Cursor::new(bytes), Path::new("test.pcap"), opts, &mut |r| {
        records.push(r)
    })
    .unwrap();
    (records, report)
}

fn replay(packets: &[TcpPacket]) -> (Vec<Record>, ReplayReport) {
    replay_bytes(&pcap(Link::Ethernet, packets), &ReplayOptions::default())
}

/// `status` of responses, `no_response:reason` of the rest, in record order.
fn outcomes(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| match r.kind {
            Kind::Response => r.status.unwrap().to_string(),
            Kind::NoResponse => format!("no_response:{}", r.reason.as_deref().unwrap()),
            Kind::Gap => "gap".into(),
        })
        .collect()
}

fn conn() -> Tcp {
    Tcp::new(v4("127.0.0.1:40000"), v4("127.0.0.1:8000"))
}

const CHAT: &[u8] = b"POST /v1/chat/completions?api-key=sk-secret HTTP/1.1\r\nHost: x\r\n\
    Authorization: Bearer sk-secret\r\nx-stainless-retry-count: 2\r\n\
    Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"model\":\"gpt-x\"}";

fn response(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn records_a_response_with_its_request_facts() {
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(&response(
        "429 Too Many Requests",
        "retry-after: 2\r\nx-ratelimit-remaining-requests: 0\r\n",
        "{\"error\":\"slow down\"}",
    )));
    packets.push(c.fin(true));
    packets.push(c.fin(false));
    let (records, report) = replay(&packets);
    assert_eq!(outcomes(&records), ["429"]);
    let r = &records[0];
    assert_eq!(r.upstream.as_deref(), Some("127.0.0.1:8000"));
    assert_eq!(r.client.as_deref(), Some("127.0.0.1:40000"));
    assert_eq!(r.method.as_deref(), Some("POST"));
    assert_eq!(r.route.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(r.client_retry, Some(2));
    assert_eq!(r.retry_after_ms, Some(2000));
    assert_eq!(r.request_unix_ns, Some(T0 + 3 * MS));
    assert_eq!(r.unix_ns, T0 + 4 * MS);
    assert_eq!(r.source, "replay");
    assert_eq!(report.stats.flows.connections, 1);
    assert!(report.capture_error.is_none());
    // Privacy: no query string, auth header, key or body in what is stored.
    let line = serde_json::to_string(r).unwrap();
    for secret in ["sk-secret", "Bearer", "api-key", "gpt-x", "slow down"] {
        assert!(!line.contains(secret), "{secret} leaked into {line}");
    }
}

#[test]
fn heads_split_across_segments_count_once_with_all_facts() {
    let mut c = conn();
    let mut packets = c.handshake();
    let (a, b) = CHAT.split_at(3); // "POS" | "T /v1/..."
    packets.push(c.client_data(a));
    packets.push(c.client_data(b));
    let resp = response("503 Service Unavailable", "Retry-After: 7\r\n", "{}");
    for piece in [&resp[..5], &resp[5..20], &resp[20..]] {
        packets.push(c.server_data(piece));
    }
    let (records, _) = replay(&packets);
    assert_eq!(outcomes(&records), ["503"]);
    assert_eq!(records[0].retry_after_ms, Some(7000));
    assert_eq!(records[0].client_retry, Some(2));
    assert_eq!(
        records[0].unix_ns,
        T0 + 5 * MS,
        "time of the head's first byte"
    );
}

#[test]
fn retransmissions_and_reordering_are_counted_once() {
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    let first = c.server_data(&response("200 OK", "", "{\"ok\":1}"));
    packets.push(first.clone());
    packets.push(first.clone()); // retransmission
    packets.push(c.client_data(CHAT));
    // Second response arrives tail first, then its head, then the head again.
    let resp = response("429 Too Many Requests", "", "{\"e\":2}");
    let head = c.server_data(&resp[..30]);
    let tail = c.server_data(&resp[30..]);
    packets.extend([tail, head.clone(), head]);
    // A retransmission overlapping old and new bytes (a stack's repacketisation).
    let mut overlap = first.clone();
    overlap.payload.truncate(10);
    packets.push(overlap);
    let (records, report) = replay(&packets);
    assert_eq!(outcomes(&records), ["200", "429"]);
    assert_eq!(report.stats.flows.holes, 0);
}

#[test]
fn body_segments_that_look_like_status_lines_are_body() {
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    // Content-Length body whose second segment starts with a status line.
    let body = "HTTP/1.1 429 Too Many Requests\r\n\r\nquoted by a model";
    let resp = response("200 OK", "", &format!("xx{body}"));
    let split = resp.len() - body.len();
    packets.push(c.server_data(&resp[..split]));
    packets.push(c.server_data(&resp[split..]));
    // A chunked (SSE) body whose chunks start with status lines.
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n",
    ));
    packets.push(c.server_data(b"1e\r\nHTTP/1.1 429 Too Many Requests\r\n"));
    packets.push(c.server_data(b"7;ext=1\r\nHTTP/1.\r\n0\r\nTrailer: x\r\n\r\n"));
    // And a server-sent status line with no request outstanding.
    packets.push(c.server_data(&response("429 Too Many Requests", "", "")));
    // The connection is still in step: the next exchange counts.
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(&response("201 Created", "", "")));
    let (records, report) = replay(&packets);
    assert_eq!(outcomes(&records), ["200", "200", "201"]);
    assert_eq!(report.stats.flows.unpaired_responses, 1);
    assert_eq!(report.stats.flows.desyncs, 0);
}

#[test]
fn interim_responses_do_not_end_the_wait() {
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(
        b"POST /v1/embeddings HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    ));
    packets.push(c.server_data(b"HTTP/1.1 100 Continue\r\n\r\n"));
    packets.push(c.client_data(b"{}"));
    packets.push(c.server_data(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"));
    packets.push(c.server_data(&response("200 OK", "", "[]")));
    let (records, report) = replay(&packets);
    assert_eq!(outcomes(&records), ["200"]);
    assert_eq!(records[0].route.as_deref(), Some("/v1/embeddings"));
    assert_eq!(report.stats.flows.interim_responses, 2);
}

#[test]
fn responses_to_head_and_bodiless_statuses_have_no_body() {
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(b"HEAD /v1/messages HTTP/1.1\r\n\r\n"));
    packets.push(c.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"));
    packets.push(c.client_data(b"GET /health HTTP/1.1\r\n\r\n"));
    packets.push(c.server_data(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"));
    packets.push(c.client_data(b"GET /x HTTP/1.1\r\n\r\n"));
    packets.push(c.server_data(b"HTTP/1.1 204 No Content\r\n\r\n"));
    packets.push(c.client_data(b"DELETE /x HTTP/1.1\r\n\r\n"));
    packets.push(c.server_data(&response("404 Not Found", "", "")));
    let (records, _) = replay(&packets);
    assert_eq!(outcomes(&records), ["200", "304", "204", "404"]);
    let routes: Vec<_> = records.iter().map(|r| r.route.clone().unwrap()).collect();
    assert_eq!(routes, ["/v1/messages", "other", "other", "other"]);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut c = conn();
    let mut packets = c.handshake();
    let mut two = b"GET /v1/completions HTTP/1.1\r\n\r\n".to_vec();
    two.extend_from_slice(b"POST /v1/messages HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    packets.push(c.client_data(&two));
    let mut answers = response("200 OK", "", "a");
    answers.extend(response(
        "429 Too Many Requests",
        "retry-after-ms: 1500\r\n",
        "",
    ));
    packets.push(c.server_data(&answers));
    let (records, _) = replay(&packets);
    assert_eq!(outcomes(&records), ["200", "429"]);
    assert_eq!(records[0].route.as_deref(), Some("/v1/completions"));
    assert_eq!(records[1].route.as_deref(), Some("/v1/messages"));
    assert_eq!(records[1].retry_after_ms, Some(1500));
}

#[test]
fn unanswered_requests_end_as_reset_closed_or_timeout() {
    // Reset by the server.
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    packets.push(c.rst(false));
    let (records, _) = replay(&packets);
    assert_eq!(outcomes(&records), ["no_response:reset"]);
    assert_eq!(records[0].unix_ns, T0 + 4 * MS);
    assert_eq!(records[0].upstream.as_deref(), Some("127.0.0.1:8000"));
    assert_eq!(records[0].client_retry, Some(2));

    // Closed by the server (client half-closes first; that alone ends nothing).
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    packets.push(c.fin(true));
    packets.push(c.fin(false));
    let (records, _) = replay(&packets);
    assert_eq!(outcomes(&records), ["no_response:closed"]);
    assert_eq!(records[0].unix_ns, T0 + 5 * MS);

    // The capture ends first.
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    let (records, _) = replay(&packets);
    assert_eq!(outcomes(&records), ["no_response:timeout"]);
}

#[test]
fn requests_time_out_at_their_deadline_while_others_go_on() {
    let mut idle = conn();
    let mut busy = Tcp::new(v4("127.0.0.1:40001"), v4("127.0.0.1:8000"));
    let mut out = PcapOut::new(Vec::new(), Link::Ethernet).unwrap();
    let mut t = T0;
    let mut write = |p: &TcpPacket, at: u64| out.write(at, p).unwrap();
    for p in idle.handshake() {
        write(&p, t);
    }
    write(&idle.client_data(CHAT), t);
    for p in busy.handshake() {
        write(&p, t);
    }
    for _ in 0..5 {
        t += 1_000 * MS;
        write(
            &busy.client_data(b"GET /v1/completions HTTP/1.1\r\n\r\n"),
            t,
        );
        write(&busy.server_data(&response("200 OK", "", "")), t);
    }
    let opts = ReplayOptions {
        response_timeout: Duration::from_secs(2),
    };
    let (records, _) = replay_bytes(&out.into_inner(), &opts);
    let timeouts: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == Kind::NoResponse)
        .collect();
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].reason.as_deref(), Some("timeout"));
    assert_eq!(timeouts[0].unix_ns, T0 + 2_000 * MS, "request + timeout");
    assert_eq!(records.iter().filter(|r| r.status == Some(200)).count(), 5);
}

#[test]
fn joins_connections_already_open_when_the_capture_began() {
    let mut c = conn();
    c.handshake(); // not captured
                   // The capture starts inside a response body, then a new exchange.
    let packets = vec![
        c.server_data(b"HTTP/1.1 429 in a body, no request seen"),
        c.server_data(b"...rest of a body"),
        c.client_data(CHAT),
        c.server_data(&response("200 OK", "", "{}")),
    ];
    let (records, report) = replay(&packets);
    assert_eq!(outcomes(&records), ["200"]);
    assert_eq!(report.stats.flows.unpaired_responses, 0);
    assert_eq!(report.stats.flows.desyncs, 1, "the stray head was dropped");
}

#[test]
fn reads_ipv6_and_every_link_type() {
    for link in [Link::Ethernet, Link::LinuxSll, Link::LinuxSll2, Link::RawIp] {
        for (client, server, upstream) in [
            (
                "[2001:db8::1]:40000",
                "[2001:db8::2]:443",
                "[2001:db8::2]:443",
            ),
            ("10.1.2.3:40000", "10.1.2.4:80", "10.1.2.4:80"),
        ] {
            let mut c = Tcp::new(v4(client), v4(server));
            let mut packets = c.handshake();
            packets.push(c.client_data(CHAT));
            packets.push(c.server_data(&response("429 Too Many Requests", "", "")));
            let (records, _) = replay_bytes(&pcap(link, &packets), &ReplayOptions::default());
            assert_eq!(outcomes(&records), ["429"], "{link:?} {client}");
            assert_eq!(records[0].upstream.as_deref(), Some(upstream), "{link:?}");
        }
    }
}

#[test]
fn snap_length_cut_heads_still_count() {
    // `tcpdump -s 120`: 54 bytes of headers, 66 of payload per frame.
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(&response(
        "429 Too Many Requests",
        "retry-after: 3\r\n",
        "{}",
    )));
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(&response("200 OK", "", &"x".repeat(500))));
    let mut out = PcapOut::with_snaplen(Vec::new(), Link::Ethernet, 120).unwrap();
    for (i, p) in packets.iter().enumerate() {
        out.write(T0 + i as u64 * MS, p).unwrap();
    }
    let (records, report) = replay_bytes(&out.into_inner(), &ReplayOptions::default());
    assert_eq!(outcomes(&records), ["429", "200"]);
    assert_eq!(records[0].route.as_deref(), Some("/v1/chat/completions"));
    assert!(report.stats.flows.holes >= 4);
}

#[test]
fn a_cut_capture_reports_the_packet_and_keeps_the_good_part() {
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(&response("200 OK", "", "{}")));
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(&response("429 Too Many Requests", "", "{}")));
    let bytes = pcap(Link::Ethernet, &packets);
    let cut = &bytes[..bytes.len() - 20];
    let (records, report) = replay_bytes(cut, &ReplayOptions::default());
    assert_eq!(outcomes(&records), ["200", "no_response:timeout"]);
    let err = report.capture_error.expect("cut capture");
    assert!(
        matches!(err, ReplayError::BadPacket { packet: 7, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "test.pcap: packet 7: cut short (the file ends inside it)"
    );
}

#[test]
fn rejects_what_is_not_a_capture() {
    for bytes in [&b""[..], b"GET / HTTP/1.1\r\n", b"\xd4\xc3\xb2\xa1\x02\x00"] {
        let err = replay_reader(
            Cursor::new(bytes),
            Path::new("x.pcap"),
            &ReplayOptions::default(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, ReplayError::NotACapture { .. }), "{err}");
        assert!(err.to_string().starts_with("x.pcap: "), "{err}");
    }
}

#[test]
fn reads_pcapng_with_each_interfaces_timestamp_resolution() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use pcap_file::pcapng::PcapNgWriter;
    use ratewire_replay::synth::frame;

    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    // Interface 0: default resolution (microseconds); interface 1: nanoseconds.
    for options in [vec![], vec![InterfaceDescriptionOption::IfTsResol(9)]] {
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: pcap_file::DataLink::ETHERNET,
                snaplen: 0,
                options,
            })
            .unwrap();
    }
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(&response("429 Too Many Requests", "", "")));
    packets.push(c.client_data(CHAT));
    packets.push(c.server_data(&response("200 OK", "", "")));
    for (i, p) in packets.iter().enumerate() {
        let unix_ns = T0 + i as u64 * MS + 7_000;
        let (interface_id, units) = if i < 5 {
            (0, unix_ns / 1_000)
        } else {
            (1, unix_ns)
        };
        let data = frame(Link::Ethernet, p);
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id,
                // pcap-file writes these raw: they are interface units, not nanoseconds.
                timestamp: Duration::from_nanos(units),
                original_len: data.len() as u32,
                data: data.into(),
                options: vec![],
            })
            .unwrap();
    }
    let (records, report) = replay_bytes(&writer.into_inner(), &ReplayOptions::default());
    assert!(report.capture_error.is_none());
    assert_eq!(outcomes(&records), ["429", "200"]);
    assert_eq!(records[0].unix_ns, T0 + 4 * MS + 7_000);
    assert_eq!(records[1].unix_ns, T0 + 6 * MS + 7_000);
}

#[test]
fn a_response_lost_by_the_capture_leaves_its_request_unresolved() {
    let mut c = conn();
    let mut packets = c.handshake();
    packets.push(c.client_data(CHAT));
    let lost = c.server_data(&response("429 Too Many Requests", "", "{}"));
    packets.push(c.client_data(b"GET /v1/completions HTTP/1.1\r\n\r\n"));
    packets.push(c.server_data(&response("200 OK", "", "{}")));
    drop(lost); // never captured
    let (records, report) = replay(&packets);
    assert_eq!(outcomes(&records), ["200"]);
    assert_eq!(
        records[0].route.as_deref(),
        Some("/v1/completions"),
        "paired with the latest"
    );
    assert_eq!(report.stats.flows.unresolved_requests, 1);
}

#[test]
fn a_response_after_the_deadline_answers_nothing() {
    let mut c = conn();
    let mut out = PcapOut::new(Vec::new(), Link::Ethernet).unwrap();
    for p in c.handshake() {
        out.write(T0, &p).unwrap();
    }
    out.write(T0, &c.client_data(CHAT)).unwrap();
    let late = c.server_data(&response("200 OK", "", ""));
    out.write(T0 + 61_000 * MS, &late).unwrap();
    let (records, report) = replay_bytes(&out.into_inner(), &ReplayOptions::default());
    assert_eq!(outcomes(&records), ["no_response:timeout"]);
    assert_eq!(
        records[0].unix_ns,
        T0 + 60_000 * MS,
        "the default 60 s deadline"
    );
    assert_eq!(report.stats.flows.unpaired_responses, 1);
}
