//! Kernel events -> journal records. Pure conversion, so it is tested without a kernel.

use ratewire_common::{
    http::{self, HeadFacts, Method, ABSENT},
    types::{Event, OUTCOME_CLOSED, OUTCOME_RESET, OUTCOME_RESPONSE},
};
use ratewire_journal::{record::NoResponseReason, Record};

use crate::{clock, routes::RouteTable, upstream};

/// Journal `source` of everything the live probes record.
pub const SOURCE: &str = "xdp";
/// Journal `source` of what the TLS uprobes record.
pub const TLS_SOURCE: &str = "uprobe";

/// Read an event from the ring buffer's bytes (which need not be aligned).
pub fn parse(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: length checked; Event is plain old data valid for any bit pattern.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// The header values of an event: the kernel forwards the wanted header lines, and
/// they are read here with the same shared parser `ratewire replay` uses.
pub fn facts(ev: &Event) -> HeadFacts {
    http::facts_from_lines(&ev.lines)
}

pub fn to_record(ev: &Event, facts: &HeadFacts, wall_offset: i128, routes: &RouteTable) -> Record {
    let unix_ns = clock::to_unix_ns(ev.seen_ns, wall_offset);
    let upstream = upstream::label(ev.flow.upstream_addr, ev.flow.upstream_port);
    let source = if ev.tls != 0 { TLS_SOURCE } else { SOURCE };
    let mut record = match ev.outcome {
        OUTCOME_RESPONSE => Record::response(unix_ns, upstream, ev.status, source),
        OUTCOME_RESET => Record::no_response(unix_ns, upstream, NoResponseReason::Reset, source),
        OUTCOME_CLOSED => Record::no_response(unix_ns, upstream, NoResponseReason::Closed, source),
        _ => Record::no_response(unix_ns, upstream, NoResponseReason::Timeout, source),
    };
    record.request_unix_ns = Some(clock::to_unix_ns(ev.request_ns, wall_offset));
    record.client = Some(upstream::label(ev.flow.client_addr, ev.flow.client_port));
    record.method = Method::from_u8(ev.method).map(|m| m.as_str().to_owned());
    record.route = Some(routes.label(ev.route).to_owned());
    record.client_retry = present(facts.client_retry);
    record.tls = ev.tls != 0;
    record.retry_after_ms = retry_after_ms(facts, unix_ns);
    record
}

/// retry-after-ms first (as the OpenAI/Anthropic SDKs read it), else Retry-After in
/// seconds, else an HTTP-date Retry-After counted from when the response arrived.
pub fn retry_after_ms(facts: &HeadFacts, unix_ns: u64) -> Option<u64> {
    if let Some(ms) = present(facts.retry_after_ms) {
        return Some(ms as u64);
    }
    if let Some(secs) = present(facts.retry_after_secs) {
        return Some(secs as u64 * 1000);
    }
    present(facts.retry_after_unix).map(|at| (at as u64 * 1000).saturating_sub(unix_ns / 1_000_000))
}

/// A header value, unless it was absent.
pub fn present(v: u32) -> Option<u32> {
    (v != ABSENT).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratewire_common::types::{ipv4_mapped, FlowKey};

    fn line(text: &str) -> http::LineWindow {
        let mut w = [0u8; http::HEADER_LINE_WINDOW];
        w[..text.len()].copy_from_slice(text.as_bytes());
        w
    }

    fn event() -> Event {
        let mut lines = [[0u8; http::HEADER_LINE_WINDOW]; http::WANTED_HEADERS];
        lines[2] = line("x-ratelimit-remaining-requests: 0\r\n");
        lines[4] = line("x-stainless-retry-count: 2\r\n");
        Event {
            seen_ns: 2_000_000_000,
            request_ns: 1_500_000_000,
            flow: FlowKey {
                client_addr: ipv4_mapped([10, 0, 0, 1]),
                upstream_addr: ipv4_mapped([10, 0, 0, 2]),
                client_port: 40000,
                upstream_port: 8000,
            },
            status: 429,
            route: 1,
            outcome: OUTCOME_RESPONSE,
            method: Method::Post as u8,
            tls: 0,
            reserved: [0; 5],
            tgid: 0,
            fd: 0,
            lines,
        }
    }

    fn record(ev: &Event, offset: i128) -> Record {
        let routes = RouteTable::new(&[]).unwrap();
        to_record(ev, &facts(ev), offset, &routes)
    }

    #[test]
    fn response_record() {
        let offset = 1_000_000_000_000_000_000i128;
        let r = record(&event(), offset);
        assert_eq!(r.unix_ns, 1_000_000_002_000_000_000);
        assert_eq!(r.request_unix_ns, Some(1_000_000_001_500_000_000));
        assert_eq!(r.status, Some(429));
        assert_eq!(r.upstream.as_deref(), Some("10.0.0.2:8000"));
        assert_eq!(r.client.as_deref(), Some("10.0.0.1:40000"));
        assert_eq!(r.route.as_deref(), Some("/v1/chat/completions"));
        assert_eq!(r.method.as_deref(), Some("POST"));
        assert_eq!(r.client_retry, Some(2));
        assert_eq!(r.retry_after_ms, None);
        assert_eq!(facts(&event()).remaining_requests, 0);
    }

    #[test]
    fn retry_after_forms() {
        let mut ev = event();
        ev.lines[0] = line("retry-after-ms: 1500\r\n");
        ev.lines[1] = line("Retry-After: 2\r\n");
        assert_eq!(record(&ev, 0).retry_after_ms, Some(1500), "ms wins");
        ev.lines[0] = [0; http::HEADER_LINE_WINDOW];
        assert_eq!(record(&ev, 0).retry_after_ms, Some(2000));
        ev.lines[1] = line("retry-after: Mon, 23 Nov 2026 11:40:03 GMT\r\n");
        let offset = 1_795_434_000_500_000_000i128 - ev.seen_ns as i128; // seen at :00.5
        assert_eq!(record(&ev, offset).retry_after_ms, Some(2500));
    }

    #[test]
    fn outcomes() {
        let mut ev = event();
        ev.outcome = OUTCOME_RESET;
        ev.status = 0;
        let r = record(&ev, 0);
        assert_eq!((r.status, r.reason.as_deref()), (None, Some("reset")));
        ev.lines[4] = [0; http::HEADER_LINE_WINDOW];
        assert_eq!(record(&ev, 0).client_retry, None);
    }
}
