//! Putting one direction of a TCP connection back in sequence order.
//!
//! Retransmitted bytes are delivered once (by sequence number), segments that arrive
//! early wait until the gap before them fills, and bytes that were never captured
//! (snap length, capture drops) are reported as holes so framing can skip them.

use std::collections::BTreeMap;

/// Early bytes kept per direction while waiting for a gap to fill; past this the gap
/// is declared a hole (the capture lost those bytes).
const MAX_EARLY_BYTES: usize = 1 << 20;

/// What reassembly hands to framing, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery<'a> {
    Data {
        bytes: &'a [u8],
        unix_ns: u64,
        /// `bytes` begin a segment (rather than continue a retransmitted one).
        segment_start: bool,
    },
    /// This many bytes of the stream were not captured.
    Hole(u64),
}

/// Stream position: the sequence number and the 64-bit offset from where we started.
#[derive(Clone, Copy, Debug)]
struct Position {
    seq: u32,
    offset: u64,
}

impl Position {
    fn advance(&mut self, n: u64) {
        self.seq = self.seq.wrapping_add(n as u32);
        self.offset += n;
    }

    /// Offset of `seq`, taken as the nearest one to this position (within 2 GiB).
    fn offset_of(&self, seq: u32) -> i128 {
        i128::from(self.offset) + i128::from(seq.wrapping_sub(self.seq) as i32)
    }
}

struct EarlySegment {
    data: Vec<u8>,
    wire_len: u64,
    unix_ns: u64,
}

/// One direction's reassembly state.
#[derive(Default)]
pub struct Reassembly {
    isn: Option<u32>,
    next: Option<Position>,
    early: BTreeMap<u64, EarlySegment>,
    early_bytes: usize,
    /// Offset just past the last byte, and when the FIN was seen.
    fin: Option<(u64, u64)>,
    /// Holes declared.
    pub holes: u64,
}

/// What a SYN means for a direction that may already have seen traffic.
#[derive(Debug, PartialEq, Eq)]
pub enum SynKind {
    /// The first SYN: the stream starts at the next byte.
    Opening,
    /// A retransmitted SYN.
    Repeat,
    /// A SYN with another initial sequence number: the 4-tuple was reused.
    NewConnection,
}

impl Reassembly {
    pub fn on_syn(&mut self, isn: u32) -> SynKind {
        match (self.isn, self.next) {
            (Some(seen), _) if seen == isn => SynKind::Repeat,
            (None, None) => {
                self.isn = Some(isn);
                self.next = Some(Position {
                    seq: isn.wrapping_add(1),
                    offset: 0,
                });
                SynKind::Opening
            }
            _ => SynKind::NewConnection,
        }
    }

    /// A segment whose payload starts at `seq`: `payload` was captured of `wire_len`.
    pub fn on_segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        wire_len: u64,
        unix_ns: u64,
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) {
        if wire_len == 0 {
            return;
        }
        let next = *self.next.get_or_insert(Position { seq, offset: 0 });
        let offset = next.offset_of(seq);
        if offset > i128::from(next.offset) {
            self.keep_early(offset as u64, payload, wire_len, unix_ns, deliver);
            return;
        }
        let already = (i128::from(next.offset) - offset) as u64;
        self.deliver_from(payload, wire_len, already, unix_ns, deliver);
        self.deliver_early(deliver);
    }

    /// A FIN after the byte before `seq`.
    pub fn on_fin(&mut self, seq: u32, unix_ns: u64) {
        let next = *self.next.get_or_insert(Position { seq, offset: 0 });
        if self.fin.is_none() {
            let end = next.offset_of(seq).max(0) as u64;
            self.fin = Some((end, unix_ns));
        }
    }

    /// When the FIN was seen, once every byte before it has been delivered.
    pub fn fin_reached(&self) -> Option<u64> {
        let (end, unix_ns) = self.fin?;
        (self.next?.offset >= end).then_some(unix_ns)
    }

    /// The observation ends: deliver what waits for a gap, declaring the gaps holes
    /// (up to the FIN, if one was seen).
    pub fn flush(&mut self, deliver: &mut dyn FnMut(Delivery<'_>)) {
        while let Some((&offset, _)) = self.early.first_key_value() {
            self.skip_to(offset, deliver);
            self.deliver_early(deliver);
        }
        if let Some((end, _)) = self.fin {
            self.skip_to(end, deliver);
        }
    }

    /// Deliver `payload` minus its first `already` bytes, which were delivered before.
    fn deliver_from(
        &mut self,
        payload: &[u8],
        wire_len: u64,
        already: u64,
        unix_ns: u64,
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) {
        if already >= wire_len {
            return; // a retransmission of delivered bytes
        }
        let next = self.next.as_mut().expect("set before delivering");
        let captured = payload.len() as u64;
        if already < captured {
            deliver(Delivery::Data {
                bytes: &payload[already as usize..],
                unix_ns,
                segment_start: already == 0,
            });
        }
        let missing = wire_len - already.max(captured);
        if missing > 0 {
            self.holes += 1;
            deliver(Delivery::Hole(missing));
        }
        next.advance(wire_len - already);
    }

    fn keep_early(
        &mut self,
        offset: u64,
        payload: &[u8],
        wire_len: u64,
        unix_ns: u64,
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) {
        let keep = match self.early.get(&offset) {
            Some(kept) => kept.wire_len < wire_len,
            None => true,
        };
        if keep {
            self.early_bytes += payload.len();
            if let Some(old) = self.early.insert(
                offset,
                EarlySegment {
                    data: payload.to_vec(),
                    wire_len,
                    unix_ns,
                },
            ) {
                self.early_bytes -= old.data.len();
            }
        }
        // Too much waiting: the bytes of the first gap are not coming.
        while self.early_bytes > MAX_EARLY_BYTES {
            let first = *self
                .early
                .keys()
                .next()
                .expect("non-empty when over the limit");
            self.skip_to(first, deliver);
            self.deliver_early(deliver);
        }
    }

    /// Deliver waiting segments that the stream has reached.
    fn deliver_early(&mut self, deliver: &mut dyn FnMut(Delivery<'_>)) {
        while let Some(entry) = self.early.first_entry() {
            let next = self
                .next
                .expect("early segments exist only after a first one");
            if *entry.key() > next.offset {
                break;
            }
            let already = next.offset - *entry.key();
            let segment = entry.remove();
            self.early_bytes -= segment.data.len();
            self.deliver_from(
                &segment.data,
                segment.wire_len,
                already,
                segment.unix_ns,
                deliver,
            );
        }
    }

    /// Declare the bytes up to `offset` a hole.
    fn skip_to(&mut self, offset: u64, deliver: &mut dyn FnMut(Delivery<'_>)) {
        let Some(next) = self.next.as_mut() else {
            return;
        };
        if offset > next.offset {
            let gap = offset - next.offset;
            next.advance(gap);
            self.holes += 1;
            deliver(Delivery::Hole(gap));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deliveries as text: `data` for bytes (`^` marks a segment start), `[n]` for holes.
    fn run(isn: u32, segments: &[(u32, &[u8], u64)], flush: bool) -> String {
        let mut r = Reassembly::default();
        r.on_syn(isn);
        let mut out = String::new();
        let mut record = |d: Delivery<'_>| match d {
            Delivery::Data {
                bytes,
                segment_start,
                ..
            } => {
                if segment_start {
                    out.push('^');
                }
                out.push_str(std::str::from_utf8(bytes).unwrap());
            }
            Delivery::Hole(n) => out.push_str(&format!("[{n}]")),
        };
        for &(rel, payload, wire_len) in segments {
            let seq = isn.wrapping_add(1).wrapping_add(rel);
            r.on_segment(seq, payload, wire_len, 0, &mut record);
        }
        if flush {
            r.flush(&mut record);
        }
        out
    }

    #[test]
    fn in_order_duplicates_and_overlaps_across_the_wrap() {
        let isn = u32::MAX - 3;
        let out = run(
            isn,
            &[
                (0, b"abc", 3),
                (0, b"abc", 3),
                (1, b"bcdef", 5),
                (6, b"g", 1),
            ],
            false,
        );
        assert_eq!(out, "^abcdef^g");
    }

    #[test]
    fn early_segments_wait_for_the_gap() {
        let out = run(7, &[(3, b"def", 3), (6, b"ghi", 3), (0, b"abc", 3)], false);
        assert_eq!(out, "^abc^def^ghi");
    }

    #[test]
    fn missing_bytes_become_holes() {
        // Snap length: 2 of 5 bytes captured; then a gap that never fills.
        let out = run(0, &[(0, b"ab", 5), (9, b"xyz", 3)], true);
        assert_eq!(out, "^ab[3][4]^xyz");
    }
}
