//! Connections: reassembly and framing per direction, requests paired with responses
//! in order (HTTP/1.1 answers requests first in, first out), and the outcome of every
//! request written as a journal record.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use ratewire_journal::{NoResponseReason, Record};

use crate::decode::{Segment, FIN, RST, SYN};
use crate::message::{Head, MessageStream};
use crate::reassembly::{Delivery, Reassembly, SynKind};

mod exchange;

use exchange::{no_response, Exchange, Request};

/// The `source` of replayed records.
pub const SOURCE: &str = "replay";

/// Counters of what replay saw and did, for the summary and for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub connections: u64,
    pub requests: u64,
    pub responses: u64,
    /// 1xx responses (not final; the request keeps waiting).
    pub interim_responses: u64,
    /// Final status lines with no outstanding request on their connection: not
    /// recorded (body text, or the answer to a request sent before the capture began).
    pub unpaired_responses: u64,
    pub no_responses: u64,
    /// Requests whose response fell into bytes the capture lost (a later response was
    /// found by resynchronising): not recorded, since their status is unknown.
    pub unresolved_requests: u64,
    /// Byte ranges the capture did not hold.
    pub holes: u64,
    /// Times a direction lost track of message boundaries.
    pub desyncs: u64,
}

struct Direction {
    stream: Reassembly,
    messages: MessageStream,
    finished: bool,
}

impl Direction {
    fn new() -> Direction {
        Direction {
            stream: Reassembly::default(),
            messages: MessageStream::new(false),
            finished: false,
        }
    }
}

/// Addresses are kept as the pair `ends`; direction `d` carries bytes sent by `ends[d]`.
struct Connection {
    ends: [SocketAddr; 2],
    dirs: [Direction; 2],
    /// Requests sent by `ends[d]`, waiting for `ends[1 - d]` to answer.
    waiting: [VecDeque<Request>; 2],
    last_seen_ns: u64,
}

type ConnKey = (SocketAddr, SocketAddr);

/// All connections of a capture.
pub struct FlowTable {
    conns: HashMap<ConnKey, Connection>,
    response_timeout_ns: u64,
    last_sweep_ns: u64,
    pub stats: FlowStats,
}

/// How often idle connections are looked for, in capture time.
const SWEEP_INTERVAL_NS: u64 = 1_000_000_000;

impl FlowTable {
    /// Requests still unanswered `response_timeout_ns` after they were sent end as
    /// `no_response` / `timeout` at that deadline, as with the live probes'
    /// `--response-timeout`.
    pub fn new(response_timeout_ns: u64) -> FlowTable {
        FlowTable {
            conns: HashMap::new(),
            response_timeout_ns,
            last_sweep_ns: 0,
            stats: FlowStats::default(),
        }
    }

    pub fn on_segment(&mut self, seg: &Segment<'_>, unix_ns: u64, sink: &mut dyn FnMut(Record)) {
        if unix_ns >= self.last_sweep_ns.saturating_add(SWEEP_INTERVAL_NS) {
            self.expire(unix_ns, sink);
            self.last_sweep_ns = unix_ns;
        }
        let (key, d) = if seg.src <= seg.dst {
            ((seg.src, seg.dst), 0)
        } else {
            ((seg.dst, seg.src), 1)
        };
        let syn = seg.flags & SYN != 0;
        let mut opening = false;
        if syn {
            if let Some(conn) = self.conns.get_mut(&key) {
                match conn.dirs[d].stream.on_syn(seg.seq) {
                    SynKind::Opening => opening = true,
                    SynKind::Repeat => {}
                    SynKind::NewConnection => {
                        // The 4-tuple was reused: what the old connection awaited is over.
                        let old = self.conns.remove(&key).expect("just found");
                        self.close(old, unix_ns, NoResponseReason::Timeout, sink);
                    }
                }
            }
        }
        let conn = match self.conns.entry(key) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(_) if !syn && seg.wire_len == 0 => {
                return; // a bare ACK/FIN/RST of a connection we know nothing about
            }
            Entry::Vacant(new) => {
                self.stats.connections += 1;
                let mut conn = Connection {
                    ends: [key.0, key.1],
                    dirs: [Direction::new(), Direction::new()],
                    waiting: [VecDeque::new(), VecDeque::new()],
                    last_seen_ns: unix_ns,
                };
                if syn {
                    conn.dirs[d].stream.on_syn(seg.seq);
                    opening = true;
                }
                new.insert(conn)
            }
        };
        conn.last_seen_ns = conn.last_seen_ns.max(unix_ns);
        if opening {
            // The stream starts right after the SYN: its first byte starts a message.
            conn.dirs[d].messages.start_synced();
        }
        if seg.flags & RST != 0 {
            let conn = self.conns.remove(&key).expect("present");
            self.close(conn, unix_ns, NoResponseReason::Reset, sink);
            return;
        }
        let data_seq = seg.seq.wrapping_add(u32::from(syn));
        conn.receive(d, data_seq, seg, unix_ns, &mut self.stats, sink);
        if seg.flags & FIN != 0 {
            conn.dirs[d]
                .stream
                .on_fin(data_seq.wrapping_add(seg.wire_len), unix_ns);
        }
        for dir in 0..2 {
            if let Some(fin_ns) = conn.dirs[dir].stream.fin_reached() {
                conn.finish_direction(dir, fin_ns, NoResponseReason::Closed, &mut self.stats, sink);
            }
        }
        if conn.dirs.iter().all(|dir| dir.finished) {
            let conn = self.conns.remove(&key).expect("present");
            self.close(conn, unix_ns, NoResponseReason::Closed, sink);
        }
    }

    /// The capture ended at `end_ns`: settle every connection.
    pub fn finish(&mut self, end_ns: u64, sink: &mut dyn FnMut(Record)) {
        self.expire(end_ns, sink);
        let mut conns: Vec<Connection> = self.conns.drain().map(|(_, conn)| conn).collect();
        // Settle in a stable order, so replaying the same file gives the same journal.
        conns.sort_by_key(|c| (c.last_seen_ns, c.ends));
        for conn in conns {
            self.close(conn, end_ns, NoResponseReason::Timeout, sink);
        }
    }

    /// Time out requests past their deadline, and forget connections idle that long
    /// with nothing waiting (a later segment starting with a head picks them up again).
    fn expire(&mut self, now_ns: u64, sink: &mut dyn FnMut(Record)) {
        let timeout = self.response_timeout_ns;
        let mut expired = Vec::new();
        let mut idle = Vec::new();
        for (key, conn) in &mut self.conns {
            expired.extend(conn.expire_requests(now_ns, timeout));
            let nothing_waiting = conn.waiting.iter().all(VecDeque::is_empty);
            if nothing_waiting && conn.last_seen_ns.saturating_add(timeout) <= now_ns {
                idle.push((conn.last_seen_ns, *key));
            }
        }
        // Hash order is random: sort, so replaying a file always gives the same journal.
        expired.sort_by(|a, b| (a.unix_ns, &a.client).cmp(&(b.unix_ns, &b.client)));
        self.stats.no_responses += expired.len() as u64;
        expired.into_iter().for_each(&mut *sink);
        idle.sort();
        for (last_seen_ns, key) in idle {
            let conn = self.conns.remove(&key).expect("listed");
            self.close(conn, last_seen_ns, NoResponseReason::Timeout, sink);
        }
    }

    /// End a connection: deliver what it still holds, then requests without a response
    /// get `reason` at `at_ns`.
    fn close(
        &mut self,
        mut conn: Connection,
        at_ns: u64,
        reason: NoResponseReason,
        sink: &mut dyn FnMut(Record),
    ) {
        for d in 0..2 {
            conn.flush(d, &mut self.stats, sink);
            if let Some(fin_ns) = conn.dirs[d].stream.fin_reached() {
                let stats = &mut self.stats;
                conn.finish_direction(d, fin_ns, NoResponseReason::Closed, stats, sink);
            }
        }
        for d in 0..2 {
            conn.finish_direction(d, at_ns, reason, &mut self.stats, sink);
        }
        self.stats.holes += conn.dirs.iter().map(|dir| dir.stream.holes).sum::<u64>();
        self.stats.desyncs += conn
            .dirs
            .iter()
            .map(|dir| dir.messages.desyncs)
            .sum::<u64>();
    }
}

impl Connection {
    /// Requests waiting since `timeout_ns` or longer before `now_ns`, as timeouts at
    /// their deadlines.
    fn expire_requests(&mut self, now_ns: u64, timeout_ns: u64) -> Vec<Record> {
        let mut expired = Vec::new();
        for d in 0..2 {
            while let Some(request) = self.waiting[d].front() {
                let deadline = request.unix_ns.saturating_add(timeout_ns);
                if deadline > now_ns {
                    break;
                }
                let request = self.waiting[d].pop_front().expect("just looked");
                let (client, upstream) = (self.ends[d], self.ends[1 - d]);
                expired.push(no_response(
                    &request,
                    client,
                    upstream,
                    deadline,
                    NoResponseReason::Timeout,
                ));
            }
        }
        expired
    }

    /// Bytes sent by `ends[d]`.
    fn receive(
        &mut self,
        d: usize,
        seq: u32,
        seg: &Segment<'_>,
        unix_ns: u64,
        stats: &mut FlowStats,
        sink: &mut dyn FnMut(Record),
    ) {
        let Connection {
            ends,
            dirs,
            waiting,
            ..
        } = self;
        let mut upgraded = false;
        {
            let Direction {
                stream, messages, ..
            } = &mut dirs[d];
            let mut exchange = Exchange {
                ends,
                waiting,
                from: d,
                stats,
                sink,
                upgraded: &mut upgraded,
            };
            let mut on_head = |head: &Head<'_>| exchange.on_head(head);
            stream.on_segment(
                seq,
                seg.payload,
                u64::from(seg.wire_len),
                unix_ns,
                &mut |delivery| match delivery {
                    Delivery::Data {
                        bytes,
                        unix_ns,
                        segment_start,
                    } => messages.feed(bytes, unix_ns, segment_start, &mut on_head),
                    Delivery::Hole(n) => messages.skip(n, &mut on_head),
                },
            );
        }
        if upgraded {
            dirs[0].messages.stop();
            dirs[1].messages.stop();
        }
    }

    /// Deliver bytes that wait behind a gap, declaring the gaps holes.
    fn flush(&mut self, d: usize, stats: &mut FlowStats, sink: &mut dyn FnMut(Record)) {
        let Connection {
            ends,
            dirs,
            waiting,
            ..
        } = self;
        let Direction {
            stream, messages, ..
        } = &mut dirs[d];
        let mut upgraded = false;
        let mut exchange = Exchange {
            ends,
            waiting,
            from: d,
            stats,
            sink,
            upgraded: &mut upgraded,
        };
        let mut on_head = |head: &Head<'_>| exchange.on_head(head);
        stream.flush(&mut |delivery| match delivery {
            Delivery::Data {
                bytes,
                unix_ns,
                segment_start,
            } => messages.feed(bytes, unix_ns, segment_start, &mut on_head),
            Delivery::Hole(n) => messages.skip(n, &mut on_head),
        });
    }

    /// `ends[d]` will send nothing more (FIN, reset, end of observation at `at_ns`):
    /// requests waiting for it end as `reason`.
    fn finish_direction(
        &mut self,
        d: usize,
        at_ns: u64,
        reason: NoResponseReason,
        stats: &mut FlowStats,
        sink: &mut dyn FnMut(Record),
    ) {
        if self.dirs[d].finished {
            return;
        }
        self.dirs[d].finished = true;
        let Connection {
            ends,
            dirs,
            waiting,
            ..
        } = self;
        let mut upgraded = false;
        let mut exchange = Exchange {
            ends,
            waiting,
            from: d,
            stats,
            sink,
            upgraded: &mut upgraded,
        };
        dirs[d].messages.finish(&mut |head| exchange.on_head(head));
        let client = 1 - d;
        while let Some(request) = waiting[client].pop_front() {
            sink(no_response(&request, ends[client], ends[d], at_ns, reason));
            stats.no_responses += 1;
        }
    }
}
