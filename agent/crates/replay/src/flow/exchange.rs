//! One head's meaning for its connection: a request joins its direction's queue, a final
//! response answers the oldest waiting request and becomes a journal record.

use std::collections::VecDeque;
use std::net::SocketAddr;

use ratewire_common::http::{copy_path, is_interim, scan_head, HeadFacts, Method, ABSENT};
use ratewire_journal::{NoResponseReason, Record};

use super::{FlowStats, SOURCE};
use crate::message::{BodyLength, Head, Start};
use crate::route::route_label;

/// A request waiting for its response.
pub(super) struct Request {
    pub(super) unix_ns: u64,
    method: Method,
    route: &'static str,
    client_retry: Option<u32>,
}

/// What a head means for its connection: a request joins the queue, a final response
/// answers the oldest waiting request.
pub(super) struct Exchange<'a> {
    pub(super) ends: &'a [SocketAddr; 2],
    pub(super) waiting: &'a mut [VecDeque<Request>; 2],
    /// Direction the head travels in (sent by `ends[from]`).
    pub(super) from: usize,
    pub(super) stats: &'a mut FlowStats,
    pub(super) sink: &'a mut dyn FnMut(Record),
    pub(super) upgraded: &'a mut bool,
}

impl Exchange<'_> {
    pub(super) fn on_head(&mut self, head: &Head<'_>) -> BodyLength {
        match head.start {
            Start::Request(start) => {
                let mut path = [0u8; 64];
                let len = copy_path(head.bytes, start.target_offset, &mut path);
                let facts = scan_head(head.bytes);
                self.waiting[self.from].push_back(Request {
                    unix_ns: head.unix_ns,
                    method: start.method,
                    route: route_label(&path[..len]),
                    client_retry: known(facts.client_retry),
                });
                self.stats.requests += 1;
                head.declared
            }
            Start::Response(status) => self.on_response(head, status),
        }
    }

    fn on_response(&mut self, head: &Head<'_>, status: u16) -> BodyLength {
        // RFC 9110 section 6.4.1: no body after 1xx, 204, 304 or a response to HEAD.
        let bodiless = is_interim(status) || status == 204 || status == 304;
        if is_interim(status) && status != 101 {
            self.stats.interim_responses += 1;
            return BodyLength::None;
        }
        let client = 1 - self.from;
        if head.resynced {
            self.drop_requests_answered_in_a_hole(head.unix_ns);
        }
        // A response cannot start before its request: such a "head" is stray text.
        let answers_oldest = self.waiting[client]
            .front()
            .is_some_and(|request| request.unix_ns <= head.unix_ns);
        let request = answers_oldest.then(|| self.waiting[client].pop_front());
        let Some(request) = request.flatten() else {
            self.stats.unpaired_responses += 1;
            return if bodiless {
                BodyLength::None
            } else {
                head.declared
            };
        };
        self.stats.responses += 1;
        let facts = scan_head(head.bytes);
        let mut record =
            Record::response(head.unix_ns, address(self.ends[self.from]), status, SOURCE);
        record.client = Some(address(self.ends[client]));
        record.request_unix_ns = Some(request.unix_ns);
        record.method = Some(request.method.as_str().to_owned());
        record.route = Some(request.route.to_owned());
        record.client_retry = request.client_retry;
        record.retry_after_ms = retry_after_ms(&facts, head.unix_ns);
        (self.sink)(record);
        if status == 101 {
            *self.upgraded = true; // the connection is no longer HTTP/1
            return BodyLength::Opaque;
        }
        if bodiless || request.method == Method::Head {
            BodyLength::None
        } else {
            head.declared
        }
    }
}

impl Exchange<'_> {
    /// A response found after lost bytes answers the latest request sent before it;
    /// earlier waiting requests were most likely answered in the lost bytes (clients
    /// rarely pipeline), so their outcome is unknown and they leave the queue unrecorded.
    fn drop_requests_answered_in_a_hole(&mut self, response_unix_ns: u64) {
        let waiting = &mut self.waiting[1 - self.from];
        let sent_before = waiting
            .iter()
            .take_while(|r| r.unix_ns <= response_unix_ns)
            .count();
        if sent_before > 1 {
            waiting.drain(..sent_before - 1);
            self.stats.unresolved_requests += (sent_before - 1) as u64;
        }
    }
}

pub(super) fn no_response(
    request: &Request,
    client: SocketAddr,
    upstream: SocketAddr,
    at_ns: u64,
    reason: NoResponseReason,
) -> Record {
    let mut record = Record::no_response(at_ns, address(upstream), reason, SOURCE);
    record.client = Some(address(client));
    record.request_unix_ns = Some(request.unix_ns);
    record.method = Some(request.method.as_str().to_owned());
    record.route = Some(request.route.to_owned());
    record.client_retry = request.client_retry;
    record
}

/// `ip:port`, IPv4-mapped IPv6 shown as IPv4 (as the live probes report them).
fn address(addr: SocketAddr) -> String {
    SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string()
}

fn known(value: u32) -> Option<u32> {
    (value != ABSENT).then_some(value)
}

/// The wait a response asks for, in ms: `retry-after-ms`, else `Retry-After` seconds,
/// else `Retry-After` date minus the response's time (0 if already past).
fn retry_after_ms(facts: &HeadFacts, response_unix_ns: u64) -> Option<u64> {
    if let Some(ms) = known(facts.retry_after_ms) {
        return Some(u64::from(ms));
    }
    if let Some(secs) = known(facts.retry_after_secs) {
        return Some(u64::from(secs) * 1000);
    }
    let date_ms = u64::from(known(facts.retry_after_unix)?) * 1000;
    Some(date_ms.saturating_sub(response_unix_ns / 1_000_000))
}
