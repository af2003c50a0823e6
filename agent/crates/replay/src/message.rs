//! HTTP/1.x message framing for one direction of a connection.
//!
//! Heads are recognised only where a message can start: at the end of the previous
//! message (its head plus a body delimited by Content-Length or chunked coding), so a
//! body that happens to contain `HTTP/1.1 429` is never taken for a response. When the
//! boundary is unknown (the capture began mid-connection, or lost bytes), the stream is
//! `Lost` and resynchronises like the kernel does: on a segment that starts with a head.
//!
//! Recognition itself is the shared kernel parser's (`ratewire_common::http`); only the
//! framing headers (Content-Length, Transfer-Encoding) are read here.

use ratewire_common::http::{
    parse_request_start, parse_status_line, RequestStart, STATUS_LINE_LEN,
};

/// Longest head kept. A longer one is reported from its first part, and the stream then
/// waits for the next segment that starts with a head.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What a head starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Request(RequestStart),
    Response(u16),
}

/// How the body after a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// No body: the next message starts right after the head.
    None,
    Length(u64),
    Chunked,
    /// The body runs to the end of the connection.
    UntilClose,
    /// Where the next message starts is not known (conflicting headers, partial head).
    Unknown,
    /// The connection stops being HTTP/1 (101 Switching Protocols): read no further.
    Opaque,
}

/// A recognised head, handed to the connection, which answers with the body length
/// (it alone knows, for a response, whether the request was `HEAD`).
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    pub start: Start,
    /// The head's bytes, up to and including its blank line when `complete`.
    pub bytes: &'a [u8],
    /// Capture time of the packet carrying the head's first byte.
    pub unix_ns: u64,
    /// False when the head was cut short (lost bytes, snap length, connection end).
    pub complete: bool,
    /// Body length as the head's own headers declare it.
    pub declared: BodyLength,
    /// Found by resynchronising after lost bytes, not at a known message boundary:
    /// messages before it may have been lost.
    pub resynced: bool,
}

/// Which heads this direction carries, learned from the first one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Unknown,
    Requests,
    Responses,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The next byte starts a message.
    Boundary,
    /// Collecting a head in `head`.
    InHead,
    /// This many body bytes to go.
    Body(u64),
    Chunked(Chunk),
    UntilClose,
    /// Boundary unknown: wait for a segment that starts with a head.
    Lost,
    Opaque,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line; `in_extension` once past the hex digits.
    Size {
        value: u64,
        digits: u8,
        in_extension: bool,
    },
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// Trailer lines after the last chunk; `at_line_start` to spot the blank line.
    Trailer {
        at_line_start: bool,
    },
}

const CHUNK_SIZE_START: Chunk = Chunk::Size {
    value: 0,
    digits: 0,
    in_extension: false,
};

/// The framing state of one direction's byte stream.
pub struct MessageStream {
    state: State,
    role: Role,
    head: Vec<u8>,
    head_unix_ns: u64,
    /// `head[..scanned]` holds no end of head.
    scanned: usize,
    /// The next head is found by resynchronising; see [`Head::resynced`].
    resyncing: bool,
    head_resynced: bool,
    /// Times the stream lost track of message boundaries.
    pub desyncs: u64,
}

impl MessageStream {
    /// A stream whose next byte starts a message (`synced`, e.g. right after SYN) or
    /// whose boundaries are unknown (a connection joined midway).
    pub fn new(synced: bool) -> MessageStream {
        MessageStream {
            state: if synced { State::Boundary } else { State::Lost },
            role: Role::Unknown,
            head: Vec::new(),
            head_unix_ns: 0,
            scanned: 0,
            resyncing: !synced,
            head_resynced: false,
            desyncs: 0,
        }
    }

    /// The connection was seen starting: the next byte starts a message.
    pub fn start_synced(&mut self) {
        self.state = State::Boundary;
        self.resyncing = false;
    }

    /// Read no further (the connection switched protocols).
    pub fn stop(&mut self) {
        self.state = State::Opaque;
        self.head = Vec::new();
    }

    /// Feed in-order bytes that arrived at `unix_ns`. `segment_start` says `data` begins
    /// a TCP segment (not the tail of a retransmission), the only place where a `Lost`
    /// stream may find a head again.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        unix_ns: u64,
        segment_start: bool,
        on_head: &mut dyn FnMut(&Head<'_>) -> BodyLength,
    ) {
        if segment_start && self.recognize(data).is_some() {
            match self.state {
                State::Lost => {
                    self.state = State::Boundary;
                    self.resyncing = true;
                }
                // A head never ends in a segment that starts with another head: the one
                // being collected was not a head (text after a resync), drop it.
                State::InHead if self.head.len() >= STATUS_LINE_LEN => {
                    self.desyncs += 1;
                    self.state = State::Boundary;
                    self.resyncing = true;
                }
                _ => {}
            }
        }
        while !data.is_empty() {
            match self.state {
                State::Boundary => {
                    self.head.clear();
                    self.scanned = 0;
                    self.head_unix_ns = unix_ns;
                    self.head_resynced = std::mem::take(&mut self.resyncing);
                    self.state = State::InHead;
                }
                State::InHead => data = self.collect_head(data, on_head),
                State::Body(remaining) => {
                    let n = remaining.min(data.len() as u64);
                    data = &data[n as usize..];
                    self.state = if n == remaining {
                        State::Boundary
                    } else {
                        State::Body(remaining - n)
                    };
                }
                State::Chunked(chunk) => data = self.read_chunked(chunk, data),
                State::UntilClose | State::Lost | State::Opaque => return,
            }
        }
    }

    /// `n` bytes of the stream were not captured.
    pub fn skip(&mut self, n: u64, on_head: &mut dyn FnMut(&Head<'_>) -> BodyLength) {
        self.state = match self.state {
            State::Body(remaining) if n < remaining => State::Body(remaining - n),
            State::Body(remaining) if n == remaining => State::Boundary,
            State::Chunked(Chunk::Data(remaining)) if n < remaining => {
                State::Chunked(Chunk::Data(remaining - n))
            }
            State::Chunked(Chunk::Data(remaining)) if n == remaining => {
                State::Chunked(Chunk::DataEnd)
            }
            State::UntilClose | State::Opaque => self.state,
            State::InHead => {
                self.report_partial_head(on_head);
                self.lose_track()
            }
            _ => self.lose_track(),
        };
    }

    /// The stream ended (FIN, reset, end of capture): report a head cut short.
    pub fn finish(&mut self, on_head: &mut dyn FnMut(&Head<'_>) -> BodyLength) {
        if self.state == State::InHead {
            self.report_partial_head(on_head);
        }
        self.state = State::Opaque;
    }

    fn lose_track(&mut self) -> State {
        if self.state != State::Lost {
            self.desyncs += 1;
        }
        State::Lost
    }

    /// The head `bytes` start with, for this direction's role.
    fn recognize(&self, bytes: &[u8]) -> Option<Start> {
        if self.role != Role::Responses {
            if let Some(start) = parse_request_start(bytes) {
                return Some(Start::Request(start));
            }
        }
        if self.role != Role::Requests {
            if let Some(status) = parse_status_line(bytes) {
                return Some(Start::Response(status));
            }
        }
        None
    }

    /// Add head bytes from `data`; returns what follows the head, if it ended.
    fn collect_head<'d>(
        &mut self,
        data: &'d [u8],
        on_head: &mut dyn FnMut(&Head<'_>) -> BodyLength,
    ) -> &'d [u8] {
        let before = self.head.len();
        let take = data.len().min(MAX_HEAD_BYTES - before);
        self.head.extend_from_slice(&data[..take]);
        if let Some(end) = head_end(&self.head, self.scanned) {
            self.head.truncate(end);
            self.complete_head(on_head);
            return &data[end - before..];
        }
        self.scanned = self.head.len();
        if self.head.len() >= STATUS_LINE_LEN && self.recognize(&self.head).is_none() {
            self.state = self.lose_track(); // not HTTP/1 here (TLS, HTTP/2, garbage)
            return &[];
        }
        if self.head.len() == MAX_HEAD_BYTES {
            self.report_partial_head(on_head);
            self.state = self.lose_track();
            return &[];
        }
        &data[take..]
    }

    fn complete_head(&mut self, on_head: &mut dyn FnMut(&Head<'_>) -> BodyLength) {
        let Some(start) = self.recognize(&self.head) else {
            self.state = self.lose_track();
            return;
        };
        self.role = match start {
            Start::Request(_) => Role::Requests,
            Start::Response(_) => Role::Responses,
        };
        let head = Head {
            start,
            bytes: &self.head,
            unix_ns: self.head_unix_ns,
            complete: true,
            declared: declared_body_length(&self.head, start),
            resynced: self.head_resynced,
        };
        self.state = match on_head(&head) {
            BodyLength::None | BodyLength::Length(0) => State::Boundary,
            BodyLength::Length(n) => State::Body(n),
            BodyLength::Chunked => State::Chunked(CHUNK_SIZE_START),
            BodyLength::UntilClose => State::UntilClose,
            BodyLength::Unknown => self.lose_track(),
            BodyLength::Opaque => State::Opaque,
        };
    }

    /// Hand over a head that will not be completed, if its start was recognised.
    fn report_partial_head(&mut self, on_head: &mut dyn FnMut(&Head<'_>) -> BodyLength) {
        if let Some(start) = self.recognize(&self.head) {
            on_head(&Head {
                start,
                bytes: &self.head,
                unix_ns: self.head_unix_ns,
                complete: false,
                declared: BodyLength::Unknown,
                resynced: self.head_resynced,
            });
        }
        self.head.clear();
    }

    /// Walk chunked coding through `data`; returns what follows the message, if it ended.
    fn read_chunked<'d>(&mut self, mut chunk: Chunk, mut data: &'d [u8]) -> &'d [u8] {
        while let Some((&byte, rest)) = data.split_first() {
            if let Chunk::Data(remaining) = chunk {
                let n = remaining.min(data.len() as u64);
                data = &data[n as usize..];
                chunk = if n == remaining {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(remaining - n)
                };
                continue;
            }
            data = rest;
            chunk = match (chunk, byte) {
                (Chunk::Size { digits: 0, .. }, b'\n') => return self.chunk_error(),
                (Chunk::Size { value: 0, .. }, b'\n') => Chunk::Trailer {
                    at_line_start: true,
                },
                (Chunk::Size { value, .. }, b'\n') => Chunk::Data(value),
                (
                    Chunk::Size {
                        in_extension: true, ..
                    },
                    _,
                ) => chunk,
                (Chunk::Size { value, digits, .. }, _) if byte.is_ascii_hexdigit() => {
                    if digits == 15 {
                        return self.chunk_error(); // more than 2^60 bytes: garbage
                    }
                    Chunk::Size {
                        value: value << 4 | u64::from(hex_value(byte)),
                        digits: digits + 1,
                        in_extension: false,
                    }
                }
                (Chunk::Size { value, digits, .. }, b';' | b' ' | b'\t' | b'\r') => Chunk::Size {
                    value,
                    digits,
                    in_extension: true,
                },
                (Chunk::Size { .. }, _) => return self.chunk_error(),
                (Chunk::DataEnd, b'\r') => Chunk::DataEnd,
                (Chunk::DataEnd, b'\n') => CHUNK_SIZE_START,
                (Chunk::DataEnd, _) => return self.chunk_error(),
                (
                    Chunk::Trailer {
                        at_line_start: true,
                    },
                    b'\n',
                ) => {
                    self.state = State::Boundary;
                    return data;
                }
                (Chunk::Trailer { at_line_start }, b'\r') => Chunk::Trailer { at_line_start },
                (Chunk::Trailer { .. }, b'\n') => Chunk::Trailer {
                    at_line_start: true,
                },
                (Chunk::Trailer { .. }, _) => Chunk::Trailer {
                    at_line_start: false,
                },
                (Chunk::Data(_), _) => unreachable!("handled above"),
            };
        }
        self.state = State::Chunked(chunk);
        data
    }

    fn chunk_error(&mut self) -> &'static [u8] {
        self.state = self.lose_track();
        &[]
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Offset just past the blank line that ends a head (`\r\n\r\n` or bare `\n\n`), looking
/// from about `from` on.
fn head_end(head: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub(2);
    while i < head.len() {
        if head[i] == b'\n' {
            match head.get(i + 1..) {
                Some([b'\n', ..]) => return Some(i + 2),
                Some([b'\r', b'\n', ..]) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The body length a head declares (RFC 9112 section 6.3), before the status and the
/// request method are taken into account.
fn declared_body_length(head: &[u8], start: Start) -> BodyLength {
    let is_request = matches!(start, Start::Request(_));
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None; // Some(last coding is chunked)
    for line in head.split(|&b| b == b'\n').skip(1) {
        if let Some(value) = header_value(line, b"content-length") {
            match (parse_decimal(value), content_length) {
                (Some(n), None) => content_length = Some(n),
                (Some(n), Some(seen)) if n == seen => {}
                _ => return BodyLength::Unknown, // unparseable or conflicting
            }
        } else if let Some(value) = header_value(line, b"transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    match (transfer_encoding, content_length) {
        (Some(true), _) => BodyLength::Chunked,
        (Some(false), _) if is_request => BodyLength::Unknown,
        (Some(false), _) => BodyLength::UntilClose,
        (None, Some(n)) => BodyLength::Length(n),
        (None, None) if is_request => BodyLength::None,
        (None, None) => BodyLength::UntilClose,
    }
}

/// The trimmed value of header `name` (lowercase, without colon) on `line`.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.get(name.len()..)?;
    if !line[..name.len()].eq_ignore_ascii_case(name) || rest.first() != Some(&b':') {
        return None;
    }
    Some(rest[1..].trim_ascii())
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `segments` and list the heads seen as `REQ`/status, with completeness.
    fn heads(synced: bool, segments: &[&[u8]]) -> (Vec<String>, MessageStream) {
        let mut stream = MessageStream::new(synced);
        let mut seen = Vec::new();
        for seg in segments {
            stream.feed(seg, 0, true, &mut |head| {
                seen.push(match head.start {
                    Start::Request(_) => "REQ".to_string(),
                    Start::Response(status) => status.to_string(),
                });
                head.declared
            });
        }
        (seen, stream)
    }

    #[test]
    fn frames_content_length_and_chunked_bodies() {
        let (seen, s) = heads(
            true,
            &[
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/",
                b"HTTP/1.1 201 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n4\r\nHTTP\r\n",
                b"HTTP/1.1 500 in a chunk\r\n",
                b"0\r\n\r\nHTTP/1.1 202 OK\r\n\r\n",
            ],
        );
        // A status line where a chunk size belongs is not a response: the stream has
        // lost its framing, and the 202 (not at a segment start) is not trusted either.
        assert_eq!(seen, ["200", "201"]);
        assert_eq!(s.desyncs, 1);
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let (seen, s) = heads(
            true,
            &[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"A;name=value\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
                b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n",
            ],
        );
        assert_eq!(seen, ["200", "429"]);
        assert_eq!(s.desyncs, 0);
    }

    #[test]
    fn declared_lengths() {
        let status = Start::Response(200);
        let request = Start::Request(parse_request_start(b"POST / HTTP/1.1").unwrap());
        let cases: [(&[u8], Start, BodyLength); 7] = [
            (b"HTTP/1.1 200 OK\r\n\r\n", status, BodyLength::UntilClose),
            (b"POST / HTTP/1.1\r\n\r\n", request, BodyLength::None),
            (
                b"X\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n",
                status,
                BodyLength::Length(7),
            ),
            (
                b"X\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
                status,
                BodyLength::Unknown,
            ),
            (
                b"X\r\nContent-Length: -1\r\n\r\n",
                status,
                BodyLength::Unknown,
            ),
            (
                b"X\r\nTransfer-Encoding: gzip\r\n\r\n",
                request,
                BodyLength::Unknown,
            ),
            (
                b"X\r\nContent-Length : 5\r\n\r\n",
                request,
                BodyLength::None,
            ),
        ];
        for (head, start, want) in cases {
            assert_eq!(
                declared_body_length(head, start),
                want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn lost_streams_resync_only_at_segment_starts() {
        let mut stream = MessageStream::new(false);
        let mut seen = 0;
        let mut count = |_: &Head<'_>| {
            seen += 1;
            BodyLength::None
        };
        stream.feed(b"xx HTTP/1.1 200 OK\r\n\r\n", 0, true, &mut count);
        stream.feed(b"HTTP/1.1 200 OK\r\n\r\n", 0, false, &mut count);
        stream.feed(b"HTTP/1.1 200 OK\r\n\r\n", 0, true, &mut count);
        assert_eq!(seen, 1);
    }

    #[test]
    fn non_http_loses_track_early() {
        let (seen, s) = heads(
            true,
            &[b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdef"],
        );
        assert!(seen.is_empty());
        assert_eq!(s.desyncs, 1);
    }

    #[test]
    fn head_ends() {
        assert_eq!(head_end(b"A\r\n\r\nbody", 0), Some(5));
        assert_eq!(head_end(b"A\n\nbody", 0), Some(3));
        assert_eq!(head_end(b"A\r\nB: c\r\n", 0), None);
        assert_eq!(head_end(b"A\r\n\r", 0), None);
    }
}
